//! The state one replay shares between the engine and the orchestrator's context and
//! task futures. Everything here lives on one thread for one step, hence `Rc<RefCell>`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::task::Waker;
use std::time::SystemTime;

use durabletask_proto as proto;

use crate::error::{FailureDetails, TaskFailedError};

/// How a durable task ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Completed with this raw JSON payload (`None` = null).
    Value(Option<String>),
    /// Failed.
    Failed(TaskFailedError),
}

/// The completion slot of one durable task, shared by the engine (which completes it) and
/// the task future (which reads it).
pub(crate) struct TaskCell {
    outcome: Option<Outcome>,
    /// Set while a future is suspended on this task: the engine wakes it on completion.
    waker: Option<Waker>,
    /// How many incomplete tasks are being awaited right now (shared by all cells). If the
    /// orchestrator is pending while this is zero, it is waiting on something no history
    /// event can ever complete.
    awaited: Rc<Cell<usize>>,
}

pub(crate) type TaskRef = Rc<RefCell<TaskCell>>;

impl TaskCell {
    pub(crate) fn new(awaited: &Rc<Cell<usize>>) -> TaskRef {
        Rc::new(RefCell::new(Self {
            outcome: None,
            waker: None,
            awaited: Rc::clone(awaited),
        }))
    }

    /// Completes the task (a second completion is ignored) and wakes whoever awaits it.
    pub(crate) fn complete(cell: &TaskRef, outcome: Outcome) {
        let waker = {
            let Ok(mut this) = cell.try_borrow_mut() else {
                return;
            };
            if this.outcome.is_some() {
                return;
            }
            this.outcome = Some(outcome);
            this.take_waker()
        };
        // Woken after the borrow ends: a waker may run arbitrary code.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Polls the task: the outcome if complete, else registers the waker.
    pub(crate) fn poll(cell: &TaskRef, waker: &Waker) -> Option<Outcome> {
        let Ok(mut this) = cell.try_borrow_mut() else {
            return None;
        };
        if let Some(outcome) = this.outcome.clone() {
            this.take_waker();
            return Some(outcome);
        }
        match &mut this.waker {
            Some(old) => old.clone_from(waker),
            None => {
                this.awaited.set(this.awaited.get().saturating_add(1));
                this.waker = Some(waker.clone());
            }
        }
        None
    }

    /// The future went away: nobody awaits this task any more.
    pub(crate) fn forget_waker(cell: &TaskRef) {
        if let Ok(mut this) = cell.try_borrow_mut() {
            this.take_waker();
        }
    }

    fn take_waker(&mut self) -> Option<Waker> {
        let waker = self.waker.take();
        if waker.is_some() {
            self.awaited.set(self.awaited.get().saturating_sub(1));
        }
        waker
    }
}

/// What kind of durable task an action id stands for, to route completion events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Activity,
    Timer,
}

pub(crate) struct PendingTask {
    pub(crate) kind: TaskKind,
    pub(crate) cell: TaskRef,
}

/// How the orchestration ended in this step.
pub(crate) struct Completion {
    pub(crate) status: proto::OrchestrationStatus,
    pub(crate) result: Option<String>,
    pub(crate) failure: Option<FailureDetails>,
}

/// Everything the context records; rebuilt from scratch on every step (spec §3.1).
pub(crate) struct State {
    pub(crate) instance_id: String,
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) parent_instance_id: Option<String>,
    pub(crate) is_replaying: bool,
    pub(crate) clock: SystemTime,
    seq: i32,
    /// Actions not yet confirmed by history, by id. A `BTreeMap` so they go out in id
    /// (= call) order.
    pub(crate) actions: BTreeMap<i32, proto::OrchestratorAction>,
    /// Incomplete activities and timers, by action id.
    pub(crate) tasks: BTreeMap<i32, PendingTask>,
    /// Raised events nobody waited for yet, by folded name, oldest first.
    pub(crate) buffered_events: BTreeMap<String, VecDeque<Option<String>>>,
    /// Event waiters, by folded name, oldest first.
    pub(crate) event_waiters: BTreeMap<String, VecDeque<TaskRef>>,
    pub(crate) custom_status: Option<String>,
    pub(crate) completion: Option<Completion>,
    /// A failure user code caused outside its return value (e.g. an unserializable custom
    /// status); the engine fails the orchestration with it after the current poll.
    pub(crate) deferred_failure: Option<FailureDetails>,
    pub(crate) awaited: Rc<Cell<usize>>,
    pub(crate) uuid_counter: u64,
}

impl State {
    pub(crate) fn new(instance_id: String) -> Self {
        Self {
            instance_id,
            name: String::new(),
            version: None,
            parent_instance_id: None,
            is_replaying: true,
            clock: SystemTime::UNIX_EPOCH,
            seq: 0,
            actions: BTreeMap::new(),
            tasks: BTreeMap::new(),
            buffered_events: BTreeMap::new(),
            event_waiters: BTreeMap::new(),
            custom_status: None,
            completion: None,
            deferred_failure: None,
            awaited: Rc::new(Cell::new(0)),
            uuid_counter: 0,
        }
    }

    /// The next action id: 1, 2, 3… in call order (spec §3.3).
    pub(crate) fn next_id(&mut self) -> i32 {
        self.seq = self.seq.saturating_add(1);
        self.seq
    }

    /// Records the orchestration's end; only the first call counts (spec §3.6). Pending
    /// actions stay: they go out with the completion.
    pub(crate) fn complete(&mut self, completion: Completion) {
        if self.completion.is_some() {
            return;
        }
        let id = self.next_id();
        let action = proto::CompleteOrchestrationAction {
            orchestration_status: completion.status as i32,
            result: completion.result.clone(),
            failure_details: completion.failure.as_ref().map(FailureDetails::to_proto),
            ..Default::default()
        };
        self.actions.insert(
            id,
            proto::OrchestratorAction {
                id,
                orchestrator_action_type: Some(
                    proto::orchestrator_action::OrchestratorActionType::CompleteOrchestration(
                        action,
                    ),
                ),
            },
        );
        self.completion = Some(completion);
    }

    pub(crate) fn fail(&mut self, details: FailureDetails) {
        self.complete(Completion {
            status: proto::OrchestrationStatus::Failed,
            result: None,
            failure: Some(details),
        });
    }
}

/// Event names are case-insensitive (spec §4.4). Python uses Unicode full case folding;
/// lowercasing agrees with it for everything but a few special cases (e.g. `ß`).
pub(crate) fn fold_event_name(name: &str) -> String {
    name.to_lowercase()
}
