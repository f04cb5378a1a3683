//! The plugin host as the worker's [`WorkItemExecutor`]: each work item goes to the
//! generation `routing` picks (or is answered on the plugins' behalf when none serves
//! it) and runs there through `calls`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use durabletask_proto as proto;
use futures::future::BoxFuture;

use super::generation::Generation;
use super::plugin_host::PluginHost;
use super::routing::{self, Refusal};
use super::watchdog::Call;
use crate::worker::{ActivityOwner, EntityWork, OrchestratorOutcome, WorkItemExecutor};

/// A step slower than this is logged: it held up every other work item.
const SLOW_STEP: Duration = Duration::from_millis(100);

impl WorkItemExecutor for PluginHost {
    fn execute_entity(&self, work: EntityWork) -> BoxFuture<'static, proto::EntityBatchResult> {
        let result = match routing::entity(&self.catalog(), &work) {
            Ok(generation) => {
                let entity_id = work.instance_id();
                let _watched =
                    self.watchdog
                        .enter(call(&generation, "entity batch", entity_id, entity_id));
                generation.plugin().run_entity_batch(work)
            }
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
        let sticky_routes = Arc::clone(&self.sticky);
        let watchdog = Arc::clone(&self.watchdog);
        Box::pin(async move {
            // Orchestration steps run right here, on the event loop. A step is replay of
            // pure, deterministic code (no I/O, by the rules of orchestrations) and takes
            // microseconds; handing it to another thread cost more than the step itself.
            // A step that does block is reported, so the offending orchestrator is named.
            // The generation is held until the step is done: a generation retired
            // meanwhile finishes it.
            let started = Instant::now();
            let watched = watchdog.enter(call(
                &generation,
                "orchestration step",
                orchestrator_name(&request),
                &request.instance_id,
            ));
            let response = generation.plugin().run_orchestrator(&request);
            drop(watched);
            let elapsed = started.elapsed();
            if elapsed > SLOW_STEP {
                tracing::warn!(
                    instance_id = request.instance_id,
                    elapsed_ms = elapsed.as_millis(),
                    "an orchestration step took long and held up the worker loop; orchestrator code must not block (no I/O, no sleeps, no heavy computation: use activities)"
                );
            }
            if completes(&response) {
                sticky_routes.forget(&response.instance_id);
            }
            OrchestratorOutcome::Completed(response)
        })
    }

    fn activity_owner(&self, name: &str) -> Option<ActivityOwner> {
        self.catalog()
            .activity(name)
            .map(|generation| ActivityOwner {
                key: generation.plugin().content_hash.clone(),
                label: generation.label(),
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
        let activity = generation.plugin().start_activity(&request);
        let watchdog = Arc::clone(&self.watchdog);
        let instance_id = request
            .orchestration_instance
            .map(|instance| instance.instance_id)
            .unwrap_or_default();
        let name = request.name;
        Box::pin(async move {
            let mut activity = std::pin::pin!(activity);
            // The first poll starts the activity, which the plugin polls once in place:
            // plugin code on the loop, watched like a step.
            let first = {
                let _watched = watchdog.enter(call(
                    &generation,
                    "activity (first poll)",
                    &name,
                    &instance_id,
                ));
                futures::poll!(activity.as_mut())
            };
            // Held until the activity is done: a generation retired meanwhile finishes it.
            let _generation = generation;
            match first {
                std::task::Poll::Ready(response) => response,
                std::task::Poll::Pending => activity.await,
            }
        })
    }
}

/// What the watchdog says of a call into `generation`.
fn call(generation: &Generation, kind: &'static str, name: &str, instance_id: &str) -> Call {
    let plugin = generation.plugin();
    Call {
        plugin: format!("{} {}", plugin.name, plugin.version),
        kind,
        name: name.to_owned(),
        instance_id: instance_id.to_owned(),
    }
}

/// The orchestrator's name, from `executionStarted` in the new or past events.
fn orchestrator_name(request: &proto::OrchestratorRequest) -> &str {
    use proto::history_event::EventType;
    request
        .past_events
        .iter()
        .chain(request.new_events.iter())
        .find_map(|event| match &event.event_type {
            Some(EventType::ExecutionStarted(started)) => Some(started.name.as_str()),
            _ => None,
        })
        .unwrap_or_default()
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
