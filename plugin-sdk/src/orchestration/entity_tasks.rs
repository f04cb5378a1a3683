//! The futures of entity calls and lock requests (spec §6.5–§6.7).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;

use super::critical_section::CriticalSection;
use super::payload;
use super::state::{Outcome, State, TaskRef};
use super::tasks::Handle;
use crate::entity::EntityInstanceId;
use crate::error::{FailureDetails, TaskFailedError, error_types};

/// The message an orchestrator sees for a failed entity operation (spec §6.6).
pub(crate) fn entity_failure(
    task_id: i32,
    entity: &EntityInstanceId,
    operation: &str,
    details: FailureDetails,
) -> TaskFailedError {
    TaskFailedError {
        task_id,
        message: format!(
            "Operation '{operation}' on entity '{entity}' failed with error: {}",
            details.message
        ),
        details,
    }
}

/// An entity call; resolves to the operation's result or its failure.
///
/// Returned by [`OrchestrationContext::call_entity`](super::OrchestrationContext::call_entity).
/// It resolves to `Ok(O)`, the operation's result deserialized from JSON, or to a
/// [`TaskFailedError`] if the operation failed (or its result does not fit `O`, or the
/// call was refused). It is [`Unpin`].
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::EntityCallTask;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, OrchestrationContext, Registry};
///
/// fn counter(ctx: &mut EntityContext, amount: i64) -> Result<i64, Error> {
///     let value = ctx.get_state::<i64>()?.unwrap_or(0) + amount;
///     ctx.set_state(value)?;
///     Ok(value)
/// }
///
/// async fn count_visit(ctx: OrchestrationContext, user: String) -> Result<i64, Error> {
///     let visits = EntityInstanceId::new("counter", &user)?;
///     let call: EntityCallTask<i64> = ctx.call_entity(&visits, "add", 1);
///     Ok(call.await?)
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("count_visit", count_visit).entity("counter", counter);
/// let mut runtime = TestRuntime::new(registry);
/// runtime.start("count_visit", "ada")?;
/// let second = runtime.start("count_visit", "ada")?;
/// assert_eq!(runtime.output::<i64>(&second)?, 2);
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "the operation is sent either way; await it to get its result"]
pub struct EntityCallTask<O> {
    handle: Handle,
    task_id: i32,
    entity: EntityInstanceId,
    operation: Rc<str>,
    _output: PhantomData<fn() -> O>,
}

impl<O> EntityCallTask<O> {
    pub(crate) fn new(
        cell: TaskRef,
        task_id: i32,
        entity: EntityInstanceId,
        operation: Rc<str>,
    ) -> Self {
        Self {
            handle: Handle::new(cell),
            task_id,
            entity,
            operation,
            _output: PhantomData,
        }
    }

    /// The call's action id.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn traced(ctx: OrchestrationContext, _input: ()) -> Result<i64, Error> {
    ///     let counter = EntityInstanceId::new("counter", "a")?;
    ///     let call = ctx.call_entity::<_, i64>(&counter, "get", ());
    ///     tracing::debug!(task_id = call.task_id(), "waiting for the counter");
    ///     Ok(call.await?)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("traced", traced);
    /// ```
    pub fn task_id(&self) -> i32 {
        self.task_id
    }

    /// The called entity.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::EntityCallTask;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{
    ///     EntityContext, EntityInstanceId, Error, OrchestrationContext, Registry,
    /// };
    ///
    /// fn counter(ctx: &mut EntityContext, amount: Option<i64>) -> Result<i64, Error> {
    ///     let value = ctx.get_state::<i64>()?.unwrap_or(0) + amount.unwrap_or(0);
    ///     ctx.set_state(value)?;
    ///     Ok(value)
    /// }
    ///
    /// async fn report(
    ///     ctx: OrchestrationContext,
    ///     keys: Vec<String>,
    /// ) -> Result<Vec<String>, Error> {
    ///     let mut calls: Vec<EntityCallTask<i64>> = Vec::new();
    ///     for key in &keys {
    ///         calls.push(ctx.call_entity(&EntityInstanceId::new("counter", key)?, "get", ()));
    ///     }
    ///     let mut lines = Vec::new();
    ///     for call in calls {
    ///         let key = call.entity_id().key().to_owned();
    ///         lines.push(format!("{key}: {}", call.await?));
    ///     }
    ///     Ok(lines)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("report", report).entity("counter", counter);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.signal_entity(&EntityInstanceId::new("counter", "home")?, "add", 3)?;
    /// let id = runtime.start("report", ["home", "cart"])?;
    /// assert_eq!(runtime.output::<Vec<String>>(&id)?, ["home: 3", "cart: 0"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entity_id(&self) -> &EntityInstanceId {
        &self.entity
    }
}

impl<O: DeserializeOwned> Future for EntityCallTask<O> {
    type Output = Result<O, TaskFailedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll(cx).map(|outcome| match outcome {
            Outcome::Failed(failure) => Err(failure),
            // Entity calls cannot be cancelled; kept total all the same.
            Outcome::Cancelled => Err(TaskFailedError {
                task_id: this.task_id,
                message: "the entity call was cancelled".to_owned(),
                details: FailureDetails::new(
                    error_types::TASK_CANCELLED,
                    "the entity call was cancelled",
                ),
            }),
            Outcome::Value(raw) => payload::decode::<O>(raw.as_deref()).map_err(|e| {
                let details = FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!(
                        "the result does not fit the type {}: {e}",
                        std::any::type_name::<O>()
                    ),
                );
                entity_failure(this.task_id, &this.entity, &this.operation, details)
            }),
        })
    }
}

/// A lock request; resolves to the [`CriticalSection`] once every entity is locked.
///
/// Returned by
/// [`OrchestrationContext::lock_entities`](super::OrchestrationContext::lock_entities). It
/// resolves to a [`TaskFailedError`] at once when the request was refused (a section is
/// already open or the list is empty). It is [`Unpin`].
///
/// # Examples
///
/// A transfer between two accounts that no other orchestration can interleave with:
///
/// ```
/// use durabletask_sdk::orchestration::LockTask;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, OrchestrationContext, Registry};
///
/// fn account(ctx: &mut EntityContext, amount: i64) -> Result<i64, Error> {
///     let balance = ctx.get_state::<i64>()?.unwrap_or(0) + amount;
///     ctx.set_state(balance)?;
///     Ok(balance)
/// }
///
/// async fn transfer(ctx: OrchestrationContext, amount: i64) -> Result<(), Error> {
///     let from = EntityInstanceId::new("account", "alice")?;
///     let to = EntityInstanceId::new("account", "bob")?;
///     let lock: LockTask = ctx.lock_entities(&[from.clone(), to.clone()]);
///     let section = lock.await?;
///     ctx.call_entity::<_, i64>(&from, "add", -amount).await?;
///     ctx.call_entity::<_, i64>(&to, "add", amount).await?;
///     section.release();
///     Ok(())
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("transfer", transfer).entity("account", account);
/// let mut runtime = TestRuntime::new(registry);
/// let alice = EntityInstanceId::new("account", "alice")?;
/// runtime.signal_entity(&alice, "add", 100)?;
/// runtime.start("transfer", 30)?;
/// assert_eq!(runtime.entity_state::<i64>(&alice)?, Some(70));
/// let bob = EntityInstanceId::new("account", "bob")?;
/// assert_eq!(runtime.entity_state::<i64>(&bob)?, Some(30));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the lock request is sent either way; await it before calling the entities"]
pub struct LockTask {
    handle: Handle,
    task_id: i32,
    state: Weak<RefCell<State>>,
    section_id: Rc<str>,
    lock_set: Rc<[EntityInstanceId]>,
}

impl LockTask {
    pub(crate) fn new(
        cell: TaskRef,
        task_id: i32,
        state: Weak<RefCell<State>>,
        section_id: Rc<str>,
        lock_set: Rc<[EntityInstanceId]>,
    ) -> Self {
        Self {
            handle: Handle::new(cell),
            task_id,
            state,
            section_id,
            lock_set,
        }
    }

    /// The lock request's action id.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext};
    ///
    /// async fn traced(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     let lock = ctx.lock_entities(&[EntityInstanceId::new("counter", "a")?]);
    ///     tracing::debug!(task_id = lock.task_id(), "waiting for the lock");
    ///     lock.await?.release();
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("traced", traced);
    /// ```
    pub fn task_id(&self) -> i32 {
        self.task_id
    }
}

impl Future for LockTask {
    type Output = Result<CriticalSection, TaskFailedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll(cx).map(|outcome| match outcome {
            Outcome::Failed(failure) => Err(failure),
            Outcome::Cancelled => Err(TaskFailedError {
                task_id: this.task_id,
                message: "the lock request was cancelled".to_owned(),
                details: FailureDetails::new(
                    error_types::TASK_CANCELLED,
                    "the lock request was cancelled",
                ),
            }),
            Outcome::Value(_) => Ok(CriticalSection::new(
                Weak::clone(&this.state),
                Rc::clone(&this.section_id),
                Rc::clone(&this.lock_set),
            )),
        })
    }
}
