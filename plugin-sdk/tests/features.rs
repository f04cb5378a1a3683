//! The orchestration features of spec §4 against hand-built histories (and a tiny
//! simulated backend for multi-step flows), through the public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use common::*;
use durabletask_sdk::orchestration::{
    ActivityOptions, DEFAULT_VERSION_PROPERTY, RetryPolicy, SubOrchestrationOptions, when_all,
    when_any,
};
use durabletask_sdk::proto::{
    self, history_event::EventType, orchestrator_action::OrchestratorActionType,
    prost_types::value::Kind,
};
use durabletask_sdk::{Error, OrchestrationContext, Registry};
use serde_json::{Value, json};

// ---- orchestrators ----

async fn parent(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    Ok(ctx.call_sub_orchestrator("child", json!({"x": 1})).await?)
}

async fn parent_with_options(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let options = SubOrchestrationOptions::new()
        .instance_id("kid-1")
        .version("9.9");
    Ok(ctx.call_sub_orchestrator_with("child", 5, options).await?)
}

async fn parent_with_empty_version(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let options = SubOrchestrationOptions::new().version("");
    Ok(ctx.call_sub_orchestrator_with("child", (), options).await?)
}

async fn catch_child(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    match ctx.call_sub_orchestrator::<_, Value>("child", ()).await {
        Ok(v) => Ok(v),
        Err(e) => Ok(json!([
            e.message,
            e.details.error_type,
            e.details.message,
            e.task_id
        ])),
    }
}

async fn many_children(ctx: OrchestrationContext, n: i32) -> Result<Vec<Value>, Error> {
    let tasks = (0..n)
        .map(|i| ctx.call_sub_orchestrator::<_, Value>("child", i))
        .collect();
    Ok(when_all(tasks).await?)
}

fn policy(first: u64, attempts: u32) -> RetryPolicy {
    RetryPolicy::new(Duration::from_secs(first), attempts).unwrap()
}

async fn retry_activity(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    let options = ActivityOptions::new()
        .retry_policy(policy(1, 3))
        .tag("k", "v");
    Ok(ctx.call_activity_with("flaky", (), options).await?)
}

async fn retry_timeout(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    // The conformance test's policy: 1 s, 5 attempts, coefficient 2, max 10 s, 14 s.
    let policy = RetryPolicy::new(Duration::from_secs(1), 5)?
        .with_backoff_coefficient(2.0)?
        .with_max_retry_interval(Duration::from_secs(10))
        .with_retry_timeout(Duration::from_secs(14));
    Ok(ctx.call_activity_with_retry("flaky", "in", &policy).await?)
}

async fn retry_child(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let options = SubOrchestrationOptions::new()
        .version("2")
        .retry_policy(policy(1, 2));
    Ok(ctx.call_sub_orchestrator_with("child", 7, options).await?)
}

async fn long_timer(ctx: OrchestrationContext, days: u64) -> Result<String, Error> {
    ctx.create_timer_after(Duration::from_secs(days * 86_400))
        .await;
    Ok("done".into())
}

/// Test 19 of the spec: an event against a timer; the loser is cancelled.
async fn event_or_timeout(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    let approval = ctx.wait_for_external_event::<()>("Approval");
    let timeout = ctx.create_timer_after(Duration::from_secs(3));
    let (cancel_approval, cancel_timeout) = (approval.cancel_handle(), timeout.cancel_handle());
    let racers: Vec<Pin<Box<dyn Future<Output = bool>>>> = vec![
        Box::pin(async move { approval.await.is_ok() }),
        Box::pin(async move {
            timeout.await;
            false
        }),
    ];
    let (_, approved) = when_any(racers).await;
    if approved {
        cancel_timeout.cancel();
        // Keep going, so a later timerFired would have something to wake.
        let next: String = ctx.wait_for_external_event("Next").await?;
        return Ok(format!("approved, then {next}"));
    }
    cancel_approval.cancel();
    let late: String = ctx.wait_for_external_event("approval").await?;
    Ok(format!("timed out, then {late}"))
}

async fn cancel_at_once(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    let timer = ctx.create_timer_after(Duration::from_secs(60));
    timer.cancel();
    timer.await;
    Ok(ctx.call_activity("after", ()).await?)
}

async fn two_waiters(ctx: OrchestrationContext, _: ()) -> Result<Vec<String>, Error> {
    let first = ctx.wait_for_external_event::<String>("E");
    let second = ctx.wait_for_external_event::<String>("e");
    Ok(vec![second.await?, first.await?])
}

async fn cancelled_waiter(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let first = ctx.wait_for_external_event::<String>("E");
    let second = ctx.wait_for_external_event::<String>("E");
    first.cancel();
    let cancelled = first.await.unwrap_err();
    Ok(json!([second.await?, cancelled.details.error_type]))
}

async fn sender(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let refused = [
        ctx.send_event("", "x", ()),
        ctx.send_event("  ", "x", ()),
        ctx.send_event("@counter@k", "x", ()),
        ctx.send_event("other", " ", ()),
    ]
    .into_iter()
    .filter_map(|r| r.err().map(|e| e.details().error_type.clone()))
    .collect::<Vec<_>>();
    ctx.send_event("receiver", "Approval", json!({"approved": true}))?;
    ctx.create_timer_after(Duration::from_millis(50)).await;
    Ok(json!(refused))
}

/// Test 14 of the spec: one event per execution, then continue as new with the rest.
async fn can_events(ctx: OrchestrationContext, seen: Vec<i64>) -> Result<Vec<i64>, Error> {
    let value: i64 = ctx.wait_for_external_event("my_event").await?;
    let mut seen = seen;
    seen.push(value);
    if seen.len() < 5 {
        return ctx.continue_as_new_saving_events(seen);
    }
    Ok(seen)
}

async fn can_plain(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    drop(ctx.call_activity::<_, ()>("log", n));
    // A call after continue_as_new is still sent, before the completion.
    let result: Result<u32, Error> = ctx.continue_as_new(n + 1);
    drop(ctx.call_activity::<_, ()>("after", n));
    result
}

async fn retry_long(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    let policy = RetryPolicy::new(Duration::from_secs(10 * 86_400), 2)?;
    Ok(ctx.call_activity_with_retry("flaky", (), &policy).await?)
}

async fn long_or_stop(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    let stop = ctx.wait_for_external_event::<()>("stop");
    let timer = ctx.create_timer_after(Duration::from_secs(10 * 86_400));
    let cancel_timer = timer.cancel_handle();
    let racers: Vec<Pin<Box<dyn Future<Output = bool>>>> = vec![
        Box::pin(async move { stop.await.is_ok() }),
        Box::pin(async move {
            timer.await;
            false
        }),
    ];
    if when_any(racers).await.1 {
        cancel_timer.cancel();
        let after: String = ctx.wait_for_external_event("after").await?;
        return Ok(after);
    }
    Ok("fired".into())
}

struct Unserializable;

impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no"))
    }
}

async fn bad_continue(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ctx.continue_as_new(Unserializable)
}

async fn bad_send(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let refused = ctx.send_event("other", "x", Unserializable).unwrap_err();
    // The refused send took no id: the next call is still #1.
    Ok(json!([
        refused.details().error_type,
        ctx.call_activity::<_, ()>("after", ()).task_id()
    ]))
}

async fn fatal_child(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    let options = SubOrchestrationOptions::new().retry_policy(policy(1, 5));
    Ok(ctx.call_sub_orchestrator_with("child", (), options).await?)
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.orchestrator("parent", parent)
        .orchestrator("parent_with_options", parent_with_options)
        .orchestrator("parent_with_empty_version", parent_with_empty_version)
        .orchestrator("catch_child", catch_child)
        .orchestrator("many_children", many_children)
        .orchestrator("retry_activity", retry_activity)
        .orchestrator("retry_timeout", retry_timeout)
        .orchestrator("retry_child", retry_child)
        .orchestrator("long_timer", long_timer)
        .orchestrator("event_or_timeout", event_or_timeout)
        .orchestrator("cancel_at_once", cancel_at_once)
        .orchestrator("two_waiters", two_waiters)
        .orchestrator("cancelled_waiter", cancelled_waiter)
        .orchestrator("sender", sender)
        .orchestrator("can_events", can_events)
        .orchestrator("can_plain", can_plain)
        .orchestrator("retry_long", retry_long)
        .orchestrator("long_or_stop", long_or_stop)
        .orchestrator("bad_continue", bad_continue)
        .orchestrator("bad_send", bad_send)
        .orchestrator("fatal_child", fatal_child);
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

/// The one item of a list of (action id, item), which must have id `id`.
fn only<T: std::fmt::Debug>(items: Vec<(i32, T)>, id: i32) -> T {
    let [(actual, item)]: [(i32, T); 1] = items.try_into().unwrap();
    assert_eq!(actual, id, "{item:?}");
    item
}

// ---- sub-orchestrations (§4.3) ----

#[test]
fn sub_orchestration_is_started_with_the_default_id() {
    let response = run(vec![], start("parent", None));
    let child = only(children(&response), 1);
    assert_eq!(child.instance_id, "inst:0001");
    assert_eq!(child.name, "child");
    assert_eq!(child.version, None);
    assert_eq!(child.input.as_deref(), Some(r#"{"x":1}"#));
}

#[test]
fn sub_orchestration_options_set_id_and_version() {
    let response = run(vec![], start("parent_with_options", None));
    let child = only(children(&response), 1);
    assert_eq!(
        (child.instance_id.as_str(), child.version.as_deref()),
        ("kid-1", Some("9.9"))
    );
}

/// Runs the first step of `name` (started with `input` at version `own_version`) with the
/// default version property set to `default` (absent when `None`).
fn first_step_with_default_version(
    name: &str,
    input: Option<&str>,
    own_version: Option<&str>,
    default: Option<Kind>,
) -> proto::OrchestratorResponse {
    let mut started = execution_started(name, input);
    if let Some(EventType::ExecutionStarted(e)) = &mut started.event_type {
        e.version = own_version.map(Into::into);
    }
    let mut request = request(vec![], vec![orchestrator_started(1000), started]);
    if let Some(kind) = default {
        request.properties.insert(
            DEFAULT_VERSION_PROPERTY.to_owned(),
            proto::prost_types::Value { kind: Some(kind) },
        );
    }
    registry().run_orchestrator(&request)
}

fn string(s: &str) -> Option<Kind> {
    Some(Kind::StringValue(s.to_owned()))
}

/// The version of the one child the first step of `name` starts.
fn child_version(name: &str, own_version: Option<&str>, default: Option<Kind>) -> Option<String> {
    let response = first_step_with_default_version(name, None, own_version, default);
    only(children(&response), 1).version
}

#[test]
fn children_without_a_version_get_the_default_version() {
    // As checked against the reference: parent at 0.9, worker default 1.0 -> child 1.0.
    assert_eq!(
        child_version("parent", Some("0.9"), string("1.0")).as_deref(),
        Some("1.0")
    );
    assert_eq!(
        child_version("parent", None, string("1.0")).as_deref(),
        Some("1.0")
    );
    // An explicit empty version counts as none.
    assert_eq!(
        child_version("parent_with_empty_version", None, string("1.0")).as_deref(),
        Some("1.0")
    );
}

#[test]
fn an_explicit_child_version_beats_the_default_version() {
    assert_eq!(
        child_version("parent_with_options", None, string("1.0")).as_deref(),
        Some("9.9")
    );
}

#[test]
fn without_a_usable_default_version_children_get_none() {
    for default in [
        None,
        string(""),
        Some(Kind::NumberValue(1.0)),
        Some(Kind::NullValue(0)),
    ] {
        assert_eq!(child_version("parent", Some("0.9"), default.clone()), None);
        assert_eq!(
            child_version("parent_with_empty_version", None, default),
            None
        );
    }
}

#[test]
fn the_default_version_does_not_change_continue_as_new() {
    // The new execution keeps the orchestration's own version: no `newVersion` is sent.
    let response =
        first_step_with_default_version("can_plain", Some("1"), Some("0.9"), string("1.0"));
    let (_, c) = continued(&response);
    assert_eq!(c.new_version, None);
}

#[test]
fn default_child_ids_are_at_least_four_lowercase_hex_digits() {
    let response = run(vec![], start("many_children", Some("256")));
    let ids: Vec<String> = children(&response)
        .into_iter()
        .map(|(_, c)| c.instance_id)
        .collect();
    assert_eq!(ids[0], "inst:0001");
    assert_eq!(ids[9], "inst:000a");
    assert_eq!(ids[254], "inst:00ff");
    assert_eq!(ids[255], "inst:0100");
}

#[test]
fn sub_orchestration_completes_with_the_child_output() {
    let mut past = start("parent", None);
    past.push(sub_created(1, "child", "inst:0001"));
    let response = run(
        past,
        vec![orchestrator_started(1001), sub_completed(1, "[1,2]")],
    );
    let (id, c) = completion(&response).unwrap();
    assert_eq!((id, output(c)), (2, json!([1, 2])));
}

#[test]
fn sub_orchestration_failure_is_a_task_failed_error_with_the_child_details() {
    let mut past = start("catch_child", None);
    past.push(sub_created(1, "child", "inst:0001"));
    let response = run(past.clone(), vec![sub_failed(1, "ChildError", "boom")]);
    let (_, c) = completion(&response).unwrap();
    assert_eq!(
        output(c),
        json!([
            "Sub-orchestration task #1 failed: boom",
            "ChildError",
            "boom",
            1
        ])
    );

    // Propagated with `?`: TaskFailed, the child's failure inside.
    let mut past = start("parent", None);
    past.push(sub_created(1, "child", "inst:0001"));
    let details = failure(&run(past, vec![sub_failed(1, "ChildError", "boom")]));
    assert_eq!(details.error_type, "TaskFailed");
    assert_eq!(
        details.error_message,
        "Sub-orchestration task #1 failed: boom"
    );
    let inner = details.inner_failure.unwrap();
    assert_eq!(
        (inner.error_type.as_str(), inner.error_message.as_str()),
        ("ChildError", "boom")
    );
}

#[test]
fn sub_orchestration_history_mismatches_are_non_determinism() {
    // Another child name at the same id.
    let mut past = start("parent", None);
    past.push(sub_created(1, "other_child", "inst:0001"));
    let details = failure(&run(past, vec![orchestrator_started(1001)]));
    assert_eq!(details.error_type, "NonDeterminism");
    for side in [
        "call_sub_orchestrator('other_child')",
        "call_sub_orchestrator('child')",
    ] {
        assert!(
            details.error_message.contains(side),
            "{}",
            details.error_message
        );
    }
    // An activity in history where the code now starts a child.
    let mut past = start("parent", None);
    past.push(task_scheduled(1, "child"));
    let details = failure(&run(past, vec![orchestrator_started(1001)]));
    assert_eq!(details.error_type, "NonDeterminism");
    for side in ["call_activity('child')", "call_sub_orchestrator('child')"] {
        assert!(
            details.error_message.contains(side),
            "{}",
            details.error_message
        );
    }
    // A sub-orchestration result for an activity is ignored, not confused.
    let mut past = start("parent", None);
    past.push(sub_created(1, "child", "inst:0001"));
    let response = run(
        past,
        vec![
            task_completed(1, "\"wrong kind\""),
            sub_completed(1, "\"right\""),
        ],
    );
    assert_eq!(
        completion(&response).map(|(_, c)| output(c)),
        Some(json!("right"))
    );
}

// ---- retry policies (§4.8) ----

#[test]
fn activity_retries_reuse_the_original_id_and_fail_with_the_last_failure() {
    let (done, backend) = drive(
        &registry(),
        HashMap::new(),
        "retry_activity",
        None,
        |_, n| Err((format!("attempt {n}"), false)),
    );
    assert_eq!(
        proto::OrchestrationStatus::try_from(done.orchestration_status),
        Ok(proto::OrchestrationStatus::Failed)
    );
    let details = done.failure_details.unwrap();
    assert_eq!(
        details.error_message,
        "inst: Activity task #1 failed: attempt 3"
    );
    assert_eq!(details.inner_failure.unwrap().error_message, "attempt 3");
    // Three attempts, all as task 1, one second apart (coefficient 1).
    let calls: Vec<(i32, i64)> = backend
        .activity_calls
        .iter()
        .map(|(id, _, t)| (*id, *t))
        .collect();
    assert_eq!(calls, [(1, 1000), (1, 1001), (1, 1002)]);
    // Retry timers took ids 2 and 3; the completion 4.
    let ids: Vec<i32> = backend.actions.iter().map(|a| a.id).collect();
    assert_eq!(ids, [1, 2, 1, 3, 1, 4]);
    // Every attempt keeps the tags and the absent input.
    for action in &backend.actions {
        if let Some(OrchestratorActionType::ScheduleTask(t)) = &action.orchestrator_action_type {
            assert_eq!(t.input, None);
            assert_eq!(t.tags.get("k").map(String::as_str), Some("v"));
        }
    }
}

#[test]
fn a_retry_that_succeeds_completes_the_task() {
    let (done, backend) = drive(
        &registry(),
        HashMap::new(),
        "retry_activity",
        None,
        |_, n| {
            if n < 2 {
                Err(("transient".into(), false))
            } else {
                Ok("\"ok\"".into())
            }
        },
    );
    assert_eq!(output(&done), json!("ok"));
    assert_eq!(backend.activity_calls.len(), 2);
}

#[test]
fn non_retriable_failures_are_not_retried() {
    let (done, backend) = drive(
        &registry(),
        HashMap::new(),
        "retry_activity",
        None,
        |_, _| Err(("fatal".into(), true)),
    );
    assert_eq!(backend.activity_calls.len(), 1);
    assert_eq!(
        done.failure_details.unwrap().error_message,
        "inst: Activity task #1 failed: fatal"
    );
}

#[test]
fn retry_stops_when_the_next_delay_would_pass_the_timeout() {
    let (done, backend) = drive(
        &registry(),
        HashMap::new(),
        "retry_timeout",
        None,
        |_, _| Err(("Kah-BOOOOM!!!".into(), false)),
    );
    // Failures at t = 0, 1, 3, 7 s; the next delay (8 s) would end past 14 s.
    let times: Vec<i64> = backend.activity_calls.iter().map(|(_, _, t)| *t).collect();
    assert_eq!(times, [1000, 1001, 1003, 1007]);
    assert!(
        done.failure_details
            .unwrap()
            .error_message
            .ends_with("Activity task #1 failed: Kah-BOOOOM!!!")
    );
    // The original input is sent on every attempt.
    for action in &backend.actions {
        if let Some(OrchestratorActionType::ScheduleTask(t)) = &action.orchestrator_action_type {
            assert_eq!(t.input.as_deref(), Some("\"in\""));
        }
    }
}

#[test]
fn sub_orchestration_retry_keeps_the_child_id_and_version() {
    let mut past = start("retry_child", None);
    past.push(sub_created(1, "child", "inst:0001"));
    let new = vec![orchestrator_started(1001), sub_failed(1, "E", "first")];
    let response = run(past.clone(), new.clone());
    assert_eq!(timers(&response), [(2, 1002)]);
    assert!(children(&response).is_empty());

    past.extend(new);
    past.push(timer_created(2, 1002));
    let new = vec![orchestrator_started(1002), timer_fired(2, 1002)];
    let response = run(past.clone(), new.clone());
    let child = only(children(&response), 1);
    assert_eq!(child.instance_id, "inst:0001");
    assert_eq!(child.version.as_deref(), Some("2"));
    assert_eq!(child.input.as_deref(), Some("7"));

    past.extend(new);
    past.push(sub_created(1, "child", "inst:0001"));
    let details = failure(&run(
        past,
        vec![orchestrator_started(1003), sub_failed(1, "E", "second")],
    ));
    assert_eq!(
        details.error_message,
        "Sub-orchestration task #1 failed: second"
    );
}

// ---- durable timers (§4.2) ----

#[test]
fn long_timers_are_split_into_chunks_of_the_maximum_interval() {
    // Max 3 days, a 10-day timer from T: chunks at T+3d, +6d, +9d, +10d (ids 1-4).
    let day = 86_400;
    let (done, backend) = drive(
        &registry(),
        max_timer_interval(3.0 * day as f64),
        "long_timer",
        Some("10"),
        |_, _| unreachable!(),
    );
    assert_eq!(output(&done), json!("done"));
    let chunks: Vec<(i32, i64)> = backend
        .actions
        .iter()
        .filter_map(|a| match &a.orchestrator_action_type {
            Some(OrchestratorActionType::CreateTimer(t)) => {
                Some((a.id, t.fire_at.unwrap().seconds - 1000))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        chunks,
        [(1, 3 * day), (2, 6 * day), (3, 9 * day), (4, 10 * day)]
    );
    assert_eq!(backend.actions.last().map(|a| a.id), Some(5));
}

#[test]
fn timers_are_whole_without_the_property_or_when_short_enough() {
    for properties in [
        HashMap::new(),
        max_timer_interval(0.0),
        max_timer_interval(-5.0),
        max_timer_interval(86_400.0),
    ] {
        let (done, backend) = drive(
            &registry(),
            properties,
            "long_timer",
            Some("1"),
            |_, _| unreachable!(),
        );
        assert_eq!(output(&done), json!("done"));
        assert_eq!(backend.actions.len(), 2, "{:?}", backend.actions);
    }
}

#[test]
fn cancelled_timer_is_withdrawn_and_its_fired_event_ignored() {
    // The event wins within the same step: the timer is cancelled before it is sent.
    let mut new = start("event_or_timeout", None);
    new.push(event_raised("approval", "null"));
    let response = run(vec![], new);
    assert!(timers(&response).is_empty(), "{response:?}");

    // The timer was sent in an earlier step; the event wins later; the timer fires anyway.
    let mut past = start("event_or_timeout", None);
    past.push(timer_created(1, 1003));
    let response = run(
        past,
        vec![
            orchestrator_started(1001),
            event_raised("Approval", ""),
            orchestrator_started(1003),
            timer_fired(1, 1003),
            event_raised("next", "\"more\""),
        ],
    );
    let (id, c) = completion(&response).unwrap();
    assert_eq!((id, output(c)), (2, json!("approved, then more")));
}

#[test]
fn cancelled_event_wait_lets_the_next_waiter_have_the_event() {
    // The timer wins; the approval wait is cancelled, so a late approval goes to the
    // wait made after it.
    let mut past = start("event_or_timeout", None);
    past.push(timer_created(1, 1003));
    let response = run(
        past,
        vec![
            orchestrator_started(1003),
            timer_fired(1, 1003),
            event_raised("APPROVAL", "\"late\""),
        ],
    );
    assert_eq!(
        completion(&response).map(|(_, c)| output(c)),
        Some(json!("timed out, then late"))
    );

    let mut new = start("cancelled_waiter", None);
    new.push(event_raised("e", "\"one\""));
    let (_, c) = completion(&run(vec![], new))
        .map(|(i, c)| (i, c.clone()))
        .unwrap();
    assert_eq!(output(&c), json!(["one", "TaskCancelled"]));
}

#[test]
fn timer_cancelled_at_once_is_never_sent() {
    let response = run(vec![], start("cancel_at_once", None));
    assert!(timers(&response).is_empty());
    // The cancelled timer still used id 1.
    assert_eq!(scheduled(&response), [(2, "after".into(), Value::Null)]);
}

// ---- external events (§4.4) ----

#[test]
fn oldest_waiter_gets_the_first_event_whatever_the_case() {
    let mut new = start("two_waiters", None);
    new.extend([
        event_raised("e", "\"first\""),
        event_raised("E", "\"second\""),
    ]);
    let (_, c) = completion(&run(vec![], new))
        .map(|(i, c)| (i, c.clone()))
        .unwrap();
    assert_eq!(output(&c), json!(["second", "first"]));
}

// ---- send_event (§4.5) ----

#[test]
fn send_event_validates_before_taking_an_id() {
    let response = run(vec![], start("sender", None));
    let sent: Vec<(i32, proto::SendEventAction)> = kinds(&response)
        .into_iter()
        .filter_map(|(id, t)| match t {
            OrchestratorActionType::SendEvent(s) => Some((id, s.clone())),
            _ => None,
        })
        .collect();
    let action = only(sent, 1);
    assert_eq!(
        action.instance.map(|i| i.instance_id).as_deref(),
        Some("receiver")
    );
    assert_eq!(action.name, "Approval");
    assert_eq!(action.data.as_deref(), Some(r#"{"approved":true}"#));
    assert_eq!(timers(&response).first().map(|t| t.0), Some(2));
}

#[test]
fn event_sent_confirms_and_mismatches_are_non_determinism() {
    let mut past = start("sender", None);
    past.extend([
        event_sent(1, "receiver", "APPROVAL"),
        timer_created(2, 1000),
    ]);
    let response = run(past, vec![timer_fired(2, 1000)]);
    let (id, c) = completion(&response).unwrap();
    assert_eq!((id, output(c)), (3, json!(vec!["InvalidInput"; 4])));

    let mut past = start("sender", None);
    past.push(event_sent(1, "someone-else", "Approval"));
    let details = failure(&run(past, vec![orchestrator_started(1001)]));
    assert_eq!(details.error_type, "NonDeterminism");
    for side in ["someone-else", "receiver"] {
        assert!(
            details.error_message.contains(side),
            "{}",
            details.error_message
        );
    }
}

// ---- continue-as-new (§4.6) ----

fn continued(response: &proto::OrchestratorResponse) -> (i32, proto::CompleteOrchestrationAction) {
    let (id, c) = completion(response).unwrap_or_else(|| panic!("no completion: {response:?}"));
    assert_eq!(
        status(c),
        proto::OrchestrationStatus::ContinuedAsNew,
        "{c:?}"
    );
    (id, c.clone())
}

#[test]
fn continue_as_new_completes_last_with_the_new_input() {
    let response = run(vec![], start("can_plain", Some("1")));
    let (id, c) = continued(&response);
    assert_eq!((id, output(&c)), (3, json!(2)));
    assert!(c.carryover_events.is_empty());
    assert_eq!(
        scheduled(&response),
        [(1, "log".into(), json!(1)), (2, "after".into(), json!(1))]
    );
    assert_eq!(response.actions.last().map(|a| a.id), Some(3));
}

#[test]
fn continue_as_new_carries_unconsumed_events_over_in_order() {
    // The captured example: myevent, MYEVENT, unused; the first is consumed.
    let mut new = start("can_events", Some("[]"));
    new.extend([
        event_raised("my_event", "1"),
        event_raised("other", "\"x\""),
        event_raised("MY_EVENT", "2"),
        event(
            -1,
            EventType::EventRaised(proto::EventRaisedEvent {
                name: "Other".into(),
                input: None,
            }),
        ),
    ]);
    let (id, c) = continued(&run(vec![], new));
    assert_eq!((id, output(&c)), (1, json!([1])));
    let carried: Vec<(String, Option<String>)> = c
        .carryover_events
        .iter()
        .map(|e| match &e.event_type {
            Some(EventType::EventRaised(r)) => (r.name.clone(), r.input.clone()),
            other => panic!("not an event: {other:?}"),
        })
        .collect();
    assert_eq!(
        carried,
        // Names in first-appearance order, then oldest first; names case-folded.
        [
            ("other".to_owned(), Some("\"x\"".to_owned())),
            ("other".to_owned(), None),
            ("my_event".to_owned(), Some("2".to_owned())),
        ]
    );
    assert!(c.carryover_events.iter().all(|e| e.event_id == -1));
}

#[test]
fn continue_as_new_flow_of_five_events() {
    // Each execution consumes one event and carries the rest over (spec test 14).
    let mut input = "[]".to_owned();
    let mut pending: Vec<proto::HistoryEvent> = (1..=5)
        .map(|i| event_raised("my_event", &i.to_string()))
        .collect();
    for execution in 1..=5 {
        let mut new = start("can_events", Some(&input));
        new.append(&mut pending);
        let response = run(vec![], new);
        let (_, c) = completion(&response).unwrap();
        if execution == 5 {
            assert_eq!(status(c), proto::OrchestrationStatus::Completed);
            assert_eq!(output(c), json!([1, 2, 3, 4, 5]));
            return;
        }
        assert_eq!(status(c), proto::OrchestrationStatus::ContinuedAsNew);
        assert_eq!(c.carryover_events.len(), 5 - execution);
        input = c.result.clone().unwrap();
        pending = c.carryover_events.clone();
    }
}

// ---- rewind (§4.14) ----

async fn two_steps(ctx: OrchestrationContext, _: ()) -> Result<Vec<String>, Error> {
    let first: String = ctx.call_activity("first", "test").await?;
    let second: String = ctx.call_activity("second", "test").await?;
    Ok(vec![first, second])
}

fn rewound(parent_execution_id: Option<&str>) -> proto::HistoryEvent {
    event(
        -1,
        EventType::ExecutionRewound(proto::ExecutionRewoundEvent {
            reason: Some("retry after fix".into()),
            parent_execution_id: parent_execution_id.map(Into::into),
            ..Default::default()
        }),
    )
}

fn failed_two_steps(with_parent: bool) -> Vec<proto::HistoryEvent> {
    let mut started = execution_started("two_steps", None);
    if let Some(EventType::ExecutionStarted(e)) = &mut started.event_type {
        e.orchestration_instance.as_mut().unwrap().execution_id = Some("old".into());
        if with_parent {
            e.parent_instance = Some(proto::ParentInstanceInfo {
                orchestration_instance: Some(proto::OrchestrationInstance {
                    instance_id: "parent".into(),
                    execution_id: Some("old-parent".into()),
                }),
                ..Default::default()
            });
        }
    }
    vec![
        orchestrator_started(1000),
        started,
        task_scheduled(1, "first"),
        orchestrator_started(1001),
        task_completed(1, "\"first:test\""),
        task_scheduled(2, "second"),
        orchestrator_started(1002),
        task_failed(2, "E", "broken"),
        execution_completed(),
    ]
}

fn rewind_history(response: &proto::OrchestratorResponse) -> Vec<proto::HistoryEvent> {
    match response.actions.as_slice() {
        [
            proto::OrchestratorAction {
                id: -1,
                orchestrator_action_type: Some(OrchestratorActionType::RewindOrchestration(r)),
            },
        ] => r.new_history.clone(),
        other => panic!("expected one rewind action, got {other:?}"),
    }
}

fn rewind_registry() -> Registry {
    let mut r = registry();
    r.orchestrator("two_steps", two_steps);
    r
}

#[test]
fn rewind_drops_the_failures_and_starts_a_new_execution() {
    let request = request(
        failed_two_steps(false),
        vec![orchestrator_started(1003), rewound(None)],
    );
    let response = rewind_registry().run_orchestrator(&request);
    assert_eq!(response.custom_status, None);
    let history = rewind_history(&response);
    let shape: Vec<String> = history
        .iter()
        .map(|e| {
            let kind = format!("{:?}", e.event_type.as_ref().unwrap());
            format!("{}({})", &kind[..kind.find('(').unwrap()], e.event_id)
        })
        .collect();
    assert_eq!(
        shape,
        [
            "OrchestratorStarted(-1)",
            "ExecutionStarted(-1)",
            "TaskScheduled(1)",
            "OrchestratorStarted(-1)",
            "TaskCompleted(-1)",
            "OrchestratorStarted(-1)",
            "OrchestratorStarted(-1)",
            "ExecutionRewound(-1)",
        ]
    );
    let Some(EventType::ExecutionStarted(started)) = &history[1].event_type else {
        unreachable!()
    };
    let execution_id = started
        .orchestration_instance
        .as_ref()
        .unwrap()
        .execution_id
        .clone()
        .unwrap();
    assert_eq!(execution_id.len(), 32);
    assert!(execution_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(started.parent_instance.is_none());

    // The backend then replays the new history: the failed activity is called again,
    // under its original id.
    let response = rewind_registry()
        .run_orchestrator(&self::request(history, vec![orchestrator_started(1004)]));
    assert_eq!(scheduled(&response), [(2, "second".into(), json!("test"))]);
}

#[test]
fn rewind_sets_the_parent_execution_id_when_given() {
    let request = request(
        failed_two_steps(true),
        vec![orchestrator_started(1003), rewound(Some("new-parent"))],
    );
    let history = rewind_history(&rewind_registry().run_orchestrator(&request));
    let Some(EventType::ExecutionStarted(started)) = &history[1].event_type else {
        unreachable!()
    };
    let parent = started
        .parent_instance
        .as_ref()
        .unwrap()
        .orchestration_instance
        .as_ref()
        .unwrap();
    assert_eq!(parent.execution_id.as_deref(), Some("new-parent"));
    assert_eq!(parent.instance_id, "parent");
}

#[test]
fn rewind_keeps_children_and_drops_their_failures() {
    let mut past = start("parent", None);
    past.extend([
        sub_created(1, "child", "inst:0001"),
        sub_failed(1, "E", "child broke"),
        execution_completed(),
    ]);
    let history = rewind_history(&run(past, vec![orchestrator_started(1003), rewound(None)]));
    assert!(history.iter().any(|e| matches!(
        e.event_type,
        Some(EventType::SubOrchestrationInstanceCreated(_))
    )));
    assert!(!history.iter().any(|e| matches!(
        e.event_type,
        Some(EventType::SubOrchestrationInstanceFailed(_)) | Some(EventType::ExecutionCompleted(_))
    )));
}

#[test]
fn malformed_rewind_fails_with_id_minus_one() {
    let request = request(
        failed_two_steps(false),
        vec![
            orchestrator_started(1003),
            rewound(None),
            orchestrator_started(1004),
        ],
    );
    let response = rewind_registry().run_orchestrator(&request);
    let (id, c) = completion(&response).unwrap();
    assert_eq!(id, -1);
    assert_eq!(status(c), proto::OrchestrationStatus::Failed);
    assert_eq!(
        c.failure_details.as_ref().unwrap().error_type,
        "OrchestrationStateError"
    );
}

#[test]
fn rewind_without_a_completed_history_is_an_ordinary_step() {
    // Not completed: the rewound event is just ignored.
    let response = run(
        start("parent", None),
        vec![orchestrator_started(1001), rewound(None)],
    );
    assert_eq!(children(&response).len(), 1);
}

// ---- replay-safe logging ----

mod logging {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Collects the messages of replay-safe log lines.
    #[derive(Clone, Default)]
    pub struct Capture(pub Arc<Mutex<Vec<String>>>);

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if event.metadata().target() == "durabletask::orchestration" {
                let mut message = Message(String::new());
                event.record(&mut message);
                self.0.lock().unwrap().push(message.0);
            }
        }
    }

    pub fn captured(f: impl FnOnce()) -> Vec<String> {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        tracing::subscriber::with_default(subscriber, f);
        capture.0.lock().unwrap().clone()
    }
}

async fn chatty(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    let log = ctx.logger();
    log.info("before");
    ctx.call_activity::<_, ()>("work", ()).await?;
    log.warn(format_args!("after, replaying={}", ctx.is_replaying()));
    Ok(())
}

#[test]
fn replay_safe_logger_is_quiet_while_replaying() {
    let mut registry = registry();
    registry.orchestrator("chatty", chatty);
    let first = logging::captured(|| {
        registry.run_orchestrator(&request(vec![], start("chatty", None)));
    });
    assert_eq!(first, ["before"]);
    let mut past = start("chatty", None);
    past.push(task_scheduled(1, "work"));
    let second = logging::captured(|| {
        registry.run_orchestrator(&request(
            past,
            vec![orchestrator_started(1001), task_completed(1, "")],
        ));
    });
    assert_eq!(second, ["after, replaying=false"]);
}

// ---- combinations and edge cases ----

#[test]
fn retry_timers_are_chunked_and_keep_their_link_to_the_retry() {
    let day = 86_400;
    let (done, backend) = drive(
        &registry(),
        max_timer_interval(3.0 * day as f64),
        "retry_long",
        None,
        |_, n| Err((format!("attempt {n}"), false)),
    );
    let ids: Vec<i32> = backend.actions.iter().map(|a| a.id).collect();
    // Attempt 1, four chunks of the 10-day retry delay, attempt 2 (same id), completion.
    assert_eq!(ids, [1, 2, 3, 4, 5, 1, 6]);
    let times: Vec<i64> = backend.activity_calls.iter().map(|(_, _, t)| *t).collect();
    assert_eq!(times, [1000, 1000 + 10 * day]);
    assert!(
        done.failure_details
            .unwrap()
            .error_message
            .ends_with("attempt 2")
    );
}

#[test]
fn cancelling_a_chunked_timer_cancels_the_chunk_in_flight() {
    let day = 86_400;
    let mut past = start("long_or_stop", None);
    past.extend([
        timer_created(1, 1000 + 3 * day),
        orchestrator_started(1000 + 3 * day),
        timer_fired(1, 1000 + 3 * day),
        timer_created(2, 1000 + 6 * day),
    ]);
    let mut request = request(
        past,
        vec![
            orchestrator_started(2000 + 3 * day),
            event_raised("stop", ""),
            timer_fired(2, 1000 + 6 * day),
            event_raised("after", "\"done\""),
        ],
    );
    request.properties = max_timer_interval(3.0 * day as f64);
    let response = registry().run_orchestrator(&request);
    assert!(timers(&response).is_empty(), "{response:?}");
    let (id, c) = completion(&response).unwrap();
    assert_eq!((id, output(c)), (3, json!("done")));
}

#[test]
fn unserializable_continue_as_new_input_fails_the_orchestration() {
    let details = failure(&run(vec![], start("bad_continue", None)));
    assert_eq!(details.error_type, "OutputNotSerializable");
}

#[test]
fn unserializable_send_event_data_takes_no_id() {
    let response = run(vec![], start("bad_send", None));
    let (_, c) = completion(&response).unwrap();
    assert_eq!(output(c), json!(["InvalidInput", 1]));
}

#[test]
fn non_retriable_child_failures_are_not_retried() {
    let mut past = start("fatal_child", None);
    past.push(sub_created(1, "child", "inst:0001"));
    let failed = event(
        -1,
        EventType::SubOrchestrationInstanceFailed(proto::SubOrchestrationInstanceFailedEvent {
            task_scheduled_id: 1,
            failure_details: Some(proto::TaskFailureDetails {
                error_type: "VersionMismatch".into(),
                error_message: "too new".into(),
                is_non_retriable: true,
                ..Default::default()
            }),
        }),
    );
    let response = run(past, vec![failed]);
    assert!(timers(&response).is_empty());
    assert_eq!(
        failure(&response).error_message,
        "Sub-orchestration task #1 failed: too new"
    );
}

#[test]
fn terminate_after_continue_as_new_in_the_same_batch_changes_nothing() {
    let mut new = start("can_plain", Some("1"));
    new.push(terminated("\"stop\""));
    let (id, c) = continued(&run(vec![], new));
    assert_eq!((id, output(&c)), (3, json!(2)));
}

/// Spec test 15: a parent retries a child that retries an always-failing activity.
#[test]
fn retried_child_with_retried_activity() {
    async fn parent(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        let options = SubOrchestrationOptions::new().retry_policy(conformance_policy()?);
        Ok(ctx.call_sub_orchestrator_with("child", (), options).await?)
    }
    async fn child(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
        let policy = conformance_policy()?;
        Ok(ctx.call_activity_with_retry("boom", (), &policy).await?)
    }
    fn conformance_policy() -> Result<RetryPolicy, Error> {
        Ok(RetryPolicy::new(Duration::from_secs(1), 3)?
            .with_max_retry_interval(Duration::from_secs(10))
            .with_retry_timeout(Duration::from_secs(30)))
    }
    let mut registry = Registry::new();
    registry
        .orchestrator("parent", parent)
        .orchestrator("child", child);
    let mut activity_runs = 0;
    let mut executions = std::collections::BTreeMap::new();
    let (done, _) = drive_tree(
        &registry,
        "inst",
        "parent",
        None,
        1000,
        &mut |_| {
            activity_runs += 1;
            Err("Kah-BOOOOM!!!".into())
        },
        &mut executions,
    );
    let details = done.failure_details.unwrap();
    assert_eq!(details.error_type, "TaskFailed");
    assert!(
        details
            .error_message
            .starts_with("Sub-orchestration task #1 failed:"),
        "{}",
        details.error_message
    );
    assert!(
        details
            .error_message
            .ends_with("Activity task #1 failed: Kah-BOOOOM!!!"),
        "{}",
        details.error_message
    );
    assert_eq!(activity_runs, 9);
    assert_eq!(executions.get("child"), Some(&3));
}
