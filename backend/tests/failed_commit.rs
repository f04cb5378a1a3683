//! Regression: when a batch cannot be committed (here: another connection holds the write
//! lock past the 5 s busy timeout; in production: disk full, I/O error), the engine used
//! to answer the batch's callers with an error but still answer the *waiters* and hand
//! out work from the uncommitted in-memory state, so a client could be told COMPLETED for
//! a state that a crash then lost. Now nothing of a failed batch is seen, and the engine
//! goes back to the last saved state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiter_is_not_told_of_a_completion_that_was_not_saved() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "x", "o", None).await;
    let (_, token) = worker.next_orchestration().await;

    // A waiter for the completion, registered before anything goes wrong.
    let mut waiter_client = client.clone();
    let waiter = tokio::spawn(async move {
        let mut request = tonic::Request::new(GetInstanceRequest {
            instance_id: "x".into(),
            get_inputs_and_outputs: true,
        });
        request.set_timeout(Duration::from_secs(30));
        waiter_client.wait_for_instance_completion(request).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Someone else holds the write lock (a backup, the sqlite3 shell, ...).
    let blocker = rusqlite::Connection::open(&db.path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let completed = client
        .complete_orchestrator_task(OrchestratorResponse {
            instance_id: "x".into(),
            actions: vec![finish(1, OrchestrationStatus::Completed, Some("\"done\""))],
            completion_token: token,
            ..Default::default()
        })
        .await;
    assert!(completed.is_err(), "the completion could not be saved");

    let told = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .ok()
        .map(|joined| joined.unwrap());
    // Crash now, then let the lock go and restart.
    drop(backend);
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let after = state(&mut client, "x").await.unwrap().orchestration_status;
    if let Some(Ok(response)) = told {
        let status = response
            .into_inner()
            .orchestration_state
            .unwrap()
            .orchestration_status;
        assert_eq!(
            status, after,
            "the waiter was told {status} but after the crash the instance is {after}"
        );
    }
    backend.shutdown().await;
}

/// After a failed save the engine goes on from the last saved state, like a restart: the
/// worker's stream ends, the work is redelivered on the next stream, and the instance
/// completes normally once the store can be written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_failed_save_the_engine_goes_on_from_the_last_saved_state() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "x", "o", None).await;
    let (_, token) = worker.next_orchestration().await;

    let blocker = rusqlite::Connection::open(&db.path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let completed = client
        .complete_orchestrator_task(OrchestratorResponse {
            instance_id: "x".into(),
            actions: vec![finish(1, OrchestrationStatus::Completed, Some("\"done\""))],
            completion_token: token,
            ..Default::default()
        })
        .await;
    assert!(completed.is_err(), "the completion could not be saved");
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);

    // The unsaved completion is gone from memory too.
    assert_eq!(
        state(&mut client, "x").await.unwrap().orchestration_status,
        OrchestrationStatus::Pending as i32
    );
    // The stream ended; a new one gets the work again.
    let ended = tokio::time::timeout(WAIT, worker.items.message())
        .await
        .unwrap();
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "x");
    complete(
        &mut client,
        "x",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some("\"done\""))],
    )
    .await;
    let done = wait_completion(&mut client, "x").await;
    assert_eq!(done.output.as_deref(), Some("\"done\""));
    backend.shutdown().await;
}
