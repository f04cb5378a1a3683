//! `durabletask-host`: the binary. A thin shell over the library: parse the command line,
//! then either run the worker (`--config host.toml`, or `run --config host.toml`) or the
//! command-line client (`client ...`).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use durabletask_client::cli::{self as client_cli, ClientArgs};
use durabletask_host::config::connection::load_client_defaults;
use durabletask_host::config::{BackendMode, Config};
use durabletask_host::plugins::catalog::Catalog;
use durabletask_host::plugins::isolation::IsolationSettings;
use durabletask_host::plugins::replay_gate::{GateBackend, ReplayGate};
use durabletask_host::plugins::{CrashJournalSettings, PluginHost, PluginHostSettings};
use durabletask_host::{
    admin, dashboard, embedded, logging, runtime, signals, status, systemd, telemetry, traces,
    worker,
};
use durabletask_proto::WorkItemFilters;
use tokio::sync::watch;

const DEFAULT_CONFIG: &str = "host.toml";
/// Exit code for a configuration that cannot be used.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure while starting or running.
const EXIT_FAILURE: u8 = 1;
/// How long process exit waits for plugin code still running on blocking threads after
/// the drain gave up on it.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Parser)]
#[command(
    name = "durabletask-host",
    version,
    about = "Runs Durable Task orchestrators and activities from cdylib plugins."
)]
struct Cli {
    /// The configuration file (default: host.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the worker (what happens without a subcommand too).
    Run {
        /// The configuration file (default: host.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Start, inspect and control orchestrations, and signal and read entities, on a backend.
    Client(Box<ClientArgs>),
    /// List what the host would load from its plugins folder: each plugin's name,
    /// version, file and registrations, and the libraries it would ignore or refuse.
    /// Exits 1 if a library would be refused.
    Plugins {
        /// The configuration file (default: host.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration without starting: the file (syntax, values, contradictions),
    /// the files it names (tokens, certificates), and the plugins folder (what would be
    /// loaded or refused). Exits 0 if all is well, 2 if the configuration cannot be used,
    /// 1 if it can but a plugin library would be refused or a named file is missing.
    Validate {
        /// The configuration file (default: host.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Replay histories saved with `client history ID > FILE` against a plugin build
    /// before deploying it: for each, whether the build makes the calls the history
    /// recorded (ok), makes another call (non-deterministic, naming the first mismatch)
    /// or fails the orchestration where the history did not. Exits 0 if every history
    /// replays, 1 if one would fail, 2 if a history or the build cannot be read.
    ReplayCheck {
        /// The plugin library to check (a cdylib built with durabletask-sdk).
        #[arg(long, value_name = "FILE")]
        plugin: PathBuf,
        /// A configuration file whose [plugins] isolation and limits apply (default:
        /// host.toml if there is one, else the defaults: a child process).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// The histories, each a file holding what `client history` printed.
        #[arg(required = true, value_name = "HISTORY")]
        histories: Vec<PathBuf>,
    },
    /// Serve the embedded backend only: no plugins and no worker (for a cluster whose
    /// workers run elsewhere, or a backend node of a PostgreSQL task hub). The admin
    /// listener, signals and systemd work as for `run`; `/readyz` says whether the backend
    /// serves.
    Serve {
        /// The configuration file (default: host.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Create or upgrade the schema of a PostgreSQL `[embedded] database` and exit (hosts
    /// also do it when they start; this is for operators who prefer to run it once).
    /// Exits 0 when the schema is up to date, 1 if it cannot be, 2 if the configuration
    /// cannot be used.
    Migrate {
        /// The configuration file (default: host.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Start something new from a template.
    #[command(subcommand)]
    New(NewCommand),
    /// A plugin's child process under process isolation: started by the host, never by
    /// hand. It serves the host's calls on its standard input, a socket.
    #[command(hide = true)]
    PluginChild {
        /// The host's private copy of the library.
        #[arg(long, value_name = "FILE")]
        library: PathBuf,
        /// The most verbose log level the host prints (the ABI's number).
        #[arg(long, default_value_t = 4)]
        max_level: u8,
        /// RLIMIT_DATA in bytes.
        #[arg(long)]
        memory_limit_bytes: Option<u64>,
        /// RLIMIT_CPU in seconds.
        #[arg(long)]
        cpu_limit_seconds: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum NewCommand {
    /// A plugin crate that builds and whose tests pass at once: an orchestrator, an
    /// activity and an entity, tests with the SDK's test kit, and a README with the
    /// build-and-deploy steps.
    Plugin {
        /// The plugin's name: lowercase letters, digits, '-' and '_' (also the crate's).
        name: String,
        /// Where to write it (must not exist, or be empty). Default: ./NAME.
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// The durabletask-sdk source to depend on by path. Default: the SDK this binary
        /// was built from, if its source is still there, else the published SDK of this
        /// version.
        #[arg(long, value_name = "DIR")]
        sdk_path: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A plugin's child process runs no async runtime of the host's.
    if let Some(Command::PluginChild {
        library,
        max_level,
        memory_limit_bytes,
        cpu_limit_seconds,
    }) = &cli.command
    {
        return durabletask_host::plugins::isolation::run_child(
            &durabletask_host::plugins::isolation::ChildArgs {
                library: library.clone(),
                max_level: *max_level,
                memory_limit_bytes: *memory_limit_bytes,
                cpu_limit_seconds: *cpu_limit_seconds,
            },
        );
    }
    match cli.command {
        Some(Command::Client(args)) => {
            let runtime = match durabletask_host::runtime::for_client() {
                Ok(runtime) => runtime,
                Err(error) => return no_runtime(&error),
            };
            let code = runtime.block_on(client_cli::run(*args, load_client_defaults));
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
            ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILURE))
        }
        Some(Command::Run { config }) => run_host(config.or(cli.config), HostRole::Worker),
        Some(Command::Serve { config }) => run_host(config.or(cli.config), HostRole::BackendOnly),
        Some(Command::Plugins { config, json }) => list_plugins(config.or(cli.config), json),
        Some(Command::Validate { config }) => validate(config.or(cli.config)),
        Some(Command::Migrate { config }) => migrate(config.or(cli.config)),
        Some(Command::New(NewCommand::Plugin {
            name,
            path,
            sdk_path,
        })) => new_plugin(&name, path, sdk_path),
        Some(Command::ReplayCheck {
            plugin,
            config,
            json,
            histories,
        }) => replay_check(&plugin, config.or(cli.config), json, &histories),
        None => run_host(cli.config, HostRole::Worker),
        Some(Command::PluginChild { .. }) => ExitCode::from(EXIT_FAILURE),
    }
}

fn no_runtime(error: &std::io::Error) -> ExitCode {
    client_cli::print_stderr(&format!("error: cannot start the async runtime: {error}"));
    ExitCode::from(EXIT_FAILURE)
}

/// The configuration (default: `host.toml`) and its path; an unusable one is reported on
/// stderr and becomes the exit code.
fn load_config(config_path: Option<PathBuf>) -> Result<(Config, PathBuf), ExitCode> {
    let config_path = config_path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match Config::load(&config_path) {
        Ok(config) => Ok((config, config_path)),
        Err(error) => {
            client_cli::print_stderr(&format!("error: {error}"));
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// `plugins`: loads the plugins folder the way the worker would and reports on it.
fn list_plugins(config_path: Option<PathBuf>, json: bool) -> ExitCode {
    let config = match load_config(config_path) {
        Ok((config, _)) => config,
        Err(code) => return code,
    };
    let isolation = match IsolationSettings::for_this_binary(&config.plugins) {
        Ok(isolation) => isolation,
        Err(error) => {
            client_cli::print_stderr(&format!(
                "error: cannot find the host's own binary: {error}"
            ));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let build_memory = config.build_memory();
    let inventory = match durabletask_host::plugins::inventory(
        &config.plugins.dir,
        config.plugins.strict_permissions,
        isolation,
        Some(&build_memory),
    ) {
        Ok(inventory) => inventory,
        Err(error) => {
            client_cli::print_stderr(&format!("error: {error}"));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let printed = if json {
        client_cli::print_stdout(&format!("{}\n", inventory.to_json()))
    } else {
        client_cli::print_stdout(&inventory.to_text())
    };
    if let Err(error) = printed {
        let code = client_cli::write_failure_code(&error, i32::from(EXIT_FAILURE));
        return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILURE));
    }
    if inventory.all_loaded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `migrate`: brings a PostgreSQL database's schema up to date.
fn migrate(config_path: Option<PathBuf>) -> ExitCode {
    use durabletask_host::config::DatabaseLocation;
    let config = match load_config(config_path) {
        Ok((config, _)) => config,
        Err(code) => return code,
    };
    let url = match &config.embedded.database {
        DatabaseLocation::Postgres(url) => url.clone(),
        DatabaseLocation::Sqlite(path) => {
            let _ = client_cli::print_stdout(&format!(
                "nothing to migrate: {} is a SQLite file, whose schema the host creates and upgrades itself\n",
                path.display()
            ));
            return ExitCode::SUCCESS;
        }
    };
    let runtime = match durabletask_host::runtime::for_client() {
        Ok(runtime) => runtime,
        Err(error) => return no_runtime(&error),
    };
    let connector = match durabletask_backend::pg::Connector::new(
        &url,
        config.embedded.database_ca_file.as_deref(),
        "durabletask-migrate",
    ) {
        Ok(connector) => connector,
        Err(error) => {
            client_cli::print_stderr(&format!("error: {error}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let migrated = runtime.block_on(durabletask_backend::pg::migrate_database(&connector));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    match migrated {
        Ok(applied) if applied.is_empty() => {
            let _ = client_cli::print_stdout(&format!(
                "the schema of {} is up to date\n",
                config.embedded.database
            ));
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            let versions: Vec<String> = applied.iter().map(i32::to_string).collect();
            let _ = client_cli::print_stdout(&format!(
                "applied migrations {} to {}\n",
                versions.join(", "),
                config.embedded.database
            ));
            ExitCode::SUCCESS
        }
        Err(error) => {
            client_cli::print_stderr(&format!("error: {}: {error}", config.embedded.database));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `new plugin`: writes a plugin crate from the template.
fn new_plugin(name: &str, path: Option<PathBuf>, sdk_path: Option<PathBuf>) -> ExitCode {
    use durabletask_host::template::{self, SdkSource};
    let dir = path.unwrap_or_else(|| PathBuf::from(name));
    let sdk = sdk_path.map_or_else(SdkSource::this_build, SdkSource::Path);
    match template::write_plugin(name, &dir, &sdk) {
        Ok(_) => {
            let text = format!(
                "wrote the plugin crate {name} in {}\nnext: cd {} && cargo test && cargo build --release (see its README.md)\n",
                dir.display(),
                dir.display()
            );
            let _ = client_cli::print_stdout(&text);
            ExitCode::SUCCESS
        }
        Err(error) => {
            client_cli::print_stderr(&format!("error: {error}"));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `replay-check`: replays saved histories against a plugin build.
fn replay_check(
    plugin: &std::path::Path,
    config_path: Option<PathBuf>,
    json: bool,
    histories: &[PathBuf],
) -> ExitCode {
    // The settings of a config file when one is named or present ([plugins] for where
    // the build runs, the worker settings a step carries), else the defaults (a plugin
    // runs in a child process).
    let config = match config_path {
        Some(path) => match load_config(Some(path)) {
            Ok((config, _)) => Some(config),
            Err(code) => return code,
        },
        None if std::path::Path::new(DEFAULT_CONFIG).exists() => match load_config(None) {
            Ok((config, _)) => Some(config),
            Err(code) => return code,
        },
        None => None,
    };
    let plugins = config
        .as_ref()
        .map(|config| config.plugins.clone())
        .unwrap_or_default();
    let properties = config
        .as_ref()
        .map(|config| {
            durabletask_host::plugins::worker_properties(
                config.worker.maximum_timer_interval,
                config.versioning.as_ref(),
            )
        })
        .unwrap_or_default();
    let isolation = match IsolationSettings::for_this_binary(&plugins) {
        Ok(isolation) => isolation,
        Err(error) => {
            client_cli::print_stderr(&format!(
                "error: cannot find the host's own binary: {error}"
            ));
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let runtime = match durabletask_host::runtime::for_client() {
        Ok(runtime) => runtime,
        Err(error) => return no_runtime(&error),
    };
    let checked = runtime.block_on(durabletask_host::plugins::replay_check(
        plugin,
        histories,
        isolation,
        &properties,
    ));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    let check = match checked {
        Ok(check) => check,
        Err(error) => {
            client_cli::print_stderr(&format!("error: {error}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let printed = if json {
        client_cli::print_stdout(&format!("{}\n", check.to_json()))
    } else {
        client_cli::print_stdout(&check.to_text())
    };
    if let Err(error) = printed {
        let code = client_cli::write_failure_code(&error, i32::from(EXIT_FAILURE));
        return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILURE));
    }
    if check.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `validate`: what `run` would refuse or warn about, without starting anything.
fn validate(config_path: Option<PathBuf>) -> ExitCode {
    let (config, path) = match load_config(config_path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut problems = Vec::new();
    for (key, file) in named_files(&config) {
        if let Err(error) = std::fs::File::open(file) {
            problems.push(format!(
                "{key} = {}: cannot be read: {error}",
                file.display()
            ));
        }
    }
    let dir = &config.plugins.dir;
    let mut lines = vec![format!("configuration {}: ok", path.display())];
    if config.backend.mode() == BackendMode::Embedded
        && let durabletask_host::config::DatabaseLocation::Postgres(url) = &config.embedded.database
    {
        match check_postgres(url, config.embedded.database_ca_file.as_deref()) {
            Ok(line) => lines.push(line),
            Err(problem) => problems.push(problem),
        }
    }
    if dir.exists() {
        match IsolationSettings::for_this_binary(&config.plugins).and_then(|isolation| {
            let build_memory = config.build_memory();
            durabletask_host::plugins::inventory(
                dir,
                config.plugins.strict_permissions,
                isolation,
                Some(&build_memory),
            )
            .map_err(std::io::Error::other)
        }) {
            Ok(inventory) => {
                lines.push(inventory.to_text().trim_end().to_owned());
                if !inventory.all_loaded() {
                    problems.push(format!(
                        "a library in the plugins folder {} would be refused (see above)",
                        dir.display()
                    ));
                }
            }
            Err(error) => problems.push(format!("the plugins folder {}: {error}", dir.display())),
        }
    } else {
        lines.push(format!(
            "the plugins folder {} does not exist: it would be created at start, and the host would serve nothing until a plugin is put in it",
            dir.display()
        ));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let _ = client_cli::print_stdout(&text);
    if problems.is_empty() {
        let _ = client_cli::print_stdout("validation passed\n");
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        client_cli::print_stderr(&format!("error: {problem}"));
    }
    ExitCode::from(EXIT_FAILURE)
}

/// `validate` on a PostgreSQL database: connects (as the hosts would, TLS included) and
/// reads the schema's version without changing anything.
fn check_postgres(url: &str, ca_file: Option<&std::path::Path>) -> Result<String, String> {
    let shown = durabletask_host::config::DatabaseLocation::Postgres(url.to_owned()).to_string();
    let connector = durabletask_backend::pg::Connector::new(url, ca_file, "durabletask-validate")
        .map_err(|error| format!("[embedded] database {shown}: {error}"))?;
    let runtime = durabletask_host::runtime::for_client()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let checked = runtime.block_on(async {
        let checking = async {
            let (client, _connection) = connector.connect().await?;
            durabletask_backend::pg::migrations::applied_version(&client).await
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), checking).await
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    let latest = durabletask_backend::pg::migrations::latest_version();
    match checked {
        Err(_) => Err(format!(
            "[embedded] database {shown}: no answer within 10 s"
        )),
        Ok(Err(error)) => Err(format!(
            "[embedded] database {shown}: {}",
            durabletask_backend::pg::describe(&error)
        )),
        Ok(Ok(None)) => Ok(format!(
            "database {shown}: reachable; no durabletask schema yet (the first host creates it, or `migrate`)"
        )),
        Ok(Ok(Some(version))) if version > latest => Err(format!(
            "[embedded] database {shown}: its schema is at version {version}, newer than this build knows ({latest}): upgrade the host"
        )),
        Ok(Ok(Some(version))) if version < latest => Ok(format!(
            "database {shown}: reachable; schema version {version}, upgraded to {latest} at the next start (or `migrate`)"
        )),
        Ok(Ok(Some(version))) => Ok(format!(
            "database {shown}: reachable; schema version {version}, up to date"
        )),
    }
}

/// The files a configuration names that must be readable at start, by their setting.
fn named_files(config: &Config) -> Vec<(&'static str, &std::path::Path)> {
    let named: Vec<(&'static str, &Option<PathBuf>)> = match config.backend.mode() {
        BackendMode::Embedded => vec![
            ("[embedded] token_file", &config.embedded.token_file),
            ("[embedded] tls_cert_file", &config.embedded.tls_cert_file),
            ("[embedded] tls_key_file", &config.embedded.tls_key_file),
            ("[embedded] peer_ca_file", &config.embedded.peer_ca_file),
            (
                "[embedded] database_ca_file",
                &config.embedded.database_ca_file,
            ),
        ],
        BackendMode::Remote => vec![
            ("[backend] token_file", &config.backend.token_file),
            ("[backend] ca_file", &config.backend.ca_file),
            ("[backend] tls_cert_file", &config.backend.tls_cert_file),
            ("[backend] tls_key_file", &config.backend.tls_key_file),
        ],
    };
    let admin = config
        .admin
        .enabled
        .then_some(("[admin] token_file", &config.admin.token_file));
    named
        .into_iter()
        .chain(admin)
        .filter_map(|(key, file)| file.as_deref().map(|file| (key, file)))
        .collect()
}

/// What a host process does: `run` (the default) or `serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HostRole {
    /// Its plugins' worker, and the embedded backend if configured.
    Worker,
    /// The embedded backend only.
    BackendOnly,
}

/// The host: load the config, start logging, the backend and (for `run`) the plugins,
/// serve until a signal.
fn run_host(config_path: Option<PathBuf>, role: HostRole) -> ExitCode {
    make_created_files_private();
    let (config, config_path) = match load_config(config_path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if role == HostRole::BackendOnly && config.backend.mode() != BackendMode::Embedded {
        client_cli::print_stderr(&format!(
            "error: {}: `serve` runs the embedded backend, but [backend] mode is \"remote\": set mode = \"embedded\" (and its [embedded] section), or use `run`",
            config_path.display()
        ));
        return ExitCode::from(EXIT_CONFIG);
    }
    // The embedded backend's engine is called in process; a remote one over a socket.
    let parking = match config.backend.mode() {
        BackendMode::Embedded => runtime::Parking::Immediate,
        BackendMode::Remote => runtime::Parking::CoalesceWhenBusy,
    };
    let runtime = match runtime::for_daemon(parking) {
        Ok(runtime) => runtime,
        Err(error) => return no_runtime(&error),
    };
    let traces = match traces::Traces::start(&config.tracing) {
        Ok(traces) => traces,
        Err(error) => {
            client_cli::print_stderr(&format!("error: {}: {error}", config_path.display()));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Kept until the end of this function so the log file is flushed on exit.
    let log_guard = match logging::init(&config.logging) {
        Ok(guard) => guard,
        Err(error) => {
            client_cli::print_stderr(&format!(
                "error: {}: [logging]: {error}",
                config_path.display()
            ));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let reload = Reload {
        config_path,
        level: log_guard.level_handle(),
    };
    let served = match role {
        HostRole::Worker => runtime.block_on(serve(&config, reload)),
        HostRole::BackendOnly => runtime.block_on(serve_backend_only(&config, reload)),
    };
    let code = match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::from(EXIT_FAILURE)
        }
    };
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    if let Some(traces) = traces {
        traces.shutdown();
    }
    code
}

/// Adds group and other to the process umask, before the daemon creates any file, so
/// that the log files are created 0600 and the folders it creates (the log folder, the
/// database's folder) 0700.
///
/// Why the umask and not a mode per file: tracing-appender opens each log file itself,
/// the first at start and every later one at rotation time on its writer thread, with no
/// way to pass a mode; only the umask governs those. What else the host creates is
/// already private by an explicit mode (the database, its WAL and lock: 0600; the
/// plugins' private copies: 0600 in a 0700 folder), so for the host's own files this
/// changes nothing else. It does apply to files plugin code creates: those are private to
/// the host's user too unless the plugin sets their mode afterwards (documented in the
/// README). Bits the operator's umask already masks stay masked. The client and
/// `plugins` create no files and keep the caller's umask.
fn make_created_files_private() {
    use rustix::fs::Mode;
    let inherited = rustix::process::umask(Mode::from_raw_mode(0o077));
    rustix::process::umask(inherited | Mode::from_raw_mode(0o077));
}

/// What SIGHUP needs besides the plugins: where the config file is, and the logger's level.
struct Reload {
    config_path: PathBuf,
    level: logging::LevelHandle,
}

async fn serve(config: &Config, reload: Reload) -> Result<(), String> {
    // Handlers go in before anything slow, so an early signal is not fatal.
    let (shutdown, control_signals) =
        signals::install().map_err(|error| format!("cannot install signal handlers: {error}"))?;
    // The recorder goes in before the backend and the plugins start, so what they record
    // from the start (the first plugin loads, the first commits) is kept, and each plugin
    // generation registers its work items' metrics with it as it is put in service.
    let recorder = match config.admin.enabled {
        true => Some(telemetry::Recorder::install()?),
        false => None,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let embedded = match config.backend.mode() {
        BackendMode::Embedded => {
            let Some(embedded) = start_embedded(config, shutdown.as_mut()).await? else {
                return Ok(());
            };
            Some(embedded)
        }
        BackendMode::Remote => None,
    };
    let plugins = start_plugins(config)?;
    plugins.enable_replay_gate(ReplayGate::new(
        config.plugins.verify_replay,
        match &embedded {
            Some(embedded) => GateBackend::InProcess(embedded.in_process_client()),
            None => GateBackend::Remote(Box::new(config.backend.clone())),
        },
        config.versioning.clone(),
    ));
    watch_plugins(config, &plugins)?;
    let reporting = worker::Reporting::default();
    let admin = match start_admin(
        config,
        recorder,
        Some(&plugins),
        &reporting,
        embedded.as_ref(),
    )
    .await
    {
        Ok(admin) => admin,
        Err(error) => {
            plugins.shutdown();
            if let Some(embedded) = embedded {
                embedded.shutdown().await;
            }
            return Err(error);
        }
    };
    let status = {
        let plugins = Arc::clone(&plugins);
        let in_flight = Arc::clone(&reporting.in_flight);
        move || status::log(&plugins, &in_flight)
    };
    control_signals.spawn(
        signals::Reloader {
            config_path: reload.config_path,
            level: reload.level,
            current_level: config.logging.level.clone(),
            plugins: Some(Arc::clone(&plugins)),
        },
        status,
    );
    systemd::follow(reporting.stream.subscribe());
    systemd::watchdog();
    systemd::ready(&format!(
        "started: {} plugin generation(s) in service",
        plugins.catalog().generations().len()
    ));
    let executor: Arc<dyn worker::WorkItemExecutor> = plugins.clone();
    let filters = follow_work_item_filters(config, &plugins);
    let result = worker::run(
        &config.worker,
        &config.backend,
        embedded.as_ref().map(embedded::Embedded::in_process_client),
        executor,
        filters,
        reporting,
        async {
            shutdown.await;
            systemd::stopping();
        },
    )
    .await;
    if let Some(admin) = admin {
        admin.stop().await;
    }
    plugins.shutdown();
    // After the worker's drain: its last completions went to this backend.
    if let Some(embedded) = embedded {
        embedded.shutdown().await;
    }
    result.map_err(|error| error.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the embedded backend, unless a stop signal comes first (`None`): on
/// PostgreSQL the start waits until this host knows where the engine runs, which can
/// take a lease's time or, with no host able to run it, ever.
async fn start_embedded(
    config: &Config,
    shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<Option<embedded::Embedded>, String> {
    tokio::select! {
        started = embedded::start(&config.embedded, &config.backend.taskhub) => started.map(Some),
        () = shutdown => {
            tracing::info!("stopped before the embedded backend served");
            Ok(None)
        }
    }
}

/// `durabletask-host serve`: the embedded backend, the admin listener, signals and
/// systemd; no plugins, no worker.
async fn serve_backend_only(config: &Config, reload: Reload) -> Result<(), String> {
    let (shutdown, control_signals) =
        signals::install().map_err(|error| format!("cannot install signal handlers: {error}"))?;
    let recorder = match config.admin.enabled {
        true => Some(telemetry::Recorder::install()?),
        false => None,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let Some(embedded) = start_embedded(config, shutdown.as_mut()).await? else {
        return Ok(());
    };
    let reporting = worker::Reporting::default();
    let admin = match start_admin(config, recorder, None, &reporting, Some(&embedded)).await {
        Ok(admin) => admin,
        Err(error) => {
            embedded.shutdown().await;
            return Err(error);
        }
    };
    let client = embedded.in_process_client();
    control_signals.spawn(
        signals::Reloader {
            config_path: reload.config_path,
            level: reload.level,
            current_level: config.logging.level.clone(),
            plugins: None,
        },
        move || tracing::info!(role = %client.role(), "status: serving the embedded backend only"),
    );
    systemd::watchdog();
    systemd::ready("serving the embedded backend (no plugins)");
    tracing::info!("serving the embedded backend only (no plugins, no worker)");
    shutdown.await;
    systemd::stopping();
    if let Some(admin) = admin {
        admin.stop().await;
    }
    embedded.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The admin listener, unless `[admin] enabled = false` (then there is no `recorder`
/// either).
async fn start_admin(
    config: &Config,
    recorder: Option<telemetry::Recorder>,
    plugins: Option<&Arc<PluginHost>>,
    reporting: &worker::Reporting,
    embedded: Option<&embedded::Embedded>,
) -> Result<Option<admin::AdminServer>, String> {
    let Some(recorder) = recorder else {
        tracing::info!(
            "the admin listener is off ([admin] enabled = false): no probes, metrics or status page"
        );
        return Ok(None);
    };
    let backend = match embedded {
        Some(_) => format!("embedded, task hub {}", config.backend.taskhub),
        None => format!(
            "{}, task hub {}",
            config.backend.endpoint, config.backend.taskhub
        ),
    };
    let in_process = embedded.map(embedded::Embedded::in_process_client);
    let dashboard = if config.admin.dashboard {
        Some(dashboard::Dashboard::from_config(
            config,
            plugins.cloned(),
            embedded.map(|embedded| (embedded.in_process_client(), embedded.local_addr())),
            backend.clone(),
        )?)
    } else {
        None
    };
    let sources = admin::Sources {
        recorder,
        plugins: plugins.cloned(),
        reporting: reporting.clone(),
        embedded: in_process,
        backend,
        dashboard,
    };
    admin::AdminServer::start(&config.admin, sources)
        .await
        .map(Some)
}

fn start_plugins(config: &Config) -> Result<Arc<PluginHost>, String> {
    create_missing_plugins_folder(&config.plugins.dir)?;
    let settings = PluginHostSettings {
        dir: config.plugins.dir.clone(),
        strict_permissions: config.plugins.strict_permissions,
        maximum_timer_interval: config.worker.maximum_timer_interval,
        versioning: config.versioning.clone(),
        crash_journal: config.crash_journal().map(|path| CrashJournalSettings {
            path,
            max_crashes: config.worker.max_crashes,
            remote: config.backend.mode() == BackendMode::Remote,
        }),
        isolation: IsolationSettings::for_this_binary(&config.plugins).map_err(|error| {
            format!("cannot start the plugins: cannot find the host's own binary: {error}")
        })?,
        build_memory: Some(config.build_memory()),
    };
    let plugins = PluginHost::start(&settings)
        .map_err(|error| format!("cannot start the plugins: {error}"))?;
    Ok(plugins)
}

/// Rescans the plugins folder as it changes, if `[plugins] watch`: after the replay gate
/// is in place, so no library deployed meanwhile goes in service unchecked.
fn watch_plugins(config: &Config, plugins: &Arc<PluginHost>) -> Result<(), String> {
    if config.plugins.watch {
        plugins
            .watch()
            .map_err(|error| format!("cannot start the plugins: {error}"))?;
        tracing::info!(dir = %config.plugins.dir.display(), "watching the plugins folder: new versions are put in service without a restart");
    }
    Ok(())
}

/// A plugins folder that does not exist is created (0700 under the daemon's umask: only
/// the host's user may put code in it), so that a first start serves and plugins can be
/// dropped in; a WARN line says so.
fn create_missing_plugins_folder(dir: &std::path::Path) -> Result<(), String> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|error| {
        format!(
            "cannot start the plugins: the plugins folder {} does not exist and cannot be created: {error}",
            dir.display()
        )
    })?;
    tracing::warn!(
        dir = %dir.display(),
        "the plugins folder did not exist and was created; put plugin libraries in it (the host serves nothing until then)"
    );
    Ok(())
}

/// The work-item filters to send (`[worker] work_item_filters`; `None` when off), built
/// from what the generations in service register and renewed whenever they change.
fn follow_work_item_filters(
    config: &Config,
    plugins: &PluginHost,
) -> watch::Receiver<Option<WorkItemFilters>> {
    // Subscribed before the first read, so a rescan in between is not missed.
    let mut catalogs = plugins.subscribe();
    let current = Arc::clone(&catalogs.borrow_and_update());
    let (sender, receiver) = watch::channel(work_item_filters(config, &current));
    if config.worker.work_item_filters {
        let config = config.clone();
        tokio::spawn(async move {
            while catalogs.changed().await.is_ok() {
                let catalog = Arc::clone(&catalogs.borrow_and_update());
                let filters = work_item_filters(&config, &catalog);
                sender.send_if_modified(|current| {
                    let changed = *current != filters;
                    *current = filters;
                    changed
                });
            }
        });
    }
    receiver
}

fn work_item_filters(config: &Config, catalog: &Catalog) -> Option<WorkItemFilters> {
    if !config.worker.work_item_filters {
        return None;
    }
    let served = catalog.registrations();
    let filters = worker::filters::generate(
        served.orchestrators,
        served.activities,
        served.entities,
        config.versioning.as_ref(),
    );
    tracing::info!(
        "work-item filters on: the backend sends only work for {}",
        worker::filters::describe(&filters)
    );
    Some(filters)
}
