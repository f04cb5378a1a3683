//! Process-wide logging: text or JSON to stdout, and optionally to a rolling file.
//!
//! The file goes through tracing-appender's non-blocking writer so a slow disk never stalls
//! a work item; the returned [`LoggingGuard`] flushes it when dropped, so `main` keeps it
//! alive until the very end.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LogRotation, LoggingSettings};

/// Keeps the log file's background writer running; drop it last.
#[must_use = "dropping the guard stops writing the log file"]
pub struct LoggingGuard {
    _file_writer: Option<WorkerGuard>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log level or filter \"{level}\": {reason}")]
    Filter { level: String, reason: String },
    #[error("cannot open the log file {}: {reason}", path.display())]
    File {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("a global logger is already installed: {0}")]
    AlreadyInstalled(String),
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber described by `settings`. `settings.file` is expected to
/// be resolved already (see [`crate::config::Config::load`]).
pub fn init(settings: &LoggingSettings) -> Result<LoggingGuard, LoggingError> {
    let filter = EnvFilter::builder()
        .parse(&settings.level)
        .map_err(|error| LoggingError::Filter {
            level: settings.level.clone(),
            reason: error.to_string(),
        })?;

    let mut layers: Vec<BoxedLayer> = vec![format_layer(settings.format, std::io::stdout, true)];
    let mut file_writer = None;
    if let Some(path) = &settings.file {
        let appender = open_appender(path, settings.rotation)?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        layers.push(format_layer(settings.format, writer, false));
        file_writer = Some(guard);
    }

    tracing_subscriber::registry()
        .with(layers.with_filter(filter))
        .try_init()
        .map_err(|error| LoggingError::AlreadyInstalled(error.to_string()))?;
    Ok(LoggingGuard {
        _file_writer: file_writer,
    })
}

fn format_layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer.with_ansi(ansi && stdout_is_terminal()).boxed(),
        LogFormat::Json => layer.json().boxed(),
    }
}

fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

fn open_appender(path: &Path, rotation: LogRotation) -> Result<RollingFileAppender, LoggingError> {
    let file_error = |reason: String| LoggingError::File {
        path: path.to_owned(),
        reason,
    };
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| file_error("the path has no file name".to_owned()))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(directory).map_err(|error| file_error(error.to_string()))?;
    let rotation = match rotation {
        LogRotation::Never => Rotation::NEVER,
        LogRotation::Minutely => Rotation::MINUTELY,
        LogRotation::Hourly => Rotation::HOURLY,
        LogRotation::Daily => Rotation::DAILY,
    };
    RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix(file_name)
        .build(directory)
        .map_err(|error| file_error(error.to_string()))
}
