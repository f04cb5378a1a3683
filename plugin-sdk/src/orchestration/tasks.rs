//! The futures user code awaits for durable work: each reads a [`TaskCell`] that only
//! the replay engine completes, from a history event.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;

use super::cancel::CancelHandle;
use super::payload;
use super::state::{Outcome, TaskCell, TaskRef};
use crate::error::{FailureDetails, TaskFailedError, error_types};

/// A registration on a task cell that un-registers itself when the future is dropped, so
/// an abandoned task (e.g. the loser of a `when_any`) no longer counts as awaited.
pub(super) struct Handle {
    cell: TaskRef,
}

impl Handle {
    pub(super) fn new(cell: TaskRef) -> Self {
        Self { cell }
    }

    pub(super) fn poll(&self, cx: &Context<'_>) -> Poll<Outcome> {
        match TaskCell::poll(&self.cell, cx.waker()) {
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        TaskCell::forget_waker(&self.cell);
    }
}

/// An activity call; resolves to the activity's result or its failure.
///
/// The activity is scheduled when `call_activity` is called, whether or not this is
/// awaited.
///
/// Returned by [`OrchestrationContext::call_activity`](super::OrchestrationContext::call_activity).
/// It resolves to `Ok(O)`, the activity's output deserialized from JSON, or to a
/// [`TaskFailedError`] if the activity failed (or its output does not fit `O`). It is
/// [`Unpin`], so it can go straight into [`when_any`](super::when_any).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::ActivityTask;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn prepare(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
///     // Both activities are scheduled here, so they run in parallel.
///     let invoice: ActivityTask<String> = ctx.call_activity("write_invoice", &order);
///     let label: ActivityTask<String> = ctx.call_activity("print_label", &order);
///     Ok(format!("{} + {}", invoice.await?, label.await?))
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("prepare", prepare);
/// let mut runtime = TestRuntime::new(registry);
/// runtime
///     .mock_activity("write_invoice", |order: String| Ok(format!("invoice {order}")))
///     .mock_activity("print_label", |order: String| Ok(format!("label {order}")));
/// let id = runtime.start("prepare", "A-7")?;
/// assert_eq!(runtime.output::<String>(&id)?, "invoice A-7 + label A-7");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "the activity is scheduled either way; await it to get its result"]
pub struct ActivityTask<O> {
    handle: Handle,
    task_id: i32,
    instance_id: Rc<str>,
    name: Rc<str>,
    _output: PhantomData<fn() -> O>,
}

impl<O> ActivityTask<O> {
    pub(crate) fn new(cell: TaskRef, task_id: i32, instance_id: Rc<str>, name: Rc<str>) -> Self {
        Self {
            handle: Handle { cell },
            task_id,
            instance_id,
            name,
            _output: PhantomData,
        }
    }

    /// The task's action id: 1 for the orchestration's first durable call, 2 for the next,
    /// and so on. The activity sees it as
    /// [`ActivityContext::task_id`](crate::ActivityContext::task_id).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn traced(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ///     let task = ctx.call_activity::<_, String>("lookup", "key");
    ///     tracing::debug!(task_id = task.task_id(), "waiting for lookup");
    ///     Ok(task.await?)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("traced", traced);
    /// ```
    pub fn task_id(&self) -> i32 {
        self.task_id
    }
}

/// The message an orchestrator sees for a failed activity (spec §3.4, `taskFailed`).
pub(crate) fn activity_failure(
    instance_id: &str,
    task_id: i32,
    details: FailureDetails,
) -> TaskFailedError {
    TaskFailedError {
        task_id,
        message: format!(
            "{instance_id}: Activity task #{task_id} failed: {}",
            details.message
        ),
        details,
    }
}

/// The message an orchestrator sees for a failed sub-orchestration (spec §3.4,
/// `subOrchestrationInstanceFailed`): no instance-id prefix, unlike activities.
pub(crate) fn sub_orchestration_failure(task_id: i32, details: FailureDetails) -> TaskFailedError {
    TaskFailedError {
        task_id,
        message: format!(
            "Sub-orchestration task #{task_id} failed: {}",
            details.message
        ),
        details,
    }
}

/// The failure a cancelled task resolves to, where its output type can carry one.
fn cancelled(task_id: i32, what: &str) -> TaskFailedError {
    let message = format!("{what} was cancelled");
    TaskFailedError {
        task_id,
        message: message.clone(),
        details: FailureDetails::new(error_types::TASK_CANCELLED, message),
    }
}

impl<O: DeserializeOwned> Future for ActivityTask<O> {
    type Output = Result<O, TaskFailedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll(cx).map(|outcome| match outcome {
            Outcome::Failed(failure) => Err(failure),
            Outcome::Cancelled => Err(cancelled(this.task_id, "the activity call")),
            Outcome::Value(raw) => payload::decode::<O>(raw.as_deref()).map_err(|e| {
                let details = FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!(
                        "the result of activity '{}' does not fit the type {}: {e}",
                        this.name,
                        std::any::type_name::<O>()
                    ),
                );
                activity_failure(&this.instance_id, this.task_id, details)
            }),
        })
    }
}

/// A sub-orchestration call; resolves to the child's output or its failure.
///
/// Returned by
/// [`OrchestrationContext::call_sub_orchestrator`](super::OrchestrationContext::call_sub_orchestrator).
/// The child is started when the call is made, whether or not this is awaited. It resolves
/// to `Ok(O)`, the child's output deserialized from JSON, or to a [`TaskFailedError`] whose
/// message is `Sub-orchestration task #<id> failed: <child message>` and whose
/// [`details`](TaskFailedError::details) are the child's own failure. It is [`Unpin`].
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::SubOrchestrationTask;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn ship(_ctx: OrchestrationContext, order: String) -> Result<(), Error> {
///     Err(Error::new("OutOfStock", format!("{order}: no pens left")))
/// }
///
/// async fn fulfil(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
///     let child: SubOrchestrationTask<()> = ctx.call_sub_orchestrator("ship", &order);
///     match child.await {
///         Ok(()) => Ok("shipped".into()),
///         Err(failed) => Ok(format!("{} ({})", failed.message, failed.details.error_type)),
///     }
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("fulfil", fulfil).orchestrator("ship", ship);
/// let mut runtime = TestRuntime::new(registry);
/// let id = runtime.start("fulfil", "A-7")?;
/// assert_eq!(
///     runtime.output::<String>(&id)?,
///     "Sub-orchestration task #1 failed: A-7: no pens left (OutOfStock)"
/// );
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "the sub-orchestration is started either way; await it to get its result"]
pub struct SubOrchestrationTask<O> {
    handle: Handle,
    task_id: i32,
    instance_id: String,
    name: Rc<str>,
    _output: PhantomData<fn() -> O>,
}

impl<O> SubOrchestrationTask<O> {
    pub(crate) fn new(cell: TaskRef, task_id: i32, instance_id: String, name: Rc<str>) -> Self {
        Self {
            handle: Handle { cell },
            task_id,
            instance_id,
            name,
            _output: PhantomData,
        }
    }

    /// The call's action id (shared sequence with activities and timers).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn ship(_ctx: OrchestrationContext, order: String) -> Result<String, Error> {
    ///     Ok(format!("{order} shipped"))
    /// }
    ///
    /// async fn fulfil(
    ///     ctx: OrchestrationContext,
    ///     orders: Vec<String>,
    /// ) -> Result<Vec<String>, Error> {
    ///     let mut shipped = Vec::new();
    ///     for order in &orders {
    ///         let child = ctx.call_sub_orchestrator::<_, String>("ship", order);
    ///         let task_id = child.task_id();
    ///         ctx.logger().debug(format_args!("task #{task_id} runs as {}", child.instance_id()));
    ///         shipped.push(format!("#{task_id}: {}", child.await?));
    ///     }
    ///     Ok(shipped)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("fulfil", fulfil).orchestrator("ship", ship);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("fulfil", ["A-7", "B-2"])?;
    /// assert_eq!(runtime.output::<Vec<String>>(&id)?, ["#1: A-7 shipped", "#2: B-2 shipped"]);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn task_id(&self) -> i32 {
        self.task_id
    }

    /// The child's instance id: the one given in the options, or
    /// `<parent instance id>:<action id as at least 4 lowercase hex digits>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn parent(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ///     let child = ctx.call_sub_orchestrator::<_, ()>("child", ());
    ///     // The first call of instance "order-7" starts "order-7:0001".
    ///     let id = child.instance_id().to_owned();
    ///     child.await?;
    ///     Ok(id)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("parent", parent);
    /// ```
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
}

impl<O: DeserializeOwned> Future for SubOrchestrationTask<O> {
    type Output = Result<O, TaskFailedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll(cx).map(|outcome| match outcome {
            Outcome::Failed(failure) => Err(failure),
            Outcome::Cancelled => Err(cancelled(this.task_id, "the sub-orchestration call")),
            Outcome::Value(raw) => payload::decode::<O>(raw.as_deref()).map_err(|e| {
                let details = FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!(
                        "the output of sub-orchestration '{}' does not fit the type {}: {e}",
                        this.name,
                        std::any::type_name::<O>()
                    ),
                );
                sub_orchestration_failure(this.task_id, details)
            }),
        })
    }
}

/// A durable timer; resolves when it fires.
///
/// Returned by [`OrchestrationContext::create_timer`](super::OrchestrationContext::create_timer)
/// and [`create_timer_after`](super::OrchestrationContext::create_timer_after). Its output
/// is `()`: a timer cannot fail. A cancelled timer ([`cancel`](Self::cancel)) resolves at
/// once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::TimerTask;
/// use durabletask_sdk::testing::{TestRuntime, start_time};
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn remind(ctx: OrchestrationContext, days: u64) -> Result<(), Error> {
///     let timer: TimerTask = ctx.create_timer_after(Duration::from_secs(days * 86_400));
///     timer.await;
///     ctx.call_activity::<_, ()>("send_reminder", ()).await?;
///     Ok(())
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("remind", remind);
/// let mut runtime = TestRuntime::new(registry);
/// runtime.mock_activity("send_reminder", |()| Ok(()));
/// let id = runtime.start("remind", 3)?;
/// assert_eq!(runtime.next_timer_at(), Some(start_time() + Duration::from_secs(3 * 86_400)));
/// runtime.advance(Duration::from_secs(3 * 86_400))?;
/// runtime.output::<()>(&id)?;
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "the timer is created either way; await it to wait for it"]
pub struct TimerTask {
    handle: Handle,
    timer_id: i32,
    cancel: CancelHandle,
}

impl TimerTask {
    pub(crate) fn new(cell: TaskRef, timer_id: i32, cancel: CancelHandle) -> Self {
        Self {
            handle: Handle { cell },
            timer_id,
            cancel,
        }
    }

    /// The timer's action id (timers and activity calls share one sequence of ids). For a
    /// timer split into chunks, the id of the first chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn cool_down(ctx: OrchestrationContext, _input: ()) -> Result<i32, Error> {
    ///     ctx.call_activity::<_, ()>("stop_pump", ()).await?;
    ///     let timer = ctx.create_timer_after(Duration::from_secs(60));
    ///     let timer_id = timer.timer_id();
    ///     ctx.logger().debug(format_args!("cooling down on timer #{timer_id}"));
    ///     timer.await;
    ///     Ok(timer_id)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("cool_down", cool_down);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.mock_activity("stop_pump", |()| Ok(()));
    /// let id = runtime.start("cool_down", ())?;
    /// runtime.advance(Duration::from_secs(60))?;
    /// // The activity call took id 1, so the timer has id 2.
    /// assert_eq!(runtime.output::<i32>(&id)?, 2);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn timer_id(&self) -> i32 {
        self.timer_id
    }

    /// Cancels the timer (see [`CancelHandle::cancel`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn maybe_wait(ctx: OrchestrationContext, skip: bool) -> Result<(), Error> {
    ///     let timer = ctx.create_timer_after(Duration::from_secs(60));
    ///     if skip {
    ///         // Not sent at all: the timer was cancelled in the step that created it.
    ///         timer.cancel();
    ///     }
    ///     timer.await;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("maybe_wait", maybe_wait);
    /// ```
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels this timer, usable after the task itself was moved (e.g.
    /// into [`when_any`](super::when_any)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{Winner2, race};
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn await_payment(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ///     let paid = ctx.wait_for_external_event::<String>("paid");
    ///     let deadline = ctx.create_timer_after(Duration::from_secs(86_400));
    ///     let cancel_deadline = deadline.cancel_handle();
    ///     match race((paid, deadline)).await {
    ///         Winner2::First(receipt) => {
    ///             // The race took the timer; the handle still reaches it.
    ///             cancel_deadline.cancel();
    ///             Ok(receipt?)
    ///         }
    ///         Winner2::Second(()) => Ok("expired".into()),
    ///     }
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("await_payment", await_payment);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("await_payment", ())?;
    /// runtime.raise_event(&id, "paid", "receipt-9")?;
    /// assert_eq!(runtime.output::<String>(&id)?, "receipt-9");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }
}

impl Future for TimerTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.handle.poll(cx).map(|_| ())
    }
}

/// Waits for an external event; resolves to its data. Data that does not fit `T` fails
/// with [`error_types::INVALID_INPUT`].
///
/// Returned by
/// [`OrchestrationContext::wait_for_external_event`](super::OrchestrationContext::wait_for_external_event).
/// It resolves to `Ok(T)`, or to a [`TaskFailedError`] (with `task_id` `-1`) if the data
/// does not fit `T`.
///
/// A cancelled wait ([`cancel`](Self::cancel)) resolves to a [`TaskFailedError`] of type
/// [`TaskCancelled`](error_types::TASK_CANCELLED).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::EventTask;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Decision {
///     approved: bool,
///     by: String,
/// }
///
/// async fn review(ctx: OrchestrationContext, document: String) -> Result<String, Error> {
///     let decision: EventTask<Decision> = ctx.wait_for_external_event("decision");
///     let decision = decision.await?;
///     let verdict = if decision.approved { "approved" } else { "rejected" };
///     Ok(format!("{document} {verdict} by {}", decision.by))
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("review", review);
/// let mut runtime = TestRuntime::new(registry);
/// let id = runtime.start("review", "budget.xlsx")?;
/// let decision = Decision { approved: true, by: "ada".into() };
/// runtime.raise_event(&id, "decision", decision)?;
/// assert_eq!(runtime.output::<String>(&id)?, "budget.xlsx approved by ada");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct EventTask<T> {
    handle: Handle,
    name: Rc<str>,
    cancel: CancelHandle,
    _output: PhantomData<fn() -> T>,
}

impl<T> EventTask<T> {
    pub(crate) fn new(cell: TaskRef, name: Rc<str>, cancel: CancelHandle) -> Self {
        Self {
            handle: Handle { cell },
            name,
            cancel,
            _output: PhantomData,
        }
    }

    /// Stops waiting: the next event of this name goes to the next waiter, or is buffered
    /// (see [`CancelHandle::cancel`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn first_only(ctx: OrchestrationContext, _input: ()) -> Result<u32, Error> {
    ///     let first = ctx.wait_for_external_event::<u32>("reading");
    ///     let second = ctx.wait_for_external_event::<u32>("reading");
    ///     // One reading is enough: the second wait must not take the next one.
    ///     second.cancel();
    ///     Ok(first.await?)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("first_only", first_only);
    /// ```
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A handle that cancels this wait, usable after the task itself was moved (e.g. into
    /// [`when_any`](super::when_any)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::join;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry, TaskFailedError};
    ///
    /// /// Collects a reading if one arrives within a minute.
    /// async fn sample(ctx: OrchestrationContext, _input: ()) -> Result<Option<f64>, Error> {
    ///     let reading = ctx.wait_for_external_event::<f64>("reading");
    ///     let give_up = reading.cancel_handle();
    ///     let (value, ()) = join((
    ///         // A cancelled wait fails, which reads as "no reading".
    ///         async move { Ok::<_, TaskFailedError>(reading.await.ok()) },
    ///         // The wait moved into the branch above; the handle still reaches it.
    ///         async {
    ///             ctx.create_timer_after(Duration::from_secs(60)).await;
    ///             give_up.cancel();
    ///             Ok(())
    ///         },
    ///     ))
    ///     .await?;
    ///     Ok(value)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("sample", sample);
    /// let mut runtime = TestRuntime::new(registry);
    /// let read = runtime.start("sample", ())?;
    /// runtime.raise_event(&read, "reading", 21.5)?;
    /// let silent = runtime.start("sample", ())?;
    /// runtime.advance(Duration::from_secs(60))?;
    /// assert_eq!(runtime.output::<Option<f64>>(&read)?, Some(21.5));
    /// assert_eq!(runtime.output::<Option<f64>>(&silent)?, None);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }
}

impl<T: DeserializeOwned> Future for EventTask<T> {
    type Output = Result<T, TaskFailedError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.handle.poll(cx).map(|outcome| match outcome {
            Outcome::Failed(failure) => Err(failure),
            Outcome::Cancelled => Err(cancelled(
                -1,
                &format!("the wait for event '{}'", this.name),
            )),
            Outcome::Value(raw) => payload::decode::<T>(raw.as_deref()).map_err(|e| {
                let message = format!(
                    "the data of event '{}' does not fit the type {}: {e}",
                    this.name,
                    std::any::type_name::<T>()
                );
                TaskFailedError {
                    task_id: -1,
                    message: message.clone(),
                    details: FailureDetails::new(error_types::INVALID_INPUT, message),
                }
            }),
        })
    }
}
