//! A worker host whose remote backend goes away for a long while and comes back on the same
//! address (issue 10, item 8). The "remote" backend is a second host in embedded mode that
//! takes no work itself (work-item filters on, no plugins), so no Python is needed.
//!
//! Before: the backoff grew to 30 s, so after a long outage the worker slept up to 30 s
//! between attempts and came back 8-17 s after the backend did, and the outage was logged
//! at INFO, one line per attempt. Now a backend that does not answer is tried again at
//! least every 2 s, the outage is one WARN line (then a summary every 30 s), and the return
//! an INFO line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use durabletask_e2e::{
    Client, EMBEDDED_LISTENING, Host, HostConfig, PluginFile, Result, WAIT,
    assert_hello_cities_completed,
};

/// Longer than the old backoff's first four ceilings together (2 + 4 + 8 + 16 s would
/// have reached the 30 s cap), kept short so the test takes well under a minute.
const OUTAGE: Duration = Duration::from_secs(20);

/// How soon after the backend listens again the worker must be back.
const BACK_WITHIN: Duration = Duration::from_secs(3);

/// A port nothing listens on now (the backend host binds it; its restart reuses it).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn backend_host(port: u16, database: &Path) -> Result<Host> {
    Host::start(&HostConfig::backend_only(port, database))
}

#[test]
fn after_a_long_outage_the_worker_is_back_within_seconds_of_the_backend() -> Result<()> {
    let state_dir = tempfile::tempdir()?;
    let database = state_dir.path().join("backend.sqlite");
    let port = free_port()?;
    let mut backend = backend_host(port, &database)?;
    let endpoint = backend.embedded_endpoint()?;
    let mut worker = Host::start(
        &HostConfig::new(endpoint.clone())
            .plugin(PluginFile::built("hello")?)
            .log_level("info"),
    )?;
    let client = Client::new(endpoint)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &worker);

    backend.kill9()?;
    let lost = Instant::now();
    let warning = worker.wait_for_log("cannot reach the backend", WAIT)?;
    assert!(warning.contains(" WARN "), "{warning}");
    // The outage itself: nothing to wait for but time (the worker's attempts are DEBUG).
    std::thread::sleep(OUTAGE.saturating_sub(lost.elapsed()));
    assert!(
        !worker.log_contains("reconnected to the backend"),
        "{}",
        worker.log_tail()
    );
    let attempts_logged = worker.log_lines_with(&["cannot reach the backend"]).len()
        + worker.log_lines_with(&["still unreachable"]).len();
    assert_eq!(
        attempts_logged,
        1,
        "one WARN line for a 20 s outage, not one per attempt\n{}",
        worker.log_tail()
    );

    let mut backend = backend_host(port, &database)?;
    backend.wait_for_log(EMBEDDED_LISTENING, WAIT)?;
    let back = Instant::now();
    let line = worker.wait_for_log("reconnected to the backend", WAIT)?;
    let took = back.elapsed();
    assert!(
        took < BACK_WITHIN,
        "the worker was back {took:?} after the backend\n{}",
        worker.log_tail()
    );
    assert!(line.contains(" INFO "), "{line}");

    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &worker);
    Ok(())
}
