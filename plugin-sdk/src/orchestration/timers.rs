//! Durable timers as the engine keeps them: creation (split into chunks when a maximum
//! timer interval is set, spec §4.2) and what a `timerFired` event does to them. Shared by
//! user timers and retry timers, so a retry delay is chunked the same way.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use durabletask_proto as proto;
use proto::orchestrator_action::OrchestratorActionType;

use super::state::{PendingTask, PendingTimer, State, TimerThen};
use super::time;

pub use durabletask_abi::properties::MAXIMUM_TIMER_INTERVAL_PROPERTY;

/// Reads [`MAXIMUM_TIMER_INTERVAL_PROPERTY`] from a request; `None` = chunking off.
pub(crate) fn maximum_interval(request: &proto::OrchestratorRequest) -> Option<Duration> {
    let value = request.properties.get(MAXIMUM_TIMER_INTERVAL_PROPERTY)?;
    match value.kind {
        Some(proto::prost_types::value::Kind::NumberValue(secs)) if secs > 0.0 => {
            Duration::try_from_secs_f64(secs).ok()
        }
        _ => None,
    }
}

/// Creates a timer for `fire_at` under a new id: the whole wait, or its first chunk when
/// `now + max < fire_at`. Returns the shared id of the chunk in flight.
pub(crate) fn schedule(state: &mut State, fire_at: SystemTime, then: TimerThen) -> Rc<Cell<i32>> {
    let id = state.next_id();
    let current_id = Rc::new(Cell::new(id));
    let (chunk_at, final_fire_at) = match next_chunk(state, state.clock, fire_at) {
        Some(chunk_at) => (chunk_at, Some(fire_at)),
        None => (fire_at, None),
    };
    insert_timer(
        state,
        id,
        chunk_at,
        PendingTimer {
            final_fire_at,
            current_id: Rc::clone(&current_id),
            then,
        },
    );
    current_id
}

/// A `timerFired` for `timer_id`, which fired at `fired_at`. Returns what to do when the
/// timer is over; `None` when the event is for no pending timer (ignored, as the
/// reference does: e.g. a cancelled timer) or when the next chunk was started.
pub(crate) fn fired(
    state: &mut State,
    timer_id: i32,
    fired_at: Option<SystemTime>,
) -> Option<TimerThen> {
    if !matches!(state.tasks.get(timer_id), Some(PendingTask::Timer(_))) {
        return None;
    }
    let Some(PendingTask::Timer(timer)) = state.tasks.remove(timer_id) else {
        return None;
    };
    if let (Some(final_at), Some(fired_at)) = (timer.final_fire_at, fired_at)
        && fired_at < final_at
    {
        // Another chunk, under a new id, until the final fire time.
        let chunk_at = next_chunk(state, fired_at, final_at).unwrap_or(final_at);
        let id = state.next_id();
        timer.current_id.set(id);
        insert_timer(state, id, chunk_at, timer);
        return None;
    }
    Some(timer.then)
}

/// `from + max` when that is still before `fire_at` (strictly), else `None`: the rule
/// for both the first chunk and each later one.
fn next_chunk(state: &State, from: SystemTime, fire_at: SystemTime) -> Option<SystemTime> {
    let max = state.max_timer_interval?;
    from.checked_add(max).filter(|at| *at < fire_at)
}

fn insert_timer(state: &mut State, id: i32, fire_at: SystemTime, timer: PendingTimer) {
    state.insert_action(
        id,
        OrchestratorActionType::CreateTimer(proto::CreateTimerAction {
            fire_at: Some(time::to_timestamp(fire_at)),
        }),
    );
    state.tasks.insert(id, PendingTask::Timer(timer));
}
