//! The plugin host as the worker's [`WorkItemExecutor`]: each work item goes to the
//! generation `routing` picks (or is answered on the plugins' behalf when none serves
//! it) and runs there through `calls`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use durabletask_proto as proto;
use futures::future::BoxFuture;

use super::plugin_host::PluginHost;
use super::routing::{self, Refusal};
use crate::worker::{EntityWork, OrchestratorOutcome, WorkItemExecutor};

/// A step slower than this is logged: it held up every other work item.
const SLOW_STEP: Duration = Duration::from_millis(100);

impl WorkItemExecutor for PluginHost {
    fn execute_entity(&self, work: EntityWork) -> BoxFuture<'static, proto::EntityBatchResult> {
        let result = match routing::entity(&self.catalog(), &work) {
            Ok(generation) => generation.plugin().run_entity_batch(work),
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
        Box::pin(async move {
            // Orchestration steps run right here, on the event loop. A step is replay of
            // pure, deterministic code (no I/O, by the rules of orchestrations) and takes
            // microseconds; handing it to another thread cost more than the step itself.
            // A step that does block is reported, so the offending orchestrator is named.
            // The generation is held until the step is done: a generation retired
            // meanwhile finishes it.
            let started = Instant::now();
            let response = generation.plugin().run_orchestrator(&request);
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

    fn execute_activity(
        &self,
        request: proto::ActivityRequest,
    ) -> BoxFuture<'static, proto::ActivityResponse> {
        let generation = match routing::activity(&self.catalog(), &request) {
            Ok(generation) => generation,
            Err(response) => return Box::pin(std::future::ready(*response)),
        };
        let activity = generation.plugin().start_activity(&request);
        Box::pin(async move {
            // Held until the activity is done: a generation retired meanwhile finishes it.
            let _generation = generation;
            activity.await
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
