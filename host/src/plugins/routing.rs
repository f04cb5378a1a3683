//! Picks the plugin that serves a work item, by orchestrator or activity name, and
//! answers on the plugins' behalf when none does.

use std::collections::HashMap;
use std::sync::Arc;

use durabletask_proto as proto;
use durabletask_sdk::error_types;
use proto::history_event::EventType;

use super::LoadedPlugin;
use crate::worker::EntityWork;

/// Name → plugin tables. When two plugins register the same name, the first loaded
/// (plugins load in file-name order) keeps it and the clash is logged.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    orchestrators: HashMap<String, Arc<LoadedPlugin>>,
    activities: HashMap<String, Arc<LoadedPlugin>>,
    /// By lowercase entity name.
    entities: HashMap<String, Arc<LoadedPlugin>>,
}

impl Routes {
    pub(crate) fn new(plugins: &[Arc<LoadedPlugin>]) -> Self {
        let mut routes = Routes::default();
        for plugin in plugins {
            for name in &plugin.orchestrators {
                claim(&mut routes.orchestrators, "orchestrator", name, plugin);
            }
            for name in &plugin.activities {
                claim(&mut routes.activities, "activity", name, plugin);
            }
            for name in &plugin.entities {
                claim(&mut routes.entities, "entity", &name.to_lowercase(), plugin);
            }
        }
        routes
    }

    /// The plugin for an orchestration, or the response that fails it.
    pub(crate) fn orchestrator(
        &self,
        request: &proto::OrchestratorRequest,
    ) -> Result<Arc<LoadedPlugin>, Box<proto::OrchestratorResponse>> {
        let Some(name) = orchestration_name(request) else {
            return Err(Box::new(failed_orchestration(
                request.instance_id.clone(),
                error_types::ORCHESTRATION_STATE_ERROR,
                "the work item's history has no executionStarted event, so the orchestrator to run is unknown".to_owned(),
            )));
        };
        self.orchestrators.get(name).cloned().ok_or_else(|| {
            Box::new(failed_orchestration(
                request.instance_id.clone(),
                error_types::ORCHESTRATOR_NOT_REGISTERED,
                format!("no loaded plugin registers an orchestrator named '{name}'"),
            ))
        })
    }

    /// The plugin for an activity, or the response that fails it.
    pub(crate) fn activity(
        &self,
        request: &proto::ActivityRequest,
    ) -> Result<Arc<LoadedPlugin>, Box<proto::ActivityResponse>> {
        self.activities.get(&request.name).cloned().ok_or_else(|| {
            Box::new(failed_activity(
                request
                    .orchestration_instance
                    .as_ref()
                    .map(|instance| instance.instance_id.clone())
                    .unwrap_or_default(),
                request.task_id,
                error_types::ACTIVITY_NOT_REGISTERED,
                format!(
                    "no loaded plugin registers an activity named '{}'",
                    request.name
                ),
            ))
        })
    }
}

impl Routes {
    /// The plugin for an entity batch, by the name in `@name@key` (case-insensitive), or
    /// the result that fails every operation of the batch.
    pub(crate) fn entity(
        &self,
        work: &EntityWork,
    ) -> Result<Arc<LoadedPlugin>, Box<proto::EntityBatchResult>> {
        let plugin = entity_name(work.instance_id())
            .and_then(|name| self.entities.get(&name.to_lowercase()));
        match plugin {
            Some(plugin) => Ok(Arc::clone(plugin)),
            // The host's own copy of the SDK answers: with no entity registered it fails
            // each operation (`EntityNotRegistered`, or `InvalidInput` for an id that is
            // not `@name@key`), keeping `operationInfos` aligned exactly as plugins do.
            None => Err(Box::new(
                durabletask_sdk::Registry::new().run_entity_batch(to_sdk(work.clone())),
            )),
        }
    }
}

/// The name in `@name@key`, if the id has that shape.
fn entity_name(instance_id: &str) -> Option<&str> {
    let rest = instance_id.strip_prefix('@')?;
    let (name, key) = rest.split_once('@')?;
    (!name.is_empty() && !key.is_empty()).then_some(name)
}

fn to_sdk(work: EntityWork) -> durabletask_sdk::EntityWorkItem {
    match work {
        EntityWork::V1(request) => durabletask_sdk::EntityWorkItem::V1(request),
        EntityWork::V2(request) => durabletask_sdk::EntityWorkItem::V2(request),
    }
}

/// A batch result that fails every operation, for a plugin that answered nonsense.
pub(crate) fn failed_entity_batch(
    work: &EntityWork,
    error_type: &str,
    message: &str,
) -> proto::EntityBatchResult {
    let mut result = durabletask_sdk::Registry::new().run_entity_batch(to_sdk(work.clone()));
    for operation in &mut result.results {
        operation.result_type = Some(proto::operation_result::ResultType::Failure(
            proto::OperationResultFailure {
                failure_details: Some(failure(error_type, message.to_owned())),
                ..Default::default()
            },
        ));
    }
    result
}

fn claim(
    table: &mut HashMap<String, Arc<LoadedPlugin>>,
    kind: &str,
    name: &str,
    plugin: &Arc<LoadedPlugin>,
) {
    if let Some(owner) = table.get(name) {
        tracing::warn!(
            "{kind} '{name}' is registered by both {} {} and {} {}; {} keeps it",
            owner.name,
            owner.version,
            plugin.name,
            plugin.version,
            owner.name
        );
        return;
    }
    table.insert(name.to_owned(), Arc::clone(plugin));
}

fn orchestration_name(request: &proto::OrchestratorRequest) -> Option<&str> {
    request
        .past_events
        .iter()
        .chain(&request.new_events)
        .find_map(|event| match &event.event_type {
            Some(EventType::ExecutionStarted(started)) => Some(started.name.as_str()),
            _ => None,
        })
}

/// A response that fails the orchestration before any plugin ran. Action id 1: this
/// is the first action of a first execution, as in the reference worker.
pub(crate) fn failed_orchestration(
    instance_id: String,
    error_type: &str,
    message: String,
) -> proto::OrchestratorResponse {
    use proto::orchestrator_action::OrchestratorActionType;
    proto::OrchestratorResponse {
        instance_id,
        actions: vec![proto::OrchestratorAction {
            id: 1,
            orchestrator_action_type: Some(OrchestratorActionType::CompleteOrchestration(
                proto::CompleteOrchestrationAction {
                    orchestration_status: proto::OrchestrationStatus::Failed as i32,
                    failure_details: Some(failure(error_type, message)),
                    ..Default::default()
                },
            )),
        }],
        ..Default::default()
    }
}

/// A failed activity response produced by the host itself.
pub(crate) fn failed_activity(
    instance_id: String,
    task_id: i32,
    error_type: &str,
    message: String,
) -> proto::ActivityResponse {
    proto::ActivityResponse {
        instance_id,
        task_id,
        failure_details: Some(failure(error_type, message)),
        ..Default::default()
    }
}

fn failure(error_type: &str, message: String) -> proto::TaskFailureDetails {
    proto::TaskFailureDetails {
        error_type: error_type.to_owned(),
        error_message: message,
        ..Default::default()
    }
}
