//! Batch semantics (spec §6.3, §6.4) and class-entity dispatch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, UNIX_EPOCH};

use durabletask_proto as proto;
use proto::history_event::EventType;
use proto::operation_action::OperationActionType;
use proto::operation_result::ResultType;
use serde::{Deserialize, Serialize};

use super::{EntityContext, EntityInstanceId, EntityWorkItem, UNKNOWN_ENTITY_OPERATION};
use crate::{Error, Registry, error_types};

fn op(operation: &str, input: Option<&str>) -> proto::OperationRequest {
    proto::OperationRequest {
        operation: operation.into(),
        request_id: format!("req-{operation}"),
        input: input.map(Into::into),
        trace_context: None,
    }
}

fn v1(id: &str, state: Option<&str>, operations: Vec<proto::OperationRequest>) -> EntityWorkItem {
    EntityWorkItem::V1(proto::EntityBatchRequest {
        instance_id: id.into(),
        entity_state: state.map(Into::into),
        operations,
        ..Default::default()
    })
}

/// The result of each operation: `Ok(result)` or `Err((errorType, message))`.
fn outcomes(result: &proto::EntityBatchResult) -> Vec<Result<String, (String, String)>> {
    result
        .results
        .iter()
        .map(|r| match r.result_type.as_ref().expect("a result") {
            ResultType::Success(ok) => {
                assert!(ok.start_time_utc.is_some() && ok.end_time_utc.is_some());
                Ok(ok
                    .result
                    .clone()
                    .expect("a success always carries a result"))
            }
            ResultType::Failure(failed) => {
                assert!(failed.start_time_utc.is_some() && failed.end_time_utc.is_some());
                let details = failed.failure_details.as_ref().expect("failure details");
                Err((details.error_type.clone(), details.error_message.clone()))
            }
        })
        .collect()
}

/// A function entity that adds, fails on request (after changing the state and sending
/// messages), signals and starts orchestrations.
fn counter(ctx: &mut EntityContext, input: Option<i64>) -> Result<Option<i64>, Error> {
    let value: i64 = ctx.get_state()?.unwrap_or(0);
    match ctx.operation() {
        "add" => {
            let total = value + input.unwrap_or(1);
            ctx.set_state(total)?;
            let other = EntityInstanceId::new("audit", ctx.entity_id().key())?;
            ctx.signal_entity(&other, "record", total)?;
            Ok(Some(total))
        }
        "add_then_fail" => {
            ctx.set_state(value + 1000)?;
            let other = EntityInstanceId::new("audit", "x")?;
            ctx.signal_entity(&other, "record", 1000)?;
            ctx.schedule_new_orchestration("never", (), None)?;
            Err(Error::new("Boom", "Something went wrong!"))
        }
        "add_then_panic" => {
            ctx.set_state(value + 2000)?;
            ctx.schedule_new_orchestration("never", (), None)?;
            panic!("entity panic")
        }
        "start" => {
            let id = ctx.schedule_new_orchestration("noop_orch", 1, Some("started".into()))?;
            assert_eq!(id, "started");
            let generated = ctx.schedule_new_orchestration("noop_orch", (), None)?;
            assert_eq!(generated.len(), 32);
            assert!(generated.chars().all(|c| c.is_ascii_hexdigit()));
            let me = ctx.entity_id().clone();
            ctx.signal_entity_at(
                &me,
                "add",
                5,
                UNIX_EPOCH + Duration::from_secs(1_600_000_000),
            )?;
            Ok(None)
        }
        "get" => Ok(Some(value)),
        "delete" => {
            ctx.delete_state();
            Ok(None)
        }
        other => Err(Error::new("UnknownOperation", other.to_owned())),
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .entity("Counter", counter)
        .entity_class::<Account>("Account");
    registry
}

#[test]
fn a_failed_operation_rolls_back_its_state_and_actions_and_the_batch_continues() {
    let result = registry().run_entity_batch(v1(
        "@counter@k",
        Some("1"),
        vec![
            op("add", Some("2")),
            op("add_then_fail", None),
            op("add_then_panic", None),
            op("add", None),
            op("get", None),
        ],
    ));
    let outcomes = outcomes(&result);
    assert_eq!(outcomes[0], Ok("3".into()));
    assert_eq!(
        outcomes[1],
        Err(("Boom".into(), "Something went wrong!".into()))
    );
    assert_eq!(
        outcomes[2],
        Err((error_types::PLUGIN_PANIC.into(), "entity panic".into()))
    );
    assert_eq!(outcomes[3], Ok("4".into()));
    assert_eq!(outcomes[4], Ok("4".into()));
    assert_eq!(result.entity_state.as_deref(), Some("4"));
    // Only the two successful adds' signals; nothing from the failed operations.
    let signals: Vec<_> = result
        .actions
        .iter()
        .map(|a| {
            assert_eq!(a.id, 0);
            match a.operation_action_type.as_ref().unwrap() {
                OperationActionType::SendSignal(s) => {
                    (s.instance_id.clone(), s.name.clone(), s.input.clone())
                }
                other => panic!("unexpected action {other:?}"),
            }
        })
        .collect();
    assert_eq!(
        signals,
        [
            ("@audit@k".into(), "record".into(), Some("3".into())),
            ("@audit@k".into(), "record".into(), Some("4".into())),
        ]
    );
    assert!(
        result.operation_infos.is_empty(),
        "v1 has no operation infos"
    );
    assert!(result.failure_details.is_none());
    assert!(!result.requires_state);
}

#[test]
fn a_null_result_is_an_empty_string_and_deleted_state_is_absent() {
    let result = registry().run_entity_batch(v1(
        "@counter@k",
        Some("7"),
        vec![op("delete", None), op("get", None)],
    ));
    assert_eq!(outcomes(&result), [Ok(String::new()), Ok("0".into())]);
    assert_eq!(result.entity_state, None);
}

#[test]
fn an_empty_state_counts_as_none() {
    let result = registry().run_entity_batch(v1("@counter@k", Some(""), vec![op("get", None)]));
    assert_eq!(outcomes(&result), [Ok("0".into())]);
    assert_eq!(result.entity_state, None);
}

#[test]
fn signals_and_starts_are_built_as_the_protocol_wants() {
    let result = registry().run_entity_batch(v1("@COUNTER@Key", None, vec![op("start", None)]));
    assert_eq!(outcomes(&result), [Ok(String::new())]);
    let [first, second, third] = result.actions.as_slice() else {
        panic!("three actions expected: {:?}", result.actions);
    };
    let Some(OperationActionType::StartNewOrchestration(start)) = &first.operation_action_type
    else {
        panic!("{first:?}")
    };
    assert_eq!(
        (
            start.instance_id.as_str(),
            start.name.as_str(),
            start.input.as_deref()
        ),
        ("started", "noop_orch", Some("1"))
    );
    assert!(start.version.is_none() && start.scheduled_time.is_none());
    let Some(OperationActionType::StartNewOrchestration(generated)) = &second.operation_action_type
    else {
        panic!("{second:?}")
    };
    assert_eq!(generated.input, None);
    let Some(OperationActionType::SendSignal(signal)) = &third.operation_action_type else {
        panic!("{third:?}")
    };
    assert_eq!(signal.instance_id, "@counter@Key");
    assert_eq!(signal.name, "add");
    assert_eq!(signal.input.as_deref(), Some("5"));
    assert_eq!(
        signal.scheduled_time,
        Some(proto::prost_types::Timestamp {
            seconds: 1_600_000_000,
            nanos: 0
        })
    );
    assert!(signal.request_time.is_none());
}

#[test]
fn v2_requests_answer_with_aligned_operation_infos() {
    let event = |kind| proto::HistoryEvent {
        event_id: -1,
        timestamp: None,
        event_type: Some(kind),
    };
    let request = proto::EntityRequest {
        instance_id: "@counter@k".into(),
        execution_id: String::new(),
        entity_state: Some("1".into()),
        operation_requests: vec![
            event(EventType::EntityOperationSignaled(
                proto::EntityOperationSignaledEvent {
                    request_id: "s1".into(),
                    operation: "add".into(),
                    input: Some("2".into()),
                    ..Default::default()
                },
            )),
            // Lock messages are not operations.
            event(EventType::EntityLockRequested(Default::default())),
            event(EventType::EntityOperationCalled(
                proto::EntityOperationCalledEvent {
                    request_id: "c1".into(),
                    operation: "add_then_fail".into(),
                    parent_instance_id: Some("orch-1".into()),
                    parent_execution_id: Some(String::new()),
                    ..Default::default()
                },
            )),
            event(EventType::EntityOperationCalled(
                proto::EntityOperationCalledEvent {
                    request_id: "c2".into(),
                    operation: "get".into(),
                    parent_instance_id: Some("orch-2".into()),
                    ..Default::default()
                },
            )),
        ],
    };
    let result = registry().run_entity_batch(request.into());
    let outcomes = outcomes(&result);
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0], Ok("3".into()));
    assert!(outcomes[1].is_err());
    assert_eq!(outcomes[2], Ok("3".into()));
    assert_eq!(
        result.operation_infos,
        [
            proto::OperationInfo {
                request_id: "s1".into(),
                response_destination: None,
            },
            proto::OperationInfo {
                request_id: "c1".into(),
                response_destination: Some(proto::OrchestrationInstance {
                    instance_id: "orch-1".into(),
                    execution_id: Some(String::new()),
                }),
            },
            proto::OperationInfo {
                request_id: "c2".into(),
                response_destination: Some(proto::OrchestrationInstance {
                    instance_id: "orch-2".into(),
                    execution_id: None,
                }),
            },
        ]
    );
    assert_eq!(result.entity_state.as_deref(), Some("3"));
}

#[test]
fn an_unknown_entity_fails_every_operation_and_keeps_the_state() {
    let result = registry().run_entity_batch(v1(
        "@Nobody@k",
        Some("5"),
        vec![op("a", None), op("b", None)],
    ));
    let expected = Err((
        error_types::ENTITY_NOT_REGISTERED.to_owned(),
        "no loaded plugin registers an entity named 'nobody'".to_owned(),
    ));
    assert_eq!(outcomes(&result), [expected.clone(), expected]);
    assert_eq!(result.entity_state.as_deref(), Some("5"));
    assert!(result.actions.is_empty());
}

#[test]
fn an_unparsable_instance_id_fails_every_operation() {
    let result = registry().run_entity_batch(v1("counter", None, vec![op("get", None)]));
    let outcomes = outcomes(&result);
    let Err((error_type, message)) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(error_type, error_types::INVALID_INPUT);
    assert!(
        message.contains("'counter' is not an entity instance id"),
        "{message}"
    );
}

#[test]
fn an_input_of_the_wrong_type_fails_the_operation() {
    let result =
        registry().run_entity_batch(v1("@counter@k", None, vec![op("add", Some(r#""x""#))]));
    let outcomes = outcomes(&result);
    assert!(
        matches!(&outcomes[0], Err((t, _)) if t == error_types::INVALID_INPUT),
        "{outcomes:?}"
    );
}

#[test]
fn a_state_of_the_wrong_type_fails_the_operation() {
    let result = registry().run_entity_batch(v1(
        "@counter@k",
        Some(r#""not a number""#),
        vec![op("get", None)],
    ));
    let outcomes = outcomes(&result);
    assert!(
        matches!(&outcomes[0], Err((t, m)) if t == error_types::INVALID_INPUT && m.contains("@counter@k")),
        "{outcomes:?}"
    );
    assert_eq!(result.entity_state.as_deref(), Some(r#""not a number""#));
}

#[derive(Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

impl Account {
    fn deposit(&mut self, amount: i64) -> Result<i64, Error> {
        self.balance += amount;
        Ok(self.balance)
    }

    fn withdraw(&mut self, ctx: &mut EntityContext, amount: i64) -> Result<i64, Error> {
        self.balance -= amount;
        if self.balance < 0 {
            return Err(Error::new(
                "Overdraft",
                format!("{} would be overdrawn", ctx.entity_id()),
            ));
        }
        let bank = EntityInstanceId::new("bank", "main")?;
        ctx.signal_entity(&bank, "withdrawn", amount)?;
        Ok(self.balance)
    }

    fn balance(&self) -> Result<i64, Error> {
        Ok(self.balance)
    }

    fn reset(&mut self) -> Result<(), Error> {
        self.balance = 0;
        Ok(())
    }

    fn close(&mut self, ctx: &mut EntityContext, _input: ()) -> Result<(), Error> {
        ctx.delete_state();
        Ok(())
    }
}

crate::entity_operations!(Account {
    deposit,
    withdraw,
    balance,
    reset,
    close,
});

#[test]
fn a_class_entity_dispatches_by_method_name_and_persists_itself() {
    let result = registry().run_entity_batch(v1(
        "@account@Alice",
        None,
        vec![
            op("deposit", Some("10")),
            op("withdraw", Some("30")),
            op("withdraw", Some("4")),
            op("balance", None),
            op("Balance", None),
        ],
    ));
    let outcomes = outcomes(&result);
    assert_eq!(outcomes[0], Ok("10".into()));
    assert_eq!(
        outcomes[1],
        Err((
            "Overdraft".into(),
            "@account@Alice would be overdrawn".into()
        ))
    );
    assert_eq!(outcomes[2], Ok("6".into()));
    assert_eq!(outcomes[3], Ok("6".into()));
    // Operation names are case-sensitive.
    assert_eq!(
        outcomes[4],
        Err((
            UNKNOWN_ENTITY_OPERATION.into(),
            "Entity '@account@Alice' has no operation 'Balance'".into()
        ))
    );
    assert_eq!(result.entity_state.as_deref(), Some(r#"{"balance":6}"#));
    assert_eq!(
        result.actions.len(),
        1,
        "only the successful withdrawal signals"
    );
}

#[test]
fn a_class_entity_has_an_implicit_delete() {
    let result = registry().run_entity_batch(v1(
        "@account@Bob",
        Some(r#"{"balance":3}"#),
        vec![op("delete", None)],
    ));
    assert_eq!(outcomes(&result), [Ok(String::new())]);
    assert_eq!(result.entity_state, None);

    let result = registry().run_entity_batch(v1(
        "@account@Bob",
        Some(r#"{"balance":3}"#),
        vec![op("close", None), op("deposit", Some("1"))],
    ));
    assert_eq!(outcomes(&result), [Ok(String::new()), Ok("1".into())]);
    assert_eq!(result.entity_state.as_deref(), Some(r#"{"balance":1}"#));
}

#[test]
fn reading_a_missing_class_entity_does_not_create_it() {
    let result = registry().run_entity_batch(v1(
        "@account@Carol",
        None,
        vec![op("balance", None), op("reset", None)],
    ));
    assert_eq!(outcomes(&result), [Ok("0".into()), Ok(String::new())]);
    assert_eq!(result.entity_state, None);

    // An existing entity is saved even when back at the default.
    let result = registry().run_entity_batch(v1(
        "@account@Carol",
        Some(r#"{"balance":5}"#),
        vec![op("reset", None)],
    ));
    assert_eq!(result.entity_state.as_deref(), Some(r#"{"balance":0}"#));
}

#[test]
#[should_panic(expected = "already registered")]
fn duplicate_entity_names_are_refused() {
    registry().entity("COUNTER", counter);
}

#[test]
#[should_panic(expected = "invalid entity name")]
fn entity_names_with_at_are_refused() {
    Registry::new().entity("a@b", counter);
}

#[test]
fn names_are_lowercased_at_registration() {
    assert_eq!(registry().entity_names(), ["account", "counter"]);
}
