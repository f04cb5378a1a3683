//! The host's embedded backend (`backend.mode = "embedded"`): one process, no other
//! service, state in a SQLite file. Its durability is checked the hard way: the host is
//! killed with SIGKILL at random moments while orchestrations run, and restarted on the
//! same database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::Duration;

use durabletask_e2e::{
    Client, EmbeddedBackend, Error, Host, HostConfig, PluginFile, Result, WAIT,
    assert_hello_cities_completed, poll_until,
};
use serde_json::{Value, json};

/// A port nothing listens on now (the host binds it; a restart reuses it).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A host serving `plugins` from its own embedded backend on `port`, with its database
/// at `database` (outside the host's scratch folder, so it outlives the host).
fn embedded_host(plugins: &[&str], port: u16, database: &Path) -> Result<Host> {
    let mut config =
        HostConfig::embedded().with_embedded(EmbeddedBackend::durable(port, database)?);
    for plugin in plugins {
        config = config.plugin(PluginFile::built(plugin)?);
    }
    Host::start(&config)
}

/// Runs the real client (`durabletask-host client <args>`).
fn run_client(args: &[&str]) -> std::io::Result<std::process::Output> {
    let binary = durabletask_e2e::paths::host_binary().map_err(std::io::Error::other)?;
    std::process::Command::new(binary)
        .arg("client")
        .args(args)
        .output()
}

/// The client's JSON answer on stdout (a panic shows what it printed instead).
fn json_of(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)))
}

/// The bench workload's expected output for `bench_seq_fan(x, k, f)`.
fn expected(x: i64, k: i64, f: i64) -> Value {
    json!({ "seq": x + k, "fan_sum": f * (x + k) + f * (f + 1) / 2 })
}

/// A tiny deterministic generator for the kill moments (no dependency, reproducible).
struct Lcg(u64);

impl Lcg {
    fn next_ms(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        low + (self.0 >> 33) % (high - low)
    }
}

#[test]
fn hello_cities_runs_on_the_embedded_backend_with_no_other_service() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let mut host = embedded_host(&["hello"], 0, &scratch.path().join("state.sqlite"))?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    Ok(())
}

#[test]
fn orchestrations_survive_the_host_being_killed_three_times() -> Result<()> {
    const ORCHESTRATIONS: i64 = 300;
    let (k, f) = (5, 5);
    let scratch = tempfile::tempdir()?;
    let database = scratch.path().join("state.sqlite");
    let port = free_port()?;
    let mut host = embedded_host(&["bench"], port, &database)?;
    let client = Client::new(host.embedded_endpoint()?)?;

    // Every start is acknowledged, so it is committed: it must survive the kills.
    let ids: Vec<String> = (0..ORCHESTRATIONS)
        .map(|x| format!("crash-{x:03}"))
        .collect();
    thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = ids
            .chunks(ids.len().div_ceil(4))
            .map(|chunk| {
                let client = &client;
                scope.spawn(move || -> Result<()> {
                    for id in chunk {
                        let x: i64 = id.trim_start_matches("crash-").parse().unwrap();
                        let input = json!({ "x": x, "k": k, "f": f }).to_string();
                        client
                            .run(&["start", "bench_seq_fan", "--id", id, "--input", &input])?
                            .ok()?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| Error::new("a start thread panicked"))?
        })
    })?;

    // Three crashes at random moments while they run, each followed by a restart on the
    // same database and port.
    let mut random = Lcg(0x5eed);
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(random.next_ms(100, 1500)));
        host.kill9()?;
        host = embedded_host(&["bench"], port, &database)?;
        host.embedded_endpoint()?;
    }

    // All complete, each with its right output.
    let mut last = 0;
    let done = poll_until(WAIT * 3, || {
        let completed = client.list(&["COMPLETED"], Some("crash-"), Some(1000))?;
        last = completed.len();
        Ok((completed.len() == ids.len()).then_some(completed))
    })?
    .ok_or_else(|| {
        Error::new(format!(
            "only {last} of {ORCHESTRATIONS} completed\n{}",
            host.log_tail()
        ))
    })?;
    let outputs: BTreeMap<String, Value> = done
        .into_iter()
        .map(|s| {
            (
                s["instance_id"].as_str().unwrap().to_owned(),
                s["output"].clone(),
            )
        })
        .collect();
    for (x, id) in ids.iter().enumerate() {
        let x = i64::try_from(x).unwrap();
        assert_eq!(outputs[id], expected(x, k, f), "{id}");
    }
    assert!(client.list(&["FAILED"], None, None)?.is_empty());
    Ok(())
}

/// Issue 10, item 2: two hosts on one database used to both start and split the state.
/// On SQLite the second is refused at start, with one line naming the file and the
/// first's pid; on PostgreSQL (issue 15) it joins the first, which runs the engine, and
/// serves through it.
#[test]
fn a_second_host_on_the_same_database_is_refused_on_sqlite_and_joins_on_postgres() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let database = scratch.path().join("shared.sqlite");
    let mut first = embedded_host(&["hello"], 0, &database)?;
    first.embedded_endpoint()?;
    let holder = first.pid().expect("the first host runs");
    if durabletask_e2e::postgres_backend_selected() {
        let mut second = embedded_host(&["hello"], 0, &database)?;
        second.wait_for_log_line(
            &["following the host that runs the task hub's engine"],
            WAIT,
        )?;
        // Through the second host: forwarded to the first's engine.
        let client = Client::new(second.embedded_endpoint()?)?;
        let state = client.start_and_wait("hello_cities", None, WAIT)?;
        assert_hello_cities_completed(&state, &second);
        let through_first = Client::new(first.embedded_endpoint()?)?;
        let id = state["instance_id"].as_str().unwrap();
        assert_eq!(through_first.status(id)?["status"], "COMPLETED");
        return Ok(());
    }

    let mut second = embedded_host(&["hello"], 0, &database)?;
    let status = second.wait_exit(WAIT)?;
    assert!(!status.success(), "the second host must not start");
    let output = format!("{}{}", second.stderr(), second.logs());
    let line = output
        .lines()
        .find(|line| line.contains("shared.sqlite") && line.contains("in use"))
        .unwrap_or_else(|| panic!("no line names the database in use:\n{output}"));
    assert!(line.contains(&format!("pid {holder}")), "{line}");

    // The first host still serves, alone.
    let client = Client::new(first.embedded_endpoint()?)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &first);
    Ok(())
}

/// Issue 10, item 5: with `[embedded] token_file`, the embedded backend serves only calls
/// bearing one of its tokens; the host's own worker and the client (reading the same
/// config) use it, anyone else is refused.
#[test]
fn with_a_token_file_the_embedded_backend_serves_only_its_token_holders() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let plugins = scratch.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let hello = PluginFile::built("hello")?;
    std::fs::copy(hello.source(), plugins.join(hello.file_name()))?;
    let config_path = scratch.path().join("host.toml");
    // A fixed port: the client reads its address from the same config.
    let port = free_port()?;
    std::fs::write(
        &config_path,
        format!(
            "[embedded]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"state.sqlite\"\ntoken_file = \"tokens\"\n\n[plugins]\ndir = \"plugins\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )?;

    // No token file yet: the host does not start (it would otherwise serve everyone).
    let mut refused = Host::start_with_config_file(&config_path)?;
    assert!(!refused.wait_exit(WAIT)?.success());
    let output = format!("{}{}", refused.stderr(), refused.logs());
    assert!(output.contains("token file"), "{output}");

    std::fs::write(scratch.path().join("tokens"), "# ops\ns3cret-token\n")?;
    let mut host = Host::start_with_config_file(&config_path)?;
    let endpoint = host.embedded_endpoint()?;
    let config_arg = config_path.to_string_lossy().into_owned();
    let started = run_client(&["--config", &config_arg, "start", "hello_cities", "--wait"])?;
    let state = json_of(&started);
    assert_hello_cities_completed(&state, &host);

    let anonymous = run_client(&["--endpoint", &endpoint, "list"])?;
    assert!(!anonymous.status.success());
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains("Bearer") || stderr.contains("not accepted"),
        "{stderr}"
    );

    // Without a config file, --token-file names the token (its first token line).
    let token_file = scratch.path().join("tokens").to_string_lossy().into_owned();
    let with_file = run_client(&["--endpoint", &endpoint, "--token-file", &token_file, "list"])?;
    assert!(
        with_file.status.success(),
        "{}",
        String::from_utf8_lossy(&with_file.stderr)
    );
    Ok(())
}

/// Issue 10, item 5: with `[embedded] tls_cert_file` and `tls_key_file` the embedded
/// backend serves TLS only. The host's own worker and the client reading the same config
/// connect with https and trust its certificate (self-signed here) as their root; a
/// plaintext client gets nothing.
#[test]
fn with_tls_files_the_embedded_backend_serves_tls_to_its_worker_and_client_only() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let plugins = scratch.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    let hello = PluginFile::built("hello")?;
    std::fs::copy(hello.source(), plugins.join(hello.file_name()))?;
    let tls = scratch.path().join("tls");
    std::fs::create_dir(&tls)?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate");
    std::fs::write(tls.join("cert.pem"), certified.cert.pem())?;
    std::fs::write(tls.join("key.pem"), certified.key_pair.serialize_pem())?;
    std::fs::write(scratch.path().join("tokens"), "s3cret-token\n")?;
    let config_path = scratch.path().join("host.toml");
    // A fixed port: the client reads its address from the same config. Paths are
    // relative to the config file.
    let port = free_port()?;
    std::fs::write(
        &config_path,
        format!(
            "[embedded]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"state.sqlite\"\ntoken_file = \"tokens\"\ntls_cert_file = \"tls/cert.pem\"\ntls_key_file = \"tls/key.pem\"\n\n[plugins]\ndir = \"plugins\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )?;

    let mut host = Host::start_with_config_file(&config_path)?;
    // `http://127.0.0.1:<port>`: the address it listens on, as a plaintext client sees it.
    let plaintext_endpoint = host.embedded_endpoint()?;
    let config_arg = config_path.to_string_lossy().into_owned();
    let started = run_client(&["--config", &config_arg, "start", "hello_cities", "--wait"])?;
    let state = json_of(&started);
    assert!(started.status.success(), "{state}");
    assert_hello_cities_completed(&state, &host);

    // With the right token, so that only the missing TLS can be why it is refused.
    let plaintext = std::process::Command::new(durabletask_e2e::paths::host_binary()?)
        .env("DURABLETASK_E2E_TOKEN", "s3cret-token")
        .args(["client", "--endpoint", &plaintext_endpoint])
        .args(["--token-env", "DURABLETASK_E2E_TOKEN", "list"])
        .output()?;
    assert!(
        !plaintext.status.success(),
        "a plaintext client was served: {}",
        String::from_utf8_lossy(&plaintext.stdout)
    );
    Ok(())
}

/// Issue 11: the embedded backend's gRPC server ran on the worker's event loop, so an
/// orchestrator that blocked froze the backend for every other client (a `Hello` took
/// 10 s). It has a thread of its own now: while a step blocks the loop, the backend still
/// answers. Shown by order, not by time: the client's answer comes before the step ends
/// (the host logs "took long" the moment a blocking step returns).
#[test]
fn the_embedded_backend_answers_while_a_plugin_blocks_the_worker_loop() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let config = HostConfig::embedded()
        .with_embedded(EmbeddedBackend::durable(
            0,
            &scratch.path().join("state.sqlite"),
        )?)
        .plugin(PluginFile::built("faulty")?)
        .in_process();
    let mut host = Host::start(&config)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let id = client.start("block_in_step", Some(&json!(4000)))?;
    // The step is running and blocking the loop (the watchdog says so after 1 s).
    host.wait_for_log_line(&["block_in_step", "has been running for", &id], WAIT)?;
    let state = client.status(&id)?;
    assert!(
        !host.log_contains("an orchestration step took long"),
        "the backend answered only once the step had ended\n{}",
        host.log_tail()
    );
    assert_ne!(state["status"], "COMPLETED", "{state:#}");
    let listed = client.list(&[], None, None)?;
    assert!(
        !host.log_contains("an orchestration step took long"),
        "{listed:?}"
    );
    assert_eq!(listed.len(), 1, "{listed:?}");
    let done = client.wait(&id, WAIT)?;
    assert_eq!(done["status"], "COMPLETED", "{done:#}");
    assert_eq!(done["output"], json!(4000));
    Ok(())
}
