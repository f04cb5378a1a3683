//! Restarting the host in the middle of an upgrade does not move running orchestrations
//! onto code that did not write their histories (issue 14):
//! - an order started on `orders` 1.0.0 without a version, when the host restarts with
//!   1.0.0 and an incompatible 2.0.0 in the folder (it would go to the newest, 2.0.0),
//!   is found to replay on 1.0.0 and finishes there;
//! - a rebuild of 1.0.0 dropped in beside it, ignored while the host ran, is ignored after
//!   the restart too, although its file comes first: the host remembers which build served
//!   1.0.0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;

use durabletask_e2e::{Client, Host, PluginFile, Result, WAIT, http_get};

#[test]
fn running_orchestrations_keep_their_code_across_a_restart_mid_upgrade() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let plugins = scratch.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let v1 = PluginFile::built("orders_v1")?;
    std::fs::copy(v1.source(), plugins.join("liborders_v1.so"))?;
    let config_path = scratch.path().join("host.toml");
    std::fs::write(
        &config_path,
        "[embedded]\nlisten = \"127.0.0.1:0\"\ndatabase = \"state.sqlite\"\n\n[plugins]\ndir = \"plugins\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    )?;

    let mut host = Host::start_with_config_file(&config_path)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    // No version: only the host's memory of where it ran keeps it on 1.0.0.
    let id = client.start(
        "process_order",
        Some(&serde_json::json!({"id": "o-1", "pause_ms": 4_000})),
    )?;
    client.wait_for_history_event(&id, "timerCreated", WAIT)?;

    // Another build of 1.0.0 (the same library with bytes appended: other contents, the
    // same plugin name and version), under a name that sorts before 1.0.0's file.
    let rebuild = plugins.join("liborders_a_rebuild.so");
    std::fs::copy(v1.source(), &rebuild)?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&rebuild)?
        .write_all(b"another build")?;
    host.wait_for_log_line(&["ignored plugin", "liborders_a_rebuild.so"], WAIT)?;
    host.sigterm()?;
    assert!(host.wait_exit(WAIT)?.success(), "{}", host.log_tail());

    // While it is down: 2.0.0, which makes 1.0.0's calls in another order.
    let careless = PluginFile::built("orders_reordered")?;
    std::fs::copy(careless.source(), plugins.join(careless.file_name()))?;

    let mut host = Host::start_with_config_file(&config_path)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    // Without the memory, the rebuild's file, first by name, would have taken 1.0.0.
    let ignored = host.wait_for_log_line(&["ignored plugin", "liborders_a_rebuild.so"], WAIT)?;
    assert!(ignored.contains("orders 1.0.0"), "{ignored}");
    assert!(
        !host.log_contains("ignored plugin")
            || !host.logs().lines().any(|line| {
                line.contains("ignored plugin") && line.contains("plugins/liborders_v1.so:")
            }),
        "the build that served 1.0.0 was set aside:\n{}",
        host.log_tail()
    );
    host.wait_for_log_line(&["loaded plugin orders 2.0.0", "in service"], WAIT)?;

    let state = client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{state}\n{}", host.log_tail());
    assert_eq!(state["output"]["code"], "1.0.0", "{state}");
    let moved = host.wait_for_log_line(&["replays on another generation", &id], WAIT)?;
    assert!(moved.contains("orders 1.0.0"), "{moved}");

    // Every step is counted for the generation that ran it, 1.0.0, none for 2.0.0 (the
    // guess, whose non-deterministic answer was never sent).
    let metrics = http_get(&format!("{}/metrics", host.admin_url()?), None)?;
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    // Whether the counter of orchestration steps of `plugin` with `outcome` is above 0.
    let series = |plugin: &str, outcome: &str| {
        metrics.body.lines().any(|line| {
            line.starts_with("durabletask_work_items_executed_total{")
                && line.contains("kind=\"orchestration\"")
                && line.contains(&format!("plugin=\"{plugin}\""))
                && line.contains(&format!("outcome=\"{outcome}\""))
                && line
                    .rsplit(' ')
                    .next()
                    .and_then(|count| count.parse::<f64>().ok())
                    .is_some_and(|count| count > 0.0)
        })
    };
    assert!(series("orders 1.0.0", "completed"), "{}", metrics.body);
    assert!(!series("orders 2.0.0", "completed"), "{}", metrics.body);
    assert!(!series("orders 2.0.0", "failed"), "{}", metrics.body);
    Ok(())
}
