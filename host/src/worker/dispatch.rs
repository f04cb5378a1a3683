//! Turning each work item from the stream into a task.
//!
//! Dispatch never waits: the stream is read as fast as the backend sends, and each item
//! becomes a task that waits for a permit of its kind (the configured concurrency), runs,
//! and completes. The backend is told our limits in `GetWorkItemsRequest`, so the number
//! of tasks waiting for a permit stays bounded on backends that honour them. Activities
//! also wait for a permit of their plugin generation first ([`ActivityPermits`]).

use std::sync::Arc;

use durabletask_proto::work_item::Request;
use durabletask_proto::{ActivityRequest, OrchestratorRequest, WorkItem};
use tokio::sync::Semaphore;

use super::activity_watch;
use super::completion::{self, CurrentClient};
use super::executor::{EntityWork, OrchestratorOutcome, WorkItemExecutor};
use super::in_flight::{InFlight, Unfinished, WorkKind};
use super::permits::{ActivityPermits, NoPermit};
use crate::config::WorkerSettings;
use crate::telemetry;

/// How long a rejected orchestration work item is held before it is abandoned.
const REJECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long an activity waits for a permit of a plugin that gives none back before it is
/// handed back to a backend that hands it out again (see [`Dispatcher::new`]). Short, so
/// that other plugins' activities get the backend's leases soon; a plugin that is merely
/// busy gives permits back within it, and only a stalled one has its waiting activities
/// cycle through the backend, each once per period.
const STALL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Dispatcher {
    shared: Arc<Shared>,
    in_flight: Arc<InFlight>,
}

struct Shared {
    executor: Arc<dyn WorkItemExecutor>,
    orchestration_permits: Semaphore,
    activity_permits: ActivityPermits,
    entity_permits: Semaphore,
    /// How long an activity waits for its stalled plugin before it is handed back, if
    /// the backend hands abandoned activities out again.
    stall_patience: Option<std::time::Duration>,
    /// `[worker] activity_timeout` and `long_activity_threshold`.
    activity_limits: activity_watch::Limits,
    client: CurrentClient,
}

impl Dispatcher {
    /// `redelivers_abandoned_activities`: the backend hands an abandoned activity out
    /// again (the embedded one does; the reference one loses it). Then an activity that
    /// waits for a stalled plugin is handed back, so that the backend's
    /// `maxConcurrentActivityWorkItems` leases, which waiting activities count against,
    /// go to other plugins' work. Elsewhere it waits for as long as it takes.
    pub fn new(
        settings: &WorkerSettings,
        executor: Arc<dyn WorkItemExecutor>,
        client: CurrentClient,
        in_flight: Arc<InFlight>,
        redelivers_abandoned_activities: bool,
    ) -> Self {
        for (kind, limit) in [
            (
                WorkKind::Orchestration,
                settings.max_concurrent_orchestrations,
            ),
            (WorkKind::Activity, settings.max_concurrent_activities),
            (WorkKind::Entity, settings.max_concurrent_entities),
        ] {
            metrics::gauge!(telemetry::CONCURRENCY_LIMIT, "kind" => telemetry::kind_label(kind))
                .set(f64::from(limit));
        }
        let permits = |limit: u32| Semaphore::new(usize::try_from(limit).unwrap_or(usize::MAX));
        Self {
            shared: Arc::new(Shared {
                executor,
                orchestration_permits: permits(settings.max_concurrent_orchestrations),
                activity_permits: ActivityPermits::new(
                    settings.max_concurrent_activities,
                    settings.activities_per_plugin(),
                ),
                entity_permits: permits(settings.max_concurrent_entities),
                stall_patience: redelivers_abandoned_activities.then_some(STALL_PATIENCE),
                activity_limits: activity_watch::Limits {
                    timeout: settings.activity_timeout,
                    report_after: settings.long_activity_threshold,
                },
                client,
            }),
            in_flight,
        }
    }

    /// Waits until work of `item`'s kind could start at once: every permit of that kind
    /// is not already spoken for. The session calls it before reading the next item, so
    /// a backend that ignores our `maxConcurrent*` (the reference one does) is held back
    /// by HTTP/2 flow control instead of filling our memory with queued work items.
    /// Activities waiting for a permit of their plugin do not count: they hold no host
    /// permit, so a plugin whose activities hang does not stop the stream (their own
    /// bound is [`ActivityPermits::wait_for_capacity`]'s).
    pub async fn wait_for_capacity(&self, kind: Option<WorkKind>) {
        let permits = match kind {
            Some(WorkKind::Orchestration) => &self.shared.orchestration_permits,
            Some(WorkKind::Activity) => {
                self.shared.activity_permits.wait_for_capacity().await;
                return;
            }
            Some(WorkKind::Entity) => &self.shared.entity_permits,
            None => return,
        };
        // The semaphore is fair: this waits behind every task already queued for a
        // permit, and gives the permit straight back.
        drop(permits.acquire().await);
    }

    /// Starts work on one item and says which kind it was. Every accepted item ends in a
    /// completion or an abandon (or, for activities cut off by shutdown, a log line):
    /// none is dropped silently.
    pub fn dispatch(&self, item: WorkItem) -> Option<WorkKind> {
        let kind = self.start(item);
        if let Some(kind) = kind {
            metrics::counter!(telemetry::WORK_ITEMS_RECEIVED, "kind" => telemetry::kind_label(kind))
                .increment(1);
        }
        kind
    }

    fn start(&self, item: WorkItem) -> Option<WorkKind> {
        let token = item.completion_token;
        match item.request {
            Some(Request::OrchestratorRequest(request)) => {
                self.orchestration(request, token);
                Some(WorkKind::Orchestration)
            }
            Some(Request::ActivityRequest(request)) => {
                self.activity(request, token);
                Some(WorkKind::Activity)
            }
            Some(Request::EntityRequest(request)) => {
                self.entity(EntityWork::V1(request), token);
                Some(WorkKind::Entity)
            }
            Some(Request::EntityRequestV2(request)) => {
                self.entity(EntityWork::V2(request), token);
                Some(WorkKind::Entity)
            }
            Some(Request::HealthPing(_)) => None,
            None => {
                tracing::warn!(
                    completion_token = %token,
                    "ignoring a work item of a kind this host does not know"
                );
                None
            }
        }
    }

    fn orchestration(&self, mut request: OrchestratorRequest, token: String) {
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
            let Ok(permit) = shared.orchestration_permits.acquire().await else {
                return;
            };
            if let Err(error) = super::history::complete_request(&shared.client, &mut request).await
            {
                drop(permit);
                tracing::warn!(
                    instance_id,
                    %error,
                    "could not read the streamed history; abandoning the work item for redelivery"
                );
                tokio::time::sleep(REJECT_PAUSE).await;
                completion::abandon_orchestration(&shared.client, &instance_id, &token).await;
                return;
            }
            let outcome = shared.executor.execute_orchestrator(request).await;
            match outcome {
                OrchestratorOutcome::Completed(mut response) => {
                    response.completion_token = token;
                    if response.instance_id.is_empty() {
                        response.instance_id = instance_id;
                    }
                    completion::complete_orchestration(&shared.client, response).await;
                    drop(permit);
                }
                OrchestratorOutcome::Rejected { reason } => {
                    drop(permit);
                    tracing::debug!(
                        instance_id,
                        reason,
                        "rejected: abandoning the work item for another worker"
                    );
                    // Some backends (the reference one) hand an abandoned item straight
                    // back: a pause keeps a rejecting worker from spinning on it.
                    tokio::time::sleep(REJECT_PAUSE).await;
                    completion::abandon_orchestration(&shared.client, &instance_id, &token).await;
                }
            }
        });
    }

    fn activity(&self, request: ActivityRequest, token: String) {
        let instance_id = durabletask_abi::activity::instance_id(&request).to_owned();
        let task_id = request.task_id;
        tracing::debug!(instance_id, task_id, name = %request.name, "activity work item received");
        let item = Unfinished::new(
            WorkKind::Activity,
            instance_id.clone(),
            Some(task_id),
            token.clone(),
        )
        .named(&request.name);
        let shared = Arc::clone(&self.shared);
        self.in_flight.spawn(item, async move {
            // Looked up when the activity starts waiting: a generation put in service
            // meanwhile may run it, under the permits of the one that was current.
            let owner = shared.executor.activity_owner(&request.name);
            let acquired = shared
                .activity_permits
                .acquire(owner.as_ref(), shared.stall_patience)
                .await;
            let _permit = match acquired {
                Ok(permit) => permit,
                Err(NoPermit::Stalled) => {
                    tracing::debug!(
                        instance_id,
                        task_id,
                        name = %request.name,
                        plugin = owner.as_ref().map(|owner| owner.label.as_str()),
                        "the activity's plugin gives no permit back; handing the activity back to the backend for later"
                    );
                    completion::abandon_activity(&shared.client, &instance_id, &token).await;
                    return;
                }
                Err(NoPermit::Closed) => return,
            };
            let name = request.name.clone();
            let running = activity_watch::Running {
                name: &name,
                instance_id: &instance_id,
                task_id,
                plugin: owner.as_ref().map(|owner| owner.label.as_str()),
            };
            // The clock starts once the activity runs: waiting for a permit does not count.
            let limits = shared.activity_limits.for_activity(&request.tags, running);
            let activity = shared.executor.execute_activity(request);
            let mut response = activity_watch::watch(activity, running, limits).await;
            response.completion_token = token;
            if response.instance_id.is_empty() {
                response.instance_id = instance_id;
                response.task_id = task_id;
            }
            completion::complete_activity(&shared.client, response).await;
        });
    }

    fn entity(&self, work: EntityWork, token: String) {
        let instance_id = work.instance_id().to_owned();
        tracing::debug!(instance_id, "entity work item received");
        let item = Unfinished::new(WorkKind::Entity, instance_id, None, token.clone());
        let shared = Arc::clone(&self.shared);
        self.in_flight.spawn(item, async move {
            let Ok(_permit) = shared.entity_permits.acquire().await else {
                return;
            };
            let mut result = shared.executor.execute_entity(work).await;
            result.completion_token = token;
            completion::complete_entity(&shared.client, result).await;
        });
    }
}
