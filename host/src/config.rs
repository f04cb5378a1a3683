//! The host's configuration file (`host.toml`).
//!
//! Every section rejects unknown keys: a misspelt setting silently falling back to its
//! default is worse than refusing to start. Errors name the file, the line and column, and
//! the key, because the person reading them is editing that file.
//!
//! Values are validated while deserializing (durations, the endpoint, enums, limits), so
//! toml's span points at the offending value. The few checks that involve two keys run
//! afterwards and find the line themselves ([`locate_key`]).
//!
//! Relative paths (`plugins.dir`, `logging.file`, `worker.crash_journal`,
//! `backend.token_file`, `backend.ca_file`,
//! `embedded.database`, `embedded.token_file`, `embedded.tls_cert_file`,
//! `embedded.tls_key_file`) are resolved against the config file's directory at load time,
//! so the rest of the host only sees usable paths.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The backend address type, the client crate's: the host reads it from `[backend]
/// endpoint` and derives it for the embedded backend's clients.
pub use durabletask_client::Endpoint;

pub mod connection;
pub mod database;
pub mod env;

pub use database::DatabaseLocation;

/// The whole configuration. Every section is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub backend: BackendSettings,
    /// `[embedded]`: the in-process backend, used when `backend.mode` is embedded.
    pub embedded: EmbeddedSettings,
    pub worker: WorkerSettings,
    /// `None` when the file has no `[versioning]` section: no version check at all.
    pub versioning: Option<VersioningSettings>,
    pub plugins: PluginSettings,
    pub logging: LoggingSettings,
    /// `[admin]`: the operations listener (probes, metrics, status).
    pub admin: AdminSettings,
    /// `[tracing]`: OpenTelemetry traces, off unless `otlp_endpoint` is set.
    pub tracing: TracingSettings,
    /// The file this configuration was read from (empty for [`Config::default`]).
    #[serde(skip)]
    pub source: PathBuf,
}

/// `[backend]`: which Durable Task backend to use, where it is and how to authenticate.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackendSettings {
    /// Embedded (the host runs its own backend) or remote (`endpoint`). Absent: remote
    /// when `endpoint` is given, else embedded; resolved when the file is read.
    pub mode: Option<BackendMode>,
    pub endpoint: Endpoint,
    /// Sent as the `taskhub` metadata header on every call.
    pub taskhub: String,
    /// Name of an environment variable holding a bearer token.
    pub token_env: Option<String>,
    /// A file holding a bearer token (resolved against the config directory).
    pub token_file: Option<PathBuf>,
    /// A command printing a bearer token (its first non-blank line), run on every
    /// (re)connect: a program and its arguments, run without a shell.
    pub token_command: Option<Vec<String>>,
    /// PEM certificates (resolved against the config directory) that an https endpoint's
    /// certificate must chain to, instead of the system's roots: a private CA, or a
    /// self-signed certificate itself. Re-read on every (re)connect.
    pub ca_file: Option<PathBuf>,
    /// The name an https endpoint's certificate must carry, when it is not the
    /// endpoint's host (e.g. the endpoint is an IP address, the certificate names a host).
    pub tls_server_name: Option<String>,
    /// A client certificate chain (PEM; resolved against the config directory) the host
    /// presents to an https endpoint that asks for one (mutual TLS). Set with
    /// `tls_key_file`, or neither. Re-read on every (re)connect.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
}

/// Where the backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendMode {
    /// The host serves its own backend (`[embedded]`), with its state in a SQLite file.
    Embedded,
    /// A backend elsewhere, at `endpoint`.
    Remote,
}

impl BackendSettings {
    /// The mode, resolved (see [`BackendSettings::mode`]).
    pub fn mode(&self) -> BackendMode {
        self.mode.unwrap_or(BackendMode::Remote)
    }
}

/// The shortest `[embedded] takeover_time` accepted.
const MIN_TAKEOVER_TIME: Duration = Duration::from_secs(1);

/// The largest `[embedded] max_payload_bytes` accepted (32 MiB).
const MAX_EMBEDDED_PAYLOAD_BYTES: usize = 32 * 1024 * 1024;

/// `[embedded]`: the backend the host runs in process when `backend.mode` is embedded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedSettings {
    /// The address it serves `TaskHubSidecarService` on (for the host's own worker, the
    /// client and any other Durable Task SDK).
    pub listen: std::net::SocketAddr,
    /// Where its state is: a SQLite file (resolved against the config directory), or a
    /// PostgreSQL database shared by several hosts (`postgres://...`).
    pub database: DatabaseLocation,
    /// Allow `listen` on an address other machines can reach without TLS and a
    /// `token_file` (only for a network where every peer is trusted).
    pub insecure: bool,
    /// The largest payload (input, output, event, result, custom status) the backend
    /// accepts, in bytes.
    pub max_payload_bytes: usize,
    /// Past events larger than this (bytes, encoded) are streamed to workers instead of
    /// sent in the work item (`requiresHistoryStreaming`).
    pub history_streaming_bytes: usize,
    /// The most events one orchestration's history may hold.
    pub max_history_events: usize,
    /// Accept only calls bearing one of the tokens of this file (one per line; resolved
    /// against the config directory). The host's worker and client send its first.
    pub token_file: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM; resolved against the config
    /// directory). Set with `tls_key_file`, or neither. The host's worker and client
    /// trust this file as their root.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM; resolved against the config directory).
    pub tls_key_file: Option<PathBuf>,
    /// The name the host's worker and client expect in the certificate. Absent:
    /// "localhost" when `listen` is loopback or unspecified (they connect over loopback),
    /// else the `listen` IP.
    pub tls_server_name: Option<String>,
    /// PostgreSQL only: how long after the host running the engine stopped renewing its
    /// lease (it died, froze or lost the network) another host takes over (plus the time
    /// to load the state). Shorter: faster takeover, more lease traffic (a renewal every
    /// third of it); it must also exceed the longest pause a healthy host may have.
    #[serde(deserialize_with = "positive_duration")]
    pub takeover_time: Duration,
    /// PostgreSQL only: the URL other hosts forward calls to when this host runs the
    /// engine (`http://10.0.0.5:4001`, `https://host-a.internal:4001`). Absent: `listen`
    /// (which must then not be 0.0.0.0 or [::]).
    pub advertise: Option<String>,
    /// PostgreSQL only, with TLS: the CA certificate (PEM; resolved against the config
    /// directory) that signed the other hosts' certificates, to check them when this
    /// host forwards calls.
    pub peer_ca_file: Option<PathBuf>,
    /// PostgreSQL only, with `sslmode=require` in the URL: the CA certificate (PEM;
    /// resolved against the config directory) the database server's certificate is
    /// checked against. Absent: the system's roots.
    pub database_ca_file: Option<PathBuf>,
}

impl Default for EmbeddedSettings {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 4001)),
            database: DatabaseLocation::default(),
            insecure: false,
            max_payload_bytes: durabletask_backend::DEFAULT_MAX_PAYLOAD_BYTES,
            history_streaming_bytes: durabletask_backend::DEFAULT_HISTORY_STREAMING_BYTES,
            max_history_events: durabletask_backend::DEFAULT_MAX_HISTORY_EVENTS,
            token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_server_name: None,
            takeover_time: durabletask_backend::cluster::DEFAULT_TAKEOVER_TIME,
            advertise: None,
            peer_ca_file: None,
            database_ca_file: None,
        }
    }
}

impl EmbeddedSettings {
    /// The address clients use to reach it: `listen`, with an unspecified IP (0.0.0.0)
    /// replaced by loopback, over https when it serves TLS.
    pub fn client_endpoint(&self) -> Endpoint {
        Endpoint::to_listener(self.listen, self.serves_tls())
    }

    /// Whether it serves TLS (the config refuses one TLS file without the other).
    pub fn serves_tls(&self) -> bool {
        self.tls_cert_file.is_some() && self.tls_key_file.is_some()
    }

    /// The name its clients expect in its certificate: `tls_server_name`, else
    /// "localhost" when they connect over loopback, else the `listen` IP.
    pub fn tls_server_name(&self) -> String {
        if let Some(name) = &self.tls_server_name {
            return name.clone();
        }
        let ip = self.listen.ip();
        // An unspecified listen (0.0.0.0) is reached over loopback too (client_endpoint).
        if ip.is_loopback() || ip.is_unspecified() {
            "localhost".to_owned()
        } else {
            ip.to_string()
        }
    }
}

impl Default for BackendSettings {
    fn default() -> Self {
        Self {
            mode: None,
            endpoint: Endpoint::default(),
            taskhub: "default".to_owned(),
            token_env: None,
            token_file: None,
            token_command: None,
            ca_file: None,
            tls_server_name: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

// Hand-written so that a future field holding a secret cannot leak through `{:?}` by
// accident: only the *names* of the token sources are shown.
impl fmt::Debug for BackendSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSettings")
            .field("mode", &self.mode)
            .field("endpoint", &self.endpoint)
            .field("taskhub", &self.taskhub)
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("token_command", &self.token_command)
            .field("ca_file", &self.ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .finish()
    }
}

/// `[worker]`: concurrency limits and timeouts of the work-item loop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    #[serde(deserialize_with = "at_least_one")]
    pub max_concurrent_orchestrations: u32,
    #[serde(deserialize_with = "at_least_one")]
    pub max_concurrent_activities: u32,
    /// The most activities one plugin generation may run at once, within
    /// `max_concurrent_activities`, so that a plugin whose activities hang holds up only
    /// itself. `None` (absent): see [`WorkerSettings::activities_per_plugin`].
    #[serde(deserialize_with = "some_at_least_one")]
    pub max_concurrent_activities_per_plugin: Option<u32>,
    #[serde(deserialize_with = "at_least_one")]
    pub max_concurrent_entities: u32,
    /// How long in-flight work may take to finish after a shutdown signal.
    #[serde(deserialize_with = "duration")]
    pub drain_timeout: Duration,
    /// A stream silent for longer than this is considered dead. Zero disables the check.
    #[serde(deserialize_with = "duration")]
    pub stream_silence_timeout: Duration,
    /// An activity that has run this long without completing is failed with errorType
    /// `ActivityTimeout` and its permits are released; whatever the plugin returns later
    /// is ignored. `None` (absent or zero): activities may run as long as they take. Off
    /// by default: the host cannot know how long an activity may rightly take, nor stop
    /// its code, and a timed-out activity that a retry policy runs again may then run
    /// twice at once.
    #[serde(deserialize_with = "optional_duration")]
    pub activity_timeout: Option<Duration>,
    /// An activity still running after this long is logged (WARN, with its plugin, name,
    /// instance, task id and running time), then again each time its running time has
    /// doubled. `None` ("0s"): never.
    #[serde(deserialize_with = "optional_duration")]
    pub long_activity_threshold: Option<Duration>,
    /// Timers longer than this are created as a chain of timers at most this long (spec
    /// §4.2), for backends that cannot keep timers far in the future. `None` (absent or
    /// zero) creates every timer whole.
    #[serde(deserialize_with = "optional_duration")]
    pub maximum_timer_interval: Option<Duration>,
    /// Send work-item filters built from the loaded plugins' registrations (protocol.md
    /// §1.4), so a backend shared with other workers only hands this host work it can
    /// run. On by default (the embedded backend and Microsoft's backends honour them);
    /// off, the backend sends everything and the host fails what no plugin registers.
    pub work_item_filters: bool,
    /// A work item that was inside a plugin this many times when the host died (a plugin
    /// that exits, aborts or overflows its stack takes the host with it) is failed with
    /// errorType `PluginCrashed` instead of being run again. 0: off (no crash journal).
    pub max_crashes: u32,
    /// The crash journal that counts those crashes (see [`Config::crash_journal`] for
    /// the default). Resolved against the config file's directory.
    pub crash_journal: Option<PathBuf>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_orchestrations: 100,
            max_concurrent_activities: 100,
            max_concurrent_activities_per_plugin: None,
            max_concurrent_entities: 100,
            drain_timeout: Duration::from_secs(30),
            stream_silence_timeout: Duration::from_secs(120),
            activity_timeout: None,
            long_activity_threshold: Some(Duration::from_secs(60)),
            maximum_timer_interval: None,
            work_item_filters: true,
            max_crashes: 3,
            crash_journal: None,
        }
    }
}

impl WorkerSettings {
    /// How many activities one plugin generation may run at once:
    /// `max_concurrent_activities_per_plugin`, or by default three quarters of
    /// `max_concurrent_activities` (at least 1). Three quarters lets a host with one
    /// plugin keep most of its concurrency, while whatever one plugin does, a quarter of
    /// the activity slots stay free for the others.
    pub fn activities_per_plugin(&self) -> u32 {
        self.max_concurrent_activities_per_plugin
            .unwrap_or_else(|| {
                let three_quarters = u64::from(self.max_concurrent_activities) * 3 / 4;
                u32::try_from(three_quarters).unwrap_or(u32::MAX).max(1)
            })
    }
}

/// `[versioning]`: parsed and validated here; enforced by the orchestration runner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersioningSettings {
    /// The worker's version, compared against each orchestration's version.
    pub version: Option<String>,
    /// The version given to sub-orchestrations started without one.
    pub default_version: Option<String>,
    pub match_strategy: MatchStrategy,
    pub failure_strategy: FailureStrategy,
}

impl VersioningSettings {
    /// The first setting that contradicts the others, as (key, why): empty versions, and
    /// a `default_version` that this same worker would refuse, so that every
    /// sub-orchestration started without a version would fail or bounce.
    fn contradiction(&self) -> Option<(&'static str, String)> {
        for (key, value) in [
            ("version", &self.version),
            ("default_version", &self.default_version),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Some((
                    key,
                    format!(
                        "invalid value for '{key}' in [versioning]: must not be empty (leave the key out for no version)"
                    ),
                ));
            }
        }
        let (Some(version), Some(default_version)) = (&self.version, &self.default_version) else {
            return None;
        };
        crate::versioning::check(self.match_strategy, Some(default_version), Some(version))
            .err()
            .map(|reason| {
                (
                    "default_version",
                    format!(
                        "'default_version' in [versioning] contradicts 'version' and 'match_strategy': sub-orchestrations started without a version would get '{default_version}', which this worker refuses ({reason})"
                    ),
                )
            })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchStrategy {
    #[default]
    None,
    Strict,
    CurrentOrOlder,
}

/// What happens to an orchestration whose version does not match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStrategy {
    /// Abandon the work item: the orchestration stays pending for another worker.
    Reject,
    /// Fail the orchestration with a `VersionMismatch` failure. The default, because an
    /// unset strategy hangs orchestrations in the reference SDK.
    #[default]
    Fail,
}

/// `[plugins]`: where plugins are dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSettings {
    /// The folder scanned for plugins (resolved against the config directory).
    pub dir: PathBuf,
    /// Watch the folder for new plugin versions.
    pub watch: bool,
    /// Refuse a library that users other than the host's and root could have written (the
    /// file, the folder or a folder above it); `false` loads it with a warning, for
    /// development only.
    pub strict_permissions: bool,
    /// Where plugin code runs: in a supervised child process per plugin generation (the
    /// default), or in the host's own process.
    pub isolation: Isolation,
    /// Process isolation: an orchestration step or entity batch still running after this
    /// long has its child process killed (the step counts as having crashed it). Steps
    /// replay deterministic code and take microseconds; one this slow is stuck.
    #[serde(deserialize_with = "positive_duration")]
    pub step_limit: Duration,
    /// Process isolation: the most memory (MiB of data segment and anonymous mappings,
    /// `RLIMIT_DATA`) each child may use; an allocation past it fails and the child dies
    /// of it. 0: no limit.
    pub memory_limit_mb: u64,
    /// Process isolation: the CPU time (`RLIMIT_CPU`) after which a child is killed, in
    /// total over its life; a backstop against code that spins forever. `None` (absent or
    /// zero): no limit.
    #[serde(deserialize_with = "optional_duration")]
    pub cpu_time_limit: Option<Duration>,
    /// Before a library deployed while the host runs is put in service, replay the
    /// histories of up to this many running orchestrations that it could be handed
    /// (those of its orchestrators not pinned by their version to another generation),
    /// and refuse the library if one would fail on it. 0: no check.
    pub verify_replay: u32,
    /// `[plugins.overrides.<plugin name>]`: settings for one plugin, by the name it
    /// registers with `export_plugin!`.
    pub overrides: BTreeMap<String, PluginOverride>,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("plugins"),
            watch: true,
            strict_permissions: true,
            isolation: Isolation::Process,
            step_limit: Duration::from_secs(30),
            memory_limit_mb: 0,
            cpu_time_limit: None,
            verify_replay: 20,
            overrides: BTreeMap::new(),
        }
    }
}

/// Where plugin code runs (`[plugins] isolation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// Each plugin generation in a child process of its own: a plugin that exits, aborts,
    /// overflows its stack, leaks or blocks takes down only its child, which is restarted.
    #[default]
    Process,
    /// In the host's process: the cheapest calls, but a plugin that exits or aborts takes
    /// the host down with it.
    InProcess,
}

/// `[plugins.overrides.<plugin name>]`: what differs for one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginOverride {
    /// Overrides `[plugins] isolation`.
    pub isolation: Option<Isolation>,
    /// Overrides `[plugins] memory_limit_mb`.
    pub memory_limit_mb: Option<u64>,
}

/// `[admin]`: the HTTP listener for operators' tools: `/livez` and `/readyz` for probes,
/// `/metrics` for Prometheus, `/status` as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Off switch: `false` serves nothing.
    pub enabled: bool,
    /// Where it listens (loopback by default: only this machine's users reach it).
    pub listen: std::net::SocketAddr,
    /// `/metrics` and `/status` answer only requests bearing one of this file's tokens
    /// (`Authorization: Bearer`, one token per line; resolved against the config
    /// directory). The probes stay open: they say nothing about the work.
    pub token_file: Option<PathBuf>,
    /// Allow `listen` on an address other machines can reach without a `token_file`.
    pub insecure: bool,
    /// Serve the web dashboard at the listener's root (`/`, `/api/...`): see
    /// `crate::dashboard::access` for whom it answers.
    pub dashboard: bool,
    /// The dashboard answers requests bearing one of this file's tokens (one per line;
    /// resolved against the config directory), and calls the backend with the host's own
    /// credentials. Not `token_file`: a scraper's token must not terminate workflows.
    pub dashboard_token_file: Option<PathBuf>,
}

/// The admin listener's default port (`[admin] listen`).
pub const DEFAULT_ADMIN_PORT: u16 = 9464;

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], DEFAULT_ADMIN_PORT)),
            token_file: None,
            insecure: false,
            dashboard: true,
            dashboard_token_file: None,
        }
    }
}

/// `[tracing]`: OpenTelemetry traces of the work the host runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingSettings {
    /// An OTLP/gRPC collector (`http://localhost:4317`); absent: no traces.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the spans.
    pub service_name: String,
    /// The share of new traces kept, from 0 to 1; a trace started elsewhere keeps the
    /// caller's decision.
    pub sampling_ratio: f64,
}

impl Default for TracingSettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "durabletask-host".to_owned(),
            sampling_ratio: 1.0,
        }
    }
}

/// `[logging]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSettings {
    /// A level (`info`) or an `EnvFilter` directive (`info,durabletask_host=debug`).
    #[serde(deserialize_with = "log_filter")]
    pub level: String,
    pub format: LogFormat,
    /// An optional log file (resolved against the config directory), in addition to stdout.
    pub file: Option<PathBuf>,
    pub rotation: LogRotation,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
            file: None,
            rotation: LogRotation::Daily,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogRotation {
    Never,
    Minutely,
    Hourly,
    #[default]
    Daily,
}

/// Why a configuration could not be used. `Display` is one line: `file:line:col: message`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the config file: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), location_suffix(*location))]
    Invalid {
        path: PathBuf,
        /// 1-based line and column, when known.
        location: Option<(usize, usize)>,
        message: String,
    },
}

fn location_suffix(location: Option<(usize, usize)>) -> String {
    match location {
        Some((line, column)) => format!(":{line}:{column}"),
        None => String::new(),
    }
}

impl Config {
    /// Reads and validates the config file at `path`, with the process's
    /// `DURABLETASK_<SECTION>_<KEY>` variables over it (see [`Config::from_sources`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        Self::from_sources(&text, path, std::env::vars())
    }

    /// Parses `text` as if it had been read from `path` (used for messages and to resolve
    /// relative paths against `path`'s directory), without the environment.
    pub fn from_str_with_origin(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::from_sources(text, path, std::iter::empty())
    }

    /// Parses `text` as if read from `path`, then applies the variables of `env` named
    /// `DURABLETASK_<SECTION>_<KEY>` (e.g. `DURABLETASK_WORKER_MAX_CONCURRENT_ACTIVITIES=50`,
    /// `DURABLETASK_ADMIN_LISTEN=0.0.0.0:9464`) over it: the environment wins over the
    /// file. Variables of other names (`DURABLETASK_TOKEN`, say) are left alone; one that
    /// names a section of the file but no key of it is an error naming the variable. A
    /// value is a boolean (`true`, `false`) or an integer when it reads as one and the key
    /// takes one, else a string.
    pub fn from_sources(
        text: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        // The file alone first: its own mistakes are reported with their line.
        let mut config: Config =
            toml::from_str(text).map_err(|error| describe_toml_error(&error, text, path))?;
        // Whether a key is present is read from the parsed document, so that a table
        // header, an inline table (`backend = { endpoint = ... }`) and a dotted key
        // (`backend.endpoint = ...`) mean the same thing. (`locate_key` only finds a
        // line for messages.)
        let mut given: toml::Table =
            toml::from_str(text).map_err(|error| describe_toml_error(&error, text, path))?;
        if env::apply(&mut given, env).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            location: None,
            message,
        })? {
            config = Config::deserialize(toml::Value::Table(given.clone())).map_err(|error| {
                ConfigError::Invalid {
                    path: path.to_owned(),
                    location: None,
                    message: error.to_string(),
                }
            })?;
        }
        let endpoint_given = has_key(&given, "backend", "endpoint");
        config.validate(text, path, endpoint_given)?;
        config.backend.mode = Some(config.backend.mode.unwrap_or(if endpoint_given {
            BackendMode::Remote
        } else {
            BackendMode::Embedded
        }));
        config.validate_embedded(text, path)?;
        config.validate_remote(text, path)?;
        config.source = path.to_owned();
        let base = config_dir(path);
        let resolve = |file: Option<PathBuf>| file.map(|file| base.join(file));
        config.embedded.database = config.embedded.database.resolved(&base);
        config.plugins.dir = base.join(&config.plugins.dir);
        config.logging.file = resolve(config.logging.file);
        config.worker.crash_journal = resolve(config.worker.crash_journal);
        config.backend.token_file = resolve(config.backend.token_file);
        config.backend.ca_file = resolve(config.backend.ca_file);
        config.backend.tls_cert_file = resolve(config.backend.tls_cert_file);
        config.backend.tls_key_file = resolve(config.backend.tls_key_file);
        config.embedded.token_file = resolve(config.embedded.token_file);
        config.embedded.tls_cert_file = resolve(config.embedded.tls_cert_file);
        config.embedded.tls_key_file = resolve(config.embedded.tls_key_file);
        config.embedded.peer_ca_file = resolve(config.embedded.peer_ca_file);
        config.embedded.database_ca_file = resolve(config.embedded.database_ca_file);
        config.admin.token_file = resolve(config.admin.token_file);
        config.admin.dashboard_token_file = resolve(config.admin.dashboard_token_file);
        if config.backend.mode() == BackendMode::Embedded {
            // The host's own worker and the client authenticate with the embedded
            // backend's token, and trust its certificate as their root (a self-signed
            // one included) under the name it serves ([backend] settings for these are
            // refused in this mode).
            config
                .backend
                .token_file
                .clone_from(&config.embedded.token_file);
            let tls = config.embedded.serves_tls();
            config.backend.ca_file = config.embedded.tls_cert_file.clone().filter(|_| tls);
            config.backend.tls_server_name = tls.then(|| config.embedded.tls_server_name());
        }
        Ok(config)
    }

    /// Where the crash journal is (`None` when `[worker] max_crashes = 0`):
    /// `[worker] crash_journal`, else beside the embedded backend's database
    /// (`<database>.crashes`, so that it lives as long as the state it counts for), else,
    /// for a remote backend, `durabletask-crashes.<taskhub>` in the config file's folder
    /// (characters other than letters, digits, `-`, `_` and `.` in the task hub's name
    /// become `_`).
    pub fn crash_journal(&self) -> Option<PathBuf> {
        if self.worker.max_crashes == 0 {
            return None;
        }
        if let Some(path) = &self.worker.crash_journal {
            return Some(path.clone());
        }
        Some(match self.backend.mode() {
            BackendMode::Embedded => self.beside_database("crashes"),
            BackendMode::Remote => self.beside_config("crashes"),
        })
    }

    /// Where the build of each plugin version put in service is remembered across
    /// restarts (`plugins::build_memory`): beside the embedded backend's database
    /// (`<database>.builds`), else, for a remote backend, `durabletask-builds.<taskhub>`
    /// in the config file's folder.
    pub fn build_memory(&self) -> PathBuf {
        match self.backend.mode() {
            BackendMode::Embedded => self.beside_database("builds"),
            BackendMode::Remote => self.beside_config("builds"),
        }
    }

    /// `<database>.<what>` beside the embedded backend's SQLite file, so that it lives as
    /// long as the state it is about; for a PostgreSQL database, which several hosts
    /// share, this host's own `durabletask-<what>.<taskhub>` in the config file's folder.
    fn beside_database(&self, what: &str) -> PathBuf {
        match self.embedded.database.sqlite_path() {
            Some(database) => {
                let mut path = database.to_path_buf().into_os_string();
                path.push(".");
                path.push(what);
                PathBuf::from(path)
            }
            None => self.beside_config(what),
        }
    }

    /// `durabletask-<what>.<taskhub>` in the config file's folder (characters other than
    /// letters, digits, `-`, `_` and `.` in the task hub's name become `_`).
    fn beside_config(&self, what: &str) -> PathBuf {
        let hub: String = self
            .backend
            .taskhub
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.config_dir().join(format!("durabletask-{what}.{hub}"))
    }

    /// The directory relative paths in this config were resolved against.
    pub fn config_dir(&self) -> PathBuf {
        config_dir(&self.source)
    }

    /// Checks of the embedded backend's settings, once the mode is known: refuses what
    /// would expose it, and settings it would silently ignore.
    fn validate_embedded(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        if self.backend.mode() != BackendMode::Embedded {
            return Ok(());
        }
        let invalid = |section: &str, key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location: locate_key(text, section, key),
            message,
        };
        for (key, set) in [
            ("token_env", self.backend.token_env.is_some()),
            ("token_file", self.backend.token_file.is_some()),
            ("token_command", self.backend.token_command.is_some()),
        ] {
            if set {
                return Err(invalid(
                    "backend",
                    key,
                    format!(
                        "'{key}' in [backend] would be ignored: with mode = \"embedded\" the host's worker talks to its own backend; set token_file in [embedded] to make that backend require a token (the host's worker and client then use it)"
                    ),
                ));
            }
        }
        for (key, set) in [
            ("ca_file", self.backend.ca_file.is_some()),
            ("tls_server_name", self.backend.tls_server_name.is_some()),
            ("tls_cert_file", self.backend.tls_cert_file.is_some()),
            ("tls_key_file", self.backend.tls_key_file.is_some()),
        ] {
            if set {
                return Err(invalid(
                    "backend",
                    key,
                    format!(
                        "'{key}' in [backend] would be ignored: with mode = \"embedded\" the host's worker talks to its own backend; set tls_cert_file and tls_key_file (and tls_server_name if needed) in [embedded] to make that backend serve TLS (the host's worker and client then trust its certificate)"
                    ),
                ));
            }
        }
        let embedded = &self.embedded;
        let half_of_tls = match (&embedded.tls_cert_file, &embedded.tls_key_file) {
            (Some(_), None) => Some(("tls_cert_file", "tls_key_file")),
            (None, Some(_)) => Some(("tls_key_file", "tls_cert_file")),
            _ => None,
        };
        if let Some((set, missing)) = half_of_tls {
            return Err(invalid(
                "embedded",
                set,
                format!(
                    "'{set}' in [embedded] is set without '{missing}': set both (the certificate chain and its private key, PEM files) to serve TLS, or neither"
                ),
            ));
        }
        if let Some(name) = &embedded.tls_server_name {
            if !embedded.serves_tls() {
                return Err(invalid(
                    "embedded",
                    "tls_server_name",
                    "'tls_server_name' in [embedded] would be ignored: it is the name the host's worker and client expect in the certificate of tls_cert_file, which is not set".to_owned(),
                ));
            }
            if name.trim().is_empty() {
                return Err(invalid(
                    "embedded",
                    "tls_server_name",
                    "invalid value for 'tls_server_name' in [embedded]: must not be empty (leave the key out for the default)".to_owned(),
                ));
            }
        }
        self.validate_cluster(&invalid)?;
        // Input and output of one instance must fit in one 64 MiB message together.
        if !(1..=MAX_EMBEDDED_PAYLOAD_BYTES).contains(&self.embedded.max_payload_bytes) {
            return Err(invalid(
                "embedded",
                "max_payload_bytes",
                format!(
                    "invalid value for 'max_payload_bytes' in [embedded]: {} is not within 1..={MAX_EMBEDDED_PAYLOAD_BYTES} (an instance's input and output must fit in one message together)",
                    self.embedded.max_payload_bytes
                ),
            ));
        }
        // Reachable from other machines, it needs both: TLS so that calls, payloads and
        // the token cannot be read or changed on the way, a token so that not everyone
        // who reaches the port can use it.
        let mut missing = Vec::new();
        if !embedded.serves_tls() {
            missing.push(
                "TLS (tls_cert_file and tls_key_file: without it calls, their payloads and any token cross the network in the clear)",
            );
        }
        if embedded.token_file.is_none() {
            missing.push(
                "a token_file (without it anyone who reaches the port can start, terminate or purge every orchestration)",
            );
        }
        if !embedded.listen.ip().is_loopback() && !embedded.insecure && !missing.is_empty() {
            return Err(invalid(
                "embedded",
                "listen",
                format!(
                    "'listen' in [embedded] is {}, reachable from other machines, without {}. Set what is missing in [embedded], listen on loopback (127.0.0.1), or set insecure = true in [embedded] if every machine on the network is trusted",
                    embedded.listen,
                    missing.join(" and without ")
                ),
            ));
        }
        Ok(())
    }

    /// Checks of `[embedded]`'s settings for several hosts on PostgreSQL: they mean
    /// nothing on SQLite (refused rather than ignored), and must be usable there.
    fn validate_cluster(
        &self,
        invalid: &impl Fn(&str, &str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let embedded = &self.embedded;
        let postgres = matches!(embedded.database, DatabaseLocation::Postgres(_));
        let defaults = EmbeddedSettings::default();
        for (key, set) in [
            (
                "takeover_time",
                embedded.takeover_time != defaults.takeover_time,
            ),
            ("advertise", embedded.advertise.is_some()),
            ("peer_ca_file", embedded.peer_ca_file.is_some()),
            ("database_ca_file", embedded.database_ca_file.is_some()),
        ] {
            if set && !postgres {
                return Err(invalid(
                    "embedded",
                    key,
                    format!(
                        "'{key}' in [embedded] would be ignored: it is for several hosts sharing a PostgreSQL database, and 'database' is a SQLite file"
                    ),
                ));
            }
        }
        if !postgres {
            return Ok(());
        }
        if embedded.takeover_time < MIN_TAKEOVER_TIME {
            return Err(invalid(
                "embedded",
                "takeover_time",
                format!(
                    "invalid value for 'takeover_time' in [embedded]: {:?} is below {MIN_TAKEOVER_TIME:?} (the lease would be lost to an ordinary pause or a slow renewal)",
                    embedded.takeover_time
                ),
            ));
        }
        if let Some(advertise) = &embedded.advertise {
            let scheme_fits = match embedded.serves_tls() {
                true => advertise.starts_with("https://"),
                false => advertise.starts_with("http://"),
            };
            if !scheme_fits {
                return Err(invalid(
                    "embedded",
                    "advertise",
                    format!(
                        "invalid value for 'advertise' in [embedded]: {advertise:?} must be an {} URL (the other hosts reach this one there, {})",
                        if embedded.serves_tls() {
                            "https://"
                        } else {
                            "http://"
                        },
                        if embedded.serves_tls() {
                            "over TLS"
                        } else {
                            "without TLS"
                        }
                    ),
                ));
            }
        } else if embedded.listen.ip().is_unspecified() {
            return Err(invalid(
                "embedded",
                "listen",
                format!(
                    "'listen' in [embedded] is {}, which the other hosts of the PostgreSQL task hub cannot use to reach this one: set 'advertise' to the URL they should use",
                    embedded.listen
                ),
            ));
        }
        if embedded.serves_tls() && embedded.peer_ca_file.is_none() {
            return Err(invalid(
                "embedded",
                "tls_cert_file",
                "with TLS on a PostgreSQL task hub, each host checks the others' certificates: set 'peer_ca_file' in [embedded] to the CA certificate (PEM) that signed them".to_owned(),
            ));
        }
        Ok(())
    }

    /// Checks of `[backend]`'s TLS settings with a remote backend: they only mean
    /// something for an https endpoint.
    fn validate_remote(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        if self.backend.mode() != BackendMode::Remote {
            return Ok(());
        }
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location: locate_key(text, "backend", key),
            message,
        };
        for (key, set) in [
            ("ca_file", self.backend.ca_file.is_some()),
            ("tls_server_name", self.backend.tls_server_name.is_some()),
            ("tls_cert_file", self.backend.tls_cert_file.is_some()),
            ("tls_key_file", self.backend.tls_key_file.is_some()),
        ] {
            if set && !self.backend.endpoint.uses_tls() {
                return Err(invalid(
                    key,
                    format!(
                        "'{key}' in [backend] would be ignored: the endpoint {} is plaintext; write https:// to connect with TLS",
                        self.backend.endpoint
                    ),
                ));
            }
        }
        match (&self.backend.tls_cert_file, &self.backend.tls_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "tls_cert_file",
                    "'tls_cert_file' in [backend] needs 'tls_key_file' (the client certificate's private key)".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_key_file",
                    "'tls_key_file' in [backend] needs 'tls_cert_file' (the client certificate it belongs to)".to_owned(),
                ));
            }
            _ => {}
        }
        if self
            .backend
            .tls_server_name
            .as_deref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return Err(invalid(
                "tls_server_name",
                "invalid value for 'tls_server_name' in [backend]: must not be empty (leave the key out to use the endpoint's host)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Checks that span more than one key, or that toml cannot express.
    fn validate(&self, text: &str, path: &Path, endpoint_given: bool) -> Result<(), ConfigError> {
        let invalid = |section: &str, key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location: locate_key(text, section, key),
            message,
        };
        if self
            .worker
            .crash_journal
            .as_ref()
            .is_some_and(|journal| journal.as_os_str().is_empty())
        {
            return Err(invalid(
                "worker",
                "crash_journal",
                "'crash_journal' in [worker] is empty: name a file (or leave it out for the default beside the database; max_crashes = 0 turns the journal off)".to_owned(),
            ));
        }
        let token_sources = [
            ("token_env", self.backend.token_env.is_some()),
            ("token_file", self.backend.token_file.is_some()),
            ("token_command", self.backend.token_command.is_some()),
        ];
        let set: Vec<&str> = token_sources
            .iter()
            .filter(|(_, set)| *set)
            .map(|(key, _)| *key)
            .collect();
        if let [first, second, ..] = set.as_slice() {
            return Err(invalid(
                "backend",
                second,
                format!("'{first}' and '{second}' in [backend] are both set; choose one"),
            ));
        }
        if self
            .backend
            .token_command
            .as_ref()
            .is_some_and(|command| command.first().is_none_or(|program| program.is_empty()))
        {
            return Err(invalid(
                "backend",
                "token_command",
                "invalid value for 'token_command' in [backend]: name a program, e.g. [\"/usr/local/bin/fetch-token\", \"--audience\", \"durabletask\"]".to_owned(),
            ));
        }
        if self.backend.mode == Some(BackendMode::Embedded) && endpoint_given {
            return Err(invalid(
                "backend",
                "endpoint",
                "'endpoint' in [backend] is only used with mode = \"remote\"; with mode = \"embedded\" the host serves its own backend at [embedded] listen".to_owned(),
            ));
        }
        if self.backend.taskhub.trim().is_empty() {
            return Err(invalid(
                "backend",
                "taskhub",
                "invalid value for 'taskhub' in [backend]: must not be empty".to_owned(),
            ));
        }
        // It travels as a gRPC header; backends refuse names that are not plain ASCII.
        if let Some(bad) = self.backend.taskhub.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(invalid(
                "backend",
                "taskhub",
                format!(
                    "invalid value for 'taskhub' in [backend]: only printable ASCII without spaces is allowed, found {bad:?}"
                ),
            ));
        }
        if self.worker.activities_per_plugin() > self.worker.max_concurrent_activities {
            return Err(invalid(
                "worker",
                "max_concurrent_activities_per_plugin",
                format!(
                    "'max_concurrent_activities_per_plugin' in [worker] ({}) is larger than 'max_concurrent_activities' ({}), which also bounds each plugin",
                    self.worker.activities_per_plugin(),
                    self.worker.max_concurrent_activities
                ),
            ));
        }
        if self.admin.enabled
            && !self.admin.listen.ip().is_loopback()
            && self.admin.token_file.is_none()
            && !self.admin.insecure
        {
            return Err(invalid(
                "admin",
                "listen",
                format!(
                    "[admin] listen = \"{}\" is reachable from other machines, which could read the metrics and status of every workflow: set 'token_file' in [admin] (Prometheus sends it with `authorization: credentials_file`), or 'insecure = true' on a network where every peer is trusted",
                    self.admin.listen
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.tracing.sampling_ratio) {
            return Err(invalid(
                "tracing",
                "sampling_ratio",
                format!(
                    "invalid value for 'sampling_ratio' in [tracing]: {} is not between 0 and 1",
                    self.tracing.sampling_ratio
                ),
            ));
        }
        if let Some(endpoint) = &self.tracing.otlp_endpoint
            && Endpoint::parse(endpoint).is_err()
        {
            return Err(invalid(
                "tracing",
                "otlp_endpoint",
                format!(
                    "invalid value for 'otlp_endpoint' in [tracing]: \"{endpoint}\" is not an http:// or https:// address"
                ),
            ));
        }
        if let Some(versioning) = &self.versioning {
            versioning
                .contradiction()
                .map_or(Ok(()), |(key, message)| {
                    Err(invalid("versioning", key, message))
                })?;
        }
        Ok(())
    }
}

fn config_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Turns toml's error into one line that names the line, column, section and key.
fn describe_toml_error(error: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let span = error.span();
    let location = span.as_ref().map(|span| line_and_column(text, span.start));
    let section = span.as_ref().and_then(|span| section_at(text, span.start));
    let in_section = match section.as_deref() {
        Some(name) => format!("in [{name}]"),
        None => "at the top level".to_owned(),
    };
    let raw = error.message().trim();
    let message = if let Some(rest) = raw.strip_prefix("unknown field `") {
        // serde: "unknown field `foo`, expected one of `a`, `b`"
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected.trim_start_matches([',', ' ']).replace('`', "");
        if expected.is_empty() {
            format!("unknown key '{key}' {in_section}")
        } else {
            format!("unknown key '{key}' {in_section} ({expected})")
        }
    } else if let Some(key) = span.as_ref().and_then(|span| key_at(text, span)) {
        format!("invalid value for '{key}' {in_section}: {raw}")
    } else {
        raw.to_owned()
    };
    ConfigError::Invalid {
        path: path.to_owned(),
        location,
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The `[table]` header in force at a byte offset, if any.
fn section_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    before
        .lines()
        .rev()
        .find_map(|line| table_header(line.trim()))
}

fn table_header(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(inner.get(..end)?.trim_matches(['[', ' ']).to_owned())
}

/// The key assigned on the line that contains the span, for value errors.
fn key_at(text: &str, span: &Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let line_start = text.get(..start)?.rfind('\n').map_or(0, |index| index + 1);
    let line_end = text
        .get(start..)?
        .find('\n')
        .map_or(text.len(), |index| start + index);
    let line = text.get(line_start..line_end)?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

/// Whether the document sets `key` in table `section`, in whichever form.
fn has_key(given: &toml::Table, section: &str, key: &str) -> bool {
    given
        .get(section)
        .and_then(toml::Value::as_table)
        .is_some_and(|table| table.contains_key(key))
}

/// Finds `key = ...` inside `[section]`, for errors found after parsing.
fn locate_key(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    let mut current: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(header) = table_header(trimmed.trim_end()) {
            current = Some(header);
            continue;
        }
        let assigned = trimmed
            .split_once('=')
            .map(|(name, _)| name.trim().trim_matches('"'));
        if current.as_deref() == Some(section) && assigned == Some(key) {
            return Some((index + 1, line.len() - trimmed.len() + 1));
        }
    }
    None
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `1h`, `3d` or `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let original = text;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration: write e.g. \"30s\"".to_owned());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| {
            format!(
                "invalid duration \"{original}\": expected a number followed by ms, s, m, h or d"
            )
        })?;
        // "30 s" is as clear as "30s"; allow the space.
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "invalid duration \"{original}\": missing unit (ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration \"{original}\": unknown unit '{other}' (use ms, s, m, h or d)"
                ));
            }
        };
        total = total.saturating_add(part);
        rest = after.trim_start();
    }
    Ok(total)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// A duration where zero means "off": `"0s"` reads as `None`, like an absent key.
fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let value = duration(deserializer)?;
    Ok((!value.is_zero()).then_some(value))
}

fn positive_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let duration = duration(deserializer)?;
    if duration.is_zero() {
        return Err(serde::de::Error::custom("must be more than zero"));
    }
    Ok(duration)
}

fn at_least_one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = i64::deserialize(deserializer)?;
    // The protocol carries these limits as int32.
    match i32::try_from(value) {
        Ok(limit) if limit >= 1 => Ok(limit.unsigned_abs()),
        _ => Err(serde::de::Error::custom(format!(
            "must be between 1 and {}, got {value}",
            i32::MAX
        ))),
    }
}

fn some_at_least_one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    at_least_one(deserializer).map(Some)
}

/// The levels a filter directive may set.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Refuses a directive that is not a level or `target=level`: `EnvFilter` would read a
/// misspelt level (`verbose`, `infoo`) as a target's name and silence every line.
fn check_directives(text: &str) -> Result<(), String> {
    let is_level = |word: &str| LEVELS.contains(&word.trim().to_ascii_lowercase().as_str());
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !is_level(level) {
            return Err(if directive.contains('=') {
                format!(
                    "\"{level}\" in \"{directive}\" is not a level (one of {})",
                    LEVELS.join(", ")
                )
            } else {
                format!(
                    "\"{directive}\" is not a level (one of {}); to set a module's level write module=level, e.g. \"info,durabletask_host=debug\"",
                    LEVELS.join(", ")
                )
            });
        }
    }
    Ok(())
}

fn log_filter<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    check_directives(&text).map_err(serde::de::Error::custom)?;
    tracing_subscriber::EnvFilter::builder()
        .parse(&text)
        .map_err(|error| {
            serde::de::Error::custom(format!(
                "\"{text}\" is not a level or filter directive: {error}"
            ))
        })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_str_with_origin(text, Path::new("/etc/dt/host.toml"))
    }

    fn error_of(text: &str) -> String {
        parse(text)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[test]
    fn an_empty_crash_journal_is_refused_by_name() {
        let message = error_of("[worker]\ncrash_journal = \"\"\n");
        assert!(
            message.contains("'crash_journal' in [worker] is empty"),
            "{message}"
        );
    }

    #[test]
    fn empty_file_gives_every_default() {
        let config = parse("").unwrap();
        assert_eq!(config.backend.endpoint.uri(), "http://localhost:4001");
        assert!(!config.backend.endpoint.uses_tls());
        assert_eq!(config.backend.taskhub, "default");
        assert_eq!(config.backend.token_env, None);
        assert_eq!(config.backend.token_file, None);
        assert_eq!(config.worker.max_concurrent_orchestrations, 100);
        assert_eq!(config.worker.max_concurrent_activities, 100);
        assert_eq!(config.worker.max_concurrent_activities_per_plugin, None);
        assert_eq!(config.worker.activities_per_plugin(), 75);
        assert_eq!(config.worker.max_concurrent_entities, 100);
        assert_eq!(config.worker.drain_timeout, Duration::from_secs(30));
        assert_eq!(
            config.worker.stream_silence_timeout,
            Duration::from_secs(120)
        );
        assert_eq!(config.worker.maximum_timer_interval, None);
        assert_eq!(config.worker.activity_timeout, None);
        assert_eq!(
            config.worker.long_activity_threshold,
            Some(Duration::from_secs(60))
        );
        assert!(config.worker.work_item_filters);
        assert_eq!(config.worker.max_crashes, 3);
        assert_eq!(
            config.crash_journal(),
            Some(PathBuf::from("/etc/dt/data/durabletask.sqlite.crashes"))
        );
        assert_eq!(config.versioning, None);
        assert_eq!(config.plugins.dir, PathBuf::from("/etc/dt/plugins"));
        assert!(config.plugins.watch);
        assert_eq!(config.logging.level, "info");
        assert_eq!(config.logging.format, LogFormat::Text);
        assert_eq!(config.logging.file, None);
        assert_eq!(config.logging.rotation, LogRotation::Daily);
        assert_eq!(config.source, PathBuf::from("/etc/dt/host.toml"));
        assert!(config.admin.enabled);
        assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(config.admin.token_file, None);
    }

    #[test]
    fn the_admin_section_is_read_and_its_token_file_resolved() {
        let config = parse(
            "[admin]\nenabled = false\nlisten = \"0.0.0.0:9000\"\ntoken_file = \"admin.token\"\n",
        )
        .unwrap();
        assert!(!config.admin.enabled);
        assert_eq!(config.admin.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(
            config.admin.token_file,
            Some(PathBuf::from("/etc/dt/admin.token"))
        );
    }

    #[test]
    fn an_admin_listener_other_machines_reach_needs_a_token_or_insecure() {
        let error = error_of("[admin]\nlisten = \"0.0.0.0:9464\"\n");
        assert!(error.contains("[admin] listen"), "{error}");
        assert!(error.contains("token_file"), "{error}");
        assert!(error.contains("host.toml:2"), "{error}");
        parse("[admin]\nlisten = \"0.0.0.0:9464\"\ninsecure = true\n").unwrap();
        parse("[admin]\nlisten = \"0.0.0.0:9464\"\nenabled = false\n").unwrap();
        let error = error_of("[admin]\nlisten = \"localhost\"\n");
        assert!(error.contains("listen"), "{error}");
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            r#"
[backend]
endpoint = "grpcs://dts.example.com:443"
taskhub = "hub1"
token_file = "secrets/token"

[worker]
max_concurrent_orchestrations = 7
max_concurrent_activities = 8
max_concurrent_activities_per_plugin = 5
max_concurrent_entities = 9
drain_timeout = "500ms"
stream_silence_timeout = "0s"
activity_timeout = "10m"
long_activity_threshold = "0s"
maximum_timer_interval = "3d"
work_item_filters = true
max_crashes = 5
crash_journal = "state/crashes"

[versioning]
version = "1.2.0"
default_version = "1.0.0"
match_strategy = "current_or_older"
failure_strategy = "reject"

[plugins]
dir = "/opt/plugins"
watch = false

[logging]
level = "info,durabletask_host=debug"
format = "json"
file = "logs/host.log"
rotation = "hourly"
"#,
        )
        .unwrap();
        assert_eq!(config.backend.endpoint.uri(), "https://dts.example.com:443");
        assert!(config.backend.endpoint.uses_tls());
        assert_eq!(
            config.backend.endpoint.to_string(),
            "grpcs://dts.example.com:443"
        );
        assert_eq!(config.backend.taskhub, "hub1");
        assert_eq!(
            config.backend.token_file,
            Some(PathBuf::from("/etc/dt/secrets/token"))
        );
        assert_eq!(config.worker.max_concurrent_orchestrations, 7);
        assert_eq!(config.worker.max_concurrent_activities, 8);
        assert_eq!(config.worker.max_concurrent_activities_per_plugin, Some(5));
        assert_eq!(config.worker.activities_per_plugin(), 5);
        assert_eq!(config.worker.max_concurrent_entities, 9);
        assert_eq!(config.worker.drain_timeout, Duration::from_millis(500));
        assert_eq!(config.worker.stream_silence_timeout, Duration::ZERO);
        assert_eq!(
            config.worker.activity_timeout,
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            config.worker.maximum_timer_interval,
            Some(Duration::from_secs(3 * 86_400))
        );
        assert!(config.worker.work_item_filters);
        assert_eq!(config.worker.max_crashes, 5);
        assert_eq!(
            config.crash_journal(),
            Some(PathBuf::from("/etc/dt/state/crashes"))
        );
        assert_eq!(
            config.versioning,
            Some(VersioningSettings {
                version: Some("1.2.0".into()),
                default_version: Some("1.0.0".into()),
                match_strategy: MatchStrategy::CurrentOrOlder,
                failure_strategy: FailureStrategy::Reject,
            })
        );
        assert_eq!(config.plugins.dir, PathBuf::from("/opt/plugins"));
        assert!(!config.plugins.watch);
        assert_eq!(config.logging.level, "info,durabletask_host=debug");
        assert_eq!(config.logging.format, LogFormat::Json);
        assert_eq!(
            config.logging.file,
            Some(PathBuf::from("/etc/dt/logs/host.log"))
        );
        assert_eq!(config.logging.rotation, LogRotation::Hourly);
    }

    #[test]
    fn token_env_is_read() {
        let config =
            parse("[backend]\nendpoint = \"http://h:4001\"\ntoken_env = \"DT_TOKEN\"\n").unwrap();
        assert_eq!(config.backend.token_env.as_deref(), Some("DT_TOKEN"));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let message = error_of("[worker]\nmax_concurrent_activities = 3\n\nfoo = 1\n");
        assert!(
            message.starts_with("/etc/dt/host.toml:4:1: unknown key 'foo' in [worker]"),
            "{message}"
        );
    }

    #[test]
    fn unknown_section_is_named() {
        let message = error_of("[workers]\nx = 1\n");
        assert!(message.starts_with("/etc/dt/host.toml:1:"), "{message}");
        assert!(message.contains("unknown key 'workers'"), "{message}");
    }

    #[test]
    fn bad_duration_names_the_key() {
        let message = error_of("[worker]\ndrain_timeout = \"30 seconds\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
        assert!(message.contains("'drain_timeout' in [worker]"), "{message}");
        assert!(message.contains("unknown unit 'seconds'"), "{message}");
    }

    #[test]
    fn maximum_timer_interval_is_off_unless_set_to_a_positive_duration() {
        let interval = |text: &str| parse(text).unwrap().worker.maximum_timer_interval;
        assert_eq!(interval("[worker]\n"), None);
        assert_eq!(
            interval("[worker]\nmaximum_timer_interval = \"0s\"\n"),
            None
        );
        assert_eq!(
            interval("[worker]\nmaximum_timer_interval = \"2s\"\n"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            interval("[worker]\nmaximum_timer_interval = \"1d12h\"\n"),
            Some(Duration::from_secs(36 * 3600))
        );
        let message = error_of("[worker]\nmaximum_timer_interval = \"3 days\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
        assert!(
            message.contains("'maximum_timer_interval' in [worker]"),
            "{message}"
        );
        let message = error_of("[worker]\nmaximum_timer_interval = 3\n");
        assert!(
            message.contains("'maximum_timer_interval' in [worker]"),
            "{message}"
        );
    }

    #[test]
    fn work_item_filters_are_on_unless_turned_off() {
        let filters = |text: &str| parse(text).unwrap().worker.work_item_filters;
        assert!(filters("[worker]\n"));
        assert!(!filters("[worker]\nwork_item_filters = false\n"));
        assert!(filters("[worker]\nwork_item_filters = true\n"));
        let message = error_of("[worker]\nwork_item_filters = \"yes\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
        assert!(
            message.contains("'work_item_filters' in [worker]"),
            "{message}"
        );
    }

    #[test]
    fn bad_enum_value_names_the_key() {
        let message = error_of("[logging]\nformat = \"xml\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
        assert!(message.contains("'format' in [logging]"), "{message}");
        assert!(message.contains("xml"), "{message}");

        let message = error_of("[versioning]\nversion = \"1\"\nmatch_strategy = \"loose\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:3:"), "{message}");
        assert!(
            message.contains("'match_strategy' in [versioning]"),
            "{message}"
        );
    }

    #[test]
    fn endpoint_without_scheme_is_rejected() {
        let message = error_of("[backend]\nendpoint = \"localhost:4001\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
        assert!(message.contains("'endpoint' in [backend]"), "{message}");
        assert!(message.contains("no scheme"), "{message}");
        let message = error_of("[backend]\nendpoint = \"ftp://x:1\"\n");
        assert!(message.contains("unsupported scheme 'ftp'"), "{message}");
    }

    #[test]
    fn zero_concurrency_is_rejected() {
        let message = error_of("[worker]\nmax_concurrent_entities = 0\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
        assert!(
            message.contains("'max_concurrent_entities' in [worker]"),
            "{message}"
        );
    }

    #[test]
    fn each_plugin_gets_three_quarters_of_the_activity_permits_unless_told_otherwise() {
        let per_plugin = |text: &str| parse(text).unwrap().worker.activities_per_plugin();
        assert_eq!(per_plugin("[worker]\nmax_concurrent_activities = 8\n"), 6);
        assert_eq!(per_plugin("[worker]\nmax_concurrent_activities = 3\n"), 2);
        // One permit cannot be shared: the plugin gets it.
        assert_eq!(per_plugin("[worker]\nmax_concurrent_activities = 1\n"), 1);
        assert_eq!(
            per_plugin("[worker]\nmax_concurrent_activities = 2147483647\n"),
            1_610_612_735
        );
        assert_eq!(
            per_plugin(
                "[worker]\nmax_concurrent_activities = 8\nmax_concurrent_activities_per_plugin = 8\n"
            ),
            8
        );
        let message = error_of(
            "[worker]\nmax_concurrent_activities = 4\nmax_concurrent_activities_per_plugin = 5\n",
        );
        assert!(message.starts_with("/etc/dt/host.toml:3:"), "{message}");
        assert!(
            message.contains("'max_concurrent_activities_per_plugin' in [worker] (5) is larger"),
            "{message}"
        );
        let message = error_of("[worker]\nmax_concurrent_activities_per_plugin = 0\n");
        assert!(
            message.contains("'max_concurrent_activities_per_plugin' in [worker]"),
            "{message}"
        );
    }

    #[test]
    fn both_token_sources_are_rejected_at_the_second_key() {
        let message = error_of("[backend]\ntoken_env = \"T\"\ntoken_file = \"t\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:3:1:"), "{message}");
        assert!(message.contains("both set"), "{message}");
    }

    #[test]
    fn without_an_endpoint_the_host_runs_its_own_backend() {
        let config = parse("").unwrap();
        assert_eq!(config.backend.mode(), BackendMode::Embedded);
        assert_eq!(config.embedded.listen.to_string(), "127.0.0.1:4001");
        assert_eq!(
            config.embedded.database,
            DatabaseLocation::Sqlite(PathBuf::from("/etc/dt/data/durabletask.sqlite"))
        );
        assert_eq!(
            config.embedded.client_endpoint().uri(),
            "http://127.0.0.1:4001"
        );
        // A commented-out endpoint is no endpoint.
        let config = parse("[backend]\n# endpoint = \"http://x:1\"\n").unwrap();
        assert_eq!(config.backend.mode(), BackendMode::Embedded);
    }

    #[test]
    fn an_endpoint_means_remote_unless_embedded_is_asked_for_which_is_an_error() {
        let config = parse("[backend]\nendpoint = \"http://backend:4001\"\n").unwrap();
        assert_eq!(config.backend.mode(), BackendMode::Remote);
        let config = parse("[backend]\nmode = \"remote\"\n").unwrap();
        assert_eq!(config.backend.mode(), BackendMode::Remote);
        let message =
            error_of("[backend]\nmode = \"embedded\"\nendpoint = \"http://backend:4001\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:3:1:"), "{message}");
        assert!(
            message.contains("only used with mode = \"remote\""),
            "{message}"
        );
    }

    #[test]
    fn the_embedded_section_is_read() {
        let config = parse(
            "[backend]\nmode = \"embedded\"\n\n[embedded]\nlisten = \"0.0.0.0:5000\"\ndatabase = \"/var/lib/dt/state.sqlite\"\ninsecure = true\n",
        )
        .unwrap();
        assert_eq!(config.embedded.listen.to_string(), "0.0.0.0:5000");
        assert_eq!(
            config.embedded.database,
            DatabaseLocation::Sqlite(PathBuf::from("/var/lib/dt/state.sqlite"))
        );
        assert_eq!(
            config.embedded.client_endpoint().uri(),
            "http://127.0.0.1:5000"
        );
        let message = error_of("[embedded]\nlisten = \"localhost\"\n");
        assert!(message.contains("listen"), "{message}");
    }

    #[test]
    fn an_embedded_backend_reachable_from_other_machines_needs_tls_and_a_token_or_insecure() {
        const TLS: &str = "tls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n";
        const TOKEN: &str = "token_file = \"tokens\"\n";
        for listen in ["0.0.0.0:4001", "192.0.2.7:4001", "[::]:4001"] {
            let message = error_of(&format!("[embedded]\nlisten = \"{listen}\"\n"));
            assert!(message.starts_with("/etc/dt/host.toml:2:1:"), "{message}");
            assert!(message.contains("insecure = true"), "{message}");
            assert!(message.contains("without TLS"), "{message}");
            assert!(message.contains("without a token_file"), "{message}");

            // The message names only what is missing.
            let message = error_of(&format!("[embedded]\nlisten = \"{listen}\"\n{TOKEN}"));
            assert!(message.starts_with("/etc/dt/host.toml:2:1:"), "{message}");
            assert!(message.contains("without TLS"), "{message}");
            assert!(!message.contains("token_file"), "{message}");
            let message = error_of(&format!("[embedded]\nlisten = \"{listen}\"\n{TLS}"));
            assert!(message.contains("without a token_file"), "{message}");
            assert!(!message.contains("without TLS"), "{message}");

            // Both, or an explicit insecure, are accepted.
            parse(&format!("[embedded]\nlisten = \"{listen}\"\n{TLS}{TOKEN}")).unwrap();
            parse(&format!(
                "[embedded]\nlisten = \"{listen}\"\ninsecure = true\n"
            ))
            .unwrap();
            parse(&format!(
                "[embedded]\nlisten = \"{listen}\"\ninsecure = true\n{TOKEN}"
            ))
            .unwrap();
        }
        for listen in ["127.0.0.1:4001", "127.0.0.2:0", "[::1]:4001"] {
            parse(&format!("[embedded]\nlisten = \"{listen}\"\n")).unwrap();
        }
        // A remote backend's worker does not listen: nothing to refuse.
        parse("[backend]\nendpoint = \"http://h:4001\"\n\n[embedded]\nlisten = \"0.0.0.0:1\"\n")
            .unwrap();
    }

    #[test]
    fn cluster_settings_are_for_postgres_only_and_must_be_usable_there() {
        const PG: &str = "database = \"postgres://dt@db/hub\"\n";
        // On SQLite they would be ignored: refused, naming the key.
        for line in [
            "takeover_time = \"10s\"",
            "advertise = \"http://a:4001\"",
            "peer_ca_file = \"ca.pem\"",
            "database_ca_file = \"pg-ca.pem\"",
        ] {
            let key = line.split(' ').next().unwrap();
            let message = error_of(&format!("[embedded]\n{line}\n"));
            assert!(message.contains(&format!("'{key}'")), "{message}");
            assert!(message.contains("would be ignored"), "{message}");
        }
        let config = parse(&format!(
            "[embedded]\n{PG}takeover_time = \"10s\"\nadvertise = \"http://10.0.0.5:4001\"\n"
        ))
        .unwrap();
        assert_eq!(config.embedded.takeover_time, Duration::from_secs(10));
        assert_eq!(
            config.embedded.advertise.as_deref(),
            Some("http://10.0.0.5:4001")
        );
        let message = error_of(&format!("[embedded]\n{PG}takeover_time = \"200ms\"\n"));
        assert!(message.contains("below 1s"), "{message}");
        // A wildcard listen needs the address the others should use.
        let message = error_of(&format!(
            "[embedded]\n{PG}listen = \"0.0.0.0:4001\"\ninsecure = true\n"
        ));
        assert!(message.contains("set 'advertise'"), "{message}");
        // Without TLS the others forward over http, with TLS over https and a CA.
        let message = error_of(&format!("[embedded]\n{PG}advertise = \"https://a:4001\"\n"));
        assert!(message.contains("must be an http:// URL"), "{message}");
        let tls = "tls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n";
        let message = error_of(&format!("[embedded]\n{PG}{tls}"));
        assert!(message.contains("set 'peer_ca_file'"), "{message}");
        let config = parse(&format!(
            "[embedded]\n{PG}{tls}peer_ca_file = \"ca.pem\"\nadvertise = \"https://a:4001\"\n"
        ))
        .unwrap();
        assert!(config.embedded.peer_ca_file.unwrap().ends_with("ca.pem"));
    }

    #[test]
    fn a_taskhub_that_is_not_plain_ascii_is_refused() {
        for bad in ["my hub", "h\u{e9}"] {
            let message = error_of(&format!("[backend]\ntaskhub = \"{bad}\"\n"));
            assert!(message.contains("printable ASCII"), "{message}");
        }
    }

    #[test]
    fn the_payload_limit_is_read_and_bounded() {
        let config =
            parse("[embedded]\nmax_payload_bytes = 1048576\nmax_history_events = 50000\n").unwrap();
        assert_eq!(config.embedded.max_payload_bytes, 1_048_576);
        assert_eq!(config.embedded.max_history_events, 50_000);
        assert_eq!(parse("").unwrap().embedded.max_history_events, 10_000);
        assert_eq!(
            parse("").unwrap().embedded.max_payload_bytes,
            16 * 1024 * 1024
        );
        for bad in ["0", "33554433"] {
            let message = error_of(&format!("[embedded]\nmax_payload_bytes = {bad}\n"));
            assert!(message.contains("max_payload_bytes"), "{message}");
        }
    }

    #[test]
    fn the_embedded_token_file_is_what_the_worker_and_client_send() {
        let config = parse("[embedded]\ntoken_file = \"secrets/tokens\"\n").unwrap();
        let path = PathBuf::from("/etc/dt/secrets/tokens");
        assert_eq!(config.embedded.token_file.as_ref(), Some(&path));
        assert_eq!(config.backend.token_file, Some(path));
    }

    #[test]
    fn the_tls_files_are_both_or_neither() {
        let message = error_of("[embedded]\ntls_cert_file = \"cert.pem\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:1:"), "{message}");
        assert!(
            message.contains("'tls_cert_file' in [embedded] is set without 'tls_key_file'"),
            "{message}"
        );
        let message =
            error_of("[embedded]\nlisten = \"127.0.0.1:1\"\ntls_key_file = \"key.pem\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:3:1:"), "{message}");
        assert!(
            message.contains("'tls_key_file' in [embedded] is set without 'tls_cert_file'"),
            "{message}"
        );
        let config = parse("").unwrap();
        assert!(!config.embedded.serves_tls());
        assert_eq!(config.backend.ca_file, None);
        assert_eq!(config.backend.tls_server_name, None);
    }

    #[test]
    fn with_tls_files_the_worker_and_client_use_https_and_trust_the_certificate() {
        let config = parse(
            "[embedded]\ntls_cert_file = \"tls/cert.pem\"\ntls_key_file = \"/secret/key.pem\"\n",
        )
        .unwrap();
        // Relative to the config file's directory, as database and token_file are.
        let certificate = PathBuf::from("/etc/dt/tls/cert.pem");
        assert_eq!(config.embedded.tls_cert_file.as_ref(), Some(&certificate));
        assert_eq!(
            config.embedded.tls_key_file,
            Some(PathBuf::from("/secret/key.pem"))
        );
        assert!(config.embedded.serves_tls());
        assert_eq!(
            config.embedded.client_endpoint().uri(),
            "https://127.0.0.1:4001"
        );
        assert!(config.embedded.client_endpoint().uses_tls());
        assert_eq!(config.backend.ca_file, Some(certificate));
        assert_eq!(config.backend.tls_server_name.as_deref(), Some("localhost"));
    }

    #[test]
    fn the_embedded_tls_server_name_defaults_to_what_the_client_connects_to() {
        let name = |listen: &str, extra: &str| {
            parse(&format!(
                "[embedded]\nlisten = \"{listen}\"\ntls_cert_file = \"c\"\ntls_key_file = \"k\"\ntoken_file = \"t\"\n{extra}"
            ))
            .unwrap()
            .backend
            .tls_server_name
            .unwrap()
        };
        assert_eq!(name("127.0.0.1:1", ""), "localhost");
        assert_eq!(name("[::1]:1", ""), "localhost");
        // An unspecified address is reached over loopback.
        assert_eq!(name("0.0.0.0:1", ""), "localhost");
        assert_eq!(name("192.0.2.7:1", ""), "192.0.2.7");
        assert_eq!(
            name("192.0.2.7:1", "tls_server_name = \"dt.example.com\"\n"),
            "dt.example.com"
        );

        let message = error_of("[embedded]\ntls_server_name = \"dt.example.com\"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:1:"), "{message}");
        assert!(message.contains("would be ignored"), "{message}");
        let message = error_of(
            "[embedded]\ntls_cert_file = \"c\"\ntls_key_file = \"k\"\ntls_server_name = \" \"\n",
        );
        assert!(message.starts_with("/etc/dt/host.toml:4:1:"), "{message}");
        assert!(message.contains("must not be empty"), "{message}");
    }

    #[test]
    fn the_backend_ca_file_is_for_an_https_remote_endpoint() {
        let config = parse(
            "[backend]\nendpoint = \"https://10.0.0.5:4001\"\nca_file = \"tls/ca.pem\"\ntls_server_name = \"dt.internal\"\n",
        )
        .unwrap();
        assert_eq!(
            config.backend.ca_file,
            Some(PathBuf::from("/etc/dt/tls/ca.pem"))
        );
        assert_eq!(
            config.backend.tls_server_name.as_deref(),
            Some("dt.internal")
        );

        for key in ["ca_file = \"ca.pem\"", "tls_server_name = \"h\""] {
            // A plaintext endpoint would ignore it.
            let message = error_of(&format!("[backend]\nendpoint = \"http://h:4001\"\n{key}\n"));
            assert!(message.starts_with("/etc/dt/host.toml:3:1:"), "{message}");
            assert!(message.contains("is plaintext"), "{message}");
            // So would embedded mode, whose TLS is configured in [embedded].
            let message = error_of(&format!("[backend]\n{key}\n"));
            assert!(message.starts_with("/etc/dt/host.toml:2:1:"), "{message}");
            assert!(message.contains("would be ignored"), "{message}");
            assert!(message.contains("tls_cert_file"), "{message}");
        }
    }

    #[test]
    fn a_token_that_embedded_mode_would_ignore_is_refused() {
        for key in ["token_env = \"T\"", "token_file = \"t\""] {
            let message = error_of(&format!("[backend]\nmode = \"embedded\"\n{key}\n"));
            assert!(message.starts_with("/etc/dt/host.toml:3:1:"), "{message}");
            assert!(message.contains("would be ignored"), "{message}");
            // The default mode without an endpoint is embedded too.
            let message = error_of(&format!("[backend]\n{key}\n"));
            assert!(message.contains("would be ignored"), "{message}");
        }
    }

    #[test]
    fn a_match_strategy_without_a_version_is_accepted() {
        // Each plugin generation is then a worker of its own version.
        let config = parse("[versioning]\nmatch_strategy = \"strict\"\n").unwrap();
        let versioning = config.versioning.unwrap();
        assert_eq!(versioning.match_strategy, MatchStrategy::Strict);
        assert_eq!(versioning.version, None);
    }

    #[test]
    fn empty_versions_are_refused() {
        let message = error_of("[versioning]\nversion = \" \"\n");
        assert!(message.starts_with("/etc/dt/host.toml:2:1:"), "{message}");
        assert!(
            message.contains("'version' in [versioning]: must not be empty"),
            "{message}"
        );
        let message = error_of("[versioning]\ndefault_version = \"\"\n");
        assert!(message.contains("'default_version'"), "{message}");
    }

    #[test]
    fn a_default_version_the_worker_would_refuse_is_a_contradiction() {
        let message = error_of(
            "[versioning]\nversion = \"2.0\"\ndefault_version = \"1.0\"\nmatch_strategy = \"strict\"\n",
        );
        assert!(message.starts_with("/etc/dt/host.toml:3:1:"), "{message}");
        assert!(message.contains("contradicts"), "{message}");
        let message = error_of(
            "[versioning]\nversion = \"2.0\"\ndefault_version = \"2.1\"\nmatch_strategy = \"current_or_older\"\n",
        );
        assert!(message.contains("is greater than"), "{message}");
        // Older defaults are fine under current_or_older, and anything goes under none.
        for (default, strategy) in [
            ("1.0", "current_or_older"),
            ("3.0", "none"),
            ("2.0.0", "strict"),
        ] {
            let text = format!(
                "[versioning]\nversion = \"2.0\"\ndefault_version = \"{default}\"\nmatch_strategy = \"{strategy}\"\n"
            );
            assert!(parse(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn a_token_command_is_one_token_source_and_names_a_program() {
        let config = parse(
            "[backend]\nendpoint = \"https://h:443\"\ntoken_command = [\"/usr/bin/helper\", \"--audience\", \"dts\"]\n",
        )
        .unwrap();
        assert_eq!(
            config.backend.token_command,
            Some(vec![
                "/usr/bin/helper".to_owned(),
                "--audience".to_owned(),
                "dts".to_owned()
            ])
        );
        let error = error_of(
            "[backend]\nendpoint = \"https://h:443\"\ntoken_file = \"t\"\ntoken_command = [\"x\"]\n",
        );
        assert!(
            error.contains("'token_file' and 'token_command'"),
            "{error}"
        );
        let error = error_of("[backend]\nendpoint = \"https://h:443\"\ntoken_command = []\n");
        assert!(error.contains("name a program"), "{error}");
        let error = error_of("[backend]\nmode = \"embedded\"\ntoken_command = [\"x\"]\n");
        assert!(
            error.contains("'token_command' in [backend] would be ignored"),
            "{error}"
        );
    }

    #[test]
    fn bad_log_filter_is_rejected() {
        let message = error_of("[logging]\nlevel = \"loud=[\"\n");
        assert!(message.contains("'level' in [logging]"), "{message}");
    }

    #[test]
    fn a_misspelt_level_is_refused_not_read_as_a_target() {
        for (level, named) in [
            ("verbose", "\"verbose\" is not a level"),
            ("infoo,durabletask_host=debug", "\"infoo\" is not a level"),
            (
                "info,durabletask_host=loud",
                "\"loud\" in \"durabletask_host=loud\"",
            ),
        ] {
            let message = error_of(&format!("[logging]\nlevel = \"{level}\"\n"));
            assert!(message.contains("'level' in [logging]"), "{message}");
            assert!(message.contains(named), "{message}");
            assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
        }
        for level in [
            "info",
            "WARN",
            "info,durabletask_host=debug",
            "off",
            "h2=off, debug",
        ] {
            assert_eq!(
                parse(&format!("[logging]\nlevel = \"{level}\"\n"))
                    .unwrap()
                    .logging
                    .level,
                level
            );
        }
    }

    #[test]
    fn every_form_of_toml_means_the_same() {
        for text in [
            "[backend]\nendpoint = \"http://backend:4001\"\n",
            "backend = { endpoint = \"http://backend:4001\" }\n",
            "backend.endpoint = \"http://backend:4001\"\n",
        ] {
            let config = parse(text).unwrap();
            assert_eq!(config.backend.mode(), BackendMode::Remote, "{text}");
            assert_eq!(
                config.backend.endpoint.uri(),
                "http://backend:4001",
                "{text}"
            );
        }
        let message = error_of("backend = { mode = \"embedded\", endpoint = \"http://x:1\" }\n");
        assert!(
            message.contains("'endpoint' in [backend] is only used"),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let message = error_of("[worker]\ndrain_timeout = \n");
        assert!(message.starts_with("/etc/dt/host.toml:2:"), "{message}");
    }

    #[test]
    fn unreadable_file_is_named() {
        let error = Config::load(Path::new("/nonexistent/host.toml")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/host.toml: cannot read")
        );
    }

    #[test]
    fn plugins_run_in_processes_of_their_own_unless_configured_otherwise() {
        let config = parse("").unwrap();
        assert_eq!(config.plugins.isolation, Isolation::Process);
        assert_eq!(config.plugins.step_limit, Duration::from_secs(30));
        assert_eq!(config.plugins.memory_limit_mb, 0);
        assert_eq!(config.plugins.cpu_time_limit, None);

        let config = parse(
            "[plugins]\nisolation = \"in-process\"\nstep_limit = \"2s\"\nmemory_limit_mb = 256\ncpu_time_limit = \"1h\"\n[plugins.overrides.orders]\nisolation = \"process\"\nmemory_limit_mb = 512\n",
        )
        .unwrap();
        assert_eq!(config.plugins.isolation, Isolation::InProcess);
        assert_eq!(config.plugins.step_limit, Duration::from_secs(2));
        assert_eq!(config.plugins.memory_limit_mb, 256);
        assert_eq!(
            config.plugins.cpu_time_limit,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            config.plugins.overrides["orders"],
            PluginOverride {
                isolation: Some(Isolation::Process),
                memory_limit_mb: Some(512),
            }
        );
    }

    #[test]
    fn a_bad_isolation_setting_is_named() {
        let error = parse("[plugins]\nisolation = \"thread\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("isolation"), "{error}");
        assert!(error.contains("in-process"), "{error}");
        let error = parse("[plugins]\nstep_limit = \"0s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("step_limit") && error.contains("more than zero"),
            "{error}"
        );
        let error = parse("[plugins.overrides.orders]\nisolate = \"process\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("isolate"), "{error}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(259_200)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
    }

    #[test]
    fn relative_paths_resolve_against_a_bare_file_name() {
        let config = Config::from_str_with_origin("", Path::new("host.toml")).unwrap();
        assert_eq!(config.plugins.dir, PathBuf::from("./plugins"));
    }

    #[test]
    fn a_remote_hosts_crash_journal_is_named_after_its_task_hub_and_zero_turns_it_off() {
        let config =
            parse("[backend]\nendpoint = \"http://dts:4001\"\ntaskhub = \"a/b:c\"\n").unwrap();
        assert_eq!(
            config.crash_journal(),
            Some(PathBuf::from("/etc/dt/durabletask-crashes.a_b_c"))
        );
        let config = parse("[worker]\nmax_crashes = 0\ncrash_journal = \"x\"\n").unwrap();
        assert_eq!(config.crash_journal(), None);
    }
}
