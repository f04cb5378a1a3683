//! # The `conformance_a` test plugin
//!
//! The orchestrators and activities of the conformance scenarios 1-13 and 27-34 of
//! `shared/spec/protocol.md` §8, written with the SDK as a plugin author would. The
//! end-to-end tests in `tests/tests/conformance_a.rs` run them in the host against the
//! reference backend. Also [`large_history`], whose history passes the gRPC message
//! limit (`tests/tests/history_streaming.rs`). Test-only.
//!
//! Every function that a scenario counts logs one line per execution (see [`mark`]):
//! `conformance_a ran <what> [instance=<instance id>]`. Orchestrators that await log only
//! when not replaying, so each line is one real execution of that code.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use durabletask_sdk::orchestration::{ActivityOptions, when_all, when_any};
use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
use serde::Deserialize;
use serde_json::Value;

/// How many children [`sub_orchestration_fan_out`] starts.
const FAN_OUT_CHILDREN: usize = 10;

/// How many times [`activity_sequence`] calls [`plus_one`].
const SEQUENCE_STEPS: usize = 10;

/// How long [`wait_for_event_or_timeout`] waits for its event.
const APPROVAL_TIMEOUT: Duration = Duration::from_secs(3);

/// A boxed durable task of [`wait_for_event_or_timeout`]'s race.
type Racer = Pin<Box<dyn Future<Output = Result<&'static str, Error>>>>;

/// Logs the line the tests count: one per execution of `what` in `instance`.
fn mark(what: &str, instance: &str) {
    tracing::info!("conformance_a ran {what} [instance={instance}]");
}

// ---------------------------------------------------------------------------------------
// Activities
// ---------------------------------------------------------------------------------------

/// Activity: `n + 1` (scenario 2).
pub async fn plus_one(ctx: ActivityContext, n: i64) -> Result<i64, Error> {
    mark("plus_one", ctx.instance_id());
    n.checked_add(1)
        .ok_or_else(|| Error::new("Overflow", format!("{n} + 1 does not fit in an i64")))
}

/// Activity: always fails with `RuntimeError: Kah-BOOOOM!!!` (scenario 3).
pub async fn throw(ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    mark("throw", ctx.instance_id());
    Err(Error::new("RuntimeError", "Kah-BOOOOM!!!"))
}

/// Activity: a compensation step; does nothing but count itself (scenario 3).
pub async fn compensate(ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    mark("compensate", ctx.instance_id());
    Ok(())
}

/// Activity: counts itself (scenario 5: one line per activity execution of each child).
pub async fn increment(ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    mark("increment", ctx.instance_id());
    Ok(())
}

/// Activity: a string of `bytes` bytes ([`large_history`]).
pub async fn large_string(_ctx: ActivityContext, bytes: usize) -> Result<String, Error> {
    Ok("x".repeat(bytes))
}

/// Activity: `Hello, <name>!` (scenarios 4, 12, 13).
pub async fn say_hello(ctx: ActivityContext, name: String) -> Result<String, Error> {
    mark("say_hello", ctx.instance_id());
    Ok(format!("Hello, {name}!"))
}

// ---------------------------------------------------------------------------------------
// Orchestrators
// ---------------------------------------------------------------------------------------

/// Scenarios 1, 27 and 32: awaits nothing and returns nothing.
pub async fn empty_orchestrator(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    mark("empty_orchestrator", &ctx.instance_id());
    Ok(())
}

/// Scenarios 2 and 28: ten sequential [`plus_one`] calls, each tagged, starting from the
/// input. Returns every number seen: input 1 gives `[1, 2, …, 11]`.
pub async fn activity_sequence(ctx: OrchestrationContext, start: i64) -> Result<Vec<i64>, Error> {
    let mut numbers = vec![start];
    let mut current = start;
    for step in 1..=SEQUENCE_STEPS {
        let options = ActivityOptions::new()
            .tag("activity", "plus_one")
            .tag("step", step.to_string());
        current = ctx
            .call_activity_with::<_, i64>("plus_one", current, options)
            .await?;
        numbers.push(current);
    }
    Ok(numbers)
}

/// Scenario 3: catches [`throw`]'s failure, runs two compensations and returns the
/// activity's own error message.
pub async fn activity_error_handling(
    ctx: OrchestrationContext,
    _input: (),
) -> Result<String, Error> {
    match ctx.call_activity::<_, ()>("throw", ()).await {
        Ok(()) => Err(Error::new("Unexpected", "the throw activity succeeded")),
        Err(failure) => {
            ctx.call_activity::<_, ()>("compensate", ()).await?;
            ctx.call_activity::<_, ()>("compensate", ()).await?;
            Ok(failure.details.message)
        }
    }
}

/// Scenarios 4, 12, 13, 33 and 34: one activity call; returns `"Hello, World!"`.
pub async fn hello_world(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    if !ctx.is_replaying() {
        mark("hello_world", &ctx.instance_id());
    }
    Ok(ctx.call_activity("say_hello", "World").await?)
}

/// Scenario 5: starts ten [`fan_out_child`]ren with the input (the number of activities
/// each runs) and waits for them all.
pub async fn sub_orchestration_fan_out(
    ctx: OrchestrationContext,
    activities_per_child: u32,
) -> Result<(), Error> {
    let children = (0..FAN_OUT_CHILDREN)
        .map(|_| ctx.call_sub_orchestrator::<_, ()>("fan_out_child", activities_per_child))
        .collect();
    when_all(children).await?;
    Ok(())
}

/// Scenario 5: runs [`increment`] `count` times, one after the other.
pub async fn fan_out_child(ctx: OrchestrationContext, count: u32) -> Result<(), Error> {
    for _ in 0..count {
        ctx.call_activity::<_, ()>("increment", ()).await?;
    }
    Ok(())
}

/// Scenario 6: starts the child by its name, `"orchestrator_child"`, and returns its
/// output.
pub async fn sub_orchestrator_by_name(
    ctx: OrchestrationContext,
    _input: (),
) -> Result<String, Error> {
    Ok(ctx
        .call_sub_orchestrator("orchestrator_child", "by name")
        .await?)
}

/// Scenario 6: the child; awaits nothing, so each execution is one line.
pub async fn orchestrator_child(ctx: OrchestrationContext, input: String) -> Result<String, Error> {
    mark("orchestrator_child", &ctx.instance_id());
    Ok(format!("child got {input}"))
}

/// Scenarios 7 and 29: waits for events A, then B, then C; returns their data in that
/// order.
pub async fn wait_for_multiple_events(
    ctx: OrchestrationContext,
    _input: (),
) -> Result<Vec<Value>, Error> {
    let a: Value = ctx.wait_for_external_event("A").await?;
    let b: Value = ctx.wait_for_external_event("B").await?;
    let c: Value = ctx.wait_for_external_event("C").await?;
    Ok(vec![a, b, c])
}

/// Scenario 8: races the event `Approval` against a 3 s durable timer.
pub async fn wait_for_event_or_timeout(
    ctx: OrchestrationContext,
    _input: (),
) -> Result<String, Error> {
    let approval = ctx.wait_for_external_event::<Value>("Approval");
    let timeout = ctx.create_timer_after(APPROVAL_TIMEOUT);
    let racers: Vec<Racer> = vec![
        Box::pin(async move {
            approval.await?;
            Ok("approved")
        }),
        Box::pin(async move {
            timeout.await;
            Ok("timed out")
        }),
    ];
    let (_, outcome) = when_any(racers).await;
    Ok(outcome?.to_owned())
}

/// Scenarios 9, 10, 30 and 31: waits for the event `my_event` and returns its data.
pub async fn wait_for_event(ctx: OrchestrationContext, _input: ()) -> Result<Value, Error> {
    if !ctx.is_replaying() {
        mark("wait_for_event", &ctx.instance_id());
    }
    Ok(ctx.wait_for_external_event("my_event").await?)
}

/// Scenario 11: the root awaits a child ([`wait_for_event`]) that waits for an event
/// nobody raises.
pub async fn root_awaiting_child(ctx: OrchestrationContext, _input: ()) -> Result<Value, Error> {
    Ok(ctx.call_sub_orchestrator("wait_for_event", ()).await?)
}

/// The input of [`large_history`].
#[derive(Deserialize)]
pub struct LargeHistory {
    /// How many times to call [`large_string`].
    pub calls: u32,
    /// The length of each string.
    pub bytes: usize,
}

/// Calls [`large_string`] `calls` times in sequence, so that its history holds every
/// string; returns the sum of their lengths.
pub async fn large_history(ctx: OrchestrationContext, input: LargeHistory) -> Result<u64, Error> {
    let mut total = 0u64;
    for _ in 0..input.calls {
        let text: String = ctx.call_activity("large_string", input.bytes).await?;
        total += text.len() as u64;
    }
    Ok(total)
}

durabletask_sdk::export_plugin! {
    name: "conformance_a",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [
        empty_orchestrator,
        activity_sequence,
        activity_error_handling,
        hello_world,
        sub_orchestration_fan_out,
        fan_out_child,
        sub_orchestrator_by_name,
        orchestrator_child,
        wait_for_multiple_events,
        wait_for_event_or_timeout,
        wait_for_event,
        root_awaiting_child,
        large_history,
    ],
    activities: [plus_one, throw, compensate, increment, say_hello, large_string],
}
