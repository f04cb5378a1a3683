//! Review: `complete_activity` falls back to (instanceId, taskId) whenever the token is
//! not a live lease. Task ids restart with every execution, so the late result of an
//! activity from an *earlier* execution (continue-as-new, restart, replace) is taken as
//! the result of the new execution's task with the same id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::history_event::EventType;
use durabletask_proto::orchestrator_action::OrchestratorActionType as Action;
use durabletask_proto::*;

#[tokio::test]
async fn a_late_result_from_the_previous_execution_is_not_applied_to_the_new_one() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;

    start(&mut client, "m", "monitor", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "m", &token, vec![schedule(0, "probe", Some("\"old\""))]).await;
    let (old_activity, old_token) = worker.next_activity().await;
    assert_eq!(old_activity.input.as_deref(), Some("\"old\""));

    // The probe takes too long: the orchestration continues as new (a timeout fired).
    client
        .raise_event(RaiseEventRequest {
            instance_id: "m".into(),
            name: "timeout".into(),
            input: None,
        })
        .await
        .unwrap();
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "m",
        &token,
        vec![action(
            1,
            Action::CompleteOrchestration(CompleteOrchestrationAction {
                orchestration_status: OrchestrationStatus::ContinuedAsNew as i32,
                result: Some("2".into()),
                ..Default::default()
            }),
        )],
    )
    .await;
    // The new execution schedules its own probe, with the same task id 0.
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "m", &token, vec![schedule(0, "probe", Some("\"new\""))]).await;
    let (new_activity, _new_token) = worker.next_activity().await;
    assert_eq!(new_activity.input.as_deref(), Some("\"new\""));

    // Now the old probe finishes.
    complete_activity(&mut client, &old_activity, &old_token, Some("\"old result\"")).await;

    if let Some(item) = worker.try_next(Duration::from_millis(500)).await {
        if let Some(work_item::Request::OrchestratorRequest(request)) = item.request {
            for event in &request.new_events {
                if let Some(EventType::TaskCompleted(done)) = &event.event_type {
                    panic!(
                        "the new execution got the previous execution's result {:?} for task {}",
                        done.result, done.task_scheduled_id
                    );
                }
            }
        }
    }
    backend.shutdown().await;
}
