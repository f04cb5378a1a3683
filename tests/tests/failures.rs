//! Failures reach the user as failure details with stable error types, and never take
//! the host down or leave an orchestration hanging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Fixture, HostConfig, Result};
use serde_json::{Value, json};

/// The `error_type` of a state's failure details (empty if there are none).
fn error_type(state: &Value) -> &str {
    state["failure_details"]["error_type"]
        .as_str()
        .unwrap_or_default()
}

/// The `message` of a state's failure details (empty if there are none).
fn error_message(state: &Value) -> &str {
    state["failure_details"]["message"]
        .as_str()
        .unwrap_or_default()
}

/// The `stack_trace` of failure details (empty if there is none).
fn stack_trace(details: &Value) -> &str {
    details["stack_trace"].as_str().unwrap_or_default()
}

#[test]
fn an_activity_error_surfaces_as_task_failed_with_the_inner_failure() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;

    let state = fixture.run("call_failing_activity", None)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "TaskFailed", "{state:#}");
    assert!(
        error_message(&state).contains("no such city: Atlantis"),
        "{state:#}"
    );
    // The stack trace is where the orchestrator gave up on the activity: its `?`.
    assert!(
        stack_trace(&state["failure_details"]).starts_with("at tests/plugins/faulty/src/lib.rs:"),
        "{state:#}"
    );
    let inner = &state["failure_details"]["inner_failure"];
    assert_eq!(inner["error_type"], "CityNotFound", "{state:#}");
    assert_eq!(inner["message"], "no such city: Atlantis", "{state:#}");
    Ok(())
}

#[test]
fn a_caught_activity_error_lets_the_orchestration_complete() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;

    let state = fixture.run("catch_failing_activity", None)?;

    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("no such city: Atlantis"));
    Ok(())
}

#[test]
fn an_unknown_orchestrator_fails_with_not_registered() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;

    let state = fixture.run("no_such_orchestrator", None)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "OrchestratorNotRegistered", "{state:#}");
    assert!(
        error_message(&state).contains("no_such_orchestrator"),
        "{state:#}"
    );
    Ok(())
}

#[test]
fn an_unknown_activity_fails_with_not_registered() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;

    let state = fixture.run("call_unknown_activity", None)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "TaskFailed", "{state:#}");
    let inner = &state["failure_details"]["inner_failure"];
    assert_eq!(inner["error_type"], "ActivityNotRegistered", "{state:#}");
    assert!(
        inner["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no_such_activity"),
        "{state:#}"
    );
    Ok(())
}

#[test]
fn an_orchestrator_panic_fails_it_and_the_host_keeps_serving() -> Result<()> {
    let mut fixture = Fixture::start(&["hello", "faulty"])?;

    let state = fixture.run("panic_orchestrator", None)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "PluginPanic", "{state:#}");
    assert!(
        error_message(&state).contains("orchestrator exploded"),
        "{state:#}"
    );
    // The panic's location and backtrace come with it, so the user can find the line.
    let trace = stack_trace(&state["failure_details"]);
    assert!(
        trace.starts_with("at tests/plugins/faulty/src/lib.rs:")
            && trace.contains("faulty::panic_orchestrator"),
        "a PluginPanic should carry the panic's location and backtrace: {state:#}"
    );

    assert!(fixture.host.is_running()?, "{}", fixture.host.log_tail());
    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    Ok(())
}

#[test]
fn an_activity_panic_fails_the_task_with_plugin_panic() -> Result<()> {
    let mut fixture = Fixture::start(&["hello", "faulty"])?;

    let state = fixture.run("call_panicking_activity", None)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "TaskFailed", "{state:#}");
    let inner = &state["failure_details"]["inner_failure"];
    assert_eq!(inner["error_type"], "PluginPanic", "{state:#}");
    assert!(
        inner["message"]
            .as_str()
            .unwrap_or_default()
            .contains("activity exploded"),
        "{state:#}"
    );
    let trace = stack_trace(inner);
    assert!(
        trace.starts_with("at tests/plugins/faulty/src/lib.rs:")
            && trace.contains("faulty::panic_activity"),
        "the activity's PluginPanic should carry the panic's location and backtrace: {state:#}"
    );

    assert!(fixture.host.is_running()?, "{}", fixture.host.log_tail());
    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    Ok(())
}

#[test]
fn input_of_the_wrong_shape_fails_with_invalid_input() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;

    let state = fixture.run("typed_input", Some(json!({"a": "not a number"})))?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "InvalidInput", "{state:#}");

    // The same orchestrator with good input works: the failure was the input's.
    let state = fixture.run("typed_input", Some(json!({"a": 7})))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(7));
    Ok(())
}

#[test]
fn awaiting_a_tokio_timer_in_an_orchestrator_fails_instead_of_hanging() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;

    let state = fixture.run("await_tokio_sleep", None)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "NonDurableAwait", "{state:#}");
    Ok(())
}

/// Issue 11: an orchestrator that blocks held up the whole worker loop, and the host said
/// so only once the step had ended (or never, for a step that never ends). In process,
/// the watchdog names it while it still runs.
#[test]
fn a_step_that_blocks_is_named_while_it_still_runs() -> Result<()> {
    let mut fixture = Fixture::start_with(&["faulty"], HostConfig::in_process)?;
    let id = fixture.client.start("block_in_step", Some(&json!(2500)))?;
    let line = fixture.host.wait_for_log_line(
        &["block_in_step", "has been running for", &id],
        std::time::Duration::from_secs(10),
    )?;
    assert!(line.contains("faulty"), "names the plugin: {line}");
    assert!(line.contains("orchestration step"), "{line}");
    // Reported while it ran: the step's own "took long" line comes after.
    let logs = fixture.host.logs();
    let named = logs.find("has been running for").unwrap_or(usize::MAX);
    let ended = logs
        .find("an orchestration step took long")
        .unwrap_or(usize::MAX);
    assert!(named < ended, "{logs}");
    let state = fixture
        .client
        .wait(&id, std::time::Duration::from_secs(30))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(2500));
    Ok(())
}
