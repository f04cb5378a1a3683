//! Replaying a recorded history against a plugin generation, as the host would run a
//! step of it (in its child process or in this one): would this build carry on the
//! orchestration the history belongs to, or fail it? The request and the judgement are
//! the shared ones of `durabletask_abi::replay`, which also says what a replay proves.

pub use durabletask_abi::replay::Verdict;
use durabletask_proto as proto;

use super::calls;
use super::generation::Generation;
use super::loaded_plugin::Runner;

/// Replays `history` of `instance_id` against `generation`, in its child process or in
/// this one, as the host would run a step of it, with the worker settings the host adds
/// to every step (`properties`: a split timer replays only with the same
/// `maximum_timer_interval`). A replay that crashes the plugin's process is not run again:
/// the crash is its verdict.
pub async fn replay(
    generation: &Generation,
    instance_id: &str,
    history: Vec<proto::HistoryEvent>,
    properties: &[(String, prost_types::Value)],
) -> Verdict {
    let mut request = durabletask_abi::replay::request(instance_id, history);
    request.properties.extend(properties.iter().cloned());
    let response = match &generation.plugin().runner {
        Runner::InProcess(module) => calls::run_orchestrator(*module, &request),
        Runner::Process(supervisor) => {
            let what = format!("the replay of orchestration instance {instance_id}");
            supervisor
                .orchestrator_step(&request, &what, None, true)
                .await
        }
    };
    durabletask_abi::replay::judge(&request.past_events, &response)
}
