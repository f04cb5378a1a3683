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
use durabletask_host::config::Config;
use durabletask_host::plugins::PluginHost;
use durabletask_host::{logging, worker};
use durabletask_proto::WorkItemFilters;

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
    Client(ClientArgs),
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
            let code = runtime.block_on(client_cli::run(args));
            ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILURE))
        }
        Some(Command::Run { config }) => run_host(&runtime, config.or(cli.config)),
        None => run_host(&runtime, cli.config),
    };
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    code
}

/// The worker: load the config, start logging and the plugins, serve until a signal.
fn run_host(runtime: &tokio::runtime::Runtime, config_path: Option<PathBuf>) -> ExitCode {
    let config_path = config_path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
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
    let plugins = start_plugins(config)?;
    let executor: Arc<dyn worker::WorkItemExecutor> = plugins.clone();
    // Computed once, from the plugins loaded at start. Issue 5 (hot swap) keeps the
    // sender and sends new filters whenever the set of loaded plugins changes.
    let (_filters_sender, filters) =
        tokio::sync::watch::channel(work_item_filters(config, &plugins));
    let result = worker::run(&config.worker, &config.backend, executor, filters, shutdown).await;
    plugins.shutdown();
    result.map_err(|error| error.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

fn start_plugins(config: &Config) -> Result<Arc<PluginHost>, String> {
    PluginHost::start(&config.plugins.dir, config.worker.maximum_timer_interval)
        .map_err(|error| format!("cannot start the plugins: {error}"))
}

/// The work-item filters to send (`[worker] work_item_filters`), built from what the
/// loaded plugins register; `None` when they are off.
fn work_item_filters(config: &Config, plugins: &PluginHost) -> Option<WorkItemFilters> {
    if !config.worker.work_item_filters {
        return None;
    }
    let loaded = plugins.plugins();
    let filters = worker::filters::generate(
        loaded
            .iter()
            .flat_map(|plugin| plugin.orchestrators.iter().map(String::as_str)),
        loaded
            .iter()
            .flat_map(|plugin| plugin.activities.iter().map(String::as_str)),
        loaded
            .iter()
            .flat_map(|plugin| plugin.entities.iter().map(String::as_str)),
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
