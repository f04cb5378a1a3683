//! A loaded plugin library: what it said about itself at `init`, where it came from, and
//! where its code runs (its function table in the host, or the child process that loaded
//! it).

use std::path::PathBuf;
use std::sync::Arc;

use durabletask_abi::{PluginDescription, PluginModuleRef};

use super::calls;
use super::isolation::{Stopping, Supervisor};

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
    /// Where its code runs.
    pub(super) runner: Runner,
}

/// Where a plugin's code runs.
pub(crate) enum Runner {
    /// In the host's process: the checked function table, called through `calls`.
    InProcess(PluginModuleRef),
    /// In a supervised child process of its own.
    Process(Arc<Supervisor>),
}

/// What a plugin says about itself at `init`, as plain strings. Also the first frame a
/// plugin's child process sends (`isolation::frame`), hence the protobuf derive.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct Registrations {
    #[prost(string, tag = "1")]
    pub(crate) name: String,
    #[prost(string, tag = "2")]
    pub(crate) version: String,
    #[prost(string, tag = "3")]
    pub(crate) sdk_version: String,
    #[prost(string, repeated, tag = "4")]
    pub(crate) orchestrators: Vec<String>,
    #[prost(string, repeated, tag = "5")]
    pub(crate) activities: Vec<String>,
    #[prost(string, repeated, tag = "6")]
    pub(crate) entities: Vec<String>,
}

impl From<PluginDescription> for Registrations {
    fn from(description: PluginDescription) -> Self {
        let strings = |names: abi_stable::std_types::RVec<abi_stable::std_types::RString>| {
            names.into_iter().map(|name| name.into_string()).collect()
        };
        Self {
            name: description.name.into_string(),
            version: description.version.into_string(),
            sdk_version: description.sdk_version.into_string(),
            orchestrators: strings(description.orchestrators),
            activities: strings(description.activities),
            entities: strings(description.entities),
        }
    }
}

impl LoadedPlugin {
    pub(crate) fn new(
        registrations: Registrations,
        source: PathBuf,
        content_hash: String,
        runner: Runner,
    ) -> Self {
        Self {
            name: registrations.name,
            version: registrations.version,
            sdk_version: registrations.sdk_version,
            orchestrators: registrations.orchestrators,
            activities: registrations.activities,
            entities: registrations.entities,
            source,
            content_hash,
            runner,
        }
    }

    /// Whether its code runs in a child process.
    pub fn isolated(&self) -> bool {
        matches!(self.runner, Runner::Process(_))
    }

    /// Where its code runs, for people: `in the host's process`, or `in process <pid>`
    /// (`in a process of its own, not running` between a death and the next start).
    pub fn runs_where(&self) -> String {
        match &self.runner {
            Runner::InProcess(_) => "in the host's process".to_owned(),
            Runner::Process(supervisor) => match supervisor.pid() {
                Some(pid) => format!("in process {pid}"),
                None => "in a process of its own, not running".to_owned(),
            },
        }
    }

    /// Stops the plugin's runtime (in-process) or its child process. Activities still
    /// running complete with a failure. A child is started again on the next call.
    pub(crate) fn shutdown(&self) {
        drop(self.begin_shutdown());
    }

    /// [`LoadedPlugin::shutdown`], returning the child process being stopped, to wait for
    /// (what the host does as it exits).
    pub(crate) fn begin_shutdown(&self) -> Option<Stopping> {
        match &self.runner {
            Runner::InProcess(module) => {
                calls::shutdown(*module);
                None
            }
            Runner::Process(supervisor) => supervisor.shutdown(),
        }
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("source", &self.source)
            .field("isolated", &self.isolated())
            .finish_non_exhaustive()
    }
}
