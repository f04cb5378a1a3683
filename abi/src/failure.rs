//! The responses that fail a work item, for every place that fails one: the SDK's export
//! layer and replay engine (a request they cannot run), its entity batch runner (an entity
//! it does not have), a plugin's activity that panicked or was dropped, and the host (no
//! plugin for the name, a version no generation serves, an answer it cannot read).
//!
//! The builders echo what identifies the work (the instance id, the activity's task id,
//! each entity operation's `OperationInfo`) and leave `completionToken` empty: the worker
//! stamps the work item's token on every response, failed or not.
//!
//! # Examples
//!
//! ```
//! use durabletask_abi::{error_types, failure};
//!
//! let response = failure::activity(
//!     "order-7",
//!     3,
//!     failure::details(error_types::ACTIVITY_NOT_REGISTERED, "no activity named 'ship'"),
//! );
//! assert_eq!((response.instance_id.as_str(), response.task_id), ("order-7", 3));
//! let details = response.failure_details.unwrap_or_default();
//! assert_eq!(details.error_type, "ActivityNotRegistered");
//! assert!(!details.is_non_retriable);
//! ```

use std::time::SystemTime;

use durabletask_proto as proto;
use proto::operation_result::ResultType;
use proto::orchestrator_action::OrchestratorActionType;

use crate::entity::EntityBatch;

/// The action id of the failure when the replay engine could not run the request at all
/// (it does not decode, has no new events, the plugin is not initialised): the reference
/// worker's outer error path uses -1 (spec §3.1).
pub const REQUEST_FAILED_ACTION_ID: i32 = -1;

/// The action id of the failure when the host fails the orchestration without an answer
/// from a plugin (no plugin registers it, no generation serves its version, the plugin's
/// answer does not decode): the first action of a first execution, as in the reference
/// worker.
pub const FIRST_ACTION_ID: i32 = 1;

/// The failure details of a type and a message, with no stack trace, no cause, and
/// retriable. The message is never empty: the reference backend reads an empty
/// `errorMessage` as "no failure", so an empty message falls back to the type.
///
/// # Examples
///
/// ```
/// use durabletask_abi::failure;
///
/// let details = failure::details("Timeout", "");
/// assert_eq!((details.error_type.as_str(), details.error_message.as_str()), ("Timeout", "Timeout"));
///
/// // Not worth retrying: set the flag on the details.
/// let mut details = failure::details("VersionMismatch", "2.0 is not served here");
/// details.is_non_retriable = true;
/// ```
pub fn details(error_type: &str, message: impl Into<String>) -> proto::TaskFailureDetails {
    let message = message.into();
    let error_message = match (message.is_empty(), error_type.is_empty()) {
        (false, _) => message,
        (true, false) => error_type.to_owned(),
        (true, true) => "unknown error".to_owned(),
    };
    proto::TaskFailureDetails {
        error_type: error_type.to_owned(),
        error_message,
        ..Default::default()
    }
}

/// A response that fails the orchestration: one `CompleteOrchestration` action, status
/// `FAILED`, numbered `action_id` ([`REQUEST_FAILED_ACTION_ID`] or [`FIRST_ACTION_ID`]).
///
/// # Examples
///
/// ```
/// use durabletask_abi::{error_types, failure};
///
/// let response = failure::orchestration(
///     "order-7",
///     failure::FIRST_ACTION_ID,
///     failure::details(error_types::ORCHESTRATOR_NOT_REGISTERED, "no orchestrator named 'ship'"),
/// );
/// assert_eq!(response.instance_id, "order-7");
/// assert_eq!(response.actions[0].id, 1);
/// ```
pub fn orchestration(
    instance_id: impl Into<String>,
    action_id: i32,
    details: proto::TaskFailureDetails,
) -> proto::OrchestratorResponse {
    proto::OrchestratorResponse {
        instance_id: instance_id.into(),
        actions: vec![proto::OrchestratorAction {
            id: action_id,
            orchestrator_action_type: Some(OrchestratorActionType::CompleteOrchestration(
                proto::CompleteOrchestrationAction {
                    orchestration_status: proto::OrchestrationStatus::Failed as i32,
                    failure_details: Some(details),
                    ..Default::default()
                },
            )),
        }],
        ..Default::default()
    }
}

/// A response that fails the activity `task_id` of the orchestration `instance_id`.
pub fn activity(
    instance_id: impl Into<String>,
    task_id: i32,
    details: proto::TaskFailureDetails,
) -> proto::ActivityResponse {
    proto::ActivityResponse {
        instance_id: instance_id.into(),
        task_id,
        failure_details: Some(details),
        ..Default::default()
    }
}

/// The result of one entity operation that failed, run from `started` to `ended`.
pub fn operation(
    details: proto::TaskFailureDetails,
    started: SystemTime,
    ended: SystemTime,
) -> proto::OperationResult {
    proto::OperationResult {
        result_type: Some(ResultType::Failure(proto::OperationResultFailure {
            failure_details: Some(details),
            start_time_utc: Some(started.into()),
            end_time_utc: Some(ended.into()),
        })),
    }
}

/// A batch result in which every operation failed with the same `details` (an entity no
/// plugin registers, an id that is not `@name@key`, an answer the host cannot read): one
/// failed result per operation, in order; no actions; the state as it came (absent when
/// empty); for a v2 work item, the operations' `OperationInfo`s aligned with the
/// results. The backend then commits the batch as it would any other whose operations
/// all failed.
///
/// # Examples
///
/// ```
/// use durabletask_abi::entity::EntityWorkItem;
/// use durabletask_abi::{error_types, failure};
/// use durabletask_proto as proto;
///
/// let work = EntityWorkItem::V1(proto::EntityBatchRequest {
///     instance_id: "@nobody@k".into(),
///     entity_state: Some("5".into()),
///     operations: vec![proto::OperationRequest::default(); 2],
///     ..Default::default()
/// });
/// let result = failure::every_operation(
///     work,
///     failure::details(error_types::ENTITY_NOT_REGISTERED, "no entity named 'nobody'"),
/// );
/// assert_eq!(result.results.len(), 2);
/// assert_eq!(result.entity_state.as_deref(), Some("5"));
/// ```
pub fn every_operation(
    batch: impl Into<EntityBatch>,
    details: proto::TaskFailureDetails,
) -> proto::EntityBatchResult {
    let batch = batch.into();
    let now = SystemTime::now();
    proto::EntityBatchResult {
        results: batch
            .operations
            .iter()
            .map(|_| operation(details.clone(), now, now))
            .collect(),
        entity_state: batch.state.filter(|state| !state.is_empty()),
        operation_infos: batch.infos.unwrap_or_default(),
        ..Default::default()
    }
}

/// A batch result that fails the batch as a whole (`failureDetails`), for a batch that
/// could not be read at all: the backend keeps the entity's state and applies none of
/// the batch.
pub fn entity_batch(details: proto::TaskFailureDetails) -> proto::EntityBatchResult {
    proto::EntityBatchResult {
        failure_details: Some(details),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::EntityWorkItem;
    use crate::error_types;
    use proto::history_event::EventType;

    /// The details a response carries, whatever its kind.
    fn failure_of(details: Option<&proto::TaskFailureDetails>) -> (&str, &str, bool) {
        let details = details.map_or(("", "", false), |details| {
            (
                details.error_type.as_str(),
                details.error_message.as_str(),
                details.is_non_retriable,
            )
        });
        assert_ne!(
            details.1, "",
            "a failure without a message reads as no failure"
        );
        details
    }

    #[test]
    fn details_carry_type_and_message_and_are_retriable() {
        let wire = details(error_types::PLUGIN_PANIC, "index out of bounds");
        assert_eq!(
            failure_of(Some(&wire)),
            ("PluginPanic", "index out of bounds", false)
        );
        assert!(wire.stack_trace.is_none() && wire.inner_failure.is_none());
    }

    #[test]
    fn an_empty_message_falls_back_to_the_type() {
        assert_eq!(details("Timeout", "").error_message, "Timeout");
        assert_eq!(details("", "").error_message, "unknown error");
    }

    #[test]
    fn a_failed_orchestration_completes_it_as_failed_with_the_details() {
        let mut mismatch = details(error_types::VERSION_MISMATCH, "no 2.0 here");
        mismatch.is_non_retriable = true;
        for action_id in [REQUEST_FAILED_ACTION_ID, FIRST_ACTION_ID] {
            let response = orchestration("order-7", action_id, mismatch.clone());
            assert_eq!(response.instance_id, "order-7");
            assert_eq!(response.completion_token, "", "the worker stamps the token");
            assert!(response.custom_status.is_none());
            let [action] = response.actions.as_slice() else {
                panic!("one action: {:?}", response.actions)
            };
            assert_eq!(action.id, action_id);
            let Some(OrchestratorActionType::CompleteOrchestration(complete)) =
                &action.orchestrator_action_type
            else {
                panic!("a completion: {action:?}")
            };
            assert_eq!(
                complete.orchestration_status,
                proto::OrchestrationStatus::Failed as i32
            );
            assert!(complete.result.is_none());
            assert_eq!(
                failure_of(complete.failure_details.as_ref()),
                ("VersionMismatch", "no 2.0 here", true)
            );
        }
    }

    #[test]
    fn a_failed_activity_echoes_its_instance_and_task() {
        let response = activity(
            "order-7",
            3,
            details(error_types::ACTIVITY_NOT_REGISTERED, "no activity 'ship'"),
        );
        assert_eq!(
            (response.instance_id.as_str(), response.task_id),
            ("order-7", 3)
        );
        assert_eq!(response.completion_token, "", "the worker stamps the token");
        assert!(response.result.is_none());
        assert_eq!(
            failure_of(response.failure_details.as_ref()),
            ("ActivityNotRegistered", "no activity 'ship'", false)
        );
    }

    fn operation_request(name: &str) -> proto::OperationRequest {
        proto::OperationRequest {
            operation: name.into(),
            request_id: format!("id-{name}"),
            ..Default::default()
        }
    }

    /// The failure of each result, in order; panics on a success.
    fn failed_results(result: &proto::EntityBatchResult) -> Vec<(&str, &str, bool)> {
        result
            .results
            .iter()
            .map(|result| match &result.result_type {
                Some(ResultType::Failure(failed)) => {
                    assert!(failed.start_time_utc.is_some() && failed.end_time_utc.is_some());
                    failure_of(failed.failure_details.as_ref())
                }
                other => panic!("a failed result: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn every_operation_of_a_v1_batch_fails_and_the_state_stays() {
        let work = EntityWorkItem::V1(proto::EntityBatchRequest {
            instance_id: "@nobody@k".into(),
            entity_state: Some("5".into()),
            operations: vec![operation_request("a"), operation_request("b")],
            ..Default::default()
        });
        let result = every_operation(
            work,
            details(error_types::ENTITY_NOT_REGISTERED, "no entity 'nobody'"),
        );
        let expected = ("EntityNotRegistered", "no entity 'nobody'", false);
        assert_eq!(failed_results(&result), [expected, expected]);
        assert_eq!(result.entity_state.as_deref(), Some("5"));
        assert!(result.actions.is_empty());
        assert!(
            result.operation_infos.is_empty(),
            "v1 is answered without infos"
        );
        assert!(
            result.failure_details.is_none(),
            "the batch itself did not fail"
        );
        assert_eq!(result.completion_token, "", "the worker stamps the token");
    }

    #[test]
    fn every_operation_of_a_v2_batch_fails_with_its_infos_aligned() {
        let event = |event_type| proto::HistoryEvent {
            event_type: Some(event_type),
            ..Default::default()
        };
        let work = EntityWorkItem::V2(proto::EntityRequest {
            instance_id: "@nobody@k".into(),
            entity_state: Some(String::new()),
            operation_requests: vec![
                event(EventType::EntityOperationSignaled(
                    proto::EntityOperationSignaledEvent {
                        request_id: "s1".into(),
                        operation: "add".into(),
                        ..Default::default()
                    },
                )),
                // Not an operation: the backend's business, no result.
                event(EventType::EntityUnlockSent(Default::default())),
                event(EventType::EntityOperationCalled(
                    proto::EntityOperationCalledEvent {
                        request_id: "c1".into(),
                        operation: "get".into(),
                        parent_instance_id: Some("orch-1".into()),
                        ..Default::default()
                    },
                )),
            ],
            ..Default::default()
        });
        let result = every_operation(
            work,
            details(error_types::INVALID_INPUT, "not an entity id"),
        );
        let expected = ("InvalidInput", "not an entity id", false);
        assert_eq!(failed_results(&result), [expected, expected]);
        let infos: Vec<(&str, Option<&str>)> = result
            .operation_infos
            .iter()
            .map(|info| {
                (
                    info.request_id.as_str(),
                    info.response_destination
                        .as_ref()
                        .map(|to| to.instance_id.as_str()),
                )
            })
            .collect();
        assert_eq!(infos, [("s1", None), ("c1", Some("orch-1"))]);
        assert!(result.entity_state.is_none(), "an empty state is no state");
        assert!(result.actions.is_empty());
    }

    #[test]
    fn a_failed_batch_fails_as_a_whole() {
        let result = entity_batch(details(error_types::INVALID_INPUT, "does not decode"));
        assert_eq!(
            failure_of(result.failure_details.as_ref()),
            ("InvalidInput", "does not decode", false)
        );
        assert!(result.results.is_empty() && result.actions.is_empty());
        assert!(result.entity_state.is_none());
        assert_eq!(result.completion_token, "");
    }
}
