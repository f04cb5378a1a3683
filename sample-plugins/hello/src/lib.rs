//! # The `hello` sample plugin
//!
//! A complete durabletask-host plugin in one file, to copy from. It shows the two things
//! every plugin is made of:
//!
//! - **activities**, plain `async fn`s that do the real work (call a service, write a
//!   file). They may run more than once if a worker dies mid-way, so they should be
//!   idempotent;
//! - **orchestrators**, `async fn`s that decide *which* activities run, in which order, and
//!   combine their results. An orchestrator is replayed from its history every time it
//!   makes progress, so it must be deterministic: no clocks, random numbers, I/O or
//!   non-durable `await`s — ask the [`OrchestrationContext`] instead.
//!
//! Build it with `cargo build -p hello-plugin`, copy `target/debug/libhello.so` into the
//! host's plugins directory, and start an orchestration:
//!
//! ```text
//! durabletask-host client --endpoint http://localhost:4001 start hello_cities --wait
//! ```

use durabletask_sdk::orchestration::when_all;
use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};

/// The cities [`hello_cities`] greets, in order.
const CITIES: [&str; 3] = ["Tokyo", "Seattle", "London"];

/// The largest `n` [`fan_out_fan_in`] accepts. Each activity call adds two events to the
/// orchestration's history, and backends cap history length (the reference backend at
/// 10,000 events), so unbounded fan-out is refused up front with a clear error.
pub const MAX_FAN_OUT: i64 = 1_000;

/// Activity: greets one city.
///
/// Log with `tracing` as usual: the host prints the event in its own log, tagged with
/// this plugin's name and version, and the event's fields stay fields (in JSON logs,
/// `"city":"Tokyo","letters":5`, numbers as numbers).
pub async fn say_hello(ctx: ActivityContext, city: String) -> Result<String, Error> {
    tracing::info!(
        instance_id = ctx.instance_id(),
        city = %city,
        letters = city.chars().count(),
        "saying hello"
    );
    Ok(format!("Hello {city}!"))
}

/// Orchestrator: greets Tokyo, Seattle and London one after the other and returns the
/// three greetings, `["Hello Tokyo!", "Hello Seattle!", "Hello London!"]`.
///
/// Each `call_activity(..).await` schedules the activity and waits for its result. The
/// first time through, the orchestrator stops at the first `await`; when the result
/// arrives the host replays it from the start, the completed call returns at once from
/// history, and the next call is scheduled.
pub async fn hello_cities(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
    let mut greetings = Vec::with_capacity(CITIES.len());
    for city in CITIES {
        // `?` on a failed activity fails the orchestration with errorType `TaskFailed`,
        // keeping the activity's own failure as the inner failure.
        let greeting: String = ctx.call_activity("say_hello", city).await?;
        greetings.push(greeting);
    }
    Ok(greetings)
}

/// Activity: squares a number, failing (instead of overflowing) when the square does not
/// fit in an `i64`.
pub async fn square(_ctx: ActivityContext, n: i64) -> Result<i64, Error> {
    n.checked_mul(n)
        .ok_or_else(|| Error::new("Overflow", format!("{n} squared does not fit in an i64")))
}

/// Orchestrator: computes `1² + 2² + … + n²` by calling [`square`] for every number at
/// once (fan-out) and adding the results when all have arrived (fan-in). For `n = 10` it
/// returns `385`.
///
/// All the activities are scheduled before the first `await`, so they run in parallel on
/// whatever workers are available.
pub async fn fan_out_fan_in(ctx: OrchestrationContext, n: i64) -> Result<i64, Error> {
    if !(0..=MAX_FAN_OUT).contains(&n) {
        return Err(Error::new(
            "InvalidInput",
            format!("n must be between 0 and {MAX_FAN_OUT}, got {n}"),
        ));
    }
    let squares: Vec<_> = (1..=n)
        .map(|i| ctx.call_activity::<_, i64>("square", i))
        .collect();
    let squares = when_all(squares).await?;
    // At most 1,000 squares of at most 1,000² each: far from overflowing.
    Ok(squares.into_iter().sum())
}

// The host discovers a plugin's functions through this one export; each name is the
// function's name, which is what clients pass to `start`.
durabletask_sdk::export_plugin! {
    name: "hello",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [hello_cities, fan_out_fan_in],
    activities: [say_hello, square],
}

#[cfg(test)]
mod tests {
    //! The orchestrations run whole, in process, with the SDK's test kit: the real
    //! replay engine and the real activities, no backend.
    #![allow(clippy::unwrap_used)]

    use durabletask_sdk::error_types;
    use durabletask_sdk::proto::OrchestrationStatus;
    use durabletask_sdk::testing::TestRuntime;

    use super::MAX_FAN_OUT;

    fn runtime() -> TestRuntime {
        // The functions and names `export_plugin!` gives the host.
        TestRuntime::new(durabletask_sdk::plugin_registry!())
    }

    #[test]
    fn hello_cities_greets_the_three_cities_in_order() {
        let mut runtime = runtime();
        let id = runtime.start("hello_cities", ()).unwrap();
        assert_eq!(
            runtime.output::<Vec<String>>(&id).unwrap(),
            ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        );
    }

    #[test]
    fn fan_out_fan_in_adds_the_squares() {
        let mut runtime = runtime();
        let id = runtime.start("fan_out_fan_in", 10).unwrap();
        assert_eq!(runtime.output::<i64>(&id).unwrap(), 385);
        let none = runtime.start("fan_out_fan_in", 0).unwrap();
        assert_eq!(runtime.output::<i64>(&none).unwrap(), 0);
    }

    #[test]
    fn fan_out_fan_in_refuses_too_many_activities_before_calling_any() {
        let mut runtime = runtime();
        let id = runtime.start("fan_out_fan_in", MAX_FAN_OUT + 1).unwrap();
        assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Failed));
        assert_eq!(
            runtime.failure(&id).unwrap().error_type,
            error_types::INVALID_INPUT
        );
        // Started and failed in one step: no activity was scheduled.
        assert_eq!(runtime.history(&id).unwrap().len(), 4);
    }

    #[test]
    fn a_failing_square_fails_the_orchestration_with_the_activitys_failure_inside() {
        let mut runtime = runtime();
        runtime.mock_activity("square", |n: i64| {
            if n == 3 {
                Err(durabletask_sdk::Error::new("Overflow", "pretend"))
            } else {
                Ok(n * n)
            }
        });
        let id = runtime.start("fan_out_fan_in", 5).unwrap();
        let failure = runtime.failure(&id).unwrap();
        assert_eq!(failure.error_type, error_types::TASK_FAILED);
        assert_eq!(failure.inner.unwrap().error_type, "Overflow");
    }
}
