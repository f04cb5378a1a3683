//! The `durabletask-host` daemon, run from its binary with a generated configuration.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::paths;
use crate::process::{die_with_parent, kill_and_reap, poll_until, send_signal, wait_for_exit};

/// Set to keep each host's scratch directory (config, plugins, logs) after the test, for
/// post-mortems; its path is printed.
pub const KEEP_SCRATCH_ENV: &str = "DURABLETASK_E2E_KEEP";

/// What the host logs, followed by the address, once its embedded backend listens.
pub const EMBEDDED_LISTENING: &str = "embedded backend listening on ";
/// What the host logs, followed by its URL, once its admin listener listens.
pub const ADMIN_LISTENING: &str = "admin listener on ";

/// How many log lines [`Host::log_tail`] shows in failure messages.
const LOG_TAIL_LINES: usize = 60;

/// A library to put in the host's plugins directory.
#[derive(Debug, Clone)]
pub struct PluginFile {
    source: PathBuf,
    file_name: String,
}

impl PluginFile {
    /// `lib<name>.so` from this build (e.g. `built("hello")`).
    pub fn built(name: &str) -> Result<Self> {
        Self::from_path(paths::plugin_library(name)?)
    }

    /// `lib<name>.so` from the `panic-abort` profile build.
    pub fn panic_abort_build(name: &str) -> Result<Self> {
        Self::from_path(paths::panic_abort_plugin_library(name)?)
    }

    /// A system library (libm) installed as `libnotaplugin.so`: loadable, but no plugin.
    pub fn not_a_plugin() -> Result<Self> {
        Ok(Self::from_path(paths::system_shared_library()?)?.named("libnotaplugin.so"))
    }

    /// Any library file, under its own name.
    pub fn from_path(source: PathBuf) -> Result<Self> {
        let file_name = source
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| Error::new(format!("{} has no file name", source.display())))?
            .to_owned();
        Ok(Self { source, file_name })
    }

    /// Installs the library under another file name.
    pub fn named(mut self, file_name: &str) -> Self {
        file_name.clone_into(&mut self.file_name);
        self
    }

    /// The library file it is copied from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The file name it gets in the plugins directory.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }
}

/// What goes into the generated `host.toml`. Defaults suit tests: short timeouts where
/// a test waits on them, no plugin watching.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `backend.endpoint`.
    pub endpoint: String,
    /// `backend.taskhub`.
    pub taskhub: String,
    /// `worker.max_concurrent_orchestrations`.
    pub max_concurrent_orchestrations: u32,
    /// `worker.max_concurrent_activities`.
    pub max_concurrent_activities: u32,
    /// `worker.max_concurrent_activities_per_plugin`, if set.
    pub max_concurrent_activities_per_plugin: Option<u32>,
    /// `worker.max_concurrent_entities`.
    pub max_concurrent_entities: u32,
    /// `worker.drain_timeout`.
    pub drain_timeout: String,
    /// `worker.stream_silence_timeout`.
    pub stream_silence_timeout: String,
    /// `worker.activity_timeout`, if set (absent = activities may take as long as they take).
    pub activity_timeout: Option<String>,
    /// `worker.long_activity_threshold`, if set (absent = the host's default, 60 s).
    pub long_activity_threshold: Option<String>,
    /// `worker.maximum_timer_interval`, if set (absent = timers are never split).
    pub maximum_timer_interval: Option<String>,
    /// `worker.work_item_filters`: send filters built from the plugins' registrations.
    pub work_item_filters: bool,
    /// `logging.level`.
    pub log_level: String,
    /// `logging.format`: `text` or `json`.
    pub log_format: String,
    /// `logging.file`, if any (relative paths are relative to the config's directory).
    pub log_file: Option<String>,
    /// The libraries copied into `plugins.dir`.
    pub plugins: Vec<PluginFile>,
    /// `plugins.watch`: put libraries dropped into the folder in service (hot swap).
    pub watch_plugins: bool,
    /// Run the host's own embedded backend (`backend.mode = "embedded"`) instead of
    /// connecting to `endpoint`.
    pub embedded: Option<EmbeddedBackend>,
    /// The `[versioning]` section's keys as TOML lines, if the file has that section.
    pub versioning: Option<String>,
    /// More `[plugins]` keys as TOML lines (`isolation = "in-process"`, limits).
    pub plugins_settings: Vec<String>,
    /// Extra lines for the `[admin]` section (whose `listen` is always a free port).
    pub admin_settings: Vec<String>,
    /// Whole sections of TOML appended at the end (e.g. `[tracing]`).
    pub sections: Vec<String>,
}

impl HostConfig {
    /// A configuration for a host serving no plugins yet against `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            taskhub: "default".to_owned(),
            max_concurrent_orchestrations: 100,
            max_concurrent_activities: 100,
            max_concurrent_activities_per_plugin: None,
            max_concurrent_entities: 100,
            drain_timeout: "30s".to_owned(),
            stream_silence_timeout: "120s".to_owned(),
            activity_timeout: None,
            long_activity_threshold: None,
            maximum_timer_interval: None,
            work_item_filters: false,
            log_level: "info".to_owned(),
            log_format: "text".to_owned(),
            log_file: None,
            plugins: Vec::new(),
            watch_plugins: false,
            versioning: None,
            embedded: None,
            plugins_settings: Vec::new(),
            admin_settings: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// A configuration for a host that serves its own embedded backend (a SQLite file in
    /// its scratch directory, an ephemeral port: see [`Host::embedded_endpoint`]).
    ///
    /// With `DURABLETASK_E2E_BACKEND=postgres`, its state is in a fresh PostgreSQL
    /// database instead (see [`crate::postgres`]); it panics if none can be made.
    pub fn embedded() -> Self {
        let mut config = Self::new("");
        config.embedded = Some(if crate::postgres_backend_selected() {
            match crate::postgres::fresh_database() {
                Ok(url) => EmbeddedBackend {
                    database: PathBuf::from(url),
                    ..EmbeddedBackend::default()
                },
                Err(error) => panic!("{error}"),
            }
        } else {
            EmbeddedBackend::default()
        });
        config
    }

    /// Uses this embedded backend setup (a fixed port, a database that outlives the host).
    pub fn with_embedded(mut self, embedded: EmbeddedBackend) -> Self {
        self.embedded = Some(embedded);
        self
    }

    /// Watches the plugins folder (`plugins.watch = true`).
    pub fn watch_plugins(mut self) -> Self {
        self.watch_plugins = true;
        self
    }

    /// Adds a `[versioning]` section with these TOML lines (e.g.
    /// `match_strategy = "strict"`).
    pub fn versioning(mut self, lines: &str) -> Self {
        self.versioning = Some(lines.to_owned());
        self
    }

    /// Runs plugins in the host's process (`plugins.isolation = "in-process"`), for tests
    /// of what that mode does and does not isolate.
    pub fn in_process(self) -> Self {
        self.plugins_setting(r#"isolation = "in-process""#)
    }

    /// A host that only serves its embedded backend on `port` with its state in
    /// `database`: work-item filters on and no plugin, so its own worker asks for no
    /// work (the "remote" backend of other hosts, which can be killed and restarted on
    /// the same address).
    pub fn backend_only(port: u16, database: &std::path::Path) -> Self {
        Self::embedded()
            .with_embedded(EmbeddedBackend {
                port,
                database: database.to_path_buf(),
                ..EmbeddedBackend::default()
            })
            .work_item_filters(true)
    }

    /// Appends a whole section (`"[tracing]\notlp_endpoint = ...\n"`).
    pub fn section(mut self, text: &str) -> Self {
        self.sections.push(format!("\n{text}\n"));
        self
    }

    /// Adds a TOML line to `[admin]` (e.g. `token_file = "admin.token"`).
    pub fn admin_setting(mut self, line: &str) -> Self {
        self.admin_settings.push(line.to_owned());
        self
    }

    /// Adds a TOML line to `[plugins]` (e.g. `step_limit = "2s"`).
    pub fn plugins_setting(mut self, line: &str) -> Self {
        self.plugins_settings.push(line.to_owned());
        self
    }

    /// Adds a library to the plugins directory.
    pub fn plugin(mut self, plugin: PluginFile) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Sets `worker.max_concurrent_activities`.
    pub fn max_concurrent_activities(mut self, limit: u32) -> Self {
        self.max_concurrent_activities = limit;
        self
    }

    /// Sets `worker.max_concurrent_activities_per_plugin`.
    pub fn max_concurrent_activities_per_plugin(mut self, limit: u32) -> Self {
        self.max_concurrent_activities_per_plugin = Some(limit);
        self
    }

    /// Sets `worker.drain_timeout` (a duration string like `"30s"`).
    pub fn drain_timeout(mut self, timeout: &str) -> Self {
        timeout.clone_into(&mut self.drain_timeout);
        self
    }

    /// Sets `worker.stream_silence_timeout` (a duration string like `"2s"`).
    pub fn stream_silence_timeout(mut self, timeout: &str) -> Self {
        timeout.clone_into(&mut self.stream_silence_timeout);
        self
    }

    /// Sets `worker.activity_timeout` (a duration string like `"1s"`).
    pub fn activity_timeout(mut self, timeout: &str) -> Self {
        self.activity_timeout = Some(timeout.to_owned());
        self
    }

    /// Sets `worker.long_activity_threshold` (a duration string like `"500ms"`).
    pub fn long_activity_threshold(mut self, threshold: &str) -> Self {
        self.long_activity_threshold = Some(threshold.to_owned());
        self
    }

    /// Sets `worker.maximum_timer_interval` (a duration string like `"2s"`).
    pub fn maximum_timer_interval(mut self, interval: &str) -> Self {
        self.maximum_timer_interval = Some(interval.to_owned());
        self
    }

    /// Sets `worker.work_item_filters`: with `true`, the backend only hands the host work
    /// its plugins register (for tests that share a backend with another worker).
    pub fn work_item_filters(mut self, on: bool) -> Self {
        self.work_item_filters = on;
        self
    }

    /// Sets `logging.level` (a level or a filter).
    pub fn log_level(mut self, level: &str) -> Self {
        level.clone_into(&mut self.log_level);
        self
    }

    /// Sets `logging.format` (`"text"` or `"json"`).
    pub fn log_format(mut self, format: &str) -> Self {
        format.clone_into(&mut self.log_format);
        self
    }

    /// Sets `logging.file` (relative to the config file's directory, e.g. `"logs/host.log"`).
    pub fn log_file(mut self, path: &str) -> Self {
        self.log_file = Some(path.to_owned());
        self
    }

    /// The `host.toml` text. The plugins directory is relative, so it also checks that
    /// the host resolves paths against the config file's directory.
    pub fn to_toml(&self) -> String {
        format!(
            r#"# Generated by the durabletask-e2e harness.
[backend]
{backend}taskhub = {taskhub}
{embedded}
[worker]
max_concurrent_orchestrations = {orchestrations}
max_concurrent_activities = {activities}
max_concurrent_entities = {entities}
drain_timeout = {drain}
stream_silence_timeout = {silence}
work_item_filters = {filters}
{crash_journal}{timer_interval}{per_plugin}{activity_timeout}{long_activity}
[plugins]
dir = "plugins"
watch = {watch}
{plugins_settings}{versioning}
[logging]
level = {level}
format = {format}
{file}
[admin]
listen = "127.0.0.1:0"
{admin}{sections}"#,
            backend = match &self.embedded {
                None => format!("endpoint = {}\n", toml_string(&self.endpoint)),
                Some(_) => "mode = \"embedded\"\n".to_owned(),
            },
            crash_journal = self
                .embedded
                .as_ref()
                .and_then(|embedded| embedded.crash_journal.as_ref())
                .map(|path| format!("crash_journal = {}\n", toml_string(&path.to_string_lossy())))
                .unwrap_or_default(),
            embedded = self
                .embedded
                .as_ref()
                .map(|embedded| {
                    format!(
                        "\n[embedded]\nlisten = \"127.0.0.1:{}\"\ndatabase = {}\n{}",
                        embedded.port,
                        toml_string(&embedded.database.to_string_lossy()),
                        embedded
                            .takeover_time
                            .as_ref()
                            .map(|time| format!("takeover_time = {}\n", toml_string(time)))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default(),
            taskhub = toml_string(&self.taskhub),
            orchestrations = self.max_concurrent_orchestrations,
            activities = self.max_concurrent_activities,
            entities = self.max_concurrent_entities,
            drain = toml_string(&self.drain_timeout),
            silence = toml_string(&self.stream_silence_timeout),
            filters = self.work_item_filters,
            watch = self.watch_plugins,
            plugins_settings = self
                .plugins_settings
                .iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>(),
            versioning = self
                .versioning
                .as_deref()
                .map(|lines| format!("\n[versioning]\n{lines}\n"))
                .unwrap_or_default(),
            timer_interval = self
                .maximum_timer_interval
                .as_deref()
                .map(|interval| format!("maximum_timer_interval = {}\n", toml_string(interval)))
                .unwrap_or_default(),
            per_plugin = self
                .max_concurrent_activities_per_plugin
                .map(|limit| format!("max_concurrent_activities_per_plugin = {limit}\n"))
                .unwrap_or_default(),
            activity_timeout = self
                .activity_timeout
                .as_deref()
                .map(|timeout| format!("activity_timeout = {}\n", toml_string(timeout)))
                .unwrap_or_default(),
            long_activity = self
                .long_activity_threshold
                .as_deref()
                .map(|threshold| {
                    format!("long_activity_threshold = {}\n", toml_string(threshold))
                })
                .unwrap_or_default(),
            level = toml_string(&self.log_level),
            format = toml_string(&self.log_format),
            sections = self.sections.concat(),
            admin = self
                .admin_settings
                .iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>(),
            file = self
                .log_file
                .as_deref()
                .map(|path| format!("file = {}\n", toml_string(path)))
                .unwrap_or_default(),
        )
    }
}

/// Where an embedded backend listens and keeps its state.
#[derive(Debug, Clone)]
pub struct EmbeddedBackend {
    /// `embedded.listen`'s port on 127.0.0.1; 0 = any free port.
    pub port: u16,
    /// `embedded.database`; relative paths are relative to the config's directory (or a
    /// `postgres://` URL).
    pub database: PathBuf,
    /// `worker.crash_journal`, when it should not be the default (beside a SQLite
    /// database, or in the config's folder for PostgreSQL).
    pub crash_journal: Option<PathBuf>,
    /// `embedded.takeover_time` (PostgreSQL), e.g. `"2s"`; the default when `None`.
    pub takeover_time: Option<String>,
}

impl Default for EmbeddedBackend {
    fn default() -> Self {
        Self {
            port: 0,
            database: PathBuf::from("data/durabletask.sqlite"),
            crash_journal: None,
            takeover_time: None,
        }
    }
}

impl EmbeddedBackend {
    /// A backend on `port` whose state outlives the host (restarts find it): the SQLite
    /// file `database`, or, with `DURABLETASK_E2E_BACKEND=postgres`, a PostgreSQL
    /// database made for that path on first use (the same one for every restart) with
    /// the crash journal where it would be beside the file.
    pub fn durable(port: u16, database: &std::path::Path) -> Result<Self> {
        if !crate::postgres_backend_selected() {
            return Ok(Self {
                port,
                database: database.to_path_buf(),
                ..Self::default()
            });
        }
        static DATABASES: std::sync::Mutex<Vec<(PathBuf, String)>> =
            std::sync::Mutex::new(Vec::new());
        let mut databases = DATABASES
            .lock()
            .map_err(|_| Error::new("the databases' table is poisoned"))?;
        let url = match databases.iter().find(|(path, _)| path == database) {
            Some((_, url)) => url.clone(),
            None => {
                let url = crate::postgres::fresh_database()?;
                databases.push((database.to_path_buf(), url.clone()));
                url
            }
        };
        let mut crash_journal = database.as_os_str().to_owned();
        crash_journal.push(".crashes");
        Ok(Self {
            port,
            database: PathBuf::from(url),
            crash_journal: Some(PathBuf::from(crash_journal)),
            takeover_time: None,
        })
    }
}

/// `config/host.toml` as shipped, with its `listen` lines on free ports, its database
/// under the host's scratch folder and its plugins folder the harness's `plugins`; every
/// other setting (and comment) is kept as shipped.
pub fn shipped_config() -> Result<String> {
    let path = paths::workspace_root().join("config").join("host.toml");
    let shipped = std::fs::read_to_string(&path)
        .map_err(|error| Error::new(format!("{}: {error}", path.display())))?;
    Ok(shipped
        .lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or_default().trim();
            match key {
                "listen" => "listen = \"127.0.0.1:0\"".to_owned(),
                "database" => "database = \"data/state.sqlite\"".to_owned(),
                "dir" => "dir = \"plugins\"".to_owned(),
                _ => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// A TOML basic string. JSON's string escapes are a subset of TOML's.
fn toml_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

/// A running (or exited) `durabletask-host`. Its stdout and stderr go to files in its
/// scratch directory, which the log helpers read. Dropping it kills it.
pub struct Host {
    child: Option<Child>,
    exit_status: Option<ExitStatus>,
    config_path: PathBuf,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    scratch: Option<TempDir>,
}

impl Host {
    /// Writes `config` and its plugins into a fresh scratch directory and starts the
    /// host on it. Returns at once; wait on log lines or client calls for progress.
    pub fn start(config: &HostConfig) -> Result<Self> {
        Self::start_with_config_text(&config.to_toml(), &config.plugins)
    }

    /// Starts `durabletask-host serve` (the embedded backend only, no plugins, no worker)
    /// on this configuration.
    pub fn serve(config: &HostConfig) -> Result<Self> {
        let (scratch, config_path) = Self::prepare(&config.to_toml(), &config.plugins)?;
        let binary = paths::host_binary()?;
        Self::spawn_command(scratch, config_path, &binary, &["serve"])
    }

    /// Starts the host on a `host.toml` with exactly this text, with `plugins` copied
    /// into a `plugins` directory beside it (e.g. to test configuration errors, or the
    /// example configuration).
    pub fn start_with_config_text(text: &str, plugins: &[PluginFile]) -> Result<Self> {
        let (scratch, config_path) = Self::prepare(text, plugins)?;
        Self::spawn(scratch, config_path)
    }

    /// A fresh scratch directory with `host.toml` (this text) and `plugins` in it.
    fn prepare(text: &str, plugins: &[PluginFile]) -> Result<(TempDir, PathBuf)> {
        let scratch = scratch_dir()?;
        let plugins_dir = scratch.path().join("plugins");
        create_dir(&plugins_dir)?;
        for plugin in plugins {
            let destination = plugins_dir.join(&plugin.file_name);
            std::fs::copy(&plugin.source, &destination).map_err(|error| {
                Error::new(format!(
                    "cannot copy {} to {}: {error}",
                    plugin.source.display(),
                    destination.display()
                ))
            })?;
        }
        let config_path = scratch.path().join("host.toml");
        write_file(&config_path, text)?;
        Ok((scratch, config_path))
    }

    /// Starts the host with `--config path`, whether or not the file exists.
    pub fn start_with_config_file(path: &Path) -> Result<Self> {
        Self::spawn(scratch_dir()?, path.to_path_buf())
    }

    /// Like [`Host::start`], running this copy of the host's binary (to replace the file
    /// while the host runs, as a package upgrade does).
    pub fn start_from_binary(config: &HostConfig, binary: &Path) -> Result<Self> {
        let (scratch, config_path) = Self::prepare(&config.to_toml(), &config.plugins)?;
        Self::spawn_binary(scratch, config_path, binary)
    }

    fn spawn(scratch: TempDir, config_path: PathBuf) -> Result<Self> {
        let binary = paths::host_binary()?;
        Self::spawn_binary(scratch, config_path, &binary)
    }

    fn spawn_binary(scratch: TempDir, config_path: PathBuf, binary: &Path) -> Result<Self> {
        Self::spawn_command(scratch, config_path, binary, &[])
    }

    /// Runs `binary --config config_path ARGS...`.
    fn spawn_command(
        scratch: TempDir,
        config_path: PathBuf,
        binary: &Path,
        args: &[&str],
    ) -> Result<Self> {
        let stdout_path = scratch.path().join("host.stdout.log");
        let stderr_path = scratch.path().join("host.stderr.log");
        // Run from a directory other than the config's, so that a host resolving
        // relative paths against its working directory fails the tests.
        let working_dir = scratch.path().join("cwd");
        create_dir(&working_dir)?;
        let child = die_with_parent(
            Command::new(binary)
                .arg("--config")
                .arg(&config_path)
                .args(args)
                .current_dir(&working_dir)
                .env("NO_COLOR", "1")
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(create_file(&stdout_path)?)
                .stderr(create_file(&stderr_path)?),
        )
        .spawn()
        .map_err(|error| Error::new(format!("cannot run {}: {error}", binary.display())))?;
        Ok(Self {
            child: Some(child),
            exit_status: None,
            config_path,
            stdout_path,
            stderr_path,
            scratch: Some(scratch),
        })
    }

    /// The config file it was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The directory holding its config file, against which relative paths in the
    /// config (plugins, log file) are resolved.
    pub fn config_dir(&self) -> &Path {
        self.config_path.parent().unwrap_or(Path::new("/"))
    }

    /// Its plugins folder.
    pub fn plugins_dir(&self) -> PathBuf {
        self.config_dir().join("plugins")
    }

    /// Drops `plugin` into the plugins folder the way deployments should: written under
    /// a temporary name the host ignores, then renamed into place in one step.
    pub fn deploy(&self, plugin: &PluginFile) -> Result<()> {
        let destination = self.plugins_dir().join(&plugin.file_name);
        let temporary = self
            .plugins_dir()
            .join(format!(".{}.partial", plugin.file_name));
        std::fs::copy(&plugin.source, &temporary)
            .and_then(|_| std::fs::rename(&temporary, &destination))
            .map_err(|error| {
                Error::new(format!(
                    "cannot deploy {} as {}: {error}",
                    plugin.source.display(),
                    destination.display()
                ))
            })
    }

    /// Overwrites the library `file_name` in the plugins folder in place with `plugin`'s
    /// contents (`cp new.so old.so`): what careless deployments do.
    pub fn overwrite_plugin(&self, file_name: &str, plugin: &PluginFile) -> Result<()> {
        let destination = self.plugins_dir().join(file_name);
        std::fs::copy(&plugin.source, &destination)
            .map(drop)
            .map_err(|error| {
                Error::new(format!(
                    "cannot overwrite {}: {error}",
                    destination.display()
                ))
            })
    }

    /// Removes the library `file_name` from the plugins folder.
    pub fn remove_plugin(&self, file_name: &str) -> Result<()> {
        let path = self.plugins_dir().join(file_name);
        std::fs::remove_file(&path)
            .map_err(|error| Error::new(format!("cannot remove {}: {error}", path.display())))
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        match (&self.child, self.exit_status) {
            (Some(child), None) => Some(child.id()),
            _ => None,
        }
    }

    /// Its process and its plugins' child processes (and theirs), while it runs.
    pub fn process_tree(&self) -> Vec<u32> {
        let mut tree: Vec<u32> = self.pid().into_iter().collect();
        let mut index = 0;
        while index < tree.len() {
            let parent = tree[index];
            index += 1;
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
                continue;
            };
            for task in tasks.flatten() {
                let children =
                    std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
                tree.extend(
                    children
                        .split_whitespace()
                        .filter_map(|child| child.parse::<u32>().ok()),
                );
            }
        }
        tree
    }

    /// How many threads it and its plugins' child processes have right now (the
    /// `Threads:` lines of `/proc/<pid>/status`).
    pub fn thread_count(&self) -> Result<u32> {
        if self.pid().is_none() {
            return Err(Error::new("the host is not running"));
        }
        let mut threads = 0;
        for pid in self.process_tree() {
            let path = format!("/proc/{pid}/status");
            // A child that just exited has no status any more.
            let Ok(status) = std::fs::read_to_string(&path) else {
                continue;
            };
            threads += status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|count| count.trim().parse::<u32>().ok())
                .ok_or_else(|| Error::new(format!("no Threads: line in {path}:\n{status}")))?;
        }
        Ok(threads)
    }

    /// Everything it logged to stdout so far (ANSI colours removed).
    pub fn logs(&self) -> String {
        read_log(&self.stdout_path)
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_log(&self.stderr_path)
    }

    /// Whether any stdout log line contains `text`.
    pub fn log_contains(&self, text: &str) -> bool {
        self.logs().contains(text)
    }

    /// The stdout log lines that contain every one of `texts`.
    pub fn log_lines_with(&self, texts: &[&str]) -> Vec<String> {
        self.logs()
            .lines()
            .filter(|line| texts.iter().all(|text| line.contains(text)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a stdout log line contains `text` and returns that line. Fails early,
    /// with the logs, if the host exits first.
    pub fn wait_for_log(&mut self, text: &str, timeout: Duration) -> Result<String> {
        self.wait_for_log_line(&[text], timeout)
    }

    /// Waits until one stdout log line contains every one of `texts`.
    pub fn wait_for_log_line(&mut self, texts: &[&str], timeout: Duration) -> Result<String> {
        self.wait_for_log_matching(
            &format!("a line with {texts:?}"),
            |line| texts.iter().all(|text| line.contains(text)),
            timeout,
        )
    }

    /// Waits until a stdout log line satisfies `matches` and returns it; `description`
    /// says what was awaited, for the error. Fails early, with the logs, if the host exits
    /// first.
    pub fn wait_for_log_matching(
        &mut self,
        description: &str,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String> {
        let found = poll_until(timeout, || {
            if let Some(line) = self.logs().lines().find(|line| matches(line)) {
                return Ok(Some(line.to_owned()));
            }
            if let Some(status) = self.try_exit_status()? {
                return Err(Error::new(format!(
                    "the host exited ({status}) before logging {description}\n{}",
                    self.log_tail()
                )));
            }
            Ok(None)
        })?;
        found.ok_or_else(|| {
            Error::new(format!(
                "the host did not log {description} within {timeout:?}\n{}",
                self.log_tail()
            ))
        })
    }

    /// The address of the host's embedded backend (`http://127.0.0.1:PORT`), from the
    /// line it logs once it listens.
    pub fn embedded_endpoint(&mut self) -> Result<String> {
        let address = self.logged_after(EMBEDDED_LISTENING, ".:[]")?;
        Ok(format!("http://{address}"))
    }

    /// The URL of the host's admin listener (`http://127.0.0.1:PORT`), from the line it
    /// logs once it listens.
    pub fn admin_url(&mut self) -> Result<String> {
        self.logged_after(ADMIN_LISTENING, ".:/[]")
    }

    /// What follows `marker` in the first log line that has it: alphanumerics and
    /// `also` (an address, a URL).
    fn logged_after(&mut self, marker: &str, also: &str) -> Result<String> {
        let line = self.wait_for_log(marker, crate::WAIT)?;
        let found: String = line
            .split(marker)
            .nth(1)
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || also.contains(*c))
            .collect();
        if found.is_empty() {
            return Err(Error::new(format!(
                "nothing after {marker:?} in the log line: {line}"
            )));
        }
        Ok(found)
    }

    /// Kills it with SIGKILL (no chance to clean up: a crash) and reaps it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            kill_and_reap(child);
        }
        self.try_exit_status().map(drop)
    }

    /// Sends SIGTERM (a graceful stop request).
    pub fn sigterm(&self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Sends SIGINT (what Ctrl-C sends).
    pub fn sigint(&self) -> Result<()> {
        self.signal(libc::SIGINT)
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) while it runs.
    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        match (&self.child, self.exit_status) {
            (Some(child), None) => send_signal(child, signal),
            _ => Err(Error::new("the host is not running")),
        }
    }

    /// Waits up to `timeout` for the host to exit. Fails, with the logs, if it is still
    /// running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.exit_status {
            return Ok(status);
        }
        let Some(child) = self.child.as_mut() else {
            return Err(Error::new("the host was never started"));
        };
        match wait_for_exit(child, timeout)? {
            Some(status) => {
                self.exit_status = Some(status);
                Ok(status)
            }
            None => Err(Error::new(format!(
                "the host did not exit within {timeout:?}\n{}",
                self.log_tail()
            ))),
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        Ok(self.try_exit_status()?.is_none())
    }

    fn try_exit_status(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.exit_status {
            return Ok(Some(status));
        }
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child
            .try_wait()
            .map_err(|error| Error::new(format!("cannot check on the host: {error}")))?;
        self.exit_status = status;
        Ok(status)
    }

    /// The last lines of its stdout and stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- host stdout (last {LOG_TAIL_LINES} lines) ---\n{}\n--- host stderr (last {LOG_TAIL_LINES} lines) ---\n{}",
            last_lines(&self.logs(), LOG_TAIL_LINES),
            last_lines(&self.stderr(), LOG_TAIL_LINES)
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill_and_reap(child);
        }
        if std::env::var_os(KEEP_SCRATCH_ENV).is_some()
            && let Some(scratch) = self.scratch.take()
        {
            eprintln!("kept host scratch dir: {}", scratch.keep().display());
        }
    }
}

fn scratch_dir() -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix("durabletask-host-")
        .tempdir()
        .map_err(|error| Error::new(format!("cannot create a scratch dir: {error}")))
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|error| Error::new(format!("cannot create {}: {error}", path.display())))
}

fn create_file(path: &Path) -> Result<File> {
    File::create(path)
        .map_err(|error| Error::new(format!("cannot create {}: {error}", path.display())))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text)
        .map_err(|error| Error::new(format!("cannot write {}: {error}", path.display())))
}

/// A log file's text, without ANSI colour codes (a host may colour even when piped).
fn read_log(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    strip_ansi(&String::from_utf8_lossy(&bytes))
}

/// Removes `ESC [ ... <final byte>` sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_ansi_removes_colour_codes() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ok"),
            "2025  INFO ok"
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn generated_config_has_every_section() {
        let text = HostConfig::new("http://127.0.0.1:1").to_toml();
        for section in ["[backend]", "[worker]", "[plugins]", "[logging]"] {
            assert!(text.contains(section), "{section} missing from:\n{text}");
        }
        assert!(
            text.contains(r#"endpoint = "http://127.0.0.1:1""#),
            "{text}"
        );
    }

    #[test]
    fn generated_config_sets_the_log_format_and_file_only_when_asked() {
        let plain = HostConfig::new("http://127.0.0.1:1").to_toml();
        assert!(plain.contains(r#"format = "text""#), "{plain}");
        assert!(!plain.contains("file ="), "{plain}");

        let json = HostConfig::new("http://127.0.0.1:1")
            .log_format("json")
            .log_file("logs/host.log")
            .to_toml();
        assert!(json.contains(r#"format = "json""#), "{json}");
        assert!(json.contains(r#"file = "logs/host.log""#), "{json}");
    }
}
