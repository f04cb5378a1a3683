//! The JSON shapes the client prints.
//!
//! Payloads travel as JSON text inside the protocol; here they are parsed back into JSON
//! values so that scripts can read `output` directly instead of decoding a string twice.

use durabletask_proto::{
    EntityMetadata, OrchestrationState, OrchestrationStatus, TaskFailureDetails,
};
use serde_json::{Value, json};

/// `{"instance_id","name","status","input","output","custom_status","failure_details",
/// "created_at","last_updated_at","version","parent_instance_id"}` (the last: the
/// orchestration that started it as a sub-orchestration, or null).
pub fn state_to_json(state: &OrchestrationState) -> Value {
    json!({
        "instance_id": state.instance_id,
        "name": state.name,
        "status": status_name(state.orchestration_status),
        "input": payload(state.input.as_deref()),
        "output": payload(state.output.as_deref()),
        "custom_status": payload(state.custom_status.as_deref()),
        "failure_details": state.failure_details.as_ref().map_or(Value::Null, failure_to_json),
        "created_at": timestamp(state.created_timestamp.as_ref()),
        "last_updated_at": timestamp(state.last_updated_timestamp.as_ref()),
        "version": state.version.as_deref().filter(|version| !version.is_empty()),
        "parent_instance_id": state.parent_instance_id.as_deref().filter(|parent| !parent.is_empty()),
    })
}

/// `{"entity_id","exists": true,"last_modified_time","backlog_queue_size","locked_by",
/// "state"}`: `state` is the entity's state as a JSON value (null when absent or not
/// fetched, the raw text if it is not JSON).
pub fn entity_to_json(entity: &EntityMetadata) -> Value {
    json!({
        "entity_id": entity.instance_id,
        "exists": true,
        "last_modified_time": timestamp(entity.last_modified_time.as_ref()),
        "backlog_queue_size": entity.backlog_queue_size,
        "locked_by": entity.locked_by.as_deref().filter(|owner| !owner.is_empty()),
        "state": payload(entity.serialized_state.as_deref()),
    })
}

/// The status without its protobuf prefix: `RUNNING`, `COMPLETED`, ...
pub fn status_name(status: i32) -> String {
    match OrchestrationStatus::try_from(status) {
        Ok(known) => known
            .as_str_name()
            .trim_start_matches("ORCHESTRATION_STATUS_")
            .to_owned(),
        Err(_) => format!("UNKNOWN({status})"),
    }
}

/// A JSON payload as a value: null when absent or empty, the raw text if it is not JSON.
pub fn payload(text: Option<&str>) -> Value {
    match text {
        None | Some("") => Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
    }
}

pub fn failure_to_json(failure: &TaskFailureDetails) -> Value {
    json!({
        "error_type": failure.error_type,
        "message": failure.error_message,
        "stack_trace": failure.stack_trace,
        "inner_failure": failure.inner_failure.as_deref().map_or(Value::Null, failure_to_json),
        "is_non_retriable": failure.is_non_retriable,
    })
}

/// RFC 3339, or null when absent.
pub fn timestamp(timestamp: Option<&prost_types::Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |timestamp| {
        Value::String(timestamp.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_or_stay_raw() {
        assert_eq!(payload(None), Value::Null);
        assert_eq!(payload(Some("")), Value::Null);
        assert_eq!(payload(Some("[1, 2]")), json!([1, 2]));
        assert_eq!(payload(Some("not json")), json!("not json"));
    }

    #[test]
    fn state_has_every_field() {
        let state = OrchestrationState {
            instance_id: "abc".into(),
            name: "hello_cities".into(),
            orchestration_status: OrchestrationStatus::Failed as i32,
            input: Some("\"x\"".into()),
            created_timestamp: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            failure_details: Some(TaskFailureDetails {
                error_type: "TaskFailed".into(),
                error_message: "boom".into(),
                inner_failure: Some(Box::new(TaskFailureDetails {
                    error_type: "Inner".into(),
                    error_message: "deeper".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let value = state_to_json(&state);
        assert_eq!(value["status"], "FAILED");
        assert_eq!(value["input"], "x");
        assert_eq!(value["output"], Value::Null);
        assert_eq!(value["version"], Value::Null);
        assert_eq!(value["created_at"], "1970-01-01T00:00:00Z");
        assert_eq!(value["last_updated_at"], Value::Null);
        assert_eq!(value["failure_details"]["error_type"], "TaskFailed");
        assert_eq!(
            value["failure_details"]["inner_failure"]["message"],
            "deeper"
        );
        assert_eq!(
            value["failure_details"]["inner_failure"]["inner_failure"],
            Value::Null
        );
        assert_eq!(value["failure_details"]["stack_trace"], Value::Null);
    }

    #[test]
    fn entity_state_is_parsed_or_kept_raw() {
        let mut entity = EntityMetadata {
            instance_id: "@counter@k".into(),
            last_modified_time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
            backlog_queue_size: 2,
            locked_by: None,
            serialized_state: Some("7".into()),
        };
        assert_eq!(
            entity_to_json(&entity),
            json!({
                "entity_id": "@counter@k",
                "exists": true,
                "last_modified_time": "1970-01-01T00:00:00Z",
                "backlog_queue_size": 2,
                "locked_by": null,
                "state": 7,
            })
        );
        entity.serialized_state = Some("not json".into());
        entity.locked_by = Some("orchestration-1".into());
        let value = entity_to_json(&entity);
        assert_eq!(value["state"], "not json");
        assert_eq!(value["locked_by"], "orchestration-1");
        entity.serialized_state = None;
        assert_eq!(entity_to_json(&entity)["state"], Value::Null);
    }

    #[test]
    fn status_names_drop_the_prefix() {
        assert_eq!(
            status_name(OrchestrationStatus::ContinuedAsNew as i32),
            "CONTINUED_AS_NEW"
        );
        assert_eq!(status_name(99), "UNKNOWN(99)");
    }
}
