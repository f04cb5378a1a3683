//! Entities: signals, calls, critical sections (locks), delayed signals, entity actions
//! and entity queries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::history_event::EventType;
use durabletask_proto::operation_action::OperationActionType;
use durabletask_proto::operation_result::ResultType;
use durabletask_proto::orchestrator_action::OrchestratorActionType as Action;
use durabletask_proto::send_entity_message_action::EntityMessageType;
use durabletask_proto::*;

const QUIET: Duration = Duration::from_millis(300);

async fn signal(client: &mut Client, entity: &str, operation: &str, input: Option<&str>) {
    client
        .signal_entity(SignalEntityRequest {
            instance_id: entity.into(),
            name: operation.into(),
            input: input.map(str::to_owned),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn success(result: Option<&str>) -> OperationResult {
    OperationResult {
        result_type: Some(ResultType::Success(OperationResultSuccess {
            result: Some(result.unwrap_or("").to_owned()),
            ..Default::default()
        })),
    }
}

/// Answers an entity batch: every operation succeeds with `result`, the state becomes
/// `state`; responses go where the operations say (like a v2 worker).
async fn answer(
    client: &mut Client,
    request: &EntityRequest,
    token: &str,
    state: Option<&str>,
    actions: Vec<OperationAction>,
) {
    let infos = request
        .operation_requests
        .iter()
        .map(|event| match &event.event_type {
            Some(EventType::EntityOperationSignaled(signal)) => OperationInfo {
                request_id: signal.request_id.clone(),
                response_destination: None,
            },
            Some(EventType::EntityOperationCalled(call)) => OperationInfo {
                request_id: call.request_id.clone(),
                response_destination: Some(OrchestrationInstance {
                    instance_id: call.parent_instance_id.clone().unwrap_or_default(),
                    execution_id: call.parent_execution_id.clone(),
                }),
            },
            other => panic!("{other:?}"),
        })
        .collect();
    client
        .complete_entity_task(EntityBatchResult {
            results: request
                .operation_requests
                .iter()
                .map(|_| success(Some("\"ok\"")))
                .collect(),
            actions,
            entity_state: state.map(str::to_owned),
            completion_token: token.into(),
            operation_infos: infos,
            ..Default::default()
        })
        .await
        .unwrap();
}

fn operations(request: &EntityRequest) -> Vec<String> {
    request
        .operation_requests
        .iter()
        .map(|event| match &event.event_type {
            Some(EventType::EntityOperationSignaled(signal)) => signal.operation.clone(),
            Some(EventType::EntityOperationCalled(call)) => call.operation.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn entity_action(id: i32, message: EntityMessageType) -> OrchestratorAction {
    action(
        id,
        Action::SendEntityMessage(SendEntityMessageAction {
            entity_message_type: Some(message),
        }),
    )
}

fn call(
    id: i32,
    parent: &str,
    entity: &str,
    operation: &str,
    request_id: &str,
) -> OrchestratorAction {
    entity_action(
        id,
        EntityMessageType::EntityOperationCalled(EntityOperationCalledEvent {
            request_id: request_id.into(),
            operation: operation.into(),
            parent_instance_id: Some(parent.into()),
            target_instance_id: Some(entity.into()),
            ..Default::default()
        }),
    )
}

fn lock(id: i32, parent: &str, section: &str, entities: &[&str]) -> OrchestratorAction {
    entity_action(
        id,
        EntityMessageType::EntityLockRequested(EntityLockRequestedEvent {
            critical_section_id: section.into(),
            lock_set: entities.iter().map(|e| (*e).to_owned()).collect(),
            position: 0,
            parent_instance_id: Some(parent.into()),
        }),
    )
}

fn unlock(id: i32, parent: &str, section: &str, entity: &str) -> OrchestratorAction {
    entity_action(
        id,
        EntityMessageType::EntityUnlockSent(EntityUnlockSentEvent {
            critical_section_id: section.into(),
            parent_instance_id: Some(parent.into()),
            target_instance_id: Some(entity.into()),
        }),
    )
}

#[tokio::test]
async fn signals_run_in_batches_and_keep_state() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    assert!(get_entity(&mut client, "@counter@k").await.is_none());
    signal(&mut client, "@counter@k", "add", Some("1")).await;
    signal(&mut client, "@counter@k", "add", Some("2")).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let (request, token) = worker.next_entity().await;
    assert_eq!(request.instance_id, "@counter@k");
    assert_eq!(request.entity_state, None);
    assert_eq!(operations(&request), ["add", "add"]);
    signal(&mut client, "@counter@k", "add", Some("3")).await;
    // One batch per entity at a time.
    assert!(worker.try_next(QUIET).await.is_none());
    answer(&mut client, &request, &token, Some("3"), vec![]).await;
    let (request, token) = worker.next_entity().await;
    assert_eq!(request.entity_state.as_deref(), Some("3"));
    assert_eq!(operations(&request), ["add"]);
    answer(&mut client, &request, &token, Some("6"), vec![]).await;
    let entity = get_entity(&mut client, "@counter@k").await.unwrap();
    assert_eq!(entity.serialized_state.as_deref(), Some("6"));
    assert_eq!(entity.backlog_queue_size, 0);

    let bad = client
        .signal_entity(SignalEntityRequest {
            instance_id: "not-an-entity".into(),
            name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    backend.shutdown().await;
}

#[tokio::test]
async fn calls_answer_the_calling_orchestration() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "caller", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "caller",
        &token,
        vec![call(1, "caller", "@e@k", "get", "req-1")],
    )
    .await;
    let (request, token) = worker.next_entity().await;
    answer(&mut client, &request, &token, Some("1"), vec![]).await;
    let (request, token) = worker.next_orchestration().await;
    let Some(EventType::EntityOperationCompleted(done)) = &request.new_events[1].event_type else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(
        (done.request_id.as_str(), done.output.as_deref()),
        ("req-1", Some("\"ok\""))
    );
    assert_eq!(kinds(&request.past_events)[2], "entityOperationCalled");
    assert_eq!(request.past_events[2].event_id, 1);

    // A worker that sends no operationInfos (v1) still answers the caller; a failure
    // is delivered as such.
    complete(
        &mut client,
        "caller",
        &token,
        vec![call(2, "caller", "@e@k", "fail", "req-2")],
    )
    .await;
    let (_, token) = worker.next_entity().await;
    client
        .complete_entity_task(EntityBatchResult {
            results: vec![OperationResult {
                result_type: Some(ResultType::Failure(OperationResultFailure {
                    failure_details: Some(TaskFailureDetails {
                        error_type: "Boom".into(),
                        error_message: "bad".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
            }],
            entity_state: Some("1".into()),
            completion_token: token,
            ..Default::default()
        })
        .await
        .unwrap();
    let (request, _) = worker.next_orchestration().await;
    let Some(EventType::EntityOperationFailed(failed)) = &request.new_events[1].event_type else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(failed.request_id, "req-2");
    assert_eq!(
        failed.failure_details.as_ref().unwrap().error_message,
        "bad"
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn a_locked_entity_serves_only_its_lock_holder() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "holder", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "holder",
        &token,
        vec![lock(1, "holder", "cs-1", &["@a@1", "@b@1"])],
    )
    .await;
    let (request, token) = worker.next_orchestration().await;
    let Some(EventType::EntityLockGranted(granted)) = &request.new_events[1].event_type else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(granted.critical_section_id, "cs-1");
    assert_eq!(
        get_entity(&mut client, "@a@1")
            .await
            .unwrap()
            .locked_by
            .as_deref(),
        Some("cs-1")
    );

    // Someone else's signal waits; a second lock request waits too.
    signal(&mut client, "@a@1", "other", None).await;
    start(&mut client, "second", "o", None).await;
    let (_, second_token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "second",
        &second_token,
        vec![lock(1, "second", "cs-2", &["@a@1"])],
    )
    .await;
    assert!(worker.try_next(QUIET).await.is_none());

    // The holder's call goes through, alone.
    complete(
        &mut client,
        "holder",
        &token,
        vec![call(2, "holder", "@a@1", "mine", "r1")],
    )
    .await;
    let (request, entity_token) = worker.next_entity().await;
    assert_eq!(operations(&request), ["mine"]);
    answer(&mut client, &request, &entity_token, None, vec![]).await;
    let (_, token) = worker.next_orchestration().await;

    // Unlocking lets the earlier signal run first, then the second lock is granted.
    complete(
        &mut client,
        "holder",
        &token,
        vec![
            unlock(3, "holder", "cs-1", "@a@1"),
            unlock(4, "holder", "cs-1", "@b@1"),
            finish(5, OrchestrationStatus::Completed, None),
        ],
    )
    .await;
    let (request, entity_token) = worker.next_entity().await;
    assert_eq!(operations(&request), ["other"]);
    assert!(worker.try_next(QUIET).await.is_none());
    answer(&mut client, &request, &entity_token, None, vec![]).await;
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "second");
    assert!(matches!(
        request.new_events[1].event_type,
        Some(EventType::EntityLockGranted(_))
    ));
    backend.shutdown().await;
}

#[tokio::test]
async fn locks_are_released_when_the_holder_finishes() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "h", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "h",
        &token,
        vec![lock(1, "h", "cs", &["@x@1"])],
    )
    .await;
    let (_, token) = worker.next_orchestration().await;
    signal(&mut client, "@x@1", "waiting", None).await;
    assert!(worker.try_next(QUIET).await.is_none());
    complete(&mut client, "h", &token, vec![fail(2, "E", "gave up")]).await;
    let (request, _) = worker.next_entity().await;
    assert_eq!(operations(&request), ["waiting"]);
    assert_eq!(
        get_entity(&mut client, "@x@1").await.unwrap().locked_by,
        None
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn delayed_signals_wait_for_their_time() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let started = std::time::Instant::now();
    client
        .signal_entity(SignalEntityRequest {
            instance_id: "@d@k".into(),
            name: "later".into(),
            scheduled_time: Some(now_plus(Duration::from_millis(500))),
            ..Default::default()
        })
        .await
        .unwrap();
    // From an orchestration too.
    start(&mut client, "o", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "o",
        &token,
        vec![entity_action(
            1,
            EntityMessageType::EntityOperationSignaled(EntityOperationSignaledEvent {
                request_id: "s".into(),
                operation: "later2".into(),
                scheduled_time: Some(now_plus(Duration::from_millis(500))),
                target_instance_id: Some("@d@k2".into()),
                ..Default::default()
            }),
        )],
    )
    .await;
    assert!(get_entity(&mut client, "@d@k").await.is_some());
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (request, _) = worker.next_entity().await;
        seen.extend(operations(&request));
    }
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    seen.sort();
    assert_eq!(seen, ["later", "later2"]);
    backend.shutdown().await;
}

#[tokio::test]
async fn entity_actions_signal_and_start_orchestrations() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    signal(&mut client, "@a@k", "go", None).await;
    let (request, token) = worker.next_entity().await;
    answer(
        &mut client,
        &request,
        &token,
        None,
        vec![
            OperationAction {
                id: 0,
                operation_action_type: Some(OperationActionType::SendSignal(SendSignalAction {
                    instance_id: "@b@k".into(),
                    name: "relay".into(),
                    input: Some("1".into()),
                    ..Default::default()
                })),
            },
            OperationAction {
                id: 0,
                operation_action_type: Some(OperationActionType::StartNewOrchestration(
                    StartNewOrchestrationAction {
                        instance_id: "started-by-entity".into(),
                        name: "noop".into(),
                        input: Some("1".into()),
                        ..Default::default()
                    },
                )),
            },
        ],
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let item = worker.next().await;
        seen.push(match item.request {
            Some(work_item::Request::EntityRequestV2(request)) => request.instance_id,
            Some(work_item::Request::OrchestratorRequest(request)) => request.instance_id,
            other => panic!("{other:?}"),
        });
    }
    seen.sort();
    assert_eq!(seen, ["@b@k", "started-by-entity"]);
    backend.shutdown().await;
}

#[tokio::test]
async fn entity_queries_page_and_storage_is_cleaned() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    for key in ["1", "2", "3"] {
        signal(&mut client, &format!("@q@{key}"), "set", None).await;
        let (request, token) = worker.next_entity().await;
        let state = if key == "2" { None } else { Some("1") };
        answer(&mut client, &request, &token, state, vec![]).await;
    }
    let mut token = None;
    let mut ids = Vec::new();
    loop {
        let page = client
            .query_entities(QueryEntitiesRequest {
                query: Some(EntityQuery {
                    instance_id_starts_with: Some("@q@".into()),
                    include_state: true,
                    page_size: Some(2),
                    continuation_token: token.take(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        ids.extend(page.entities.into_iter().map(|e| e.instance_id));
        match page.continuation_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, ["@q@1", "@q@2", "@q@3"]);
    let cleaned = client
        .clean_entity_storage(CleanEntityStorageRequest {
            remove_empty_entities: true,
            release_orphaned_locks: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleaned.empty_entities_removed, 1);
    assert!(get_entity(&mut client, "@q@2").await.is_none());
    assert!(get_entity(&mut client, "@q@1").await.is_some());
    backend.shutdown().await;
}
