//! Why a plugin library was not loaded, and why the plugins folder cannot be used.

use std::path::PathBuf;

/// Why a library in the plugins folder was not loaded. Each is logged as one line
/// naming the file; the host keeps serving the plugins that did load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read or copied.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// `dlopen` refused it.
    #[error("it is not a loadable shared library: {0}")]
    NotALibrary(String),
    /// It loads, but does not declare itself a durabletask plugin.
    #[error(
        "it is not a durabletask plugin (it exports no DURABLETASK_PLUGIN_DECLARATION; plugins export one with durabletask_sdk::export_plugin!)"
    )]
    NotAPlugin,
    /// A plugin for another ABI version or with a different function table layout.
    #[error("it is incompatible with this host: {0}")]
    Incompatible(String),
    /// Built with `panic = "abort"`: one panic would abort the whole host.
    #[error(
        "it was built with panic = \"abort\"; a panic in it would take the whole host down. Build plugins with panic = \"unwind\" (the default)"
    )]
    PanicAbort,
    /// Its `init` failed (a registration panicked, for example).
    #[error("it failed to initialise: {0}")]
    InitFailed(String),
    /// Someone besides the host's user and root could have written it: the file, the
    /// plugins folder or a folder above it (`[plugins] strict_permissions`).
    #[error(
        "its permissions are unsafe: {0}. Only the host's user and root may be able to change what the host loads (for development, [plugins] strict_permissions = false loads it anyway)"
    )]
    Untrusted(String),
    /// It registers a name that another plugin in service registers: activity and entity
    /// names are shared by every plugin the host loads (and orchestrator names are routed
    /// by name), so one of the two would silently run the other's code.
    #[error(
        "{0}. Names are shared by every plugin the host loads: rename one of them (this library is put in service once the other plugin no longer registers the name)"
    )]
    NameConflict(String),
    /// Its plugin version was served by another build, remembered across restarts, which
    /// is no longer in the folder: the version is not served.
    #[error("{0}")]
    VersionTaken(String),
    /// `[plugins] verify_replay`: a running orchestration it would be handed fails when
    /// its history is replayed on it.
    #[error(
        "{0}; the generations in service keep serving. A change that is not deterministic can be made version-aware (ctx.version()), or such orchestrations started with a version; [plugins] verify_replay = 0 deploys without the check"
    )]
    ReplayRefused(String),
}

/// The plugins folder itself is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The folder cannot be listed.
    #[error("cannot read the plugins folder {dir}: {source}")]
    UnreadableDir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The plugins folder cannot be watched.
    #[error("cannot watch the plugins folder {dir}: {source}")]
    Watch {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The private folder for library copies cannot be made.
    #[error("cannot create a private folder for plugin copies at {dir}: {source}")]
    PrivateDir {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The crash journal (`[worker] crash_journal`) cannot be read or written.
    #[error("cannot use the crash journal: {0}")]
    CrashJournal(String),
    /// The memory of which build serves each plugin version cannot be read.
    #[error("cannot read {}, which remembers the build of each plugin version: {source}", file.display())]
    BuildMemory {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
