//! The payload limit: no input, output, event, result or status larger than
//! [`BackendOptions::max_payload_bytes`](crate::BackendOptions) is ever accepted, so an
//! instance can always be read back (input and output together stay far under the
//! message limit) and no work item grows past what can be sent.
//!
//! Where the payload comes from decides what happens:
//! - a client's call (start, raise event, terminate, signal) is refused with
//!   `RESOURCE_EXHAUSTED` naming the field, its size and the limit;
//! - a worker's result is not refused (the work item would come back forever): an
//!   activity result becomes a failure of the activity (`PayloadTooLarge`), so retry
//!   policies and orchestrator code can react; an orchestration that sends a payload too
//!   large fails with `PayloadTooLarge`;
//! - an entity operation whose result is too large fails (`PayloadTooLarge`), the rest of
//!   its batch stands; a batch whose new entity state or one of whose actions is too large
//!   is not applied at all: every operation fails and the state stays as it was.

use durabletask_proto::operation_action::OperationActionType;
use durabletask_proto::operation_result::ResultType;
use durabletask_proto::orchestrator_action::OrchestratorActionType;
use durabletask_proto::*;
use tonic::Status;

/// The errorType of failures this module makes.
pub const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";

/// The default limit: 16 MiB, so input and output of one instance fit in a message.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct PayloadLimit(pub usize);

impl PayloadLimit {
    fn too_large(self, payload: Option<&String>) -> Option<usize> {
        payload.map(String::len).filter(|&length| length > self.0)
    }

    fn refuse(self, payload: Option<&String>, field: &str) -> Result<(), Status> {
        match self.too_large(payload) {
            Some(length) => Err(Status::resource_exhausted(format!(
                "{field} is {length} bytes; this backend accepts payloads of at most {} bytes (max_payload_bytes)",
                self.0
            ))),
            None => Ok(()),
        }
    }

    pub fn create_instance(self, request: &CreateInstanceRequest) -> Result<(), Status> {
        self.refuse(request.input.as_ref(), "input")
    }

    pub fn raise_event(self, request: &RaiseEventRequest) -> Result<(), Status> {
        self.refuse(request.input.as_ref(), "input")
    }

    pub fn terminate(self, request: &TerminateRequest) -> Result<(), Status> {
        self.refuse(request.output.as_ref(), "output")
    }

    pub fn signal_entity(self, request: &SignalEntityRequest) -> Result<(), Status> {
        self.refuse(request.input.as_ref(), "input")
    }

    /// An activity result too large becomes the activity's failure.
    pub fn activity_response(self, response: &mut ActivityResponse) {
        if let Some(length) = self.too_large(response.result.as_ref()) {
            response.result = None;
            response.failure_details = Some(payload_too_large(format!(
                "the activity's result is {length} bytes; the backend accepts payloads of at most {} bytes",
                self.0
            )));
        }
    }

    /// An orchestration that sends a payload too large (in any action or its custom
    /// status) fails instead: its actions are replaced by that failure.
    pub fn orchestrator_response(self, response: &mut OrchestratorResponse) {
        let mut oversized = self
            .too_large(response.custom_status.as_ref())
            .map(|length| ("customStatus".to_owned(), length));
        for action in &response.actions {
            if oversized.is_some() {
                break;
            }
            let (what, payload) = match &action.orchestrator_action_type {
                Some(OrchestratorActionType::ScheduleTask(task)) => {
                    ("scheduleTask.input", task.input.as_ref())
                }
                Some(OrchestratorActionType::CreateSubOrchestration(sub)) => {
                    ("createSubOrchestration.input", sub.input.as_ref())
                }
                Some(OrchestratorActionType::SendEvent(event)) => {
                    ("sendEvent.data", event.data.as_ref())
                }
                Some(OrchestratorActionType::CompleteOrchestration(complete)) => {
                    ("completeOrchestration.result", complete.result.as_ref())
                }
                Some(OrchestratorActionType::TerminateOrchestration(terminate)) => {
                    ("terminateOrchestration.reason", terminate.reason.as_ref())
                }
                _ => continue,
            };
            oversized = self
                .too_large(payload)
                .map(|length| (format!("action {} {what}", action.id), length));
        }
        let Some((what, length)) = oversized else {
            return;
        };
        let message = format!(
            "{what} is {length} bytes; the backend accepts payloads of at most {} bytes",
            self.0
        );
        replace_with_failure(response, PAYLOAD_TOO_LARGE, message);
    }

    /// An entity batch's payloads: an operation whose result is too large fails (the
    /// caller learns why; like an activity, what the operation did stays done). A new
    /// state or an action (a signal's or a started orchestration's input) too large
    /// cannot be stored, and neither can part of a batch (an action is not tied to the
    /// operation that sent it), so the whole batch is rejected: see
    /// [`EntityBatchCheck::Rejected`].
    pub fn entity_batch_result(self, result: &mut EntityBatchResult) -> EntityBatchCheck {
        let mut oversized = self
            .too_large(result.entity_state.as_ref())
            .map(|length| ("entityState".to_owned(), length));
        for action in &result.actions {
            if oversized.is_some() {
                break;
            }
            let (what, payload) = match &action.operation_action_type {
                Some(OperationActionType::SendSignal(signal)) => {
                    ("sendSignal.input", signal.input.as_ref())
                }
                Some(OperationActionType::StartNewOrchestration(start)) => {
                    ("startNewOrchestration.input", start.input.as_ref())
                }
                None => continue,
            };
            oversized = self
                .too_large(payload)
                .map(|length| (format!("action {} {what}", action.id), length));
        }
        if let Some((what, length)) = oversized {
            let message = format!(
                "the entity's {what} is {length} bytes; the backend accepts payloads of at most {} bytes, so no operation of the batch was applied",
                self.0
            );
            let failure = || OperationResult {
                result_type: Some(ResultType::Failure(OperationResultFailure {
                    failure_details: Some(payload_too_large(message.clone())),
                    ..Default::default()
                })),
            };
            let operations = result.results.len().max(result.operation_infos.len());
            result.results = (0..operations).map(|_| failure()).collect();
            result.actions.clear();
            result.entity_state = None;
            // For an operation the worker sent no result for: the engine reports this.
            result.failure_details = Some(payload_too_large(message.clone()));
            return EntityBatchCheck::Rejected(message);
        }
        for (index, operation) in result.results.iter_mut().enumerate() {
            let length = match &operation.result_type {
                Some(ResultType::Success(success)) => self.too_large(success.result.as_ref()),
                _ => None,
            };
            let Some(length) = length else {
                continue;
            };
            let Some(ResultType::Success(success)) = operation.result_type.take() else {
                continue;
            };
            let message = format!(
                "the result of operation {index} of the entity's batch is {length} bytes; the backend accepts payloads of at most {} bytes",
                self.0
            );
            operation.result_type = Some(ResultType::Failure(OperationResultFailure {
                failure_details: Some(payload_too_large(message)),
                start_time_utc: success.start_time_utc,
                end_time_utc: success.end_time_utc,
            }));
        }
        EntityBatchCheck::Fits
    }
}

/// What [`PayloadLimit::entity_batch_result`] made of an entity batch.
#[derive(Debug, PartialEq, Eq)]
pub enum EntityBatchCheck {
    /// It may be stored (any operation whose result was too large now fails).
    Fits,
    /// Its new state or an action was too large (the message says which): every
    /// operation now fails with `PayloadTooLarge`, the actions and the state are gone,
    /// and `failureDetails` is set: the engine treats it as a batch that failed as a
    /// whole, which leaves the entity's state as it was.
    Rejected(String),
}

fn payload_too_large(message: String) -> TaskFailureDetails {
    TaskFailureDetails {
        error_type: PAYLOAD_TOO_LARGE.to_owned(),
        error_message: message,
        is_non_retriable: true,
        ..Default::default()
    }
}

/// Replaces what a worker answered with the failure of the orchestration (errorType
/// `error_type`, not retriable): none of its actions is applied.
pub fn replace_with_failure(
    response: &mut OrchestratorResponse,
    error_type: &str,
    message: String,
) {
    let id = response
        .actions
        .iter()
        .map(|action| action.id)
        .max()
        .unwrap_or(0);
    response.custom_status = None;
    response.actions = vec![OrchestratorAction {
        id,
        orchestrator_action_type: Some(OrchestratorActionType::CompleteOrchestration(
            CompleteOrchestrationAction {
                orchestration_status: OrchestrationStatus::Failed as i32,
                failure_details: Some(TaskFailureDetails {
                    error_type: error_type.to_owned(),
                    error_message: message,
                    is_non_retriable: true,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
    }];
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn client_payloads_over_the_limit_are_refused_by_name() {
        let limit = PayloadLimit(10);
        let start = |input: &str| CreateInstanceRequest {
            input: Some(input.to_owned()),
            ..Default::default()
        };
        limit.create_instance(&start("0123456789")).unwrap();
        let status = limit.create_instance(&start("0123456789a")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("input is 11 bytes"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("at most 10"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_result_too_large_fails_the_activity_or_the_orchestration() {
        let limit = PayloadLimit(4);
        let mut activity = ActivityResponse {
            result: Some("\"big\"".into()),
            ..Default::default()
        };
        limit.activity_response(&mut activity);
        assert_eq!(activity.result, None);
        assert_eq!(
            activity.failure_details.unwrap().error_type,
            PAYLOAD_TOO_LARGE
        );

        let mut response = OrchestratorResponse {
            actions: vec![OrchestratorAction {
                id: 3,
                orchestrator_action_type: Some(OrchestratorActionType::ScheduleTask(
                    ScheduleTaskAction {
                        input: Some("12345".into()),
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        };
        limit.orchestrator_response(&mut response);
        let Some(OrchestratorActionType::CompleteOrchestration(complete)) =
            &response.actions[0].orchestrator_action_type
        else {
            panic!("{response:?}");
        };
        assert_eq!(
            complete.orchestration_status,
            OrchestrationStatus::Failed as i32
        );
        let details = complete.failure_details.as_ref().unwrap();
        assert!(
            details
                .error_message
                .contains("action 3 scheduleTask.input"),
            "{details:?}"
        );
    }

    fn success(result: &str) -> OperationResult {
        OperationResult {
            result_type: Some(ResultType::Success(OperationResultSuccess {
                result: Some(result.to_owned()),
                ..Default::default()
            })),
        }
    }

    fn failure_of(result: &OperationResult) -> Option<&TaskFailureDetails> {
        match &result.result_type {
            Some(ResultType::Failure(failure)) => failure.failure_details.as_ref(),
            _ => None,
        }
    }

    fn batch(results: &[&str], state: &str, signal_input: &str) -> EntityBatchResult {
        EntityBatchResult {
            results: results.iter().map(|result| success(result)).collect(),
            actions: vec![OperationAction {
                id: 2,
                operation_action_type: Some(OperationActionType::SendSignal(SendSignalAction {
                    instance_id: "@other@key".into(),
                    name: "add".into(),
                    input: Some(signal_input.to_owned()),
                    ..Default::default()
                })),
            }],
            entity_state: Some(state.to_owned()),
            completion_token: "t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_entity_operation_whose_result_is_too_large_fails_alone() {
        let limit = PayloadLimit(4);
        let mut result = batch(&["1234", "12345", "1"], "1234", "1234");
        assert_eq!(
            limit.entity_batch_result(&mut result),
            EntityBatchCheck::Fits
        );
        assert_eq!(result.results[0], success("1234"));
        assert_eq!(result.results[2], success("1"));
        let details = failure_of(&result.results[1]).unwrap();
        assert_eq!(details.error_type, PAYLOAD_TOO_LARGE);
        assert!(
            details.error_message.contains("operation 1")
                && details.error_message.contains("5 bytes")
                && details.error_message.contains("at most 4 bytes"),
            "{details:?}"
        );
        // The rest of the batch stands.
        assert_eq!(result.entity_state.as_deref(), Some("1234"));
        assert_eq!(result.actions.len(), 1);
        assert_eq!(result.failure_details, None);
    }

    #[test]
    fn an_entity_state_or_action_too_large_rejects_the_whole_batch() {
        let limit = PayloadLimit(4);
        for (mut result, what) in [
            (batch(&["1", "2"], "12345", "1"), "entityState is 5 bytes"),
            (
                batch(&["1", "2"], "1", "123456"),
                "action 2 sendSignal.input is 6 bytes",
            ),
        ] {
            let EntityBatchCheck::Rejected(message) = limit.entity_batch_result(&mut result) else {
                panic!("{result:?} was not rejected");
            };
            assert!(message.contains(what), "{message}");
            assert!(message.contains("at most 4 bytes"), "{message}");
            assert_eq!(result.results.len(), 2);
            for operation in &result.results {
                let details = failure_of(operation).unwrap();
                assert_eq!(details.error_type, PAYLOAD_TOO_LARGE);
                assert_eq!(details.error_message, message);
            }
            assert!(result.actions.is_empty());
            assert_eq!(
                result.entity_state, None,
                "the caller puts the old one back"
            );
            assert_eq!(
                result.failure_details.unwrap().error_type,
                PAYLOAD_TOO_LARGE
            );
        }
    }

    #[test]
    fn an_entity_batch_within_the_limit_is_untouched() {
        let limit = PayloadLimit(4);
        let mut result = batch(&["1234"], "1234", "1234");
        let before = result.clone();
        assert_eq!(
            limit.entity_batch_result(&mut result),
            EntityBatchCheck::Fits
        );
        assert_eq!(result, before);
    }
}
