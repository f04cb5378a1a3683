//! Replay cost by history length: replays histories of about 1k, 10k and 100k events
//! through `Registry::run_orchestrator` and prints the median time of each.
//!
//! ```sh
//! cargo run --release -p durabletask-sdk --example replay_bench
//! # Only some shapes or sizes, more runs each (the median is over the runs):
//! cargo run --release -p durabletask-sdk --example replay_bench -- fan-out --events 100000 --runs 101
//! ```
//!
//! Four history shapes, each as the reference backend records it:
//!
//! - `sequence`: N activity calls one after another. Each step is one orchestration
//!   episode, `orchestratorStarted, taskCompleted(i-1), taskScheduled(i),
//!   orchestratorCompleted`: four events per call.
//! - `fan-out`: N/2 activities scheduled at once, then all N/2 completions in one batch.
//! - `timers`: N/4 durable timers one after another, one episode each:
//!   `orchestratorStarted, timerFired(i-1), timerCreated(i), orchestratorCompleted`.
//! - `events`: N/3 external events awaited one after another, one episode each:
//!   `orchestratorStarted, eventRaised, orchestratorCompleted`.
//!
//! Everything but the last episode is `pastEvents` (replayed); the last batch is
//! `newEvents`, after which the orchestration completes. The target (issue 3) is linear
//! cost: 10k events in at most 10 ms, 100k in at most 100 ms.

use std::time::{Duration, Instant};

use durabletask_sdk::orchestration::when_all;
use durabletask_sdk::proto::{
    self, history_event::EventType, orchestrator_action::OrchestratorActionType, prost_types,
};
use durabletask_sdk::{ActivityContext, Error, OrchestrationContext, Registry};

/// Calls `inc` `n` times in sequence, feeding each result to the next call.
async fn sequence(ctx: OrchestrationContext, n: u32) -> Result<i64, Error> {
    let mut value = 0_i64;
    for _ in 0..n {
        value = ctx.call_activity("inc", value).await?;
    }
    Ok(value)
}

/// Calls `inc` `n` times at once and sums the results.
async fn fan_out(ctx: OrchestrationContext, n: u32) -> Result<i64, Error> {
    let calls: Vec<_> = (0..n)
        .map(|i| ctx.call_activity::<_, i64>("inc", i64::from(i)))
        .collect();
    Ok(when_all(calls).await?.into_iter().sum())
}

/// Waits on `n` one-second timers in sequence; returns how many fired.
async fn timers(ctx: OrchestrationContext, n: u32) -> Result<i64, Error> {
    for _ in 0..n {
        ctx.create_timer_after(Duration::from_secs(1)).await;
    }
    Ok(i64::from(n))
}

/// Waits for `n` `tick` events in sequence and sums their data.
async fn events(ctx: OrchestrationContext, n: u32) -> Result<i64, Error> {
    let mut sum = 0_i64;
    for _ in 0..n {
        sum += ctx.wait_for_external_event::<i64>("tick").await?;
    }
    Ok(sum)
}

async fn inc(_ctx: ActivityContext, x: i64) -> Result<i64, Error> {
    Ok(x + 1)
}

fn event(event_id: i32, kind: EventType, seconds: i64) -> proto::HistoryEvent {
    proto::HistoryEvent {
        event_id,
        timestamp: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        event_type: Some(kind),
    }
}

fn orchestrator_started(seconds: i64) -> proto::HistoryEvent {
    event(
        -1,
        EventType::OrchestratorStarted(Default::default()),
        seconds,
    )
}

fn orchestrator_completed(seconds: i64) -> proto::HistoryEvent {
    event(
        -1,
        EventType::OrchestratorCompleted(Default::default()),
        seconds,
    )
}

fn execution_started(name: &str, input: u32) -> proto::HistoryEvent {
    event(
        -1,
        EventType::ExecutionStarted(proto::ExecutionStartedEvent {
            name: name.to_owned(),
            input: Some(input.to_string()),
            orchestration_instance: Some(proto::OrchestrationInstance {
                instance_id: "bench".to_owned(),
                execution_id: None,
            }),
            ..Default::default()
        }),
        0,
    )
}

fn task_scheduled(id: i32, input: i64, seconds: i64) -> proto::HistoryEvent {
    event(
        id,
        EventType::TaskScheduled(proto::TaskScheduledEvent {
            name: "inc".to_owned(),
            input: Some(input.to_string()),
            ..Default::default()
        }),
        seconds,
    )
}

fn task_completed(id: i32, result: i64, seconds: i64) -> proto::HistoryEvent {
    event(
        -1,
        EventType::TaskCompleted(proto::TaskCompletedEvent {
            task_scheduled_id: id,
            result: Some(result.to_string()),
        }),
        seconds,
    )
}

fn timestamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn timer_created(id: i32, fire_at: i64) -> proto::HistoryEvent {
    event(
        id,
        EventType::TimerCreated(proto::TimerCreatedEvent {
            fire_at: Some(timestamp(fire_at)),
        }),
        fire_at - 1,
    )
}

fn timer_fired(id: i32, fire_at: i64) -> proto::HistoryEvent {
    event(
        -1,
        EventType::TimerFired(proto::TimerFiredEvent {
            fire_at: Some(timestamp(fire_at)),
            timer_id: id,
        }),
        fire_at,
    )
}

fn event_raised(data: i64, seconds: i64) -> proto::HistoryEvent {
    event(
        -1,
        EventType::EventRaised(proto::EventRaisedEvent {
            name: "tick".to_owned(),
            input: Some(data.to_string()),
        }),
        seconds,
    )
}

fn request(
    past_events: Vec<proto::HistoryEvent>,
    new_events: Vec<proto::HistoryEvent>,
) -> proto::OrchestratorRequest {
    proto::OrchestratorRequest {
        instance_id: "bench".to_owned(),
        past_events,
        new_events,
        ..Default::default()
    }
}

/// `calls` sequential activity calls: about `4 * calls` events.
fn sequence_history(calls: u32) -> (proto::OrchestratorRequest, i64) {
    let mut past = vec![
        orchestrator_started(0),
        execution_started("sequence", calls),
    ];
    let mut clock = 0;
    for id in 1..=i32::try_from(calls).unwrap_or(i32::MAX) {
        let value = i64::from(id) - 1;
        if id > 1 {
            clock += 1;
            past.push(orchestrator_started(clock));
            past.push(task_completed(id - 1, value, clock));
        }
        past.push(task_scheduled(id, value, clock));
        past.push(orchestrator_completed(clock));
    }
    let last = i32::try_from(calls).unwrap_or(i32::MAX);
    let new = vec![
        orchestrator_started(clock + 1),
        task_completed(last, i64::from(last), clock + 1),
    ];
    (request(past, new), i64::from(calls))
}

/// `calls` activities at once, then all their completions: about `2 * calls` events.
fn fan_out_history(calls: u32) -> (proto::OrchestratorRequest, i64) {
    let mut past = vec![orchestrator_started(0), execution_started("fan_out", calls)];
    let ids = 1..=i32::try_from(calls).unwrap_or(i32::MAX);
    past.extend(
        ids.clone()
            .map(|id| task_scheduled(id, i64::from(id) - 1, 0)),
    );
    past.push(orchestrator_completed(0));
    let mut new = vec![orchestrator_started(1)];
    new.extend(ids.map(|id| task_completed(id, i64::from(id), 1)));
    let expected = (1..=i64::from(calls)).sum();
    (request(past, new), expected)
}

/// `count` one-second timers in sequence: about `4 * count` events. Timer `i` is created
/// at second `i - 1` and fires at second `i`.
fn timers_history(count: u32) -> (proto::OrchestratorRequest, i64) {
    let mut past = vec![orchestrator_started(0), execution_started("timers", count)];
    let last = i32::try_from(count).unwrap_or(i32::MAX);
    for id in 1..=last {
        let now = i64::from(id) - 1;
        if id > 1 {
            past.push(orchestrator_started(now));
            past.push(timer_fired(id - 1, now));
        }
        past.push(timer_created(id, now + 1));
        past.push(orchestrator_completed(now));
    }
    let now = i64::from(last);
    let new = vec![orchestrator_started(now), timer_fired(last, now)];
    (request(past, new), i64::from(count))
}

/// `count` external events awaited in sequence, one per episode: about `3 * count` events.
fn events_history(count: u32) -> (proto::OrchestratorRequest, i64) {
    let mut past = vec![
        orchestrator_started(0),
        execution_started("events", count),
        orchestrator_completed(0),
    ];
    for i in 1..i64::from(count) {
        past.push(orchestrator_started(i));
        past.push(event_raised(i, i));
        past.push(orchestrator_completed(i));
    }
    let last = i64::from(count);
    let new = vec![orchestrator_started(last), event_raised(last, last)];
    (request(past, new), (1..=last).sum())
}

/// Checks that the step completed the orchestration with `expected`.
fn check(response: &proto::OrchestratorResponse, expected: i64) -> Result<(), String> {
    let completion =
        response
            .actions
            .iter()
            .find_map(|action| match &action.orchestrator_action_type {
                Some(OrchestratorActionType::CompleteOrchestration(done)) => Some(done),
                _ => None,
            });
    match completion {
        Some(done)
            if done.orchestration_status == proto::OrchestrationStatus::Completed as i32
                && done.result.as_deref() == Some(expected.to_string().as_str()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "the replay did not complete with {expected}: {:?}",
            response.actions.iter().take(3).collect::<Vec<_>>()
        )),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Builds a history of about `events_per_call * calls` events, and the output it must
/// complete with.
type Build = fn(u32) -> (proto::OrchestratorRequest, i64);

struct Case {
    shape: &'static str,
    target_events: usize,
    build: Build,
    events_per_call: usize,
}

/// What to run: `[SHAPE...] [--events N[,N...]] [--runs N]`.
struct Args {
    shapes: Vec<String>,
    sizes: Vec<usize>,
    runs: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        shapes: Vec::new(),
        sizes: Vec::new(),
        runs: None,
    };
    let mut words = std::env::args().skip(1);
    let number = |text: Option<String>, what: &str| -> Result<usize, String> {
        text.as_deref()
            .and_then(|t| t.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{what} takes a positive number"))
    };
    while let Some(word) = words.next() {
        match word.as_str() {
            "--runs" => args.runs = Some(number(words.next(), "--runs")?),
            "--events" => {
                let list = words.next().unwrap_or_default();
                for size in list.split(',') {
                    args.sizes.push(number(Some(size.to_owned()), "--events")?);
                }
            }
            "-h" | "--help" => {
                return Err("usage: replay_bench [sequence|fan-out|timers|events...] \
                     [--events N[,N...]] [--runs N]"
                    .to_owned());
            }
            shape => args.shapes.push(shape.to_owned()),
        }
    }
    Ok(args)
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let mut registry = Registry::new();
    registry
        .orchestrator("sequence", sequence)
        .orchestrator("fan_out", fan_out)
        .orchestrator("timers", timers)
        .orchestrator("events", events)
        .activity("inc", inc);

    let shapes: [(&'static str, Build, usize); 4] = [
        ("sequence", sequence_history, 4),
        ("fan-out", fan_out_history, 2),
        ("timers", timers_history, 4),
        ("events", events_history, 3),
    ];
    if let Some(unknown) = args
        .shapes
        .iter()
        .find(|s| !shapes.iter().any(|(name, ..)| name == s))
    {
        return Err(format!("unknown shape '{unknown}'"));
    }
    let sizes = if args.sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        args.sizes.clone()
    };
    let mut cases = Vec::new();
    for &target_events in &sizes {
        for &(shape, build, events_per_call) in &shapes {
            if args.shapes.is_empty() || args.shapes.iter().any(|s| s == shape) {
                cases.push(Case {
                    shape,
                    target_events,
                    build,
                    events_per_call,
                });
            }
        }
    }

    println!(
        "{:<9} {:>8} {:>6} {:>10} {:>10} {:>9}  target",
        "shape", "events", "runs", "median ms", "min ms", "µs/event"
    );
    let mut over_target = Vec::new();
    for case in &cases {
        let calls = u32::try_from(case.target_events / case.events_per_call).unwrap_or(u32::MAX);
        let (request, expected) = (case.build)(calls);
        let events = request.past_events.len() + request.new_events.len();
        // Warm-up, and a check that the history really replays to completion.
        check(&registry.run_orchestrator(&request), expected)
            .map_err(|e| format!("{}: {e}", case.shape))?;
        let runs = args
            .runs
            .unwrap_or_else(|| (2_000_000 / events).clamp(5, 51));
        let times: Vec<Duration> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                let response = registry.run_orchestrator(&request);
                let elapsed = started.elapsed();
                drop(std::hint::black_box(response));
                elapsed
            })
            .collect();
        let min = times.iter().min().copied().unwrap_or_default();
        let median = median(times);
        // 1 µs per event: 10 ms for 10k, 100 ms for 100k (and 1 ms for 1k).
        let target = Duration::from_micros(case.target_events as u64);
        let verdict = if median <= target { "ok" } else { "OVER" };
        if median > target {
            over_target.push(format!("{} {events}", case.shape));
        }
        println!(
            "{:<9} {:>8} {:>6} {:>10.3} {:>10.3} {:>9.3}  <= {} ms {}",
            case.shape,
            events,
            runs,
            median.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6 / events as f64,
            case.target_events as f64 / 1000.0,
            verdict,
        );
    }
    if !over_target.is_empty() {
        println!("over the 1 µs/event target: {}", over_target.join(", "));
    }
    Ok(())
}
