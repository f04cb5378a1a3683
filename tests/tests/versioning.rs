//! Orchestration versioning (protocol.md §5) end to end: the `orders` sample at 1.0.0
//! (`orders_v1`) and 2.0.0 (`orders_v2`), run by the host against the reference backend
//! under each `[versioning]` setting: conformance scenarios 24-26, and the four scenarios
//! of the reference's versioning guide (default version without checks; strict + fail;
//! current_or_older + fail with version-aware code; strict + reject during a rolling
//! deployment).
//!
//! Each order's output says which plugin code ran it (`code`), which code started it
//! (`started_on`, from its history) and what it did (`steps`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Backend, Client, Fixture, Host, HostConfig, PluginFile, Result, WAIT};
use serde_json::{Value, json};

const V1_STEPS: [&str; 2] = ["reserve_stock", "charge_payment"];
const V2_STEPS: [&str; 3] = ["reserve_stock", "charge_payment", "send_confirmation"];

fn both_versions() -> Result<Vec<PluginFile>> {
    Ok(vec![
        PluginFile::built("orders_v1")?,
        PluginFile::built("orders_v2")?,
    ])
}

/// A backend and a host serving `plugins` with these `[versioning]` lines.
fn start(plugins: Vec<PluginFile>, versioning: &str) -> Result<Fixture> {
    Fixture::start_with(&[], |mut config| {
        config.plugins = plugins;
        config.versioning(versioning)
    })
}

/// Starts order `id` at `version` (none: `start` without `--version`) and waits for it.
fn order(client: &Client, id: &str, version: Option<&str>) -> Result<Value> {
    let input = json!({ "id": id }).to_string();
    let mut args = vec!["start", "process_order", "--id", id, "--input", &input];
    if let Some(version) = version {
        args.extend(["--version", version]);
    }
    client.run(&args)?.ok()?;
    client.wait(id, WAIT)
}

/// Asserts a completed order ran start to end on `code`, making `steps`.
fn assert_ran_on(state: &Value, code: &str, steps: &[&str]) {
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    let output = &state["output"];
    assert_eq!(output["code"], code, "{state:#}");
    assert_eq!(output["started_on"], code, "{state:#}");
    assert_eq!(output["steps"], json!(steps), "{state:#}");
}

/// Asserts a version mismatch failure whose message contains `phrase`.
fn assert_version_mismatch(state: &Value, phrase: &str) {
    assert_eq!(state["status"], "FAILED", "{state:#}");
    let details = &state["failure_details"];
    assert_eq!(details["error_type"], "VersionMismatch", "{state:#}");
    assert_eq!(details["is_non_retriable"], true, "{state:#}");
    let message = details["message"].as_str().unwrap_or_default();
    assert!(message.contains(phrase), "{state:#}");
}

// ---- conformance scenarios 24-26 ----

#[test]
fn s24_the_version_flows_through_to_the_orchestration() -> Result<()> {
    let fixture = start(
        vec![PluginFile::built("orders_v1")?],
        "version = \"2.5.0\"\ndefault_version = \"2.5.0\"\nmatch_strategy = \"current_or_older\"\nfailure_strategy = \"fail\"",
    )?;
    let state = order(&fixture.client, "o-24", Some("2.5.0"))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    // ctx.version() inside the orchestration. (The reference backend does not report
    // an instance's version in its state.)
    assert_eq!(state["output"]["version"], "2.5.0", "{state:#}");
    Ok(())
}

#[test]
fn s25_strict_refuses_another_version() -> Result<()> {
    let fixture = start(
        vec![PluginFile::built("orders_v1")?],
        "version = \"1.0.0\"\nmatch_strategy = \"strict\"\nfailure_strategy = \"fail\"",
    )?;
    let state = order(&fixture.client, "o-25", Some("2.0.0"))?;
    assert_version_mismatch(&state, "does not match the worker version");
    Ok(())
}

#[test]
fn s26_current_or_older_refuses_a_newer_version() -> Result<()> {
    let fixture = start(
        vec![PluginFile::built("orders_v1")?],
        "version = \"1.0.0\"\nmatch_strategy = \"current_or_older\"\nfailure_strategy = \"fail\"",
    )?;
    let state = order(&fixture.client, "o-26", Some("1.1.0"))?;
    assert_version_mismatch(&state, "is greater than the worker version");
    Ok(())
}

// ---- the reference's versioning guide ----

#[test]
fn default_version_without_checks_stamps_orchestrations_and_routes_them_by_version() -> Result<()> {
    let fixture = start(both_versions()?, "default_version = \"1.0.0\"")?;
    // The client reads the host's configuration: start without --version sends 1.0.0,
    // which runs on 1.0.0's code although 2.0.0 is the newest.
    let config = fixture.host.config_path().display().to_string();
    let input = json!({ "id": "o-default" }).to_string();
    let args = [
        "--config",
        &config,
        "start",
        "process_order",
        "--id",
        "o-default",
        "--input",
        &input,
    ];
    fixture.client.run(&args)?.ok()?;
    let state = fixture.client.wait("o-default", WAIT)?;
    assert_eq!(state["output"]["version"], "1.0.0", "{state:#}");
    assert_ran_on(&state, "1.0.0", &V1_STEPS);

    // --version wins over the default.
    let state = order(&fixture.client, "o-explicit", Some("2.0.0"))?;
    assert_ran_on(&state, "2.0.0", &V2_STEPS);
    // Without the config, nothing is stamped: the newest code runs it.
    let state = order(&fixture.client, "o-none", None)?;
    assert_eq!(state["output"]["version"], Value::Null, "{state:#}");
    assert_ran_on(&state, "2.0.0", &V2_STEPS);
    Ok(())
}

#[test]
fn strict_and_fail_run_each_version_on_its_own_code_and_refuse_others() -> Result<()> {
    let fixture = start(
        both_versions()?,
        "match_strategy = \"strict\"\nfailure_strategy = \"fail\"",
    )?;
    assert_ran_on(
        &order(&fixture.client, "o-1", Some("1.0.0"))?,
        "1.0.0",
        &V1_STEPS,
    );
    // Versions compare as versions: 2.0 is 2.0.0.
    assert_ran_on(
        &order(&fixture.client, "o-2", Some("2.0"))?,
        "2.0.0",
        &V2_STEPS,
    );
    let state = order(&fixture.client, "o-15", Some("1.5.0"))?;
    assert_version_mismatch(&state, "does not match the worker version");
    let state = order(&fixture.client, "o-none", None)?;
    assert_version_mismatch(&state, "does not match the worker version");
    Ok(())
}

#[test]
fn current_or_older_with_version_aware_code_finishes_old_orders_on_the_new_plugin() -> Result<()> {
    // Only 2.0.0 is loaded: its version-aware process_order replays 1.x orders with
    // 1.0.0's steps.
    let fixture = start(
        vec![PluginFile::built("orders_v2")?],
        "match_strategy = \"current_or_older\"\nfailure_strategy = \"fail\"",
    )?;
    let state = order(&fixture.client, "o-old", Some("1.0.0"))?;
    assert_ran_on(&state, "2.0.0", &V1_STEPS);
    let state = order(&fixture.client, "o-new", Some("2.0.0"))?;
    assert_ran_on(&state, "2.0.0", &V2_STEPS);
    let state = order(&fixture.client, "o-future", Some("3.0.0"))?;
    assert_version_mismatch(&state, "is greater than the worker version");
    Ok(())
}

/// A host serving both builds of `orders` against `backend` under strict + reject, as a
/// worker of version `version` when one is given (pinned: it runs only orchestrations of
/// that version), else with each build a worker of its own version.
fn rejecting_host(backend: &Backend, version: Option<&str>, filters: bool) -> Result<Host> {
    let pin = version
        .map(|v| format!("version = \"{v}\"\n"))
        .unwrap_or_default();
    let mut config = HostConfig::new(backend.endpoint())
        .versioning(&format!(
            "{pin}match_strategy = \"strict\"\nfailure_strategy = \"reject\""
        ))
        .work_item_filters(filters)
        .log_level("info,durabletask_host::worker=debug");
    for plugin in both_versions()? {
        config = config.plugin(plugin);
    }
    Host::start(&config)
}

/// Starts order `id` at `version` without waiting.
fn start_order(client: &Client, id: &str, version: &str) -> Result<()> {
    let input = json!({ "id": id }).to_string();
    client
        .run(&[
            "start",
            "process_order",
            "--id",
            id,
            "--version",
            version,
            "--input",
            &input,
        ])?
        .ok()
        .map(drop)
}

#[test]
fn strict_and_reject_during_a_rolling_deployment_keep_each_version_on_its_workers() -> Result<()> {
    // The reference guide's rolling deployment: workers of version 1.0.0 and 2.0.0 side
    // by side, each running only orchestrations of its own version and rejecting the
    // rest for the other. (Both load both builds, so any activity can run anywhere.)
    let backend = Backend::start()?;
    let client = Client::new(backend.endpoint())?;
    let mut old_host = rejecting_host(&backend, Some("1.0.0"), false)?;

    // Only the 1.0.0 worker runs: the 2.0.0 order is rejected (abandoned for another
    // worker) and stays pending, while 1.0.0 orders complete.
    start_order(&client, "o-new", "2.0.0")?;
    old_host.wait_for_log_line(&["rejected", "o-new"], WAIT)?;
    assert_ran_on(&order(&client, "o-old", Some("1.0.0"))?, "1.0.0", &V1_STEPS);
    assert_eq!(client.status("o-new")?["status"], "PENDING");

    // The 2.0.0 worker joins and takes the pending order; from then on each order runs
    // on a worker of its version, whichever worker the backend offers it to first.
    let mut new_host = rejecting_host(&backend, Some("2.0.0"), false)?;
    assert_ran_on(&client.wait("o-new", WAIT)?, "2.0.0", &V2_STEPS);
    for n in 0..5 {
        start_order(&client, &format!("o-old-{n}"), "1.0.0")?;
        start_order(&client, &format!("o-new-{n}"), "2.0.0")?;
    }
    for n in 0..5 {
        let (old, new) = (format!("o-old-{n}"), format!("o-new-{n}"));
        assert_ran_on(&client.wait(&old, WAIT)?, "1.0.0", &V1_STEPS);
        assert_ran_on(&client.wait(&new, WAIT)?, "2.0.0", &V2_STEPS);
        // The plugin's replay-safe log line of each order is in its worker's log only.
        // (Logs are written asynchronously: wait for the expected line, then check the
        // other log.)
        let reserved = |id: &str| format!("stock reserved for {id}");
        old_host.wait_for_log(&reserved(&old), WAIT)?;
        new_host.wait_for_log(&reserved(&new), WAIT)?;
        assert!(
            !new_host.log_contains(&reserved(&old)),
            "{old} ran on the 2.0.0 worker"
        );
        assert!(
            !old_host.log_contains(&reserved(&new)),
            "{new} ran on the 1.0.0 worker"
        );
    }
    Ok(())
}

/// A host serving one build of `orders` with strict versioning and work-item filters.
fn filtered_host(backend: &Backend, plugin: &str) -> Result<Host> {
    Host::start(
        &HostConfig::new(backend.endpoint())
            .plugin(PluginFile::built(plugin)?)
            .versioning("match_strategy = \"strict\"\nfailure_strategy = \"reject\"")
            .work_item_filters(true),
    )
}

#[test]
fn during_a_rollout_with_work_item_filters_each_version_runs_on_the_host_that_serves_it()
-> Result<()> {
    // Two hosts side by side, one per version. Their filters (orchestrations by name and
    // version, activities by name) keep every work item on a host that can run it.
    let backend = Backend::start()?;
    let client = Client::new(backend.endpoint())?;
    let _old_host = filtered_host(&backend, "orders_v1")?;
    let _new_host = filtered_host(&backend, "orders_v2")?;
    let mut ids = Vec::new();
    for n in 0..10 {
        for (version, prefix) in [("1.0.0", "old"), ("2.0.0", "new")] {
            let id = format!("o-{prefix}-{n}");
            let input = json!({ "id": id }).to_string();
            client
                .run(&[
                    "start",
                    "process_order",
                    "--id",
                    &id,
                    "--version",
                    version,
                    "--input",
                    &input,
                ])?
                .ok()?;
            ids.push((id, version));
        }
    }
    for (id, version) in ids {
        let state = client.wait(&id, WAIT)?;
        if version == "1.0.0" {
            assert_ran_on(&state, "1.0.0", &V1_STEPS);
        } else {
            assert_ran_on(&state, "2.0.0", &V2_STEPS);
        }
    }
    Ok(())
}

#[test]
fn sub_orchestrations_started_without_a_version_get_the_default_version() -> Result<()> {
    let fixture = Fixture::start_with(&["conformance_a"], |config| {
        config.versioning("default_version = \"1.0.0\"")
    })?;
    let state = fixture.run("sub_orchestrator_by_name", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    // The child's id is the parent's plus its task id (the default).
    let parent = state["instance_id"].as_str().unwrap();
    let history = fixture.client.history(&format!("{parent}:0001"))?;
    let started = history
        .iter()
        .find(|event| event["kind"] == "executionStarted")
        .expect("the child has an executionStarted event");
    assert_eq!(started["name"], "orchestrator_child", "{history:#?}");
    assert_eq!(started["version"], "1.0.0", "{history:#?}");
    Ok(())
}
