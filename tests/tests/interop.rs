//! Interop with Microsoft's Python SDK worker (`tests/python_worker.py`) on the same
//! reference backend: orchestrations in the host call an activity and a sub-orchestration
//! the Python worker serves, and the other way round.
//!
//! Keeping each worker to its own work: both send work-item filters built from what they
//! register (the Python worker with `use_work_item_filters()`, the host with
//! `[worker] work_item_filters = true`), and the reference backend hands a filtered stream
//! only the items its filters match (protocol.md §1.4, §7.2). Without filters on the
//! host, its unfiltered stream could take any `py_` item queued while it is connected, and
//! fail it as not registered; with them, every item has exactly one taker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use durabletask_e2e::{
    Backend, Client, Host, HostConfig, PluginFile, PythonWorker, Result, WAIT, instance_id,
};
use serde_json::{Value, json};

/// A backend with the Python worker, and then the host, connected to it.
struct Peers {
    host: Host,
    python: PythonWorker,
    client: Client,
    // Declared last so it is dropped after both workers.
    _backend: Backend,
}

impl Peers {
    /// Starts the backend and the Python worker, checks that the Python worker serves
    /// its own orchestration (before the host connects, so nothing can race it), then
    /// starts the host with the `faulty` plugin.
    fn start() -> Result<Self> {
        let backend = Backend::start()?;
        let python = PythonWorker::start(&backend)?;
        let client = Client::new(backend.endpoint())?;
        let state = client.start_and_wait("py_child", Some(&json!(5)), WAIT)?;
        assert_eq!(
            (&state["status"], &state["output"]),
            (&json!("COMPLETED"), &json!(10)),
            "the Python worker alone did not run py_child: {state:#}\n{}",
            python.stderr()
        );
        let host = Host::start(
            &HostConfig::new(backend.endpoint())
                .work_item_filters(true)
                .plugin(PluginFile::built("faulty")?),
        )?;
        Ok(Self {
            host,
            python,
            client,
            _backend: backend,
        })
    }

    fn run(&self, name: &str, input: Value) -> Result<Value> {
        self.client.start_and_wait(name, Some(&input), WAIT)
    }

    fn explain(&self, state: &Value) -> String {
        format!(
            "instance state: {state:#}\n{}\n--- Python worker stderr ---\n{}",
            self.host.log_tail(),
            self.python.stderr()
        )
    }
}

#[test]
fn the_python_worker_with_filters_never_takes_the_hosts_work() -> Result<()> {
    let peers = Peers::start()?;

    // Rust orchestrations and activities only, scheduled together so both workers' streams
    // are busy at once. Had the Python worker taken any of them, it would have failed it
    // as not registered.
    let mut ids = Vec::new();
    for x in 0..5 {
        ids.push(peers.client.start("rust_child", Some(&json!(x)))?);
    }
    let fan_out = peers
        .client
        .start("fan_out_sleep", Some(&json!({"n": 20, "ms": 1})))?;
    for (x, id) in (0..5).zip(&ids) {
        let state = peers.client.wait(id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", peers.explain(&state));
        assert_eq!(state["output"], json!(x + 1));
    }
    let state = peers.client.wait(&fan_out, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", peers.explain(&state));
    assert_eq!(state["output"], json!(20));
    Ok(())
}

#[test]
fn a_host_orchestration_calls_a_python_activity_and_sub_orchestration() -> Result<()> {
    let peers = Peers::start()?;

    // `calls_python_retrying` retries both calls (up to 20 attempts, 100 ms apart), which
    // a host without filters needed: an attempt it was handed failed as not registered.
    // With filters, the first attempt of each goes to the Python worker. Only the Python
    // worker can produce these results.
    let state = peers.run("calls_python_retrying", json!("Ada"))?;
    assert_eq!(state["status"], "COMPLETED", "{}", peers.explain(&state));
    assert_eq!(state["output"], json!(["Hello Ada from Python!", 42]));

    // The history shows the Python results arriving, and how many attempts the host took.
    let history = peers.client.history(&instance_id(&state)?)?;
    let completed: Vec<&Value> = history
        .iter()
        .filter(|event| event["kind"] == "taskCompleted")
        .map(|event| &event["result"])
        .collect();
    assert_eq!(
        completed,
        [&json!("Hello Ada from Python!")],
        "{history:#?}"
    );
    let sub_completed: Vec<&Value> = history
        .iter()
        .filter(|event| event["kind"] == "subOrchestrationInstanceCompleted")
        .map(|event| &event["result"])
        .collect();
    assert_eq!(sub_completed, [&json!(42)], "{history:#?}");
    let count = |kind: &str| history.iter().filter(|event| event["kind"] == kind).count();
    assert_eq!(
        (count("taskFailed"), count("subOrchestrationInstanceFailed")),
        (0, 0),
        "the host's filters should keep the py_ work away from it: {history:#?}"
    );
    Ok(())
}

#[test]
fn round_trips_both_ways_without_retries() -> Result<()> {
    let peers = Peers::start()?;

    // Host → Python: an activity and a sub-orchestration, no retry policy.
    let state = peers.run("calls_python", json!("Grace"))?;
    assert_eq!(state["status"], "COMPLETED", "{}", peers.explain(&state));
    assert_eq!(state["output"], json!(["Hello Grace from Python!", 42]));

    // Python → host: py_parent calls the Rust activity rust_square and the Rust
    // sub-orchestrator rust_child. Every step of py_parent is queued while the host is
    // connected: only the filters keep them with the Python worker.
    let state = peers.run("py_parent", json!(7))?;
    assert_eq!(state["status"], "COMPLETED", "{}", peers.explain(&state));
    assert_eq!(state["output"], json!([49, 8]));

    // Several of each at once, so both streams are busy together.
    let host_side: Vec<String> = (0..5)
        .map(|i| {
            peers
                .client
                .start("calls_python", Some(&json!(format!("n{i}"))))
        })
        .collect::<Result<_>>()?;
    let python_side: Vec<String> = (0..5)
        .map(|n| peers.client.start("py_parent", Some(&json!(n))))
        .collect::<Result<_>>()?;
    for (i, id) in host_side.iter().enumerate() {
        let state = peers.client.wait(id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", peers.explain(&state));
        assert_eq!(
            state["output"],
            json!([format!("Hello n{i} from Python!"), 42])
        );
    }
    for (n, id) in (0_i64..).zip(&python_side) {
        let state = peers.client.wait(id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", peers.explain(&state));
        assert_eq!(state["output"], json!([n * n, n + 1]));
    }

    // The host said which work it asked for.
    let filters = peers.host.log_lines_with(&["work-item filters on"]);
    assert_eq!(filters.len(), 1, "{}", peers.host.log_tail());
    assert!(
        filters[0].contains("calls_python") && filters[0].contains("rust_square"),
        "{}",
        filters[0]
    );
    assert!(!filters[0].contains("py_greet"), "{}", filters[0]);
    Ok(())
}

/// How long the Python worker may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn the_python_worker_stops_on_sigterm() -> Result<()> {
    let backend = Backend::start()?;
    let mut python = PythonWorker::start(&backend)?;
    let status = python.stop(STOP_TIMEOUT)?;
    assert!(status.success(), "{status}\n{}", python.stderr());
    Ok(())
}
