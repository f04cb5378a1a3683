//! Bad configuration stops the host at start-up with a message that names the file, the
//! line and the key; the shipped example configuration is valid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use durabletask_e2e::{
    Client, Host, PluginFile, Result, WAIT, assert_hello_cities_completed, paths,
};

/// A host that rejects its configuration exits at once; this bounds "at once".
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the host on a config with this text and returns (exit code, stderr, config path).
fn run_with_config(text: &str) -> Result<(Option<i32>, String, String)> {
    let mut host = Host::start_with_config_text(text, &[])?;
    let status = host.wait_exit(EXIT_TIMEOUT)?;
    Ok((
        status.code(),
        host.stderr(),
        host.config_path().display().to_string(),
    ))
}

/// Whether `stderr` points at `line` of the file: `path:line:column` as compilers write
/// it, or "line N" in words.
fn names_line(stderr: &str, path: &str, line: usize) -> bool {
    stderr.contains(&format!("{path}:{line}:")) || stderr.contains(&format!("line {line}"))
}

#[test]
fn an_unknown_key_exits_2_naming_the_file_line_and_key() -> Result<()> {
    let (code, stderr, path) = run_with_config(
        r#"[backend]
endpoint = "http://127.0.0.1:1"

[worker]
max_concurrent_orchestrations = 10
max_concurent_activities = 10
"#,
    )?;

    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains(&path), "the file is not named:\n{stderr}");
    assert!(
        names_line(&stderr, &path, 6),
        "the line is not named:\n{stderr}"
    );
    assert!(
        stderr.contains("max_concurent_activities"),
        "the key is not named:\n{stderr}"
    );
    Ok(())
}

#[test]
fn invalid_toml_exits_2_naming_the_file_and_line() -> Result<()> {
    let (code, stderr, path) = run_with_config(
        r#"[backend]
endpoint = "http://127.0.0.1:1"
taskhub = "unterminated
"#,
    )?;

    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains(&path), "the file is not named:\n{stderr}");
    assert!(
        names_line(&stderr, &path, 3),
        "the line is not named:\n{stderr}"
    );
    Ok(())
}

#[test]
fn an_invalid_value_exits_2_naming_the_key() -> Result<()> {
    let (code, stderr, path) = run_with_config(
        r#"[backend]
endpoint = "http://127.0.0.1:1"

[logging]
format = "yaml"
"#,
    )?;

    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains(&path), "the file is not named:\n{stderr}");
    assert!(stderr.contains("format"), "the key is not named:\n{stderr}");
    Ok(())
}

#[test]
fn a_missing_config_file_exits_non_zero_naming_the_file() -> Result<()> {
    let missing = std::env::temp_dir().join("durabletask-e2e-no-such-dir/host.toml");
    let mut host = Host::start_with_config_file(&missing)?;

    let status = host.wait_exit(EXIT_TIMEOUT)?;

    let stderr = host.stderr();
    assert!(!status.success(), "exited {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains(&missing.display().to_string()),
        "the file is not named:\n{stderr}"
    );
    Ok(())
}

#[test]
fn the_example_config_is_valid_and_serves_plugins() -> Result<()> {
    // config/host.toml as shipped (its own embedded backend), on a free port, with a
    // database and plugins dir of its own.
    let text = durabletask_e2e::shipped_config()?;
    let mut host = Host::start_with_config_text(&text, &[PluginFile::built("hello")?])?;
    let client = Client::new(host.embedded_endpoint()?)?;

    let state = client.start_and_wait("hello_cities", None, WAIT)?;

    assert_hello_cities_completed(&state, &host);
    assert!(host.is_running()?, "{}", host.log_tail());
    Ok(())
}

/// `durabletask-host validate --config <dir>/host.toml` on `text`, with `plugins` in
/// `<dir>/plugins`: (exit code, stdout, stderr).
fn validate(text: &str, plugins: &[PluginFile]) -> Result<(Option<i32>, String, String)> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("plugins"))?;
    for plugin in plugins {
        std::fs::copy(
            plugin.source(),
            dir.path().join("plugins").join(plugin.file_name()),
        )?;
    }
    let config = dir.path().join("host.toml");
    std::fs::write(&config, text)?;
    let output = std::process::Command::new(paths::host_binary()?)
        .arg("validate")
        .arg("--config")
        .arg(&config)
        .output()?;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[test]
fn validate_checks_without_starting_and_exits_0_1_or_2() -> Result<()> {
    let valid = "[embedded]\nlisten = \"127.0.0.1:0\"\n\n[plugins]\ndir = \"plugins\"\n";
    let (code, stdout, stderr) = validate(valid, &[PluginFile::built("hello")?])?;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("validation passed"), "{stdout}");
    assert!(stdout.contains("hello_cities"), "{stdout}");

    // A configuration that cannot be used: 2, naming the line and key.
    let (code, _, stderr) = validate("[worker]\nmax_concurent_activities = 3\n", &[])?;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("host.toml:2"), "{stderr}");
    assert!(stderr.contains("max_concurent_activities"), "{stderr}");

    // Usable, but a library would be refused, or a named file is missing: 1.
    let (code, stdout, stderr) = validate(valid, &[PluginFile::built("incompatible")?])?;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("would be refused"), "{stderr}");
    let with_token = format!("{valid}\n[admin]\ntoken_file = \"missing.token\"\n");
    let (code, _, stderr) = validate(&with_token, &[PluginFile::built("hello")?])?;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("[admin] token_file"), "{stderr}");
    assert!(stderr.contains("missing.token"), "{stderr}");
    Ok(())
}

#[test]
fn a_missing_plugins_folder_is_created_and_the_host_serves() -> Result<()> {
    let text = "[embedded]\nlisten = \"127.0.0.1:0\"\n\n[plugins]\ndir = \"plugins-to-come\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n";
    let mut host = Host::start_with_config_text(text, &[])?;
    let line = host.wait_for_log("the plugins folder did not exist and was created", WAIT)?;
    assert!(line.contains(" WARN "), "{line}");
    host.embedded_endpoint()?;
    let folder = host.config_path().with_file_name("plugins-to-come");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&folder)?.permissions());
    assert_eq!(mode & 0o777, 0o700, "{}", folder.display());
    host.sigterm()?;
    host.wait_exit(WAIT)?;
    Ok(())
}

#[test]
fn the_environment_overrides_the_file_and_a_bad_variable_is_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        "[embedded]\nlisten = \"127.0.0.1:0\"\n\n[plugins]\ndir = \"plugins\"\n",
    )?;
    let run = |vars: &[(&str, &str)]| -> Result<std::process::Output> {
        Ok(std::process::Command::new(paths::host_binary()?)
            .arg("validate")
            .arg("--config")
            .arg(&config)
            .envs(vars.iter().copied())
            .output()?)
    };
    // The file's plugins folder is "plugins"; the variable wins.
    let output = run(&[("DURABLETASK_PLUGINS_DIR", "from-the-environment")])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("from-the-environment"), "{stdout}");

    let output = run(&[("DURABLETASK_WORKER_MAX_CONCURRENT_ACTIVITIES", "lots")])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("DURABLETASK_WORKER_MAX_CONCURRENT_ACTIVITIES"),
        "{stderr}"
    );
    let output = run(&[("DURABLETASK_WORKER_MAX_CONCURENT_ACTIVITIES", "5")])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("max_concurent_activities"), "{stderr}");
    Ok(())
}
