//! Forwards the plugin's `tracing` events and panic messages to the host's log.
//!
//! A plugin links its own copy of `tracing`: without this, its events would go nowhere
//! (the host's subscriber lives in the host's copy). Likewise its panic hook is its own.

use std::fmt::Write as _;
use std::sync::OnceLock;

use abi_stable::std_types::{RSlice, RStr};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, filter::LevelFilter};

use crate::abi::{
    FieldedLogFn, FieldedLogRecord, HostCallbacks, LogField, LogLevel, LogRecord, LogValue,
};

/// The host's callback for events with their fields apart, when the host has one (hosts
/// built before it do not call [`enable_log_fields`]; events then go through
/// [`HostCallbacks::log`] with the fields appended to the message).
static FIELDED_LOG: OnceLock<FieldedLogFn> = OnceLock::new();

/// Takes the host's callback for events with their fields apart. Only the first call
/// counts (the host makes one, before `init`).
pub(crate) fn enable_log_fields(log: FieldedLogFn) {
    let _ = FIELDED_LOG.set(log);
}

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
        if let Some(fielded) = FIELDED_LOG.get() {
            let mut fields = EventFields::default();
            event.record(&mut fields);
            fields.send(
                *fielded,
                self.host.plugin_id,
                to_log_level(*metadata.level()),
                metadata.target(),
            );
            return;
        }
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

/// An event's message and its other fields, each kept with its type, for
/// [`FieldedLogRecord`].
#[derive(Default)]
struct EventFields {
    message: String,
    fields: Vec<(&'static str, FieldValue)>,
}

/// A field's value, owned: `tracing` lends values only while it visits them.
enum FieldValue {
    Text(String),
    Formatted(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl EventFields {
    fn send(&self, log: FieldedLogFn, plugin_id: u64, level: LogLevel, target: &str) {
        let fields: Vec<LogField<'_>> = self
            .fields
            .iter()
            .map(|(name, value)| LogField {
                name: RStr::from_str(name),
                value: match value {
                    FieldValue::Text(text) => LogValue::Text(RStr::from_str(text)),
                    FieldValue::Formatted(text) => LogValue::Formatted(RStr::from_str(text)),
                    FieldValue::I64(number) => LogValue::I64(*number),
                    FieldValue::U64(number) => LogValue::U64(*number),
                    FieldValue::F64(number) => LogValue::F64(*number),
                    FieldValue::Bool(flag) => LogValue::Bool(*flag),
                },
            })
            .collect();
        let record = FieldedLogRecord {
            level,
            target: RStr::from_str(target),
            message: RStr::from_str(&self.message),
            fields: RSlice::from_slice(&fields),
        };
        (log.log)(plugin_id, &record);
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.fields
                .push((field.name(), FieldValue::Text(value.to_owned())));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), FieldValue::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), FieldValue::U64(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), FieldValue::F64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), FieldValue::Bool(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.fields
                .push((field.name(), FieldValue::Formatted(format!("{value:?}"))));
        }
    }
}
