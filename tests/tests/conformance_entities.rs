//! Conformance scenarios 35-46 and 50-60 of `shared/spec/protocol.md` §8 (the entity
//! tests of the reference SDK): entities and orchestrators written with our SDK (the
//! `conformance_entities` test plugin) run by the host against the reference backend,
//! checked the way a user checks them, through the client: instance states and
//! `get-entity`. Scenarios 47-49 (entity id parsing) are unit tests of the SDK
//! (`plugin-sdk/src/entity/id.rs`).
//!
//! Every entity of the plugin counts its `do_nothing` runs in its state, so "the entity
//! ran" and "it ran twice" are read from the backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::{Duration, Instant};

use durabletask_e2e::{Error, Fixture, Result, WAIT, exit_codes, poll_until};
use serde_json::{Value, json};

const PLUGIN: &str = "conformance_entities";

/// The reference tests' failure message.
const SOMETHING_WENT_WRONG: &str = "Something went wrong!";

fn start() -> Result<Fixture> {
    Fixture::start(&[PLUGIN])
}

/// The entity's state, or `None` if the backend has no such entity (`get-entity` exits
/// with "not found").
fn entity_state(fixture: &Fixture, id: &str) -> Result<Option<Value>> {
    let run = fixture.client.run(&["get-entity", id])?;
    match run.exit_code {
        Some(exit_codes::NOT_FOUND) => Ok(None),
        _ => {
            let entity = run.ok()?;
            assert_eq!(entity["exists"], true, "{entity:#}");
            Ok(Some(entity["state"].clone()))
        }
    }
}

/// Waits (bounded) until the entity has run `do_nothing` `runs` times; fails with the
/// last state and the host's log otherwise.
fn wait_for_runs(fixture: &Fixture, id: &str, runs: u64) -> Result<()> {
    let mut last = None;
    let reached = poll_until(WAIT, || {
        last = entity_state(fixture, id)?;
        Ok((last == Some(json!(runs))).then_some(()))
    })?;
    reached.ok_or_else(|| {
        Error::new(format!(
            "entity {id} did not reach {runs} runs; its state: {last:?}\n{}",
            fixture.host.log_tail()
        ))
    })
}

/// Signals `operation` to `id` through the client, optionally `--at` a time.
fn signal(fixture: &Fixture, id: &str, operation: &str, at: Option<&str>) -> Result<Value> {
    let mut args = vec!["signal-entity", id, operation];
    if let Some(at) = at {
        args.extend(["--at", at]);
    }
    fixture.client.run(&args)?.ok()
}

/// Runs `orchestrator` on `{"entity": id, "operation": operation}` and waits for it.
fn run_on(fixture: &Fixture, orchestrator: &str, id: &str, operation: &str) -> Result<Value> {
    fixture.run(
        orchestrator,
        Some(json!({ "entity": id, "operation": operation })),
    )
}

fn assert_completed_with(fixture: &Fixture, state: &Value, output: &Value) {
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(state));
    assert_eq!(&state["output"], output, "{state:#}");
}

/// Scenarios 42-43: an operation's failure, not caught, fails the orchestration with the
/// reference's message.
fn assert_entity_failure_fails(fixture: &Fixture, id: &str, canonical: &str) -> Result<()> {
    let state = run_on(fixture, "call_entity", id, "fail")?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    let details = &state["failure_details"];
    assert_eq!(details["error_type"], "TaskFailed", "{state:#}");
    assert_eq!(
        details["message"],
        format!(
            "Operation 'fail' on entity '{canonical}' failed with error: {SOMETHING_WENT_WRONG}"
        ),
        "{state:#}"
    );
    Ok(())
}

/// Scenarios 44-45: the same failure, caught, is a value the orchestration can return.
fn assert_entity_failure_is_caught(fixture: &Fixture, id: &str) -> Result<()> {
    let state = run_on(fixture, "catch_entity_failure", id, "fail")?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    let message = state["output"].as_str().unwrap_or_default();
    assert!(message.contains(SOMETHING_WENT_WRONG), "{state:#}");
    Ok(())
}

/// Scenarios 39 and 41: a signal for two seconds from now has not run after half a
/// second and has run after about two (no earlier than 1.5 s after `sent`).
fn assert_deferred(fixture: &Fixture, id: &str, sent: Instant) -> Result<()> {
    // The scenario is about time: looking before the delivery time needs a sleep.
    thread::sleep(Duration::from_millis(500).saturating_sub(sent.elapsed()));
    // The backend may already list the entity, with no state, until the signal runs.
    let state = entity_state(fixture, id)?.filter(|state| !state.is_null());
    assert_eq!(state, None, "{id} ran before its time");
    wait_for_runs(fixture, id, 1)?;
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "ran after {elapsed:?}"
    );
    Ok(())
}

// ---- class-based entities (35-38) ----

#[test]
fn s35_client_signal_reaches_a_class_entity_registered_under_a_custom_name() -> Result<()> {
    let fixture = start()?;
    // Registered as "EntityNameCustom": the name is case-insensitive, stored lowercase.
    let reply = signal(&fixture, "@EntityNameCustom@testEntity", "do_nothing", None)?;
    assert_eq!(
        reply["entity_id"], "@entitynamecustom@testEntity",
        "{reply:#}"
    );
    wait_for_runs(&fixture, "@entitynamecustom@testEntity", 1)
}

#[test]
fn s36_client_gets_a_class_entity_with_its_state() -> Result<()> {
    let fixture = start()?;
    signal(&fixture, "@EmptyEntity@testEntity", "do_nothing", None)?;
    wait_for_runs(&fixture, "@emptyentity@testEntity", 1)?;
    let entity = fixture
        .client
        .run(&["get-entity", "@EmptyEntity@testEntity"])?
        .ok()?;
    assert_eq!(entity["exists"], true, "{entity:#}");
    assert_eq!(entity["entity_id"], "@emptyentity@testEntity", "{entity:#}");
    assert_eq!(entity["state"], json!(1), "{entity:#}");
    Ok(())
}

#[test]
fn s37_orchestration_signals_a_class_entity_and_completes() -> Result<()> {
    let fixture = start()?;
    let state = run_on(
        &fixture,
        "signal_entity",
        "@EntityNameCustom@fromOrchestration",
        "do_nothing",
    )?;
    assert_completed_with(&fixture, &state, &Value::Null);
    wait_for_runs(&fixture, "@entitynamecustom@fromOrchestration", 1)
}

#[test]
fn s38_orchestration_calls_a_class_entity() -> Result<()> {
    let fixture = start()?;
    let state = run_on(&fixture, "call_entity", "@EmptyEntity@called", "do_nothing")?;
    assert_completed_with(&fixture, &state, &Value::Null);
    // The call returned, so the operation already ran.
    assert_eq!(
        entity_state(&fixture, "@emptyentity@called")?,
        Some(json!(1))
    );
    Ok(())
}

// ---- delayed signals (39-41) ----

#[test]
fn s39_a_delayed_client_signal_is_deferred() -> Result<()> {
    let fixture = start()?;
    let sent = Instant::now();
    let reply = signal(&fixture, "@EmptyEntity@later", "do_nothing", Some("+2s"))?;
    assert!(reply["scheduled_time"].is_string(), "{reply:#}");
    assert_deferred(&fixture, "@emptyentity@later", sent)
}

#[test]
fn s40_an_immediate_client_signal_runs_at_once() -> Result<()> {
    let fixture = start()?;
    signal(&fixture, "@EmptyEntity@now", "do_nothing", None)?;
    wait_for_runs(&fixture, "@emptyentity@now", 1)
}

#[test]
fn s41_a_delayed_orchestration_signal_is_deferred_and_carries_its_time() -> Result<()> {
    let fixture = start()?;
    let sent = Instant::now();
    let state = run_on(
        &fixture,
        "signal_entity_later",
        "@EmptyEntity@orchestrated",
        "do_nothing",
    )?;
    assert_completed_with(&fixture, &state, &Value::Null);
    let id = state["instance_id"].as_str().unwrap();
    let history = fixture.client.history(id)?;
    let signalled: Vec<&Value> = history
        .iter()
        .filter(|e| e["kind"] == "entityOperationSignaled")
        .collect();
    assert_eq!(signalled.len(), 1, "{history:#?}");
    assert!(signalled[0]["scheduledTime"].is_string(), "{history:#?}");
    assert_deferred(&fixture, "@emptyentity@orchestrated", sent)
}

// ---- failures (42-46) ----

#[test]
fn s42_an_unhandled_class_entity_failure_fails_the_orchestration() -> Result<()> {
    let fixture = start()?;
    assert_entity_failure_fails(
        &fixture,
        "@FailingEntity@testEntity",
        "@failingentity@testEntity",
    )
}

#[test]
fn s43_an_unhandled_function_entity_failure_fails_the_orchestration() -> Result<()> {
    let fixture = start()?;
    assert_entity_failure_fails(
        &fixture,
        "@failing_entity@testEntity",
        "@failing_entity@testEntity",
    )
}

#[test]
fn s44_a_handled_class_entity_failure_lets_the_orchestration_complete() -> Result<()> {
    let fixture = start()?;
    assert_entity_failure_is_caught(&fixture, "@FailingEntity@testEntity")
}

#[test]
fn s45_a_handled_function_entity_failure_lets_the_orchestration_complete() -> Result<()> {
    let fixture = start()?;
    assert_entity_failure_is_caught(&fixture, "@failing_entity@testEntity")
}

#[test]
fn s46_a_failed_operation_inside_a_critical_section_leaves_the_entity_unlocked() -> Result<()> {
    let fixture = start()?;
    let state = run_on(
        &fixture,
        "failure_unlocks_entity",
        "@failing_entity@locked",
        "fail",
    )?;
    assert_completed_with(&fixture, &state, &json!(2));
    Ok(())
}

// ---- function-based entities (50-60) ----

#[test]
fn s50_client_signal_reaches_a_function_entity_registered_under_a_custom_name() -> Result<()> {
    let fixture = start()?;
    signal(
        &fixture,
        "@FunctionNameCustom@testEntity",
        "do_nothing",
        None,
    )?;
    wait_for_runs(&fixture, "@functionnamecustom@testEntity", 1)
}

#[test]
fn s51_client_gets_a_function_entity_with_its_state() -> Result<()> {
    let fixture = start()?;
    signal(
        &fixture,
        "@FunctionNameCustom@testEntity",
        "do_nothing",
        None,
    )?;
    wait_for_runs(&fixture, "@functionnamecustom@testEntity", 1)?;
    let entity = fixture
        .client
        .run(&["get-entity", "@functionnamecustom@testEntity"])?
        .ok()?;
    assert_eq!(
        entity["entity_id"], "@functionnamecustom@testEntity",
        "{entity:#}"
    );
    assert_eq!(entity["state"], json!(1), "{entity:#}");
    Ok(())
}

#[test]
fn s52_orchestration_signals_a_function_entity() -> Result<()> {
    let fixture = start()?;
    let state = run_on(
        &fixture,
        "signal_entity",
        "@FunctionNameCustom@signal_testEntity",
        "do_nothing",
    )?;
    assert_completed_with(&fixture, &state, &Value::Null);
    wait_for_runs(&fixture, "@functionnamecustom@signal_testEntity", 1)
}

#[test]
fn s53_orchestration_calls_a_function_entity() -> Result<()> {
    let fixture = start()?;
    let state = run_on(
        &fixture,
        "call_entity",
        "@FunctionNameCustom@call_testEntity",
        "do_nothing",
    )?;
    assert_completed_with(&fixture, &state, &Value::Null);
    assert_eq!(
        entity_state(&fixture, "@functionnamecustom@call_testEntity")?,
        Some(json!(1))
    );
    Ok(())
}

#[test]
fn s54_a_call_inside_a_critical_section_releases_the_lock_for_the_next_run() -> Result<()> {
    let fixture = start()?;
    let id = "@FunctionNameCustom@locked";
    for run in 1..=2 {
        let state = run_on(&fixture, "call_entity_with_lock", id, "do_nothing")?;
        assert_completed_with(&fixture, &state, &Value::Null);
        assert_eq!(
            entity_state(&fixture, "@functionnamecustom@locked")?,
            Some(json!(run))
        );
    }
    Ok(())
}

#[test]
fn s55_an_entity_signals_another_entity() -> Result<()> {
    let fixture = start()?;
    let state = run_on(
        &fixture,
        "call_entity",
        "@FunctionNameCustom@first",
        "signal_other",
    )?;
    assert_completed_with(&fixture, &state, &Value::Null);
    wait_for_runs(&fixture, "@functionnamecustom@first_otherEntity", 1)
}

#[test]
fn s56_an_entity_starts_an_orchestration() -> Result<()> {
    let fixture = start()?;
    signal(
        &fixture,
        "@FunctionNameCustom@starter",
        "start_orchestration",
        None,
    )?;
    // The entity starts `empty_orchestrator` as `<its key>_started`; wait for it to
    // exist, then for it to complete.
    let exists = poll_until(WAIT, || {
        let run = fixture.client.run(&["status", "starter_started"])?;
        Ok((run.exit_code == Some(exit_codes::OK)).then_some(()))
    })?;
    assert!(exists.is_some(), "{}", fixture.host.log_tail());
    let state = fixture.client.wait("starter_started", WAIT)?;
    assert_eq!(state["name"], "empty_orchestrator", "{state:#}");
    assert_completed_with(&fixture, &state, &Value::Null);
    Ok(())
}

#[test]
fn s57_a_critical_section_refuses_signals_and_concurrent_calls_to_a_locked_entity() -> Result<()> {
    let fixture = start()?;
    let state = run_on(
        &fixture,
        "locking_behavior",
        "@FunctionNameCustom@rules",
        "do_nothing",
    )?;
    assert_completed_with(&fixture, &state, &Value::Null);
    // Only the one allowed call ran.
    assert_eq!(
        entity_state(&fixture, "@functionnamecustom@rules")?,
        Some(json!(1))
    );
    Ok(())
}

#[test]
fn s58_the_lock_is_released_when_user_code_fails_inside_the_section() -> Result<()> {
    let fixture = start()?;
    let id = "@FunctionNameCustom@throws";
    for _ in 0..2 {
        let state = run_on(&fixture, "lock_then_throw", id, "do_nothing")?;
        assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
        assert_eq!(state["failure_details"]["error_type"], "UserError");
    }
    // The second run got the lock: both calls ran.
    assert_eq!(
        entity_state(&fixture, "@functionnamecustom@throws")?,
        Some(json!(2))
    );
    Ok(())
}

#[test]
fn s59_the_lock_is_released_when_user_code_never_releases_it() -> Result<()> {
    let fixture = start()?;
    let id = "@FunctionNameCustom@forgotten";
    for _ in 0..2 {
        let state = run_on(&fixture, "lock_without_release", id, "do_nothing")?;
        assert_completed_with(&fixture, &state, &Value::Null);
    }
    assert_eq!(
        entity_state(&fixture, "@functionnamecustom@forgotten")?,
        Some(json!(2))
    );
    Ok(())
}

#[test]
fn s60_get_entity_of_an_unknown_entity_says_it_does_not_exist() -> Result<()> {
    let fixture = start()?;
    let run = fixture
        .client
        .run(&["get-entity", "@FunctionNameCustom@nobody"])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:?}");
    assert_eq!(run.json["exists"], false, "{run:?}");
    Ok(())
}
