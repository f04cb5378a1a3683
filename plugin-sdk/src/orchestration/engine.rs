//! The replay engine (spec §3): walks the history one event at a time and, after each
//! event that completes a task, polls the orchestrator until it waits on an incomplete
//! durable task or finishes. A pure function of the request; nothing survives the step.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::SystemTime;

use durabletask_proto as proto;
use proto::history_event::EventType;

use super::context::OrchestrationContext;
use super::determinism::{self, Recorded};
use super::payload::non_empty;
use super::state::{
    CallKind, Completion, Outcome, PendingCall, PendingTask, State, TaskCell, TimerThen,
    fold_event_name,
};
use super::tasks::{activity_failure, sub_orchestration_failure};
use super::{calls, continue_as_new, critical_section, entities, rewind, time, timers};
use crate::error::{Error, FailureDetails, error_types};

/// A running orchestrator: resolves to its JSON output (`None` = null) or its failure.
pub(crate) type OrchestratorFuture = Pin<Box<dyn Future<Output = Result<Option<String>, Error>>>>;

/// Starts an orchestrator from its context and raw JSON input. Fails (before any user code
/// runs) when the input does not fit the orchestrator's input type.
pub(crate) type OrchestratorStart =
    dyn Fn(OrchestrationContext, Option<&str>) -> Result<OrchestratorFuture, Error> + Send + Sync;

/// Registered orchestrators by name.
pub(crate) type Orchestrators = BTreeMap<String, Box<OrchestratorStart>>;

/// How many times in a row a future that keeps waking itself is re-polled before the
/// engine stops: enough for combinators that yield cooperatively, finite for a busy loop.
const MAX_SELF_WAKES: usize = 1_000;

const NON_DURABLE_AWAIT_MESSAGE: &str = "The orchestrator is waiting on something that is \
    not a durable task, so no history event can ever resume it. Orchestrators may only await \
    the durable tasks their OrchestrationContext returns (activities, timers, external \
    events) and combinations of them (when_all, when_any, join_all, select); never tokio \
    timers, channels, I/O or other futures.";

/// Runs one orchestration step.
pub(crate) fn run(
    orchestrators: &Orchestrators,
    request: &proto::OrchestratorRequest,
) -> proto::OrchestratorResponse {
    if request.new_events.is_empty() {
        return request_failed(
            request,
            "The request has no new history events; there must be at least one.",
        );
    }
    if rewind::is_rewind(request) {
        return match rewind::rewind(request) {
            Ok(action) => proto::OrchestratorResponse {
                instance_id: request.instance_id.clone(),
                actions: vec![action],
                ..Default::default()
            },
            Err(message) => request_failed(request, &message),
        };
    }

    let mut replay = Replay::new(orchestrators, request.instance_id.clone());
    {
        let mut state = replay.state.borrow_mut();
        state.max_timer_interval = timers::maximum_interval(request);
        state.default_version = calls::default_version(request);
    }
    for (events, replaying) in [(&request.past_events, true), (&request.new_events, false)] {
        replay.state.borrow_mut().is_replaying = replaying;
        for event in events {
            if replay.is_complete() {
                replay.after_completion(event);
            } else {
                replay.process(event);
            }
        }
    }
    replay.finish()
}

/// Fails a request that cannot be run at all, like the reference's outer error path: a
/// failure with action id -1 (spec §3.1).
fn request_failed(
    request: &proto::OrchestratorRequest,
    message: &str,
) -> proto::OrchestratorResponse {
    durabletask_abi::failure::orchestration(
        request.instance_id.clone(),
        durabletask_abi::failure::REQUEST_FAILED_ACTION_ID,
        FailureDetails::new(error_types::ORCHESTRATION_STATE_ERROR, message).to_proto(),
    )
}

/// The root waker: remembers that something asked to be polled again.
#[derive(Default)]
struct RootWaker {
    woken: AtomicBool,
}

impl Wake for RootWaker {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
    }
}

struct Replay<'r> {
    orchestrators: &'r Orchestrators,
    state: Rc<RefCell<State>>,
    future: Option<OrchestratorFuture>,
    started: bool,
    suspended: bool,
    /// Events that arrived while suspended, processed on resume (spec §4.7).
    suspended_events: Vec<&'r proto::HistoryEvent>,
    root: Arc<RootWaker>,
    waker: Waker,
}

impl<'r> Replay<'r> {
    fn new(orchestrators: &'r Orchestrators, instance_id: String) -> Self {
        let root = Arc::new(RootWaker::default());
        Self {
            orchestrators,
            state: Rc::new(RefCell::new(State::new(instance_id))),
            future: None,
            started: false,
            suspended: false,
            suspended_events: Vec::new(),
            waker: Waker::from(Arc::clone(&root)),
            root,
        }
    }

    fn is_complete(&self) -> bool {
        self.state.borrow().is_complete()
    }

    /// An event after the orchestration ended in this step: only events raised after a
    /// continue-as-new still matter, as carryover (spec §4.6); the rest change nothing.
    fn after_completion(&mut self, event: &'r proto::HistoryEvent) {
        let continued = self.state.borrow().continued_as_new.is_some();
        if let (true, Some(EventType::EventRaised(e))) = (continued, &event.event_type) {
            self.raise_event(&e.name, non_empty(e.input.as_ref()));
        }
    }

    fn process(&mut self, event: &'r proto::HistoryEvent) {
        // Events with no (or an unknown) kind carry nothing we can act on.
        let Some(kind) = &event.event_type else {
            return;
        };
        if self.suspended
            && !matches!(
                kind,
                EventType::ExecutionResumed(_) | EventType::ExecutionTerminated(_)
            )
        {
            self.suspended_events.push(event);
            return;
        }
        if let Some(recorded) = Recorded::from_event(kind) {
            self.confirm(&recorded, event.event_id);
            return;
        }
        match kind {
            EventType::OrchestratorStarted(_) => {
                if let Some(ts) = &event.timestamp {
                    self.state.borrow_mut().clock = time::from_timestamp(ts);
                }
            }
            EventType::ExecutionStarted(started) => self.start(started),
            EventType::TaskCompleted(e) => {
                let result = non_empty(e.result.as_ref()).map(Rc::from);
                self.complete_call(e.task_scheduled_id, CallKind::Activity, result);
            }
            EventType::SubOrchestrationInstanceCompleted(e) => {
                let result = non_empty(e.result.as_ref()).map(Rc::from);
                self.complete_call(e.task_scheduled_id, CallKind::SubOrchestration, result);
            }
            EventType::TaskFailed(e) => {
                let details = failure_of(e.failure_details.as_ref());
                self.fail_call(e.task_scheduled_id, CallKind::Activity, details);
            }
            EventType::SubOrchestrationInstanceFailed(e) => {
                let details = failure_of(e.failure_details.as_ref());
                self.fail_call(e.task_scheduled_id, CallKind::SubOrchestration, details);
            }
            EventType::TimerFired(e) => {
                let fired_at = e.fire_at.as_ref().map(time::from_timestamp);
                self.timer_fired(e.timer_id, fired_at);
            }
            EventType::EventRaised(e) => {
                self.raise_event(&e.name, non_empty(e.input.as_ref()));
            }
            EventType::EntityOperationCompleted(e) => {
                let output = non_empty(e.output.as_ref());
                self.entity_call_returned(&e.request_id, Ok(output));
            }
            EventType::EntityOperationFailed(e) => {
                let details = failure_of(e.failure_details.as_ref());
                self.entity_call_returned(&e.request_id, Err(details));
            }
            EventType::EntityLockGranted(e) => {
                let cell =
                    entities::lock_granted(&mut self.state.borrow_mut(), &e.critical_section_id);
                if let Some(cell) = cell {
                    TaskCell::complete(&cell, Outcome::Value(None));
                    self.poll();
                }
            }
            EventType::EntityUnlockSent(e) => {
                critical_section::unlock_sent(&mut self.state.borrow_mut(), &e.critical_section_id);
            }
            EventType::ExecutionSuspended(_) => self.suspended = true,
            // A stray resume (not suspended) falls through to the ignored kinds (spec §9).
            EventType::ExecutionResumed(_) if self.suspended => {
                self.suspended = false;
                for buffered in std::mem::take(&mut self.suspended_events) {
                    if self.is_complete() {
                        break;
                    }
                    // A buffered suspend suspends again; what follows it is buffered
                    // again rather than lost.
                    self.process(buffered);
                }
            }
            EventType::ExecutionTerminated(e) => {
                let result = non_empty(e.input.as_ref()).map(str::to_owned);
                self.drop_future();
                self.state.borrow_mut().complete(Completion {
                    status: proto::OrchestrationStatus::Terminated,
                    result,
                    failure: None,
                });
            }
            // Completion markers, and kinds this SDK does not produce (history state,
            // continue-as-new): nothing is waiting for them, so they are ignored.
            _ => {}
        }
    }

    fn start(&mut self, started: &proto::ExecutionStartedEvent) {
        // A duplicate start in a garbled history must not run the orchestrator twice.
        if self.started {
            return;
        }
        self.started = true;
        {
            let mut state = self.state.borrow_mut();
            state.name.clone_from(&started.name);
            state.version.clone_from(&started.version);
            state.parent_instance_id = started
                .parent_instance
                .as_ref()
                .and_then(|p| p.orchestration_instance.as_ref())
                .map(|i| i.instance_id.clone());
        }
        let Some(start) = self.orchestrators.get(&started.name) else {
            self.fail(FailureDetails::new(
                error_types::ORCHESTRATOR_NOT_REGISTERED,
                format!(
                    "Orchestrator '{}' is not registered in this plugin",
                    started.name
                ),
            ));
            return;
        };
        let ctx = OrchestrationContext::new(Rc::clone(&self.state));
        let input = non_empty(started.input.as_ref());
        match catch_unwind(AssertUnwindSafe(|| start(ctx, input))) {
            Err(panic) => self.fail(panic_details(panic.as_ref())),
            Ok(Err(error)) => self.fail(error.into_details()),
            Ok(Ok(future)) => {
                self.future = Some(future);
                self.poll();
            }
        }
    }

    /// A confirmation event: the action with the same id must be the same call.
    fn confirm(&mut self, recorded: &Recorded<'_>, id: i32) {
        let action = self.state.borrow_mut().actions.remove(id);
        if let Some(message) = determinism::check(recorded, id, action.as_deref()) {
            self.drop_future();
            self.fail(FailureDetails::new(error_types::NON_DETERMINISM, message));
        }
    }

    /// Takes the pending call `id` if it is one of `kind`. Anything else is ignored, as the
    /// reference does (logged only live: replays would repeat the line on every step).
    fn take_call(&mut self, id: i32, kind: CallKind) -> Option<PendingCall> {
        let mut state = self.state.borrow_mut();
        if let Some(PendingTask::Call(call)) = state.tasks.get(id)
            && call.kind == kind
            && let Some(PendingTask::Call(call)) = state.tasks.remove(id)
        {
            return Some(call);
        }
        if !state.is_replaying {
            tracing::debug!(
                instance_id = %state.instance_id,
                task_id = id,
                "ignoring a result for no pending {kind:?} call"
            );
        }
        None
    }

    fn complete_call(&mut self, id: i32, kind: CallKind, result: Option<Rc<str>>) {
        if let Some(call) = self.take_call(id, kind) {
            TaskCell::complete(&call.cell, Outcome::Value(result));
            self.poll();
        }
    }

    /// A failed attempt: retried by the call's policy if it allows (spec §4.8), else the
    /// call's task fails with this (the last) failure.
    fn fail_call(&mut self, id: i32, kind: CallKind, details: FailureDetails) {
        let Some(mut call) = self.take_call(id, kind) else {
            return;
        };
        {
            let mut state = self.state.borrow_mut();
            let now = state.clock;
            let delay = call.retry.as_ref().and_then(|retry| {
                if details.is_non_retriable {
                    return None;
                }
                retry
                    .policy
                    .next_delay(retry.attempts, retry.first_call, now)
            });
            if let (Some(delay), Some(retry)) = (delay, call.retry.as_mut()) {
                retry.attempts = retry.attempts.saturating_add(1);
                let fire_at = now.checked_add(delay).unwrap_or(now);
                let call = Box::new(call);
                timers::schedule(&mut state, fire_at, TimerThen::Retry { id, call });
                return;
            }
        }
        let failure = match kind {
            CallKind::Activity => {
                let instance_id = self.state.borrow().instance_id.clone();
                activity_failure(&instance_id, id, details)
            }
            CallKind::SubOrchestration => sub_orchestration_failure(id, details),
        };
        TaskCell::complete(&call.cell, Outcome::Failed(failure));
        self.poll();
    }

    fn timer_fired(&mut self, id: i32, fired_at: Option<SystemTime>) {
        let then = timers::fired(&mut self.state.borrow_mut(), id, fired_at);
        match then {
            None => {
                let state = self.state.borrow();
                if !state.is_replaying {
                    tracing::debug!(
                        instance_id = %state.instance_id,
                        timer_id = id,
                        "timerFired for no pending timer, or a chunk of a longer one"
                    );
                }
            }
            Some(TimerThen::Complete(cell)) => {
                TaskCell::complete(&cell, Outcome::Value(None));
                self.poll();
            }
            // The retry delay is over: the same call again, under its original id.
            Some(TimerThen::Retry { id, call }) => {
                let mut state = self.state.borrow_mut();
                if let Some(action) = call.retry.as_ref().map(|r| r.action.clone()) {
                    state.insert_action(id, action);
                }
                state.tasks.insert(id, PendingTask::Call(*call));
            }
        }
    }

    /// An entity call's response: completes its task, or fails the orchestration when no
    /// call of this orchestration made the request (spec §3.4).
    fn entity_call_returned(
        &mut self,
        request_id: &str,
        result: Result<Option<&str>, FailureDetails>,
    ) {
        let returned = entities::call_returned(&mut self.state.borrow_mut(), request_id, result);
        match returned {
            Ok((cell, outcome)) => {
                TaskCell::complete(&cell, outcome);
                self.poll();
            }
            Err(details) => {
                self.drop_future();
                self.fail(details);
            }
        }
    }

    fn raise_event(&mut self, name: &str, data: Option<&str>) {
        let key = fold_event_name(name);
        let waiter = {
            let mut state = self.state.borrow_mut();
            let mut found = None;
            if let Some(waiters) = state.event_waiters.get_mut(&key) {
                // The oldest waiter whose future still exists; a dropped waiter must not
                // swallow the event.
                while let Some(cell) = waiters.pop_front() {
                    if Rc::strong_count(&cell) > 1 {
                        found = Some(cell);
                        break;
                    }
                }
            }
            if found.is_none() {
                state.buffered_events.push(key, data.map(str::to_owned));
            }
            found
        };
        if let Some(cell) = waiter {
            TaskCell::complete(&cell, Outcome::Value(data.map(Rc::from)));
            self.poll();
        }
    }

    /// Polls the orchestrator until it finishes or waits on an incomplete durable task.
    fn poll(&mut self) {
        for _ in 0..MAX_SELF_WAKES {
            let Some(future) = self.future.as_mut() else {
                return;
            };
            self.root.woken.store(false, Ordering::Relaxed);
            let mut cx = Context::from_waker(&self.waker);
            // The state is never borrowed across this call: user code borrows it.
            let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
            let deferred = self.state.borrow_mut().deferred_failure.take();
            match (polled, deferred) {
                (Err(panic), _) => {
                    self.drop_future();
                    self.fail(panic_details(panic.as_ref()));
                    return;
                }
                (Ok(_), Some(details)) => {
                    self.drop_future();
                    self.fail(details);
                    return;
                }
                (Ok(Poll::Ready(Err(error))), None) => {
                    self.drop_future();
                    self.fail(error.into_details());
                    return;
                }
                (Ok(Poll::Ready(Ok(output))), None) => {
                    self.drop_future();
                    self.state.borrow_mut().complete(Completion {
                        status: proto::OrchestrationStatus::Completed,
                        result: output,
                        failure: None,
                    });
                    return;
                }
                (Ok(Poll::Pending), None) => {
                    if self.root.woken.load(Ordering::Relaxed) {
                        continue;
                    }
                    break;
                }
            }
        }
        // Continued as new: whatever the orchestrator still waits for no longer matters.
        if self.state.borrow().continued_as_new.is_some() {
            self.drop_future();
            return;
        }
        // Pending: fine only if some incomplete durable task is being awaited.
        let awaited = self.state.borrow().awaited.get();
        if self.future.is_some() && awaited == 0 {
            self.drop_future();
            self.fail(FailureDetails::new(
                error_types::NON_DURABLE_AWAIT,
                NON_DURABLE_AWAIT_MESSAGE,
            ));
        }
    }

    fn fail(&mut self, details: FailureDetails) {
        self.state.borrow_mut().fail(details);
    }

    /// Drops the orchestrator future; its destructors are user code, so panics are
    /// contained.
    fn drop_future(&mut self) {
        if let Some(future) = self.future.take() {
            // Whatever the future's destructors would record (a scoped critical section
            // leaving) must not happen: the step is being cut short, not run.
            self.state.borrow_mut().discarding = true;
            let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
        }
    }

    fn finish(mut self) -> proto::OrchestratorResponse {
        self.drop_future();
        let mut state = self.state.borrow_mut();
        continue_as_new::finish(&mut state);
        // The state ends with this step: its actions and status are moved, not copied.
        proto::OrchestratorResponse {
            instance_id: state.instance_id.to_string(),
            actions: state
                .actions
                .drain_in_order()
                .into_iter()
                .map(|a| *a)
                .collect(),
            custom_status: state.custom_status.take(),
            ..Default::default()
        }
    }
}

/// A failure event's details; a garbled event without them still fails the task.
fn failure_of(details: Option<&proto::TaskFailureDetails>) -> FailureDetails {
    details
        .map(FailureDetails::from_proto)
        .unwrap_or_else(|| FailureDetails::new("Unknown", "unknown failure"))
}

/// The failure for a panic in user code. A panic from tokio's "no reactor" check means the
/// orchestrator tried to use tokio (a sleep, a timeout): that is a non-durable await.
fn panic_details(panic: &(dyn Any + Send)) -> FailureDetails {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the orchestrator panicked with a non-string payload".to_owned());
    if message.contains("Tokio 1.x runtime") || message.contains("no reactor running") {
        return FailureDetails::new(
            error_types::NON_DURABLE_AWAIT,
            format!("{NON_DURABLE_AWAIT_MESSAGE} (tokio refused to run here: {message})"),
        );
    }
    let mut details = FailureDetails::new(error_types::PLUGIN_PANIC, message);
    details.stack_trace = crate::panic_trace::take();
    details
}
