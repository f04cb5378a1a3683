//! Regression: `complete_activity` used to fall back to (instanceId, taskId) whenever the
//! token was not a live lease. Task ids restart with every execution, so the late result
//! of an activity from an *earlier* execution (continue-as-new, restart, replace) was
//! taken as the result of the new execution's task with the same id. Activity tokens now
//! name their execution, and the fallback only accepts the current one.

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
    complete(
        &mut client,
        "m",
        &token,
        vec![schedule(0, "probe", Some("\"old\""))],
    )
    .await;
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
    complete(
        &mut client,
        "m",
        &token,
        vec![schedule(0, "probe", Some("\"new\""))],
    )
    .await;
    let (new_activity, _new_token) = worker.next_activity().await;
    assert_eq!(new_activity.input.as_deref(), Some("\"new\""));

    // Now the old probe finishes.
    complete_activity(
        &mut client,
        &old_activity,
        &old_token,
        Some("\"old result\""),
    )
    .await;

    if let Some(item) = worker.try_next(Duration::from_millis(500)).await
        && let Some(work_item::Request::OrchestratorRequest(request)) = item.request
    {
        for event in &request.new_events {
            if let Some(EventType::TaskCompleted(done)) = &event.event_type {
                panic!(
                    "the new execution got the previous execution's result {:?} for task {}",
                    done.result, done.task_scheduled_id
                );
            }
        }
    }
    backend.shutdown().await;
}

/// The fallback still serves its purpose: a result for the current execution delivered
/// after its lease is gone (here: the worker's stream closed and the backend restarted)
/// is accepted, and the activity is not run again.
#[tokio::test]
async fn a_late_result_for_the_current_execution_is_accepted_after_a_restart() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "m", "monitor", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "m", &token, vec![schedule(0, "probe", None)]).await;
    let (activity, activity_token) = worker.next_activity().await;
    drop(worker);
    drop(client);
    backend.shutdown().await;

    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    complete_activity(&mut client, &activity, &activity_token, Some("\"late\"")).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "m");
    let completed = request.new_events.iter().any(|event| {
        matches!(&event.event_type, Some(EventType::TaskCompleted(done))
            if done.task_scheduled_id == 0 && done.result.as_deref() == Some("\"late\""))
    });
    assert!(completed, "{:?}", kinds(&request.new_events));
    assert!(
        worker.try_next(Duration::from_millis(300)).await.is_none(),
        "the activity was handed out again"
    );
    backend.shutdown().await;
}
