//! Forwards the plugin's `tracing` events and panic messages to the host's log.
//!
//! A plugin links its own copy of `tracing`: without this, its events would go nowhere
//! (the host's subscriber lives in the host's copy). Likewise its panic hook is its own.

use std::fmt::Write as _;

use abi_stable::std_types::RStr;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, filter::LevelFilter};

use crate::abi::{HostCallbacks, LogLevel, LogRecord};

/// Installs log forwarding and the panic hook. Called once, from `init`.
pub(crate) fn install(host: HostCallbacks) {
    let subscriber = tracing_subscriber::registry()
        .with(level_filter(host.max_level))
        .with(HostLogLayer { host });
    // Fails only if the plugin set a global subscriber itself; then it keeps its own.
    let _ = tracing::subscriber::set_global_default(subscriber);

    std::panic::set_hook(Box::new(move |info| {
        // Captured here, symbolised only when the failure is reported: see panic_trace.
        crate::panic_trace::record(info.location());
        let location = info
            .location()
            .map(|location| format!(" at {}:{}", location.file(), location.line()))
            .unwrap_or_default();
        let message = format!(
            "panic{location}: {}",
            crate::export::panic_message(info.payload())
        );
        send(host, LogLevel::Error, "panic", &message);
    }));
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

fn send(host: HostCallbacks, level: LogLevel, target: &str, message: &str) {
    let record = LogRecord {
        level,
        target: RStr::from_str(target),
        message: RStr::from_str(message),
    };
    (host.log)(host.plugin_id, &record);
}

struct HostLogLayer {
    host: HostCallbacks,
}

impl<S: Subscriber> Layer<S> for HostLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut text = MessageText::default();
        event.record(&mut text);
        send(
            self.host,
            to_log_level(*metadata.level()),
            metadata.target(),
            &text.finish(),
        );
    }
}

fn to_log_level(level: Level) -> LogLevel {
    match level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warn,
        Level::ERROR => LogLevel::Error,
    }
}

/// The event's message followed by its other fields as `key=value`.
#[derive(Default)]
struct MessageText {
    message: String,
    fields: String,
}

impl MessageText {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields
        } else {
            format!("{} {}", self.message, self.fields)
        }
    }

    fn push_field(&mut self, name: &str, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{name}={value}");
    }
}

impl Visit for MessageText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push_field(field.name(), format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push_field(field.name(), format_args!("{value:?}"));
        }
    }
}
