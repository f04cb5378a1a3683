//! The plugin ABI: the contract between `durabletask-host` and a plugin library, defined
//! in the `durabletask-abi` crate, which the host shares; the types are re-exported here
//! so that [`crate::export_plugin!`] and the SDK's users reach them through the SDK.
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
//! | host → plugin | [`LogFieldsExtension::enable`]             | (optional, before `init`) a log callback that keeps fields apart |
//! | plugin → host | [`HostCallbacks::log`]                     | a log event from plugin code                    |
//! | plugin → host | [`FieldedLogFn`]                           | the same, its fields apart from the message     |
//! | plugin → host | [`HostCallbacks::activity_completed`]      | an activity's encoded `ActivityResponse`        |
//!
//! Two checks run before any plugin code does:
//! 1. [`PluginDeclaration`], a plain `#[repr(C)]` static the host reads with `dlsym`:
//!    a magic number, [`ABI_VERSION`] and the panic strategy the plugin was built with.
//! 2. abi_stable's load-time layout check of [`PluginModule`].
//!
//! Plugin authors never use this module directly: [`crate::export_plugin!`] writes it all.

pub use durabletask_abi::{
    ABI_VERSION, DECLARATION_SYMBOL, ENTITY_BATCH_V1, ENTITY_BATCH_V2, FieldedLogFn,
    FieldedLogRecord, HostCallbacks, LOG_FIELDS_SYMBOL, LogField, LogFieldsExport,
    LogFieldsExtension, LogLevel, LogRecord, LogValue, PLUGIN_MAGIC, PanicStrategy,
    PluginDeclaration, PluginDescription, PluginModule, PluginModuleRef,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The declaration says "durabletask-sdk <version>" with the version of the crate
    /// that defines it: the two crates must share their version.
    #[test]
    fn the_declaration_carries_this_sdk_version() {
        let declaration = PluginDeclaration::CURRENT;
        assert_eq!(
            (declaration.magic, declaration.abi_version),
            (PLUGIN_MAGIC, ABI_VERSION)
        );
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
