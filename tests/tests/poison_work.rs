//! Poison work (issue 11), in process (`[plugins] isolation = "in-process"`; see
//! `process_isolation.rs` for the default): a plugin that exits, aborts or overflows its stack
//! (in an orchestration step, an activity or an entity batch) still takes the host down
//! with it, but the crash journal ends the crash loop. The host is restarted on the
//! same config and database after each crash, as a service manager would; after
//! `[worker] max_crashes` (3) crashes the work item is failed with `PluginCrashed`, and
//! the host keeps serving. Orchestrations started before, during and after the crash loop
//! complete with their outputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;

use durabletask_e2e::{
    Client, EmbeddedBackend, Error, Host, HostConfig, PluginFile, Result, WAIT,
    assert_hello_cities_completed, free_port, poll_until,
};
use serde_json::{Value, json};

/// The default `[worker] max_crashes`.
const MAX_CRASHES: usize = 3;

/// A host serving `faulty` and `hello` from its embedded backend on `port`, with its
/// database (and so its crash journal, `<database>.crashes`) at `database`, outside the
/// host's scratch folder: each restart is a new scratch folder on the same state.
fn start_host(port: u16, database: &Path) -> Result<Host> {
    let config = HostConfig::embedded()
        .with_embedded(EmbeddedBackend::durable(port, database)?)
        .plugin(PluginFile::built("faulty")?)
        .plugin(PluginFile::built("hello")?)
        .in_process();
    let mut host = Host::start(&config)?;
    host.embedded_endpoint()?;
    Ok(host)
}

/// A healthy orchestration and what it must return.
struct Healthy {
    id: String,
    name: &'static str,
    input: Option<Value>,
}

impl Healthy {
    /// `typed_input` returns its `a`; `hello_cities` greets three cities.
    fn pair(label: &str, n: i64) -> [Healthy; 2] {
        [
            Healthy {
                id: format!("{label}-typed"),
                name: "typed_input",
                input: Some(json!({ "a": n })),
            },
            Healthy {
                id: format!("{label}-hello"),
                name: "hello_cities",
                input: None,
            },
        ]
    }

    /// Starts it. The host may die under the call (the crashing work item is handed out
    /// as soon as the worker connects): then whether the start was committed is read
    /// back, and if it was not, `false` says to start it again on the next host.
    fn start(&self, client: &Client) -> bool {
        client
            .start_with_id(self.name, &self.id, self.input.as_ref())
            .is_ok()
            || client.status(&self.id).is_ok()
    }

    fn assert_completed(&self, client: &Client, host: &Host) -> Result<()> {
        let state = client.wait(&self.id, WAIT)?;
        match self.name {
            "hello_cities" => assert_hello_cities_completed(&state, host),
            _ => {
                assert_eq!(
                    state["status"],
                    "COMPLETED",
                    "{state:#}\n{}",
                    host.log_tail()
                );
                let input = self.input.as_ref().unwrap();
                assert_eq!(state["output"], input["a"], "{state:#}");
            }
        }
        Ok(())
    }
}

/// What a crash loop ended with.
struct Ended {
    /// The crashing orchestration's final state.
    state: Value,
    /// The host that runs now.
    host: Host,
    client: Client,
    /// Every healthy orchestration started so far.
    healthy: Vec<Healthy>,
    /// Holds the database while the host runs.
    _scratch: tempfile::TempDir,
}

/// Starts two healthy orchestrations and `poison` (name, id), then runs the crash loop:
/// waits for the host to die, checks how (`died`), restarts it and starts two more
/// healthy orchestrations on each new host, until the poison orchestration is FAILED,
/// which it must be after exactly [`MAX_CRASHES`] crashes.
fn crash_loop(poison: (&str, &str), died: impl Fn(ExitStatus) -> bool) -> Result<Ended> {
    let scratch = tempfile::tempdir()?;
    let database = scratch.path().join("state.sqlite");
    let port = free_port()?;
    let mut host = start_host(port, &database)?;
    let client = Client::new(format!("http://127.0.0.1:{port}"))?;

    let mut healthy: Vec<Healthy> = Healthy::pair("before", 1).into();
    for orchestration in &healthy {
        assert!(orchestration.start(&client), "{}", host.log_tail());
    }
    let (poison_name, poison_id) = poison;
    // The host may die under the call: the poison work item is handed out as soon as
    // the start is committed (in process, within microseconds), and running it kills
    // the host, maybe before the answer is written. The crash loop below proves that it
    // started; should it not have, the loop's error shows why the call failed.
    let start_error = client
        .start_with_id(poison_name, poison_id, None)
        .err()
        .map(|error| format!("\n(starting {poison_id} failed: {error})"));
    if let Some(error) = &start_error {
        // Only the host going away may fail it: the answer lost, or not read back.
        assert!(
            error.contains("transport error") || error.contains("\"started\":true"),
            "{error}"
        );
    }

    let mut crashes = 0;
    let mut not_started: Vec<usize> = Vec::new();
    let state = loop {
        // Either the host dies (the plugin took it down), or it refuses the work item.
        let outcome = poll_until(WAIT, || {
            if !host.is_running()? {
                return Ok(Some(None));
            }
            Ok(client
                .status(poison_id)
                .ok()
                .filter(|state| state["status"] == "FAILED")
                .map(Some))
        })?
        .ok_or_else(|| {
            Error::new(format!(
                "neither did the host die nor did {poison_id} fail{}\n{}",
                start_error.as_deref().unwrap_or_default(),
                host.log_tail()
            ))
        })?;
        if let Some(state) = outcome {
            break state;
        }
        let status = host.wait_exit(WAIT)?;
        assert!(died(status), "{status:?}\n{}", host.log_tail());
        crashes += 1;
        assert!(
            crashes <= MAX_CRASHES,
            "the host died {crashes} times: the crash loop did not end\n{}",
            host.log_tail()
        );
        host = start_host(port, &database)?;
        let label = format!("during-{crashes}");
        let first = healthy.len();
        healthy.extend(Healthy::pair(&label, i64::try_from(crashes + 1).unwrap()));
        not_started.extend(first..healthy.len());
        not_started.retain(|&index| !healthy[index].start(&client));
    };
    for &index in &not_started {
        assert!(healthy[index].start(&client), "{}", host.log_tail());
    }
    assert_eq!(crashes, MAX_CRASHES, "{}", host.log_tail());
    assert_eq!(state["status"], "FAILED", "{state:#}");
    Ok(Ended {
        state,
        host,
        client,
        healthy,
        _scratch: scratch,
    })
}

/// The failure as the client shows it names the error type, the plugin and the count.
fn assert_plugin_crashed(failure: &Value, what: &str) {
    assert_eq!(failure["error_type"], "PluginCrashed", "{failure:#}");
    let message = failure["message"].as_str().unwrap_or_default();
    for expected in [
        what,
        "plugin faulty 1.0.0",
        "3 times",
        "exit code or signal",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message:?}");
    }
}

impl Ended {
    /// Every healthy orchestration completes, one more started now does too, and the
    /// host still runs.
    fn assert_the_host_keeps_serving(mut self) -> Result<()> {
        let after = Healthy::pair("after", 10);
        for orchestration in &after {
            assert!(
                orchestration.start(&self.client),
                "{}",
                self.host.log_tail()
            );
        }
        self.healthy.extend(after);
        for orchestration in &self.healthy {
            orchestration.assert_completed(&self.client, &self.host)?;
        }
        assert!(self.host.is_running()?, "{}", self.host.log_tail());
        Ok(())
    }
}

#[test]
fn exit_kills_the_host_but_the_poison_counter_ends_the_crash_loop_after_3_restarts() -> Result<()> {
    let ended = crash_loop(("exit_process", "poison-exit"), |status| {
        status.code() == Some(3)
    })?;
    assert_plugin_crashed(
        &ended.state["failure_details"],
        "orchestration 'exit_process'",
    );
    ended.assert_the_host_keeps_serving()
}

#[test]
fn an_activity_that_aborts_fails_with_plugin_crashed_after_3_crashes() -> Result<()> {
    let ended = crash_loop(("call_aborting_activity", "poison-abort"), |status| {
        status.signal() == Some(libc::SIGABRT)
    })?;
    // The orchestrator let the activity's failure propagate with `?`.
    let failure = &ended.state["failure_details"];
    assert_eq!(failure["error_type"], "TaskFailed", "{failure:#}");
    assert_plugin_crashed(&failure["inner_failure"], "activity 'abort_process'");
    ended.assert_the_host_keeps_serving()
}

#[test]
fn a_step_that_overflows_its_stack_fails_with_plugin_crashed_after_3_crashes() -> Result<()> {
    // Rust reports the overflow and aborts; a guard page hit outside Rust's handler
    // would be SIGSEGV.
    let ended = crash_loop(("overflow_stack", "poison-overflow"), |status| {
        matches!(status.signal(), Some(libc::SIGABRT | libc::SIGSEGV))
    })?;
    assert_plugin_crashed(
        &ended.state["failure_details"],
        "orchestration 'overflow_stack'",
    );
    ended.assert_the_host_keeps_serving()
}

#[test]
fn an_entity_batch_that_aborts_fails_its_operations_with_plugin_crashed_after_3_crashes()
-> Result<()> {
    let ended = crash_loop(("call_crashing_entity", "poison-entity"), |status| {
        status.signal() == Some(libc::SIGABRT)
    })?;
    let failure = &ended.state["failure_details"];
    assert_eq!(failure["error_type"], "TaskFailed", "{failure:#}");
    assert_plugin_crashed(&failure["inner_failure"], "@crasher@k");
    ended.assert_the_host_keeps_serving()
}
