//! The admin listener as operators' tools use it: a real Prometheus server scrapes the
//! host (with the bearer token of `[admin] token_file`) and reads back what the client
//! saw; `promtool check metrics` accepts the exposition; `/readyz` turns 503 when the
//! backend goes away, 200 when it is back, and 503 at the start of a drain; `/status`
//! lists the work in flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use durabletask_e2e::prometheus::{Prometheus, which};
use durabletask_e2e::{Client, Host, HostConfig, PluginFile, Result, WAIT, http_get, poll_until};
use serde_json::Value;

const ORCHESTRATIONS: usize = 5;

fn admin_address(url: &str) -> &str {
    url.trim_start_matches("http://")
}

#[test]
fn prometheus_scrapes_what_the_client_saw() -> Result<()> {
    let secrets = tempfile::tempdir()?;
    let token_file = secrets.path().join("admin.token");
    std::fs::write(&token_file, "scrape-token\n")?;
    let mut host = Host::start(
        &HostConfig::embedded()
            .plugin(PluginFile::built("hello")?)
            .admin_setting(&format!(
                "token_file = {:?}",
                token_file.display().to_string()
            )),
    )?;
    let admin = host.admin_url()?;
    let client = Client::new(host.embedded_endpoint()?)?;
    for _ in 0..ORCHESTRATIONS {
        let state = client.start_and_wait("hello_cities", None, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{state}");
    }

    // Without the token the page names what is missing; the probes need none.
    let refused = http_get(&format!("{admin}/metrics"), None)?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("token_file"), "{}", refused.body);
    assert_eq!(http_get(&format!("{admin}/livez"), None)?.status, 200);

    let exposition = http_get(&format!("{admin}/metrics"), Some("scrape-token"))?;
    assert_eq!(exposition.status, 200);
    promtool_accepts(&exposition.body)?;

    let prometheus = Prometheus::start(&[admin_address(&admin)], Some(token_file.clone()))?;
    let expected_activities = 3.0 * ORCHESTRATIONS as f64;
    let scraped = poll_until(WAIT, || {
        let completed = prometheus.query(r#"durabletask_backend_instances{status="COMPLETED"}"#)?;
        let activities = prometheus.query(
            r#"sum(durabletask_work_items_executed_total{kind="activity",name="say_hello",outcome="completed"})"#,
        )?;
        Ok(
            (completed == Some(ORCHESTRATIONS as f64) && activities == Some(expected_activities))
                .then_some(()),
        )
    })?;
    assert!(
        scraped.is_some(),
        "Prometheus did not read {ORCHESTRATIONS} completed orchestrations and {expected_activities} activities: up = {:?}, completed = {:?}, activities = {:?}\n{}",
        prometheus.all_up(),
        prometheus.query(r#"durabletask_backend_instances{status="COMPLETED"}"#),
        prometheus.query(r#"sum(durabletask_work_items_executed_total{kind="activity"})"#),
        exposition.body
    );
    assert!(prometheus.all_up()?);
    // The plugin's label is its generation; the step latency histogram has samples.
    let steps = prometheus.query(
        r#"sum(durabletask_work_item_duration_seconds_count{kind="orchestration",name="hello_cities",plugin="hello 1.0.0"})"#,
    )?;
    assert!(
        steps.is_some_and(|steps| steps >= ORCHESTRATIONS as f64),
        "{steps:?}"
    );
    assert_eq!(
        prometheus.query("durabletask_plugin_generations_in_service")?,
        Some(1.0)
    );
    // The harness's [worker] max_concurrent_activities.
    let limit = prometheus.query(r#"durabletask_worker_concurrency_limit{kind="activity"}"#)?;
    assert!(limit.is_some_and(|limit| limit >= 1.0), "{limit:?}");
    assert_eq!(
        prometheus.query(r#"sum(durabletask_work_items_in_flight)"#)?,
        Some(0.0)
    );
    host.sigterm()?;
    host.wait_exit(WAIT)?;
    Ok(())
}

/// `promtool check metrics` (from Debian's `prometheus` package) on `exposition`.
fn promtool_accepts(exposition: &str) -> Result<()> {
    let promtool = which("promtool").expect("promtool is installed with Debian's prometheus");
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    check
        .stdin
        .take()
        .expect("piped")
        .write_all(exposition.as_bytes())?;
    let output = check.wait_with_output()?;
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn backend_host(port: u16, database: &Path) -> Result<Host> {
    Host::start(&HostConfig::backend_only(port, database))
}

fn readiness(admin: &str) -> Result<(u16, Value)> {
    let answer = http_get(&format!("{admin}/readyz"), None)?;
    let body = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    Ok((answer.status, body))
}

/// Polls `/readyz` until it answers `status`; returns its body.
fn wait_readiness(admin: &str, status: u16) -> Result<Value> {
    let found = poll_until(WAIT, || {
        let (code, body) = readiness(admin)?;
        Ok((code == status).then_some(body))
    })?;
    found.ok_or_else(|| {
        durabletask_e2e::Error::new(format!(
            "/readyz did not answer {status} within {WAIT:?}: {:?}",
            readiness(admin)
        ))
    })
}

#[test]
fn readiness_follows_the_backend_and_the_drain() -> Result<()> {
    let state = tempfile::tempdir()?;
    let database = state.path().join("backend.sqlite");
    let port = durabletask_e2e::free_port()?;
    let mut backend = backend_host(port, &database)?;
    let endpoint = backend.embedded_endpoint()?;
    let mut worker = Host::start(
        &HostConfig::new(endpoint.clone())
            .plugin(PluginFile::built("faulty")?)
            .drain_timeout("30s"),
    )?;
    let admin = worker.admin_url()?;
    let ready = wait_readiness(&admin, 200)?;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["stream"], "open", "{ready}");

    backend.kill9()?;
    let down = wait_readiness(&admin, 503)?;
    assert_eq!(down["stream"], "down", "{down}");
    let reasons = down["reasons"].to_string();
    assert!(reasons.contains("work-item stream"), "{down}");
    assert_eq!(http_get(&format!("{admin}/livez"), None)?.status, 200);

    let _backend = backend_host(port, &database)?;
    wait_readiness(&admin, 200)?;

    // A drain with an activity that never ends: the host stays draining for a while.
    let client = Client::new(endpoint)?;
    let id = client.start("call_hanging_activity", None)?;
    let in_flight = poll_until(WAIT, || {
        let status = http_get(&format!("{admin}/status"), None)?;
        let body: Value = serde_json::from_str(&status.body).unwrap_or(Value::Null);
        Ok(body["in_flight"]["items"]
            .as_array()
            .and_then(|items| items.iter().find(|item| item["name"] == "hang_forever"))
            .cloned())
    })?;
    let item = in_flight.expect("the hanging activity is listed in /status");
    assert_eq!(item["kind"], "activity", "{item}");
    assert_eq!(item["instance_id"], id.as_str(), "{item}");

    worker.sigterm()?;
    let draining = wait_readiness(&admin, 503)?;
    assert_eq!(draining["stream"], "draining", "{draining}");
    assert!(
        draining["reasons"].to_string().contains("draining"),
        "{draining}"
    );
    worker.kill9()?;
    Ok(())
}

#[test]
fn the_admin_listener_can_be_turned_off() -> Result<()> {
    let mut host = Host::start(
        &HostConfig::embedded()
            .plugin(PluginFile::built("hello")?)
            .admin_setting("enabled = false"),
    )?;
    host.wait_for_log("the admin listener is off", WAIT)?;
    assert!(!host.log_contains(durabletask_e2e::ADMIN_LISTENING));
    Ok(())
}

/// Under systemd (`Type=notify`): READY=1 once it serves, its stream's state as the
/// status line, WATCHDOG=1 pings at half of `WatchdogSec`, STOPPING=1 when the drain
/// starts. The test plays systemd's part: it binds the notification socket and starts
/// the host with `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the host's own pid,
/// which is why a shell sets it and then becomes the host).
#[test]
fn systemd_hears_ready_watchdog_and_stopping() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir()?;
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(WAIT))?;
    let wrapper = dir.path().join("under-systemd");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport NOTIFY_SOCKET='{}' WATCHDOG_USEC=400000 WATCHDOG_PID=$$\nexec '{}' \"$@\"\n",
            socket_path.display(),
            durabletask_e2e::paths::host_binary()?.display()
        ),
    )?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    let mut host = Host::start_from_binary(
        &HostConfig::embedded().plugin(PluginFile::built("hello")?),
        &wrapper,
    )?;
    let mut heard = String::new();
    let mut buffer = [0u8; 4096];
    // Reads until `wanted` has been heard `times` times.
    let mut read_until = |wanted: &str, times: usize, heard: &mut String| -> Result<()> {
        while heard.matches(wanted).count() < times {
            let length = socket.recv(&mut buffer).map_err(|error| {
                durabletask_e2e::Error::new(format!(
                    "no {wanted} from the host ({error}); heard so far: {heard}"
                ))
            })?;
            heard.push_str(&String::from_utf8_lossy(&buffer[..length]));
            heard.push('\n');
        }
        Ok(())
    };
    read_until("READY=1", 1, &mut heard)?;
    read_until(
        "STATUS=serving: the work-item stream is open",
        1,
        &mut heard,
    )?;
    // 400 ms: a ping every 200 ms; two show that they repeat.
    read_until("WATCHDOG=1", 2, &mut heard)?;
    host.sigterm()?;
    read_until("STOPPING=1", 1, &mut heard)?;
    host.wait_exit(WAIT)?;
    Ok(())
}

/// The shipped systemd unit passes `systemd-analyze verify` (with `ExecStart` pointing at
/// the binary under test, since verify checks that it exists).
#[test]
fn the_systemd_unit_verifies() -> Result<()> {
    let analyze = which("systemd-analyze").expect("systemd-analyze (Debian's systemd package)");
    let unit = std::fs::read_to_string(
        durabletask_e2e::paths::workspace_root().join("contrib/systemd/durabletask-host.service"),
    )?;
    let binary = durabletask_e2e::paths::host_binary()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("durabletask-host.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/durabletask-host",
            &binary.display().to_string(),
        ),
    )?;
    let output = Command::new(analyze).arg("verify").arg(&path).output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(said.trim().is_empty(), "systemd-analyze warns: {said}");
    Ok(())
}
