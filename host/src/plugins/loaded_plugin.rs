//! A loaded plugin library: what it said about itself at `init`, where it came from, and
//! its function table.

use std::path::PathBuf;

use durabletask_abi::PluginModuleRef;

/// One loaded plugin library.
pub struct LoadedPlugin {
    /// The plugin's name, from `export_plugin!`.
    pub name: String,
    /// The plugin's version, from `export_plugin!`.
    pub version: String,
    /// The durabletask-sdk version it was built with.
    pub sdk_version: String,
    /// Registered orchestrator names.
    pub orchestrators: Vec<String>,
    /// Registered activity names.
    pub activities: Vec<String>,
    /// Registered entity names (lowercase).
    pub entities: Vec<String>,
    /// The file in the plugins folder it was loaded from.
    pub source: PathBuf,
    /// The first 16 hex digits of the SHA-256 of its contents.
    pub content_hash: String,
    /// The checked function table: called only through `calls`.
    pub(super) module: PluginModuleRef,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}
