//! The `client` subcommand's contract: one JSON object per call, and exit codes that tell
//! success, timeout, not-found and errors apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Client, Fixture, Result, WAIT, exit_codes};
use serde_json::json;

#[test]
fn start_prints_the_instance_and_honours_a_chosen_id() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;

    let run = fixture.client.run(&[
        "start",
        "hello_cities",
        "--id",
        "greet-1",
        "--wait",
        "--timeout",
        "60",
    ])?;

    assert_eq!(run.exit_code, Some(exit_codes::OK), "{run:#?}");
    let state = run.json;
    assert_eq!(state["instance_id"], "greet-1", "{state:#}");
    assert_eq!(state["name"], "hello_cities", "{state:#}");
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    for field in [
        "input",
        "output",
        "custom_status",
        "failure_details",
        "created_at",
        "last_updated_at",
        "version",
    ] {
        assert!(state.get(field).is_some(), "no {field} in {state:#}");
    }

    let status = fixture.client.status("greet-1")?;
    assert_eq!(status["status"], "COMPLETED", "{status:#}");
    assert_eq!(status["output"], state["output"]);
    Ok(())
}

#[test]
fn status_of_an_unknown_instance_exits_4() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;

    let run = fixture.client.run(&["status", "no-such-instance"])?;

    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

#[test]
fn an_unreachable_backend_exits_2_with_a_json_error() -> Result<()> {
    // Port 1 is privileged and unused: the connection is refused at once.
    let client = Client::new("http://127.0.0.1:1")?;

    let run = client.run(&["status", "anything"])?;

    assert_eq!(run.exit_code, Some(exit_codes::ERROR), "{run:#?}");
    assert!(run.json.get("error").is_some(), "{run:#?}");
    Ok(())
}

#[test]
fn wait_times_out_with_exit_3_and_terminate_and_purge_work() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    // Twenty 300 ms steps: still running when the one-second wait gives up.
    let id = fixture.client.start("slow_sequence", Some(&json!(20)))?;

    let run = fixture.client.run(&["wait", &id, "--timeout", "1"])?;
    assert_eq!(run.exit_code, Some(exit_codes::TIMEOUT), "{run:#?}");

    fixture
        .client
        .terminate(&id, Some(&json!({"reason": "test"})))?;
    let state = fixture.client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "TERMINATED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!({"reason": "test"}));

    fixture.client.purge(&id)?;
    let run = fixture.client.run(&["status", &id])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

#[test]
fn suspend_and_resume_pause_and_continue_an_orchestration() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    // Ten 300 ms steps: long enough to be caught running.
    let id = fixture.client.start("slow_sequence", Some(&json!(10)))?;
    fixture.client.wait_for_status(&id, &["RUNNING"], WAIT)?;

    fixture.client.run(&["suspend", &id])?.ok()?;
    fixture.client.wait_for_status(&id, &["SUSPENDED"], WAIT)?;

    // A suspended orchestration does not finish, however long it is given.
    let run = fixture.client.run(&["wait", &id, "--timeout", "2"])?;
    assert_eq!(run.exit_code, Some(exit_codes::TIMEOUT), "{run:#?}");

    fixture.client.run(&["resume", &id])?.ok()?;
    let state = fixture.client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(10));
    Ok(())
}

#[test]
fn raise_event_is_accepted_for_a_running_instance() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    let id = fixture.client.start("slow_sequence", Some(&json!(2)))?;

    // slow_sequence waits for no event: a raised one is recorded and ignored.
    let run = fixture
        .client
        .run(&["raise-event", &id, "nudge", "--data", r#"{"n":1}"#])?;
    assert_eq!(run.exit_code, Some(exit_codes::OK), "{run:#?}");

    let state = fixture.client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(2));
    Ok(())
}

#[test]
fn a_closed_stdout_exits_141_quietly_instead_of_panicking() -> Result<()> {
    use std::io::Read;
    use std::process::{Command, Stdio};
    // Port 1 refuses at once, so the client has its (error) object to print right away; the
    // read end of its stdout is closed before that, as `client ... | head -c 0` would.
    let mut child = Command::new(durabletask_e2e::paths::host_binary()?)
        .args(["client", "--endpoint", "http://127.0.0.1:1", "status", "x"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr)?;
    let status = child.wait()?;

    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(141), "{status:?} {stderr}");
    Ok(())
}

#[test]
fn start_whose_wait_times_out_says_the_instance_was_started() -> Result<()> {
    use durabletask_e2e::{Host, HostConfig, PluginFile};
    let mut host = Host::start(&HostConfig::embedded().plugin(PluginFile::built("faulty")?))?;
    let client = Client::new(host.embedded_endpoint()?)?;

    // Twenty 300 ms steps: still running when the one-second wait gives up.
    let run = client.run(&[
        "start",
        "slow_sequence",
        "--input",
        "20",
        "--id",
        "started-1",
        "--wait",
        "--timeout",
        "1",
    ])?;

    assert_eq!(run.exit_code, Some(exit_codes::TIMEOUT), "{run:#?}");
    assert_eq!(run.json["instance_id"], "started-1", "{run:#?}");
    assert_eq!(run.json["started"], true, "{run:#?}");
    assert!(run.stderr.contains("'started-1' was started"), "{run:#?}");
    let state = client.wait("started-1", WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    Ok(())
}

#[test]
fn a_result_that_cannot_be_written_is_an_error_not_a_closed_pipe() -> Result<()> {
    use std::process::{Command, Stdio};
    // /dev/full: every write fails with ENOSPC, as on a full disk. Unlike a reader that
    // closed the pipe, that loses the result: exit 2 and say so on stderr.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
    let output = Command::new(durabletask_e2e::paths::host_binary()?)
        .args(["client", "--endpoint", "http://127.0.0.1:1", "status", "x"])
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(output.status.code(), Some(exit_codes::ERROR), "{stderr}");
    assert!(
        stderr.contains("cannot write the result to stdout"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}
