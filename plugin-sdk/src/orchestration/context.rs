//! [`OrchestrationContext`]: the only door from orchestrator code to the outside world.
//! Every call records its action at call time (spec §3.2), so ids follow call order.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use durabletask_proto as proto;
use proto::orchestrator_action::OrchestratorActionType;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::payload;
use super::state::{Outcome, PendingTask, State, TaskCell, TaskKind, fold_event_name};
use super::tasks::{ActivityTask, EventTask, TimerTask, activity_failure};
use super::time;
use crate::error::{FailureDetails, error_types};

/// The orchestrator's handle on its instance: durable calls, the replay-safe clock,
/// custom status. Cheap to clone; all clones share one state.
///
/// Orchestrator code must be deterministic: the same history must lead to the same calls
/// in the same order. Await only what this context returns (or combinations of them, e.g.
/// [`when_all`](super::when_all)): never tokio timers, channels or I/O.
#[derive(Clone)]
pub struct OrchestrationContext {
    state: Rc<RefCell<State>>,
}

impl OrchestrationContext {
    pub(crate) fn new(state: Rc<RefCell<State>>) -> Self {
        Self { state }
    }

    /// The orchestration's instance id.
    pub fn instance_id(&self) -> String {
        self.state.borrow().instance_id.clone()
    }

    /// The orchestrator's name.
    pub fn name(&self) -> String {
        self.state.borrow().name.clone()
    }

    /// The version the orchestration was started with, if any.
    pub fn version(&self) -> Option<String> {
        self.state.borrow().version.clone()
    }

    /// The parent's instance id when this runs as a sub-orchestration.
    pub fn parent_instance_id(&self) -> Option<String> {
        self.state.borrow().parent_instance_id.clone()
    }

    /// `true` while the code runs from history that was already processed before: use it
    /// to avoid repeating side effects such as logging.
    pub fn is_replaying(&self) -> bool {
        self.state.borrow().is_replaying
    }

    /// The orchestration's deterministic "now": the time of the latest processed
    /// `orchestratorStarted` event (the epoch before the first one).
    pub fn current_utc_datetime(&self) -> SystemTime {
        self.state.borrow().clock
    }

    /// Schedules an activity. The call is recorded now, even if the task is never awaited.
    /// A result that does not deserialize into `O` fails the task with `InvalidInput`.
    pub fn call_activity<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: I,
    ) -> ActivityTask<O> {
        // Serialized before borrowing the state: `Serialize` impls are user code.
        let input = payload::encode(&input);
        let mut state = self.state.borrow_mut();
        let id = state.next_id();
        let cell = TaskCell::new(&state.awaited);
        match input {
            Ok(input) => {
                let action = OrchestratorActionType::ScheduleTask(proto::ScheduleTaskAction {
                    name: name.to_owned(),
                    input,
                    ..Default::default()
                });
                insert_action(&mut state, id, action);
                state.tasks.insert(
                    id,
                    PendingTask {
                        kind: TaskKind::Activity,
                        cell: Rc::clone(&cell),
                    },
                );
            }
            // Nothing can be sent, so the task fails at once. The id is still used up, so
            // the ids of later calls do not depend on whether this one worked.
            Err(e) => {
                let details = FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!("the input of activity '{name}' could not be serialized: {e}"),
                );
                let failure = activity_failure(&state.instance_id, id, details);
                TaskCell::complete(&cell, Outcome::Failed(failure));
            }
        }
        ActivityTask::new(cell, id, state.instance_id.clone(), name.to_owned())
    }

    /// Creates a durable timer that fires at `fire_at` (UTC).
    pub fn create_timer(&self, fire_at: SystemTime) -> TimerTask {
        let mut state = self.state.borrow_mut();
        let id = state.next_id();
        let cell = TaskCell::new(&state.awaited);
        let action = OrchestratorActionType::CreateTimer(proto::CreateTimerAction {
            fire_at: Some(time::to_timestamp(fire_at)),
        });
        insert_action(&mut state, id, action);
        state.tasks.insert(
            id,
            PendingTask {
                kind: TaskKind::Timer,
                cell: Rc::clone(&cell),
            },
        );
        TimerTask::new(cell, id)
    }

    /// Creates a durable timer that fires `delay` after [`Self::current_utc_datetime`].
    pub fn create_timer_after(&self, delay: Duration) -> TimerTask {
        let now = self.current_utc_datetime();
        // An absurd delay saturates to ~136 years rather than overflowing.
        let fire_at = now
            .checked_add(delay)
            .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
            .unwrap_or(now);
        self.create_timer(fire_at)
    }

    /// Waits for an external event raised to this instance under `name`
    /// (case-insensitive). Events raised before anyone waits are kept, oldest first. Takes
    /// no action id.
    pub fn wait_for_external_event<T: DeserializeOwned>(&self, name: &str) -> EventTask<T> {
        let mut state = self.state.borrow_mut();
        let key = fold_event_name(name);
        let cell = TaskCell::new(&state.awaited);
        let buffered = state
            .buffered_events
            .get_mut(&key)
            .and_then(|queue| queue.pop_front());
        match buffered {
            Some(raw) => TaskCell::complete(&cell, Outcome::Value(raw)),
            None => state
                .event_waiters
                .entry(key)
                .or_default()
                .push_back(Rc::clone(&cell)),
        }
        EventTask::new(cell, name.to_owned())
    }

    /// Sets the custom status, sent with every response from now on (spec §4.10).
    /// A value that serializes to `null` clears it.
    pub fn set_custom_status<T: Serialize>(&self, status: T) {
        let status = payload::encode(&status);
        let mut state = self.state.borrow_mut();
        match status {
            Ok(status) => state.custom_status = status,
            Err(e) => {
                state.deferred_failure.get_or_insert_with(|| {
                    FailureDetails::new(
                        error_types::OUTPUT_NOT_SERIALIZABLE,
                        format!("the custom status could not be serialized: {e}"),
                    )
                });
            }
        }
    }

    /// A deterministic UUID (v5), the same on every replay and the same as the reference
    /// SDK's `new_uuid` for the same instance, clock and call count (spec §4.11).
    pub fn new_uuid(&self) -> String {
        let mut state = self.state.borrow_mut();
        let name = format!(
            "{}_{}_{}",
            state.instance_id,
            time::format_utc_micros(state.clock),
            state.uuid_counter
        );
        state.uuid_counter = state.uuid_counter.saturating_add(1);
        let namespace = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            b"9e952958-5e33-4daf-827f-2fa12937b875",
        );
        uuid::Uuid::new_v5(&namespace, name.as_bytes()).to_string()
    }
}

fn insert_action(state: &mut State, id: i32, action: OrchestratorActionType) {
    state.actions.insert(
        id,
        proto::OrchestratorAction {
            id,
            orchestrator_action_type: Some(action),
        },
    );
}
