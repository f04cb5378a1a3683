//! Property tests: arbitrary histories and arbitrary request bytes never panic past the
//! engine and always terminate. A seeded xorshift generator keeps every run the same (a
//! failure prints its seed), with no extra dependency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use durabletask_sdk::orchestration::{
    ActivityOptions, RetryPolicy, SubOrchestrationOptions, when_all, when_any,
};
use durabletask_sdk::proto::{self, history_event::EventType};
use durabletask_sdk::{Error, OrchestrationContext, Registry};
use prost::Message;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Uses every feature, so arbitrary histories reach every engine path.
async fn everything(ctx: OrchestrationContext, n: u32) -> Result<String, Error> {
    let log = ctx.logger();
    log.info("start");
    let policy = RetryPolicy::new(Duration::from_secs(1), 3)?
        .with_backoff_coefficient(2.0)?
        .with_retry_timeout(Duration::from_secs(30));
    let a = ctx.call_activity_with::<_, String>(
        "a",
        n,
        ActivityOptions::new().retry_policy(policy.clone()),
    );
    let child = ctx.call_sub_orchestrator_with::<_, String>(
        "child",
        n,
        SubOrchestrationOptions::new().retry_policy(policy),
    );
    let event = ctx.wait_for_external_event::<String>("go");
    let timer = ctx.create_timer_after(Duration::from_secs(100 * 86_400));
    let cancel_event = event.cancel_handle();
    let cancel_timer = timer.cancel_handle();
    let racers: Vec<Pin<Box<dyn Future<Output = u8>>>> = vec![
        Box::pin(async move { event.await.map(|_| 0).unwrap_or(1) }),
        Box::pin(async move {
            timer.await;
            2
        }),
    ];
    let (winner, _) = when_any(racers).await;
    cancel_event.cancel();
    cancel_timer.cancel();
    let _ = ctx.send_event("other", "ping", winner);
    let results = futures::future::join(a, child).await;
    let _ = when_all(Vec::<durabletask_sdk::orchestration::ActivityTask<()>>::new()).await;
    log.warn(format_args!("results {results:?}"));
    if n.is_multiple_of(2) {
        return ctx.continue_as_new_saving_events(n + 1);
    }
    Ok(format!("{winner} {results:?}"))
}

async fn sequence(ctx: OrchestrationContext, _: ()) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for name in ["a", "b", "c"] {
        out.push(ctx.call_activity(name, ()).await?);
    }
    Ok(out)
}

/// Finishes after one event, so arbitrary histories often reach a completion.
async fn quick(
    ctx: OrchestrationContext,
    _: serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let value: serde_json::Value = ctx.wait_for_external_event("go").await?;
    if value == serde_json::json!(1) {
        return ctx.continue_as_new_saving_events(value);
    }
    Ok(value)
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.orchestrator("everything", everything)
        .orchestrator("sequence", sequence)
        .orchestrator("quick", quick);
    r
}

/// History events with small ids and a few names, so arbitrary sequences often match
/// what the orchestrators do and go deep.
fn arbitrary_event(rng: &mut Rng) -> proto::HistoryEvent {
    let id = rng.below(8) as i32 - 1;
    let at = *rng.pick(&[0, 1000, 1001, 1003, 87_000, i64::MAX, i64::MIN, -1]);
    let name = rng
        .pick(&["a", "b", "c", "child", "go", "GO", "other", ""])
        .to_string();
    let payload = rng
        .pick(&["1", "\"x\"", "", "{", "null", "[1,2]"])
        .to_string();
    let failure = || proto::TaskFailureDetails {
        error_type: "E".into(),
        error_message: "boom".into(),
        is_non_retriable: at == 0,
        ..Default::default()
    };
    let kind = match rng.below(22) {
        0 => return orchestrator_started(at),
        1 => {
            let started: &&str = rng.pick(&["everything", "sequence", "quick", "nope"]);
            return execution_started(started, Some(&payload));
        }
        2 => return task_scheduled(id, &name),
        3 => return task_completed(id, &payload),
        4 => return task_failed(id, "E", "boom"),
        5 => return timer_created(id, at),
        6 => return timer_fired(id, at),
        7 => return event_raised(&name, &payload),
        8 => return sub_created(id, &name, "inst:0002"),
        9 => return sub_completed(id, &payload),
        10 => return sub_failed(id, "E", "boom"),
        11 => return event_sent(id, "other", &name),
        12 => return suspended(),
        13 => return resumed(),
        14 => return terminated(&payload),
        15 => return execution_completed(),
        16 => EventType::ExecutionRewound(proto::ExecutionRewoundEvent {
            parent_execution_id: Some(name),
            ..Default::default()
        }),
        17 => EventType::TaskFailed(proto::TaskFailedEvent {
            task_scheduled_id: id,
            failure_details: Some(failure()),
        }),
        18 => EventType::ContinueAsNew(Default::default()),
        19 => EventType::HistoryState(Default::default()),
        20 => EventType::ExecutionStarted(Default::default()),
        _ => return proto::HistoryEvent::default(),
    };
    event(id, kind)
}

fn arbitrary_request(rng: &mut Rng) -> proto::OrchestratorRequest {
    let mut request = proto::OrchestratorRequest {
        instance_id: "inst".into(),
        ..Default::default()
    };
    // Usually a sensible start, so the orchestrator runs.
    if rng.below(4) > 0 {
        let name = *rng.pick(&["everything", "sequence", "quick"]);
        request.past_events = vec![
            orchestrator_started(1000),
            execution_started(name, Some("1")),
        ];
    }
    for _ in 0..rng.below(24) {
        let event = arbitrary_event(rng);
        if rng.below(2) == 0 {
            request.past_events.push(event);
        } else {
            request.new_events.push(event);
        }
    }
    if rng.below(2) == 0 {
        let seconds = *rng.pick(&[
            1e-9,
            1.0,
            86_400.0,
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            1e300,
        ]);
        request.properties = max_timer_interval(seconds);
    }
    request
}

/// These orchestrators never panic themselves: a `PluginPanic` failure would be the
/// engine panicking inside a poll (e.g. a double borrow), caught and reported.
fn assert_no_panic(response: &proto::OrchestratorResponse, seed: u64) {
    use proto::orchestrator_action::OrchestratorActionType as A;
    for action in &response.actions {
        if let Some(A::CompleteOrchestration(c)) = &action.orchestrator_action_type {
            let error_type = c.failure_details.as_ref().map(|f| f.error_type.as_str());
            assert_ne!(error_type, Some("PluginPanic"), "seed {seed}: {c:?}");
        }
    }
}

/// A name for what an action does, completions by status.
fn outcome_kind(action: &proto::OrchestratorAction) -> String {
    use proto::orchestrator_action::OrchestratorActionType as A;
    match &action.orchestrator_action_type {
        Some(A::CompleteOrchestration(c)) => {
            proto::OrchestrationStatus::try_from(c.orchestration_status)
                .map(|s| format!("{s:?}"))
                .unwrap_or_default()
        }
        Some(other) => {
            let name = format!("{other:?}");
            name[..name.find('(').unwrap_or(name.len())].to_owned()
        }
        None => "None".to_owned(),
    }
}

/// Runs `f` on another thread and fails if it does not finish in time: "never hangs".
fn within(limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => worker.join().unwrap(),
        // The worker panicked: join to re-raise its panic with its message.
        Err(mpsc::RecvTimeoutError::Disconnected) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {limit:?}"),
    }
}

#[test]
fn arbitrary_histories_never_panic_or_hang() {
    within(Duration::from_secs(120), || {
        let registry = registry();
        let mut seen = std::collections::BTreeSet::new();
        for seed in 1..=20_000u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let request = arbitrary_request(&mut rng);
            let response =
                std::panic::catch_unwind(AssertUnwindSafe(|| registry.run_orchestrator(&request)))
                    .unwrap_or_else(|_| panic!("seed {seed} panicked on {request:?}"));
            assert_eq!(response.instance_id, "inst", "seed {seed}");
            // At most one completion, and ids are unique.
            let mut ids: Vec<i32> = response.actions.iter().map(|a| a.id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(
                ids.len(),
                response.actions.len(),
                "seed {seed}: {response:?}"
            );
            for action in &response.actions {
                seen.insert(outcome_kind(action));
            }
            assert_no_panic(&response, seed);
        }
        // The generator is not vacuous: runs reach every kind of outcome.
        for kind in [
            "ScheduleTask",
            "CreateSubOrchestration",
            "CreateTimer",
            "SendEvent",
            "RewindOrchestration",
            "Completed",
            "Failed",
            "ContinuedAsNew",
            "Terminated",
        ] {
            assert!(seen.contains(kind), "no run produced {kind}: {seen:?}");
        }
    });
}

#[test]
fn arbitrary_request_bytes_never_panic_or_hang() {
    within(Duration::from_secs(120), || {
        let registry = registry();
        for seed in 1..=20_000u64 {
            let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
            // Half pure noise, half a valid request with bytes flipped, cut or repeated.
            let mut bytes = if rng.below(2) == 0 {
                (0..rng.below(256))
                    .map(|_| rng.next() as u8)
                    .collect::<Vec<u8>>()
            } else {
                arbitrary_request(&mut rng).encode_to_vec()
            };
            for _ in 0..rng.below(8) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes.truncate(at),
                    _ => {
                        let tail = bytes[at..].to_vec();
                        bytes.extend(tail);
                    }
                }
            }
            if let Ok(request) = proto::OrchestratorRequest::decode(bytes.as_slice()) {
                let response = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    registry.run_orchestrator(&request)
                }))
                .unwrap_or_else(|_| panic!("seed {seed} panicked on {request:?}"));
                assert_no_panic(&response, seed);
            }
        }
    });
}

#[test]
fn sensible_histories_complete() {
    // Not only no panic: a well-formed run of `sequence` finishes with its output.
    let mut past = vec![
        orchestrator_started(1000),
        execution_started("sequence", None),
    ];
    for (id, name) in [(1, "a"), (2, "b")] {
        past.extend([
            task_scheduled(id, name),
            task_completed(id, &format!("\"{name}\"")),
        ]);
    }
    past.push(task_scheduled(3, "c"));
    let response = registry().run_orchestrator(&request(past, vec![task_completed(3, "\"c\"")]));
    let (id, c) = completion(&response).unwrap();
    assert_eq!((id, output(c)), (4, serde_json::json!(["a", "b", "c"])));
}
