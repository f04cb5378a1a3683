//! # The `faulty` test plugin
//!
//! Orchestrators and activities that fail in every way the end-to-end tests need to
//! watch the host and SDK cope with: returned errors, panics, unknown names, bad input,
//! non-durable awaits, slow activities for drain and restart tests, a wide fan-out of
//! sleeping activities for the concurrency test, and activities that never finish for the
//! activity timeout and per-plugin permits, and an orchestrator that exits the process
//! and an activity that aborts it, for the crash journal. Test-only.
//!
//! Built a second time with `cargo build -p faulty-plugin --profile panic-abort`, it is
//! also the `panic = "abort"` library the host must refuse to load.

use std::time::Duration;

use durabletask_sdk::orchestration::{
    ActivityOptions, RetryPolicy, SubOrchestrationOptions, when_all,
};
use durabletask_sdk::{ActivityContext, EntityInstanceId, Error, OrchestrationContext};
use serde::Deserialize;

/// Activity: always fails with errorType `CityNotFound`.
pub async fn fail_always(_ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    Err(Error::new("CityNotFound", "no such city: Atlantis"))
}

/// Orchestrator: lets [`fail_always`]'s failure propagate with `?`, so the orchestration
/// fails with errorType `TaskFailed` and the activity's failure as the inner failure.
pub async fn call_failing_activity(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("fail_always", ()).await?;
    Ok(())
}

/// Orchestrator: catches [`fail_always`]'s failure and completes with the activity's own
/// error message.
pub async fn catch_failing_activity(
    ctx: OrchestrationContext,
    _input: (),
) -> Result<String, Error> {
    match ctx.call_activity::<_, ()>("fail_always", ()).await {
        Ok(()) => Err(Error::message("fail_always unexpectedly succeeded")),
        Err(failure) => Ok(failure.details.message),
    }
}

/// Orchestrator: panics. The SDK must turn the panic into a `PluginPanic` failure and the
/// host must keep serving.
pub async fn panic_orchestrator(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    panic!("orchestrator exploded")
}

/// Activity: panics.
pub async fn panic_activity(_ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    panic!("activity exploded")
}

/// Orchestrator: calls [`panic_activity`] and propagates its `PluginPanic` failure.
pub async fn call_panicking_activity(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("panic_activity", ()).await?;
    Ok(())
}

/// Orchestrator: calls an activity no plugin registers; must fail with an
/// `ActivityNotRegistered` inner failure rather than hang.
pub async fn call_unknown_activity(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("no_such_activity", ()).await?;
    Ok(())
}

/// How long each [`slow_sequence`] step sleeps: long enough for a test to catch an
/// activity in flight, short enough to keep the suite fast.
const SLOW_STEP_MS: u64 = 300;

/// Activity: sleeps `ms` milliseconds on the plugin's own runtime (an async sleep: no
/// thread is held while it waits), then returns `ms`.
pub async fn sleep_ms(ctx: ActivityContext, ms: u64) -> Result<u64, Error> {
    // Tests wait for this line to know an activity is in flight.
    tracing::info!(
        instance_id = ctx.instance_id(),
        task_id = ctx.task_id(),
        "sleep_ms started"
    );
    tokio::time::sleep(Duration::from_millis(ms)).await;
    tracing::info!(
        instance_id = ctx.instance_id(),
        task_id = ctx.task_id(),
        "sleep_ms finished"
    );
    Ok(ms)
}

/// Orchestrator: calls [`sleep_ms`] `n` times in sequence, then returns `n`.
pub async fn slow_sequence(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    for _ in 0..n {
        ctx.call_activity::<_, u64>("sleep_ms", SLOW_STEP_MS)
            .await?;
    }
    Ok(n)
}

/// The input of [`fan_out_sleep`].
#[derive(Debug, Deserialize)]
pub struct FanOutSleep {
    /// How many activities to fan out.
    pub n: u32,
    /// How long each one sleeps, in milliseconds.
    pub ms: u64,
}

/// Orchestrator: schedules `n` [`sleep_ms`] calls of `ms` milliseconds at once, awaits
/// them all with `when_all`, then returns `n`.
pub async fn fan_out_sleep(ctx: OrchestrationContext, input: FanOutSleep) -> Result<u32, Error> {
    let calls: Vec<_> = (0..input.n)
        .map(|_| ctx.call_activity::<_, u64>("sleep_ms", input.ms))
        .collect();
    when_all(calls).await?;
    Ok(input.n)
}

/// Activity: never finishes. It awaits a future that never resolves, so it holds no thread
/// of the plugin's runtime: only the host's permits, until the host times it out.
pub async fn hang_forever(ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    // Tests wait for this line to know the activity holds its permit.
    tracing::info!(
        instance_id = ctx.instance_id(),
        task_id = ctx.task_id(),
        "hang_forever started"
    );
    std::future::pending::<()>().await;
    Ok(())
}

/// Orchestrator: calls [`hang_forever`] and lets its failure (an `ActivityTimeout`, when
/// the host has an activity timeout) propagate with `?`.
pub async fn call_hanging_activity(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("hang_forever", ()).await?;
    Ok(())
}

/// Orchestrator: calls [`hang_forever`] with a retry policy of `attempts` attempts 10 ms
/// apart, then lets the last failure propagate.
pub async fn call_hanging_activity_with_retries(
    ctx: OrchestrationContext,
    attempts: u32,
) -> Result<(), Error> {
    let policy = RetryPolicy::new(Duration::from_millis(10), attempts)?;
    ctx.call_activity_with::<_, ()>(
        "hang_forever",
        (),
        ActivityOptions::new().retry_policy(policy),
    )
    .await?;
    Ok(())
}

/// Orchestrator: calls [`hang_forever`] with a timeout of its own of `ms` milliseconds
/// (`ActivityOptions::timeout`) and lets its failure propagate.
pub async fn call_hanging_activity_with_timeout(
    ctx: OrchestrationContext,
    ms: u64,
) -> Result<(), Error> {
    let options = ActivityOptions::new().timeout(Duration::from_millis(ms));
    ctx.call_activity_with::<_, ()>("hang_forever", (), options)
        .await?;
    Ok(())
}

/// Orchestrator: schedules `n` [`hang_forever`] calls at once and awaits them all.
pub async fn fan_out_hang(ctx: OrchestrationContext, n: u32) -> Result<(), Error> {
    let calls: Vec<_> = (0..n)
        .map(|_| ctx.call_activity::<_, ()>("hang_forever", ()))
        .collect();
    when_all(calls).await?;
    Ok(())
}

/// The input of [`typed_input`].
#[derive(Debug, Deserialize)]
pub struct TypedInput {
    /// Any integer.
    pub a: i64,
}

/// Orchestrator: returns `input.a`. Started with input that is not `{"a": <integer>}`,
/// it must fail with errorType `InvalidInput`.
pub async fn typed_input(_ctx: OrchestrationContext, input: TypedInput) -> Result<i64, Error> {
    Ok(input.a)
}

/// Orchestrator: awaits a tokio timer, which is not a durable task. The SDK must fail the
/// orchestration with errorType `NonDurableAwait` instead of hanging forever.
pub async fn await_tokio_sleep(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

/// Orchestrator: waits on one durable timer of `seconds` seconds, then returns `seconds`.
/// With the host's `maximum_timer_interval` set shorter, the timer is created in chunks.
pub async fn wait_timer(ctx: OrchestrationContext, seconds: u64) -> Result<u64, Error> {
    ctx.create_timer_after(Duration::from_secs(seconds)).await;
    Ok(seconds)
}

// Interop with Microsoft's Python SDK worker (tests/python_worker.py): the `rust_` names
// are served here, the `py_` names by the Python worker.

/// Activity: `n * n`, called by the Python orchestrator `py_parent`.
pub async fn rust_square(_ctx: ActivityContext, n: i64) -> Result<i64, Error> {
    Ok(n * n)
}

/// Orchestrator: `x + 1`, run as a sub-orchestration of the Python orchestrator `py_parent`.
pub async fn rust_child(_ctx: OrchestrationContext, x: i64) -> Result<i64, Error> {
    Ok(x + 1)
}

/// Orchestrator: calls the Python activity `py_greet` with `name` and the Python
/// sub-orchestrator `py_child` with 21; returns `[greeting, 42]` (a tuple is a JSON array).
pub async fn calls_python(ctx: OrchestrationContext, name: String) -> Result<(String, i64), Error> {
    let greeting = ctx.call_activity::<_, String>("py_greet", &name).await?;
    let doubled = ctx.call_sub_orchestrator::<_, i64>("py_child", 21).await?;
    Ok((greeting, doubled))
}

/// Orchestrator: [`calls_python`] with a retry policy on both calls, for a backend where
/// this host, which sends no work-item filters, may be handed the Python worker's items
/// too: it fails those as not registered, and the retry gives the Python worker another
/// chance to take them.
pub async fn calls_python_retrying(
    ctx: OrchestrationContext,
    name: String,
) -> Result<(String, i64), Error> {
    let policy = RetryPolicy::new(Duration::from_millis(100), 20)?;
    let greeting = ctx
        .call_activity_with::<_, String>(
            "py_greet",
            &name,
            ActivityOptions::new().retry_policy(policy.clone()),
        )
        .await?;
    let doubled = ctx
        .call_sub_orchestrator_with::<_, i64>(
            "py_child",
            21,
            SubOrchestrationOptions::new().retry_policy(policy),
        )
        .await?;
    Ok((greeting, doubled))
}

/// A function entity: `add` (default 1) returns the new value, `get` the current one,
/// `fail` fails (and so changes nothing), anything else is an error.
fn counter(ctx: &mut durabletask_sdk::EntityContext, input: Option<i64>) -> Result<i64, Error> {
    let current = ctx.get_state::<i64>()?.unwrap_or(0);
    match ctx.operation() {
        "add" => {
            let next = current + input.unwrap_or(1);
            ctx.set_state(next)?;
            Ok(next)
        }
        "get" => Ok(current),
        "fail" => {
            ctx.set_state(current + 1_000)?;
            Err(Error::new("CounterRefused", "the counter refuses"))
        }
        other => Err(Error::new(
            "UnknownOperation",
            format!("counter has no operation '{other}'"),
        )),
    }
}

/// Calls `@counter@<key>`: add 5, add 3, a failing operation (caught), then get. Returns
/// `[after the adds, the failure's message, the final value]`.
async fn count_with_entity(
    ctx: OrchestrationContext,
    key: String,
) -> Result<(i64, String, i64), Error> {
    let id = EntityInstanceId::new("counter", key)?;
    ctx.call_entity::<_, i64>(&id, "add", 5).await?;
    let added = ctx.call_entity::<_, i64>(&id, "add", 3).await?;
    let refused = match ctx.call_entity::<_, i64>(&id, "fail", ()).await {
        Ok(value) => format!("unexpected success: {value}"),
        Err(failure) => failure.details.message,
    };
    let last = ctx.call_entity::<_, i64>(&id, "get", ()).await?;
    Ok((added, refused, last))
}

/// Calls an entity no plugin registers.
async fn call_unknown_entity(ctx: OrchestrationContext, _input: ()) -> Result<i64, Error> {
    Ok(ctx
        .call_entity::<_, i64>(&EntityInstanceId::new("nobody", "k")?, "get", ())
        .await?)
}

/// Orchestrator that breaks the rules: it blocks the thread it runs on for `ms`
/// milliseconds (the watchdog must name it while it does), then completes with `ms`.
pub async fn block_in_step(_ctx: OrchestrationContext, ms: u64) -> Result<u64, Error> {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(ms)
}

/// Orchestrator: ends the whole process with exit code 3 in its first step, as a plugin
/// that calls `std::process::exit` does. In process, the host dies with it; the crash
/// journal must end the crash loop (`PluginCrashed` after `[worker] max_crashes`).
pub async fn exit_process(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    std::process::exit(3)
}

/// Orchestrator: overflows the stack of the thread it runs on (unbounded recursion). The
/// Rust runtime reports it and aborts the process; in process, the host dies with it.
pub async fn overflow_stack(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    fn recurse(depth: u64) -> u64 {
        // A frame the optimiser cannot shrink, so each call really takes stack.
        let frame = std::hint::black_box([depth; 64]);
        if depth == u64::MAX {
            return frame[0];
        }
        recurse(depth + 1).wrapping_add(frame[1])
    }
    std::hint::black_box(recurse(0));
    Ok(())
}

/// Entity: any operation aborts the whole process (SIGABRT).
fn crasher(_ctx: &mut durabletask_sdk::EntityContext, _input: Option<i64>) -> Result<i64, Error> {
    std::process::abort()
}

/// Orchestrator: calls the [`crasher`] entity and propagates its failure with `?` (once
/// the host stops running its batch: `PluginCrashed`, inside `TaskFailed`).
pub async fn call_crashing_entity(ctx: OrchestrationContext, _input: ()) -> Result<i64, Error> {
    let id = EntityInstanceId::new("crasher", "k")?;
    Ok(ctx.call_entity::<_, i64>(&id, "crash", ()).await?)
}

/// Activity: aborts the whole process (SIGABRT) in its first poll.
pub async fn abort_process(_ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    std::process::abort()
}

/// Orchestrator: calls [`abort_process`] and propagates its failure with `?` (once the
/// host stops running it: `PluginCrashed`, inside `TaskFailed`).
pub async fn call_aborting_activity(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("abort_process", ()).await?;
    Ok(())
}

/// Activity: leaks memory until the process cannot allocate any more (64 MiB at a time,
/// each page written so it is really used). Under a memory limit its process dies of
/// it; nothing else should.
pub async fn leak_memory(_ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    let mut leaked: Vec<Vec<u8>> = Vec::new();
    loop {
        leaked.push(vec![1u8; 64 << 20]);
        std::hint::black_box(&leaked);
    }
}

/// Orchestrator: calls [`leak_memory`] and propagates its failure with `?`.
pub async fn call_leaking_activity(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("leak_memory", ()).await?;
    Ok(())
}

/// Activity that breaks the rules: it blocks its thread for `ms` milliseconds before its
/// first `.await` (the host's thread, in process), then returns `ms`.
pub async fn block_before_await(_ctx: ActivityContext, ms: u64) -> Result<u64, Error> {
    tracing::info!(ms, "block_before_await blocks");
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(ms)
}

/// Orchestrator: calls [`block_before_await`] with its input and returns its output.
pub async fn call_blocking_activity(ctx: OrchestrationContext, ms: u64) -> Result<u64, Error> {
    Ok(ctx.call_activity("block_before_await", ms).await?)
}

/// Activity: logs one event with a field of every kind `tracing` records (a string, a
/// `Display`, signed and unsigned integers, a float, a boolean, a list and a map through
/// `Debug`), for the tests of the host's structured logs. Returns nothing.
pub async fn log_fields(ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    let cities = vec!["Tokyo", "London"];
    let stock = std::collections::BTreeMap::from([("apples", 3), ("pears", 0)]);
    tracing::info!(
        instance_id = ctx.instance_id(),
        city = %"Seattle",
        count = 3_u64,
        delta = -2_i64,
        ratio = 0.5_f64,
        done = true,
        cities = ?cities,
        stock = ?stock,
        maybe = ?Some(7),
        "fields of every kind"
    );
    Ok(())
}

/// Orchestrator: calls [`log_fields`].
pub async fn call_log_fields(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("log_fields", ()).await?;
    Ok(())
}

durabletask_sdk::export_plugin! {
    name: "faulty",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [
        call_failing_activity,
        catch_failing_activity,
        panic_orchestrator,
        call_panicking_activity,
        call_unknown_activity,
        slow_sequence,
        typed_input,
        await_tokio_sleep,
        fan_out_sleep,
        call_hanging_activity,
        call_hanging_activity_with_retries,
        call_hanging_activity_with_timeout,
        fan_out_hang,
        wait_timer,
        rust_child,
        calls_python,
        calls_python_retrying,
        count_with_entity,
        call_unknown_entity,
        block_in_step,
        exit_process,
        call_aborting_activity,
        overflow_stack,
        call_crashing_entity,
        call_leaking_activity,
        call_blocking_activity,
        call_log_fields,
    ],
    activities: [
        log_fields,
        leak_memory,
        block_before_await,
        fail_always,
        panic_activity,
        sleep_ms,
        hang_forever,
        rust_square,
        abort_process,
    ],
    entities: [counter, crasher],
}
