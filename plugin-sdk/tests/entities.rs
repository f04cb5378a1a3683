//! Orchestrations talking to entities (spec §6.5–§6.7) against hand-built histories and a
//! tiny simulated entity backend, through the public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::*;
use durabletask_sdk::proto::{
    self, history_event::EventType, orchestrator_action::OrchestratorActionType,
    send_entity_message_action::EntityMessageType,
};
use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext, Registry, error_types};
use serde_json::{Value, json};

const A: &str = "@counter@a";
const B: &str = "@counter@b";

/// An entity id from its `@name@key` form.
fn id(text: &str) -> EntityInstanceId {
    text.parse().unwrap()
}

// ---- orchestrators ----

async fn uuids(ctx: OrchestrationContext, _: ()) -> Result<Vec<String>, Error> {
    Ok((0..5).map(|_| ctx.new_uuid()).collect())
}

async fn mixed(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let first = ctx.new_uuid();
    ctx.signal_entity(&id("@Counter@a"), "add", 1)?;
    let call = ctx.call_entity::<_, i64>(&id(B), "get", ());
    let lock = ctx.lock_entities(&[id(B), id("@Counter@a"), id(A)]);
    let last = ctx.new_uuid();
    assert_eq!((call.task_id(), lock.task_id()), (2, 3));
    ctx.create_timer_after(Duration::from_secs(60)).await;
    Ok(json!([first, last]))
}

async fn call_get(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
    Ok(ctx.call_entity(&id("@Counter@k"), "get", ()).await?)
}

async fn catch_get(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    match ctx
        .call_entity::<_, i64>(&id("@counter@k"), "get", ())
        .await
    {
        Ok(v) => Ok(json!(v)),
        Err(e) => Ok(json!([e.message, e.details.error_type, e.task_id])),
    }
}

async fn signal_later(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    let at = ctx.current_utc_datetime() + Duration::from_secs(2);
    ctx.signal_entity_at(&id(A), "add", 5, at)?;
    Ok(())
}

async fn transfer(ctx: OrchestrationContext, amount: i64) -> Result<i64, Error> {
    let section = ctx.lock_entities(&[id(B), id(A)]).await?;
    assert_eq!(section.locked_entities(), [id(A), id(B)]);
    ctx.call_entity::<_, ()>(&id(A), "add", -amount).await?;
    ctx.call_entity::<_, ()>(&id(B), "add", amount).await?;
    section.release();
    // Outside the section again: signals to the formerly locked entities are fine.
    ctx.signal_entity(&id(A), "touch", ())?;
    Ok(ctx.call_entity(&id(B), "get", ()).await?)
}

async fn no_release(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
    let _section = ctx.lock_entities(&[id(A), id(B)]).await?;
    Ok(ctx.call_entity(&id(A), "get", ()).await?)
}

async fn no_release_continue(ctx: OrchestrationContext, n: i64) -> Result<i64, Error> {
    let _section = ctx.lock_entities(&[id(A)]).await?;
    ctx.continue_as_new(n + 1)
}

async fn rules(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let section = ctx.lock_entities(&[id(A)]).await?;
    let signal = ctx.signal_entity(&id(A), "add", 1).unwrap_err();
    let first = ctx.call_entity::<_, ()>(&id(A), "add", 1);
    let second = ctx
        .call_entity::<_, ()>(&id(A), "add", 1)
        .await
        .unwrap_err();
    let other = ctx
        .call_entity::<_, ()>(&id(B), "add", 1)
        .await
        .unwrap_err();
    let nested = ctx.lock_entities(&[id(B)]).await.unwrap_err();
    // Not locked: signalling it is allowed.
    ctx.signal_entity(&id(B), "add", 1)?;
    first.await?;
    // Free again once the first call returned.
    ctx.call_entity::<_, ()>(&id(A), "add", 1).await?;
    section.release();
    Ok(json!([
        [signal.details().error_type, signal.details().message],
        [second.details.error_type, second.message, second.task_id],
        [other.details.error_type, other.message],
        [nested.details.error_type, nested.message],
    ]))
}

async fn call_before_grant(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let lock = ctx.lock_entities(&[id(A)]);
    let early = ctx
        .call_entity::<_, ()>(&id(A), "add", 1)
        .await
        .unwrap_err();
    lock.await?.release();
    Ok(json!([early.details.error_type, early.message]))
}

async fn empty_lock(ctx: OrchestrationContext, _: ()) -> Result<Value, Error> {
    let empty = ctx.lock_entities(&[]).await.unwrap_err();
    let next = ctx.call_entity::<_, ()>(&id(A), "add", 1).task_id();
    Ok(json!([empty.details.error_type, next]))
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.orchestrator("uuids", uuids)
        .orchestrator("mixed", mixed)
        .orchestrator("call_get", call_get)
        .orchestrator("catch_get", catch_get)
        .orchestrator("signal_later", signal_later)
        .orchestrator("transfer", transfer)
        .orchestrator("no_release", no_release)
        .orchestrator("no_release_continue", no_release_continue)
        .orchestrator("rules", rules)
        .orchestrator("call_before_grant", call_before_grant)
        .orchestrator("empty_lock", empty_lock);
    r
}

fn run(
    past: Vec<proto::HistoryEvent>,
    new: Vec<proto::HistoryEvent>,
) -> proto::OrchestratorResponse {
    registry().run_orchestrator(&request(past, new))
}

fn start(name: &str, input: Option<&str>) -> Vec<proto::HistoryEvent> {
    vec![orchestrator_started(1000), execution_started(name, input)]
}

// ---- entity history builders and readers ----

fn entity_messages(response: &proto::OrchestratorResponse) -> Vec<(i32, EntityMessageType)> {
    kinds(response)
        .into_iter()
        .filter_map(|(id, t)| match t {
            OrchestratorActionType::SendEntityMessage(m) => {
                Some((id, m.entity_message_type.clone()?))
            }
            _ => None,
        })
        .collect()
}

fn called(id: i32, request_id: &str, operation: &str, target: &str) -> proto::HistoryEvent {
    event(
        id,
        EventType::EntityOperationCalled(proto::EntityOperationCalledEvent {
            request_id: request_id.into(),
            operation: operation.into(),
            target_instance_id: Some(target.into()),
            parent_instance_id: Some("inst".into()),
            ..Default::default()
        }),
    )
}

fn operation_completed(request_id: &str, output: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::EntityOperationCompleted(proto::EntityOperationCompletedEvent {
            request_id: request_id.into(),
            output: Some(output.into()),
        }),
    )
}

fn operation_failed(request_id: &str, message: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::EntityOperationFailed(proto::EntityOperationFailedEvent {
            request_id: request_id.into(),
            failure_details: Some(proto::TaskFailureDetails {
                error_type: "ValueError".into(),
                error_message: message.into(),
                ..Default::default()
            }),
        }),
    )
}

/// The history event that confirms an entity message action.
fn confirmation(id: i32, message: &EntityMessageType) -> proto::HistoryEvent {
    let kind = match message.clone() {
        EntityMessageType::EntityOperationSignaled(e) => EventType::EntityOperationSignaled(e),
        EntityMessageType::EntityOperationCalled(e) => EventType::EntityOperationCalled(e),
        EntityMessageType::EntityLockRequested(e) => EventType::EntityLockRequested(e),
        EntityMessageType::EntityUnlockSent(e) => EventType::EntityUnlockSent(e),
    };
    event(id, kind)
}

/// Everything a [`drive`] did.
#[derive(Default)]
struct Trace {
    /// Every action sent, in order, as (id, short description).
    sent: Vec<(i32, String)>,
    /// The history at the end.
    past: Vec<proto::HistoryEvent>,
}

fn describe(message: &EntityMessageType) -> String {
    match message {
        EntityMessageType::EntityOperationSignaled(e) => format!(
            "signal {} {}",
            e.target_instance_id.as_deref().unwrap_or(""),
            e.operation
        ),
        EntityMessageType::EntityOperationCalled(e) => format!(
            "call {} {}",
            e.target_instance_id.as_deref().unwrap_or(""),
            e.operation
        ),
        EntityMessageType::EntityLockRequested(e) => format!("lock {}", e.lock_set.join(" ")),
        EntityMessageType::EntityUnlockSent(e) => {
            format!("unlock {}", e.target_instance_id.as_deref().unwrap_or(""))
        }
    }
}

/// Runs `name` until it completes, one response event per step: confirms every action,
/// grants every lock, answers every call with `answer(entity, operation)` (Ok = output
/// JSON, Err = failure message). Checks that no action id is ever sent twice (confirmed
/// actions, unlocks included, are not re-sent on replay).
fn drive(
    name: &str,
    input: Option<&str>,
    mut answer: impl FnMut(&str, &str) -> Result<String, String>,
) -> (proto::CompleteOrchestrationAction, Trace) {
    let registry = registry();
    let mut trace = Trace::default();
    let mut new = start(name, input);
    let mut queue = VecDeque::new();
    for _ in 0..100 {
        let response = registry.run_orchestrator(&request(trace.past.clone(), new.clone()));
        trace.past.append(&mut new);
        for (id, kind) in kinds(&response) {
            assert!(
                trace.sent.iter().all(|(sent, _)| *sent != id),
                "action {id} sent twice: {response:?}"
            );
            match kind {
                OrchestratorActionType::CompleteOrchestration(c) => {
                    trace.sent.push((id, "complete".into()));
                    return (c.clone(), trace);
                }
                OrchestratorActionType::SendEntityMessage(m) => {
                    let message = m.entity_message_type.as_ref().unwrap();
                    trace.sent.push((id, describe(message)));
                    trace.past.push(confirmation(id, message));
                    match message {
                        EntityMessageType::EntityOperationCalled(e) => {
                            let target = e.target_instance_id.as_deref().unwrap_or("");
                            queue.push_back(match answer(target, &e.operation) {
                                Ok(output) => operation_completed(&e.request_id, &output),
                                Err(message) => operation_failed(&e.request_id, &message),
                            });
                        }
                        EntityMessageType::EntityLockRequested(e) => {
                            queue.push_back(event(
                                -1,
                                EventType::EntityLockGranted(proto::EntityLockGrantedEvent {
                                    critical_section_id: e.critical_section_id.clone(),
                                }),
                            ));
                        }
                        _ => {}
                    }
                }
                other => panic!("the test backend does not handle {other:?}"),
            }
        }
        let next = queue
            .pop_front()
            .unwrap_or_else(|| panic!("stuck: nothing to deliver after {response:?}"));
        new = vec![orchestrator_started(1001), next];
    }
    panic!("the orchestration did not complete in 100 steps")
}

fn sent(trace: &Trace) -> Vec<(i32, &str)> {
    trace.sent.iter().map(|(id, s)| (*id, s.as_str())).collect()
}

// ---- ids and request ids (§3.3, §4.11) ----

#[test]
fn entity_messages_take_action_ids_and_share_the_new_uuid_counter() {
    let expected: Vec<String> = serde_json::from_value(output(
        completion(&run(vec![], start("uuids", None))).unwrap().1,
    ))
    .unwrap();
    let response = run(vec![], start("mixed", None));
    let messages = entity_messages(&response);
    assert_eq!(messages.len(), 3, "{response:?}");
    match &messages[0] {
        (1, EntityMessageType::EntityOperationSignaled(s)) => {
            assert_eq!(s.request_id, expected[1]);
            assert_eq!(s.operation, "add");
            assert_eq!(s.input.as_deref(), Some("1"));
            assert_eq!(s.target_instance_id.as_deref(), Some(A));
            assert_eq!(s.scheduled_time, None);
        }
        other => panic!("expected the signal first, got {other:?}"),
    }
    match &messages[1] {
        (2, EntityMessageType::EntityOperationCalled(c)) => {
            assert_eq!(c.request_id, expected[2]);
            assert_eq!(c.operation, "get");
            assert_eq!(c.input, None);
            assert_eq!(c.parent_instance_id.as_deref(), Some("inst"));
            assert_eq!(c.target_instance_id.as_deref(), Some(B));
            assert_eq!(
                (c.parent_execution_id.as_ref(), c.scheduled_time),
                (None, None)
            );
        }
        other => panic!("expected the call second, got {other:?}"),
    }
    match &messages[2] {
        (3, EntityMessageType::EntityLockRequested(l)) => {
            assert_eq!(l.critical_section_id, expected[3]);
            assert_eq!(l.lock_set, [A, B]);
            assert_eq!(l.position, 0);
            assert_eq!(l.parent_instance_id.as_deref(), Some("inst"));
        }
        other => panic!("expected the lock request third, got {other:?}"),
    }
    assert_eq!(timers(&response), [(4, 1060)]);
}

// ---- calls (§6.5, §6.6) ----

#[test]
fn a_call_completes_with_the_entity_output() {
    let first = run(vec![], start("call_get", None));
    let [(1, EntityMessageType::EntityOperationCalled(call))] = &entity_messages(&first)[..] else {
        panic!("{first:?}");
    };
    assert_eq!(call.target_instance_id.as_deref(), Some("@counter@k"));
    let mut past = start("call_get", None);
    past.push(called(1, &call.request_id, "get", "@counter@k"));
    let done = run(past, vec![operation_completed(&call.request_id, "5")]);
    let (id, c) = completion(&done).unwrap();
    assert_eq!((id, output(c)), (2, json!(5)));
}

#[test]
fn a_failed_call_is_a_task_failed_error_naming_operation_and_entity() {
    let first = run(vec![], start("call_get", None));
    let [(1, EntityMessageType::EntityOperationCalled(call))] = &entity_messages(&first)[..] else {
        panic!("{first:?}");
    };
    let request_id = call.request_id.clone();
    let mut past = start("call_get", None);
    past.push(called(1, &request_id, "get", "@counter@k"));
    let failed = run(
        past.clone(),
        vec![operation_failed(&request_id, "Something went wrong!")],
    );
    let failure = failure(&failed);
    assert_eq!(failure.error_type, error_types::TASK_FAILED);
    assert_eq!(
        failure.error_message,
        "Operation 'get' on entity '@counter@k' failed with error: Something went wrong!"
    );
    assert_eq!(
        failure.inner_failure.map(|i| i.error_type),
        Some("ValueError".to_owned())
    );

    // Caught: the message and the entity's own failure.
    let mut past = start("catch_get", None);
    past.push(called(1, &request_id, "get", "@counter@k"));
    let caught = run(past, vec![operation_failed(&request_id, "boom")]);
    let (_, c) = completion(&caught).unwrap();
    assert_eq!(
        output(c),
        json!([
            "Operation 'get' on entity '@counter@k' failed with error: boom",
            "ValueError",
            1
        ])
    );
}

#[test]
fn a_response_to_an_unknown_request_fails_the_orchestration() {
    let mut past = start("call_get", None);
    past.push(called(1, "not-the-request-id", "get", "@counter@k"));
    let failed = run(past, vec![operation_completed("someone-else", "1")]);
    let failure = failure(&failed);
    assert_eq!(failure.error_type, error_types::ORCHESTRATION_STATE_ERROR);
    assert!(
        failure.error_message.contains("someone-else"),
        "{failure:?}"
    );
}

#[test]
fn replayed_entity_messages_are_checked_against_history() {
    // The history signalled an entity at id 1; the code now calls one there.
    let mut past = start("call_get", None);
    past.push(event(
        1,
        EventType::EntityOperationSignaled(proto::EntityOperationSignaledEvent {
            request_id: "r".into(),
            operation: "add".into(),
            target_instance_id: Some(A.into()),
            ..Default::default()
        }),
    ));
    let failed = run(past, vec![orchestrator_started(1001)]);
    let failure = failure(&failed);
    assert_eq!(failure.error_type, error_types::NON_DETERMINISM);
    assert!(
        failure
            .error_message
            .contains("call_entity('get' on '@counter@k')")
            && failure
                .error_message
                .contains("signal_entity('add' on '@counter@a')"),
        "{}",
        failure.error_message
    );
}

// ---- signals (§6.5, §6.8) ----

#[test]
fn a_delayed_signal_carries_its_scheduled_time() {
    let response = run(vec![], start("signal_later", None));
    let [(1, EntityMessageType::EntityOperationSignaled(s))] = &entity_messages(&response)[..]
    else {
        panic!("{response:?}");
    };
    assert_eq!(s.scheduled_time.map(|t| t.seconds), Some(1002));
    assert_eq!(s.input.as_deref(), Some("5"));
    let (id, c) = completion(&response).unwrap();
    assert_eq!((id, status(c)), (2, proto::OrchestrationStatus::Completed));
}

// ---- critical sections (§6.7) ----

#[test]
fn a_critical_section_calls_its_entities_then_unlocks_them_in_lock_set_order() {
    let (c, trace) = drive("transfer", Some("10"), |entity, op| match (entity, op) {
        (B, "get") => Ok("110".into()),
        _ => Ok(String::new()),
    });
    assert_eq!(status(&c), proto::OrchestrationStatus::Completed);
    assert_eq!(output(&c), json!(110));
    assert_eq!(
        sent(&trace),
        [
            (1, "lock @counter@a @counter@b"),
            (2, "call @counter@a add"),
            (3, "call @counter@b add"),
            (4, "unlock @counter@a"),
            (5, "unlock @counter@b"),
            (6, "signal @counter@a touch"),
            (7, "call @counter@b get"),
            (8, "complete"),
        ]
    );
    // Every unlock names the section and this instance.
    let unlocks: Vec<_> = trace
        .past
        .iter()
        .filter_map(|e| match &e.event_type {
            Some(EventType::EntityUnlockSent(u)) => Some(u.clone()),
            _ => None,
        })
        .collect();
    let lock_id = trace
        .past
        .iter()
        .find_map(|e| match &e.event_type {
            Some(EventType::EntityLockRequested(l)) => Some(l.critical_section_id.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(unlocks.len(), 2);
    assert!(unlocks.iter().all(
        |u| u.critical_section_id == lock_id && u.parent_instance_id.as_deref() == Some("inst")
    ));
}

#[test]
fn replaying_a_completed_critical_section_sends_nothing_again() {
    let (_, trace) = drive("transfer", Some("10"), |_, op| {
        Ok(if op == "get" { "1" } else { "" }.into())
    });
    // The whole history again, with a step that changes nothing: only the completion.
    let (past, new) = trace.past.split_at(trace.past.len() - 1);
    let response = run(past.to_vec(), new.to_vec());
    assert_eq!(kinds(&response).len(), 1, "{response:?}");
    let (id, c) = completion(&response).unwrap();
    assert_eq!((id, output(c)), (8, json!(1)));
}

#[test]
fn an_unreleased_section_is_unlocked_when_the_orchestration_completes() {
    let (c, trace) = drive("no_release", None, |_, _| Ok("3".into()));
    assert_eq!(output(&c), json!(3));
    assert_eq!(
        sent(&trace)[2..],
        [
            (3, "unlock @counter@a"),
            (4, "unlock @counter@b"),
            (5, "complete")
        ]
    );
}

#[test]
fn an_unreleased_section_is_unlocked_when_the_orchestration_fails() {
    let (c, trace) = drive("no_release", None, |_, _| {
        Err("Something went wrong!".into())
    });
    assert_eq!(status(&c), proto::OrchestrationStatus::Failed);
    let details = c.failure_details.clone().unwrap();
    assert_eq!(details.error_type, error_types::TASK_FAILED);
    assert!(details.error_message.contains("Something went wrong!"));
    assert_eq!(
        sent(&trace)[2..],
        [
            (3, "unlock @counter@a"),
            (4, "unlock @counter@b"),
            (5, "complete")
        ]
    );
}

#[test]
fn an_unreleased_section_is_unlocked_when_the_orchestration_continues_as_new() {
    let (c, trace) = drive("no_release_continue", Some("1"), |_, _| Ok(String::new()));
    assert_eq!(status(&c), proto::OrchestrationStatus::ContinuedAsNew);
    assert_eq!(output(&c), json!(2));
    assert_eq!(
        sent(&trace),
        [
            (1, "lock @counter@a"),
            (2, "unlock @counter@a"),
            (3, "complete")
        ]
    );
}

#[test]
fn critical_section_rules_fail_the_offending_call_and_use_up_its_id() {
    // Scenario 57 and the rest of §6.7, with the messages of spec §9 #6.
    let (c, trace) = drive("rules", None, |_, _| Ok(String::new()));
    assert_eq!(status(&c), proto::OrchestrationStatus::Completed, "{c:?}");
    let violation = error_types::CRITICAL_SECTION_VIOLATION;
    assert_eq!(
        output(&c),
        json!([
            [
                violation,
                "Must not signal a locked entity from a critical section."
            ],
            [
                violation,
                "Must not call an entity from a critical section while a prior call to the \
                 same entity is still pending.",
                4
            ],
            [
                violation,
                "Must not call an entity from a critical section if it is not one of the \
                 locked entities."
            ],
            [
                violation,
                "Must not enter another critical section from within a critical section."
            ],
        ])
    );
    // The refused calls (ids 2, 4, 5, 6) sent nothing, but used their ids up.
    assert_eq!(
        sent(&trace),
        [
            (1, "lock @counter@a"),
            (3, "call @counter@a add"),
            (7, "signal @counter@b add"),
            (8, "call @counter@a add"),
            (9, "unlock @counter@a"),
            (10, "complete"),
        ]
    );
}

#[test]
fn calls_before_the_grant_are_refused() {
    let (c, trace) = drive("call_before_grant", None, |_, _| Ok(String::new()));
    assert_eq!(
        output(&c),
        json!([
            error_types::CRITICAL_SECTION_VIOLATION,
            "Must await the completion of the lock request prior to calling any entity."
        ])
    );
    assert_eq!(
        sent(&trace),
        [
            (1, "lock @counter@a"),
            (3, "unlock @counter@a"),
            (4, "complete")
        ]
    );
}

#[test]
fn an_empty_lock_set_is_refused_after_taking_its_id() {
    let response = run(vec![], start("empty_lock", None));
    let (id, c) = completion(&response).unwrap();
    // The empty lock request used id 1; the next call gets 2.
    assert_eq!(output(c), json!([error_types::INVALID_INPUT, 2]));
    assert_eq!(id, 3);
}
