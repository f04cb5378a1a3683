//! Regression: recursive terminate used to follow the children index without a visited set. A child
//! that re-creates its finished parent's id as its own sub-orchestration makes a cycle
//! (a -> b -> a), and `terminate_instance` recurses until the engine thread's stack
//! overflows, which aborts the whole process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use durabletask_proto::*;

#[tokio::test]
async fn recursive_terminate_of_a_parent_child_cycle_does_not_crash() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;

    start(&mut client, "a", "parent", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "a", &token, vec![sub(0, "b", "child")]).await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "b");
    complete(&mut client, "b", &token, vec![]).await;

    // "a" is terminated alone; "b" keeps running.
    client
        .terminate_instance(TerminateRequest {
            instance_id: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "a",
        &token,
        vec![finish(1, OrchestrationStatus::Terminated, None)],
    )
    .await;

    // "b" starts a sub-orchestration that happens to be called "a" (finished: re-created).
    client
        .raise_event(RaiseEventRequest {
            instance_id: "b".into(),
            name: "go".into(),
            input: None,
        })
        .await
        .unwrap();
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "b");
    complete(&mut client, "b", &token, vec![sub(1, "a", "again")]).await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "a");
    complete(&mut client, "a", &token, vec![]).await;

    // Now a recursive terminate of "a": a -> b -> a -> b ...
    client
        .terminate_instance(TerminateRequest {
            instance_id: "a".into(),
            output: None,
            recursive: true,
        })
        .await
        .unwrap();
    assert!(state(&mut client, "b").await.is_some());
    backend.shutdown().await;
}
