//! `durabletask-host`: the binary. A thin shell over the library: parse the command line,
//! then either run the worker (`--config host.toml`, or `run --config host.toml`) or the
//! command-line client (`client ...`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{Signal, SignalKind, signal};

use durabletask_host::client::cli::{self as client_cli, ClientArgs};
use durabletask_host::config::{BackendMode, Config};
use durabletask_host::plugins::catalog::Catalog;
use durabletask_host::plugins::{PluginHost, PluginHostSettings};
use durabletask_host::{embedded, logging, worker};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let build_runtime = match cli.command {
        Some(Command::Client(_)) => durabletask_host::runtime::for_client,
        _ => durabletask_host::runtime::for_daemon,
    };
    let runtime = match build_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let code = match cli.command {
        Some(Command::Client(args)) => {
            let code = runtime.block_on(client_cli::run(*args));
            ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILURE))
        }
        Some(Command::Run { config }) => run_host(&runtime, config.or(cli.config)),
        Some(Command::Plugins { config, json }) => list_plugins(config.or(cli.config), json),
        None => run_host(&runtime, cli.config),
    };
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    code
}

/// The configuration (default: `host.toml`) and its path; an unusable one is reported on
/// stderr and becomes the exit code.
fn load_config(config_path: Option<PathBuf>) -> Result<(Config, PathBuf), ExitCode> {
    let config_path = config_path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match Config::load(&config_path) {
        Ok(config) => Ok((config, config_path)),
        Err(error) => {
            eprintln!("error: {error}");
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
    let inventory = match durabletask_host::plugins::inventory(
        &config.plugins.dir,
        config.plugins.strict_permissions,
    ) {
        Ok(inventory) => inventory,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let printed = if json {
        client_cli::print_stdout(&format!("{}\n", inventory.to_json()))
    } else {
        client_cli::print_stdout(&inventory.to_text())
    };
    if printed.is_err() {
        return ExitCode::from(client_cli::EXIT_BROKEN_PIPE as u8);
    }
    if inventory.all_loaded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// The worker: load the config, start logging and the plugins, serve until a signal.
fn run_host(runtime: &tokio::runtime::Runtime, config_path: Option<PathBuf>) -> ExitCode {
    let (config, config_path) = match load_config(config_path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // Kept until the end of this function so the log file is flushed on exit.
    let _logging = match logging::init(&config.logging) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {}: [logging]: {error}", config_path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match runtime.block_on(serve(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn serve(config: &Config) -> Result<(), String> {
    // Handlers go in before anything slow, so an early SIGTERM is not fatal.
    let shutdown =
        shutdown_on_signal().map_err(|error| format!("cannot install signal handlers: {error}"))?;
    let embedded = match config.backend.mode() {
        BackendMode::Embedded => Some(embedded::start(&config.embedded).await?),
        BackendMode::Remote => None,
    };
    let backend = match &embedded {
        Some(embedded) => embedded::worker_settings(embedded, &config.backend),
        None => config.backend.clone(),
    };
    let plugins = start_plugins(config)?;
    let executor: Arc<dyn worker::WorkItemExecutor> = plugins.clone();
    let filters = follow_work_item_filters(config, &plugins);
    let result = worker::run(&config.worker, &backend, executor, filters, shutdown).await;
    plugins.shutdown();
    // After the worker's drain: its last completions went to this backend.
    if let Some(embedded) = embedded {
        embedded.shutdown().await;
    }
    result.map_err(|error| error.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

fn start_plugins(config: &Config) -> Result<Arc<PluginHost>, String> {
    let settings = PluginHostSettings {
        dir: config.plugins.dir.clone(),
        strict_permissions: config.plugins.strict_permissions,
        maximum_timer_interval: config.worker.maximum_timer_interval,
        versioning: config.versioning.clone(),
    };
    let plugins = PluginHost::start(&settings)
        .map_err(|error| format!("cannot start the plugins: {error}"))?;
    if config.plugins.watch {
        plugins
            .watch()
            .map_err(|error| format!("cannot start the plugins: {error}"))?;
        tracing::info!(dir = %config.plugins.dir.display(), "watching the plugins folder: new versions are put in service without a restart");
    }
    Ok(plugins)
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

/// Resolves on the first SIGINT or SIGTERM. A second one exits at once, for an operator
/// who does not want to wait for the drain.
fn shutdown_on_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (first_signal, shutdown) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let name = next_signal(&mut terminate, &mut interrupt).await;
        tracing::info!(
            signal = name,
            "shutting down; send the signal again to exit at once"
        );
        let _ = first_signal.send(());
        let name = next_signal(&mut terminate, &mut interrupt).await;
        tracing::warn!(
            signal = name,
            "second signal: exiting without finishing in-flight work"
        );
        std::process::exit(130);
    });
    Ok(async move {
        // An error means the signal task is gone; stopping is the safe reading of that.
        let _ = shutdown.await;
    })
}

async fn next_signal(terminate: &mut Signal, interrupt: &mut Signal) -> &'static str {
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}
