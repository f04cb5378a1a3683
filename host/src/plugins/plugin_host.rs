//! The plugin host's lifecycle: it loads the plugins folder at start, rescans it (on
//! SIGHUP and, with `[plugins] watch`, when it changes), publishes each new catalog of
//! generations, and shuts every generation down at the end. Running work items in them
//! is `executor`'s job.

use super::watchdog::{self, Watchdog};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durabletask_abi::properties::{DEFAULT_VERSION_PROPERTY, MAXIMUM_TIMER_INTERVAL_PROPERTY};
use tokio::sync::watch;

use super::build_memory::BuildMemory;
use super::catalog::Catalog;
use super::crash_journal::{CrashJournal, JournalError};
use super::error::PluginError;
use super::isolation::IsolationSettings;
use super::manager::{self, Manager};
use super::replay_gate::ReplayGate;
use super::sticky::StickyRoutes;
use super::watcher;
use crate::config::VersioningSettings;

/// How long plugin processes have to stop when the host exits, before they are killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the plugin host needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct PluginHostSettings {
    /// The plugins folder.
    pub dir: PathBuf,
    /// `[plugins] strict_permissions`: refuse a library others could have written (else
    /// load it with a warning).
    pub strict_permissions: bool,
    /// `[worker] maximum_timer_interval` (`None` = off), passed to the plugins with every
    /// orchestration request so that they split longer timers.
    pub maximum_timer_interval: Option<Duration>,
    /// `[versioning]`, if the file has that section: which generation runs which
    /// orchestration version.
    pub versioning: Option<VersioningSettings>,
    /// `[worker] crash_journal` and `max_crashes`; `None` when `max_crashes = 0`: no
    /// journal, work items are run however often they crashed the host.
    pub crash_journal: Option<CrashJournalSettings>,
    /// `[plugins] isolation` and the limits of plugins' child processes.
    pub isolation: IsolationSettings,
    /// Where the build of each plugin version put in service is remembered across
    /// restarts (`Config::build_memory`); `None`: for this process only.
    pub build_memory: Option<PathBuf>,
}

/// Where the crash journal is and when a work item is poison.
#[derive(Debug, Clone)]
pub struct CrashJournalSettings {
    /// The journal file.
    pub path: PathBuf,
    /// A work item that was inside a plugin this many times when the host died is failed
    /// with `PluginCrashed` instead of run again (at least 1).
    pub max_crashes: u32,
    /// The backend is remote: other workers of the task hub may run the same work item,
    /// and their crashes are not in this host's journal.
    pub remote: bool,
}

impl Default for PluginHostSettings {
    /// Strict about permissions: a forgotten setting must not make the host less safe.
    fn default() -> Self {
        Self {
            dir: PathBuf::new(),
            strict_permissions: true,
            maximum_timer_interval: None,
            versioning: None,
            crash_journal: None,
            isolation: IsolationSettings::new(
                &crate::config::PluginSettings::default(),
                std::env::current_exe().unwrap_or_default(),
            ),
            build_memory: None,
        }
    }
}

/// What a [`PluginHost::rescan`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rescan {
    /// The generations in service changed.
    pub changed: bool,
    /// A changed file waits to settle: scan again shortly.
    pub settling: bool,
}

/// The plugin generations in service, and the executor the worker hands its work items
/// to.
pub struct PluginHost {
    manager: Mutex<Manager>,
    /// The current catalog; work items read it, the work-item filters follow it.
    catalog: watch::Sender<Arc<Catalog>>,
    pub(super) versioning: Option<VersioningSettings>,
    /// The generation each orchestration without a generation of its own version runs
    /// on, so that a new version dropped in mid-run does not take it over.
    pub(super) sticky: Arc<StickyRoutes>,
    /// `[plugins] verify_replay`: asked before a library deployed while the host runs
    /// goes in service; set once the backend is known ([`PluginHost::enable_replay_gate`]).
    replay_gate: std::sync::OnceLock<ReplayGate>,
    /// Added to every orchestration request's `properties`: the worker settings the
    /// plugins' replay engines read.
    pub(super) properties: Vec<(String, prost_types::Value)>,
    /// Reports plugin calls that hold up the event loop while they run.
    pub(super) watchdog: Arc<Watchdog>,
    /// Which work items are inside a plugin, on disk, and how many times each was when
    /// the host died; `None` when `[worker] max_crashes = 0`.
    pub(super) crash_journal: Option<Arc<CrashJournal>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("generations", &self.catalog().generations())
            .finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Loads every plugin library in the folder. A library that fails to load is logged
    /// (one line naming the file and the reason) and skipped; only an unreadable folder
    /// is an error.
    pub fn start(settings: &PluginHostSettings) -> Result<Arc<PluginHost>, PluginError> {
        let builds = match &settings.build_memory {
            Some(file) => {
                BuildMemory::open(file, true).map_err(|source| PluginError::BuildMemory {
                    file: file.clone(),
                    source,
                })?
            }
            None => BuildMemory::default(),
        };
        let (mut manager, change) = Manager::first_scan(
            &settings.dir,
            settings.strict_permissions,
            settings.isolation.clone(),
            builds,
        )?;
        log_change(&change);
        // Later scans (hot swap) wait for a changed file to settle before reading it.
        manager.settle_changes();
        if manager.active().is_empty() {
            tracing::warn!(dir = %settings.dir.display(), "no plugin loaded: every work item will fail as not registered");
        }
        let crash_journal = match &settings.crash_journal {
            Some(journal) => open_crash_journal(journal)?,
            None => None,
        };
        let (catalog, _) = watch::channel(Arc::new(Catalog::new(manager.active().to_vec())));
        Ok(Arc::new(PluginHost {
            manager: Mutex::new(manager),
            catalog,
            versioning: settings.versioning.clone(),
            sticky: Arc::default(),
            replay_gate: std::sync::OnceLock::new(),
            properties: request_properties(settings),
            watchdog: Arc::new(Watchdog::start(watchdog::STILL_RUNNING)),
            crash_journal,
        }))
    }

    /// Rescans the plugins folder when it changes (`[plugins] watch`), on a thread of its
    /// own, for as long as the host lives.
    pub fn watch(self: &Arc<Self>) -> Result<(), PluginError> {
        let dir = self.lock_manager().dir().to_path_buf();
        watcher::spawn(Arc::downgrade(self), &dir)
            .map_err(|source| PluginError::Watch { dir, source })
    }

    /// Reads the plugins folder again and puts its changes in service. A new or changed
    /// file is read once it looks the same in two scans in a row; until then the outcome
    /// says `settling`, and the caller should scan again shortly. Errors are logged: a
    /// folder that cannot be read changes nothing.
    pub fn rescan(&self) -> Rescan {
        let mut manager = self.lock_manager();
        let scanned = match self.replay_gate.get() {
            Some(gate) => manager.scan_gated(&mut |generation, active| {
                gate.admit(generation, active, &self.properties)
            }),
            None => manager.scan(),
        };
        let change = match scanned {
            Ok(change) => change,
            Err(error) => {
                tracing::error!(dir = %manager.dir().display(), "cannot read the plugins folder: {error}");
                return Rescan::default();
            }
        };
        log_change(&change);
        let changed = change.changes_service();
        if changed {
            self.catalog
                .send_replace(Arc::new(Catalog::new(manager.active().to_vec())));
        }
        Rescan {
            changed,
            settling: change.settling,
        }
    }

    /// From now on, a library deployed while the host runs goes in service only if
    /// `gate` admits it (`[plugins] verify_replay`). Only the first gate counts.
    pub fn enable_replay_gate(&self, gate: ReplayGate) {
        let _ = self.replay_gate.set(gate);
    }

    /// The generations in service and who serves which name, now.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.borrow())
    }

    /// A receiver that sees every new catalog.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.subscribe()
    }

    /// Stops every generation's runtime. Activities still running complete with a failure.
    /// The crash journal is left with nothing open: what still ran did not crash.
    pub fn shutdown(&self) {
        // Every child is asked to stop at once; then each is waited for (or killed) by
        // one shared deadline, so the host leaves no plugin process behind.
        let stopping: Vec<_> = self
            .catalog()
            .generations()
            .iter()
            .filter_map(|generation| generation.plugin().begin_shutdown())
            .collect();
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        for child in stopping {
            child.wait(deadline);
        }
        if let Some(journal) = &self.crash_journal {
            journal.close();
        }
    }

    fn lock_manager(&self) -> std::sync::MutexGuard<'_, Manager> {
        // A panic while scanning leaves nothing half-done that matters: the next scan
        // compares the folder afresh.
        self.manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Opens the crash journal and says what it found. A journal another host holds leaves
/// this one without (logged); one that cannot be read or written stops the start, as a
/// bad setting.
fn open_crash_journal(
    settings: &CrashJournalSettings,
) -> Result<Option<Arc<CrashJournal>>, PluginError> {
    let (journal, recovery) = match CrashJournal::open(&settings.path, settings.max_crashes) {
        Ok(opened) => opened,
        Err(error @ JournalError::Held { .. }) => {
            tracing::warn!(
                "{error}: this host runs without one, so work items that crash it are run again however often they do"
            );
            return Ok(None);
        }
        Err(error) => return Err(PluginError::CrashJournal(error.to_string())),
    };
    if recovery.open > 0 {
        tracing::warn!(
            journal = %settings.path.display(),
            running = recovery.open,
            counted = recovery.suspects,
            "the last host stopped without a clean shutdown while work items were inside plugins: {} of them counted as having crashed it; at {} crashes a work item is failed with PluginCrashed instead of run",
            recovery.suspects,
            settings.max_crashes
        );
    }
    tracing::info!(
        journal = %settings.path.display(),
        max_crashes = settings.max_crashes,
        with_crashes = recovery.counted,
        "crash journal open"
    );
    if settings.remote {
        tracing::info!(
            "the crash journal counts only this host's crashes: a work item that crashed other workers of the task hub starts here from zero"
        );
    }
    Ok(Some(journal))
}

/// One line per generation put in or taken out of service, and per library refused or
/// ignored.
fn log_change(change: &manager::Change) {
    for (event, count) in [
        ("loaded", change.added.len()),
        ("retired", change.retired.len()),
        ("refused", change.refused.len()),
        ("ignored", change.ignored.len()),
    ] {
        if count > 0 {
            metrics::counter!(crate::telemetry::PLUGIN_EVENTS, "event" => event)
                .increment(count as u64);
        }
    }
    for (file, error) in &change.refused {
        tracing::error!("refused plugin {}: {error}", file.display());
    }
    for (file, reason) in &change.ignored {
        tracing::warn!("ignored plugin {}: {reason}", file.display());
    }
    for (file, reason) in &change.waiting {
        tracing::warn!(
            "not yet in service: plugin {} waits for its replay check ([plugins] verify_replay): {reason}; it is checked again at the next scan",
            file.display()
        );
    }
    for (file, reason) in &change.untrusted {
        tracing::warn!(
            "loading plugin {} although its permissions are unsafe ([plugins] strict_permissions = false): {reason}",
            file.display()
        );
    }
    for generation in &change.added {
        let plugin = generation.plugin();
        tracing::info!(
            plugin = %plugin.name,
            plugin_version = %plugin.version,
            file = %plugin.source.display(),
            build = %plugin.content_hash,
            // Comma-separated text, not Rust's debug form: a JSON log keeps it readable.
            orchestrators = %plugin.orchestrators.join(", "),
            activities = %plugin.activities.join(", "),
            entities = %plugin.entities.join(", "),
            "loaded plugin {}: in service",
            generation.label()
        );
    }
    for generation in &change.retired {
        let plugin = generation.plugin();
        tracing::info!(
            plugin = %plugin.name,
            plugin_version = %plugin.version,
            file = %plugin.source.display(),
            "retired plugin {}: its file is gone; it takes no new work and finishes what it started",
            generation.label()
        );
    }
}

/// The `OrchestratorRequest.properties` entries that carry the worker's settings: the
/// timer chunking interval (absent or zero = off) and the version sub-orchestrations
/// started without one get (`[versioning] default_version`).
fn request_properties(settings: &PluginHostSettings) -> Vec<(String, prost_types::Value)> {
    worker_properties(
        settings.maximum_timer_interval,
        settings.versioning.as_ref(),
    )
}

/// The worker settings the host adds to every orchestration request's `properties`
/// (`[worker] maximum_timer_interval`, `[versioning] default_version`), which the plugins'
/// replay engines read: a replay check passes the same.
pub fn worker_properties(
    maximum_timer_interval: Option<Duration>,
    versioning: Option<&VersioningSettings>,
) -> Vec<(String, prost_types::Value)> {
    use prost_types::value::Kind;
    let interval = maximum_timer_interval
        .filter(|interval| !interval.is_zero())
        .map(|interval| {
            (
                MAXIMUM_TIMER_INTERVAL_PROPERTY,
                Kind::NumberValue(interval.as_secs_f64()),
            )
        });
    let default_version = versioning
        .and_then(|versioning| versioning.default_version.clone())
        .map(|version| (DEFAULT_VERSION_PROPERTY, Kind::StringValue(version)));
    interval
        .into_iter()
        .chain(default_version)
        .map(|(key, kind)| (key.to_owned(), prost_types::Value { kind: Some(kind) }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maximum_timer_interval_is_passed_in_seconds_and_only_when_set() {
        let with_interval = |interval| PluginHostSettings {
            maximum_timer_interval: interval,
            ..Default::default()
        };
        assert!(request_properties(&with_interval(None)).is_empty());
        assert!(request_properties(&with_interval(Some(Duration::ZERO))).is_empty());
        let properties = request_properties(&with_interval(Some(Duration::from_millis(2500))));
        assert_eq!(properties.len(), 1);
        let (key, value) = &properties[0];
        assert_eq!(key, MAXIMUM_TIMER_INTERVAL_PROPERTY);
        assert_eq!(value.kind, Some(prost_types::value::Kind::NumberValue(2.5)));
    }

    #[test]
    fn the_default_version_is_passed_when_configured() {
        let settings = PluginHostSettings {
            versioning: Some(VersioningSettings {
                default_version: Some("1.2.0".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let properties = request_properties(&settings);
        assert_eq!(properties.len(), 1);
        let (key, value) = &properties[0];
        assert_eq!(key, DEFAULT_VERSION_PROPERTY);
        assert_eq!(
            value.kind,
            Some(prost_types::value::Kind::StringValue("1.2.0".to_owned()))
        );
    }
}
