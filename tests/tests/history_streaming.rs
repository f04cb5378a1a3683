//! Large histories (issue 10, item 1): a backend may send a work item without its past
//! events and with `requiresHistoryStreaming`; the host's worker then reads them with
//! `StreamInstanceHistory`. Here the host's own embedded backend streams every history
//! (`history_streaming_bytes = 1`), so every step after the first runs on a streamed
//! history, and the orchestrations still complete with the right output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Client, Host, PluginFile, Result, WAIT, assert_hello_cities_completed};
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
