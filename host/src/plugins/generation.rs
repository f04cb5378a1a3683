//! A generation: one plugin library in service, known by its plugin name and version.
//!
//! Several generations of one plugin serve side by side: orchestrations replay on the
//! generation of their own version (see `routing`). Every work item holds its generation
//! until it is finished, so a generation taken out of service (its file removed) still
//! finishes what it started; when the last holder lets go, its activity runtime is shut
//! down. The library itself stays mapped until the process ends (abi_stable never unloads
//! one: its layout caches point into the image).

use std::sync::{Arc, OnceLock};

use super::generation_telemetry::{GenerationTelemetry, WorkTelemetry};
use super::loaded_plugin::LoadedPlugin;
use crate::worker::in_flight::WorkKind;

/// A plugin library in service.
pub struct Generation {
    plugin: Arc<LoadedPlugin>,
    /// Made at its first work item: a generation that never serves (refused by the replay
    /// gate, say) leaves no metric series behind.
    telemetry: OnceLock<GenerationTelemetry>,
}

impl Generation {
    pub(crate) fn new(plugin: Arc<LoadedPlugin>) -> Arc<Self> {
        Arc::new(Self {
            plugin,
            telemetry: OnceLock::new(),
        })
    }

    /// What a work item of `kind` and `name` run by this generation records.
    pub(crate) fn telemetry(&self, kind: WorkKind, name: &str) -> Arc<WorkTelemetry> {
        self.telemetry
            .get_or_init(|| GenerationTelemetry::new(&self.plugin))
            .of(kind, name)
    }

    /// The library and what it registers.
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }

    /// `plugin-name version`, for log lines and messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.plugin.name, self.plugin.version)
    }
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Generation").field(&self.label()).finish()
    }
}

impl Drop for Generation {
    /// Nothing can reach this generation any more: no catalog lists it and no work item
    /// holds it. Its activity runtime (threads) is stopped; should the same library be
    /// put back in service later, its runtime starts again on first use.
    fn drop(&mut self) {
        self.plugin.shutdown();
    }
}
