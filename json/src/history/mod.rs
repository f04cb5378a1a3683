//! The JSON shape of history events, as `client history` prints them.
//!
//! Each event becomes `{"event_id", "timestamp", "kind", ...}`: `kind` is the name of the
//! `eventType` oneof field of wire.md (`executionStarted`, `taskCompleted`, ...), and the
//! kind's own fields follow under their wire names (camelCase: `taskScheduledId`,
//! `failureDetails`, `fireAt`, ...). Payloads are parsed into JSON values like the state's
//! `input` and `output`, failure details have the shape of the state's `failure_details`,
//! timestamps are RFC 3339. Trace contexts are left out. An event whose kind this build
//! does not know (a newer protocol) shows as `"kind": "unknown"` and nothing else.

use std::collections::HashMap;

use durabletask_proto::history_event::EventType;
use durabletask_proto::{HistoryEvent, OrchestrationInstance, ParentInstanceInfo};
use serde_json::{Map, Value, json};

use crate::state::{failure_to_json, payload, state_to_json, status_name, timestamp};

mod read;

pub use read::{HistoryJsonError, event_from_json, history_from_json};

/// One event: `{"event_id", "timestamp", "kind", ...its fields}`.
pub fn event_to_json(event: &HistoryEvent) -> Value {
    let mut object = Map::new();
    object.insert("event_id".into(), json!(event.event_id));
    object.insert("timestamp".into(), timestamp(event.timestamp.as_ref()));
    let kind = event.event_type.as_ref().map_or("unknown", kind_name);
    object.insert("kind".into(), json!(kind));
    if let Some(event_type) = &event.event_type
        && let Value::Object(fields) = fields(event_type)
    {
        object.extend(fields);
    }
    Value::Object(object)
}

/// The oneof field's name on the wire, in camelCase.
pub fn kind_name(event_type: &EventType) -> &'static str {
    match event_type {
        EventType::ExecutionStarted(_) => "executionStarted",
        EventType::ExecutionCompleted(_) => "executionCompleted",
        EventType::ExecutionTerminated(_) => "executionTerminated",
        EventType::TaskScheduled(_) => "taskScheduled",
        EventType::TaskCompleted(_) => "taskCompleted",
        EventType::TaskFailed(_) => "taskFailed",
        EventType::SubOrchestrationInstanceCreated(_) => "subOrchestrationInstanceCreated",
        EventType::SubOrchestrationInstanceCompleted(_) => "subOrchestrationInstanceCompleted",
        EventType::SubOrchestrationInstanceFailed(_) => "subOrchestrationInstanceFailed",
        EventType::TimerCreated(_) => "timerCreated",
        EventType::TimerFired(_) => "timerFired",
        EventType::OrchestratorStarted(_) => "orchestratorStarted",
        EventType::OrchestratorCompleted(_) => "orchestratorCompleted",
        EventType::EventSent(_) => "eventSent",
        EventType::EventRaised(_) => "eventRaised",
        EventType::GenericEvent(_) => "genericEvent",
        EventType::HistoryState(_) => "historyState",
        EventType::ContinueAsNew(_) => "continueAsNew",
        EventType::ExecutionSuspended(_) => "executionSuspended",
        EventType::ExecutionResumed(_) => "executionResumed",
        EventType::EntityOperationSignaled(_) => "entityOperationSignaled",
        EventType::EntityOperationCalled(_) => "entityOperationCalled",
        EventType::EntityOperationCompleted(_) => "entityOperationCompleted",
        EventType::EntityOperationFailed(_) => "entityOperationFailed",
        EventType::EntityLockRequested(_) => "entityLockRequested",
        EventType::EntityLockGranted(_) => "entityLockGranted",
        EventType::EntityUnlockSent(_) => "entityUnlockSent",
        EventType::ExecutionRewound(_) => "executionRewound",
    }
}

/// The kind's own fields, as one JSON object.
fn fields(event_type: &EventType) -> Value {
    let failure = |details: Option<&durabletask_proto::TaskFailureDetails>| {
        details.map_or(Value::Null, failure_to_json)
    };
    match event_type {
        EventType::ExecutionStarted(e) => {
            let (instance_id, execution_id) = instance(e.orchestration_instance.as_ref());
            json!({
                "name": e.name,
                "version": e.version,
                "input": payload(e.input.as_deref()),
                "instanceId": instance_id,
                "executionId": execution_id,
                "parentInstance": parent(e.parent_instance.as_ref()),
                "scheduledStartTimestamp": timestamp(e.scheduled_start_timestamp.as_ref()),
                "tags": tags(&e.tags),
            })
        }
        EventType::ExecutionCompleted(e) => json!({
            "orchestrationStatus": status_name(e.orchestration_status),
            "result": payload(e.result.as_deref()),
            "failureDetails": failure(e.failure_details.as_ref()),
        }),
        EventType::ExecutionTerminated(e) => json!({
            "input": payload(e.input.as_deref()),
            "recurse": e.recurse,
        }),
        EventType::TaskScheduled(e) => json!({
            "name": e.name,
            "version": e.version,
            "input": payload(e.input.as_deref()),
            "tags": tags(&e.tags),
        }),
        EventType::TaskCompleted(e) => json!({
            "taskScheduledId": e.task_scheduled_id,
            "result": payload(e.result.as_deref()),
        }),
        EventType::TaskFailed(e) => json!({
            "taskScheduledId": e.task_scheduled_id,
            "failureDetails": failure(e.failure_details.as_ref()),
        }),
        EventType::SubOrchestrationInstanceCreated(e) => json!({
            "instanceId": e.instance_id,
            "name": e.name,
            "version": e.version,
            "input": payload(e.input.as_deref()),
            "tags": tags(&e.tags),
        }),
        EventType::SubOrchestrationInstanceCompleted(e) => json!({
            "taskScheduledId": e.task_scheduled_id,
            "result": payload(e.result.as_deref()),
        }),
        EventType::SubOrchestrationInstanceFailed(e) => json!({
            "taskScheduledId": e.task_scheduled_id,
            "failureDetails": failure(e.failure_details.as_ref()),
        }),
        EventType::TimerCreated(e) => json!({
            "fireAt": timestamp(e.fire_at.as_ref()),
        }),
        EventType::TimerFired(e) => json!({
            "fireAt": timestamp(e.fire_at.as_ref()),
            "timerId": e.timer_id,
        }),
        EventType::OrchestratorStarted(_) | EventType::OrchestratorCompleted(_) => json!({}),
        EventType::EventSent(e) => json!({
            "instanceId": e.instance_id,
            "name": e.name,
            "input": payload(e.input.as_deref()),
        }),
        EventType::EventRaised(e) => json!({
            "name": e.name,
            "input": payload(e.input.as_deref()),
        }),
        EventType::GenericEvent(e) => json!({
            "data": payload(e.data.as_deref()),
        }),
        EventType::HistoryState(e) => json!({
            "orchestrationState": e.orchestration_state.as_ref().map_or(Value::Null, state_to_json),
        }),
        EventType::ContinueAsNew(e) => json!({
            "input": payload(e.input.as_deref()),
        }),
        EventType::ExecutionSuspended(e) => json!({
            "input": payload(e.input.as_deref()),
        }),
        EventType::ExecutionResumed(e) => json!({
            "input": payload(e.input.as_deref()),
        }),
        EventType::EntityOperationSignaled(e) => json!({
            "requestId": e.request_id,
            "operation": e.operation,
            "scheduledTime": timestamp(e.scheduled_time.as_ref()),
            "input": payload(e.input.as_deref()),
            "targetInstanceId": e.target_instance_id,
        }),
        EventType::EntityOperationCalled(e) => json!({
            "requestId": e.request_id,
            "operation": e.operation,
            "scheduledTime": timestamp(e.scheduled_time.as_ref()),
            "input": payload(e.input.as_deref()),
            "parentInstanceId": e.parent_instance_id,
            "parentExecutionId": e.parent_execution_id,
            "targetInstanceId": e.target_instance_id,
        }),
        EventType::EntityOperationCompleted(e) => json!({
            "requestId": e.request_id,
            "output": payload(e.output.as_deref()),
        }),
        EventType::EntityOperationFailed(e) => json!({
            "requestId": e.request_id,
            "failureDetails": failure(e.failure_details.as_ref()),
        }),
        EventType::EntityLockRequested(e) => json!({
            "criticalSectionId": e.critical_section_id,
            "lockSet": e.lock_set,
            "position": e.position,
            "parentInstanceId": e.parent_instance_id,
        }),
        EventType::EntityLockGranted(e) => json!({
            "criticalSectionId": e.critical_section_id,
        }),
        EventType::EntityUnlockSent(e) => json!({
            "criticalSectionId": e.critical_section_id,
            "parentInstanceId": e.parent_instance_id,
            "targetInstanceId": e.target_instance_id,
        }),
        EventType::ExecutionRewound(e) => json!({
            // A reason is free text, not a JSON payload.
            "reason": e.reason,
            "parentExecutionId": e.parent_execution_id,
            "instanceId": e.instance_id,
            "name": e.name,
            "version": e.version,
            "input": payload(e.input.as_deref()),
            "parentInstance": parent(e.parent_instance.as_ref()),
            "tags": tags(&e.tags),
        }),
    }
}

/// `(instanceId, executionId)` of an optional instance reference.
fn instance(instance: Option<&OrchestrationInstance>) -> (Value, Value) {
    instance.map_or((Value::Null, Value::Null), |instance| {
        (json!(instance.instance_id), json!(instance.execution_id))
    })
}

fn parent(parent: Option<&ParentInstanceInfo>) -> Value {
    parent.map_or(Value::Null, |parent| {
        let (instance_id, execution_id) = instance(parent.orchestration_instance.as_ref());
        json!({
            "taskScheduledId": parent.task_scheduled_id,
            "name": parent.name,
            "version": parent.version,
            "instanceId": instance_id,
            "executionId": execution_id,
        })
    })
}

/// Tags as an object, keys sorted so the output is stable.
fn tags(tags: &HashMap<String, String>) -> Value {
    let sorted: std::collections::BTreeMap<_, _> = tags.iter().collect();
    json!(sorted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use durabletask_proto::{
        ContinueAsNewEvent, EntityLockGrantedEvent, EntityLockRequestedEvent,
        EntityOperationCalledEvent, EntityOperationCompletedEvent, EntityOperationFailedEvent,
        EntityOperationSignaledEvent, EntityUnlockSentEvent, EventRaisedEvent, EventSentEvent,
        ExecutionCompletedEvent, ExecutionResumedEvent, ExecutionRewoundEvent,
        ExecutionStartedEvent, ExecutionSuspendedEvent, ExecutionTerminatedEvent, GenericEvent,
        HistoryStateEvent, OrchestrationState, OrchestrationStatus, OrchestratorCompletedEvent,
        OrchestratorStartedEvent, SubOrchestrationInstanceCompletedEvent,
        SubOrchestrationInstanceCreatedEvent, SubOrchestrationInstanceFailedEvent,
        TaskCompletedEvent, TaskFailedEvent, TaskFailureDetails, TaskScheduledEvent,
        TimerCreatedEvent, TimerFiredEvent,
    };
    use prost_types::Timestamp;

    use super::*;

    fn event(event_id: i32, event_type: EventType) -> HistoryEvent {
        HistoryEvent {
            event_id,
            timestamp: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            event_type: Some(event_type),
        }
    }

    fn boom() -> TaskFailureDetails {
        TaskFailureDetails {
            error_type: "CityNotFound".into(),
            error_message: "no such city".into(),
            inner_failure: Some(Box::new(TaskFailureDetails {
                error_type: "Inner".into(),
                error_message: "deeper".into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn common_fields_and_rfc3339_timestamps() {
        let value = event_to_json(&event(
            -1,
            EventType::OrchestratorStarted(OrchestratorStartedEvent {}),
        ));
        assert_eq!(
            value,
            json!({"event_id": -1, "timestamp": "1970-01-01T00:00:01Z", "kind": "orchestratorStarted"})
        );
        let no_time = HistoryEvent {
            event_id: 3,
            timestamp: None,
            event_type: Some(EventType::OrchestratorCompleted(
                OrchestratorCompletedEvent {},
            )),
        };
        assert_eq!(event_to_json(&no_time)["timestamp"], Value::Null);
    }

    #[test]
    fn an_unknown_kind_shows_only_its_kind() {
        let value = event_to_json(&HistoryEvent {
            event_id: 7,
            timestamp: None,
            event_type: None,
        });
        assert_eq!(
            value,
            json!({"event_id": 7, "timestamp": null, "kind": "unknown"})
        );
    }

    #[test]
    fn execution_started_shows_name_input_ids_and_tags() {
        let value = event_to_json(&event(
            -1,
            EventType::ExecutionStarted(ExecutionStartedEvent {
                name: "hello_cities".into(),
                version: Some("2".into()),
                input: Some(r#"{"n": 3}"#.into()),
                orchestration_instance: Some(OrchestrationInstance {
                    instance_id: "abc".into(),
                    execution_id: Some("e1".into()),
                }),
                parent_instance: Some(ParentInstanceInfo {
                    task_scheduled_id: 4,
                    name: Some("parent_orch".into()),
                    version: None,
                    orchestration_instance: Some(OrchestrationInstance {
                        instance_id: "parent".into(),
                        execution_id: None,
                    }),
                }),
                tags: HashMap::from([("team".to_owned(), "a".to_owned())]),
                ..Default::default()
            }),
        ));
        assert_eq!(value["kind"], "executionStarted");
        assert_eq!(value["name"], "hello_cities");
        assert_eq!(value["version"], "2");
        assert_eq!(value["input"], json!({"n": 3}));
        assert_eq!(value["instanceId"], "abc");
        assert_eq!(value["executionId"], "e1");
        assert_eq!(
            value["parentInstance"],
            json!({"taskScheduledId": 4, "name": "parent_orch", "version": null,
                   "instanceId": "parent", "executionId": null})
        );
        assert_eq!(value["scheduledStartTimestamp"], Value::Null);
        assert_eq!(value["tags"], json!({"team": "a"}));
    }

    #[test]
    fn tasks_show_ids_payloads_and_failure_details() {
        let scheduled = event_to_json(&event(
            1,
            EventType::TaskScheduled(TaskScheduledEvent {
                name: "say_hello".into(),
                input: Some("\"Tokyo\"".into()),
                ..Default::default()
            }),
        ));
        assert_eq!(scheduled["event_id"], 1);
        assert_eq!(scheduled["kind"], "taskScheduled");
        assert_eq!(scheduled["name"], "say_hello");
        assert_eq!(scheduled["input"], "Tokyo");
        assert_eq!(scheduled["version"], Value::Null);
        assert_eq!(scheduled["tags"], json!({}));

        let completed = event_to_json(&event(
            -1,
            EventType::TaskCompleted(TaskCompletedEvent {
                task_scheduled_id: 1,
                result: Some("[1,2]".into()),
            }),
        ));
        assert_eq!(completed["kind"], "taskCompleted");
        assert_eq!(completed["taskScheduledId"], 1);
        assert_eq!(completed["result"], json!([1, 2]));

        let failed = event_to_json(&event(
            -1,
            EventType::TaskFailed(TaskFailedEvent {
                task_scheduled_id: 2,
                failure_details: Some(boom()),
            }),
        ));
        assert_eq!(failed["kind"], "taskFailed");
        assert_eq!(failed["taskScheduledId"], 2);
        // The same shape as the state's failure_details.
        assert_eq!(failed["failureDetails"], failure_to_json(&boom()));
        assert_eq!(failed["failureDetails"]["error_type"], "CityNotFound");
        assert_eq!(
            failed["failureDetails"]["inner_failure"]["message"],
            "deeper"
        );
    }

    #[test]
    fn execution_completed_shows_status_result_and_failure() {
        let value = event_to_json(&event(
            -1,
            EventType::ExecutionCompleted(ExecutionCompletedEvent {
                orchestration_status: OrchestrationStatus::Failed as i32,
                result: None,
                failure_details: Some(boom()),
            }),
        ));
        assert_eq!(value["orchestrationStatus"], "FAILED");
        assert_eq!(value["result"], Value::Null);
        assert_eq!(value["failureDetails"]["message"], "no such city");
    }

    #[test]
    fn timers_show_fire_at_and_timer_id() {
        let fire_at = Some(Timestamp {
            seconds: 60,
            nanos: 0,
        });
        let created = event_to_json(&event(
            3,
            EventType::TimerCreated(TimerCreatedEvent { fire_at }),
        ));
        assert_eq!(created["fireAt"], "1970-01-01T00:01:00Z");
        let fired = event_to_json(&event(
            -1,
            EventType::TimerFired(TimerFiredEvent {
                fire_at,
                timer_id: 3,
            }),
        ));
        assert_eq!(fired["kind"], "timerFired");
        assert_eq!(fired["timerId"], 3);
        assert_eq!(fired["fireAt"], "1970-01-01T00:01:00Z");
    }

    /// Every kind of wire.md renders with its oneof name and its main fields.
    #[test]
    fn every_kind_has_its_wire_name() {
        let s = |text: &str| Some(text.to_owned());
        let cases: Vec<(EventType, &str, &str, Value)> = vec![
            (
                EventType::ExecutionTerminated(ExecutionTerminatedEvent {
                    input: s("\"bye\""),
                    recurse: true,
                }),
                "executionTerminated",
                "input",
                json!("bye"),
            ),
            (
                EventType::SubOrchestrationInstanceCreated(SubOrchestrationInstanceCreatedEvent {
                    instance_id: "child".into(),
                    name: "sub".into(),
                    ..Default::default()
                }),
                "subOrchestrationInstanceCreated",
                "instanceId",
                json!("child"),
            ),
            (
                EventType::SubOrchestrationInstanceCompleted(
                    SubOrchestrationInstanceCompletedEvent {
                        task_scheduled_id: 5,
                        result: s("42"),
                    },
                ),
                "subOrchestrationInstanceCompleted",
                "result",
                json!(42),
            ),
            (
                EventType::SubOrchestrationInstanceFailed(SubOrchestrationInstanceFailedEvent {
                    task_scheduled_id: 5,
                    failure_details: Some(boom()),
                }),
                "subOrchestrationInstanceFailed",
                "taskScheduledId",
                json!(5),
            ),
            (
                EventType::EventSent(EventSentEvent {
                    instance_id: "other".into(),
                    name: "ping".into(),
                    input: s("true"),
                }),
                "eventSent",
                "instanceId",
                json!("other"),
            ),
            (
                EventType::EventRaised(EventRaisedEvent {
                    name: "approval".into(),
                    input: s(r#"{"ok":true}"#),
                }),
                "eventRaised",
                "input",
                json!({"ok": true}),
            ),
            (
                EventType::GenericEvent(GenericEvent { data: s("1") }),
                "genericEvent",
                "data",
                json!(1),
            ),
            (
                EventType::HistoryState(HistoryStateEvent {
                    orchestration_state: Some(OrchestrationState {
                        instance_id: "abc".into(),
                        ..Default::default()
                    }),
                }),
                "historyState",
                "orchestrationState",
                state_to_json(&OrchestrationState {
                    instance_id: "abc".into(),
                    ..Default::default()
                }),
            ),
            (
                EventType::ContinueAsNew(ContinueAsNewEvent { input: s("[3]") }),
                "continueAsNew",
                "input",
                json!([3]),
            ),
            (
                EventType::ExecutionSuspended(ExecutionSuspendedEvent {
                    input: s("maintenance"),
                }),
                "executionSuspended",
                "input",
                json!("maintenance"),
            ),
            (
                EventType::ExecutionResumed(ExecutionResumedEvent { input: None }),
                "executionResumed",
                "input",
                Value::Null,
            ),
            (
                EventType::EntityOperationSignaled(EntityOperationSignaledEvent {
                    request_id: "r1".into(),
                    operation: "add".into(),
                    target_instance_id: s("@counter@c1"),
                    ..Default::default()
                }),
                "entityOperationSignaled",
                "targetInstanceId",
                json!("@counter@c1"),
            ),
            (
                EventType::EntityOperationCalled(EntityOperationCalledEvent {
                    request_id: "r2".into(),
                    operation: "get".into(),
                    ..Default::default()
                }),
                "entityOperationCalled",
                "operation",
                json!("get"),
            ),
            (
                EventType::EntityOperationCompleted(EntityOperationCompletedEvent {
                    request_id: "r2".into(),
                    output: s("7"),
                }),
                "entityOperationCompleted",
                "output",
                json!(7),
            ),
            (
                EventType::EntityOperationFailed(EntityOperationFailedEvent {
                    request_id: "r3".into(),
                    failure_details: Some(boom()),
                }),
                "entityOperationFailed",
                "failureDetails",
                failure_to_json(&boom()),
            ),
            (
                EventType::EntityLockRequested(EntityLockRequestedEvent {
                    critical_section_id: "cs".into(),
                    lock_set: vec!["@a@1".into(), "@b@2".into()],
                    position: 1,
                    parent_instance_id: None,
                }),
                "entityLockRequested",
                "lockSet",
                json!(["@a@1", "@b@2"]),
            ),
            (
                EventType::EntityLockGranted(EntityLockGrantedEvent {
                    critical_section_id: "cs".into(),
                }),
                "entityLockGranted",
                "criticalSectionId",
                json!("cs"),
            ),
            (
                EventType::EntityUnlockSent(EntityUnlockSentEvent {
                    critical_section_id: "cs".into(),
                    parent_instance_id: s("abc"),
                    target_instance_id: s("@a@1"),
                }),
                "entityUnlockSent",
                "targetInstanceId",
                json!("@a@1"),
            ),
            (
                EventType::ExecutionRewound(ExecutionRewoundEvent {
                    // Free text stays text, even when it happens to be valid JSON.
                    reason: s("42"),
                    ..Default::default()
                }),
                "executionRewound",
                "reason",
                json!("42"),
            ),
        ];
        for (event_type, kind, field, expected) in cases {
            let value = event_to_json(&event(9, event_type));
            assert_eq!(value["kind"], kind, "{value:#}");
            assert_eq!(value[field], expected, "{kind}.{field} in {value:#}");
            assert_eq!(value["event_id"], 9, "{value:#}");
        }
    }
}
