//! Every call the host makes into a plugin's function table, in the process that loaded
//! it (the host, in-process; the plugin's child, under process isolation): the request
//! encoded, the function called, the answer decoded. An answer that does not decode
//! fails the work item (`PluginPanic`), so every call ends in a response.
//!
//! The calls themselves are safe: `ffi` checked the table's layout when the library was
//! loaded (every `unsafe` of the host is there); the functions the plugin calls back are
//! in `callbacks` (in the host) and `isolation::child_main` (in a child).

use std::future::Future;

use abi_stable::std_types::{RResult, RSlice};
use durabletask_abi::{
    FieldedLogFn, HostCallbacks, PluginDescription, PluginModuleRef, error_types, failure,
};

use super::ffi::PluginLibrary;
use durabletask_proto as proto;
use prost::Message;

use super::callbacks;
use crate::worker::EntityWork;

/// Hands the plugin the host's callbacks and runs its registrations: the first plugin
/// code that runs (after the log-fields extension's `enable`, which only keeps the host's
/// callback). The error is the plugin's own message (a registration panicked, say).
/// A plugin with the log-fields extension first gets `fielded_log`, so that its events,
/// those of its registrations included, keep their fields apart.
pub(crate) fn init(
    library: &PluginLibrary,
    host: HostCallbacks,
    fielded_log: FieldedLogFn,
) -> Result<PluginDescription, String> {
    if let Some(extension) = library.log_fields {
        (extension.enable)(fielded_log);
    }
    let init = library.module.init();
    match init(host) {
        RResult::ROk(description) => Ok(description),
        RResult::RErr(message) => Err(message.into_string()),
    }
}

/// Runs one orchestration step, synchronously, on the calling thread.
pub(crate) fn run_orchestrator(
    module: PluginModuleRef,
    request: &proto::OrchestratorRequest,
) -> proto::OrchestratorResponse {
    let response = run_orchestrator_bytes(module, &request.encode_to_vec());
    decode_orchestrator_response(&response, &request.instance_id)
}

/// [`run_orchestrator`] on an encoded request, answering the encoded response.
pub(crate) fn run_orchestrator_bytes(module: PluginModuleRef, request: &[u8]) -> Vec<u8> {
    let run = module.run_orchestrator();
    run(RSlice::from_slice(request)).into_vec()
}

/// Starts an activity when the returned future is first polled; the future ends with
/// the response the plugin reports through the completion callback. The activity runs
/// on the plugin's own runtime, so the future borrows nothing from the plugin: whoever
/// awaits it keeps the generation alive meanwhile.
pub(crate) fn start_activity(
    module: PluginModuleRef,
    request: &proto::ActivityRequest,
) -> impl Future<Output = proto::ActivityResponse> + Send + 'static {
    let instance_id = durabletask_abi::activity::instance_id(request).to_owned();
    let task_id = request.task_id;
    let bytes = request.encode_to_vec();
    async move {
        let (token, completion) = callbacks::expect_activity_completion();
        let pending = PendingActivity { token };
        // Returns at once: the activity runs on the plugin's runtime and reports
        // through the completion callback.
        start_activity_bytes(module, &bytes, token);
        let response = completion.await;
        drop(pending);
        match response {
            Ok(bytes) => decode_activity_response(&bytes, &instance_id, task_id),
            Err(_) => failure::activity(
                instance_id,
                task_id,
                failure::details(
                    error_types::PLUGIN_PANIC,
                    "the plugin dropped the activity without completing it",
                ),
            ),
        }
    }
}

/// Starts an activity from its encoded request; it completes through the callbacks
/// with `token`.
pub(crate) fn start_activity_bytes(module: PluginModuleRef, request: &[u8], token: u64) {
    let start = module.start_activity();
    start(RSlice::from_slice(request), token);
}

/// Runs an entity batch: synchronous, like an orchestration step.
pub(crate) fn run_entity_batch(
    module: PluginModuleRef,
    work: EntityWork,
) -> proto::EntityBatchResult {
    let (shape, bytes) = work.encode();
    let result = run_entity_batch_bytes(module, shape, &bytes);
    decode_entity_batch_result(&result, work)
}

/// [`run_entity_batch`] on an encoded request of the ABI's `shape`.
pub(crate) fn run_entity_batch_bytes(
    module: PluginModuleRef,
    shape: u8,
    request: &[u8],
) -> Vec<u8> {
    let run = module.run_entity_batch();
    run(shape, RSlice::from_slice(request)).into_vec()
}

/// Stops the plugin's runtime. Activities still running complete with a failure.
pub(crate) fn shutdown(module: PluginModuleRef) {
    let shutdown = module.shutdown();
    shutdown();
}

/// A plugin's encoded `OrchestratorResponse`, or the failure that says it did not decode.
pub(crate) fn decode_orchestrator_response(
    bytes: &[u8],
    instance_id: &str,
) -> proto::OrchestratorResponse {
    proto::OrchestratorResponse::decode(bytes).unwrap_or_else(|error| {
        failure::orchestration(
            instance_id.to_owned(),
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

/// A plugin's encoded `ActivityResponse`, or the failure that says it did not decode.
pub(crate) fn decode_activity_response(
    bytes: &[u8],
    instance_id: &str,
    task_id: i32,
) -> proto::ActivityResponse {
    proto::ActivityResponse::decode(bytes).unwrap_or_else(|error| {
        failure::activity(
            instance_id.to_owned(),
            task_id,
            failure::details(
                error_types::PLUGIN_PANIC,
                format!("the plugin returned an ActivityResponse that does not decode: {error}"),
            ),
        )
    })
}

/// A plugin's encoded `EntityBatchResult`, or every operation failed because it did not
/// decode.
pub(crate) fn decode_entity_batch_result(
    bytes: &[u8],
    work: EntityWork,
) -> proto::EntityBatchResult {
    proto::EntityBatchResult::decode(bytes).unwrap_or_else(|error| {
        failure::every_operation(
            work,
            failure::details(
                error_types::PLUGIN_PANIC,
                format!("the plugin returned an EntityBatchResult that does not decode: {error}"),
            ),
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
