//! The in-process client, as a worker that produces hostile results would use it: the
//! same limits and checks as over gRPC (oversized results fail the task, not the
//! backend; an invalid result is refused with INVALID_ARGUMENT; a stale token changes
//! nothing), a task hub name that is not one is refused, and a dropped stream hands its
//! work out again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_backend::{
    BackendOptions, EmbeddedBackend, InProcessClient, InProcessWorkItems, PAYLOAD_TOO_LARGE,
};
use durabletask_proto::history_event::EventType;
use durabletask_proto::work_item::Request as WorkRequest;
use durabletask_proto::*;
use tokio_stream::StreamExt;
use tonic::Code;

async fn next_item(stream: &mut InProcessWorkItems) -> WorkItem {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a work item within 10 s")
        .expect("the stream is open")
        .expect("not an error")
}

async fn next_orchestration(stream: &mut InProcessWorkItems) -> (OrchestratorRequest, String) {
    let item = next_item(stream).await;
    match item.request {
        Some(WorkRequest::OrchestratorRequest(request)) => (request, item.completion_token),
        other => panic!("expected an orchestration work item, got {other:?}"),
    }
}

fn response(id: &str, token: &str, actions: Vec<OrchestratorAction>) -> OrchestratorResponse {
    OrchestratorResponse {
        instance_id: id.into(),
        completion_token: token.into(),
        actions,
        ..Default::default()
    }
}

#[tokio::test]
async fn results_through_the_in_process_client_pass_the_same_limits_and_checks() {
    let db = TestDb::new();
    let backend = EmbeddedBackend::start(BackendOptions {
        max_payload_bytes: 1000,
        ..db.options()
    })
    .await
    .unwrap();
    let worker: InProcessClient = backend.in_process_client("").unwrap();
    assert_eq!(worker.hub(), "default");
    let mut client = common::client(&backend).await;
    let mut stream = worker.get_work_items(unlimited()).await.unwrap();
    let big = format!("\"{}\"", "x".repeat(1000));

    start(&mut client, "o", "orchestrator", None).await;
    let (_, token) = next_orchestration(&mut stream).await;
    // An action the engine cannot honour: refused, naming what is wrong.
    let status = worker
        .complete_orchestrator_task(response(
            "o",
            &token,
            vec![finish(0, OrchestrationStatus::Running, None)],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("does not end an orchestration"),
        "{status:?}"
    );
    // A token nobody handed out changes nothing.
    worker
        .complete_orchestrator_task(response("o", "forged", vec![schedule(0, "a", None)]))
        .await
        .unwrap();
    worker
        .complete_orchestrator_task(response("o", &token, vec![schedule(0, "a", None)]))
        .await
        .unwrap();
    let item = next_item(&mut stream).await;
    let Some(WorkRequest::ActivityRequest(activity)) = item.request else {
        panic!("expected the activity, got {:?}", item.request);
    };
    // An activity result over the limit: the orchestration sees the task fail.
    worker
        .complete_activity_task(ActivityResponse {
            instance_id: "o".into(),
            task_id: activity.task_id,
            result: Some(big.clone()),
            completion_token: item.completion_token,
            ..Default::default()
        })
        .await
        .unwrap();
    let (request, token) = next_orchestration(&mut stream).await;
    let failure = request
        .new_events
        .iter()
        .find_map(|event| match &event.event_type {
            Some(EventType::TaskFailed(failed)) => failed.failure_details.clone(),
            _ => None,
        })
        .expect("the activity failed");
    assert_eq!(failure.error_type, PAYLOAD_TOO_LARGE);
    // Its own output over the limit: it fails, and stays readable.
    worker
        .complete_orchestrator_task(response(
            "o",
            &token,
            vec![finish(1, OrchestrationStatus::Completed, Some(&big))],
        ))
        .await
        .unwrap();
    let done = wait_completion(&mut client, "o").await;
    assert_eq!(
        done.orchestration_status,
        OrchestrationStatus::Failed as i32
    );
    assert_eq!(done.failure_details.unwrap().error_type, PAYLOAD_TOO_LARGE);
    assert_eq!(done.output, None);
}

#[tokio::test]
async fn a_task_hub_name_that_is_not_one_is_refused() {
    let db = TestDb::new();
    let backend = db.start().await;
    let error = backend.in_process_client("my hub").unwrap_err().to_string();
    assert!(error.contains("task hub name"), "{error}");
    assert!(error.contains("' '"), "{error}");
    let error = backend
        .in_process_client(&"h".repeat(300))
        .unwrap_err()
        .to_string();
    assert!(error.contains("300 bytes"), "{error}");
}

#[tokio::test]
async fn a_dropped_stream_hands_its_work_out_again() {
    let db = TestDb::new();
    let backend = db.start().await;
    let worker = backend.in_process_client("default").unwrap();
    let mut client = common::client(&backend).await;
    let mut first = worker.get_work_items(unlimited()).await.unwrap();
    start(&mut client, "o", "orchestrator", None).await;
    let (_, stale) = next_orchestration(&mut first).await;
    // The worker dies with the item in hand.
    drop(first);
    let mut second = worker.get_work_items(unlimited()).await.unwrap();
    let (request, token) = next_orchestration(&mut second).await;
    assert_eq!(request.instance_id, "o");
    assert_ne!(token, stale);
    worker
        .complete_orchestrator_task(response(
            "o",
            &token,
            vec![finish(0, OrchestrationStatus::Completed, Some("1"))],
        ))
        .await
        .unwrap();
    let done = wait_completion(&mut client, "o").await;
    assert_eq!(done.output.as_deref(), Some("1"));
}
