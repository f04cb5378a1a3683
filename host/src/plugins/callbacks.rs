//! The functions the host lends every plugin: log forwarding and activity completion.
//!
//! They are plain `extern "C"` functions (no closure can cross the ABI), so the state
//! they need lives in process-wide tables keyed by the ids the host handed out: the
//! plugin id (for log tags) and the activity token (for the waiting work item).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, RwLock};

use abi_stable::std_types::RVec;
use durabletask_abi::{
    FieldedLogFn, FieldedLogRecord, HostCallbacks, LogField, LogLevel, LogRecord,
};
use tokio::sync::oneshot;

use crate::logging::PluginFields;

/// Name and version of each plugin, indexed by plugin id, for log tags.
static IDENTITIES: LazyLock<RwLock<Vec<PluginIdentity>>> = LazyLock::new(Default::default);

/// Activities started in a plugin and not yet completed, by token.
static PENDING_ACTIVITIES: LazyLock<Mutex<HashMap<u64, oneshot::Sender<RVec<u8>>>>> =
    LazyLock::new(Default::default);

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone)]
struct PluginIdentity {
    name: String,
    version: String,
}

/// Reserves a plugin id; until [`name_plugin`] runs, its log lines carry `file`.
pub(crate) fn register_plugin(file: &str) -> u64 {
    let mut identities = IDENTITIES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    identities.push(PluginIdentity {
        name: file.to_owned(),
        version: String::new(),
    });
    (identities.len() - 1) as u64
}

/// Records the name and version a plugin gave in `init`.
pub(crate) fn name_plugin(plugin_id: u64, name: &str, version: &str) {
    let mut identities = IDENTITIES
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(identity) = usize::try_from(plugin_id)
        .ok()
        .and_then(|index| identities.get_mut(index))
    {
        identity.name = name.to_owned();
        identity.version = version.to_owned();
    }
}

/// The callbacks for one plugin.
pub(crate) fn host_callbacks(plugin_id: u64) -> HostCallbacks {
    HostCallbacks {
        plugin_id,
        max_level: max_level(),
        log: log_from_plugin,
        activity_completed,
    }
}

/// The callback for plugins' log events with their fields apart (lent to every plugin
/// that has `enable_log_fields`; the plugin id comes with each call).
pub(crate) const FIELDED_LOG: FieldedLogFn = FieldedLogFn {
    log: fielded_log_from_plugin,
};

/// The most verbose level the host's subscriber would print, so plugins can drop the
/// rest before crossing the boundary.
pub(crate) fn max_level() -> LogLevel {
    match tracing::level_filters::LevelFilter::current().into_level() {
        Some(tracing::Level::TRACE) => LogLevel::Trace,
        Some(tracing::Level::DEBUG) => LogLevel::Debug,
        Some(tracing::Level::INFO) => LogLevel::Info,
        Some(tracing::Level::WARN) => LogLevel::Warn,
        Some(tracing::Level::ERROR) | None => LogLevel::Error,
    }
}

/// A token and the receiver its completion will arrive on.
pub(crate) fn expect_activity_completion() -> (u64, oneshot::Receiver<RVec<u8>>) {
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    let (sender, receiver) = oneshot::channel();
    PENDING_ACTIVITIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(token, sender);
    (token, receiver)
}

/// Forgets a token whose completion will never be awaited.
pub(crate) fn forget_activity(token: u64) {
    PENDING_ACTIVITIES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&token);
}

extern "C" fn activity_completed(_plugin_id: u64, token: u64, response: RVec<u8>) {
    // Never unwind into the plugin.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let sender = PENDING_ACTIVITIES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&token);
        match sender {
            Some(sender) => {
                // The receiver is gone only if the work item was abandoned meanwhile.
                let _ = sender.send(response);
            }
            // The host stopped waiting: the activity timed out, or the work item was
            // dropped at shutdown. Neither is news by the time the late result comes.
            None => tracing::debug!(
                token,
                "a plugin completed an activity nobody is waiting for any more (it timed out, or the host is shutting down); its result is ignored"
            ),
        }
    }));
}

extern "C" fn log_from_plugin(plugin_id: u64, record: &LogRecord<'_>) {
    let (level, target, message) = (record.level, record.target, record.message);
    forward_from_plugin(plugin_id, level, target.as_str(), message.as_str(), &[]);
}

extern "C" fn fielded_log_from_plugin(plugin_id: u64, record: &FieldedLogRecord<'_>) {
    let (level, target, message) = (record.level, record.target, record.message);
    let fields = record.fields.as_slice();
    forward_from_plugin(plugin_id, level, target.as_str(), message.as_str(), fields);
}

/// [`forward_log`] for a plugin in this process, known by its id. Never unwinds into
/// the plugin.
fn forward_from_plugin(
    plugin_id: u64,
    level: LogLevel,
    target: &str,
    message: &str,
    fields: &[LogField<'_>],
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let (plugin, version) = identity(plugin_id);
        forward_log(&plugin, &version, level, target, message, fields);
    }));
}

/// The name and version of the plugin with this id (`unknown` for an id never given).
fn identity(plugin_id: u64) -> (String, String) {
    usize::try_from(plugin_id)
        .ok()
        .and_then(|index| {
            IDENTITIES
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(index)
                .cloned()
        })
        .map(|identity| (identity.name, identity.version))
        .unwrap_or_else(|| ("unknown".to_owned(), String::new()))
}

/// Writes a plugin's log record to the host's log, tagged with the plugin (for plugins
/// in the host's process and in child processes alike), its fields as fields of the
/// line (see `logging::PluginFields`).
pub(crate) fn forward_log(
    plugin: &str,
    version: &str,
    level: LogLevel,
    target: &str,
    message: &str,
    fields: &[LogField<'_>],
) {
    macro_rules! forward {
        ($level:expr) => {
            tracing::event!(
                target: "plugin",
                $level,
                plugin = %plugin,
                plugin_version = %version,
                module = %target,
                "{message}"
            )
        };
    }
    PluginFields::from_record(fields).emit_with(|| match level {
        LogLevel::Trace => forward!(tracing::Level::TRACE),
        LogLevel::Debug => forward!(tracing::Level::DEBUG),
        LogLevel::Info => forward!(tracing::Level::INFO),
        LogLevel::Warn => forward!(tracing::Level::WARN),
        LogLevel::Error => forward!(tracing::Level::ERROR),
    });
}
