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
//!   large fails with `PayloadTooLarge`.

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
            response.failure_details = Some(TaskFailureDetails {
                error_type: PAYLOAD_TOO_LARGE.to_owned(),
                error_message: format!(
                    "the activity's result is {length} bytes; the backend accepts payloads of at most {} bytes",
                    self.0
                ),
                is_non_retriable: true,
                ..Default::default()
            });
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
}
