//! # The `conformance_b` test plugin
//!
//! Orchestrators and activities for the conformance scenarios 13-23 and 72-79 of
//! `shared/spec/protocol.md` §8, written with the SDK the way a plugin author would. The
//! end-to-end tests in `tests/tests/conformance_b.rs` run them through the host against
//! the reference backend. Test-only.
//!
//! Executions are counted through log lines the host forwards: every line a test counts
//! carries a marker starting with `cb-` and the instance id. Orchestrators count their
//! executions with the replay-safe logger (or `is_replaying`), or every invocation with a
//! plain `tracing` line, as each scenario asks.
//!
//! The rewind scenarios need an activity that fails, gets "fixed", then succeeds: the
//! `flaky_*` activities fail their first `failures` calls per instance (counted in this
//! library, which the host keeps loaded) and succeed afterwards.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use durabletask_sdk::orchestration::{RetryPolicy, SubOrchestrationOptions, when_any};
use durabletask_sdk::{ActivityContext, Error, OrchestrationContext, TaskFailedError};
use serde::Deserialize;
use serde_json::json;

/// The message of every failure the always-failing activities raise.
const BOOM: &str = "Kah-BOOOOM!!!";

// ---------------------------------------------------------------------------------------
// 13. restart_with_new_instance_id

/// Activity: `"Hello, <name>!"`.
async fn say_hello(_ctx: ActivityContext, name: String) -> Result<String, Error> {
    Ok(format!("Hello, {name}!"))
}

/// Orchestrator: greets its input through [`say_hello`].
async fn hello_world(ctx: OrchestrationContext, name: String) -> Result<String, Error> {
    Ok(ctx.call_activity("say_hello", name).await?)
}

// ---------------------------------------------------------------------------------------
// 14. continue_as_new

/// What each [`collect_events`] instance recorded, by instance id (the orchestrator keeps
/// a list across its executions outside the orchestration, as the reference test does).
static RECORDED_EVENTS: Mutex<BTreeMap<String, Vec<i64>>> = Mutex::new(BTreeMap::new());

/// Orchestrator: awaits one `my_event`, records it (once, not on replay), and continues
/// as new with the largest value so far, saving unprocessed events, until 5 are recorded.
async fn collect_events(ctx: OrchestrationContext, _max_so_far: i64) -> Result<Vec<i64>, Error> {
    let value: i64 = ctx.wait_for_external_event("my_event").await?;
    let recorded = {
        let mut all = RECORDED_EVENTS.lock().unwrap_or_else(|e| e.into_inner());
        let mine = all.entry(ctx.instance_id()).or_default();
        if !ctx.is_replaying() {
            mine.push(value);
        }
        mine.clone()
    };
    if recorded.len() <= 4 {
        let max = recorded.iter().copied().max().unwrap_or_default();
        return ctx.continue_as_new_saving_events(max);
    }
    Ok(recorded)
}

// ---------------------------------------------------------------------------------------
// 15, 16. retry policies

/// Activity: always fails with [`BOOM`]; logs `cb-kah-boom` on every call.
async fn kah_boom(ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    tracing::info!(
        instance_id = ctx.instance_id(),
        task_id = ctx.task_id(),
        "cb-kah-boom call"
    );
    Err(Error::new("KahBoom", BOOM))
}

/// RetryPolicy(1 s, 3 attempts, coefficient 1, max 10 s, timeout 30 s) of scenario 15.
fn three_attempts() -> Result<RetryPolicy, Error> {
    Ok(RetryPolicy::new(Duration::from_secs(1), 3)?
        .with_backoff_coefficient(1.0)?
        .with_max_retry_interval(Duration::from_secs(10))
        .with_retry_timeout(Duration::from_secs(30)))
}

/// Orchestrator: calls [`retry_child`] with the scenario 15 policy.
async fn retry_parent(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    let options = SubOrchestrationOptions::new().retry_policy(three_attempts()?);
    ctx.call_sub_orchestrator_with::<_, ()>("retry_child", (), options)
        .await?;
    Ok(())
}

/// Orchestrator: logs `cb-retry-child run` once per execution (not on replay), then calls
/// [`kah_boom`] with the scenario 15 policy.
async fn retry_child(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.logger().info("cb-retry-child run");
    ctx.call_activity_with_retry::<_, ()>("kah_boom", (), &three_attempts()?)
        .await?;
    Ok(())
}

/// Orchestrator: calls [`kah_boom`] with RetryPolicy(1 s, 5 attempts, coefficient 2, max
/// 10 s, timeout 14 s) of scenario 16.
async fn retry_with_timeout(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    let policy = RetryPolicy::new(Duration::from_secs(1), 5)?
        .with_backoff_coefficient(2.0)?
        .with_max_retry_interval(Duration::from_secs(10))
        .with_retry_timeout(Duration::from_secs(14));
    ctx.call_activity_with_retry::<_, ()>("kah_boom", (), &policy)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 17. custom_status

/// Orchestrator: sets the custom status and returns nothing, awaiting nothing.
async fn custom_status_only(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.set_custom_status("foobaz");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 18. new_uuid

/// Activity: does nothing, returns null.
async fn noop(_ctx: ActivityContext, _input: serde_json::Value) -> Result<(), Error> {
    Ok(())
}

/// Orchestrator: two UUIDs, the [`noop`] activity (given the first UUID, so the history
/// shows what the first step made of it), a third UUID; returns the three.
async fn three_uuids(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    let first = ctx.new_uuid();
    let second = ctx.new_uuid();
    ctx.call_activity::<_, ()>("noop", &first).await?;
    let third = ctx.new_uuid();
    Ok(vec![first, second, third])
}

// ---------------------------------------------------------------------------------------
// 19, 22. when_any with the loser cancelled

/// A racer in [`approval_or_timeout`].
enum Approval {
    Event(Result<(), TaskFailedError>),
    TimedOut,
}

/// Orchestrator: races the event `Approval` against a 3 s timer; cancels the timer when
/// the event wins.
async fn approval_or_timeout(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let approval = ctx.wait_for_external_event::<()>("Approval");
    let timeout = ctx.create_timer_after(Duration::from_secs(3));
    let cancel_timeout = timeout.cancel_handle();
    let racers: Vec<Pin<Box<dyn Future<Output = Approval>>>> = vec![
        Box::pin(async move { Approval::Event(approval.await) }),
        Box::pin(async move {
            timeout.await;
            Approval::TimedOut
        }),
    ];
    match when_any(racers).await {
        (_, Approval::Event(result)) => {
            result?;
            cancel_timeout.cancel();
            Ok("approved".to_owned())
        }
        (_, Approval::TimedOut) => Ok("timed out".to_owned()),
    }
}

/// Orchestrator: waits for `Approve` and `Reject` at once; cancels the wait that lost.
async fn approve_or_reject(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let approve = ctx.wait_for_external_event::<serde_json::Value>("Approve");
    let reject = ctx.wait_for_external_event::<serde_json::Value>("Reject");
    let cancel_approve = approve.cancel_handle();
    let cancel_reject = reject.cancel_handle();
    let (winner, result) = when_any(vec![approve, reject]).await;
    result?;
    if winner == 0 {
        cancel_reject.cancel();
        Ok("approved".to_owned())
    } else {
        cancel_approve.cancel();
        Ok("rejected".to_owned())
    }
}

// ---------------------------------------------------------------------------------------
// 20, 21. send_event between orchestrations

/// Orchestrator: waits for `Approval` twice and returns both payloads in order.
async fn collect_two_approvals(
    ctx: OrchestrationContext,
    _input: (),
) -> Result<Vec<serde_json::Value>, Error> {
    let first = ctx
        .wait_for_external_event::<serde_json::Value>("Approval")
        .await?;
    let second = ctx
        .wait_for_external_event::<serde_json::Value>("Approval")
        .await?;
    Ok(vec![first, second])
}

/// Orchestrator: sends `Approval` to the instance named by its input, waits 50 ms on a
/// durable timer (so it is replayed after the send), returns `"sent"`.
async fn send_approval(ctx: OrchestrationContext, receiver: String) -> Result<String, Error> {
    ctx.send_event(
        &receiver,
        "Approval",
        json!({"approved": true, "approver": "Ada"}),
    )?;
    ctx.create_timer_after(Duration::from_millis(50)).await;
    Ok("sent".to_owned())
}

/// Orchestrator: logs `cb-receiver-invoked` on every invocation and completes at once.
async fn finish_at_once(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    tracing::info!(instance_id = %ctx.instance_id(), "cb-receiver-invoked");
    Ok("receiver done".to_owned())
}

/// Orchestrator: logs `cb-sender-invoked` on every invocation; sends `Approval` to the
/// (completed) instance named by its input, to `missing-instance` and to itself; returns
/// nothing.
async fn send_to_nowhere(ctx: OrchestrationContext, receiver: String) -> Result<(), Error> {
    tracing::info!(instance_id = %ctx.instance_id(), "cb-sender-invoked");
    ctx.send_event(&receiver, "Approval", "to the completed receiver")?;
    ctx.send_event("missing-instance", "Approval", "to nobody")?;
    ctx.send_event(&ctx.instance_id(), "Approval", "to myself")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 23. long timers

/// Orchestrator: logs `cb-long-timer step` on every invocation; waits on a 5 s timer.
async fn long_timer(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    tracing::info!(instance_id = %ctx.instance_id(), "cb-long-timer step");
    ctx.create_timer_after(Duration::from_secs(5)).await;
    Ok("done".to_owned())
}

// ---------------------------------------------------------------------------------------
// 72-79. rewind

/// Calls so far per instance and activity, for the `flaky_*` activities.
static FLAKY_CALLS: Mutex<BTreeMap<(String, String), u32>> = Mutex::new(BTreeMap::new());

/// An input of the `flaky_*` activities: what to work on, and how many calls (per
/// instance) fail before the activity is "fixed".
#[derive(Debug, Deserialize, serde::Serialize)]
struct Flaky {
    input: String,
    failures: u32,
}

/// Counts and logs the call (`cb-flaky-call <activity>`), and fails it while the
/// activity is not "fixed" yet.
fn flaky_call(ctx: &ActivityContext, failures: u32) -> Result<(), Error> {
    let call = {
        let mut calls = FLAKY_CALLS.lock().unwrap_or_else(|e| e.into_inner());
        let count = calls
            .entry((ctx.instance_id().to_owned(), ctx.name().to_owned()))
            .or_default();
        *count += 1;
        *count
    };
    tracing::info!(
        instance_id = ctx.instance_id(),
        call,
        "cb-flaky-call {}",
        ctx.name()
    );
    if call <= failures {
        return Err(Error::new(
            "SimulatedFailure",
            format!("Simulated failure (call {call})"),
        ));
    }
    Ok(())
}

/// Activity: `"Hello, <input>!"` once fixed.
async fn flaky_say_hello(ctx: ActivityContext, flaky: Flaky) -> Result<String, Error> {
    flaky_call(&ctx, flaky.failures)?;
    Ok(format!("Hello, {}!", flaky.input))
}

/// Activity: never fails; `"first:<input>"`.
async fn first_step(ctx: ActivityContext, input: String) -> Result<String, Error> {
    flaky_call(&ctx, 0)?;
    Ok(format!("first:{input}"))
}

/// Activity: `"second:<input>"` once fixed.
async fn flaky_second_step(ctx: ActivityContext, flaky: Flaky) -> Result<String, Error> {
    flaky_call(&ctx, flaky.failures)?;
    Ok(format!("second:{}", flaky.input))
}

/// Activity: `"child:<input>"` once fixed.
async fn flaky_child_step(ctx: ActivityContext, flaky: Flaky) -> Result<String, Error> {
    flaky_call(&ctx, flaky.failures)?;
    Ok(format!("child:{}", flaky.input))
}

/// Activity: `"ok"` once fixed.
async fn flaky_ok(ctx: ActivityContext, flaky: Flaky) -> Result<String, Error> {
    flaky_call(&ctx, flaky.failures)?;
    Ok("ok".to_owned())
}

/// Orchestrator: greets `input.input` through [`flaky_say_hello`].
async fn rewind_hello(ctx: OrchestrationContext, input: Flaky) -> Result<String, Error> {
    Ok(ctx.call_activity("flaky_say_hello", input).await?)
}

/// Orchestrator: [`first_step`], then [`flaky_second_step`] (failing once).
async fn rewind_two_steps(ctx: OrchestrationContext, input: String) -> Result<Vec<String>, Error> {
    let first: String = ctx.call_activity("first_step", &input).await?;
    let second: String = ctx
        .call_activity("flaky_second_step", Flaky { input, failures: 1 })
        .await?;
    Ok(vec![first, second])
}

/// The input of [`rewind_parent`].
#[derive(Debug, Deserialize)]
struct ParentInput {
    data: String,
    /// The child's instance id; the default one when absent.
    child_id: Option<String>,
}

/// Orchestrator: `"parent:<child's output>"` from [`rewind_child`].
async fn rewind_parent(ctx: OrchestrationContext, input: ParentInput) -> Result<String, Error> {
    let mut options = SubOrchestrationOptions::new();
    if let Some(child_id) = input.child_id {
        options = options.instance_id(child_id);
    }
    let child: String = ctx
        .call_sub_orchestrator_with("rewind_child", input.data, options)
        .await?;
    Ok(format!("parent:{child}"))
}

/// Orchestrator: [`flaky_child_step`] (failing once) on its input.
async fn rewind_child(ctx: OrchestrationContext, input: String) -> Result<String, Error> {
    Ok(ctx
        .call_activity("flaky_child_step", Flaky { input, failures: 1 })
        .await?)
}

/// Orchestrator: [`flaky_ok`] (failing once).
async fn rewind_ok(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    let input = Flaky {
        input: String::new(),
        failures: 1,
    };
    Ok(ctx.call_activity("flaky_ok", input).await?)
}

durabletask_sdk::export_plugin! {
    name: "conformance_b",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [
        hello_world,
        collect_events,
        retry_parent,
        retry_child,
        retry_with_timeout,
        custom_status_only,
        three_uuids,
        approval_or_timeout,
        approve_or_reject,
        collect_two_approvals,
        send_approval,
        finish_at_once,
        send_to_nowhere,
        long_timer,
        rewind_hello,
        rewind_two_steps,
        rewind_parent,
        rewind_child,
        rewind_ok,
    ],
    activities: [
        say_hello,
        kah_boom,
        noop,
        flaky_say_hello,
        first_step,
        flaky_second_step,
        flaky_child_step,
        flaky_ok,
    ],
}
