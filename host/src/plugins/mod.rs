//! Plugins: loading cdylib plugins, keeping their generations in service, and running
//! work items in them.
//!
//! - [`loader`] finds libraries and loads each from a private copy, kept in
//!   [`private_dir`];
//! - [`trust`] decides whether a library is safe to load: nobody but the host's user and
//!   root may have been able to write it (sshd's StrictModes);
//! - [`elf`] checks a library is complete before it is loaded (a cut one would crash
//!   the dynamic loader);
//! - [`ffi`] holds every `unsafe` call and the checks made before plugin code runs;
//! - [`calls`] are the host's calls into a loaded plugin (init, an orchestration step, an
//!   activity, an entity batch, shutdown), [`callbacks`] the functions the host lends
//!   plugins (logs, activity completion);
//! - [`loaded_plugin`] is what the host knows of a loaded library, [`error`] why one was
//!   not loaded;
//! - [`manager`] turns the plugins folder into the [`generation`]s in service, and
//!   [`watcher`] rescans it when it changes (hot swap);
//! - [`inventory`] lists a folder for `durabletask-host plugins`;
//! - [`catalog`] maps names to generations; [`routing`] picks the generation for a work
//!   item (orchestrations by name and version), [`sticky`] remembers where an
//!   orchestration ran;
//! - [`plugin_host`] is the [`PluginHost`]'s lifecycle (start, rescan, shutdown), and
//!   [`executor`] makes it the worker's
//!   [`WorkItemExecutor`](crate::worker::WorkItemExecutor); [`watchdog`] names a plugin
//!   call that holds up the event loop while it still runs; [`crash_journal`] counts the
//!   work items that were inside a plugin when the host died, so one that keeps killing
//!   the host is failed (`PluginCrashed`) instead of run again.

mod build_memory;
mod callbacks;
mod calls;
pub mod catalog;
mod crash_journal;
mod elf;
mod error;
mod executor;
#[allow(unsafe_code)]
mod ffi;
pub mod generation;
mod generation_telemetry;
mod inventory;
pub mod isolation;
mod loaded_plugin;
mod loader;
mod manager;
mod plugin_host;
mod private_dir;
pub mod replay;
mod replay_check;
pub mod replay_gate;
mod routing;
mod sticky;
mod trust;
mod watchdog;
mod watcher;

pub use error::{LoadError, PluginError};
pub use inventory::{Inventory, inventory};
pub use loaded_plugin::LoadedPlugin;
pub use plugin_host::{
    CrashJournalSettings, PluginHost, PluginHostSettings, Rescan, worker_properties,
};
pub use replay_check::{ReplayCheck, SavedHistory, replay_check};
