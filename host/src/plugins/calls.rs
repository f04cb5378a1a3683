//! Every call the host makes into a plugin's function table: the request encoded, the
//! function called, the answer decoded. An answer that does not decode fails the work
//! item (`PluginPanic`), so every call ends in a response.
//!
//! The calls themselves are safe: `ffi` checked the table's layout when the library was
//! loaded (every `unsafe` of the host is there); the functions the plugin calls back are
//! in `callbacks`.

use std::future::Future;

use abi_stable::std_types::{RResult, RSlice};
use durabletask_abi::{HostCallbacks, PluginDescription, PluginModuleRef, error_types, failure};
use durabletask_proto as proto;
use prost::Message;

use super::callbacks;
use super::loaded_plugin::LoadedPlugin;
use crate::worker::EntityWork;

/// Hands the plugin the host's callbacks and runs its registrations: the first plugin
/// code that runs. The error is the plugin's own message (a registration panicked, say).
pub(crate) fn init(
    module: PluginModuleRef,
    host: HostCallbacks,
) -> Result<PluginDescription, String> {
    let init = module.init();
    match init(host) {
        RResult::ROk(description) => Ok(description),
        RResult::RErr(message) => Err(message.into_string()),
    }
}

impl LoadedPlugin {
    /// Runs one orchestration step, synchronously, on the calling thread.
    pub(crate) fn run_orchestrator(
        &self,
        request: &proto::OrchestratorRequest,
    ) -> proto::OrchestratorResponse {
        let run = self.module.run_orchestrator();
        let response = run(RSlice::from_slice(&request.encode_to_vec()));
        proto::OrchestratorResponse::decode(response.as_slice()).unwrap_or_else(|error| {
            failure::orchestration(
                request.instance_id.clone(),
                failure::FIRST_ACTION_ID,
                failure::details(
                    error_types::PLUGIN_PANIC,
                    format!(
                        "the plugin returned an OrchestratorResponse that does not decode: {error}"
                    ),
                ),
            )
        })
    }

    /// Starts an activity when the returned future is first polled; the future ends with
    /// the response the plugin reports through the completion callback. The activity runs
    /// on the plugin's own runtime, so the future borrows nothing from the plugin: whoever
    /// awaits it keeps the generation alive meanwhile.
    pub(crate) fn start_activity(
        &self,
        request: &proto::ActivityRequest,
    ) -> impl Future<Output = proto::ActivityResponse> + Send + 'static {
        let start = self.module.start_activity();
        let instance_id = durabletask_abi::activity::instance_id(request).to_owned();
        let task_id = request.task_id;
        let bytes = request.encode_to_vec();
        async move {
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
        }
    }

    /// Runs an entity batch: synchronous, like an orchestration step.
    pub(crate) fn run_entity_batch(&self, work: EntityWork) -> proto::EntityBatchResult {
        let (shape, bytes) = work.encode();
        let run = self.module.run_entity_batch();
        let result = run(shape, RSlice::from_slice(&bytes));
        proto::EntityBatchResult::decode(result.as_slice()).unwrap_or_else(|error| {
            failure::every_operation(
                work,
                failure::details(
                    error_types::PLUGIN_PANIC,
                    format!(
                        "the plugin returned an EntityBatchResult that does not decode: {error}"
                    ),
                ),
            )
        })
    }

    /// Stops the plugin's runtime. Activities still running complete with a failure.
    pub(crate) fn shutdown(&self) {
        let shutdown = self.module.shutdown();
        shutdown();
    }
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
