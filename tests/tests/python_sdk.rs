//! Microsoft's Python SDK (`durabletask==1.12.0`), its worker and its client, with no host
//! involved, runs the scenarios of `tests/python_sdk_scenarios.py` against a backend:
//! function chaining, fan-out/fan-in, external events (received and timed out), timers,
//! sub-orchestrations, continue-as-new, suspend/resume, terminate, and entity
//! signal/call/lock. The script checks each scenario itself and prints `PASS <name>` or
//! `FAIL <name>: <why>`; this test requires a PASS line for every one.
//!
//! Both backends are tested: Microsoft's in-memory backend (which checks the script), and
//! the host's own embedded backend, with no plugin loaded: the host is only the backend.
//! Then the host with `config/host.toml` as shipped and a plugin of its own: with the
//! default work-item filters it takes only its plugin's work, beside the Python worker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use durabletask_e2e::{Backend, Error, Host, HostConfig, Result, paths, python, run_with_timeout};

/// The scenarios the script must report, in its order.
const SCENARIOS: [&str; 12] = [
    "function_chaining",
    "fan_out_fan_in",
    "external_event_received",
    "external_event_timeout",
    "durable_timer",
    "sub_orchestration",
    "continue_as_new",
    "suspend_resume",
    "terminate",
    "entity_signal",
    "entity_call",
    "entity_lock",
];

/// The script's bound on each scenario (`--timeout`).
const SCENARIO_TIMEOUT_S: u64 = 60;

/// The bound on the whole script: every scenario at its limit (plus the script's 5 s
/// backstop each), and a minute for Python start-up and worker shutdown. A passing run
/// takes a few seconds.
const SCRIPT_TIMEOUT: Duration =
    Duration::from_secs(SCENARIOS.len() as u64 * (SCENARIO_TIMEOUT_S + 5) + 60);

/// A running backend the script can reach.
struct BackendUnderTest {
    /// HOST:PORT, as the script's `--address` wants it (no scheme).
    address: String,
    /// What the backend logged so far, for a failure message. It owns the backend:
    /// dropping it stops the backend.
    logs: Box<dyn Fn() -> String>,
}

/// Microsoft's in-memory backend.
fn reference_backend() -> Result<BackendUnderTest> {
    let backend = Backend::start()?;
    let endpoint = backend.endpoint();
    Ok(BackendUnderTest {
        address: without_scheme(&endpoint)?,
        logs: Box::new(move || backend.stderr()),
    })
}

/// The host serving its own embedded backend, and no plugin. Its own worker sends
/// work-item filters (empty: it registers nothing), so every work item goes to the
/// Python worker, as it would beside any other worker sharing the backend.
fn embedded_backend() -> Result<BackendUnderTest> {
    let mut host = Host::start(&HostConfig::embedded().work_item_filters(true))?;
    let endpoint = host.embedded_endpoint()?;
    Ok(BackendUnderTest {
        address: without_scheme(&endpoint)?,
        logs: Box::new(move || host.log_tail()),
    })
}

fn without_scheme(endpoint: &str) -> Result<String> {
    endpoint
        .strip_prefix("http://")
        .map(str::to_owned)
        .ok_or_else(|| Error::new(format!("unexpected backend endpoint {endpoint}")))
}

/// `config/host.toml` as shipped (work-item filters on by default), serving the hello
/// plugin: the host takes only its plugin's work, and Microsoft's Python worker beside it
/// gets all of its own.
fn shipped_config_with_a_plugin() -> Result<BackendUnderTest> {
    let hello = durabletask_e2e::PluginFile::built("hello")?;
    let mut host = Host::start_with_config_text(&durabletask_e2e::shipped_config()?, &[hello])?;
    let endpoint = host.embedded_endpoint()?;
    let client = durabletask_e2e::Client::new(endpoint.clone())?;
    let state = client.start_and_wait("hello_cities", None, durabletask_e2e::WAIT)?;
    durabletask_e2e::assert_hello_cities_completed(&state, &host);
    Ok(BackendUnderTest {
        address: without_scheme(&endpoint)?,
        logs: Box::new(move || host.log_tail()),
    })
}

#[test]
fn the_python_sdk_runs_every_scenario_beside_a_host_with_the_shipped_config() -> Result<()> {
    run_every_scenario(shipped_config_with_a_plugin()?)
}

#[test]
fn the_python_sdk_runs_every_scenario_against_the_reference_backend() -> Result<()> {
    run_every_scenario(reference_backend()?)
}

#[test]
fn the_python_sdk_runs_every_scenario_against_the_embedded_backend() -> Result<()> {
    run_every_scenario(embedded_backend()?)
}

/// Runs the script against `backend` and requires a PASS for every scenario.
fn run_every_scenario(backend: BackendUnderTest) -> Result<()> {
    let script = paths::workspace_root()
        .join("tests")
        .join("python_sdk_scenarios.py");
    let output = run_with_timeout(
        Command::new(python::reference_python()?)
            .arg(&script)
            .args(["--address", &backend.address])
            .args(["--timeout", &SCENARIO_TIMEOUT_S.to_string()]),
        SCRIPT_TIMEOUT,
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let explain = || {
        format!(
            "--- script stdout ---\n{stdout}\n--- script stderr ---\n{}\n--- backend log ---\n{}",
            String::from_utf8_lossy(&output.stderr),
            (backend.logs)()
        )
    };

    let results: Vec<&str> = stdout
        .lines()
        .filter(|line| {
            ["PASS ", "FAIL ", "SKIP "]
                .iter()
                .any(|p| line.starts_with(p))
        })
        .collect();
    let expected: Vec<String> = SCENARIOS
        .iter()
        .map(|name| format!("PASS {name}"))
        .collect();
    assert_eq!(
        results,
        expected,
        "not every scenario passed\n{}",
        explain()
    );
    assert!(
        stdout
            .lines()
            .any(|line| line == format!("SUMMARY passed={} failed=0", SCENARIOS.len())),
        "no clean SUMMARY line\n{}",
        explain()
    );
    assert!(
        output.status.success(),
        "the script exited with {}\n{}",
        output.status,
        explain()
    );
    Ok(())
}
