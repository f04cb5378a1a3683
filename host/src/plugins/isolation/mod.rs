//! Process isolation: each plugin generation in a supervised child process of the
//! host's own binary (`[plugins] isolation = "process"`, the default).
//!
//! The plugin contract carries only encoded protocol messages, so the same three calls
//! (an orchestration step, an activity, an entity batch) cross a Unix socket instead of
//! a function pointer:
//! - [`frame`] is what travels on the socket;
//! - [`child_main`] is the child: it loads the library and serves the calls;
//! - [`child_process`] is one running child seen from the host (threads that write and
//!   read its socket, the calls inside it, how it died);
//! - [`supervisor`] keeps a generation's child serving: restarts with backoff, crash
//!   counting and `PluginCrashed`, the step limit, recycling;
//! - [`limits`] are the child's resource limits.
//!
//! What is isolated: a plugin that exits, aborts, overflows its stack, runs out of its
//! memory limit, or blocks in a step, takes down (or holds up) only its own process;
//! the host, its embedded backend and every other plugin keep serving. What is not:
//! the machine's shared resources (CPU beyond the limits, disk, the network) and what a
//! plugin does through them, and the plugin's own other work items, which share its
//! process.

pub(crate) mod child_main;
mod child_process;
#[allow(unsafe_code)]
mod child_signals;
mod frame;
mod limits;
mod outbox;
mod supervisor;

use std::path::{Path, PathBuf};

pub use child_main::{ChildArgs, run as run_child};
pub(crate) use frame::CallKind;
pub(crate) use supervisor::{Stopping, Supervisor, Work};

use crate::config::{Isolation, PluginSettings};
use child_process::Launch;
use limits::Limits;

use super::error::LoadError;
use super::loaded_plugin::{LoadedPlugin, Runner};
use super::loader::{self, PrivateCopy};

/// Where each plugin's code runs, and a child's limits: `[plugins]`, and the binary
/// children run.
#[derive(Debug, Clone)]
pub struct IsolationSettings {
    plugins: PluginSettings,
    /// The binary a child runs: the host's own.
    program: PathBuf,
}

impl IsolationSettings {
    /// From `[plugins]`; children run `program` (the host's binary).
    pub fn new(plugins: &PluginSettings, program: PathBuf) -> Self {
        Self {
            plugins: plugins.clone(),
            program,
        }
    }

    /// Every plugin in the host's process: what tests of the loader use.
    pub fn in_process() -> Self {
        Self::new(
            &PluginSettings {
                isolation: Isolation::InProcess,
                ..PluginSettings::default()
            },
            PathBuf::new(),
        )
    }

    /// From `[plugins]`, with children running the binary of this process: the very
    /// file it was started from (`/proc/self/exe`, which stays the same file when a
    /// package upgrade replaces the binary on disk while the host runs: a child must
    /// speak the host's own frames).
    pub fn for_this_binary(plugins: &PluginSettings) -> std::io::Result<Self> {
        let this_binary = Path::new("/proc/self/exe");
        let program = if this_binary.exists() {
            this_binary.to_path_buf()
        } else {
            std::env::current_exe()?
        };
        Ok(Self::new(plugins, program))
    }

    fn isolation_of(&self, name: &str) -> Isolation {
        self.plugins
            .overrides
            .get(name)
            .and_then(|plugin| plugin.isolation)
            .unwrap_or(self.plugins.isolation)
    }

    /// Whether some plugin may run in a child: then every library is first loaded in
    /// one, since a plugin's name (what overrides go by) is known only once it has run
    /// its `init`, and that must not happen in the host for a plugin meant to be isolated.
    fn may_isolate(&self) -> bool {
        self.plugins.isolation == Isolation::Process
            || self
                .plugins
                .overrides
                .values()
                .any(|plugin| plugin.isolation == Some(Isolation::Process))
    }

    fn limits_of(&self, name: Option<&str>) -> Limits {
        let memory = name
            .and_then(|name| self.plugins.overrides.get(name))
            .and_then(|plugin| plugin.memory_limit_mb)
            .unwrap_or(self.plugins.memory_limit_mb);
        Limits::new(memory, self.plugins.cpu_time_limit)
    }

    fn launch(&self, copy: &Path, limits: Limits) -> Launch {
        Launch {
            program: self.program.clone(),
            library: copy.to_path_buf(),
            limits,
        }
    }
}

/// Loads a private copy of `source` where `settings` say its plugin runs.
pub(crate) fn load(
    source: &Path,
    copy: &PrivateCopy,
    settings: &IsolationSettings,
) -> Result<LoadedPlugin, LoadError> {
    if !settings.may_isolate() {
        return loader::load(source, copy);
    }
    let file_label = source
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let limits = settings.limits_of(None);
    let (registrations, supervisor) = Supervisor::load(
        settings.launch(&copy.path, limits),
        &file_label,
        settings.plugins.step_limit,
    )?;
    if settings.isolation_of(&registrations.name) == Isolation::InProcess {
        supervisor.shutdown();
        return loader::load(source, copy);
    }
    let own_limits = settings.limits_of(Some(&registrations.name));
    let supervisor = if own_limits == limits {
        supervisor
    } else {
        // Its override sets other limits: run it in a child that has them.
        supervisor.shutdown();
        Supervisor::load(
            settings.launch(&copy.path, own_limits),
            &file_label,
            settings.plugins.step_limit,
        )?
        .1
    };
    Ok(LoadedPlugin::new(
        registrations,
        source.to_path_buf(),
        copy.hash.clone(),
        Runner::Process(supervisor),
    ))
}
