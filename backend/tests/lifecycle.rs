//! Instance management: recursive terminate and purge, restart, rewind, queries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::history_event::EventType;
use durabletask_proto::orchestrator_action::OrchestratorActionType as Action;
use durabletask_proto::purge_instances_request::Request as PurgeRequest;
use durabletask_proto::*;
use tonic::Code;

/// A sub-orchestration started with the input "data".
fn sub_with_data(id: i32, child: &str, name: &str) -> OrchestratorAction {
    action(
        id,
        Action::CreateSubOrchestration(CreateSubOrchestrationAction {
            instance_id: child.into(),
            name: name.into(),
            input: Some("\"data\"".into()),
            ..Default::default()
        }),
    )
}

async fn purge(client: &mut Client, id: &str, recursive: bool) -> i32 {
    client
        .purge_instances(PurgeInstancesRequest {
            request: Some(PurgeRequest::InstanceId(id.into())),
            recursive,
            is_orchestration: true,
        })
        .await
        .unwrap()
        .into_inner()
        .deleted_instance_count
}

/// Answers orchestration work items with `answer` until `id` has completed.
async fn run_until_done(
    client: &mut Client,
    worker: &mut Worker,
    id: &str,
    mut answer: impl FnMut(&OrchestratorRequest) -> Vec<OrchestratorAction>,
) {
    loop {
        let (request, token) = worker.next_orchestration().await;
        let actions = answer(&request);
        let done = request.instance_id == id
            && actions.iter().any(|action| {
                matches!(
                    action.orchestrator_action_type,
                    Some(Action::CompleteOrchestration(_))
                )
            });
        complete(client, &request.instance_id, &token, actions).await;
        if done {
            return;
        }
    }
}

#[tokio::test]
async fn terminate_and_purge_recurse_into_children() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "root", "root", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "root",
        &token,
        vec![sub_with_data(1, "root:0001", "child")],
    )
    .await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "root:0001", &token, vec![]).await;

    // Purging a running instance deletes nothing.
    assert_eq!(purge(&mut client, "root", true).await, 0);

    client
        .terminate_instance(TerminateRequest {
            instance_id: "root".into(),
            output: Some("\"stop\"".into()),
            recursive: true,
        })
        .await
        .unwrap();
    let mut terminated = Vec::new();
    for _ in 0..2 {
        let (request, token) = worker.next_orchestration().await;
        assert!(
            request
                .new_events
                .iter()
                .any(|event| matches!(event.event_type, Some(EventType::ExecutionTerminated(_))))
        );
        complete(
            &mut client,
            &request.instance_id,
            &token,
            vec![finish(9, OrchestrationStatus::Terminated, Some("\"stop\""))],
        )
        .await;
        terminated.push(request.instance_id);
    }
    terminated.sort();
    assert_eq!(terminated, ["root", "root:0001"]);
    // The child's end reaches no one: the root is finished.
    assert!(worker.try_next(Duration::from_millis(300)).await.is_none());
    assert_eq!(purge(&mut client, "root", true).await, 2);
    assert!(state(&mut client, "root").await.is_none());
    assert!(state(&mut client, "root:0001").await.is_none());
    let missing = client
        .stream_instance_history(StreamInstanceHistoryRequest {
            instance_id: "root".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    backend.shutdown().await;
}

#[tokio::test]
async fn restart_runs_a_finished_instance_again() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "re", "o", Some("\"in\"")).await;
    let not_done = client
        .restart_instance(RestartInstanceRequest {
            instance_id: "re".into(),
            restart_with_new_instance_id: false,
        })
        .await
        .unwrap_err();
    assert_eq!(not_done.code(), Code::FailedPrecondition);
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "re",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some("1"))],
    )
    .await;

    let same = client
        .restart_instance(RestartInstanceRequest {
            instance_id: "re".into(),
            restart_with_new_instance_id: false,
        })
        .await
        .unwrap()
        .into_inner()
        .instance_id;
    assert_eq!(same, "re");
    let (request, token) = worker.next_orchestration().await;
    assert!(request.past_events.is_empty());
    let Some(EventType::ExecutionStarted(started)) = &request.new_events[1].event_type else {
        panic!()
    };
    assert_eq!(started.input.as_deref(), Some("\"in\""));
    complete(
        &mut client,
        "re",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some("2"))],
    )
    .await;
    assert_eq!(
        wait_completion(&mut client, "re").await.output.as_deref(),
        Some("2")
    );

    let new = client
        .restart_instance(RestartInstanceRequest {
            instance_id: "re".into(),
            restart_with_new_instance_id: true,
        })
        .await
        .unwrap()
        .into_inner()
        .instance_id;
    assert_ne!(new, "re");
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, new);

    let missing = client
        .restart_instance(RestartInstanceRequest {
            instance_id: "nope".into(),
            restart_with_new_instance_id: false,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    backend.shutdown().await;
}

/// The worker's side of a rewind (protocol.md §4.14), simplified: drop failed tasks and
/// their schedules, failed children and the completion.
fn rewritten(request: &OrchestratorRequest) -> Vec<HistoryEvent> {
    let failed: Vec<i32> = request
        .past_events
        .iter()
        .filter_map(|event| match &event.event_type {
            Some(EventType::TaskFailed(failed)) => Some(failed.task_scheduled_id),
            _ => None,
        })
        .collect();
    request
        .past_events
        .iter()
        .chain(request.new_events.iter())
        .filter(|event| match &event.event_type {
            Some(EventType::TaskFailed(_))
            | Some(EventType::SubOrchestrationInstanceFailed(_))
            | Some(EventType::ExecutionCompleted(_)) => false,
            Some(EventType::TaskScheduled(_)) => !failed.contains(&event.event_id),
            _ => true,
        })
        .cloned()
        .collect()
}

fn rewind_action(request: &OrchestratorRequest) -> Vec<OrchestratorAction> {
    vec![action(
        -1,
        Action::RewindOrchestration(RewindOrchestrationAction {
            new_history: rewritten(request),
        }),
    )]
}

fn is_rewind(request: &OrchestratorRequest) -> bool {
    request
        .new_events
        .iter()
        .any(|event| matches!(event.event_type, Some(EventType::ExecutionRewound(_))))
}

#[tokio::test]
async fn rewind_reruns_failed_work_including_children() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;

    let not_found = client
        .rewind_instance(RewindInstanceRequest {
            instance_id: "nope".into(),
            reason: None,
        })
        .await
        .unwrap_err();
    assert_eq!(not_found.code(), Code::NotFound);

    // parent → child → activity, which fails; both fail.
    start(&mut client, "parent", "parent", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "parent",
        &token,
        vec![sub_with_data(1, "kid", "child")],
    )
    .await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "kid", &token, vec![schedule(1, "flaky", None)]).await;
    let (activity, token) = worker.next_activity().await;
    client
        .complete_activity_task(ActivityResponse {
            instance_id: "kid".into(),
            task_id: activity.task_id,
            failure_details: Some(TaskFailureDetails {
                error_type: "E".into(),
                error_message: "flaky".into(),
                ..Default::default()
            }),
            completion_token: token,
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "kid",
        &token,
        vec![fail(2, "TaskFailed", "flaky")],
    )
    .await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "parent");
    complete(
        &mut client,
        "parent",
        &token,
        vec![fail(2, "TaskFailed", "child failed")],
    )
    .await;
    assert_eq!(
        wait_completion(&mut client, "parent")
            .await
            .orchestration_status,
        OrchestrationStatus::Failed as i32
    );

    let completed = client
        .rewind_instance(RewindInstanceRequest {
            instance_id: "other".into(),
            reason: None,
        })
        .await
        .unwrap_err();
    assert_eq!(completed.code(), Code::NotFound);

    client
        .rewind_instance(RewindInstanceRequest {
            instance_id: "parent".into(),
            reason: Some("fixed".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        state(&mut client, "parent")
            .await
            .unwrap()
            .orchestration_status,
        OrchestrationStatus::Running as i32
    );
    let (request, token) = worker.next_orchestration().await;
    assert!(is_rewind(&request));
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "executionRewound"]
    );
    complete(&mut client, "parent", &token, rewind_action(&request)).await;

    // The child is rewound as well; the parent replays its clean history.
    let mut child_rewound = false;
    let mut parent_replayed = false;
    while !(child_rewound && parent_replayed) {
        let (request, token) = worker.next_orchestration().await;
        match request.instance_id.as_str() {
            "kid" => {
                assert!(is_rewind(&request));
                complete(&mut client, "kid", &token, rewind_action(&request)).await;
                child_rewound = true;
            }
            "parent" => {
                assert!(!kinds(&request.past_events).contains(&"executionCompleted"));
                complete(&mut client, "parent", &token, vec![]).await;
                parent_replayed = true;
            }
            other => panic!("{other}"),
        }
    }
    // The child's replay schedules the activity again (here: the backend re-creates
    // the activity the history still waits for, and the child's replay re-emits it).
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "kid");
    complete(&mut client, "kid", &token, vec![schedule(1, "flaky", None)]).await;
    let (activity, token) = worker.next_activity().await;
    complete_activity(&mut client, &activity, &token, Some("\"child:data\"")).await;
    run_until_done(&mut client, &mut worker, "kid", |_| {
        vec![finish(
            2,
            OrchestrationStatus::Completed,
            Some("\"child:data\""),
        )]
    })
    .await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "parent");
    assert!(request.new_events.iter().any(|event| matches!(
        event.event_type,
        Some(EventType::SubOrchestrationInstanceCompleted(_))
    )));
    complete(
        &mut client,
        "parent",
        &token,
        vec![finish(
            2,
            OrchestrationStatus::Completed,
            Some("\"parent:child:data\""),
        )],
    )
    .await;
    let done = wait_completion(&mut client, "parent").await;
    assert_eq!(
        done.orchestration_status,
        OrchestrationStatus::Completed as i32
    );
    assert_eq!(done.failure_details, None);

    let not_failed = client
        .rewind_instance(RewindInstanceRequest {
            instance_id: "parent".into(),
            reason: None,
        })
        .await
        .unwrap_err();
    assert_eq!(not_failed.code(), Code::FailedPrecondition);
    backend.shutdown().await;
}

#[tokio::test]
async fn queries_page_through_instances() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    for i in 0..5 {
        start(&mut client, &format!("q{i}"), "o", Some("1")).await;
    }
    for _ in 0..3 {
        let (request, token) = worker.next_orchestration().await;
        complete(
            &mut client,
            &request.instance_id,
            &token,
            vec![finish(1, OrchestrationStatus::Completed, None)],
        )
        .await;
    }
    let mut ids = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .query_instances(QueryInstancesRequest {
                query: Some(InstanceQuery {
                    max_instance_count: 2,
                    continuation_token: token.take(),
                    instance_id_prefix: Some("q".into()),
                    fetch_inputs_and_outputs: true,
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.orchestration_state.len() <= 2);
        assert!(
            page.orchestration_state
                .iter()
                .all(|s| s.input.as_deref() == Some("1"))
        );
        ids.extend(page.orchestration_state.into_iter().map(|s| s.instance_id));
        match page.continuation_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, ["q0", "q1", "q2", "q3", "q4"]);

    let completed = client
        .query_instances(QueryInstancesRequest {
            query: Some(InstanceQuery {
                runtime_status: vec![OrchestrationStatus::Completed as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed.orchestration_state.len(), 3);

    let mut listed = Vec::new();
    let mut key = None;
    loop {
        let page = client
            .list_instance_ids(ListInstanceIdsRequest {
                page_size: 2,
                last_instance_key: key.take(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.instance_ids);
        match page.last_instance_key {
            Some(next) => key = Some(next),
            None => break,
        }
    }
    listed.sort();
    assert_eq!(listed.len(), 3);

    let purged = client
        .purge_instances(PurgeInstancesRequest {
            request: Some(PurgeRequest::PurgeInstanceFilter(PurgeInstanceFilter {
                runtime_status: vec![OrchestrationStatus::Completed as i32],
                ..Default::default()
            })),
            recursive: false,
            is_orchestration: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.deleted_instance_count, 3);
    assert_eq!(purged.is_complete, Some(true));
    backend.shutdown().await;
}

#[tokio::test]
async fn deleting_a_task_hub_empties_only_that_hub() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    for hub in ["keep", "drop"] {
        client
            .start_instance(in_hub(
                hub,
                CreateInstanceRequest {
                    instance_id: "x".into(),
                    name: "o".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    client
        .delete_task_hub(in_hub("drop", DeleteTaskHubRequest {}))
        .await
        .unwrap();
    let exists = |hub: &'static str| {
        let mut client = client.clone();
        async move {
            client
                .get_instance(in_hub(
                    hub,
                    GetInstanceRequest {
                        instance_id: "x".into(),
                        get_inputs_and_outputs: false,
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .exists
        }
    };
    assert!(exists("keep").await);
    assert!(!exists("drop").await);
    backend.shutdown().await;
    let backend = db.start().await;
    let client = common::client(&backend).await;
    let exists = |hub: &'static str| {
        let mut client = client.clone();
        async move {
            client
                .get_instance(in_hub(
                    hub,
                    GetInstanceRequest {
                        instance_id: "x".into(),
                        get_inputs_and_outputs: false,
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .exists
        }
    };
    assert!(exists("keep").await && !exists("drop").await);
    backend.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_streams_and_waiters_promptly() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "s", "o", None).await;
    let (_, _token) = worker.next_orchestration().await;
    let mut waiting = client.clone();
    let waiter = tokio::spawn(async move {
        let mut request = tonic::Request::new(GetInstanceRequest {
            instance_id: "s".into(),
            get_inputs_and_outputs: false,
        });
        request.set_timeout(Duration::from_secs(60));
        waiting.wait_for_instance_completion(request).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    backend.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(waiter.await.unwrap().is_err());
    // The stream ended (normally or with an error), it does not hang.
    let next = tokio::time::timeout(Duration::from_secs(2), worker.items.message()).await;
    assert!(matches!(next, Ok(Ok(None)) | Ok(Err(_))), "{next:?}");

    // The leased work item is redelivered after the restart.
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "s");
    backend.shutdown().await;
}
