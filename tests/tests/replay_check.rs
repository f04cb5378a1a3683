//! `durabletask-host replay-check`: a history saved with `client history` from an order
//! that the `orders` 1.0.0 sample has taken half-way, replayed against builds before they
//! are deployed: 1.0.0 itself and the version-aware 2.0.0 sample carry it on; a 2.0.0
//! that makes 1.0.0's calls in another order is caught, naming the first mismatch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use durabletask_e2e::{Fixture, PluginFile, Result, WAIT, paths};
use serde_json::Value;

/// `replay-check --plugin <plugin> [--json] <history>`: (exit code, stdout, stderr).
fn replay_check(plugin: &str, history: &Path, json: bool) -> Result<(Option<i32>, String, String)> {
    let folder = tempfile::tempdir()?;
    let mut command = Command::new(paths::host_binary()?);
    command
        .current_dir(folder.path())
        .arg("replay-check")
        .arg("--plugin")
        .arg(PluginFile::built(plugin)?.source());
    if json {
        command.arg("--json");
    }
    let output = command.arg(history).output()?;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn saved_histories_are_replayed_against_builds_before_they_are_deployed() -> Result<()> {
    let fixture = Fixture::start(&["orders_v1"])?;
    // An order that has reserved its stock and waits ten minutes before it charges.
    let id = fixture.client.start(
        "process_order",
        Some(&serde_json::json!({"id": "o-1", "pause_ms": 600_000})),
    )?;
    let history = fixture
        .client
        .wait_for_history_event(&id, "timerCreated", WAIT)?;
    let folder = tempfile::tempdir()?;
    let saved = folder.path().join("o-1.json");
    std::fs::write(&saved, history.to_string())?;

    // The build it runs on, and the version-aware 2.0.0, carry it on.
    for plugin in ["orders_v1", "orders_v2"] {
        let (code, stdout, stderr) = replay_check(plugin, &saved, false)?;
        assert_eq!(code, Some(0), "{plugin}: {stdout}{stderr}");
        assert!(stdout.contains("ok: replays deterministically"), "{stdout}");
        assert!(
            stdout.contains(&id) && stdout.contains("process_order"),
            "{stdout}"
        );
    }

    // The careless 2.0.0 is caught: exit 1, the first mismatch named with both calls.
    let (code, stdout, stderr) = replay_check("orders_reordered", &saved, false)?;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("non-deterministic"), "{stdout}");
    assert!(
        stdout.contains("reserve_stock") && stdout.contains("charge_payment"),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 1 histories would fail"), "{stdout}");
    let (code, stdout, _) = replay_check("orders_reordered", &saved, true)?;
    assert_eq!(code, Some(1));
    let report: Value = serde_json::from_str(&stdout).expect("--json prints one JSON object");
    assert_eq!(report["plugin"], "orders 2.0.0");
    assert_eq!(report["results"][0]["verdict"], "non-deterministic");
    assert_eq!(report["results"][0]["instance_id"], id.as_str());

    // What cannot be read is a usage error (2), naming the file.
    let broken = folder.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\"events\": [{\"kind\": \"taskCompleted\", \"taskScheduledId\": \"x\"}]}",
    )?;
    let (code, _, stderr) = replay_check("orders_v1", &broken, false)?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.json") && stderr.contains("taskScheduledId"),
        "{stderr}"
    );

    // The order itself is untouched: still waiting on 1.0.0.
    let state = fixture.client.run(&["status", &id])?.ok()?;
    assert_eq!(state["status"], "RUNNING", "{state}");
    Ok(())
}

/// `[plugins] verify_replay` (on by default): a build deployed while the host runs goes in
/// service only if the running orchestrations it could be handed replay on it. Orders
/// that 1.0.0 started without a version (after a restart they would replay on the newest
/// generation) are at stake: the careless 2.0.0 is refused with one line naming the order
/// and the mismatch, and the version-aware 2.0.0 sample replays them and goes in service.
/// The orders finish on 1.0.0, the code they started on.
#[test]
fn a_build_that_would_break_running_orchestrations_is_refused_before_it_serves() -> Result<()> {
    let mut fixture = Fixture::start_with(&["orders_v1"], |config| config.watch_plugins())?;
    // Waits 10 s between its two calls: long enough for both deployments below.
    let id = fixture.client.start(
        "process_order",
        Some(&serde_json::json!({"id": "o-1", "pause_ms": 10_000})),
    )?;
    fixture
        .client
        .wait_for_history_event(&id, "timerCreated", WAIT)?;

    fixture
        .host
        .deploy(&PluginFile::built("orders_reordered")?)?;
    let refusal = fixture.host.wait_for_log_line(
        &[
            "refused plugin",
            "liborders_reordered.so",
            &id,
            "non-deterministic",
        ],
        WAIT,
    )?;
    assert!(
        refusal.contains("reserve_stock") && refusal.contains("verify_replay = 0"),
        "{refusal}"
    );

    fixture.host.deploy(&PluginFile::built("orders_v2")?)?;
    fixture
        .host
        .wait_for_log_line(&["loaded plugin orders 2.0.0", "in service"], WAIT)?;
    let checked = fixture.host.wait_for_log_line(
        &[
            "running orchestrations replay on the new plugin build",
            "replayed=1",
        ],
        WAIT,
    )?;
    assert!(checked.contains("orders 2.0.0"), "{checked}");
    // The careless build never served.
    let served_careless = fixture
        .host
        .logs()
        .lines()
        .any(|line| line.contains("loaded plugin") && line.contains("liborders_reordered.so"));
    assert!(!served_careless, "{}", fixture.host.log_tail());

    let state = fixture.client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{state}");
    assert_eq!(state["output"]["code"], "1.0.0", "{state}");
    assert_eq!(
        state["output"]["steps"],
        serde_json::json!(["reserve_stock", "charge_payment"])
    );
    Ok(())
}

/// The gate replays with the worker settings steps carry: with `[worker]
/// maximum_timer_interval` a long timer is split into chunks, and an order past its first
/// chunk replays on the version-aware 2.0.0 only if the replay is told the interval too
/// (without it, the next chunk would look like a call the code does not make).
#[test]
fn the_gate_replays_split_timers_with_the_workers_interval() -> Result<()> {
    let mut fixture = Fixture::start_with(&["orders_v1"], |config| {
        config.watch_plugins().maximum_timer_interval("1s")
    })?;
    let id = fixture.client.start(
        "process_order",
        Some(&serde_json::json!({"id": "o-2", "pause_ms": 6_000})),
    )?;
    // The first 1 s chunk has fired: the history holds a timerFired and a second timer.
    fixture
        .client
        .wait_for_history_event(&id, "timerFired", WAIT)?;
    fixture.host.deploy(&PluginFile::built("orders_v2")?)?;
    fixture.host.wait_for_log_line(
        &[
            "running orchestrations replay on the new plugin build",
            "replayed=1",
        ],
        WAIT,
    )?;
    assert!(
        !fixture
            .host
            .log_contains("liborders_v2.so: running orchestration"),
        "{}",
        fixture.host.log_tail()
    );
    let state = fixture.client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{state}");
    assert_eq!(state["output"]["code"], "1.0.0", "{state}");
    Ok(())
}
