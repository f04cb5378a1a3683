//! The plugin ABI: the contract between `durabletask-host` and a plugin library.
//!
//! The protocol is the ABI. The host hands a plugin an encoded `OrchestratorRequest` or
//! `ActivityRequest` and gets the encoded response back; the protobuf messages are the
//! versioned, stable part. Around them sits a handful of functions:
//!
//! | direction     | function                                   | what it does                                   |
//! |---------------|--------------------------------------------|------------------------------------------------|
//! | host → plugin | [`PluginModule::init`]                     | hand over the host callbacks, get the plugin's description |
//! | host → plugin | [`PluginModule::run_orchestrator`]         | one orchestration step, synchronous             |
//! | host → plugin | [`PluginModule::start_activity`]           | start an activity; it completes through a callback |
//! | host → plugin | [`PluginModule::run_entity_batch`]         | one entity batch, synchronous                   |
//! | host → plugin | [`PluginModule::shutdown`]                 | stop the plugin's runtime                       |
//! | plugin → host | [`HostCallbacks::log`]                     | a log event from plugin code                    |
//! | plugin → host | [`HostCallbacks::activity_completed`]      | an activity's encoded `ActivityResponse`        |
//!
//! Buffers cross the boundary as [`RVec`]/[`RSlice`]: an `RVec` carries its own
//! deallocation function, so whichever side drops it frees it with the allocator that
//! made it.
//!
//! Two checks run before any plugin code does:
//! 1. [`PluginDeclaration`], a plain `#[repr(C)]` static the host reads with `dlsym`:
//!    a magic number, [`ABI_VERSION`] and the panic strategy the plugin was built with.
//! 2. abi_stable's load-time layout check of [`PluginModule`].
//!
//! Plugin authors never use this module directly: [`crate::export_plugin!`] writes it all.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr, RString, RVec},
};

/// The version of this ABI. The host refuses a plugin that declares another one.
///
/// Bump it on any change to the function table or to [`PluginDeclaration`] that an older
/// host or plugin could misread.
pub const ABI_VERSION: u32 = 2;

/// The first bytes of every [`PluginDeclaration`]: tells a durabletask plugin apart from
/// any other library that happens to export a symbol of the same name.
pub const PLUGIN_MAGIC: [u8; 8] = *b"DTPLUGIN";

/// The name of the exported [`PluginDeclaration`] static (without the trailing NUL).
pub const DECLARATION_SYMBOL: &str = "DURABLETASK_PLUGIN_DECLARATION";

/// How the plugin was compiled to handle panics.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicStrategy {
    /// `panic = "unwind"`: the SDK catches every panic at the ABI boundary.
    Unwind = 1,
    /// `panic = "abort"`: any panic in the plugin would abort the whole host.
    Abort = 2,
}

/// A plain-C declaration every plugin exports under [`DECLARATION_SYMBOL`].
///
/// The host reads it with `dlsym` *before* it runs any plugin code, in the manner of
/// PostgreSQL's magic block: a library without it is not a plugin; a plugin with another
/// [`ABI_VERSION`] or built with `panic = "abort"` is refused with a one-line reason.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginDeclaration {
    /// Always [`PLUGIN_MAGIC`].
    pub magic: [u8; 8],
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// The plugin's panic strategy, as a [`PanicStrategy`] discriminant.
    pub panic_strategy: u8,
    /// The durabletask-sdk version, NUL-padded UTF-8 (for error messages only).
    pub sdk_version: [u8; 24],
}

impl PluginDeclaration {
    /// The declaration of a plugin built with this SDK.
    ///
    /// `cfg!(panic = ...)` is evaluated when this crate is compiled, which happens with the
    /// plugin's own profile: a `panic = "abort"` build of the plugin compiles the SDK with
    /// `panic = "abort"` too.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::abi::{ABI_VERSION, PLUGIN_MAGIC, PanicStrategy, PluginDeclaration};
    ///
    /// let declaration = PluginDeclaration::CURRENT;
    /// assert_eq!((declaration.magic, declaration.abi_version), (PLUGIN_MAGIC, ABI_VERSION));
    /// assert_eq!(declaration.panic_strategy, PanicStrategy::Unwind as u8); // tests unwind
    /// ```
    pub const CURRENT: PluginDeclaration = PluginDeclaration {
        magic: PLUGIN_MAGIC,
        abi_version: ABI_VERSION,
        panic_strategy: if cfg!(panic = "unwind") {
            PanicStrategy::Unwind as u8
        } else {
            PanicStrategy::Abort as u8
        },
        sdk_version: padded_version(env!("CARGO_PKG_VERSION")),
    };

    /// The SDK version the plugin was built with, for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::abi::PluginDeclaration;
    ///
    /// assert!(!PluginDeclaration::CURRENT.sdk_version().is_empty());
    /// ```
    pub fn sdk_version(&self) -> String {
        let end = self
            .sdk_version
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.sdk_version.len());
        String::from_utf8_lossy(&self.sdk_version[..end]).into_owned()
    }
}

const fn padded_version(version: &str) -> [u8; 24] {
    let bytes = version.as_bytes();
    let mut out = [0u8; 24];
    let mut i = 0;
    while i < bytes.len() && i < out.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_carries_this_build() {
        let declaration = PluginDeclaration::CURRENT;
        assert_eq!(declaration.magic, PLUGIN_MAGIC);
        assert_eq!(declaration.abi_version, ABI_VERSION);
        assert_eq!(declaration.panic_strategy, PanicStrategy::Unwind as u8);
        assert_eq!(declaration.sdk_version(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn export_macro_uses_abi_stables_loader_symbol() {
        assert_eq!(
            crate::export::ROOT_MODULE_LOADER_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
