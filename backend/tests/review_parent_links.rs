//! Review: a sub-orchestration's link to its parent is (parent id, generation), but every
//! re-created instance (restart with the same id, reuse-policy replace, a sub-orchestration
//! re-created over a finished instance) starts again at generation 1. A child of the old
//! run then reports to the new run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::history_event::EventType;
use durabletask_proto::orchestrator_action::OrchestratorActionType as Action;
use durabletask_proto::*;

pub fn sub(id: i32, child: &str, name: &str) -> OrchestratorAction {
    action(
        id,
        Action::CreateSubOrchestration(CreateSubOrchestrationAction {
            instance_id: child.into(),
            name: name.into(),
            ..Default::default()
        }),
    )
}

#[tokio::test]
async fn a_restarted_parent_receives_the_completion_of_the_old_runs_child() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;

    start(&mut client, "p", "parent", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "p", &token, vec![sub(0, "c", "child")]).await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "c");
    complete(&mut client, "c", &token, vec![]).await;

    // The parent is terminated (not recursively) and restarted under the same id.
    client
        .terminate_instance(TerminateRequest {
            instance_id: "p".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "p",
        &token,
        vec![finish(1, OrchestrationStatus::Terminated, None)],
    )
    .await;
    client
        .restart_instance(RestartInstanceRequest {
            instance_id: "p".into(),
            restart_with_new_instance_id: false,
        })
        .await
        .unwrap();
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "p");
    // The new run waits for an external event; it has no sub-orchestration.
    complete(&mut client, "p", &token, vec![]).await;

    // The old run's child finishes.
    client
        .raise_event(RaiseEventRequest {
            instance_id: "c".into(),
            name: "go".into(),
            input: None,
        })
        .await
        .unwrap();
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "c");
    complete(
        &mut client,
        "c",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some("\"old\""))],
    )
    .await;

    // The new run of "p" must not hear of it.
    if let Some(item) = worker.try_next(Duration::from_millis(500)).await {
        if let Some(work_item::Request::OrchestratorRequest(request)) = item.request {
            let stray = request.new_events.iter().any(|event| {
                matches!(
                    event.event_type,
                    Some(EventType::SubOrchestrationInstanceCompleted(_))
                )
            });
            assert!(
                !stray,
                "the restarted '{}' got the old child's completion: {:?}",
                request.instance_id,
                kinds(&request.new_events)
            );
        }
    }
    backend.shutdown().await;
}
