//! Process-wide logging: text or JSON to stdout, and optionally to a rolling file.
//!
//! The file goes through tracing-appender's non-blocking writer so a slow disk never stalls
//! a work item; the returned [`LoggingGuard`] flushes it when dropped, so `main` keeps it
//! alive until the very end.
//!
//! The level (or filter) sits behind a reload layer, so SIGHUP can change it without a
//! restart ([`LevelHandle::set`]); the format and the file are fixed at start.

mod plugin_fields;

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::{LogFormat, LogRotation, LoggingSettings};

use plugin_fields::{JsonWithPluginFields, TextWithPluginFields};
pub(crate) use plugin_fields::{MAX_FIELDS as MAX_PLUGIN_FIELDS, PluginFields, truncated};

/// Keeps the log file's background writer running; drop it last.
#[must_use = "dropping the guard stops writing the log file"]
pub struct LoggingGuard {
    _file_writer: Option<WorkerGuard>,
    level: LevelHandle,
}

impl LoggingGuard {
    /// A handle that changes the level of the installed logger.
    pub fn level_handle(&self) -> LevelHandle {
        self.level.clone()
    }
}

/// Changes the level (or filter) of the logger [`init`] installed, while it runs.
#[derive(Clone)]
pub struct LevelHandle {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl std::fmt::Debug for LevelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelHandle").finish_non_exhaustive()
    }
}

impl LevelHandle {
    /// Applies `level` (a level like `debug`, or an `EnvFilter` directive such as
    /// `info,durabletask_host=debug`) from the next event on. An invalid one changes
    /// nothing.
    pub fn set(&self, level: &str) -> Result<(), LoggingError> {
        let filter = parse_filter(level)?;
        self.handle
            .reload(filter)
            .map_err(|error| LoggingError::Reload(error.to_string()))
    }
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
    #[error("cannot change the log level: {0}")]
    Reload(String),
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber described by `settings`. `settings.file` is expected to
/// be resolved already (see [`crate::config::Config::load`]).
pub fn init(settings: &LoggingSettings) -> Result<LoggingGuard, LoggingError> {
    let (filter, level) = reloadable(&settings.level)?;

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
        level,
    })
}

/// The filter every layer goes through, behind a reload layer, and the handle that
/// changes it.
fn reloadable(
    level: &str,
) -> Result<(reload::Layer<EnvFilter, Registry>, LevelHandle), LoggingError> {
    let (filter, handle) = reload::Layer::new(parse_filter(level)?);
    Ok((filter, LevelHandle { handle }))
}

fn parse_filter(level: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::builder()
        .parse(level)
        .map_err(|error| LoggingError::Filter {
            level: level.to_owned(),
            reason: error.to_string(),
        })
}

fn format_layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Both formats write the fields of plugin events as fields (see `plugin_fields`).
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer
            .fmt_fields(TextWithPluginFields::default())
            .with_ansi(ansi && stdout_is_terminal())
            .boxed(),
        LogFormat::Json => {
            let json = layer.json();
            let format = JsonWithPluginFields(tracing_subscriber::fmt::format().json());
            json.event_format(format).boxed()
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts the events that get through the filter.
    struct Count(Arc<AtomicUsize>);

    impl<S: tracing::Subscriber> Layer<S> for Count {
        fn on_event(
            &self,
            _event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_new_level_applies_to_the_next_event_and_a_bad_one_changes_nothing() {
        let seen = Arc::new(AtomicUsize::new(0));
        let (filter, level) = reloadable("info").unwrap();
        let layers: Vec<BoxedLayer> = vec![Box::new(Count(Arc::clone(&seen)))];
        let subscriber = tracing_subscriber::registry().with(layers.with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("hidden at info");
            assert_eq!(seen.load(Ordering::SeqCst), 0);

            level.set("debug").unwrap();
            tracing::debug!("shown at debug");
            assert_eq!(seen.load(Ordering::SeqCst), 1);

            let error = level.set("loud=[").unwrap_err();
            assert!(error.to_string().contains("loud=["), "{error}");
            tracing::debug!("still shown: the bad level was not applied");
            assert_eq!(seen.load(Ordering::SeqCst), 2);

            level.set("info,durabletask_host::logging=warn").unwrap();
            tracing::info!("hidden: a directive for this module");
            assert_eq!(seen.load(Ordering::SeqCst), 2);
        });
    }
}
