//! Process isolation (issue 11), the default (`[plugins] isolation = "process"`): each
//! plugin generation runs in a child process of the host's binary. Test plugins that
//! exit, abort, overflow their stack, leak, block a step, block an activity before its
//! first `.await`, or hang forever, while a second, healthy plugin (`hello`) and healthy
//! orchestrations of the faulty plugin itself run beside them. Throughout, the host keeps
//! its process, its embedded backend answers `Hello` (a probe calls it every 20 ms: the
//! slowest answer must be under 100 ms), and every healthy orchestration started before,
//! during and after completes with its output. A work item that keeps crashing its
//! plugin's process fails with `PluginCrashed` after `[worker] max_crashes` (3) crashes,
//! saying how the process died.
//!
//! The same plugins in process are in `poison_work.rs` (exit kills the host there; the
//! crash journal ends the crash loop), `hung_activities.rs` and `failures.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{
    Client, HelloProbe, Host, HostConfig, PluginFile, Result, WAIT, assert_hello_cities_completed,
};
use serde_json::{Value, json};

/// The slowest `Hello` the embedded backend may take while a plugin misbehaves.
const HELLO_BUDGET_MS: f64 = 100.0;

/// A host on its embedded backend serving `faulty` and `hello` in child processes, with
/// these `[plugins]` and `[worker]` additions; its client; a `Hello` probe.
fn start(configure: impl FnOnce(HostConfig) -> HostConfig) -> Result<(Host, Client, HelloProbe)> {
    let config = configure(
        HostConfig::embedded()
            .plugin(PluginFile::built("faulty")?)
            .plugin(PluginFile::built("hello")?),
    );
    let mut host = Host::start(&config)?;
    let endpoint = host.embedded_endpoint()?;
    let client = Client::new(&endpoint)?;
    let probe = HelloProbe::start(&endpoint)?;
    Ok((host, client, probe))
}

/// Healthy orchestrations: two of `hello` (another plugin) and one of `faulty` itself.
fn start_healthy(client: &Client, label: &str, n: i64) -> Result<Vec<(String, Value)>> {
    let mut started = Vec::new();
    for index in 0..2 {
        let id = format!("{label}-hello-{index}");
        client.start_with_id("hello_cities", &id, None)?;
        started.push((id, Value::Null));
    }
    let id = format!("{label}-typed");
    client.start_with_id("typed_input", &id, Some(&json!({ "a": n })))?;
    started.push((id, json!(n)));
    Ok(started)
}

fn assert_healthy_completed(
    client: &Client,
    host: &Host,
    healthy: &[(String, Value)],
) -> Result<()> {
    for (id, output) in healthy {
        let state = client.wait(id, WAIT)?;
        if output.is_null() {
            assert_hello_cities_completed(&state, host);
        } else {
            assert_eq!(
                state["status"],
                "COMPLETED",
                "{state:#}\n{}",
                host.log_tail()
            );
            assert_eq!(&state["output"], output, "{state:#}");
        }
    }
    Ok(())
}

/// The host still runs, as the same process, and `Hello` stayed fast throughout.
fn assert_host_served(host: &mut Host, pid: Option<u32>, probe: HelloProbe) -> Result<()> {
    assert!(host.is_running()?, "{}", host.log_tail());
    assert_eq!(host.pid(), pid, "the host was restarted");
    let report = probe.finish()?;
    eprintln!("Hello probe: {report}");
    assert_eq!(report["failures"], 0, "{report}");
    assert!(report["calls"].as_u64().unwrap_or(0) > 10, "{report}");
    let slowest = report["max_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(
        slowest < HELLO_BUDGET_MS,
        "a Hello took {slowest} ms while plugins misbehaved: {report}\n{}",
        host.log_tail()
    );
    Ok(())
}

/// The message of a `PluginCrashed` failure names the work item, the plugin, the count
/// and how its process died.
fn assert_plugin_crashed(failure: &Value, what: &str, how: &[&str]) {
    assert_eq!(failure["error_type"], "PluginCrashed", "{failure:#}");
    assert_eq!(failure["is_non_retriable"], true, "{failure:#}");
    let message = failure["message"].as_str().unwrap_or_default();
    for expected in [what, "plugin faulty 1.0.0", "3 times"] {
        assert!(message.contains(expected), "{expected:?} in {message:?}");
    }
    assert!(
        how.iter().any(|how| message.contains(how)),
        "one of {how:?} in {message:?}"
    );
}

/// The host's resident memory in MiB (`VmRSS` of `/proc/<pid>/status`).
fn resident_mib(host: &Host) -> u64 {
    let pid = host.pid().expect("the host runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024
}

#[test]
fn plugins_that_exit_abort_overflow_leak_or_block_a_step_fail_only_their_own_work() -> Result<()> {
    let (mut host, client, probe) = start(|config| {
        config
            .plugins_setting(r#"step_limit = "2s""#)
            .plugins_setting("memory_limit_mb = 256")
    })?;
    let pid = host.pid();
    let mut healthy = start_healthy(&client, "before", 1)?;
    let poison = [
        ("exit_process", "poison-exit"),
        ("call_aborting_activity", "poison-abort"),
        ("overflow_stack", "poison-overflow"),
        ("call_crashing_entity", "poison-entity"),
        ("call_leaking_activity", "poison-leak"),
    ];
    for (name, id) in poison {
        client.start_with_id(name, id, None)?;
    }
    client.start_with_id("block_in_step", "poison-block", Some(&json!(600_000)))?;
    healthy.extend(start_healthy(&client, "during", 2)?);

    let exit = client.wait("poison-exit", WAIT)?;
    assert_eq!(exit["status"], "FAILED", "{exit:#}");
    assert_plugin_crashed(
        &exit["failure_details"],
        "orchestration 'exit_process'",
        &["exited with code 3"],
    );

    let abort = client.wait("poison-abort", WAIT)?;
    assert_eq!(abort["status"], "FAILED", "{abort:#}");
    // The orchestrator let the activity's failure propagate with `?`.
    assert_eq!(
        abort["failure_details"]["error_type"], "TaskFailed",
        "{abort:#}"
    );
    assert_plugin_crashed(
        &abort["failure_details"]["inner_failure"],
        "activity 'abort_process'",
        &["killed by signal 6 (SIGABRT)"],
    );

    let overflow = client.wait("poison-overflow", WAIT)?;
    assert_eq!(overflow["status"], "FAILED", "{overflow:#}");
    // Rust reports the overflow and aborts; a guard page hit outside its handler is
    // SIGSEGV.
    assert_plugin_crashed(
        &overflow["failure_details"],
        "orchestration 'overflow_stack'",
        &["(SIGABRT)", "(SIGSEGV)"],
    );

    let entity = client.wait("poison-entity", WAIT)?;
    assert_eq!(entity["status"], "FAILED", "{entity:#}");
    assert_plugin_crashed(
        &entity["failure_details"]["inner_failure"],
        "@crasher@k",
        &["(SIGABRT)"],
    );

    let leak = client.wait("poison-leak", WAIT)?;
    assert_eq!(leak["status"], "FAILED", "{leak:#}");
    assert_plugin_crashed(
        &leak["failure_details"]["inner_failure"],
        "activity 'leak_memory'",
        &["memory_limit_mb = 256"],
    );
    // The leak was the child's: the host did not grow with it.
    let resident = resident_mib(&host);
    assert!(
        resident < 200,
        "the host uses {resident} MiB after the leak"
    );

    let block = client.wait("poison-block", WAIT)?;
    assert_eq!(block["status"], "FAILED", "{block:#}");
    assert_plugin_crashed(
        &block["failure_details"],
        "orchestration 'block_in_step'",
        &["ran past [plugins] step_limit = 2s"],
    );
    // Named while it ran, before its process was killed.
    assert!(
        host.log_contains("is still running in plugin faulty 1.0.0"),
        "{}",
        host.log_tail()
    );

    healthy.extend(start_healthy(&client, "after", 3)?);
    assert_healthy_completed(&client, &host, &healthy)?;
    assert_host_served(&mut host, pid, probe)
}

/// An activity that blocks its thread for 10 s before its first `.await`, and five
/// activities that never finish, take all six of the faulty plugin's activity slots:
/// `hello` (its own slots, its own process) keeps completing orchestrations meanwhile,
/// and the blocking activity completes in the end.
#[test]
fn an_activity_that_blocks_before_its_first_await_or_hangs_holds_up_only_its_plugin() -> Result<()>
{
    let (mut host, client, probe) = start(|config| config.max_concurrent_activities(8))?;
    let pid = host.pid();
    client.start_with_id("fan_out_hang", "hangs", Some(&json!(5)))?;
    client.start_with_id("call_blocking_activity", "blocker", Some(&json!(10_000)))?;
    // Logged by the plugin in its child process, forwarded to the host's log.
    host.wait_for_log_line(&["block_before_await blocks", "plugin=faulty"], WAIT)?;
    let healthy = start_healthy(&client, "while-blocked", 4)?;
    // hello's orchestrations finish while the faulty plugin's activity still blocks.
    for (id, _) in healthy.iter().filter(|(id, _)| id.contains("hello")) {
        let state = client.wait(id, WAIT)?;
        assert_hello_cities_completed(&state, &host);
    }
    let blocker = client.status("blocker")?;
    assert_ne!(
        blocker["status"], "COMPLETED",
        "it blocked 10 s: {blocker:#}"
    );
    assert_healthy_completed(&client, &host, &healthy)?;
    let blocker = client.wait("blocker", WAIT)?;
    assert_eq!(
        blocker["status"],
        "COMPLETED",
        "{blocker:#}\n{}",
        host.log_tail()
    );
    assert_eq!(blocker["output"], json!(10_000));
    assert_eq!(client.status("hangs")?["status"], "RUNNING");
    assert_host_served(&mut host, pid, probe)
}

/// With `[worker] activity_timeout`, an activity that never finishes fails with
/// `ActivityTimeout`; its process, where it still runs, is recycled, and the plugin's
/// next activities run in the new one.
#[test]
fn a_timed_out_activity_that_never_yields_gets_its_process_recycled() -> Result<()> {
    let (mut host, client, probe) = start(|config| config.activity_timeout("1s"))?;
    let pid = host.pid();
    client.start_with_id("call_hanging_activity", "hung", None)?;
    let hung = client.wait("hung", WAIT)?;
    assert_eq!(hung["status"], "FAILED", "{hung:#}");
    assert_eq!(
        hung["failure_details"]["inner_failure"]["error_type"], "ActivityTimeout",
        "{hung:#}"
    );
    host.wait_for_log_line(&["recycling its plugin's process"], WAIT)?;
    // The next call starts the new process.
    let after = client.start_and_wait("call_blocking_activity", Some(&json!(10)), WAIT)?;
    assert_eq!(
        after["status"],
        "COMPLETED",
        "{after:#}\n{}",
        host.log_tail()
    );
    assert_eq!(after["output"], json!(10));
    assert!(
        host.log_contains("started a new process for plugin faulty 1.0.0"),
        "{}",
        host.log_tail()
    );
    assert_host_served(&mut host, pid, probe)
}

/// `[plugins.overrides.<name>] isolation = "in-process"` runs that plugin in the host's
/// own process while the others keep theirs; `durabletask-host plugins` says where each
/// runs, and both serve.
#[test]
fn an_override_runs_one_plugin_in_the_hosts_process_and_the_listing_says_so() -> Result<()> {
    let config = HostConfig::embedded()
        .plugin(PluginFile::built("hello")?)
        .plugin(PluginFile::built("orders_v1")?)
        .plugins_setting("[plugins.overrides.hello]")
        .plugins_setting(r#"isolation = "in-process""#);
    let mut host = Host::start(&config)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    let order = client.start_and_wait(
        "process_order",
        Some(&json!({ "id": "o-1", "pause_ms": 10 })),
        WAIT,
    )?;
    assert_eq!(
        order["status"],
        "COMPLETED",
        "{order:#}\n{}",
        host.log_tail()
    );

    // Which process maps which library.
    let pid = host.pid().expect("the host runs");
    let own = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    assert!(own.contains("/libhello-"), "hello runs in the host");
    assert!(
        !own.contains("/liborders_v1-"),
        "orders runs in a process of its own"
    );
    let children: String = host
        .process_tree()
        .into_iter()
        .filter(|child| *child != pid)
        .map(|child| std::fs::read_to_string(format!("/proc/{child}/maps")).unwrap_or_default())
        .collect();
    assert!(
        children.contains("/liborders_v1-"),
        "orders runs in a child"
    );
    assert!(!children.contains("/libhello-"), "hello has no child");

    let output = std::process::Command::new(durabletask_e2e::paths::host_binary()?)
        .args(["plugins", "--json", "--config"])
        .arg(host.config_path())
        .output()?;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs: Vec<(&str, &str)> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["isolation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        runs,
        [("hello", "in-process"), ("orders", "process")],
        "{listed:#}"
    );
    Ok(())
}

/// A package upgrade replaces the host's binary while it runs. Plugin processes started
/// after that (here: after a crash) must still be the running host's own binary, which
/// speaks its frames, not whatever file is now at its path.
#[test]
fn plugin_processes_run_the_hosts_own_binary_after_the_file_is_replaced() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let binary = folder.path().join("durabletask-host");
    std::fs::copy(durabletask_e2e::paths::host_binary()?, &binary)?;
    let config = HostConfig::embedded()
        .plugin(PluginFile::built("faulty")?)
        .plugin(PluginFile::built("hello")?);
    let mut host = Host::start_from_binary(&config, &binary)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);

    // The upgrade: another file renamed over the binary, as package managers do.
    let replacement = folder.path().join("durabletask-host.new");
    std::fs::write(&replacement, "#!/bin/sh\nexit 42\n")?;
    std::fs::set_permissions(
        &replacement,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    std::fs::rename(&replacement, &binary)?;

    // Each crash starts a new process for faulty: of the host's own binary, which loads
    // the plugin and runs the step until it has crashed three of them.
    let state = client.start_and_wait("exit_process", None, WAIT)?;
    assert_eq!(state["status"], "FAILED", "{state:#}");
    assert_plugin_crashed(
        &state["failure_details"],
        "orchestration 'exit_process'",
        &["exited with code 3"],
    );
    let state = client.start_and_wait("typed_input", Some(&json!({ "a": 7 })), WAIT)?;
    assert_eq!(
        state["status"],
        "COMPLETED",
        "{state:#}\n{}",
        host.log_tail()
    );
    assert_eq!(state["output"], json!(7));
    assert!(host.is_running()?, "{}", host.log_tail());
    Ok(())
}

/// A host that stops (SIGTERM) stops its plugin processes first: none is left running.
#[test]
fn a_host_that_stops_leaves_no_plugin_process_behind() -> Result<()> {
    let config = HostConfig::embedded()
        .plugin(PluginFile::built("faulty")?)
        .plugin(PluginFile::built("hello")?);
    let mut host = Host::start(&config)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    let pid = host.pid().expect("the host runs");
    let children: Vec<u32> = host
        .process_tree()
        .into_iter()
        .filter(|child| *child != pid)
        .collect();
    assert_eq!(children.len(), 2, "one process per plugin: {children:?}");
    host.sigterm()?;
    let status = host.wait_exit(WAIT)?;
    assert_eq!(status.code(), Some(0), "{}", host.log_tail());
    for child in children {
        // Gone, or a zombie waiting for init to reap it: not running.
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let running = state
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X");
        assert!(
            !running,
            "plugin process {child} outlived the host: {state}"
        );
    }
    Ok(())
}
