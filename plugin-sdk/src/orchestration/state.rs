//! The state one replay shares between the engine and the orchestrator's context and
//! task futures. Everything here lives on one thread for one step, hence `Rc<RefCell>`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, SystemTime};

use durabletask_proto as proto;

use super::critical_section;
use super::entities::EntityState;
use super::id_map::IdMap;
use super::retry::RetryPolicy;
use super::time;
use crate::error::{FailureDetails, TaskFailedError};

/// How a durable task ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Completed with this raw JSON payload (`None` = null). Shared, so that reading the
    /// outcome (on every poll of a completed task) copies nothing.
    Value(Option<Rc<str>>),
    /// Failed.
    Failed(TaskFailedError),
    /// Cancelled by user code before it completed (timers and event waits only).
    Cancelled,
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

    /// Whether the task has an outcome (a borrowed cell counts as incomplete).
    pub(crate) fn is_complete(cell: &TaskRef) -> bool {
        cell.try_borrow().is_ok_and(|this| this.outcome.is_some())
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

/// What a durable call (activity or sub-orchestration) is, to route its completion
/// events and word its failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    Activity,
    SubOrchestration,
}

/// A retried call's memory (spec §4.8): what to send again, and how far along it is.
pub(crate) struct Retry {
    pub(crate) policy: RetryPolicy,
    /// The orchestration clock when user code made the call: the timeout counts from here.
    pub(crate) first_call: SystemTime,
    /// Attempts made so far, the current one included.
    pub(crate) attempts: u32,
    /// The original action, sent again unchanged (same id, input, version, tags).
    pub(crate) action: proto::orchestrator_action::OrchestratorActionType,
}

/// An activity or sub-orchestration waiting for its result.
pub(crate) struct PendingCall {
    pub(crate) kind: CallKind,
    pub(crate) cell: TaskRef,
    pub(crate) retry: Option<Box<Retry>>,
}

/// What a timer does when it finally fires.
pub(crate) enum TimerThen {
    /// A user timer: complete its task.
    Complete(TaskRef),
    /// A retry timer: send call `id` again.
    Retry { id: i32, call: Box<PendingCall> },
}

/// A timer waiting for `timerFired`.
pub(crate) struct PendingTimer {
    /// The fire time the user asked for, when the timer is split into chunks (spec §4.2).
    pub(crate) final_fire_at: Option<SystemTime>,
    /// The id of the chunk in flight, shared with the user's task so `cancel` finds it.
    pub(crate) current_id: Rc<Cell<i32>>,
    pub(crate) then: TimerThen,
}

/// An incomplete durable task, by the action id its completion event will name.
pub(crate) enum PendingTask {
    Call(PendingCall),
    Timer(PendingTimer),
}

/// How the orchestration ended in this step.
pub(crate) struct Completion {
    pub(crate) status: proto::OrchestrationStatus,
    pub(crate) result: Option<String>,
    pub(crate) failure: Option<FailureDetails>,
}

/// Everything the context records; rebuilt from scratch on every step (spec §3.1).
pub(crate) struct State {
    /// Shared: every activity task keeps it for its failure message.
    pub(crate) instance_id: Rc<str>,
    pub(crate) name: String,
    pub(crate) version: Option<String>,
    pub(crate) parent_instance_id: Option<String>,
    pub(crate) is_replaying: bool,
    pub(crate) clock: SystemTime,
    seq: i32,
    /// Actions not yet confirmed by history, by id; they go out in id (= call) order.
    /// Boxed: an action is ~300 bytes, and a fan-out keeps thousands of them at once.
    pub(crate) actions: IdMap<Box<proto::OrchestratorAction>>,
    /// Incomplete activities, sub-orchestrations and timers, by action id.
    pub(crate) tasks: IdMap<PendingTask>,
    /// Raised events nobody waited for yet, by folded name, oldest first.
    pub(crate) buffered_events: BufferedEvents,
    /// Event waiters, by folded name, oldest first.
    pub(crate) event_waiters: BTreeMap<String, VecDeque<TaskRef>>,
    pub(crate) custom_status: Option<String>,
    pub(crate) completion: Option<Completion>,
    /// A failure user code caused outside its return value (e.g. an unserializable custom
    /// status); the engine fails the orchestration with it after the current poll.
    pub(crate) deferred_failure: Option<FailureDetails>,
    pub(crate) awaited: Rc<Cell<usize>>,
    pub(crate) uuid_counter: u64,
    /// Longer timers are split into chunks of at most this (spec §4.2); `None` = never.
    pub(crate) max_timer_interval: Option<Duration>,
    /// The version of sub-orchestrations started without one (spec §4.3); `None` = none.
    pub(crate) default_version: Option<String>,
    /// Set by `continue_as_new`: the orchestration is over, but its completion action is
    /// only built (and given its id) when the response is (spec §3.6).
    pub(crate) continued_as_new: Option<ContinueAsNew>,
    /// The name of the latest call or event wait, shared by the tasks that keep it for
    /// their messages: a fan-out to one activity allocates it once.
    last_name: Option<Rc<str>>,
    /// Entity calls, lock requests and the critical section (spec §6.5–§6.7).
    pub(crate) entities: EntityState,
    /// Set by the engine before it drops the orchestrator future (end of step, failure,
    /// continue-as-new): the destructors that run then are not the orchestrator leaving a
    /// scope, so they must record nothing (see `CriticalSectionGuard`).
    pub(crate) discarding: bool,
}

/// A requested continue-as-new.
pub(crate) struct ContinueAsNew {
    /// The new execution's input, as JSON (`None` = null).
    pub(crate) input: Option<String>,
    /// Whether unconsumed events go over to the new execution.
    pub(crate) save_events: bool,
}

/// Buffered external events (spec §4.4). Names keep the order they first appeared in
/// (a name whose queue empties is forgotten), which is the order continue-as-new carries
/// them over in (spec §4.6).
#[derive(Default)]
pub(crate) struct BufferedEvents {
    queues: BTreeMap<String, (u64, VecDeque<Option<String>>)>,
    next_stamp: u64,
}

impl BufferedEvents {
    /// Keeps an event nobody waits for yet. `key` is the folded name.
    pub(crate) fn push(&mut self, key: String, data: Option<String>) {
        let stamp = self.next_stamp;
        let (_, queue) = self
            .queues
            .entry(key)
            .or_insert_with(|| (stamp, VecDeque::new()));
        if queue.is_empty() {
            self.next_stamp = self.next_stamp.saturating_add(1);
        }
        queue.push_back(data);
    }

    /// The oldest event under `key`, if any.
    pub(crate) fn pop(&mut self, key: &str) -> Option<Option<String>> {
        let (_, queue) = self.queues.get_mut(key)?;
        let data = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(key);
        }
        data
    }

    /// Every event still buffered: names in first-appearance order, events oldest first.
    pub(crate) fn drain_in_order(&mut self) -> Vec<(String, Option<String>)> {
        let mut queues: Vec<_> = std::mem::take(&mut self.queues).into_iter().collect();
        queues.sort_by_key(|(_, (stamp, _))| *stamp);
        queues
            .into_iter()
            .flat_map(|(name, (_, queue))| queue.into_iter().map(move |data| (name.clone(), data)))
            .collect()
    }
}

impl State {
    pub(crate) fn new(instance_id: String) -> Self {
        Self {
            instance_id: Rc::from(instance_id),
            name: String::new(),
            version: None,
            parent_instance_id: None,
            is_replaying: true,
            clock: SystemTime::UNIX_EPOCH,
            seq: 0,
            actions: IdMap::default(),
            tasks: IdMap::default(),
            buffered_events: BufferedEvents::default(),
            event_waiters: BTreeMap::new(),
            custom_status: None,
            completion: None,
            deferred_failure: None,
            awaited: Rc::new(Cell::new(0)),
            uuid_counter: 0,
            max_timer_interval: None,
            default_version: None,
            continued_as_new: None,
            last_name: None,
            entities: EntityState::default(),
            discarding: false,
        }
    }

    /// `name` as a shared string, reusing the previous one when it is the same.
    pub(crate) fn shared_name(&mut self, name: &str) -> Rc<str> {
        match &self.last_name {
            Some(last) if **last == *name => Rc::clone(last),
            _ => Rc::clone(self.last_name.insert(Rc::from(name))),
        }
    }

    /// The next action id: 1, 2, 3… in call order (spec §3.3).
    pub(crate) fn next_id(&mut self) -> i32 {
        self.seq = self.seq.saturating_add(1);
        self.seq
    }

    /// A deterministic UUID (spec §4.11): `new_uuid`, also the request ids of entity
    /// messages, which share its counter.
    pub(crate) fn new_uuid(&mut self) -> String {
        let name = format!(
            "{}_{}_{}",
            self.instance_id,
            time::format_utc_micros(self.clock),
            self.uuid_counter
        );
        self.uuid_counter = self.uuid_counter.saturating_add(1);
        let namespace = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            b"9e952958-5e33-4daf-827f-2fa12937b875",
        );
        uuid::Uuid::new_v5(&namespace, name.as_bytes()).to_string()
    }

    /// Whether the orchestration has ended (completed, failed, terminated or continued as
    /// new) in this step.
    pub(crate) fn is_complete(&self) -> bool {
        self.completion.is_some() || self.continued_as_new.is_some()
    }

    /// Records the orchestration's end; only the first call counts (spec §3.6). Pending
    /// actions stay: they go out with the completion.
    pub(crate) fn complete(&mut self, completion: Completion) {
        if self.is_complete() {
            return;
        }
        // An open critical section is left first: its unlocks take the ids before the
        // completion's (spec §3.6).
        critical_section::exit(self);
        let id = self.next_id();
        let action = proto::CompleteOrchestrationAction {
            orchestration_status: completion.status as i32,
            result: completion.result.clone(),
            failure_details: completion.failure.as_ref().map(FailureDetails::to_proto),
            ..Default::default()
        };
        self.insert_action(
            id,
            proto::orchestrator_action::OrchestratorActionType::CompleteOrchestration(action),
        );
        self.completion = Some(completion);
    }

    /// Records an action to send (unless history confirms it during this replay).
    pub(crate) fn insert_action(
        &mut self,
        id: i32,
        action: proto::orchestrator_action::OrchestratorActionType,
    ) {
        self.actions.insert(
            id,
            Box::new(proto::OrchestratorAction {
                id,
                orchestrator_action_type: Some(action),
            }),
        );
    }

    pub(crate) fn fail(&mut self, details: FailureDetails) {
        self.complete(Completion {
            status: proto::OrchestrationStatus::Failed,
            result: None,
            failure: Some(details),
        });
    }
}

/// Event names are case-insensitive (spec §4.4), keyed the way the reference keys them:
/// Unicode full case folding, so names folded here match names other workers folded (e.g.
/// in carried-over events).
pub(crate) fn fold_event_name(name: &str) -> String {
    super::casefold::casefold(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_events_keep_first_appearance_order() {
        let mut events = BufferedEvents::default();
        events.push("b".into(), Some("1".into()));
        events.push("a".into(), Some("2".into()));
        events.push("b".into(), None);
        assert_eq!(events.pop("a"), Some(Some("2".into())));
        // "a" emptied and is forgotten: it comes back last.
        events.push("a".into(), Some("3".into()));
        assert_eq!(
            events.drain_in_order(),
            [
                ("b".to_owned(), Some("1".to_owned())),
                ("b".to_owned(), None),
                ("a".to_owned(), Some("3".to_owned())),
            ]
        );
    }
}
