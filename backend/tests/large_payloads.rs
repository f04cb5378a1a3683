//! Regression (issue 10, item 1): listings of instances and entities with large payloads
//! were one message; past the message limit (or a client's 4 MiB default), `list` of the
//! whole hub failed. Pages are now bounded by bytes as well as by count. And payloads
//! over the configured limit are never accepted: refused at a client's call, a failure
//! for a worker's result (an activity's, an orchestration's, an entity batch's).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use durabletask_backend::{BackendOptions, EmbeddedBackend, HISTORY_TOO_LARGE, PAYLOAD_TOO_LARGE};
use durabletask_proto::history_event::EventType;
use durabletask_proto::operation_action::OperationActionType;
use durabletask_proto::operation_result::ResultType;
use durabletask_proto::orchestrator_action::OrchestratorActionType;
use durabletask_proto::send_entity_message_action::EntityMessageType;
use durabletask_proto::*;
use tonic::Code;

#[tokio::test]
async fn a_listing_of_large_instances_pages_by_bytes_and_loses_none() {
    let db = TestDb::new();
    let backend = db.start().await;
    // A client with gRPC's default 4 MiB receive limit, as Microsoft's SDKs have.
    let mut client = common::client(&backend).await;
    let big = format!("\"{}\"", "x".repeat(1024 * 1024));
    for i in 0..12 {
        start(
            &mut client,
            &format!("big-{i:02}"),
            "orchestrator",
            Some(&big),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client
            .query_instances(QueryInstancesRequest {
                query: Some(InstanceQuery {
                    fetch_inputs_and_outputs: true,
                    continuation_token: token.clone(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        for state in page.orchestration_state {
            assert_eq!(state.input.as_deref(), Some(big.as_str()));
            seen.push(state.instance_id);
        }
        token = page.continuation_token;
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..12).map(|i| format!("big-{i:02}")).collect();
    seen.sort();
    assert_eq!(seen, expected);
    assert!(pages >= 6, "12 MiB of inputs came in {pages} pages");
}

async fn backend_with_limit(db: &TestDb, max_payload_bytes: usize) -> EmbeddedBackend {
    EmbeddedBackend::start(BackendOptions {
        max_payload_bytes,
        ..db.options()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_client_payload_over_the_limit_is_refused_at_the_call() {
    let db = TestDb::new();
    let backend = backend_with_limit(&db, 1000).await;
    let mut client = common::client(&backend).await;
    let big = format!("\"{}\"", "x".repeat(1000));
    let status = client
        .start_instance(CreateInstanceRequest {
            instance_id: "big".into(),
            name: "orchestrator".into(),
            input: Some(big.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("input is 1002 bytes"),
        "{}",
        status.message()
    );
    assert!(
        state(&mut client, "big").await.is_none(),
        "nothing was accepted"
    );

    start(&mut client, "small", "orchestrator", Some("1")).await;
    let status = client
        .raise_event(RaiseEventRequest {
            instance_id: "small".into(),
            name: "e".into(),
            input: Some(big),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn worker_results_over_the_limit_fail_the_task_not_the_backend() {
    let db = TestDb::new();
    let backend = backend_with_limit(&db, 1000).await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let big = format!("\"{}\"", "x".repeat(1000));
    start(&mut client, "o", "orchestrator", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "o", &token, vec![schedule(0, "a", None)]).await;
    let (activity, token) = worker.next_activity().await;
    complete_activity(&mut client, &activity, &token, Some(&big)).await;
    // The orchestration sees the activity fail, and can react.
    let (request, token) = worker.next_orchestration().await;
    let failure = request
        .new_events
        .iter()
        .find_map(|event| match &event.event_type {
            Some(history_event::EventType::TaskFailed(failed)) => failed.failure_details.clone(),
            _ => None,
        })
        .expect("the activity failed");
    assert_eq!(failure.error_type, PAYLOAD_TOO_LARGE);
    // Its own output too large: it fails, and stays readable.
    complete(
        &mut client,
        "o",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some(&big))],
    )
    .await;
    let done = wait_completion(&mut client, "o").await;
    assert_eq!(
        done.orchestration_status,
        OrchestrationStatus::Failed as i32
    );
    let details = done.failure_details.unwrap();
    assert_eq!(details.error_type, PAYLOAD_TOO_LARGE);
    assert!(
        details
            .error_message
            .contains("completeOrchestration.result"),
        "{details:?}"
    );
    assert_eq!(done.output, None);
}

#[tokio::test]
async fn a_history_past_the_event_limit_is_refused_at_the_call_that_would_pass_it() {
    let db = TestDb::new();
    let backend = EmbeddedBackend::start(BackendOptions {
        max_history_events: 20,
        ..db.options()
    })
    .await
    .unwrap();
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;

    // Events raised on a waiting instance: accepted up to the limit, then refused.
    start(&mut client, "waiting", "orchestrator", None).await;
    let raise = |i: usize| RaiseEventRequest {
        instance_id: "waiting".into(),
        name: format!("e{i}"),
        input: None,
    };
    let mut accepted = 0;
    let refused = loop {
        match client.raise_event(raise(accepted)).await {
            Ok(_) => accepted += 1,
            Err(status) => break status,
        }
        assert!(accepted < 100, "events were never refused");
    };
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("max_history_events"),
        "{}",
        refused.message()
    );
    assert!(accepted < 20, "{accepted} events accepted");

    // A step that would pass the limit: refused, and the orchestration fails (it is not
    // handed out again and again).
    start(&mut client, "fan", "orchestrator", None).await;
    let (request, token) = loop {
        let (request, token) = worker.next_orchestration().await;
        if request.instance_id == "fan" {
            break (request, token);
        }
    };
    let actions = (0..30).map(|i| schedule(i, "a", None)).collect();
    let status = client
        .complete_orchestrator_task(OrchestratorResponse {
            instance_id: request.instance_id.clone(),
            actions,
            completion_token: token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let done = wait_completion(&mut client, "fan").await;
    assert_eq!(
        done.orchestration_status,
        OrchestrationStatus::Failed as i32
    );
    assert_eq!(done.failure_details.unwrap().error_type, HISTORY_TOO_LARGE);
    // None of its 30 activities was scheduled.
    assert!(
        worker
            .try_next(std::time::Duration::from_millis(300))
            .await
            .is_none_or(|item| {
                !matches!(item.request, Some(work_item::Request::ActivityRequest(_)))
            })
    );
}

/// An orchestration's call of `operation` on `entity`.
fn call_entity(id: i32, parent: &str, entity: &str, operation: &str) -> OrchestratorAction {
    action(
        id,
        OrchestratorActionType::SendEntityMessage(SendEntityMessageAction {
            entity_message_type: Some(EntityMessageType::EntityOperationCalled(
                EntityOperationCalledEvent {
                    request_id: format!("req-{id}"),
                    operation: operation.into(),
                    parent_instance_id: Some(parent.into()),
                    target_instance_id: Some(entity.into()),
                    ..Default::default()
                },
            )),
        }),
    )
}

/// Completes an entity batch of one operation, as a v1 worker would (the backend finds
/// the caller in the operation itself).
async fn complete_batch(
    client: &mut Client,
    token: String,
    result: &str,
    state: &str,
    actions: Vec<OperationAction>,
) {
    client
        .complete_entity_task(EntityBatchResult {
            results: vec![OperationResult {
                result_type: Some(ResultType::Success(OperationResultSuccess {
                    result: Some(result.into()),
                    ..Default::default()
                })),
            }],
            actions,
            entity_state: Some(state.into()),
            completion_token: token,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn entity_state(client: &mut Client, id: &str) -> Option<String> {
    get_entity(client, id)
        .await
        .and_then(|entity| entity.serialized_state)
}

/// The failure the orchestration's next step reports for its entity call.
async fn call_failure(worker: &mut Worker) -> (TaskFailureDetails, String) {
    let (request, token) = worker.next_orchestration().await;
    let failure = request
        .new_events
        .iter()
        .find_map(|event| match &event.event_type {
            Some(EventType::EntityOperationFailed(failed)) => failed.failure_details.clone(),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the call did not fail: {:?}", request.new_events));
    (failure, token)
}

#[tokio::test]
async fn entity_batches_over_the_limit_fail_their_operations_and_keep_the_state() {
    let db = TestDb::new();
    let backend = backend_with_limit(&db, 1000).await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let big = format!("\"{}\"", "x".repeat(1000));

    start(&mut client, "caller", "orchestrator", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "caller",
        &token,
        vec![call_entity(1, "caller", "@counter@k", "set")],
    )
    .await;
    let (_, token) = worker.next_entity().await;
    complete_batch(&mut client, token, "null", "\"before\"", vec![]).await;
    let (request, token) = worker.next_orchestration().await;
    assert!(
        request
            .new_events
            .iter()
            .any(|e| matches!(e.event_type, Some(EventType::EntityOperationCompleted(_)))),
        "{:?}",
        request.new_events
    );

    // A new state too large: nothing of the batch is applied, not even its signal.
    complete(
        &mut client,
        "caller",
        &token,
        vec![call_entity(2, "caller", "@counter@k", "grow")],
    )
    .await;
    let (_, token) = worker.next_entity().await;
    let signal = OperationAction {
        id: 0,
        operation_action_type: Some(OperationActionType::SendSignal(SendSignalAction {
            instance_id: "@other@k".into(),
            name: "add".into(),
            input: Some("1".into()),
            ..Default::default()
        })),
    };
    complete_batch(&mut client, token, "1", &big, vec![signal]).await;
    let (failure, token) = call_failure(&mut worker).await;
    assert_eq!(failure.error_type, PAYLOAD_TOO_LARGE);
    assert!(
        failure.error_message.contains("entityState is 1002 bytes")
            && failure.error_message.contains("at most 1000 bytes"),
        "{failure:?}"
    );
    assert_eq!(
        entity_state(&mut client, "@counter@k").await.as_deref(),
        Some("\"before\"")
    );
    assert_eq!(entity_state(&mut client, "@other@k").await, None);

    // An action's payload too large: the same, and the orchestration is not started.
    complete(
        &mut client,
        "caller",
        &token,
        vec![call_entity(3, "caller", "@counter@k", "spawn")],
    )
    .await;
    let (_, token) = worker.next_entity().await;
    let spawn = OperationAction {
        id: 0,
        operation_action_type: Some(OperationActionType::StartNewOrchestration(
            StartNewOrchestrationAction {
                instance_id: "spawned".into(),
                name: "orchestrator".into(),
                input: Some(big.clone()),
                ..Default::default()
            },
        )),
    };
    complete_batch(&mut client, token, "1", "\"spawning\"", vec![spawn]).await;
    let (failure, token) = call_failure(&mut worker).await;
    assert_eq!(failure.error_type, PAYLOAD_TOO_LARGE);
    assert!(
        failure
            .error_message
            .contains("action 0 startNewOrchestration.input is 1002 bytes"),
        "{failure:?}"
    );
    assert_eq!(
        entity_state(&mut client, "@counter@k").await.as_deref(),
        Some("\"before\"")
    );
    assert!(state(&mut client, "spawned").await.is_none());

    // An operation's result too large: that operation fails, the new state stands.
    complete(
        &mut client,
        "caller",
        &token,
        vec![call_entity(4, "caller", "@counter@k", "get")],
    )
    .await;
    let (_, token) = worker.next_entity().await;
    complete_batch(&mut client, token, &big, "\"after\"", vec![]).await;
    let (failure, _) = call_failure(&mut worker).await;
    assert_eq!(failure.error_type, PAYLOAD_TOO_LARGE);
    assert!(
        failure.error_message.contains("1002 bytes")
            && failure.error_message.contains("at most 1000 bytes"),
        "{failure:?}"
    );
    assert_eq!(
        entity_state(&mut client, "@counter@k").await.as_deref(),
        Some("\"after\"")
    );
    // Nothing else was queued by the rejected batches.
    assert!(
        worker
            .try_next(std::time::Duration::from_millis(300))
            .await
            .is_none()
    );
}
