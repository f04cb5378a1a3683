//! Plugins: loading cdylib plugins and running work items in them.
//!
//! - [`loader`] finds libraries and loads each from a private copy;
//! - [`ffi`] holds every `unsafe` call and the checks made before plugin code runs;
//! - [`callbacks`] are the functions the host lends plugins (logs, activity completion);
//! - [`routing`] picks the plugin for a work item by orchestrator or activity name;
//! - this module ties them into [`PluginHost`], the worker's [`WorkItemExecutor`].

mod callbacks;
mod ffi;
mod loader;
mod private_dir;
mod routing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::RSlice;
use durabletask_proto as proto;
use durabletask_sdk::abi::{ENTITY_BATCH_V1, ENTITY_BATCH_V2, PluginModuleRef};
use durabletask_sdk::error_types;
use durabletask_sdk::orchestration::MAXIMUM_TIMER_INTERVAL_PROPERTY;
use futures::future::BoxFuture;
use prost::Message;

use crate::worker::{EntityWork, WorkItemExecutor};
use routing::Routes;

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

/// The loaded plugins, and the executor the worker hands its work items to.
#[derive(Debug)]
pub struct PluginHost {
    plugins: Vec<Arc<LoadedPlugin>>,
    routes: Routes,
    /// Added to every orchestration request's `properties`: the worker settings the
    /// plugins' replay engines read.
    properties: Vec<(String, prost_types::Value)>,
    /// Where the loaded copies live, until the host stops.
    _private_dir: private_dir::PrivateDir,
}

impl PluginHost {
    /// Loads every plugin library in `dir`. A library that fails to load is logged (one
    /// line naming the file and the reason) and skipped; only an unreadable folder is an
    /// error.
    ///
    /// `maximum_timer_interval` (`[worker]`'s setting; `None` = off) is passed to the
    /// plugins with every orchestration request, so that they split longer timers.
    pub fn start(
        dir: &Path,
        maximum_timer_interval: Option<Duration>,
    ) -> Result<Arc<PluginHost>, PluginError> {
        let libraries = loader::discover(dir).map_err(|source| PluginError::UnreadableDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let private_dir =
            private_dir::PrivateDir::create().map_err(|source| PluginError::PrivateDir {
                dir: std::env::temp_dir(),
                source,
            })?;

        let mut plugins = Vec::new();
        for library in libraries {
            match loader::load(&library, private_dir.path()) {
                Ok(plugin) => {
                    tracing::info!(
                        plugin = %plugin.name,
                        plugin_version = %plugin.version,
                        file = %library.display(),
                        orchestrators = ?plugin.orchestrators,
                        activities = ?plugin.activities,
                        entities = ?plugin.entities,
                        "loaded plugin"
                    );
                    plugins.push(Arc::new(plugin));
                }
                Err(error) => {
                    tracing::error!("refused plugin {}: {error}", library.display());
                }
            }
        }
        if plugins.is_empty() {
            tracing::warn!(dir = %dir.display(), "no plugin loaded: every work item will fail as not registered");
        }
        let routes = Routes::new(&plugins);
        Ok(Arc::new(PluginHost {
            plugins,
            routes,
            properties: request_properties(maximum_timer_interval),
            _private_dir: private_dir,
        }))
    }

    /// The plugins that loaded.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// Stops every plugin's runtime. Activities still running complete with a failure.
    pub fn shutdown(&self) {
        for plugin in &self.plugins {
            let shutdown = plugin.module.shutdown();
            shutdown();
        }
    }
}

/// A step slower than this is logged: it held up every other work item.
const SLOW_STEP: std::time::Duration = std::time::Duration::from_millis(100);

/// The `OrchestratorRequest.properties` entries that carry the worker's settings.
fn request_properties(
    maximum_timer_interval: Option<Duration>,
) -> Vec<(String, prost_types::Value)> {
    maximum_timer_interval
        .filter(|interval| !interval.is_zero())
        .map(|interval| {
            (
                MAXIMUM_TIMER_INTERVAL_PROPERTY.to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::NumberValue(
                        interval.as_secs_f64(),
                    )),
                },
            )
        })
        .into_iter()
        .collect()
}

impl WorkItemExecutor for PluginHost {
    fn execute_entity(&self, work: EntityWork) -> BoxFuture<'static, proto::EntityBatchResult> {
        let result = match self.routes.entity(&work) {
            Ok(plugin) => run_entity_batch(&plugin, work),
            Err(result) => *result,
        };
        Box::pin(std::future::ready(result))
    }

    fn execute_orchestrator(
        &self,
        mut request: proto::OrchestratorRequest,
    ) -> BoxFuture<'static, proto::OrchestratorResponse> {
        let plugin = match self.routes.orchestrator(&request) {
            Ok(plugin) => plugin,
            Err(response) => return Box::pin(std::future::ready(*response)),
        };
        // The host's settings win over anything the backend put under the same keys.
        request.properties.extend(self.properties.iter().cloned());
        let run = plugin.module.run_orchestrator();
        let instance_id = request.instance_id.clone();
        let bytes = request.encode_to_vec();
        Box::pin(async move {
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
            proto::OrchestratorResponse::decode(response.as_slice()).unwrap_or_else(|error| {
                routing::failed_orchestration(
                    instance_id,
                    error_types::PLUGIN_PANIC,
                    format!(
                        "the plugin returned an OrchestratorResponse that does not decode: {error}"
                    ),
                )
            })
        })
    }

    fn execute_activity(
        &self,
        request: proto::ActivityRequest,
    ) -> BoxFuture<'static, proto::ActivityResponse> {
        let plugin = match self.routes.activity(&request) {
            Ok(plugin) => plugin,
            Err(response) => return Box::pin(std::future::ready(*response)),
        };
        let start = plugin.module.start_activity();
        let instance_id = request
            .orchestration_instance
            .as_ref()
            .map(|instance| instance.instance_id.clone())
            .unwrap_or_default();
        let task_id = request.task_id;
        let bytes = request.encode_to_vec();
        Box::pin(async move {
            let (token, completion) = callbacks::expect_activity_completion();
            let pending = PendingActivity { token };
            // Returns at once: the activity runs on the plugin's runtime and reports
            // through the completion callback.
            start(RSlice::from_slice(&bytes), token);
            let response = completion.await;
            drop(pending);
            match response {
                Ok(bytes) => proto::ActivityResponse::decode(bytes.as_slice()).unwrap_or_else(|error| {
                    routing::failed_activity(
                        instance_id,
                        task_id,
                        error_types::PLUGIN_PANIC,
                        format!("the plugin returned an ActivityResponse that does not decode: {error}"),
                    )
                }),
                Err(_) => routing::failed_activity(
                    instance_id,
                    task_id,
                    error_types::PLUGIN_PANIC,
                    "the plugin dropped the activity without completing it".to_owned(),
                ),
            }
        })
    }
}

/// Runs an entity batch in a plugin: synchronous, like an orchestration step.
fn run_entity_batch(plugin: &LoadedPlugin, work: EntityWork) -> proto::EntityBatchResult {
    let (shape, bytes) = match &work {
        EntityWork::V1(request) => (ENTITY_BATCH_V1, request.encode_to_vec()),
        EntityWork::V2(request) => (ENTITY_BATCH_V2, request.encode_to_vec()),
    };
    let run = plugin.module.run_entity_batch();
    let result = run(shape, RSlice::from_slice(&bytes));
    proto::EntityBatchResult::decode(result.as_slice()).unwrap_or_else(|error| {
        routing::failed_entity_batch(
            &work,
            error_types::PLUGIN_PANIC,
            &format!("the plugin returned an EntityBatchResult that does not decode: {error}"),
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
        assert!(request_properties(None).is_empty());
        assert!(request_properties(Some(Duration::ZERO)).is_empty());
        let properties = request_properties(Some(Duration::from_millis(2500)));
        assert_eq!(properties.len(), 1);
        let (key, value) = &properties[0];
        assert_eq!(key, MAXIMUM_TIMER_INTERVAL_PROPERTY);
        assert_eq!(value.kind, Some(prost_types::value::Kind::NumberValue(2.5)));
    }
}
