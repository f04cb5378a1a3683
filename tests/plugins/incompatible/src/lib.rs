//! # The `incompatible` test plugin
//!
//! Declares itself a durabletask plugin built for an ABI version that does not exist
//! (999). The host must refuse it, with one log line naming the file and the reason,
//! before running any of its code — and keep serving the other plugins.
//!
//! It deliberately does not use `export_plugin!`: it exports only the declaration the
//! host reads first.

use durabletask_sdk::abi::PluginDeclaration;

/// A valid declaration in every field but the ABI version.
#[unsafe(no_mangle)]
pub static DURABLETASK_PLUGIN_DECLARATION: PluginDeclaration = PluginDeclaration {
    abi_version: 999,
    ..PluginDeclaration::CURRENT
};
