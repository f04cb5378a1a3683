//! `[backend] token_command`: a credential helper that mints the bearer token, run on every
//! (re)connect. The worker serves a backend that requires a token, and when the backend
//! comes back requiring a rotated one, the helper's new output gets the worker back in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use durabletask_e2e::{
    Client, Host, PluginFile, Result, WAIT, assert_hello_cities_completed, free_port, http_get,
    poll_until,
};

/// A host serving only its embedded backend on `port`, accepting only `token`.
fn backend(dir: &Path, port: u16, token: &str) -> Result<Host> {
    let tokens = dir.join(format!("backend-{token}.tokens"));
    std::fs::write(&tokens, format!("{token}\n"))?;
    Host::start_with_config_text(
        &format!(
            "[embedded]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"{}\"\ntoken_file = \"{}\"\n\n[worker]\nwork_item_filters = true\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            dir.join("backend.sqlite").display(),
            tokens.display()
        ),
        &[],
    )
}

#[test]
fn the_helpers_token_gets_the_worker_in_and_a_rotated_one_back_in() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let current = dir.path().join("current-token");
    std::fs::write(&current, "first-token\n")?;
    let runs = dir.path().join("runs");
    let mut first = backend(dir.path(), port, "first-token")?;
    let endpoint = first.embedded_endpoint()?;

    // The helper prints the current token and counts its runs.
    let helper = format!(
        "echo run >> '{}'; cat '{}'",
        runs.display(),
        current.display()
    );
    let worker_config = format!(
        "[backend]\nendpoint = \"{endpoint}\"\ntoken_command = [\"/bin/sh\", \"-c\", {helper:?}]\n\n[worker]\nwork_item_filters = true\n\n[plugins]\ndir = \"plugins\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    );
    let mut worker = Host::start_with_config_text(&worker_config, &[PluginFile::built("hello")?])?;
    let admin = worker.admin_url()?;
    let client = Client::new(endpoint.clone())?.with_token("first-token");
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &worker);

    // The backend comes back requiring a new token; the helper now prints it.
    first.kill9()?;
    std::fs::write(&current, "second-token\n")?;
    let _second = backend(dir.path(), port, "second-token")?;
    let ready = poll_until(WAIT, || {
        Ok((http_get(&format!("{admin}/readyz"), None)?.status == 200).then_some(()))
    })?;
    assert!(ready.is_some(), "{}", worker.log_tail());
    let client = Client::new(endpoint)?.with_token("second-token");
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &worker);
    let count = std::fs::read_to_string(&runs)?.lines().count();
    assert!(count >= 2, "the helper ran {count} time(s)");
    Ok(())
}
