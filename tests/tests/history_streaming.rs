//! Large histories (issue 10, item 1): a backend may send a work item without its past
//! events and with `requiresHistoryStreaming`; the host's worker then reads them with
//! `StreamInstanceHistory`. Here the host's own embedded backend streams every history
//! (`history_streaming_bytes = 1`), so every step after the first runs on a streamed
//! history, and the orchestrations still complete with the right output. And on default
//! settings, a history larger than the 64 MiB message limit completes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use durabletask_e2e::{
    Client, Host, HostConfig, PluginFile, Result, WAIT, assert_hello_cities_completed,
};
use serde_json::json;

const CONFIG: &str = r#"[backend]
mode = "embedded"

[embedded]
listen = "127.0.0.1:0"
database = "state.sqlite"
history_streaming_bytes = 1

[plugins]
dir = "plugins"

[logging]
level = "info,durabletask_host=debug"

[admin]
listen = "127.0.0.1:0"
"#;

#[test]
fn orchestrations_complete_when_every_history_is_streamed() -> Result<()> {
    let mut host = Host::start_with_config_text(CONFIG, &[PluginFile::built("hello")?])?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    // 1..=10 squared and summed: each activity result arrives in a streamed history.
    let state = client.start_and_wait("fan_out_fan_in", Some(&json!(10)), WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    assert_eq!(state["output"], json!(385), "{state:#}");
    assert!(
        host.log_contains("read a streamed history"),
        "the worker never streamed a history:\n{}",
        host.log_tail()
    );
    Ok(())
}

/// The length of each of [`LARGE_CALLS`] activity results: under the default
/// `max_payload_bytes` (16 MiB).
const LARGE_BYTES: u64 = 12 * 1024 * 1024;
/// Seven results of 12 MiB: a history of 84 MiB, past the 64 MiB message limit.
const LARGE_CALLS: u64 = 7;

#[test]
fn a_history_past_the_message_limit_completes_on_default_settings() -> Result<()> {
    // conformance_a alone: the hello plugin's `say_hello` would clash with its own.
    let config = HostConfig::embedded()
        .plugin(PluginFile::built("conformance_a")?)
        .log_level("info,durabletask_host=debug");
    let mut host = Host::start(&config)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let started = Instant::now();
    let large = client.start(
        "large_history",
        Some(&json!({ "calls": LARGE_CALLS, "bytes": LARGE_BYTES })),
    )?;
    // Other orchestrations of the hub go on meanwhile: ten activities in sequence.
    for _ in 0..3 {
        let state = client.start_and_wait("activity_sequence", Some(&json!(1)), WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{state:#}");
        assert_eq!(
            state["output"],
            json!((1..=11).collect::<Vec<_>>()),
            "{state:#}"
        );
    }
    let state = client.wait(&large, WAIT)?;
    eprintln!("large_history finished in {:?}", started.elapsed());
    assert_eq!(
        state["status"],
        "COMPLETED",
        "{state:#}\n{}",
        host.log_tail()
    );
    assert_eq!(
        state["output"],
        json!(LARGE_CALLS * LARGE_BYTES),
        "{state:#}"
    );
    assert!(
        host.log_contains("read a streamed history"),
        "the worker never streamed a history:\n{}",
        host.log_tail()
    );
    // The sequences ran while the large history grew, not after it.
    let logs = host.logs();
    let first_sequence_step = logs.find("conformance_a ran plus_one");
    let last_large_call = logs.find(&format!("task_id={LARGE_CALLS} name=large_string"));
    assert!(
        first_sequence_step.is_some() && first_sequence_step < last_large_call,
        "the sequences did not run meanwhile:\n{}",
        host.log_tail()
    );
    Ok(())
}
