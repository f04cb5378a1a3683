//! Whose libraries the host loads (issue 10, items 3 and 4): a library that users other
//! than the host's and root could have written is refused, like sshd's StrictModes
//! refuses such a `~/.ssh`, unless `[plugins] strict_permissions = false`; and the
//! private folder the host loads its copies from is its own, 0700 and unpredictably
//! named.
//!
//! Each test builds its host's folder itself (config, plugins folder, library) so that
//! permissions are set before the host first looks. Hosts run their embedded backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Output;

use durabletask_e2e::{
    Client, Host, HostConfig, PluginFile, Result, WAIT, assert_hello_cities_completed,
};
use serde_json::Value;
use tempfile::TempDir;

/// An unprivileged user (`nobody`), to own a library "of another user".
const NOBODY: u32 = 65534;

/// A host's folder: `host.toml` and `plugins/libhello.so`, before the host starts.
struct Setup {
    dir: TempDir,
}

impl Setup {
    /// `config` written as `host.toml`, with the hello plugin in `plugins/` (0755, 0644).
    fn new(config: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("host.toml"), config)?;
        let setup = Self { dir };
        std::fs::create_dir(setup.plugins())?;
        chmod(&setup.plugins(), 0o755)?;
        std::fs::copy(PluginFile::built("hello")?.source(), setup.library())?;
        chmod(&setup.library(), 0o644)?;
        Ok(setup)
    }

    /// With the harness's embedded-backend configuration.
    fn embedded() -> Result<Self> {
        Self::new(&HostConfig::embedded().to_toml())
    }

    /// With `[plugins] strict_permissions = false`.
    fn embedded_lax() -> Result<Self> {
        let config = HostConfig::embedded()
            .to_toml()
            .replace("[plugins]\n", "[plugins]\nstrict_permissions = false\n");
        assert!(config.contains("strict_permissions = false"), "{config}");
        Self::new(&config)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("host.toml")
    }

    fn plugins(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    fn library(&self) -> PathBuf {
        self.plugins().join("libhello.so")
    }

    /// Starts the host on this folder; returns it and a client of its backend.
    fn start(&self) -> Result<(Host, Client)> {
        let mut host = Host::start_with_config_file(&self.config())?;
        let client = Client::new(host.embedded_endpoint()?)?;
        Ok((host, client))
    }

    /// `durabletask-host plugins --json` on this folder.
    fn list_plugins(&self) -> Result<(Output, Value)> {
        let output = std::process::Command::new(durabletask_e2e::paths::host_binary()?)
            .args(["plugins", "--json", "--config"])
            .arg(self.config())
            .output()?;
        let listed = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        Ok((output, listed))
    }
}

fn chmod(path: &Path, mode: u32) -> Result<()> {
    Ok(std::fs::set_permissions(
        path,
        Permissions::from_mode(mode),
    )?)
}

/// Waits for the one line refusing `libhello.so` whose reason contains `reason`, and
/// checks there is exactly one.
fn assert_refused_once(host: &mut Host, reason: &str) -> Result<()> {
    let refusal = ["refused plugin", "libhello.so", reason];
    host.wait_for_log_line(&refusal, WAIT)?;
    let lines = host.log_lines_with(&refusal);
    assert_eq!(lines.len(), 1, "{lines:#?}\n{}", host.log_tail());
    Ok(())
}

/// `durabletask-host plugins` lists `libhello.so` as refused for `reason`, and exits 1.
fn assert_listed_as_refused(setup: &Setup, reason: &str) -> Result<()> {
    let (output, listed) = setup.list_plugins()?;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(listed["plugins"], serde_json::json!([]), "{listed:#}");
    let refused = &listed["refused"][0];
    assert!(
        refused["file"].as_str().unwrap().ends_with("libhello.so"),
        "{listed:#}"
    );
    assert!(
        refused["reason"].as_str().unwrap().contains(reason),
        "{listed:#}"
    );
    Ok(())
}

/// The refused plugin's orchestrator is not served: its code never ran.
fn assert_hello_cities_not_registered(client: &Client, host: &Host) -> Result<()> {
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_eq!(state["status"], "FAILED", "{state:#}\n{}", host.log_tail());
    assert_eq!(
        state["failure_details"]["error_type"], "OrchestratorNotRegistered",
        "{state:#}"
    );
    Ok(())
}

#[test]
fn a_world_writable_library_is_refused_and_its_orchestrators_are_not_served() -> Result<()> {
    let setup = Setup::embedded()?;
    chmod(&setup.library(), 0o666)?;
    let (mut host, client) = setup.start()?;

    assert_refused_once(&mut host, "writable by its group and others (mode 0666)")?;
    assert_listed_as_refused(&setup, "mode 0666")?;
    assert_hello_cities_not_registered(&client, &host)?;
    assert!(host.is_running()?, "{}", host.log_tail());
    Ok(())
}

#[test]
fn a_library_owned_by_another_user_is_refused() -> Result<()> {
    let setup = Setup::embedded()?;
    std::os::unix::fs::chown(setup.library(), Some(NOBODY), None)?;
    let (mut host, client) = setup.start()?;

    assert_refused_once(&mut host, "owned by uid 65534")?;
    assert_listed_as_refused(&setup, "owned by uid 65534")?;
    assert_hello_cities_not_registered(&client, &host)?;
    Ok(())
}

#[test]
fn a_world_writable_plugins_folder_is_refused_sticky_bit_or_not() -> Result<()> {
    for mode in [0o777, 0o1777] {
        let setup = Setup::embedded()?;
        chmod(&setup.plugins(), mode)?;
        let (mut host, client) = setup.start()?;

        let reason = format!("the plugins folder {}", setup.plugins().display());
        assert_refused_once(&mut host, &reason)?;
        assert_refused_once(&mut host, &format!("mode {mode:04o}"))?;
        assert_listed_as_refused(&setup, &reason)?;
        assert_hello_cities_not_registered(&client, &host)?;
    }
    Ok(())
}

/// What issue 10 reported: a library dropped into a watched folder by someone who may
/// write to it (here: the file is world-writable) was in service within a second.
#[test]
fn an_unsafe_library_dropped_into_a_watched_folder_is_refused_until_it_is_fixed() -> Result<()> {
    let config = HostConfig::embedded().watch_plugins().to_toml();
    let setup = Setup::new(&config)?;
    std::fs::remove_file(setup.library())?;
    let (mut host, client) = setup.start()?;
    host.wait_for_log("no plugin loaded", WAIT)?;

    let partial = setup.plugins().join(".libhello.so.partial");
    std::fs::copy(PluginFile::built("hello")?.source(), &partial)?;
    chmod(&partial, 0o666)?;
    std::fs::rename(&partial, setup.library())?;
    assert_refused_once(&mut host, "mode 0666")?;
    assert_hello_cities_not_registered(&client, &host)?;

    // Fixed by its owner: a chmod changes the file's ctime, so it is read again.
    chmod(&setup.library(), 0o644)?;
    host.wait_for_log_line(&["loaded plugin", "hello"], WAIT)?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);
    Ok(())
}

#[test]
fn without_strict_permissions_an_unsafe_library_loads_with_a_warning_and_runs() -> Result<()> {
    let setup = Setup::embedded_lax()?;
    chmod(&setup.library(), 0o666)?;
    chmod(&setup.plugins(), 0o777)?;
    let (mut host, client) = setup.start()?;

    let warning = host.wait_for_log_line(&["WARN", "libhello.so", "strict_permissions"], WAIT)?;
    assert!(warning.contains("mode 0666"), "{warning}");
    assert!(warning.contains("the plugins folder"), "{warning}");
    assert!(
        host.log_lines_with(&["refused plugin"]).is_empty(),
        "{}",
        host.log_tail()
    );
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &host);

    // The listing loads it too, says why it is unsafe, and exits 0.
    let (output, listed) = setup.list_plugins()?;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(listed["plugins"][0]["name"], "hello", "{listed:#}");
    assert!(
        listed["untrusted"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("mode 0666"),
        "{listed:#}"
    );
    Ok(())
}

/// The private folder a running host loads `libhello-<hash>.so` from, from the memory
/// maps of the host and its plugins' processes (the mapped library's path).
fn private_dir_of(host: &Host) -> Result<PathBuf> {
    let mut maps = String::new();
    for pid in host.process_tree() {
        maps.push_str(&std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default());
    }
    let library = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.contains("/libhello-") && path.ends_with(".so"))
        .unwrap_or_else(|| panic!("no private copy of libhello mapped:\n{maps}"));
    Ok(Path::new(library).parent().unwrap().to_path_buf())
}

#[test]
fn the_private_folder_is_0700_the_hosts_own_and_unpredictably_named() -> Result<()> {
    let mut suffixes = Vec::new();
    for _ in 0..2 {
        let setup = Setup::embedded()?;
        let (mut host, _client) = setup.start()?;
        host.wait_for_log_line(&["loaded plugin", "hello"], WAIT)?;
        let pid = host.pid().expect("the host runs");
        let dir = private_dir_of(&host)?;

        let metadata = std::fs::symlink_metadata(&dir)?;
        assert!(metadata.is_dir(), "{}", dir.display());
        assert_eq!(metadata.mode() & 0o7777, 0o700, "{}", dir.display());
        // The owner of /proc/<pid> is the process's effective uid.
        let host_uid = std::fs::metadata(format!("/proc/{pid}"))?.uid();
        assert_eq!(metadata.uid(), host_uid, "{}", dir.display());

        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let prefix = format!("durabletask-host-{pid}-");
        let suffix = name
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{name} is not named {prefix}<random>"));
        assert!(suffix.len() >= 6, "{name}: a short random part");
        suffixes.push(suffix.to_owned());

        for entry in std::fs::read_dir(&dir)? {
            let copy = entry?.metadata()?;
            assert_eq!(copy.mode() & 0o7777, 0o600, "{}", dir.display());
        }
    }
    assert_ne!(suffixes[0], suffixes[1], "two hosts, one random part");
    Ok(())
}
