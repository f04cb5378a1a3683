//! Checks of what callers send, before anything reaches the engine: a call the backend
//! cannot honour exactly is refused with `INVALID_ARGUMENT` naming the field, never
//! stored in a changed form (a time clamped, a status the engine cannot act on).

use durabletask_proto::orchestrator_action::OrchestratorActionType;
use durabletask_proto::send_entity_message_action::EntityMessageType;
use durabletask_proto::*;
use prost_types::Timestamp;
use tonic::Status;

/// The earliest and latest seconds whose time the backend can keep: it stores times as
/// signed 64-bit nanoseconds since the epoch (1677-09-21 to 2262-04-11).
const MIN_SECONDS: i64 = i64::MIN / 1_000_000_000;
const MAX_SECONDS: i64 = i64::MAX / 1_000_000_000 - 1;

/// A time the backend can store exactly.
pub fn time(timestamp: Option<&Timestamp>, field: &str) -> Result<(), Status> {
    let Some(timestamp) = timestamp else {
        return Ok(());
    };
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(Status::invalid_argument(format!(
            "{field}: nanos must be within 0..=999999999, got {}",
            timestamp.nanos
        )));
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&timestamp.seconds) {
        return Err(Status::invalid_argument(format!(
            "{field}: {} seconds from the epoch is out of range (this backend keeps times from 1677-09-22 to 2262-04-10)",
            timestamp.seconds
        )));
    }
    Ok(())
}

pub fn create_instance(request: &CreateInstanceRequest) -> Result<(), Status> {
    time(
        request.scheduled_start_timestamp.as_ref(),
        "scheduledStartTimestamp",
    )
}

pub fn signal_entity(request: &SignalEntityRequest) -> Result<(), Status> {
    time(request.scheduled_time.as_ref(), "scheduledTime")
}

pub fn query_instances(request: &QueryInstancesRequest) -> Result<(), Status> {
    let Some(query) = &request.query else {
        return Ok(());
    };
    time(query.created_time_from.as_ref(), "query.createdTimeFrom")?;
    time(query.created_time_to.as_ref(), "query.createdTimeTo")
}

pub fn list_instance_ids(request: &ListInstanceIdsRequest) -> Result<(), Status> {
    time(request.completed_time_from.as_ref(), "completedTimeFrom")?;
    time(request.completed_time_to.as_ref(), "completedTimeTo")
}

pub fn purge(request: &PurgeInstancesRequest) -> Result<(), Status> {
    if let Some(purge_instances_request::Request::PurgeInstanceFilter(filter)) = &request.request {
        time(
            filter.created_time_from.as_ref(),
            "purgeInstanceFilter.createdTimeFrom",
        )?;
        time(
            filter.created_time_to.as_ref(),
            "purgeInstanceFilter.createdTimeTo",
        )?;
    }
    Ok(())
}

pub fn query_entities(request: &QueryEntitiesRequest) -> Result<(), Status> {
    let Some(query) = &request.query else {
        return Ok(());
    };
    time(query.last_modified_from.as_ref(), "query.lastModifiedFrom")?;
    time(query.last_modified_to.as_ref(), "query.lastModifiedTo")
}

/// The statuses a `completeOrchestration` action may end an orchestration with.
fn is_final_status(status: i32) -> bool {
    [
        OrchestrationStatus::Completed,
        OrchestrationStatus::ContinuedAsNew,
        OrchestrationStatus::Failed,
        OrchestrationStatus::Canceled,
        OrchestrationStatus::Terminated,
    ]
    .iter()
    .any(|allowed| *allowed as i32 == status)
}

pub fn orchestrator_response(response: &OrchestratorResponse) -> Result<(), Status> {
    for action in &response.actions {
        let id = action.id;
        match &action.orchestrator_action_type {
            Some(OrchestratorActionType::CreateTimer(timer)) => {
                time(
                    timer.fire_at.as_ref(),
                    &format!("action {id} createTimer.fireAt"),
                )?;
            }
            Some(OrchestratorActionType::CompleteOrchestration(complete))
                if !is_final_status(complete.orchestration_status) =>
            {
                let status = complete.orchestration_status;
                let name = OrchestrationStatus::try_from(status)
                    .map(|status| status.as_str_name().to_owned())
                    .unwrap_or_else(|_| format!("unknown ({status})"));
                return Err(Status::invalid_argument(format!(
                    "action {id} completeOrchestration: orchestrationStatus {name} does not end an orchestration; use COMPLETED, FAILED, TERMINATED, CANCELED or CONTINUED_AS_NEW"
                )));
            }
            Some(OrchestratorActionType::SendEntityMessage(message)) => {
                let scheduled = match &message.entity_message_type {
                    Some(EntityMessageType::EntityOperationSignaled(signal)) => {
                        signal.scheduled_time.as_ref()
                    }
                    Some(EntityMessageType::EntityOperationCalled(call)) => {
                        call.scheduled_time.as_ref()
                    }
                    _ => None,
                };
                time(
                    scheduled,
                    &format!("action {id} sendEntityMessage.scheduledTime"),
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

pub fn entity_batch_result(result: &EntityBatchResult) -> Result<(), Status> {
    use operation_action::OperationActionType;
    for action in &result.actions {
        let id = action.id;
        let scheduled = match &action.operation_action_type {
            Some(OperationActionType::SendSignal(signal)) => signal.scheduled_time.as_ref(),
            Some(OperationActionType::StartNewOrchestration(start)) => {
                start.scheduled_time.as_ref()
            }
            None => None,
        };
        time(scheduled, &format!("action {id} scheduledTime"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    #[test]
    fn times_the_store_keeps_exactly_pass() {
        for seconds in [0, 1_700_000_000, -1, MIN_SECONDS, MAX_SECONDS] {
            time(at(seconds, 999_999_999).as_ref(), "t").unwrap();
        }
        time(None, "t").unwrap();
    }

    #[test]
    fn times_out_of_range_are_refused_by_name() {
        // Year 9999: the old engine clamped it to 2262.
        let status = time(at(253_402_300_799, 0).as_ref(), "scheduledTime").unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("scheduledTime"),
            "{}",
            status.message()
        );
        assert!(time(at(0, -1).as_ref(), "t").is_err());
        assert!(time(at(0, 1_000_000_000).as_ref(), "t").is_err());
        assert!(time(at(i64::MIN, 0).as_ref(), "t").is_err());
    }

    fn complete(status: i32) -> OrchestratorResponse {
        OrchestratorResponse {
            actions: vec![OrchestratorAction {
                id: 7,
                orchestrator_action_type: Some(OrchestratorActionType::CompleteOrchestration(
                    CompleteOrchestrationAction {
                        orchestration_status: status,
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn only_final_statuses_complete_an_orchestration() {
        for ok in [1, 2, 3, 4, 5] {
            orchestrator_response(&complete(ok)).unwrap();
        }
        for bad in [0, 6, 7, 42, -1] {
            let status = orchestrator_response(&complete(bad)).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(
                status.message().contains("action 7"),
                "{}",
                status.message()
            );
        }
    }
}
