//! Orchestration → entity messages (spec §6.5, §6.6): signals, calls and lock requests,
//! and what their responses do. The critical-section rules are in `critical_section`.
//!
//! Like the reference, a call, signal or lock request takes its action id first, then is
//! checked against the critical-section rules, and only then takes its request id from
//! `new_uuid` (spec §3.3).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::SystemTime;

use durabletask_proto as proto;
use proto::orchestrator_action::OrchestratorActionType;
use proto::send_entity_message_action::EntityMessageType;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::OrchestrationContext;
use super::critical_section::{self, EMPTY_LOCK_SET, NESTED_LOCK, Section};
use super::entity_tasks::{EntityCallTask, LockTask, entity_failure};
use super::payload;
use super::state::{Outcome, State, TaskCell, TaskRef};
use super::time;
use crate::entity::EntityInstanceId;
use crate::error::{Error, FailureDetails, TaskFailedError, error_types};

/// The entity side of the replay state.
#[derive(Default)]
pub(crate) struct EntityState {
    /// Calls waiting for their response, by request id.
    pub(crate) calls: BTreeMap<String, PendingEntityCall>,
    /// Lock requests waiting for their grant, by critical section id.
    pub(crate) lock_requests: BTreeMap<String, TaskRef>,
    /// The critical section the orchestration is in, if any.
    pub(crate) section: Option<Section>,
    /// The action ids of the unlocks sent for each section, by critical section id.
    pub(crate) unlocks: BTreeMap<String, Vec<i32>>,
}

/// A `call_entity` waiting for `entityOperationCompleted` / `entityOperationFailed`.
pub(crate) struct PendingEntityCall {
    pub(crate) cell: TaskRef,
    pub(crate) task_id: i32,
    pub(crate) entity: EntityInstanceId,
    pub(crate) operation: Rc<str>,
}

/// The failure of a refused call or lock request (a critical-section rule or an empty lock
/// set), for its task.
fn refused(task_id: i32, error_type: &str, message: impl Into<String>) -> TaskFailedError {
    let message = message.into();
    TaskFailedError {
        task_id,
        details: FailureDetails::new(error_type, message.clone()),
        message,
    }
}

fn entity_message(message: EntityMessageType) -> OrchestratorActionType {
    OrchestratorActionType::SendEntityMessage(proto::SendEntityMessageAction {
        entity_message_type: Some(message),
    })
}

impl OrchestrationContext {
    /// Sends the operation `operation` with `input` (as JSON) to the entity `entity`,
    /// without waiting for it to run: fire and forget. Takes the next action id.
    ///
    /// Fails with [`CriticalSectionViolation`](crate::error_types::CRITICAL_SECTION_VIOLATION)
    /// when the entity is locked by this orchestration's critical section (call it
    /// instead), and with `InvalidInput` when `input` cannot be serialized.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn count_visit(ctx: OrchestrationContext, page: String) -> Result<(), Error> {
    ///     ctx.signal_entity(&EntityInstanceId::new("counter", page)?, "add", 1)?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("count_visit", count_visit);
    /// ```
    pub fn signal_entity<I: Serialize>(
        &self,
        entity: &EntityInstanceId,
        operation: &str,
        input: I,
    ) -> Result<(), Error> {
        self.signal(entity, operation, &input, None)
    }

    /// [`signal_entity`](Self::signal_entity), delivered at `at` (UTC): the backend holds
    /// the operation until then; a time in the past delivers it at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn remind_later(ctx: OrchestrationContext, user: String) -> Result<(), Error> {
    ///     let in_an_hour = ctx.current_utc_datetime() + Duration::from_secs(3600);
    ///     let reminders = EntityInstanceId::new("reminders", user)?;
    ///     ctx.signal_entity_at(&reminders, "ring", (), in_an_hour)?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("remind_later", remind_later);
    /// ```
    pub fn signal_entity_at<I: Serialize>(
        &self,
        entity: &EntityInstanceId,
        operation: &str,
        input: I,
        at: SystemTime,
    ) -> Result<(), Error> {
        self.signal(entity, operation, &input, Some(at))
    }

    fn signal<I: Serialize>(
        &self,
        entity: &EntityInstanceId,
        operation: &str,
        input: &I,
        at: Option<SystemTime>,
    ) -> Result<(), Error> {
        // Serialized before borrowing the state: `Serialize` impls are user code.
        let input = payload::encode(input);
        let mut state = self.state.borrow_mut();
        let id = state.next_id();
        critical_section::check_signal(&state, entity)
            .map_err(|rule| Error::new(error_types::CRITICAL_SECTION_VIOLATION, rule))?;
        let input = input.map_err(|e| {
            Error::new(
                error_types::INVALID_INPUT,
                format!(
                    "signal_entity: the input of operation '{operation}' could not be \
                     serialized: {e}"
                ),
            )
        })?;
        let request_id = state.new_uuid();
        state.insert_action(
            id,
            entity_message(EntityMessageType::EntityOperationSignaled(
                proto::EntityOperationSignaledEvent {
                    request_id,
                    operation: operation.to_owned(),
                    scheduled_time: at.map(time::to_timestamp),
                    input,
                    target_instance_id: Some(entity.to_string()),
                },
            )),
        );
        Ok(())
    }

    /// Calls the operation `operation` of the entity `entity` with `input` (as JSON), and
    /// returns a task for its result.
    /// The call is recorded now, even if the task is never awaited; it takes the next
    /// action id.
    ///
    /// The task resolves to the operation's result, or to a
    /// [`TaskFailedError`](crate::TaskFailedError) whose message is
    /// `Operation '<op>' on entity '<@name@key>' failed with error: <message>` and whose
    /// details are the entity's own failure; `?` fails the orchestration with
    /// [`TaskFailed`](crate::error_types::TASK_FAILED). The task fails at once, with
    /// [`CriticalSectionViolation`](crate::error_types::CRITICAL_SECTION_VIOLATION), when
    /// the call breaks a rule of the current critical section (see
    /// [`lock_entities`](Self::lock_entities)), and with `InvalidInput` when `input` cannot
    /// be serialized.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn read_counter(ctx: OrchestrationContext, key: String) -> Result<i64, Error> {
    ///     let counter = EntityInstanceId::new("counter", key)?;
    ///     let value: i64 = ctx.call_entity(&counter, "get", ()).await?;
    ///     Ok(value)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("read_counter", read_counter);
    /// ```
    pub fn call_entity<I: Serialize, O: DeserializeOwned>(
        &self,
        entity_id: &EntityInstanceId,
        operation: &str,
        input: I,
    ) -> EntityCallTask<O> {
        let input = payload::encode(&input);
        let mut state = self.state.borrow_mut();
        let cell = TaskCell::new(&state.awaited);
        let operation: Rc<str> = Rc::from(operation);
        let id = state.next_id();

        let task = EntityCallTask::new(
            Rc::clone(&cell),
            id,
            entity_id.clone(),
            Rc::clone(&operation),
        );
        if let Err(rule) = critical_section::check_call(&mut state, entity_id) {
            let failure = refused(id, error_types::CRITICAL_SECTION_VIOLATION, rule);
            TaskCell::complete(&cell, Outcome::Failed(failure));
            return task;
        }
        let input = match input {
            Ok(input) => input,
            Err(e) => {
                // The entity was marked in use by the check: free it again.
                if let Some(section) = state.entities.section.as_mut() {
                    section.call_returned(entity_id);
                }
                let details = FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!("the input of operation '{operation}' could not be serialized: {e}"),
                );
                let failure = entity_failure(id, entity_id, &operation, details);
                TaskCell::complete(&cell, Outcome::Failed(failure));
                return task;
            }
        };
        let request_id = state.new_uuid();
        let parent = Some(state.instance_id.to_string());
        state.insert_action(
            id,
            entity_message(EntityMessageType::EntityOperationCalled(
                proto::EntityOperationCalledEvent {
                    request_id: request_id.clone(),
                    operation: operation.to_string(),
                    input,
                    parent_instance_id: parent,
                    target_instance_id: Some(entity_id.to_string()),
                    ..Default::default()
                },
            )),
        );
        state.entities.calls.insert(
            request_id,
            PendingEntityCall {
                cell,
                task_id: id,
                entity: entity_id.clone(),
                operation,
            },
        );
        task
    }

    /// Enters a critical section: asks for locks on `entities` (sorted by their
    /// `@name@key` form and deduplicated, so every orchestration locks in the same order
    /// and none deadlock), and returns a task that resolves to a [`CriticalSection`] guard once
    /// all are held. Takes the next action id.
    ///
    /// The locks exclude other critical sections: while this one holds an entity, no
    /// other orchestration's `lock_entities` on it is granted. They do not necessarily
    /// exclude plain calls and signals, from orchestrations that did not lock the entity or
    /// from clients: whether those wait depends on the backend, and Microsoft's in-memory
    /// backend lets them through (it holds back only lock requests). To keep a
    /// read-check-write sequence safe on every backend, make every orchestration that
    /// changes these entities concurrently lock them too.
    ///
    /// From this call on, and until the section is released (or the orchestration
    /// completes, fails or continues as new, which release it automatically), these rules
    /// hold; breaking one fails the offending call's task (or `signal_entity`'s result)
    /// with [`CriticalSectionViolation`](crate::error_types::CRITICAL_SECTION_VIOLATION):
    /// - no entity may be called before the locks are granted (await this task first);
    /// - only locked entities may be called, and one call per entity at a time;
    /// - locked entities may not be signalled;
    /// - no second critical section may be entered: this task fails.
    ///
    /// The task also fails, with `InvalidInput`, when the list is empty.
    ///
    /// [`CriticalSection`]: super::CriticalSection
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn move_stock(ctx: OrchestrationContext, qty: u32) -> Result<(), Error> {
    ///     let paris = EntityInstanceId::new("stock", "paris")?;
    ///     let lyon = EntityInstanceId::new("stock", "lyon")?;
    ///     let section = ctx.lock_entities(&[paris.clone(), lyon.clone()]).await?;
    ///     // Both calls in flight at once: they target different locked entities.
    ///     let take = ctx.call_entity::<_, ()>(&paris, "take", qty);
    ///     let put = ctx.call_entity::<_, ()>(&lyon, "put", qty);
    ///     take.await?;
    ///     put.await?;
    ///     section.release();
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("move_stock", move_stock);
    /// ```
    pub fn lock_entities(&self, entities: &[EntityInstanceId]) -> LockTask {
        let mut state = self.state.borrow_mut();
        let cell = TaskCell::new(&state.awaited);
        let weak = Rc::downgrade(&self.state);
        let mut lock_set = entities.to_vec();
        let id = state.next_id();
        if state.entities.section.is_some() {
            let failure = refused(id, error_types::CRITICAL_SECTION_VIOLATION, NESTED_LOCK);
            TaskCell::complete(&cell, Outcome::Failed(failure));
            return LockTask::new(cell, id, weak, Rc::from(""), Rc::from([]));
        }
        let section_id: Rc<str> = Rc::from(state.new_uuid());
        lock_set.sort();
        lock_set.dedup();
        let lock_set: Rc<[EntityInstanceId]> = Rc::from(lock_set);
        if lock_set.is_empty() {
            let failure = refused(id, error_types::INVALID_INPUT, EMPTY_LOCK_SET);
            TaskCell::complete(&cell, Outcome::Failed(failure));
            return LockTask::new(cell, id, weak, section_id, lock_set);
        }
        let parent = Some(state.instance_id.to_string());
        state.insert_action(
            id,
            entity_message(EntityMessageType::EntityLockRequested(
                proto::EntityLockRequestedEvent {
                    critical_section_id: section_id.to_string(),
                    lock_set: lock_set.iter().map(ToString::to_string).collect(),
                    position: 0,
                    parent_instance_id: parent,
                },
            )),
        );
        state
            .entities
            .lock_requests
            .insert(section_id.to_string(), Rc::clone(&cell));
        state.entities.section = Some(Section::new(Rc::clone(&section_id), Rc::clone(&lock_set)));
        LockTask::new(cell, id, weak, section_id, lock_set)
    }
}

/// `entityOperationCompleted` / `entityOperationFailed` (`Err` = the entity's failure):
/// the task to complete, and how. An unknown request id fails the orchestration, as in
/// the reference (`Err` = the failure).
pub(crate) fn call_returned(
    state: &mut State,
    request_id: &str,
    result: Result<Option<&str>, FailureDetails>,
) -> Result<(TaskRef, Outcome), FailureDetails> {
    let Some(call) = state.entities.calls.remove(request_id) else {
        return Err(FailureDetails::new(
            error_types::ORCHESTRATION_STATE_ERROR,
            format!(
                "The history has a response to entity request '{request_id}', which no \
                 call_entity of this orchestration made."
            ),
        ));
    };
    if let Some(section) = state.entities.section.as_mut() {
        section.call_returned(&call.entity);
    }
    let outcome = match result {
        Ok(output) => Outcome::Value(output.map(Rc::from)),
        Err(details) => Outcome::Failed(entity_failure(
            call.task_id,
            &call.entity,
            &call.operation,
            details,
        )),
    };
    Ok((call.cell, outcome))
}

/// `entityLockGranted`: the lock task to complete (`None` for an unknown section, which
/// is ignored, as in the reference).
pub(crate) fn lock_granted(state: &mut State, section_id: &str) -> Option<TaskRef> {
    let cell = state.entities.lock_requests.remove(section_id)?;
    if let Some(section) = state.entities.section.as_mut()
        && &*section.id == section_id
    {
        section.grant();
    }
    Some(cell)
}
