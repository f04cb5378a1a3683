//! # durabletask-abi
//!
//! The contract between `durabletask-host` and the plugins it runs, in one small crate
//! that the SDK (compiled into every plugin) and the host share. The protocol is the ABI:
//! a plugin receives encoded protobuf requests and returns encoded responses; this crate
//! holds everything around those messages that both sides must agree on:
//!
//! - the plugin ABI: the declaration the host reads before any plugin code runs
//!   ([`PluginDeclaration`], [`ABI_VERSION`]) and the abi_stable function table
//!   ([`PluginModule`]) with the callbacks the host lends ([`HostCallbacks`]);
//! - [`error_types`]: the stable `errorType` names;
//! - [`properties`]: the `OrchestratorRequest.properties` keys of the host's worker
//!   settings;
//! - [`entity`]: entity work items in both protocol shapes, the one conversion that
//!   flattens them, and the `@name@key` ids;
//! - [`failure`]: the responses that fail a work item, for the SDK and the host alike.
//!
//! It depends on the protocol and abi_stable only, so the host runs plugins without
//! linking the replay engine.
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
//! Buffers cross the boundary as `RVec`/`RSlice`: an `RVec` carries its own
//! deallocation function, so whichever side drops it frees it with the allocator that
//! made it.
//!
//! Two checks run before any plugin code does:
//! 1. [`PluginDeclaration`], a plain `#[repr(C)]` static the host reads with `dlsym`:
//!    a magic number, [`ABI_VERSION`] and the panic strategy the plugin was built with.
//! 2. abi_stable's load-time layout check of [`PluginModule`] (which compares, among
//!    other things, the package that defines each type: this one).

#![warn(missing_docs)]

pub mod activity;
mod declaration;
pub mod entity;
pub mod error_types;
pub mod failure;
mod module;
pub mod properties;
pub mod replay;

pub use declaration::{
    ABI_VERSION, DECLARATION_SYMBOL, PLUGIN_MAGIC, PanicStrategy, PluginDeclaration,
};
pub use module::{
    ENTITY_BATCH_V1, ENTITY_BATCH_V2, FieldedLogFn, FieldedLogRecord, HostCallbacks,
    LOG_FIELDS_SYMBOL, LogField, LogFieldsExport, LogFieldsExtension, LogLevel, LogRecord,
    LogValue, PluginDescription, PluginModule, PluginModuleRef,
};
