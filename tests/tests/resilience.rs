//! The host survives its backend dying and restarting, and stops gracefully on
//! SIGTERM/SIGINT without losing work it accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use durabletask_e2e::{
    Backend, Client, Host, HostConfig, PluginFile, Result, WAIT, assert_hello_cities_completed,
};
use serde_json::json;

#[test]
fn the_host_reconnects_after_the_backend_is_killed_and_restarted() -> Result<()> {
    let mut backend = Backend::start()?;
    let port = backend.port();
    let config = HostConfig::new(backend.endpoint())
        .plugin(PluginFile::built("hello")?)
        .plugin(PluginFile::built("faulty")?);
    let mut host = Host::start(&config)?;
    let client = Client::new(backend.endpoint())?;

    // Connected and serving.
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_eq!(
        state["status"],
        "COMPLETED",
        "{state:#}\n{}",
        host.log_tail()
    );

    // Kill the backend while an activity is in flight (mid-run), like a crash: no
    // goodbye, the stream just breaks. Its in-memory state is gone with it.
    client.start("slow_sequence", Some(&json!(5)))?;
    host.wait_for_log("sleep_ms started", WAIT)?;
    backend.kill()?;
    drop(backend);

    let _backend = Backend::start_on(port)?;

    // New work completes: the host reconnected (with backoff) on its own.
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    assert!(host.is_running()?, "{}", host.log_tail());
    Ok(())
}

#[test]
fn a_silent_stream_is_treated_as_dead_and_the_host_reconnects() -> Result<()> {
    let backend = Backend::start()?;
    let config = HostConfig::new(backend.endpoint())
        .plugin(PluginFile::built("hello")?)
        .stream_silence_timeout("2s");
    let mut host = Host::start(&config)?;
    let client = Client::new(backend.endpoint())?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_eq!(
        state["status"],
        "COMPLETED",
        "{state:#}\n{}",
        host.log_tail()
    );

    // A frozen backend keeps its TCP connections open: only the silence timeout can
    // tell the host that its stream is dead.
    backend.pause()?;
    let frozen = Instant::now();
    let line = host.wait_for_log("reconnecting", WAIT);
    backend.resume()?;
    line?;
    assert!(
        frozen.elapsed() >= Duration::from_secs(1),
        "reconnected before the silence timeout could have passed:\n{}",
        host.log_tail()
    );

    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_eq!(
        state["status"],
        "COMPLETED",
        "{state:#}\n{}",
        host.log_tail()
    );
    Ok(())
}

#[test]
fn sigterm_drains_in_flight_work_and_exits_zero() -> Result<()> {
    const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
    let backend = Backend::start()?;
    let config = HostConfig::new(backend.endpoint())
        .plugin(PluginFile::built("faulty")?)
        .drain_timeout("20s");
    let mut host = Host::start(&config)?;
    let client = Client::new(backend.endpoint())?;

    // Each runs three 300 ms activities in sequence.
    let ids = (0..2)
        .map(|_| client.start("slow_sequence", Some(&json!(3))))
        .collect::<Result<Vec<_>>>()?;
    host.wait_for_log("sleep_ms started", WAIT)?;

    host.sigterm()?;
    let asked = Instant::now();
    let status = host.wait_exit(DRAIN_TIMEOUT + Duration::from_secs(10))?;
    let took = asked.elapsed();

    assert_eq!(status.code(), Some(0), "{}", host.log_tail());
    assert!(
        took <= DRAIN_TIMEOUT,
        "drained in {took:?}, more than drain_timeout ({DRAIN_TIMEOUT:?})"
    );
    let logs = host.logs();
    assert!(
        logs.contains("drained"),
        "the log does not say it drained:\n{}",
        host.log_tail()
    );
    // The activity in flight at SIGTERM ran to its end instead of being cut off.
    assert!(
        logs.contains("sleep_ms finished"),
        "the in-flight activity did not finish:\n{}",
        host.log_tail()
    );

    // Its completion reached the backend: a new host picks the orchestrations up where
    // they stopped and finishes them. A lost completion would leave them hanging.
    let next_host = Host::start(&config)?;
    for id in &ids {
        let state = client.wait(id, WAIT)?;
        assert_eq!(
            state["status"],
            "COMPLETED",
            "{state:#}\n--- first host ---\n{}\n--- second host ---\n{}",
            host.log_tail(),
            next_host.log_tail()
        );
        assert_eq!(state["output"], json!(3));
    }
    Ok(())
}

#[test]
fn sigint_stops_an_idle_host_with_exit_code_zero() -> Result<()> {
    let backend = Backend::start()?;
    let config = HostConfig::new(backend.endpoint()).plugin(PluginFile::built("hello")?);
    let mut host = Host::start(&config)?;
    let client = Client::new(backend.endpoint())?;

    // Wait until it is really serving, so the signal meets a connected host.
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_eq!(
        state["status"],
        "COMPLETED",
        "{state:#}\n{}",
        host.log_tail()
    );

    host.sigint()?;
    let status = host.wait_exit(WAIT)?;
    assert_eq!(status.code(), Some(0), "{}", host.log_tail());
    Ok(())
}

/// Issue 10, item 8: after a long outage the worker slept its backoff (up to 30 s)
/// before trying again, so a backend that came back waited 8-17 s for its workers, and
/// the outage was logged at INFO only. Now the outage is a WARN line and the worker is
/// back within about a second of the backend.
#[test]
fn after_a_long_outage_the_host_is_back_within_seconds_of_the_backend() -> Result<()> {
    let mut backend = Backend::start()?;
    let port = backend.port();
    let config = HostConfig::new(backend.endpoint())
        .plugin(PluginFile::built("hello")?)
        .log_level("info,durabletask_host=debug");
    let mut host = Host::start(&config)?;
    let client = Client::new(backend.endpoint())?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);

    backend.kill()?;
    drop(backend);
    host.wait_for_log("cannot reach the backend", WAIT)?;
    // Well into the outage: before the fix, this attempt's backoff was drawn from [0, 30 s);
    // a backend that does not answer is now retried at least every 2 s.
    host.wait_for_log("attempt=5", Duration::from_secs(90))?;

    let _backend = Backend::start_on(port)?;
    let back = Instant::now();
    host.wait_for_log("reconnected to the backend", Duration::from_secs(40))?;
    let took = back.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "reconnected {took:?} after the backend came back\n{}",
        host.log_tail()
    );
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    Ok(())
}
