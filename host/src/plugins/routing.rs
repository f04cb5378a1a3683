//! Picks the plugin that serves a work item, by orchestrator or activity name, and
//! answers on the plugins' behalf when none does.

use std::collections::HashMap;
use std::sync::Arc;

use durabletask_proto as proto;
use durabletask_sdk::error_types;
use proto::history_event::EventType;

use super::LoadedPlugin;

/// Name → plugin tables. When two plugins register the same name, the first loaded
/// (plugins load in file-name order) keeps it and the clash is logged.
#[derive(Debug, Default)]
pub(crate) struct Routes {
    orchestrators: HashMap<String, Arc<LoadedPlugin>>,
    activities: HashMap<String, Arc<LoadedPlugin>>,
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
