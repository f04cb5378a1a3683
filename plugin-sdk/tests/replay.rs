//! The replay engine against hand-built histories, through the public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use durabletask_sdk::orchestration::{when_all, when_any};
use durabletask_sdk::proto::{
    self, history_event::EventType, orchestrator_action::OrchestratorActionType,
};
use durabletask_sdk::{ActivityContext, Error, OrchestrationContext, Registry};
use serde_json::{Value, json};

mod common;
use common::*;

// ---- the orchestrators under test ----

async fn hello_cities(ctx: OrchestrationContext, _: ()) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        out.push(ctx.call_activity("say_hello", city).await?);
    }
    Ok(out)
}

async fn fan_out(ctx: OrchestrationContext, n: i32) -> Result<Vec<i32>, Error> {
    let tasks = (0..n)
        .map(|i| ctx.call_activity::<_, i32>("double", i))
        .collect();
    Ok(when_all(tasks).await?)
}

async fn join_all_fan_out(ctx: OrchestrationContext, n: i32) -> Result<Vec<i32>, Error> {
    let tasks: Vec<_> = (0..n)
        .map(|i| ctx.call_activity::<_, i32>("double", i))
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.map_err(Error::from))
        .collect()
}

async fn first_of_two(ctx: OrchestrationContext, _: ()) -> Result<usize, Error> {
    let a = ctx.call_activity::<_, i32>("a", ());
    let b = ctx.call_activity::<_, i32>("b", ());
    let (winner, _) = when_any(vec![a, b]).await;
    Ok(winner)
}

async fn catch_failure(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    match ctx.call_activity::<_, String>("boom", ()).await {
        Ok(v) => Ok(v),
        Err(e) => Ok(format!(
            "{}|{}|{}",
            e.details.message, e.details.error_type, e.message
        )),
    }
}

/// The line of `propagate_failure`'s `?`, which its failure's stack trace names.
const PROPAGATE_FAILURE_LINE: u32 = line!() + 3;

async fn propagate_failure(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    Ok(ctx.call_activity::<_, String>("boom", ()).await?)
}

async fn timer_then_activity(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    ctx.create_timer_after(Duration::from_secs(60)).await;
    Ok(ctx.call_activity::<_, String>("say_hello", "x").await?)
}

async fn clock(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let secs = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let (t0, r0) = (secs(ctx.current_utc_datetime()), ctx.is_replaying());
    ctx.call_activity::<_, ()>("noop", ()).await?;
    let (t1, r1) = (secs(ctx.current_utc_datetime()), ctx.is_replaying());
    Ok(json!([t0, r0, t1, r1]))
}

async fn with_status(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ctx.set_custom_status(json!({"step": 1}));
    ctx.call_activity::<_, ()>("noop", ()).await?;
    ctx.set_custom_status(json!({"step": 2}));
    ctx.call_activity::<_, ()>("noop", ()).await?;
    Ok(())
}

async fn wait_event(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    Ok(ctx.wait_for_external_event::<String>("Go").await?)
}

async fn needs_string(_: OrchestrationContext, s: String) -> Result<String, Error> {
    Ok(s)
}

async fn panics(_: OrchestrationContext, _: ()) -> Result<(), Error> {
    panic!("kaboom")
}

async fn awaits_pending(_: OrchestrationContext, _: ()) -> Result<(), Error> {
    futures::future::pending::<()>().await;
    Ok(())
}

async fn awaits_channel(_: OrchestrationContext, _: ()) -> Result<(), Error> {
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let _ = rx.await;
    drop(tx);
    Ok(())
}

async fn awaits_tokio_sleep(_: OrchestrationContext, _: ()) -> Result<(), Error> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

async fn uuids(ctx: OrchestrationContext, _: ()) -> Result<Vec<String>, Error> {
    Ok(vec![ctx.new_uuid(), ctx.new_uuid()])
}

async fn say_hello(_: ActivityContext, name: String) -> Result<String, Error> {
    Ok(format!("Hello {name}!"))
}

async fn fail_activity(_: ActivityContext, _: ()) -> Result<(), Error> {
    Err(Error::new("MyError", "Kah-BOOOOM!!!"))
}

async fn describe(ctx: ActivityContext, _: ()) -> Result<Value, Error> {
    Ok(json!([ctx.instance_id(), ctx.task_id(), ctx.name()]))
}

async fn nothing(_: ActivityContext, _: ()) -> Result<(), Error> {
    Ok(())
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.orchestrator("hello_cities", hello_cities)
        .orchestrator("fan_out", fan_out)
        .orchestrator("join_all_fan_out", join_all_fan_out)
        .orchestrator("first_of_two", first_of_two)
        .orchestrator("catch_failure", catch_failure)
        .orchestrator("propagate_failure", propagate_failure)
        .orchestrator("timer_then_activity", timer_then_activity)
        .orchestrator("clock", clock)
        .orchestrator("with_status", with_status)
        .orchestrator("wait_event", wait_event)
        .orchestrator("needs_string", needs_string)
        .orchestrator("panics", panics)
        .orchestrator("awaits_pending", awaits_pending)
        .orchestrator("awaits_channel", awaits_channel)
        .orchestrator("awaits_tokio_sleep", awaits_tokio_sleep)
        .orchestrator("uuids", uuids)
        .activity("say_hello", say_hello)
        .activity("fail", fail_activity)
        .activity("describe", describe)
        .activity("nothing", nothing);
    r
}

fn run(
    past: Vec<proto::HistoryEvent>,
    new: Vec<proto::HistoryEvent>,
) -> proto::OrchestratorResponse {
    registry().run_orchestrator(&request(past, new))
}

fn start(name: &str, input: Option<&str>) -> Vec<proto::HistoryEvent> {
    vec![orchestrator_started(1000), execution_started(name, input)]
}

// ---- tests ----

#[test]
fn registry_is_send_sync_and_lists_sorted_names() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Registry>();
    let r = registry();
    assert_eq!(
        r.activity_names(),
        ["describe", "fail", "nothing", "say_hello"]
    );
    assert!(r.orchestrator_names().windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn first_run_schedules_activity_1() {
    let response = run(vec![], start("hello_cities", None));
    assert_eq!(response.instance_id, "inst");
    assert!(response.completion_token.is_empty());
    assert_eq!(
        scheduled(&response),
        [(1, "say_hello".into(), json!("Tokyo"))]
    );
    assert!(completion(&response).is_none());
}

#[test]
fn replay_continues_to_id_2() {
    let mut past = start("hello_cities", None);
    past.push(task_scheduled(1, "say_hello"));
    let response = run(
        past,
        vec![
            orchestrator_started(1001),
            task_completed(1, "\"Hello Tokyo!\""),
        ],
    );
    assert_eq!(response.actions.len(), 1);
    assert_eq!(
        scheduled(&response),
        [(2, "say_hello".into(), json!("Seattle"))]
    );
}

#[test]
fn full_sequence_completes_with_id_4() {
    let mut past = start("hello_cities", Some(""));
    past.extend([
        task_scheduled(1, "say_hello"),
        orchestrator_started(1001),
        task_completed(1, "\"Hello Tokyo!\""),
        task_scheduled(2, "say_hello"),
        orchestrator_started(1002),
        task_completed(2, "\"Hello Seattle!\""),
        task_scheduled(3, "say_hello"),
    ]);
    let response = run(
        past,
        vec![
            orchestrator_started(1003),
            task_completed(3, "\"Hello London!\""),
        ],
    );
    assert_eq!(response.actions.len(), 1);
    let (id, c) = completion(&response).expect("completion");
    assert_eq!(id, 4);
    assert_eq!(status(c), proto::OrchestrationStatus::Completed);
    assert_eq!(
        output(c),
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
}

fn fan_out_history(name: &str, n: i32) -> proto::OrchestratorResponse {
    let mut past = start(name, Some(&n.to_string()));
    past.extend((1..=n).map(|id| task_scheduled(id, "double")));
    // Completions arrive in reverse order.
    let mut new = vec![orchestrator_started(1001)];
    new.extend(
        (1..=n)
            .rev()
            .map(|id| task_completed(id, &((id - 1) * 2).to_string())),
    );
    run(past, new)
}

#[test]
fn fan_out_results_come_back_in_input_order() {
    let first = run(vec![], start("fan_out", Some("3")));
    assert_eq!(
        scheduled(&first),
        [
            (1, "double".into(), json!(0)),
            (2, "double".into(), json!(1)),
            (3, "double".into(), json!(2))
        ]
    );
    let response = fan_out_history("fan_out", 3);
    let (id, c) = completion(&response).expect("completion");
    assert_eq!((id, output(c)), (4, json!([0, 2, 4])));
}

#[test]
fn large_fan_out_with_when_all_and_join_all() {
    for name in ["fan_out", "join_all_fan_out"] {
        let response = fan_out_history(name, 100);
        let (id, c) = completion(&response).expect("completion");
        assert_eq!(id, 101, "{name}");
        let expected: Vec<i32> = (0..100).map(|i| i * 2).collect();
        assert_eq!(output(c), json!(expected), "{name}");
    }
}

#[test]
fn when_all_waits_for_all_and_fails_with_the_first_failure_in_completion_order() {
    let mut past = start("fan_out", Some("3"));
    past.extend((1..=3).map(|id| task_scheduled(id, "double")));
    let mut new = vec![orchestrator_started(1001), task_failed(3, "E", "third")];
    let response = run(past.clone(), new.clone());
    assert!(completion(&response).is_none(), "{response:?}");
    new.extend([task_failed(2, "E", "second"), task_completed(1, "0")]);
    let details = failure(&run(past, new));
    assert_eq!(
        details.error_message,
        "inst: Activity task #3 failed: third"
    );
}

#[test]
fn when_all_of_nothing_completes_at_once() {
    let response = run(vec![], start("fan_out", Some("0")));
    let (id, c) = completion(&response).expect("completion");
    assert_eq!((id, output(c)), (1, json!([])));
}

#[test]
fn when_any_picks_the_first_completed_in_history_order() {
    let mut past = start("first_of_two", None);
    past.extend([task_scheduled(1, "a"), task_scheduled(2, "b")]);
    let response = run(
        past,
        vec![
            orchestrator_started(1001),
            task_completed(2, "1"),
            task_completed(1, "1"),
        ],
    );
    let (id, c) = completion(&response).expect("completion");
    assert_eq!((id, output(c)), (3, json!(1)));
}

#[test]
fn activity_failure_can_be_caught() {
    let mut past = start("catch_failure", None);
    past.push(task_scheduled(1, "boom"));
    let response = run(past, vec![task_failed(1, "MyError", "Kah-BOOOOM!!!")]);
    let (id, c) = completion(&response).expect("completion");
    assert_eq!(id, 2);
    assert_eq!(
        output(c),
        json!("Kah-BOOOOM!!!|MyError|inst: Activity task #1 failed: Kah-BOOOOM!!!")
    );
}

#[test]
fn activity_failure_propagated_fails_with_task_failed_and_inner() {
    let mut past = start("propagate_failure", None);
    past.push(task_scheduled(1, "boom"));
    let response = run(past, vec![task_failed(1, "MyError", "Kah-BOOOOM!!!")]);
    let details = failure(&response);
    assert_eq!(details.error_type, "TaskFailed");
    assert_eq!(
        details.error_message,
        "inst: Activity task #1 failed: Kah-BOOOOM!!!"
    );
    // The stack trace says where the orchestrator gave up: its `?`.
    let trace = details.stack_trace.clone().unwrap_or_default();
    let at = format!("at {}:{PROPAGATE_FAILURE_LINE}:", file!());
    assert!(trace.starts_with(&at), "{trace}");
    let inner = details.inner_failure.expect("inner failure");
    assert_eq!(
        (inner.error_type.as_str(), inner.error_message.as_str()),
        ("MyError", "Kah-BOOOOM!!!")
    );
}

#[test]
fn timer_instead_of_activity_is_non_determinism() {
    let mut past = start("timer_then_activity", None);
    past.push(task_scheduled(1, "say_hello"));
    let response = run(past, vec![orchestrator_started(1001)]);
    let details = failure(&response);
    assert_eq!(details.error_type, "NonDeterminism");
    assert!(
        details.error_message.contains("call_activity('say_hello')"),
        "{}",
        details.error_message
    );
    assert!(
        details.error_message.contains("create_timer"),
        "{}",
        details.error_message
    );
    // The mismatched action was consumed; the completion takes the next id.
    assert_eq!(response.actions.len(), 1);
    assert_eq!(completion(&response).map(|(id, _)| id), Some(2));
}

#[test]
fn wrong_activity_name_is_non_determinism() {
    let mut past = start("hello_cities", None);
    past.push(task_scheduled(1, "say_goodbye"));
    let response = run(past, vec![orchestrator_started(1001)]);
    let details = failure(&response);
    assert_eq!(details.error_type, "NonDeterminism");
    assert!(
        details.error_message.contains("say_goodbye"),
        "{}",
        details.error_message
    );
    assert!(
        details.error_message.contains("say_hello"),
        "{}",
        details.error_message
    );
}

#[test]
fn confirmation_without_action_is_non_determinism() {
    let mut past = start("hello_cities", None);
    past.push(task_scheduled(7, "say_hello"));
    let details = failure(&run(past, vec![orchestrator_started(1001)]));
    assert_eq!(details.error_type, "NonDeterminism");
    assert!(
        details.error_message.contains("id 7"),
        "{}",
        details.error_message
    );
}

#[test]
fn clock_and_is_replaying_follow_the_history() {
    let mut past = vec![orchestrator_started(100), execution_started("clock", None)];
    past.push(task_scheduled(1, "noop"));
    let response = run(past, vec![orchestrator_started(200), task_completed(1, "")]);
    let (_, c) = completion(&response).expect("completion");
    assert_eq!(output(c), json!([100, true, 200, false]));
}

#[test]
fn timer_fires() {
    let first = run(vec![], start("timer_then_activity", None));
    match kinds(&first).as_slice() {
        [(1, OrchestratorActionType::CreateTimer(t))] => {
            assert_eq!(t.fire_at.map(|f| f.seconds), Some(1060));
        }
        other => panic!("unexpected actions {other:?}"),
    }
    let mut past = start("timer_then_activity", None);
    past.push(timer_created(1, 1060));
    let response = run(past, vec![orchestrator_started(1060), timer_fired(1, 1060)]);
    assert_eq!(scheduled(&response), [(2, "say_hello".into(), json!("x"))]);
}

#[test]
fn terminate_completes_with_the_raw_output() {
    let response = run(vec![], {
        let mut new = start("hello_cities", None);
        new.push(terminated("{\"why\": \"x\"}"));
        new
    });
    // The activity scheduled before the termination is still sent (spec §3.6).
    assert_eq!(scheduled(&response).len(), 1);
    let (id, c) = completion(&response).expect("completion");
    assert_eq!(id, 2);
    assert_eq!(status(c), proto::OrchestrationStatus::Terminated);
    assert_eq!(c.result.as_deref(), Some("{\"why\": \"x\"}"));
}

#[test]
fn suspended_events_wait_for_resume() {
    let mut past = start("wait_event", None);
    past.extend([suspended(), event_raised("go", "\"v\"")]);
    // Still suspended: nothing happens.
    let response = run(past.clone(), vec![orchestrator_started(1001)]);
    assert!(response.actions.is_empty(), "{response:?}");
    // Resumed: the buffered event completes the orchestration.
    let response = run(past, vec![orchestrator_started(1002), resumed()]);
    let (id, c) = completion(&response).expect("completion");
    assert_eq!((id, output(c)), (1, json!("v")));
}

#[test]
fn stray_resume_is_ignored() {
    let mut new = start("wait_event", None);
    new.extend([resumed(), event_raised("GO", "\"w\"")]);
    let (_, c) = completion(&run(vec![], new))
        .map(|(i, c)| (i, c.clone()))
        .expect("completion");
    assert_eq!(output(&c), json!("w"));
}

#[test]
fn events_raised_before_waiting_are_buffered() {
    let mut new = vec![orchestrator_started(1), event_raised("Go", "\"early\"")];
    new.push(execution_started("wait_event", None));
    let response = run(vec![], new);
    assert_eq!(
        completion(&response).map(|(_, c)| output(c)),
        Some(json!("early"))
    );
}

#[test]
fn custom_status_is_in_every_response() {
    let first = run(vec![], start("with_status", None));
    assert_eq!(first.custom_status.as_deref(), Some("{\"step\":1}"));
    let mut past = start("with_status", None);
    past.push(task_scheduled(1, "noop"));
    let second = run(past.clone(), vec![orchestrator_started(1001)]);
    assert_eq!(second.custom_status.as_deref(), Some("{\"step\":1}"));
    let third = run(
        past,
        vec![orchestrator_started(1001), task_completed(1, "")],
    );
    assert_eq!(third.custom_status.as_deref(), Some("{\"step\":2}"));
}

#[test]
fn unknown_orchestrator_fails() {
    let details = failure(&run(vec![], start("nope", None)));
    assert_eq!(details.error_type, "OrchestratorNotRegistered");
    assert!(
        details.error_message.contains("'nope'"),
        "{}",
        details.error_message
    );
}

#[test]
fn invalid_input_fails_with_invalid_input() {
    for input in [Some("{not json"), None] {
        let details = failure(&run(vec![], start("needs_string", input)));
        assert_eq!(details.error_type, "InvalidInput");
        assert!(
            details.error_message.contains("needs_string"),
            "{}",
            details.error_message
        );
    }
}

#[test]
fn panic_fails_with_plugin_panic() {
    let details = failure(&run(vec![], start("panics", None)));
    assert_eq!(details.error_type, "PluginPanic");
    assert!(details.error_message.contains("kaboom"));
}

#[test]
fn non_durable_awaits_fail_instead_of_hanging() {
    for name in ["awaits_pending", "awaits_channel", "awaits_tokio_sleep"] {
        let details = failure(&run(vec![], start(name, None)));
        assert_eq!(
            details.error_type, "NonDurableAwait",
            "{name}: {}",
            details.error_message
        );
    }
}

#[test]
fn empty_new_events_fail() {
    let response = run(start("hello_cities", None), vec![]);
    let details = failure(&response);
    assert_eq!(details.error_type, "OrchestrationStateError");
}

#[test]
fn new_uuid_matches_the_reference_vectors() {
    let mut new = vec![orchestrator_started(1_704_067_200)];
    new.push(event(
        -1,
        EventType::ExecutionStarted(proto::ExecutionStartedEvent {
            name: "uuids".into(),
            ..Default::default()
        }),
    ));
    let response = registry().run_orchestrator(&proto::OrchestratorRequest {
        instance_id: "abc".into(),
        new_events: new,
        ..Default::default()
    });
    let (_, c) = completion(&response).expect("completion");
    assert_eq!(
        output(c),
        json!([
            "a5b06ea6-1041-5f2e-b65a-9b6fcffbff95",
            "e78ccc4a-b28e-5e92-b99f-3d91f1890396"
        ])
    );
}

#[test]
fn garbage_histories_never_panic() {
    let names = [
        "hello_cities",
        "fan_out",
        "timer_then_activity",
        "wait_event",
        "clock",
    ];
    let mut pieces = vec![
        event(-1, EventType::OrchestratorStarted(Default::default())),
        proto::HistoryEvent::default(),
        suspended(),
        resumed(),
        terminated(""),
        task_completed(1, "not json"),
        task_completed(-5, "1"),
        task_failed(2, "", ""),
        event(
            -1,
            EventType::TaskFailed(proto::TaskFailedEvent {
                task_scheduled_id: 1,
                failure_details: None,
            }),
        ),
        timer_fired(1, i64::MAX),
        timer_created(2, i64::MIN),
        task_scheduled(1, "say_hello"),
        task_scheduled(1, "say_hello"),
        event_raised("go", "{"),
        event(3, EventType::EventSent(Default::default())),
        event(-1, EventType::ContinueAsNew(Default::default())),
        event(-1, EventType::HistoryState(Default::default())),
        event(-1, EventType::ExecutionStarted(Default::default())),
    ];
    for name in names {
        pieces.push(execution_started(name, Some("3")));
    }
    // A deterministic pseudo-random walk over the pieces.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..500 {
        let mut past = Vec::new();
        let mut new = Vec::new();
        for _ in 0..12 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let piece = pieces[(seed % pieces.len() as u64) as usize].clone();
            if seed.is_multiple_of(3) {
                past.push(piece)
            } else {
                new.push(piece)
            }
        }
        let _ = run(past, new);
    }
}

// ---- activities ----

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn activity_request(name: &str, input: Option<&str>) -> proto::ActivityRequest {
    proto::ActivityRequest {
        name: name.into(),
        input: input.map(Into::into),
        orchestration_instance: Some(proto::OrchestrationInstance {
            instance_id: "inst".into(),
            execution_id: None,
        }),
        task_id: 7,
        ..Default::default()
    }
}

#[test]
fn activity_success() {
    let r = registry();
    let response = block_on(r.run_activity(activity_request("say_hello", Some("\"World\""))));
    assert_eq!(
        (response.instance_id.as_str(), response.task_id),
        ("inst", 7)
    );
    assert_eq!(response.result.as_deref(), Some("\"Hello World!\""));
    assert!(response.failure_details.is_none());
    assert!(response.completion_token.is_empty());

    let response = block_on(r.run_activity(activity_request("describe", None)));
    assert_eq!(
        serde_json::from_str::<Value>(response.result.as_deref().unwrap_or("null")).ok(),
        Some(json!(["inst", 7, "describe"]))
    );
    let response = block_on(r.run_activity(activity_request("nothing", Some(""))));
    assert_eq!((response.result, response.failure_details), (None, None));
}

#[test]
fn activity_failure_is_reported() {
    let response = block_on(registry().run_activity(activity_request("fail", None)));
    let details = response.failure_details.expect("failure");
    assert_eq!(
        (details.error_type.as_str(), details.error_message.as_str()),
        ("MyError", "Kah-BOOOOM!!!")
    );
    assert!(response.result.is_none());
}

#[test]
fn unknown_activity_is_reported() {
    let response = block_on(registry().run_activity(activity_request("nope", None)));
    let details = response.failure_details.expect("failure");
    assert_eq!(details.error_type, "ActivityNotRegistered");
    assert_eq!(
        details.error_message,
        "Activity 'nope' is not registered in this plugin"
    );
}

#[test]
fn activity_invalid_input_is_reported() {
    let response = block_on(registry().run_activity(activity_request("say_hello", Some("42"))));
    let details = response.failure_details.expect("failure");
    assert_eq!(details.error_type, "InvalidInput");
    assert!(
        details.error_message.contains("say_hello"),
        "{}",
        details.error_message
    );
}
