//! `durabletask-host new plugin demo`: the crate it writes passes its own tests (the SDK's
//! test kit, no backend), builds in release, and the library serves its orchestration
//! through the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use durabletask_e2e::{Client, Error, Host, HostConfig, PluginFile, Result, paths};

/// Runs cargo in the new crate with the workspace's target folder, so the SDK and its
/// dependencies built for the workspace are reused; `--offline`: the crate's Cargo.lock
/// (the checkout's) pins what the workspace already fetched.
fn cargo(crate_dir: &Path, args: &[&str]) -> Result<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(crate_dir)
        .args(args)
        .arg("--offline")
        .env("CARGO_TARGET_DIR", paths::workspace_root().join("target"))
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(Error::new(format!(
            "cargo {args:?} in the new crate failed:\n{text}"
        )))
    }
}

#[test]
fn a_new_plugin_crate_tests_builds_and_serves() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let crate_dir = folder.path().join("demo");
    let output = Command::new(paths::host_binary()?)
        .args(["new", "plugin", "demo", "--path"])
        .arg(&crate_dir)
        .output()?;
    assert!(output.status.success(), "{output:?}");
    for file in ["Cargo.toml", "src/lib.rs", "README.md"] {
        assert!(crate_dir.join(file).is_file(), "no {file}");
    }

    let tested = cargo(&crate_dir, &["test"])?;
    assert!(tested.contains("test result: ok. 2 passed"), "{tested}");
    cargo(&crate_dir, &["build", "--release"])?;
    let library = paths::workspace_root().join("target/release/libdemo.so");
    assert!(library.is_file(), "{} was not built", library.display());

    let mut host = Host::start(&HostConfig::embedded().plugin(PluginFile::from_path(library)?))?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let state = client
        .run(&[
            "start",
            "greet_all",
            "--input",
            r#"["Ada", "Linus"]"#,
            "--wait",
        ])?
        .ok()?;
    assert_eq!(state["status"], "COMPLETED", "{state}\n{}", host.log_tail());
    assert_eq!(
        state["output"],
        serde_json::json!(["Hello, Ada!", "Hello, Linus!"])
    );

    // A second crate cannot be written over the first.
    let again = Command::new(paths::host_binary()?)
        .args(["new", "plugin", "demo", "--path"])
        .arg(&crate_dir)
        .output()?;
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not an empty folder"));
    Ok(())
}
