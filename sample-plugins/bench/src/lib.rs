//! # The `bench` plugin: the benchmark workload
//!
//! Implements the workload contract that `python_worker_bench.py` (the peer benchmark)
//! schedules and verifies, so the host can be measured against Microsoft's Python worker
//! on exactly the same work:
//!
//! - activity `bench_inc(x) -> x + 1`;
//! - orchestrator `bench_seq_fan({"x", "k", "f"})`: `v = x`, then `k` times
//!   `v = bench_inc(v)` in sequence, then `bench_inc(v + j)` for `j in 0..f` in parallel;
//!   returns `{"seq": v, "fan_sum": <sum of the f results>}`, i.e.
//!   `seq = x + k` and `fan_sum = f*(x+k) + f*(f+1)/2`;
//! - orchestrator `bench_empty(x) -> x`, which schedules nothing (measures the per
//!   orchestration overhead).

use durabletask_sdk::orchestration::when_all;
use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
use serde::{Deserialize, Serialize};

/// The input of [`bench_seq_fan`].
#[derive(Debug, Deserialize)]
pub struct SeqFanInput {
    /// The starting value.
    pub x: i64,
    /// How many `bench_inc` calls run in sequence.
    pub k: u32,
    /// How many `bench_inc` calls run in parallel afterwards.
    pub f: u32,
}

/// The output of [`bench_seq_fan`].
#[derive(Debug, Serialize)]
pub struct SeqFanOutput {
    /// The value after the sequential part: `x + k`.
    pub seq: i64,
    /// The sum of the parallel results: `f*(x+k) + f*(f+1)/2`.
    pub fan_sum: i64,
}

/// Activity: `x + 1`.
pub async fn bench_inc(_ctx: ActivityContext, x: i64) -> Result<i64, Error> {
    x.checked_add(1)
        .ok_or_else(|| Error::new("Overflow", format!("{x} + 1 does not fit in an i64")))
}

/// Orchestrator: `k` sequential `bench_inc` calls, then `f` parallel ones.
pub async fn bench_seq_fan(
    ctx: OrchestrationContext,
    input: SeqFanInput,
) -> Result<SeqFanOutput, Error> {
    let mut v = input.x;
    for _ in 0..input.k {
        v = ctx.call_activity("bench_inc", v).await?;
    }
    let fan_out: Vec<_> = (0..i64::from(input.f))
        .map(|j| ctx.call_activity::<_, i64>("bench_inc", v + j))
        .collect();
    let results = when_all(fan_out).await?;
    Ok(SeqFanOutput {
        seq: v,
        fan_sum: results.into_iter().sum(),
    })
}

/// Orchestrator: returns its input unchanged, whatever JSON it is.
pub async fn bench_empty(
    _ctx: OrchestrationContext,
    x: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    Ok(x)
}

durabletask_sdk::export_plugin! {
    name: "bench",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [bench_seq_fan, bench_empty],
    activities: [bench_inc],
}
