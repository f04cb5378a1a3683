//! Conformance scenarios 1-12 and 27-34 of `shared/spec/protocol.md` §8: orchestrations
//! written with our SDK (the `conformance_a` test plugin) run by the host against the
//! reference backend, checked through the project's client as a user would.
//!
//! Payloads are compared as parsed JSON values. Executions are counted from the lines the
//! plugin logs through the host: `conformance_a ran <what> [instance=<id>]`, one per real
//! execution (see the plugin's docs).
//!
//! Scenarios 27-34 are the reference's "async client" duplicates: the worker side is the
//! same, so they reuse the same orchestrators; where the first test starts with
//! `start --wait`, its duplicate uses `start` and then the `wait` verb.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use durabletask_e2e::{Error, Fixture, Result, WAIT, exit_codes, poll_until};
use serde_json::{Value, json};

const PLUGIN: &str = "conformance_a";

/// How long a suspended orchestration must stay put after its event was raised
/// (scenario 9: "does not complete it within 3 s").
const SUSPENDED_GRACE: Duration = Duration::from_secs(3);

/// The durable timer of `wait_for_event_or_timeout` (scenario 8).
const APPROVAL_TIMEOUT: Duration = Duration::from_secs(3);

fn start() -> Result<Fixture> {
    Fixture::start(&[PLUGIN])
}

/// The log line the plugin writes for one execution of `what` in `instance`.
fn marker(what: &str, instance: &str) -> String {
    format!("conformance_a ran {what} [instance={instance}]")
}

/// How many host log lines contain `needle`.
fn count_lines(fixture: &Fixture, needle: &str) -> usize {
    fixture.host.log_lines_with(&[needle]).len()
}

/// Waits (bounded) until at least `expected` log lines contain `needle` and returns how
/// many there are then. Plugin log lines reach the host's log asynchronously, so a
/// finished orchestration's lines may trail its final state a little.
fn wait_for_lines(fixture: &Fixture, needle: &str, expected: usize) -> Result<usize> {
    let found = poll_until(WAIT, || {
        let count = count_lines(fixture, needle);
        Ok((count >= expected).then_some(count))
    })?;
    found.ok_or_else(|| {
        Error::new(format!(
            "expected {expected} log lines with {needle:?}, found {} within {WAIT:?}\n{}",
            count_lines(fixture, needle),
            fixture.host.log_tail()
        ))
    })
}

/// Waits for exactly `expected` executions of `what` in `instance` (see [`marker`]).
fn assert_executions(fixture: &Fixture, what: &str, instance: &str, expected: usize) -> Result<()> {
    let needle = marker(what, instance);
    let count = wait_for_lines(fixture, &needle, expected)?;
    assert_eq!(
        count,
        expected,
        "{what} ran {count} times in {instance}, expected {expected}\n{}",
        fixture.host.log_tail()
    );
    Ok(())
}

/// Runs a client verb that must succeed and returns its JSON output.
fn verb(fixture: &Fixture, args: &[&str]) -> Result<Value> {
    fixture
        .client
        .run(args)?
        .ok()
        .map_err(|error| Error::new(format!("client {args:?}: {error}")))
}

fn raise_event(fixture: &Fixture, id: &str, name: &str, data: Option<&Value>) -> Result<()> {
    let data = data.map(Value::to_string);
    let mut args = vec!["raise-event", id, name];
    if let Some(data) = &data {
        args.extend(["--data", data]);
    }
    verb(fixture, &args).map(drop)
}

fn suspend(fixture: &Fixture, id: &str, reason: Option<&str>) -> Result<()> {
    let mut args = vec!["suspend", id];
    if let Some(reason) = reason {
        args.extend(["--reason", reason]);
    }
    verb(fixture, &args).map(drop)
}

fn resume(fixture: &Fixture, id: &str, reason: Option<&str>) -> Result<()> {
    let mut args = vec!["resume", id];
    if let Some(reason) = reason {
        args.extend(["--reason", reason]);
    }
    verb(fixture, &args).map(drop)
}

/// Polls (bounded) until the instance exists and has one of `statuses`; unlike
/// `Client::wait_for_status`, an instance that does not exist yet (a child an
/// orchestration has not created so far) is waited for rather than an error.
fn wait_for_status(fixture: &Fixture, id: &str, statuses: &[&str]) -> Result<Value> {
    let mut last = Value::Null;
    let found = poll_until(WAIT, || {
        let run = fixture.client.run(&["status", id])?;
        if run.exit_code == Some(exit_codes::NOT_FOUND) {
            return Ok(None);
        }
        last = run.ok()?;
        let status = last["status"].as_str().unwrap_or_default();
        Ok(statuses.contains(&status).then(|| last.clone()))
    })?;
    found.ok_or_else(|| {
        Error::new(format!(
            "{id} did not reach {statuses:?} within {WAIT:?}; last state: {last:#}\n{}",
            fixture.host.log_tail()
        ))
    })
}

/// Waits for a started instance to finish.
fn wait(fixture: &Fixture, id: &str) -> Result<Value> {
    fixture
        .client
        .wait(id, WAIT)
        .map_err(|error| Error::new(format!("{error}\n{}", fixture.host.log_tail())))
}

/// The events of `kind` in a history.
fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["kind"] == kind)
        .collect()
}

fn assert_completed(fixture: &Fixture, state: &Value) {
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(state));
    assert_eq!(state["failure_details"], Value::Null, "{state:#}");
}

// ---------------------------------------------------------------------------------------
// Shared scenario bodies (each used by a scenario and its async duplicate)
// ---------------------------------------------------------------------------------------

/// Scenarios 1 and 27: an orchestrator that awaits nothing and returns nothing.
fn empty_orchestration(use_wait_verb: bool) -> Result<()> {
    let fixture = start()?;
    let id = "empty-1";
    if use_wait_verb {
        fixture
            .client
            .start_with_id("empty_orchestrator", id, None)?;
    } else {
        // Scenario 1 also sends orchestration tags, as the reference client does.
        let state = fixture.client.start_tagged(
            "empty_orchestrator",
            Some(id),
            None,
            &[("Tagged", "true")],
            Some(WAIT),
        )?;
        assert_completed(&fixture, &state);
    }
    let state = wait(&fixture, id)?;

    assert_completed(&fixture, &state);
    assert_eq!(state["instance_id"], id, "{state:#}");
    assert_eq!(state["name"], "empty_orchestrator", "{state:#}");
    assert_eq!(state["input"], Value::Null, "{state:#}");
    assert_eq!(state["output"], Value::Null, "{state:#}");
    assert_eq!(state["custom_status"], Value::Null, "{state:#}");
    if !use_wait_verb {
        // The backend copied the tags into executionStarted.
        let history = fixture.client.history(id)?;
        let started = of_kind(&history, "executionStarted");
        assert_eq!(started.len(), 1, "{history:#?}");
        assert_eq!(
            started[0]["tags"],
            json!({"Tagged": "true"}),
            "{history:#?}"
        );
    }
    // The function was invoked (once: it awaits nothing).
    assert_executions(&fixture, "empty_orchestrator", id, 1)
}

/// Scenarios 2 and 28: ten sequential activity calls from input 1. Returns the fixture
/// and the instance id for further checks.
fn activity_sequence(use_wait_verb: bool) -> Result<(Fixture, String)> {
    let fixture = start()?;
    let id = "sequence-1";
    let input = json!(1);
    let state = if use_wait_verb {
        fixture
            .client
            .start_with_id("activity_sequence", id, Some(&input))?;
        wait(&fixture, id)?
    } else {
        let state = verb(
            &fixture,
            &[
                "start",
                "activity_sequence",
                "--id",
                id,
                "--input",
                &input.to_string(),
                "--wait",
            ],
        )?;
        assert_eq!(state["instance_id"], id, "{state:#}");
        state
    };

    assert_completed(&fixture, &state);
    assert_eq!(state["name"], "activity_sequence", "{state:#}");
    assert_eq!(state["input"], json!(1), "{state:#}");
    assert_eq!(
        state["output"],
        json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
        "{state:#}"
    );
    assert_eq!(state["custom_status"], Value::Null, "{state:#}");
    assert_executions(&fixture, "plus_one", id, 10)?;
    Ok((fixture, id.to_owned()))
}

/// Scenarios 7 and 29: A, B and C are raised right after the start, before or after the
/// orchestrator waits for them (early ones are buffered).
fn wait_for_multiple_external_events() -> Result<()> {
    let fixture = start()?;
    let id = "events-1";
    fixture
        .client
        .start_with_id("wait_for_multiple_events", id, None)?;
    for (name, data) in [("A", "a"), ("B", "b"), ("C", "c")] {
        raise_event(&fixture, id, name, Some(&json!(data)))?;
    }
    let state = wait(&fixture, id)?;

    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!(["a", "b", "c"]), "{state:#}");
    Ok(())
}

/// Scenarios 9 and 30: a suspended orchestration takes no event until it is resumed.
fn suspend_and_resume(reason: Option<&str>) -> Result<()> {
    let fixture = start()?;
    let id = "suspend-1";
    fixture.client.start_with_id("wait_for_event", id, None)?;
    wait_for_status(&fixture, id, &["RUNNING"])?;
    // It has run up to its wait for the event.
    assert_executions(&fixture, "wait_for_event", id, 1)?;

    suspend(&fixture, id, reason)?;
    let state = wait_for_status(&fixture, id, &["SUSPENDED"])?;
    assert_eq!(state["status"], "SUSPENDED", "{state:#}");

    raise_event(&fixture, id, "my_event", Some(&json!(42)))?;
    // Nothing may happen now: a bounded wait must time out, and it is still suspended.
    let seconds = SUSPENDED_GRACE.as_secs().to_string();
    let run = fixture.client.run(&["wait", id, "--timeout", &seconds])?;
    assert_eq!(
        run.exit_code,
        Some(exit_codes::TIMEOUT),
        "a suspended orchestration finished: {run:#?}\n{}",
        fixture.host.log_tail()
    );
    let state = fixture.client.status(id)?;
    assert_eq!(state["status"], "SUSPENDED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], Value::Null, "{state:#}");

    resume(&fixture, id, reason)?;
    let state = wait(&fixture, id)?;
    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!(42), "{state:#}");
    Ok(())
}

/// Scenarios 10 and 31: terminating a waiting orchestration, with an output.
fn terminate() -> Result<()> {
    let fixture = start()?;
    let id = "terminate-1";
    fixture.client.start_with_id("wait_for_event", id, None)?;
    wait_for_status(&fixture, id, &["RUNNING"])?;

    let reason = json!("some reason for termination");
    fixture.client.terminate(id, Some(&reason))?;
    let state = wait(&fixture, id)?;

    assert_eq!(state["status"], "TERMINATED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], reason, "{state:#}");
    assert_eq!(state["failure_details"], Value::Null, "{state:#}");
    Ok(())
}

/// Scenarios 12 and 33: a completed instance restarted under its own id runs again.
fn restart_with_same_instance_id(use_wait_verb: bool) -> Result<()> {
    let fixture = start()?;
    let id = "restart-same-1";
    let state = if use_wait_verb {
        fixture.client.start_with_id("hello_world", id, None)?;
        wait(&fixture, id)?
    } else {
        verb(&fixture, &["start", "hello_world", "--id", id, "--wait"])?
    };
    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    assert_executions(&fixture, "hello_world", id, 1)?;

    let restarted = fixture.client.restart(id, false)?;
    assert_eq!(restarted, id);
    // It really ran again: a second first execution and a second activity call.
    assert_executions(&fixture, "hello_world", id, 2)?;
    assert_executions(&fixture, "say_hello", id, 2)?;
    let state = wait(&fixture, id)?;
    assert_completed(&fixture, &state);
    assert_eq!(state["instance_id"], id, "{state:#}");
    assert_eq!(state["name"], "hello_world", "{state:#}");
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// test_orchestration_e2e.py
// ---------------------------------------------------------------------------------------

/// Scenario 1, empty_orchestration, started with the orchestration tags `{Tagged: true}`
/// as the reference client does; they show in the history's executionStarted event.
#[test]
fn scenario_01_empty_orchestration() -> Result<()> {
    empty_orchestration(false)
}

/// Scenario 2, activity_sequence: ten `plus_one` calls, each with activity tags.
#[test]
fn scenario_02_activity_sequence() -> Result<()> {
    let (fixture, id) = activity_sequence(false)?;

    // Ten calls, in order. The reference backend drops activity tags (neither its
    // taskScheduled events nor its activity work items carry them), so they cannot be
    // seen end to end here; if a backend does record them, they must be ours. (The SDK's
    // own tests check that every ScheduleTask action carries them.)
    let events = fixture.client.history(&id)?;
    let dump = format!("{:#}", Value::Array(events.clone()));
    let scheduled = of_kind(&events, "taskScheduled");
    assert_eq!(scheduled.len(), 10, "{dump}");
    for (step, event) in (1..=10).zip(&scheduled) {
        assert_eq!(event["name"], "plus_one", "{dump}");
        assert_eq!(event["input"], json!(step), "{dump}");
        if event["tags"] != json!({}) {
            assert_eq!(
                event["tags"],
                json!({"activity": "plus_one", "step": step.to_string()}),
                "{dump}"
            );
        }
    }
    Ok(())
}

/// Scenario 3, activity_error_handling: the failure is caught, its message returned, and
/// two compensations run.
#[test]
fn scenario_03_activity_error_handling() -> Result<()> {
    let fixture = start()?;
    let id = "error-handling-1";
    fixture
        .client
        .start_with_id("activity_error_handling", id, None)?;
    let state = wait(&fixture, id)?;

    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!("Kah-BOOOOM!!!"), "{state:#}");
    assert_executions(&fixture, "throw", id, 1)?;
    assert_executions(&fixture, "compensate", id, 2)?;

    // The activity's failure as the backend recorded it.
    let events = fixture.client.history(id)?;
    let dump = format!("{:#}", Value::Array(events.clone()));
    let failed = of_kind(&events, "taskFailed");
    assert_eq!(failed.len(), 1, "{dump}");
    assert_eq!(
        failed[0]["failureDetails"]["error_type"], "RuntimeError",
        "{dump}"
    );
    assert_eq!(
        failed[0]["failureDetails"]["message"], "Kah-BOOOOM!!!",
        "{dump}"
    );
    Ok(())
}

/// Scenario 4, get_orchestration_history: a single-activity orchestration's history, as
/// the backend keeps it, through the `history` verb.
#[test]
fn scenario_04_get_orchestration_history() -> Result<()> {
    let fixture = start()?;
    let id = "history-1";
    fixture.client.start_with_id("hello_world", id, None)?;
    let state = wait(&fixture, id)?;
    assert_completed(&fixture, &state);

    let events = fixture.client.history(id)?;
    let dump = format!("{:#}", Value::Array(events.clone()));
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["kind"].as_str().unwrap_or_default())
        .collect();
    for kind in ["executionStarted", "taskScheduled", "taskCompleted"] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}\n{dump}");
    }

    let started = of_kind(&events, "executionStarted");
    assert_eq!(started.len(), 1, "{dump}");
    assert_eq!(started[0]["name"], "hello_world", "{dump}");
    assert_eq!(started[0]["instanceId"], id, "{dump}");

    let scheduled = of_kind(&events, "taskScheduled");
    assert_eq!(scheduled.len(), 1, "{dump}");
    assert_eq!(scheduled[0]["name"], "say_hello", "{dump}");
    assert_eq!(scheduled[0]["input"], json!("World"), "{dump}");

    let completed = of_kind(&events, "taskCompleted");
    assert_eq!(completed.len(), 1, "{dump}");
    assert_eq!(
        completed[0]["taskScheduledId"], scheduled[0]["event_id"],
        "{dump}"
    );
    assert_eq!(completed[0]["result"], json!("Hello, World!"), "{dump}");

    // In order: started before scheduled before completed, and the end last.
    let position = |kind: &str| kinds.iter().position(|k| *k == kind);
    assert!(
        position("executionStarted") < position("taskScheduled")
            && position("taskScheduled") < position("taskCompleted"),
        "{kinds:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "executionCompleted", "{dump}");
    assert_eq!(last["orchestrationStatus"], "COMPLETED", "{dump}");
    assert_eq!(last["result"], json!("Hello, World!"), "{dump}");
    Ok(())
}

/// Scenario 5, sub_orchestration_fan_out: ten children with default ids `<parent>:0001`
/// … `:000a`, three activities each.
#[test]
fn scenario_05_sub_orchestration_fan_out() -> Result<()> {
    let fixture = start()?;
    let id = "fan-out-1";
    fixture
        .client
        .start_with_id("sub_orchestration_fan_out", id, Some(&json!(3)))?;
    let state = wait(&fixture, id)?;
    assert_completed(&fixture, &state);

    let children = fixture.client.list(&[], Some(&format!("{id}:")), None)?;
    let child_ids: BTreeSet<String> = children
        .iter()
        .map(|child| child["instance_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected: BTreeSet<String> = (1..=10).map(|seq| format!("{id}:{seq:04x}")).collect();
    assert_eq!(child_ids, expected, "{children:#?}");
    assert!(expected.contains(&format!("{id}:000a")));
    for child in &children {
        assert_completed(&fixture, child);
        assert_eq!(child["name"], "fan_out_child", "{child:#}");
        assert_eq!(child["input"], json!(3), "{child:#}");
    }

    // 30 activity executions in all, three per child.
    let all = format!("conformance_a ran increment [instance={id}:");
    let count = wait_for_lines(&fixture, &all, 30)?;
    assert_eq!(count, 30, "{}", fixture.host.log_tail());
    for child in &expected {
        assert_executions(&fixture, "increment", child, 3)?;
    }
    Ok(())
}

/// Scenario 6, sub_orchestrator_by_name: the child, started by the name
/// `"orchestrator_child"`, ran once.
#[test]
fn scenario_06_sub_orchestrator_by_name() -> Result<()> {
    let fixture = start()?;
    let id = "by-name-1";
    fixture
        .client
        .start_with_id("sub_orchestrator_by_name", id, None)?;
    let state = wait(&fixture, id)?;
    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!("child got by name"), "{state:#}");

    let child_id = format!("{id}:0001");
    let child = fixture.client.status(&child_id)?;
    assert_completed(&fixture, &child);
    assert_eq!(child["name"], "orchestrator_child", "{child:#}");
    assert_eq!(child["input"], json!("by name"), "{child:#}");
    assert_eq!(child["output"], json!("child got by name"), "{child:#}");
    assert_executions(&fixture, "orchestrator_child", &child_id, 1)
}

/// Scenario 7, wait_for_multiple_external_events.
#[test]
fn scenario_07_wait_for_multiple_external_events() -> Result<()> {
    wait_for_multiple_external_events()
}

/// Scenario 8, wait_for_external_event_timeout[True]: the event (no payload) wins the
/// race against the 3 s timer.
#[test]
fn scenario_08_wait_for_external_event_timeout_with_event() -> Result<()> {
    let fixture = start()?;
    let id = "approval-1";
    fixture
        .client
        .start_with_id("wait_for_event_or_timeout", id, None)?;
    raise_event(&fixture, id, "Approval", None)?;
    let state = wait(&fixture, id)?;

    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!("approved"), "{state:#}");
    let events = fixture.client.history(id)?;
    assert_eq!(
        of_kind(&events, "timerFired").len(),
        0,
        "{:#}",
        Value::Array(events.clone())
    );
    Ok(())
}

/// Scenario 8, wait_for_external_event_timeout[False]: no event, so the timer wins after
/// 3 s.
#[test]
fn scenario_08_wait_for_external_event_timeout_without_event() -> Result<()> {
    let fixture = start()?;
    let id = "approval-2";
    let started = Instant::now();
    fixture
        .client
        .start_with_id("wait_for_event_or_timeout", id, None)?;
    let state = wait(&fixture, id)?;
    let elapsed = started.elapsed();

    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!("timed out"), "{state:#}");
    // The timer is durable and timed on the orchestration clock: it fired no earlier than
    // 3 s after the orchestration started (allowing for clock granularity).
    assert!(
        elapsed >= APPROVAL_TIMEOUT - Duration::from_millis(100),
        "timed out after only {elapsed:?}"
    );
    let events = fixture.client.history(id)?;
    let dump = format!("{:#}", Value::Array(events.clone()));
    assert_eq!(of_kind(&events, "timerCreated").len(), 1, "{dump}");
    assert_eq!(of_kind(&events, "timerFired").len(), 1, "{dump}");
    Ok(())
}

/// Scenario 9, suspend_and_resume.
#[test]
fn scenario_09_suspend_and_resume() -> Result<()> {
    suspend_and_resume(None)
}

/// Scenario 10, terminate.
#[test]
fn scenario_10_terminate() -> Result<()> {
    terminate()
}

/// Scenario 11, terminate_recursive: the root, waiting on a child that waits for an
/// event, is terminated, then purged. (The child is not checked: the reference backend
/// does not terminate recursively.)
#[test]
fn scenario_11_terminate_recursive() -> Result<()> {
    let fixture = start()?;
    let id = "terminate-root-1";
    fixture
        .client
        .start_with_id("root_awaiting_child", id, None)?;
    // The child exists and runs: the root is waiting on it.
    let child_id = format!("{id}:0001");
    wait_for_status(&fixture, &child_id, &["RUNNING"])?;
    assert_executions(&fixture, "wait_for_event", &child_id, 1)?;

    fixture.client.terminate(id, None)?;
    let state = wait(&fixture, id)?;
    assert_eq!(state["status"], "TERMINATED", "{}", fixture.explain(&state));

    let purged = fixture.client.purge(id)?;
    assert_eq!(purged["deleted"], json!(1), "{purged:#}");
    let run = fixture.client.run(&["status", id])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

/// Scenario 12, restart_with_same_instance_id.
#[test]
fn scenario_12_restart_with_same_instance_id() -> Result<()> {
    restart_with_same_instance_id(false)
}

// ---------------------------------------------------------------------------------------
// test_orchestration_async_e2e.py: the same worker behaviour through the client
// ---------------------------------------------------------------------------------------

/// Scenario 27, async_empty_orchestration.
#[test]
fn scenario_27_async_empty_orchestration() -> Result<()> {
    empty_orchestration(true)
}

/// Scenario 28, async_activity_sequence.
#[test]
fn scenario_28_async_activity_sequence() -> Result<()> {
    activity_sequence(true).map(drop)
}

/// Scenario 29, async_wait_for_multiple_external_events.
#[test]
fn scenario_29_async_wait_for_multiple_external_events() -> Result<()> {
    wait_for_multiple_external_events()
}

/// Scenario 30, async_suspend_and_resume (with reasons on suspend and resume).
#[test]
fn scenario_30_async_suspend_and_resume() -> Result<()> {
    suspend_and_resume(Some("conformance scenario 30"))
}

/// Scenario 31, async_terminate.
#[test]
fn scenario_31_async_terminate() -> Result<()> {
    terminate()
}

/// Scenario 32, async_purge_orchestration: a completed empty orchestration is purged,
/// and then it is gone.
#[test]
fn scenario_32_async_purge_orchestration() -> Result<()> {
    let fixture = start()?;
    let id = "purge-1";
    fixture
        .client
        .start_with_id("empty_orchestrator", id, None)?;
    let state = wait(&fixture, id)?;
    assert_completed(&fixture, &state);

    let purged = fixture.client.purge(id)?;
    assert_eq!(purged["deleted"], json!(1), "{purged:#}");
    let run = fixture.client.run(&["status", id])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

/// Scenario 33, async_restart_with_same_instance_id.
#[test]
fn scenario_33_async_restart_with_same_instance_id() -> Result<()> {
    restart_with_same_instance_id(true)
}

/// Scenario 34, async_restart_with_new_instance_id (scenario 13 through the client).
#[test]
fn scenario_34_async_restart_with_new_instance_id() -> Result<()> {
    let fixture = start()?;
    let id = "restart-new-1";
    fixture.client.start_with_id("hello_world", id, None)?;
    let state = wait(&fixture, id)?;
    assert_completed(&fixture, &state);
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");

    let new_id = fixture.client.restart(id, true)?;
    assert_ne!(new_id, id);
    let state = wait(&fixture, &new_id)?;
    assert_completed(&fixture, &state);
    assert_eq!(state["instance_id"], new_id.as_str(), "{state:#}");
    assert_eq!(state["name"], "hello_world", "{state:#}");
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    assert_executions(&fixture, "say_hello", &new_id, 1)?;

    // The original is untouched.
    let original = fixture.client.status(id)?;
    assert_completed(&fixture, &original);
    assert_eq!(original["output"], json!("Hello, World!"), "{original:#}");
    assert_executions(&fixture, "say_hello", id, 1)
}
