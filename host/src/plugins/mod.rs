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
//! - [`callbacks`] are the functions the host lends plugins (logs, activity completion);
//! - [`manager`] turns the plugins folder into the [`generation`]s in service, and
//!   [`watcher`] rescans it when it changes (hot swap);
//! - [`inventory`] lists a folder for `durabletask-host plugins`;
//! - [`catalog`] maps names to generations; [`routing`] picks the generation for a work
//!   item (orchestrations by name and version);
//! - this module ties them into [`PluginHost`], the worker's [`WorkItemExecutor`].

mod callbacks;
pub mod catalog;
mod elf;
mod ffi;
pub mod generation;
mod inventory;
mod loader;
mod manager;
mod private_dir;
mod routing;
mod sticky;
mod trust;
mod watcher;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use abi_stable::std_types::RSlice;
use durabletask_abi::PluginModuleRef;
use durabletask_abi::properties::{DEFAULT_VERSION_PROPERTY, MAXIMUM_TIMER_INTERVAL_PROPERTY};
use durabletask_abi::{error_types, failure};
use durabletask_proto as proto;
use futures::future::BoxFuture;
use prost::Message;

use tokio::sync::watch;

use crate::config::VersioningSettings;
use crate::worker::{EntityWork, OrchestratorOutcome, WorkItemExecutor};
use catalog::Catalog;
pub use inventory::{Inventory, inventory};
use manager::Manager;
use routing::Refusal;
use sticky::StickyRoutes;

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
}

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
    module: PluginModuleRef,
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
}

impl Default for PluginHostSettings {
    /// Strict about permissions: a forgotten setting must not make the host less safe.
    fn default() -> Self {
        Self {
            dir: PathBuf::new(),
            strict_permissions: true,
            maximum_timer_interval: None,
            versioning: None,
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
    versioning: Option<VersioningSettings>,
    /// The generation each orchestration without a generation of its own version runs
    /// on, so that a new version dropped in mid-run does not take it over.
    sticky: Arc<StickyRoutes>,
    /// Added to every orchestration request's `properties`: the worker settings the
    /// plugins' replay engines read.
    properties: Vec<(String, prost_types::Value)>,
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
        let private_dir =
            private_dir::PrivateDir::create().map_err(|source| PluginError::PrivateDir {
                dir: std::env::temp_dir(),
                source,
            })?;
        let mut manager = Manager::new(
            settings.dir.clone(),
            private_dir,
            trust::Policy::new(settings.strict_permissions),
        );
        let change = manager
            .scan()
            .map_err(|source| PluginError::UnreadableDir {
                dir: settings.dir.clone(),
                source,
            })?;
        log_change(&change);
        // Later scans (hot swap) wait for a changed file to settle before reading it.
        manager.settle_changes();
        if manager.active().is_empty() {
            tracing::warn!(dir = %settings.dir.display(), "no plugin loaded: every work item will fail as not registered");
        }
        let (catalog, _) = watch::channel(Arc::new(Catalog::new(manager.active().to_vec())));
        Ok(Arc::new(PluginHost {
            manager: Mutex::new(manager),
            catalog,
            versioning: settings.versioning.clone(),
            sticky: Arc::default(),
            properties: request_properties(settings),
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
        let change = match manager.scan() {
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

    /// The generations in service and who serves which name, now.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.borrow())
    }

    /// A receiver that sees every new catalog.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.subscribe()
    }

    /// Stops every generation's runtime. Activities still running complete with a failure.
    pub fn shutdown(&self) {
        for generation in self.catalog().generations() {
            let shutdown = generation.plugin().module.shutdown();
            shutdown();
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

/// One line per generation put in or taken out of service, and per library refused or
/// ignored.
fn log_change(change: &manager::Change) {
    for (file, error) in &change.refused {
        tracing::error!("refused plugin {}: {error}", file.display());
    }
    for (file, reason) in &change.ignored {
        tracing::warn!("ignored plugin {}: {reason}", file.display());
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
            orchestrators = ?plugin.orchestrators,
            activities = ?plugin.activities,
            entities = ?plugin.entities,
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

/// A step slower than this is logged: it held up every other work item.
const SLOW_STEP: std::time::Duration = std::time::Duration::from_millis(100);

/// The `OrchestratorRequest.properties` entries that carry the worker's settings: the
/// timer chunking interval (absent or zero = off) and the version sub-orchestrations
/// started without one get (`[versioning] default_version`).
fn request_properties(settings: &PluginHostSettings) -> Vec<(String, prost_types::Value)> {
    use prost_types::value::Kind;
    let interval = settings
        .maximum_timer_interval
        .filter(|interval| !interval.is_zero())
        .map(|interval| {
            (
                MAXIMUM_TIMER_INTERVAL_PROPERTY,
                Kind::NumberValue(interval.as_secs_f64()),
            )
        });
    let default_version = settings
        .versioning
        .as_ref()
        .and_then(|versioning| versioning.default_version.clone())
        .map(|version| (DEFAULT_VERSION_PROPERTY, Kind::StringValue(version)));
    interval
        .into_iter()
        .chain(default_version)
        .map(|(key, kind)| (key.to_owned(), prost_types::Value { kind: Some(kind) }))
        .collect()
}

impl WorkItemExecutor for PluginHost {
    fn execute_entity(&self, work: EntityWork) -> BoxFuture<'static, proto::EntityBatchResult> {
        let result = match routing::entity(&self.catalog(), &work) {
            Ok(generation) => run_entity_batch(generation.plugin(), work),
            Err(result) => *result,
        };
        Box::pin(std::future::ready(result))
    }

    fn execute_orchestrator(
        &self,
        mut request: proto::OrchestratorRequest,
    ) -> BoxFuture<'static, OrchestratorOutcome> {
        let sticky = self.sticky.get(&request.instance_id);
        let catalog = self.catalog();
        let route = routing::orchestrator(
            &catalog,
            self.versioning.as_ref(),
            &request,
            sticky.as_deref(),
        );
        let generation = match route {
            Ok(route) => {
                if !route.exact {
                    self.sticky.remember(
                        &request.instance_id,
                        &route.generation.plugin().content_hash,
                    );
                }
                route.generation
            }
            Err(Refusal::Fail(response)) => {
                return Box::pin(std::future::ready(OrchestratorOutcome::Completed(
                    *response,
                )));
            }
            Err(Refusal::Reject(reason)) => {
                return Box::pin(std::future::ready(OrchestratorOutcome::Rejected { reason }));
            }
        };
        // The host's settings win over anything the backend put under the same keys.
        request.properties.extend(self.properties.iter().cloned());
        let run = generation.plugin().module.run_orchestrator();
        let instance_id = request.instance_id.clone();
        let bytes = request.encode_to_vec();
        let sticky_routes = Arc::clone(&self.sticky);
        Box::pin(async move {
            // Held until the step is done: a generation retired meanwhile finishes it.
            let _generation = generation;
            // Orchestration steps run right here, on the event loop. A step is replay of
            // pure, deterministic code (no I/O, by the rules of orchestrations) and takes
            // microseconds; handing it to another thread cost more than the step itself.
            // A step that does block is reported, so the offending orchestrator is named.
            let started = std::time::Instant::now();
            let response = run(RSlice::from_slice(&bytes));
            let elapsed = started.elapsed();
            if elapsed > SLOW_STEP {
                tracing::warn!(
                    instance_id,
                    elapsed_ms = elapsed.as_millis(),
                    "an orchestration step took long and held up the worker loop; orchestrator code must not block (no I/O, no sleeps, no heavy computation: use activities)"
                );
            }
            let response = proto::OrchestratorResponse::decode(response.as_slice())
                .unwrap_or_else(|error| {
                    failure::orchestration(
                        instance_id,
                        failure::FIRST_ACTION_ID,
                        failure::details(
                            error_types::PLUGIN_PANIC,
                            format!(
                                "the plugin returned an OrchestratorResponse that does not decode: {error}"
                            ),
                        ),
                    )
                });
            if completes(&response) {
                sticky_routes.forget(&response.instance_id);
            }
            OrchestratorOutcome::Completed(response)
        })
    }

    fn execute_activity(
        &self,
        request: proto::ActivityRequest,
    ) -> BoxFuture<'static, proto::ActivityResponse> {
        let generation = match routing::activity(&self.catalog(), &request) {
            Ok(generation) => generation,
            Err(response) => return Box::pin(std::future::ready(*response)),
        };
        let start = generation.plugin().module.start_activity();
        let instance_id = request
            .orchestration_instance
            .as_ref()
            .map(|instance| instance.instance_id.clone())
            .unwrap_or_default();
        let task_id = request.task_id;
        let bytes = request.encode_to_vec();
        Box::pin(async move {
            // Held until the activity is done: a generation retired meanwhile finishes it.
            let _generation = generation;
            let (token, completion) = callbacks::expect_activity_completion();
            let pending = PendingActivity { token };
            // Returns at once: the activity runs on the plugin's runtime and reports
            // through the completion callback.
            start(RSlice::from_slice(&bytes), token);
            let response = completion.await;
            drop(pending);
            let details = match response {
                Ok(bytes) => match proto::ActivityResponse::decode(bytes.as_slice()) {
                    Ok(response) => return response,
                    Err(error) => failure::details(
                        error_types::PLUGIN_PANIC,
                        format!(
                            "the plugin returned an ActivityResponse that does not decode: {error}"
                        ),
                    ),
                },
                Err(_) => failure::details(
                    error_types::PLUGIN_PANIC,
                    "the plugin dropped the activity without completing it",
                ),
            };
            failure::activity(instance_id, task_id, details)
        })
    }
}

/// Whether the response ends this execution of the orchestration (completed, failed,
/// terminated or continued as new).
fn completes(response: &proto::OrchestratorResponse) -> bool {
    use proto::orchestrator_action::OrchestratorActionType;
    response.actions.iter().any(|action| {
        matches!(
            action.orchestrator_action_type,
            Some(OrchestratorActionType::CompleteOrchestration(_))
        )
    })
}

/// Runs an entity batch in a plugin: synchronous, like an orchestration step.
fn run_entity_batch(plugin: &LoadedPlugin, work: EntityWork) -> proto::EntityBatchResult {
    let (shape, bytes) = work.encode();
    let run = plugin.module.run_entity_batch();
    let result = run(shape, RSlice::from_slice(&bytes));
    proto::EntityBatchResult::decode(result.as_slice()).unwrap_or_else(|error| {
        failure::every_operation(
            work,
            failure::details(
                error_types::PLUGIN_PANIC,
                format!("the plugin returned an EntityBatchResult that does not decode: {error}"),
            ),
        )
    })
}

/// Forgets the activity's token if its work item is dropped before the plugin answers.
struct PendingActivity {
    token: u64,
}

impl Drop for PendingActivity {
    fn drop(&mut self) {
        callbacks::forget_activity(self.token);
    }
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
