//! Turning each work item from the stream into a task.
//!
//! Dispatch never waits: the stream is read as fast as the backend sends, and each item
//! becomes a task that waits for a permit of its kind (the configured concurrency), runs,
//! and completes. The backend is told our limits in `GetWorkItemsRequest`, so the number
//! of tasks waiting for a permit stays bounded on backends that honour them.

use std::sync::Arc;
use std::time::Duration;

use durabletask_proto::work_item::Request;
use durabletask_proto::{ActivityRequest, OrchestratorRequest, WorkItem};
use tokio::sync::Semaphore;

use super::completion::{self, CurrentClient};
use super::executor::WorkItemExecutor;
use super::in_flight::{InFlight, Unfinished, WorkKind};
use crate::config::WorkerSettings;

/// Entities are not supported yet, so their work items are abandoned. The wait stops a
/// backend that redelivers at once (the reference one does) from spinning with us.
const ENTITY_ABANDON_DELAY: Duration = Duration::from_secs(1);

pub struct Dispatcher {
    shared: Arc<Shared>,
    in_flight: Arc<InFlight>,
}

struct Shared {
    executor: Arc<dyn WorkItemExecutor>,
    orchestration_permits: Semaphore,
    activity_permits: Semaphore,
    client: CurrentClient,
}

impl Dispatcher {
    pub fn new(
        settings: &WorkerSettings,
        executor: Arc<dyn WorkItemExecutor>,
        client: CurrentClient,
        in_flight: Arc<InFlight>,
    ) -> Self {
        let permits = |limit: u32| Semaphore::new(usize::try_from(limit).unwrap_or(usize::MAX));
        Self {
            shared: Arc::new(Shared {
                executor,
                orchestration_permits: permits(settings.max_concurrent_orchestrations),
                activity_permits: permits(settings.max_concurrent_activities),
                client,
            }),
            in_flight,
        }
    }

    /// Starts work on one item. Every accepted item ends in a completion or an abandon
    /// (or, for activities cut off by shutdown, a log line): none is dropped silently.
    pub fn dispatch(&self, item: WorkItem) {
        let token = item.completion_token;
        match item.request {
            Some(Request::OrchestratorRequest(request)) => self.orchestration(request, token),
            Some(Request::ActivityRequest(request)) => self.activity(request, token),
            Some(Request::EntityRequest(request)) => {
                self.unsupported_entity(request.instance_id, token)
            }
            Some(Request::EntityRequestV2(request)) => {
                self.unsupported_entity(request.instance_id, token)
            }
            Some(Request::HealthPing(_)) => {}
            None => tracing::warn!(
                completion_token = %token,
                "ignoring a work item of a kind this host does not know"
            ),
        }
    }

    fn orchestration(&self, request: OrchestratorRequest, token: String) {
        let instance_id = request.instance_id.clone();
        tracing::debug!(instance_id, "orchestration work item received");
        let item = Unfinished::new(
            WorkKind::Orchestration,
            instance_id.clone(),
            None,
            token.clone(),
        );
        let shared = Arc::clone(&self.shared);
        self.in_flight.spawn(item, async move {
            // The semaphore is never closed; a failure here would only mean shutdown.
            let Ok(_permit) = shared.orchestration_permits.acquire().await else {
                return;
            };
            let mut response = shared.executor.execute_orchestrator(request).await;
            response.completion_token = token;
            if response.instance_id.is_empty() {
                response.instance_id = instance_id;
            }
            completion::complete_orchestration(&shared.client, response).await;
        });
    }

    fn activity(&self, request: ActivityRequest, token: String) {
        let instance_id = request
            .orchestration_instance
            .as_ref()
            .map(|instance| instance.instance_id.clone())
            .unwrap_or_default();
        let task_id = request.task_id;
        tracing::debug!(instance_id, task_id, name = %request.name, "activity work item received");
        let item = Unfinished::new(
            WorkKind::Activity,
            instance_id.clone(),
            Some(task_id),
            token.clone(),
        );
        let shared = Arc::clone(&self.shared);
        self.in_flight.spawn(item, async move {
            let Ok(_permit) = shared.activity_permits.acquire().await else {
                return;
            };
            let mut response = shared.executor.execute_activity(request).await;
            response.completion_token = token;
            if response.instance_id.is_empty() {
                response.instance_id = instance_id;
                response.task_id = task_id;
            }
            completion::complete_activity(&shared.client, response).await;
        });
    }

    fn unsupported_entity(&self, instance_id: String, token: String) {
        tracing::warn!(
            instance_id,
            "entities are not supported by this host yet; abandoning the entity work item"
        );
        let item = Unfinished::new(WorkKind::Entity, instance_id.clone(), None, token.clone());
        let shared = Arc::clone(&self.shared);
        self.in_flight.spawn(item, async move {
            tokio::time::sleep(ENTITY_ABANDON_DELAY).await;
            completion::abandon_entity(&shared.client, &instance_id, &token).await;
        });
    }
}
