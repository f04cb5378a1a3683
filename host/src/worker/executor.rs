//! The seam between the work-item loop and whatever runs user code (the plugin host).
//!
//! The loop only moves protobuf messages: it hands a request to the executor, waits for
//! the response, stamps the completion token on it and sends it back. Everything about
//! plugins, replay and user errors lives behind this trait.

use durabletask_proto::{
    ActivityRequest, ActivityResponse, OrchestratorRequest, OrchestratorResponse,
};
use futures::future::BoxFuture;

pub trait WorkItemExecutor: Send + Sync + 'static {
    /// Runs one orchestration step. Never fails: failures are encoded in the response (instance_id set; completion_token left empty).
    fn execute_orchestrator(
        &self,
        request: OrchestratorRequest,
    ) -> BoxFuture<'static, OrchestratorResponse>;
    /// Runs one activity. Never fails: failures are encoded in the response (instance_id, task_id set; completion_token left empty).
    fn execute_activity(&self, request: ActivityRequest) -> BoxFuture<'static, ActivityResponse>;
}
