//! Regression: a sub-orchestration's link to its parent is (parent id, generation), but
//! every re-created instance (restart with the same id, reuse-policy replace, a
//! sub-orchestration re-created over a finished instance) used to start again at
//! generation 1, so a child of the old run reported to the new run. Every run now gets a
//! generation of its own, also across a purge and a backend restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::history_event::EventType;
use durabletask_proto::*;

#[tokio::test]
async fn a_restarted_parent_ignores_the_completion_of_the_old_runs_child() {
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
    if let Some(item) = worker.try_next(Duration::from_millis(500)).await
        && let Some(work_item::Request::OrchestratorRequest(request)) = item.request
    {
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
    backend.shutdown().await;
}

/// The old run's child must not reach a new run of the same id even when the old parent
/// was purged and the backend restarted in between (the generation counter is rebuilt
/// from the stored records).
#[tokio::test]
async fn a_parent_purged_and_recreated_after_a_restart_ignores_the_old_child() {
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
    drop(worker);
    drop(client);
    backend.shutdown().await;

    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let purged = client
        .purge_instances(PurgeInstancesRequest {
            request: Some(purge_instances_request::Request::InstanceId("p".into())),
            recursive: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.deleted_instance_count, 1);
    start(&mut client, "p", "parent", None).await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "p");
    complete(&mut client, "p", &token, vec![]).await;

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

    if let Some(item) = worker.try_next(Duration::from_millis(500)).await
        && let Some(work_item::Request::OrchestratorRequest(request)) = item.request
    {
        let stray = request.new_events.iter().any(|event| {
            matches!(
                event.event_type,
                Some(EventType::SubOrchestrationInstanceCompleted(_))
            )
        });
        assert!(
            !stray,
            "the re-created '{}' got the old child's completion: {:?}",
            request.instance_id,
            kinds(&request.new_events)
        );
    }
    backend.shutdown().await;
}
