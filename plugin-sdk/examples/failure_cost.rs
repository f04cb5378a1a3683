//! Failure cost: what a failing step costs the thread that runs it, and the memory it
//! leaves behind. Run through `bench/failure-cost`, which builds what it needs:
//!
//! ```sh
//! bench/failure-cost                 # this tree's SDK
//! bench/failure-cost --rev main      # another revision's SDK, for a before/after
//! # By hand, after `cargo build --release -p faulty-plugin`:
//! cargo run --release -p durabletask-sdk --example failure_cost -- target/release/libfaulty.so
//! ```
//!
//! It loads the `faulty` test plugin through the plugin ABI, as the host does (so the
//! plugin's own panic hook and its own copy of std are the ones at work), and calls it on
//! this thread, as the host's event loop does. Each case runs in a fresh process (the
//! first failure of a process is the one that may pay to load debug information), 1000
//! times:
//!
//! - `baseline`: a step that catches a failed activity and completes (no failure leaves
//!   the step): what any step costs;
//! - `question-mark`: `call_failing_activity`, which propagates the failed activity with
//!   `?`: the orchestration fails with `TaskFailed`;
//! - `err-return`: the activity `fail_always` returns `Err(Error::new(..))`; its first poll
//!   runs on the calling thread, as in the host, and completes it there (one successful
//!   activity runs first, so that the plugin's activity runtime is already built);
//! - `panic`: `panic_orchestrator` panics: `PluginPanic`, with the panic's backtrace;
//! - `activity-panic`: `panic_activity` panics in its first poll; the time is what
//!   `start_activity` takes on the calling thread, the completion may arrive later from
//!   the plugin's runtime.
//!
//! For each case it prints the wall time of the 1st and the 1000th call and the median of
//! the 1000, and the process's RSS (`VmRSS`) before the first call, after it, and after
//! the 1000th, in MB. Run it with `RUST_BACKTRACE` unset, as a daemon usually runs.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use abi_stable::library::lib_header_from_path;
use abi_stable::std_types::{RSlice, RVec};
use durabletask_sdk::abi::{HostCallbacks, LogLevel, LogRecord, PluginModuleRef};
use durabletask_sdk::proto::{
    self, history_event::EventType, orchestrator_action::OrchestratorActionType, prost_types,
};
use prost::Message;

const CASES: [&str; 5] = [
    "baseline",
    "question-mark",
    "err-return",
    "panic",
    "activity-panic",
];
const CALLS: usize = 1000;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plugin = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/libfaulty.so"));
    match args.get(1) {
        Some(case) => run_case(&plugin, case),
        None => {
            if std::env::var_os("RUST_BACKTRACE").is_some()
                || std::env::var_os("RUST_LIB_BACKTRACE").is_some()
            {
                println!("note: RUST_BACKTRACE / RUST_LIB_BACKTRACE is set");
            }
            println!(
                "{:<15} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "case", "1st", "1000th", "median", "RSS0 MB", "RSS1 MB", "RSS1000 MB"
            );
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            for case in CASES {
                let status = Command::new(&exe)
                    .arg(&plugin)
                    .arg(case)
                    .status()
                    .map_err(|e| e.to_string())?;
                if !status.success() {
                    return Err(format!("case {case} failed: {status}"));
                }
            }
            Ok(())
        }
    }
}

fn run_case(plugin: &std::path::Path, case: &str) -> Result<(), String> {
    let module = load(plugin)?;
    // The plugin builds its activity runtime on the first activity: a cost of the first
    // activity, not of the first failure.
    if case == "err-return" || case == "activity-panic" {
        activity(module, "rust_square", CALLS)?;
    }
    let mut times = Vec::with_capacity(CALLS);
    let mut rss = [0.0_f64; 3];
    for call in 0..CALLS {
        if call == 0 {
            rss[0] = rss_mb()?;
        }
        let outcome = match case {
            "baseline" => step(module, "catch_failing_activity", true),
            "question-mark" => step(module, "call_failing_activity", true),
            "panic" => step(module, "panic_orchestrator", false),
            "err-return" => activity(module, "fail_always", call),
            "activity-panic" => activity(module, "panic_activity", call),
            other => return Err(format!("unknown case {other}; one of {CASES:?}")),
        };
        let elapsed = outcome?;
        times.push(elapsed);
        if call == 0 {
            rss[1] = rss_mb()?;
        }
    }
    rss[2] = rss_mb()?;
    (module.shutdown())();
    let first = times[0];
    let last = times[CALLS - 1];
    times.sort();
    let median = times[CALLS / 2];
    println!(
        "{case:<15} {:>10} {:>10} {:>10} {:>10.1} {:>10.1} {:>10.1}",
        show(first),
        show(last),
        show(median),
        rss[0],
        rss[1],
        rss[2]
    );
    Ok(())
}

fn show(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
        format!("{:.1} ms", micros / 1000.0)
    } else {
        format!("{micros:.1} µs")
    }
}

/// Loads the plugin as the host does (abi_stable's checks, then `init`).
fn load(path: &std::path::Path) -> Result<PluginModuleRef, String> {
    let header = lib_header_from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|e| e.to_string())?;
    let host = HostCallbacks {
        plugin_id: 1,
        max_level: LogLevel::Warn,
        log: ignore_log,
        activity_completed,
    };
    (module.init())(host)
        .into_result()
        .map_err(|e| e.to_string())?;
    Ok(module)
}

extern "C" fn ignore_log(_plugin_id: u64, _record: &LogRecord<'_>) {}

/// Completed activities: (token, encoded response).
static COMPLETED: Mutex<Vec<(u64, Vec<u8>)>> = Mutex::new(Vec::new());
static COMPLETION: Condvar = Condvar::new();

extern "C" fn activity_completed(_plugin_id: u64, token: u64, response: RVec<u8>) {
    if let Ok(mut completed) = COMPLETED.lock() {
        completed.push((token, response.into_vec()));
        COMPLETION.notify_all();
    }
}

/// One orchestration step of `name`, whose history holds a failed `fail_always` when
/// `with_failed_task`; returns its time after checking that it failed or completed as
/// the case expects.
fn step(module: PluginModuleRef, name: &str, with_failed_task: bool) -> Result<Duration, String> {
    let request = orchestrator_request(name, with_failed_task).encode_to_vec();
    let started = Instant::now();
    let response = (module.run_orchestrator())(RSlice::from_slice(&request));
    let elapsed = started.elapsed();
    let response =
        proto::OrchestratorResponse::decode(response.as_slice()).map_err(|e| e.to_string())?;
    let completion = response
        .actions
        .iter()
        .find_map(|action| match &action.orchestrator_action_type {
            Some(OrchestratorActionType::CompleteOrchestration(complete)) => Some(complete),
            _ => None,
        })
        .ok_or_else(|| format!("{name}: the step did not complete the orchestration"))?;
    let expected_failure = match name {
        "catch_failing_activity" => None,
        "call_failing_activity" => Some("TaskFailed"),
        _ => Some("PluginPanic"),
    };
    let failure = completion
        .failure_details
        .as_ref()
        .map(|f| f.error_type.as_str());
    if failure != expected_failure {
        return Err(format!(
            "{name}: failure {failure:?}, expected {expected_failure:?}"
        ));
    }
    Ok(elapsed)
}

/// Starts activity `name` and waits for its completion; returns the time `start_activity`
/// took on this thread.
fn activity(module: PluginModuleRef, name: &str, call: usize) -> Result<Duration, String> {
    let token = call as u64;
    let input = if name == "rust_square" { "3" } else { "null" };
    let request = proto::ActivityRequest {
        name: name.to_owned(),
        input: Some(input.to_owned()),
        orchestration_instance: Some(proto::OrchestrationInstance {
            instance_id: "bench".to_owned(),
            execution_id: None,
        }),
        task_id: 1,
        ..Default::default()
    }
    .encode_to_vec();
    let started = Instant::now();
    (module.start_activity())(RSlice::from_slice(&request), token);
    let elapsed = started.elapsed();
    let response = wait_for_completion(token)?;
    let failure = proto::ActivityResponse::decode(response.as_slice())
        .map_err(|e| e.to_string())?
        .failure_details
        .map(|f| f.error_type);
    let expected = match name {
        "rust_square" => None,
        "fail_always" => Some("CityNotFound"),
        _ => Some("PluginPanic"),
    };
    if failure.as_deref() != expected {
        return Err(format!(
            "{name}: failure {failure:?}, expected {expected:?}"
        ));
    }
    Ok(elapsed)
}

fn wait_for_completion(token: u64) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut completed = COMPLETED.lock().map_err(|e| e.to_string())?;
    loop {
        if let Some(index) = completed.iter().position(|(t, _)| *t == token) {
            return Ok(completed.swap_remove(index).1);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("activity {token} did not complete within 10 s"));
        }
        completed = COMPLETION
            .wait_timeout(completed, left)
            .map_err(|e| e.to_string())?
            .0;
    }
}

/// A history where `name` started and scheduled `fail_always`, and the new events say it
/// failed.
fn orchestrator_request(name: &str, with_failed_task: bool) -> proto::OrchestratorRequest {
    let event = |event_id: i32, kind: EventType| proto::HistoryEvent {
        event_id,
        timestamp: Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        event_type: Some(kind),
    };
    let started = vec![
        event(-1, EventType::OrchestratorStarted(Default::default())),
        event(
            -1,
            EventType::ExecutionStarted(proto::ExecutionStartedEvent {
                name: name.to_owned(),
                input: Some("null".to_owned()),
                orchestration_instance: Some(proto::OrchestrationInstance {
                    instance_id: "bench".to_owned(),
                    execution_id: None,
                }),
                ..Default::default()
            }),
        ),
    ];
    if !with_failed_task {
        return proto::OrchestratorRequest {
            instance_id: "bench".to_owned(),
            new_events: started,
            ..Default::default()
        };
    }
    let mut past = started;
    past.push(event(
        1,
        EventType::TaskScheduled(proto::TaskScheduledEvent {
            name: "fail_always".to_owned(),
            input: Some("null".to_owned()),
            ..Default::default()
        }),
    ));
    past.push(event(
        -1,
        EventType::OrchestratorCompleted(Default::default()),
    ));
    let new = vec![
        event(-1, EventType::OrchestratorStarted(Default::default())),
        event(
            -1,
            EventType::TaskFailed(proto::TaskFailedEvent {
                task_scheduled_id: 1,
                failure_details: Some(proto::TaskFailureDetails {
                    error_type: "CityNotFound".to_owned(),
                    error_message: "no such city: Atlantis".to_owned(),
                    ..Default::default()
                }),
            }),
        ),
    ];
    proto::OrchestratorRequest {
        instance_id: "bench".to_owned(),
        past_events: past,
        new_events: new,
        ..Default::default()
    }
}

/// The process's resident set (`VmRSS`), in MB.
fn rss_mb() -> Result<f64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .ok_or_else(|| "no VmRSS in /proc/self/status".to_owned())
}
