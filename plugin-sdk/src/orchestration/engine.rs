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

use durabletask_proto as proto;
use proto::history_event::EventType;

use super::context::OrchestrationContext;
use super::determinism::{self, Recorded};
use super::payload::non_empty;
use super::state::{Completion, Outcome, State, TaskCell, TaskKind, fold_event_name};
use super::tasks::activity_failure;
use super::time;
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
        // Like the reference's outer error path: a failure with id -1 (spec §3.1).
        let details = FailureDetails::new(
            error_types::ORCHESTRATION_STATE_ERROR,
            "The request has no new history events; there must be at least one.",
        );
        let action = proto::OrchestratorAction {
            id: -1,
            orchestrator_action_type: Some(
                proto::orchestrator_action::OrchestratorActionType::CompleteOrchestration(
                    proto::CompleteOrchestrationAction {
                        orchestration_status: proto::OrchestrationStatus::Failed as i32,
                        failure_details: Some(details.to_proto()),
                        ..Default::default()
                    },
                ),
            ),
        };
        return proto::OrchestratorResponse {
            instance_id: request.instance_id.clone(),
            actions: vec![action],
            ..Default::default()
        };
    }

    let mut replay = Replay::new(orchestrators, request.instance_id.clone());
    for (events, replaying) in [(&request.past_events, true), (&request.new_events, false)] {
        replay.state.borrow_mut().is_replaying = replaying;
        for event in events {
            if replay.is_complete() {
                break;
            }
            replay.process(event);
        }
    }
    replay.finish()
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
        self.state.borrow().completion.is_some()
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
                let result = non_empty(e.result.as_ref()).map(str::to_owned);
                self.complete_task(e.task_scheduled_id, TaskKind::Activity, |_| {
                    Outcome::Value(result)
                });
            }
            EventType::TaskFailed(e) => {
                let details = e
                    .failure_details
                    .as_ref()
                    .map(FailureDetails::from_proto)
                    .unwrap_or_else(|| FailureDetails::new("Unknown", "unknown failure"));
                let id = e.task_scheduled_id;
                self.complete_task(id, TaskKind::Activity, |instance_id| {
                    Outcome::Failed(activity_failure(instance_id, id, details))
                });
            }
            EventType::TimerFired(e) => {
                self.complete_task(e.timer_id, TaskKind::Timer, |_| Outcome::Value(None));
            }
            EventType::EventRaised(e) => {
                self.raise_event(&e.name, non_empty(e.input.as_ref()).map(str::to_owned));
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
            // Completion markers, and kinds this SDK does not produce yet (sub-orchestration
            // and entity results, history state, continue-as-new): nothing is waiting for
            // them, so they are ignored.
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
        let action = self.state.borrow_mut().actions.remove(&id);
        if let Some(message) = determinism::check(recorded, id, action.as_ref()) {
            self.drop_future();
            self.fail(FailureDetails::new(error_types::NON_DETERMINISM, message));
        }
    }

    /// Completes the pending task `id` if it is of `kind` (anything else is ignored, as
    /// the reference does), then lets the orchestrator react.
    fn complete_task(&mut self, id: i32, kind: TaskKind, outcome: impl FnOnce(&str) -> Outcome) {
        let (cell, outcome) = {
            let mut state = self.state.borrow_mut();
            let kind_matches = state.tasks.get(&id).is_some_and(|task| task.kind == kind);
            if !kind_matches {
                // Logged only live: replays would repeat the line on every step.
                if !state.is_replaying {
                    tracing::debug!(
                        instance_id = %state.instance_id,
                        task_id = id,
                        "ignoring a completion for no pending {kind:?} task"
                    );
                }
                return;
            }
            let Some(task) = state.tasks.remove(&id) else {
                return;
            };
            (task.cell, outcome(&state.instance_id))
        };
        TaskCell::complete(&cell, outcome);
        self.poll();
    }

    fn raise_event(&mut self, name: &str, data: Option<String>) {
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
                state
                    .buffered_events
                    .entry(key)
                    .or_default()
                    .push_back(data.clone());
            }
            found
        };
        if let Some(cell) = waiter {
            TaskCell::complete(&cell, Outcome::Value(data));
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
            let _ = catch_unwind(AssertUnwindSafe(move || drop(future)));
        }
    }

    fn finish(mut self) -> proto::OrchestratorResponse {
        self.drop_future();
        let state = self.state.borrow();
        proto::OrchestratorResponse {
            instance_id: state.instance_id.clone(),
            actions: state.actions.values().cloned().collect(),
            custom_status: state.custom_status.clone(),
            ..Default::default()
        }
    }
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
    FailureDetails::new(error_types::PLUGIN_PANIC, message)
}
