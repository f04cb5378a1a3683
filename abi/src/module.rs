//! The function table a plugin exports and the callbacks the host lends it.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr, RString, RVec},
    type_layout::TypeLayout,
};

/// [`PluginModule::run_entity_batch`]'s `shape` for a v1 `EntityBatchRequest`.
pub const ENTITY_BATCH_V1: u8 = 1;
/// [`PluginModule::run_entity_batch`]'s `shape` for a v2 `EntityRequest`.
pub const ENTITY_BATCH_V2: u8 = 2;

/// The severity of a forwarded log event.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very verbose diagnostics.
    Trace = 0,
    /// Diagnostics.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that the plugin survived.
    Warn = 3,
    /// A failure.
    Error = 4,
}

/// One log event from plugin code, forwarded to the host's log.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    /// Severity.
    pub level: LogLevel,
    /// The `tracing` target inside the plugin (usually its module path).
    pub target: RStr<'a>,
    /// The message with the event's fields appended as `key=value`.
    pub message: RStr<'a>,
}

/// One log event from plugin code with its fields kept apart from the message, for
/// hosts that write structured logs (JSON lines) and want the fields as fields.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FieldedLogRecord<'a> {
    /// Severity.
    pub level: LogLevel,
    /// The `tracing` target inside the plugin (usually its module path).
    pub target: RStr<'a>,
    /// The message alone.
    pub message: RStr<'a>,
    /// The event's other fields, in the order they were recorded.
    pub fields: RSlice<'a, LogField<'a>>,
}

/// A named field of a [`FieldedLogRecord`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct LogField<'a> {
    /// The field's name.
    pub name: RStr<'a>,
    /// Its value.
    pub value: LogValue<'a>,
}

/// A log field's value, as `tracing` recorded it.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub enum LogValue<'a> {
    /// A string (`field = "text"` or a `&str` variable).
    Text(RStr<'a>),
    /// Anything recorded through `Debug` or `Display` (`?value`, `%value`), rendered so.
    Formatted(RStr<'a>),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A floating-point number.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

/// The host's callback for [`FieldedLogRecord`]s, lent through
/// [`LogFieldsExtension::enable`] (a wrapper, since abi_stable does not take a function
/// pointer as a function pointer's parameter).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct FieldedLogFn {
    /// Writes the record to the host's log, tagged with the plugin's name and version;
    /// `plugin_id` is [`HostCallbacks::plugin_id`].
    pub log: extern "C" fn(plugin_id: u64, record: &FieldedLogRecord<'_>),
}

/// The functions the host lends a plugin in [`PluginModule::init`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct HostCallbacks {
    /// The host's id for this plugin; passed back on every callback.
    pub plugin_id: u64,
    /// The most verbose level the host will print; the plugin drops anything finer
    /// without crossing the boundary.
    pub max_level: LogLevel,
    /// Writes a log event to the host's log, tagged with the plugin's name and version.
    pub log: extern "C" fn(plugin_id: u64, record: &LogRecord<'_>),
    /// Reports the encoded `ActivityResponse` of the activity started with `token`.
    /// Called exactly once per [`PluginModule::start_activity`], from any thread.
    pub activity_completed: extern "C" fn(plugin_id: u64, token: u64, response: RVec<u8>),
}

/// What a plugin says about itself when initialised.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginDescription {
    /// The plugin's name (from `export_plugin!`).
    pub name: RString,
    /// The plugin's version (from `export_plugin!`).
    pub version: RString,
    /// The durabletask-sdk version it was built with.
    pub sdk_version: RString,
    /// Registered orchestrator names.
    pub orchestrators: RVec<RString>,
    /// Registered activity names.
    pub activities: RVec<RString>,
    /// Registered entity names (lowercase).
    pub entities: RVec<RString>,
}

/// The function table a plugin exports (an abi_stable prefix type, so later ABI
/// versions can append functions that older hosts simply do not see).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// Stores the host callbacks, installs log forwarding and the panic hook, runs the
    /// plugin's registrations and describes the plugin. Called once, before anything else.
    /// An error (a registration that panicked, say) is a message for the host's log.
    pub init: extern "C" fn(host: HostCallbacks) -> RResult<PluginDescription, RString>,
    /// Runs one orchestration step: an encoded `OrchestratorRequest` in, an encoded
    /// `OrchestratorResponse` out. Never unwinds; a panic becomes a `PluginPanic` failure.
    pub run_orchestrator: extern "C" fn(request: RSlice<'_, u8>) -> RVec<u8>,
    /// Starts an activity from an encoded `ActivityRequest` on the plugin's own runtime
    /// and returns at once; the response arrives through
    /// [`HostCallbacks::activity_completed`] with the same `token`, exactly once.
    pub start_activity: extern "C" fn(request: RSlice<'_, u8>, token: u64),
    /// Runs one entity batch: `shape` says what `request` encodes
    /// ([`ENTITY_BATCH_V1`]: an `EntityBatchRequest`, [`ENTITY_BATCH_V2`]: an
    /// `EntityRequest`); the answer is an encoded `EntityBatchResult`. Never unwinds.
    pub run_entity_batch: extern "C" fn(shape: u8, request: RSlice<'_, u8>) -> RVec<u8>,
    /// Stops the plugin's runtime. Activities still running complete with a failure.
    #[sabi(last_prefix_field)]
    pub shutdown: extern "C" fn(),
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "durabletask_plugin";
    const NAME: &'static str = "durabletask_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The symbol under which a plugin exports its [`LogFieldsExport`].
pub const LOG_FIELDS_SYMBOL: &str = "DURABLETASK_PLUGIN_LOG_FIELDS";

/// An optional extension of the plugin ABI, exported by plugins built with
/// durabletask-sdk 0.1.0 and later under [`LOG_FIELDS_SYMBOL`]: a host that finds it lends
/// the plugin a log callback that keeps an event's fields apart from its message.
///
/// This outer struct is frozen: only [`LogFieldsExtension`]'s layout is checked (through
/// `layout`), so a change here needs a new symbol.
///
/// It is a static of its own rather than a function appended to [`PluginModule`]:
/// abi_stable refuses a library whose function table has fewer functions than the host's,
/// so a host with a longer table could not load the plugins built before it. A host that
/// does not look for the symbol ignores it; a plugin without it logs through
/// [`HostCallbacks::log`].
#[repr(C)]
#[derive(Debug)]
pub struct LogFieldsExport {
    /// abi_stable's layout of [`LogFieldsExtension`] (and so of every type its function
    /// reaches) as the plugin was built. The host checks it against its own before it
    /// touches `extension`.
    pub layout: &'static TypeLayout,
    /// The extension itself.
    pub extension: LogFieldsExtension,
}

impl LogFieldsExport {
    /// The export of a plugin whose `enable` takes the host's callback.
    pub const fn new(enable: extern "C" fn(log: FieldedLogFn)) -> Self {
        Self {
            layout: <LogFieldsExtension as StableAbi>::LAYOUT,
            extension: LogFieldsExtension { enable },
        }
    }
}

/// The functions of the log-fields extension.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy)]
pub struct LogFieldsExtension {
    /// Lends the plugin the host's callback for events with their fields apart. The host
    /// calls it before [`PluginModule::init`]; the plugin then forwards its events there
    /// instead of through [`HostCallbacks::log`].
    pub enable: extern "C" fn(log: FieldedLogFn),
}
