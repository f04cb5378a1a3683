//! Reading a printed history back into protocol events: the inverse of
//! [`event_to_json`](super::event_to_json), so that a history saved with
//! `durabletask-host client history` can be replayed against a plugin build.
//!
//! What the printed form leaves out cannot come back, and none of it matters to a replay:
//! trace contexts are absent, and a payload comes back as the JSON text of its value
//! (`{"a": 1}` may have been `{ "a" : 1 }`; a payload that was not JSON at all, which the
//! printed form shows as a string, comes back as that JSON string; the payload `null`
//! prints as an absent one does, and comes back absent). An event of a kind
//! this build does not know (`"kind": "unknown"`) is refused: a replay without it would
//! prove nothing.

use std::collections::HashMap;
use std::str::FromStr as _;

use durabletask_proto::history_event::EventType;
use durabletask_proto::{
    ContinueAsNewEvent, EntityLockGrantedEvent, EntityLockRequestedEvent,
    EntityOperationCalledEvent, EntityOperationCompletedEvent, EntityOperationFailedEvent,
    EntityOperationSignaledEvent, EntityUnlockSentEvent, EventRaisedEvent, EventSentEvent,
    ExecutionCompletedEvent, ExecutionResumedEvent, ExecutionRewoundEvent, ExecutionStartedEvent,
    ExecutionSuspendedEvent, ExecutionTerminatedEvent, GenericEvent, HistoryEvent,
    HistoryStateEvent, OrchestrationInstance, OrchestrationState, OrchestrationStatus,
    OrchestratorCompletedEvent, OrchestratorStartedEvent, ParentInstanceInfo,
    SubOrchestrationInstanceCompletedEvent, SubOrchestrationInstanceCreatedEvent,
    SubOrchestrationInstanceFailedEvent, TaskCompletedEvent, TaskFailedEvent, TaskFailureDetails,
    TaskScheduledEvent, TimerCreatedEvent, TimerFiredEvent,
};
use prost_types::Timestamp;
use serde_json::{Map, Value};

/// Why a printed history cannot be read back: which event, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {problem}")]
pub struct HistoryJsonError {
    place: String,
    problem: String,
}

impl HistoryJsonError {
    fn new(place: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            place: place.into(),
            problem: problem.into(),
        }
    }
}

/// The events of a printed history: the object `client history` prints
/// (`{"instance_id", "events": [...]}`) or its `events` array alone, oldest first.
///
/// # Examples
///
/// ```
/// let printed = serde_json::json!({
///     "instance_id": "order-1",
///     "events": [
///         {"event_id": -1, "timestamp": "2026-01-01T00:00:00Z", "kind": "orchestratorStarted"},
///         {"event_id": -1, "timestamp": "2026-01-01T00:00:00Z", "kind": "executionStarted",
///          "name": "process_order", "version": null, "input": {"id": 7},
///          "instanceId": "order-1", "executionId": "e1", "parentInstance": null,
///          "scheduledStartTimestamp": null, "tags": {}},
///         {"event_id": 0, "timestamp": "2026-01-01T00:00:00Z", "kind": "taskScheduled",
///          "name": "charge", "version": null, "input": 7, "tags": {}}
///     ]
/// });
/// let events = durabletask_json::history_from_json(&printed)?;
/// assert_eq!(events.len(), 3);
/// assert_eq!(durabletask_json::event_to_json(&events[1]), printed["events"][1]);
/// # Ok::<(), durabletask_json::HistoryJsonError>(())
/// ```
pub fn history_from_json(history: &Value) -> Result<Vec<HistoryEvent>, HistoryJsonError> {
    let events = match history {
        Value::Array(events) => events,
        Value::Object(object) => match object.get("events") {
            Some(Value::Array(events)) => events,
            _ => {
                return Err(HistoryJsonError::new(
                    "the history",
                    "an object without an \"events\" array (expected what `client history` prints)",
                ));
            }
        },
        _ => {
            return Err(HistoryJsonError::new(
                "the history",
                "neither an object with \"events\" nor an array of events",
            ));
        }
    };
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            event_from_json(event).map_err(|error| HistoryJsonError {
                place: format!("event {index} ({})", error.place),
                problem: error.problem,
            })
        })
        .collect()
}

/// One printed event back as a protocol event.
pub fn event_from_json(event: &Value) -> Result<HistoryEvent, HistoryJsonError> {
    let Value::Object(object) = event else {
        return Err(HistoryJsonError::new("the event", "not a JSON object"));
    };
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| HistoryJsonError::new("the event", "no \"kind\""))?;
    let fields = Fields { object, kind };
    let event_id = fields.integer("event_id")?;
    let timestamp = fields.timestamp("timestamp")?;
    Ok(HistoryEvent {
        event_id,
        timestamp,
        event_type: Some(fields.event_type()?),
    })
}

/// The fields of one printed event of one kind, read with errors that name them.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    kind: &'a str,
}

impl Fields<'_> {
    fn error(&self, field: &str, problem: &str) -> HistoryJsonError {
        HistoryJsonError::new(self.kind, format!("field \"{field}\": {problem}"))
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.object.get(field).filter(|value| !value.is_null())
    }

    fn integer(&self, field: &str) -> Result<i32, HistoryJsonError> {
        match self.present(field) {
            None => Ok(0),
            Some(value) => value
                .as_i64()
                .and_then(|number| i32::try_from(number).ok())
                .ok_or_else(|| self.error(field, "expected a 32-bit integer")),
        }
    }

    fn boolean(&self, field: &str) -> Result<bool, HistoryJsonError> {
        match self.present(field) {
            None => Ok(false),
            Some(value) => value
                .as_bool()
                .ok_or_else(|| self.error(field, "expected true or false")),
        }
    }

    fn optional_text(&self, field: &str) -> Result<Option<String>, HistoryJsonError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.error(field, "expected a string")),
        }
    }

    fn text(&self, field: &str) -> Result<String, HistoryJsonError> {
        Ok(self.optional_text(field)?.unwrap_or_default())
    }

    fn texts(&self, field: &str) -> Result<Vec<String>, HistoryJsonError> {
        match self.present(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| self.error(field, "expected an array of strings"))
                })
                .collect(),
            Some(_) => Err(self.error(field, "expected an array of strings")),
        }
    }

    /// A payload: its JSON text, `None` when null.
    fn payload(&self, field: &str) -> Option<String> {
        self.present(field).map(Value::to_string)
    }

    fn timestamp(&self, field: &str) -> Result<Option<Timestamp>, HistoryJsonError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(text)) => Timestamp::from_str(text)
                .map(Some)
                .map_err(|_| self.error(field, "expected an RFC 3339 timestamp")),
            Some(_) => Err(self.error(field, "expected an RFC 3339 timestamp")),
        }
    }

    fn tags(&self, field: &str) -> Result<HashMap<String, String>, HistoryJsonError> {
        match self.present(field) {
            None => Ok(HashMap::new()),
            Some(Value::Object(tags)) => tags
                .iter()
                .map(|(key, value)| match value {
                    Value::String(text) => Ok((key.clone(), text.clone())),
                    _ => Err(self.error(field, "expected string values")),
                })
                .collect(),
            Some(_) => Err(self.error(field, "expected an object of strings")),
        }
    }

    fn failure(&self, field: &str) -> Result<Option<TaskFailureDetails>, HistoryJsonError> {
        self.present(field)
            .map(|value| failure_from_json(value).map_err(|problem| self.error(field, &problem)))
            .transpose()
    }

    fn status(&self, field: &str) -> Result<i32, HistoryJsonError> {
        let name = self.text(field)?;
        OrchestrationStatus::from_str_name(&format!("ORCHESTRATION_STATUS_{name}"))
            .map(|status| status as i32)
            .ok_or_else(|| self.error(field, "not an orchestration status"))
    }

    fn instance(&self) -> Result<Option<OrchestrationInstance>, HistoryJsonError> {
        let instance_id = self.optional_text("instanceId")?;
        let execution_id = self.optional_text("executionId")?;
        Ok(
            (instance_id.is_some() || execution_id.is_some()).then(|| OrchestrationInstance {
                instance_id: instance_id.unwrap_or_default(),
                execution_id,
            }),
        )
    }

    fn parent(&self, field: &str) -> Result<Option<ParentInstanceInfo>, HistoryJsonError> {
        let Some(value) = self.present(field) else {
            return Ok(None);
        };
        let Value::Object(object) = value else {
            return Err(self.error(field, "expected an object"));
        };
        let parent = Fields {
            object,
            kind: self.kind,
        };
        Ok(Some(ParentInstanceInfo {
            task_scheduled_id: parent.integer("taskScheduledId")?,
            name: parent.optional_text("name")?,
            version: parent.optional_text("version")?,
            orchestration_instance: parent.instance()?,
        }))
    }

    fn state(&self, field: &str) -> Result<Option<OrchestrationState>, HistoryJsonError> {
        let Some(value) = self.present(field) else {
            return Ok(None);
        };
        let Value::Object(object) = value else {
            return Err(self.error(field, "expected an object"));
        };
        let state = Fields {
            object,
            kind: self.kind,
        };
        Ok(Some(OrchestrationState {
            instance_id: state.text("instance_id")?,
            name: state.text("name")?,
            version: state.optional_text("version")?,
            orchestration_status: state.status("status")?,
            input: state.payload("input"),
            output: state.payload("output"),
            custom_status: state.payload("custom_status"),
            failure_details: state.failure("failure_details")?,
            created_timestamp: state.timestamp("created_at")?,
            last_updated_timestamp: state.timestamp("last_updated_at")?,
            parent_instance_id: state.optional_text("parent_instance_id")?,
            ..Default::default()
        }))
    }

    fn event_type(&self) -> Result<EventType, HistoryJsonError> {
        Ok(match self.kind {
            "executionStarted" => EventType::ExecutionStarted(ExecutionStartedEvent {
                name: self.text("name")?,
                version: self.optional_text("version")?,
                input: self.payload("input"),
                orchestration_instance: self.instance()?,
                parent_instance: self.parent("parentInstance")?,
                scheduled_start_timestamp: self.timestamp("scheduledStartTimestamp")?,
                tags: self.tags("tags")?,
                ..Default::default()
            }),
            "executionCompleted" => EventType::ExecutionCompleted(ExecutionCompletedEvent {
                orchestration_status: self.status("orchestrationStatus")?,
                result: self.payload("result"),
                failure_details: self.failure("failureDetails")?,
            }),
            "executionTerminated" => EventType::ExecutionTerminated(ExecutionTerminatedEvent {
                input: self.payload("input"),
                recurse: self.boolean("recurse")?,
            }),
            "taskScheduled" => EventType::TaskScheduled(TaskScheduledEvent {
                name: self.text("name")?,
                version: self.optional_text("version")?,
                input: self.payload("input"),
                tags: self.tags("tags")?,
                ..Default::default()
            }),
            "taskCompleted" => EventType::TaskCompleted(TaskCompletedEvent {
                task_scheduled_id: self.integer("taskScheduledId")?,
                result: self.payload("result"),
            }),
            "taskFailed" => EventType::TaskFailed(TaskFailedEvent {
                task_scheduled_id: self.integer("taskScheduledId")?,
                failure_details: self.failure("failureDetails")?,
            }),
            "subOrchestrationInstanceCreated" => {
                EventType::SubOrchestrationInstanceCreated(SubOrchestrationInstanceCreatedEvent {
                    instance_id: self.text("instanceId")?,
                    name: self.text("name")?,
                    version: self.optional_text("version")?,
                    input: self.payload("input"),
                    tags: self.tags("tags")?,
                    ..Default::default()
                })
            }
            "subOrchestrationInstanceCompleted" => EventType::SubOrchestrationInstanceCompleted(
                SubOrchestrationInstanceCompletedEvent {
                    task_scheduled_id: self.integer("taskScheduledId")?,
                    result: self.payload("result"),
                },
            ),
            "subOrchestrationInstanceFailed" => {
                EventType::SubOrchestrationInstanceFailed(SubOrchestrationInstanceFailedEvent {
                    task_scheduled_id: self.integer("taskScheduledId")?,
                    failure_details: self.failure("failureDetails")?,
                })
            }
            "timerCreated" => EventType::TimerCreated(TimerCreatedEvent {
                fire_at: self.timestamp("fireAt")?,
            }),
            "timerFired" => EventType::TimerFired(TimerFiredEvent {
                fire_at: self.timestamp("fireAt")?,
                timer_id: self.integer("timerId")?,
            }),
            "orchestratorStarted" => {
                EventType::OrchestratorStarted(OrchestratorStartedEvent::default())
            }
            "orchestratorCompleted" => {
                EventType::OrchestratorCompleted(OrchestratorCompletedEvent::default())
            }
            "eventSent" => EventType::EventSent(EventSentEvent {
                instance_id: self.text("instanceId")?,
                name: self.text("name")?,
                input: self.payload("input"),
            }),
            "eventRaised" => EventType::EventRaised(EventRaisedEvent {
                name: self.text("name")?,
                input: self.payload("input"),
            }),
            "genericEvent" => EventType::GenericEvent(GenericEvent {
                data: self.payload("data"),
            }),
            "historyState" => EventType::HistoryState(HistoryStateEvent {
                orchestration_state: self.state("orchestrationState")?,
            }),
            "continueAsNew" => EventType::ContinueAsNew(ContinueAsNewEvent {
                input: self.payload("input"),
            }),
            "executionSuspended" => EventType::ExecutionSuspended(ExecutionSuspendedEvent {
                input: self.payload("input"),
            }),
            "executionResumed" => EventType::ExecutionResumed(ExecutionResumedEvent {
                input: self.payload("input"),
            }),
            "entityOperationSignaled" => {
                EventType::EntityOperationSignaled(EntityOperationSignaledEvent {
                    request_id: self.text("requestId")?,
                    operation: self.text("operation")?,
                    scheduled_time: self.timestamp("scheduledTime")?,
                    input: self.payload("input"),
                    target_instance_id: self.optional_text("targetInstanceId")?,
                })
            }
            "entityOperationCalled" => {
                EventType::EntityOperationCalled(EntityOperationCalledEvent {
                    request_id: self.text("requestId")?,
                    operation: self.text("operation")?,
                    scheduled_time: self.timestamp("scheduledTime")?,
                    input: self.payload("input"),
                    parent_instance_id: self.optional_text("parentInstanceId")?,
                    parent_execution_id: self.optional_text("parentExecutionId")?,
                    target_instance_id: self.optional_text("targetInstanceId")?,
                })
            }
            "entityOperationCompleted" => {
                EventType::EntityOperationCompleted(EntityOperationCompletedEvent {
                    request_id: self.text("requestId")?,
                    output: self.payload("output"),
                })
            }
            "entityOperationFailed" => {
                EventType::EntityOperationFailed(EntityOperationFailedEvent {
                    request_id: self.text("requestId")?,
                    failure_details: self.failure("failureDetails")?,
                })
            }
            "entityLockRequested" => EventType::EntityLockRequested(EntityLockRequestedEvent {
                critical_section_id: self.text("criticalSectionId")?,
                lock_set: self.texts("lockSet")?,
                position: self.integer("position")?,
                parent_instance_id: self.optional_text("parentInstanceId")?,
            }),
            "entityLockGranted" => EventType::EntityLockGranted(EntityLockGrantedEvent {
                critical_section_id: self.text("criticalSectionId")?,
            }),
            "entityUnlockSent" => EventType::EntityUnlockSent(EntityUnlockSentEvent {
                critical_section_id: self.text("criticalSectionId")?,
                parent_instance_id: self.optional_text("parentInstanceId")?,
                target_instance_id: self.optional_text("targetInstanceId")?,
            }),
            "executionRewound" => EventType::ExecutionRewound(ExecutionRewoundEvent {
                // Free text, printed as it is, not as a payload.
                reason: self.optional_text("reason")?,
                parent_execution_id: self.optional_text("parentExecutionId")?,
                instance_id: self.optional_text("instanceId")?,
                name: self.optional_text("name")?,
                version: self.optional_text("version")?,
                input: self.payload("input"),
                parent_instance: self.parent("parentInstance")?,
                tags: self.tags("tags")?,
                ..Default::default()
            }),
            other => {
                return Err(HistoryJsonError::new(
                    other,
                    "an event kind this build does not know; a replay without it would prove nothing",
                ));
            }
        })
    }
}

/// Failure details from `{"error_type", "message", "stack_trace", "inner_failure",
/// "is_non_retriable"}`.
fn failure_from_json(value: &Value) -> Result<TaskFailureDetails, String> {
    let Value::Object(object) = value else {
        return Err("expected failure details (an object)".to_owned());
    };
    let text = |field: &str| -> Result<Option<String>, String> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(format!("failure details: \"{field}\" is not a string")),
        }
    };
    let inner_failure = match object.get("inner_failure") {
        None | Some(Value::Null) => None,
        Some(inner) => Some(Box::new(failure_from_json(inner)?)),
    };
    Ok(TaskFailureDetails {
        error_type: text("error_type")?.unwrap_or_default(),
        error_message: text("message")?.unwrap_or_default(),
        stack_trace: text("stack_trace")?,
        inner_failure,
        is_non_retriable: object
            .get("is_non_retriable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::event_to_json;

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 5 })
    }

    fn failure() -> Option<TaskFailureDetails> {
        Some(TaskFailureDetails {
            error_type: "CityNotFound".into(),
            error_message: "no such city".into(),
            stack_trace: Some("at main".into()),
            inner_failure: Some(Box::new(TaskFailureDetails {
                error_type: "Inner".into(),
                error_message: "deeper".into(),
                ..Default::default()
            })),
            is_non_retriable: true,
            ..Default::default()
        })
    }

    fn instance() -> Option<OrchestrationInstance> {
        Some(OrchestrationInstance {
            instance_id: "order-1".into(),
            execution_id: Some("e1".into()),
        })
    }

    fn parent() -> Option<ParentInstanceInfo> {
        Some(ParentInstanceInfo {
            task_scheduled_id: 4,
            name: Some("parent_orch".into()),
            version: Some("2".into()),
            orchestration_instance: instance(),
        })
    }

    fn tags() -> HashMap<String, String> {
        HashMap::from([("team".to_owned(), "payments".to_owned())])
    }

    /// One event of every kind, every printed field set.
    fn every_kind() -> Vec<EventType> {
        let input = Some(r#"{"n":3}"#.to_owned());
        vec![
            EventType::ExecutionStarted(ExecutionStartedEvent {
                name: "process_order".into(),
                version: Some("1.0.0".into()),
                input: input.clone(),
                orchestration_instance: instance(),
                parent_instance: parent(),
                scheduled_start_timestamp: at(9),
                tags: tags(),
                ..Default::default()
            }),
            EventType::ExecutionCompleted(ExecutionCompletedEvent {
                orchestration_status: OrchestrationStatus::Failed as i32,
                result: Some("42".into()),
                failure_details: failure(),
            }),
            EventType::ExecutionTerminated(ExecutionTerminatedEvent {
                input: Some(r#""stop""#.into()),
                recurse: true,
            }),
            EventType::TaskScheduled(TaskScheduledEvent {
                name: "charge".into(),
                version: Some("1".into()),
                input: input.clone(),
                tags: tags(),
                ..Default::default()
            }),
            EventType::TaskCompleted(TaskCompletedEvent {
                task_scheduled_id: 3,
                result: Some("true".into()),
            }),
            EventType::TaskFailed(TaskFailedEvent {
                task_scheduled_id: 3,
                failure_details: failure(),
            }),
            EventType::SubOrchestrationInstanceCreated(SubOrchestrationInstanceCreatedEvent {
                instance_id: "child".into(),
                name: "ship".into(),
                version: None,
                input: input.clone(),
                tags: tags(),
                ..Default::default()
            }),
            EventType::SubOrchestrationInstanceCompleted(SubOrchestrationInstanceCompletedEvent {
                task_scheduled_id: 5,
                result: Some("[1,2]".into()),
            }),
            EventType::SubOrchestrationInstanceFailed(SubOrchestrationInstanceFailedEvent {
                task_scheduled_id: 5,
                failure_details: failure(),
            }),
            EventType::TimerCreated(TimerCreatedEvent {
                fire_at: at(86_400 * 30),
            }),
            EventType::TimerFired(TimerFiredEvent {
                fire_at: at(86_400 * 30),
                timer_id: 6,
            }),
            EventType::OrchestratorStarted(OrchestratorStartedEvent::default()),
            EventType::OrchestratorCompleted(OrchestratorCompletedEvent::default()),
            EventType::EventSent(EventSentEvent {
                instance_id: "other".into(),
                name: "approve".into(),
                input: input.clone(),
            }),
            EventType::EventRaised(EventRaisedEvent {
                name: "approve".into(),
                input: Some(r#"{"by":"ana"}"#.into()),
            }),
            EventType::GenericEvent(GenericEvent {
                data: Some(r#"{"x":[true]}"#.into()),
            }),
            EventType::HistoryState(HistoryStateEvent {
                orchestration_state: Some(OrchestrationState {
                    instance_id: "order-1".into(),
                    name: "process_order".into(),
                    version: Some("1.0.0".into()),
                    orchestration_status: OrchestrationStatus::Running as i32,
                    input: input.clone(),
                    created_timestamp: at(1),
                    last_updated_timestamp: at(2),
                    ..Default::default()
                }),
            }),
            EventType::ContinueAsNew(ContinueAsNewEvent {
                input: input.clone(),
            }),
            EventType::ExecutionSuspended(ExecutionSuspendedEvent {
                input: Some(r#""maintenance""#.into()),
            }),
            EventType::ExecutionResumed(ExecutionResumedEvent { input: None }),
            EventType::EntityOperationSignaled(EntityOperationSignaledEvent {
                request_id: "r1".into(),
                operation: "add".into(),
                scheduled_time: at(3),
                input: Some("5".into()),
                target_instance_id: Some("@counter@k".into()),
            }),
            EventType::EntityOperationCalled(EntityOperationCalledEvent {
                request_id: "r2".into(),
                operation: "get".into(),
                scheduled_time: None,
                input: None,
                parent_instance_id: Some("order-1".into()),
                parent_execution_id: Some("e1".into()),
                target_instance_id: Some("@counter@k".into()),
            }),
            EventType::EntityOperationCompleted(EntityOperationCompletedEvent {
                request_id: "r2".into(),
                output: Some("8".into()),
            }),
            EventType::EntityOperationFailed(EntityOperationFailedEvent {
                request_id: "r3".into(),
                failure_details: failure(),
            }),
            EventType::EntityLockRequested(EntityLockRequestedEvent {
                critical_section_id: "cs".into(),
                lock_set: vec!["@account@a".into(), "@account@b".into()],
                position: 1,
                parent_instance_id: Some("order-1".into()),
            }),
            EventType::EntityLockGranted(EntityLockGrantedEvent {
                critical_section_id: "cs".into(),
            }),
            EventType::EntityUnlockSent(EntityUnlockSentEvent {
                critical_section_id: "cs".into(),
                parent_instance_id: Some("order-1".into()),
                target_instance_id: Some("@account@a".into()),
            }),
            EventType::ExecutionRewound(ExecutionRewoundEvent {
                reason: Some("retry the payment".into()),
                parent_execution_id: Some("e0".into()),
                instance_id: Some("order-1".into()),
                name: Some("process_order".into()),
                version: Some("1.0.0".into()),
                input: input.clone(),
                parent_instance: parent(),
                tags: tags(),
                ..Default::default()
            }),
        ]
    }

    #[test]
    fn every_kind_reads_back_as_it_was_printed() {
        let events: Vec<HistoryEvent> = every_kind()
            .into_iter()
            .enumerate()
            .map(|(index, event_type)| HistoryEvent {
                event_id: i32::try_from(index).unwrap(),
                timestamp: at(100),
                event_type: Some(event_type),
            })
            .collect();
        assert_eq!(events.len(), 28, "one event of every kind");
        let printed = json!({
            "instance_id": "order-1",
            "events": events.iter().map(event_to_json).collect::<Vec<_>>(),
        });
        let read = history_from_json(&printed).unwrap();
        // Every kind comes back as the same protocol event (payloads were already
        // compact JSON, and none of these carries a trace context).
        assert_eq!(read, events);
        // The bare array reads the same.
        assert_eq!(history_from_json(&printed["events"]).unwrap(), events);
    }

    #[test]
    fn a_payload_comes_back_as_the_json_text_of_its_value() {
        let printed = json!({"event_id": 2, "timestamp": null, "kind": "taskCompleted",
                              "taskScheduledId": 1, "result": {"b": [1, 2], "a": null}});
        let EventType::TaskCompleted(completed) =
            event_from_json(&printed).unwrap().event_type.unwrap()
        else {
            panic!("not a taskCompleted");
        };
        let result: Value = serde_json::from_str(&completed.result.unwrap()).unwrap();
        assert_eq!(result, printed["result"]);
    }

    #[test]
    fn what_cannot_be_read_is_named() {
        let unknown = json!({"events": [{"event_id": 7, "timestamp": null, "kind": "unknown"}]});
        let error = history_from_json(&unknown).unwrap_err().to_string();
        assert!(error.starts_with("event 0 (unknown)"), "{error}");
        assert!(error.contains("does not know"), "{error}");

        let bad_id =
            json!([{"event_id": "seven", "timestamp": null, "kind": "orchestratorStarted"}]);
        let error = history_from_json(&bad_id).unwrap_err().to_string();
        assert!(error.contains("\"event_id\""), "{error}");

        let bad_time = json!([{"event_id": 1, "timestamp": "yesterday", "kind": "timerFired",
                               "fireAt": null, "timerId": 1}]);
        let error = history_from_json(&bad_time).unwrap_err().to_string();
        assert!(error.contains("RFC 3339"), "{error}");

        let bad_status = json!([{"event_id": 1, "timestamp": null, "kind": "executionCompleted",
                                 "orchestrationStatus": "DONE"}]);
        let error = history_from_json(&bad_status).unwrap_err().to_string();
        assert!(error.contains("orchestrationStatus"), "{error}");

        for not_a_history in [json!({"instance_id": "x"}), json!(3)] {
            assert!(history_from_json(&not_a_history).is_err());
        }
    }
}
