//! Signals other than the stop signals (resilience.rs has SIGINT and SIGTERM): SIGHUP
//! reloads the plugins folder and the log level; SIGUSR1 writes the status report (see
//! process_isolation.rs for one with work in flight); SIGUSR2 and SIGPIPE are ignored.
//! Before issue 10 item 8, each of them ended the host on the spot, without a drain or a
//! log line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{
    Client, Error, Host, HostConfig, PluginFile, Result, WAIT, assert_hello_cities_completed,
};

/// What the host logs at DEBUG for every orchestration work item it receives.
const DEBUG_WORK_ITEM_LINE: &str = "orchestration work item received";

#[test]
fn sigusr1_sigusr2_and_sigpipe_leave_the_host_serving() -> Result<()> {
    let mut host = Host::start(&HostConfig::embedded().plugin(PluginFile::built("hello")?))?;
    // The handlers are in before the embedded backend starts listening.
    let client = Client::new(host.embedded_endpoint()?)?;

    host.signal(libc::SIGUSR1)?;
    host.wait_for_log(
        "status: 1 plugin generation(s) in service, 0 work item(s) in flight",
        WAIT,
    )?;
    host.wait_for_log_line(&["plugin hello 1.0.0: in process "], WAIT)?;
    host.signal(libc::SIGUSR2)?;
    host.wait_for_log("ignoring SIGUSR2", WAIT)?;
    // Ignored by the Rust runtime itself (writes to a closed pipe fail with EPIPE instead).
    host.signal(libc::SIGPIPE)?;

    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    assert!(host.is_running()?, "{}", host.log_tail());
    assert_eq!(
        host.log_lines_with(&["ignoring SIGUSR2"]).len(),
        1,
        "one line per signal\n{}",
        host.log_tail()
    );
    Ok(())
}

#[test]
fn sighup_puts_a_new_plugin_in_service_and_applies_the_new_log_level() -> Result<()> {
    // No plugin yet, and no watcher (the harness turns `[plugins] watch` off): only the
    // SIGHUP can bring the plugin in.
    let mut host = Host::start(&HostConfig::embedded().log_level("info"))?;
    let client = Client::new(host.embedded_endpoint()?)?;
    host.wait_for_log("no plugin loaded", WAIT)?;

    host.deploy(&PluginFile::built("hello")?)?;
    set_log_level(&host, "info", "debug")?;
    host.signal(libc::SIGHUP)?;
    let line = host.wait_for_log("SIGHUP: reloaded", WAIT)?;
    assert!(
        line.contains("the plugins folder (1 generation in service, changed)"),
        "{line}"
    );
    assert!(line.contains(r#"the log level ("debug")"#), "{line}");
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        !host.log_contains(DEBUG_WORK_ITEM_LINE),
        "{}",
        host.log_tail()
    );

    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    host.wait_for_log(DEBUG_WORK_ITEM_LINE, WAIT)?;

    // A config that no longer parses: the level stays, the plugins are still rescanned.
    std::fs::write(host.config_path(), "[logging\n")
        .map_err(|error| Error::new(format!("cannot break the config: {error}")))?;
    host.signal(libc::SIGHUP)?;
    host.wait_for_log("SIGHUP: cannot reload the log level", WAIT)?;
    let line = host.wait_for_log(r#"the log level stays "debug""#, WAIT)?;
    assert!(
        line.contains("1 generation in service, no change"),
        "{line}"
    );
    assert!(host.is_running()?, "{}", host.log_tail());
    Ok(())
}

/// Rewrites `[logging] level` in the host's config file.
fn set_log_level(host: &Host, from: &str, to: &str) -> Result<()> {
    let path = host.config_path();
    let text = std::fs::read_to_string(path)
        .map_err(|error| Error::new(format!("cannot read {}: {error}", path.display())))?;
    let old = format!("level = \"{from}\"");
    assert!(text.contains(&old), "{text}");
    std::fs::write(path, text.replace(&old, &format!("level = \"{to}\"")))
        .map_err(|error| Error::new(format!("cannot write {}: {error}", path.display())))
}
