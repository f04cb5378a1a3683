//! The seam between the work-item loop and whatever runs user code (the plugin host).
//!
//! The loop only moves protobuf messages: it hands a request to the executor, waits for
//! the response, stamps the completion token on it and sends it back. Everything about
//! plugins, replay and user errors lives behind this trait.

use durabletask_proto::{
    ActivityRequest, ActivityResponse, EntityBatchResult, OrchestratorRequest, OrchestratorResponse,
};
use futures::future::BoxFuture;

pub trait WorkItemExecutor: Send + Sync + 'static {
    /// Runs one orchestration step, or declines it. Never fails: failures are encoded in
    /// the response (instance_id set; completion_token left empty).
    fn execute_orchestrator(
        &self,
        request: OrchestratorRequest,
    ) -> BoxFuture<'static, OrchestratorOutcome>;
    /// Runs one activity. Never fails: failures are encoded in the response (instance_id, task_id set; completion_token left empty).
    fn execute_activity(&self, request: ActivityRequest) -> BoxFuture<'static, ActivityResponse>;
    /// Runs one entity batch. Never fails: each operation's failure is in its result
    /// (completion_token left empty).
    fn execute_entity(&self, request: EntityWork) -> BoxFuture<'static, EntityBatchResult>;
    /// Which plugin generation would run activity `name` now, for the per-plugin permits
    /// and log lines; `None` when none would (the activity then fails at once).
    fn activity_owner(&self, _name: &str) -> Option<ActivityOwner> {
        None
    }
}

/// The plugin generation that runs an activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityOwner {
    /// Tells generations apart (the build's content hash): each has permits of its own,
    /// so a fixed build dropped in beside one whose activities hang gets to run.
    pub key: String,
    /// `plugin-name version`, for log lines.
    pub label: String,
}

/// What became of an orchestration work item.
#[derive(Debug, Clone)]
pub enum OrchestratorOutcome {
    /// It ran (or failed): send this response.
    Completed(OrchestratorResponse),
    /// This worker must not run it (a version it does not serve, under the `reject`
    /// failure strategy): abandon it so the backend hands it to another worker.
    Rejected {
        /// Why, for the log.
        reason: String,
    },
}

/// An entity work item in either of the protocol's shapes: the type plugins take, so it
/// crosses the ABI as it came.
pub use durabletask_abi::entity::EntityWorkItem as EntityWork;
