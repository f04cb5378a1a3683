//! Cancelling a timer or an external-event wait (spec §4.2, §4.4, §4.9): the handle
//! outlives the task future, so the loser of a `when_any` can be cancelled after the race
//! consumed (and dropped) it.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use super::state::{Outcome, PendingTask, State, TaskCell, TaskRef};

/// Cancels one timer or external-event wait; cheap to clone. Get one from
/// [`TimerTask::cancel_handle`](super::TimerTask::cancel_handle) or
/// [`EventTask::cancel_handle`](super::EventTask::cancel_handle) before handing the task
/// to [`when_any`](super::when_any).
///
/// Cancelling a timer withdraws its `createTimer` action if it was not sent yet, and makes
/// the engine ignore its `timerFired`. Cancelling an event wait removes it from the
/// waiters, so the next event of that name goes to the next waiter (or is buffered).
/// Cancelling a task that already completed does nothing.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::when_any;
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn approval(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
///     let event = ctx.wait_for_external_event::<()>("Approval");
///     let timeout = ctx.create_timer_after(Duration::from_secs(3600));
///     let cancel_timeout = timeout.cancel_handle();
///     let racers: Vec<Pin<Box<dyn Future<Output = bool>>>> = vec![
///         Box::pin(async move { event.await.is_ok() }),
///         Box::pin(async move {
///             timeout.await;
///             false
///         }),
///     ];
///     let (_, approved) = when_any(racers).await;
///     if approved {
///         // The approval won: the timer is no longer needed.
///         cancel_timeout.cancel();
///         return Ok("approved".into());
///     }
///     Ok("timed out".into())
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("approval", approval);
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    state: Weak<RefCell<State>>,
    // Weak: a handle must not keep a dropped event wait alive (the engine skips waits
    // whose future is gone).
    cell: Weak<RefCell<TaskCell>>,
    target: Target,
}

#[derive(Clone)]
enum Target {
    /// A timer; the id of its chunk in flight.
    Timer(Rc<Cell<i32>>),
    /// An event wait under this folded name.
    Event(String),
}

impl CancelHandle {
    pub(crate) fn timer(state: &Rc<RefCell<State>>, cell: &TaskRef, id: Rc<Cell<i32>>) -> Self {
        Self {
            state: Rc::downgrade(state),
            cell: Rc::downgrade(cell),
            target: Target::Timer(id),
        }
    }

    pub(crate) fn event(state: &Rc<RefCell<State>>, cell: &TaskRef, key: String) -> Self {
        Self {
            state: Rc::downgrade(state),
            cell: Rc::downgrade(cell),
            target: Target::Event(key),
        }
    }

    /// Cancels the task unless it already completed. Awaiting a cancelled timer returns at
    /// once; awaiting a cancelled event wait gives a
    /// [`TaskFailedError`](crate::TaskFailedError) of type
    /// [`TaskCancelled`](crate::error_types::TASK_CANCELLED).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry, error_types};
    ///
    /// async fn review(ctx: OrchestrationContext, auto_approve: bool) -> Result<String, Error> {
    ///     let decision = ctx.wait_for_external_event::<String>("decision");
    ///     if auto_approve {
    ///         // Nobody needs to decide: a later "decision" goes to the next waiter.
    ///         decision.cancel_handle().cancel();
    ///     }
    ///     match decision.await {
    ///         Ok(decision) => Ok(decision),
    ///         Err(e) if e.details.error_type == error_types::TASK_CANCELLED => {
    ///             Ok("auto-approved".into())
    ///         }
    ///         Err(e) => Err(e.into()),
    ///     }
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("review", review);
    /// let mut runtime = TestRuntime::new(registry);
    /// let automatic = runtime.start("review", true)?;
    /// assert_eq!(runtime.output::<String>(&automatic)?, "auto-approved");
    /// let manual = runtime.start("review", false)?;
    /// runtime.raise_event(&manual, "decision", "rejected")?;
    /// assert_eq!(runtime.output::<String>(&manual)?, "rejected");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn cancel(&self) {
        let (Some(state), Some(cell)) = (self.state.upgrade(), self.cell.upgrade()) else {
            return;
        };
        if TaskCell::is_complete(&cell) {
            return;
        }
        {
            // Never borrowed across user code, but a hostile `Drop` could call this from
            // inside the engine: then do nothing rather than panic.
            let Ok(mut state) = state.try_borrow_mut() else {
                return;
            };
            match &self.target {
                Target::Timer(id) => {
                    let id = id.get();
                    state.actions.remove(id);
                    if matches!(state.tasks.get(id), Some(PendingTask::Timer(_))) {
                        state.tasks.remove(id);
                    }
                }
                Target::Event(key) => {
                    if let Some(waiters) = state.event_waiters.get_mut(key) {
                        waiters.retain(|waiter| !Rc::ptr_eq(waiter, &cell));
                    }
                }
            }
        }
        TaskCell::complete(&cell, Outcome::Cancelled);
    }
}
