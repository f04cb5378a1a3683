//! Durable time under the test's control: the clock, which moves only when the test
//! advances it, and the durable timers waiting on it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use durabletask_proto as proto;
use proto::prost_types::Timestamp;

/// Seconds from the Unix epoch to 2026-01-01T00:00:00Z, where every test clock starts.
const START_SECONDS: u64 = 1_767_225_600;

/// The instant every [`TestRuntime`](super::TestRuntime)'s clock starts at:
/// 2026-01-01T00:00:00Z. Fixed, so that tests (and the timestamps in their histories)
/// are the same on every run.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use durabletask_sdk::testing::start_time;
///
/// assert_eq!(start_time(), UNIX_EPOCH + Duration::from_secs(1_767_225_600));
/// ```
pub fn start_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START_SECONDS)
}

/// A protocol timestamp of `at` (times before the epoch are clamped to it: the test clock
/// never goes there).
pub(super) fn to_timestamp(at: SystemTime) -> Timestamp {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// The instant of a protocol timestamp (negative parts are clamped to the epoch).
pub(super) fn from_timestamp(timestamp: &Timestamp) -> SystemTime {
    let seconds = u64::try_from(timestamp.seconds).unwrap_or(0);
    let nanos = u32::try_from(timestamp.nanos).unwrap_or(0);
    UNIX_EPOCH + Duration::new(seconds, nanos)
}

/// What a durable timer does when it fires.
#[derive(Debug, Clone)]
pub(super) enum TimerTarget {
    /// An orchestration's `createTimer`: `timerFired` for the execution that made it.
    Orchestration {
        instance_id: String,
        generation: u64,
        timer_id: i32,
        fire_at: Timestamp,
    },
    /// A signal to an entity sent for later (`scheduledTime`).
    EntitySignal {
        entity_id: String,
        event: Box<proto::HistoryEvent>,
    },
    /// An instance that may not start before its scheduled time.
    ScheduledStart {
        instance_id: String,
        generation: u64,
    },
}

/// The test clock and its timers, ordered by due time, then by creation.
#[derive(Debug)]
pub(super) struct Clock {
    now: SystemTime,
    timers: BTreeMap<(SystemTime, u64), TimerTarget>,
    next_seq: u64,
}

impl Clock {
    pub(super) fn new() -> Self {
        Self {
            now: start_time(),
            timers: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub(super) fn now(&self) -> SystemTime {
        self.now
    }

    /// Moves the clock to `at`; never backwards.
    pub(super) fn move_to(&mut self, at: SystemTime) {
        self.now = self.now.max(at);
    }

    pub(super) fn add(&mut self, at: SystemTime, target: TimerTarget) {
        self.next_seq += 1;
        self.timers.insert((at, self.next_seq), target);
    }

    /// The earliest time a timer is due at, if any timer waits.
    pub(super) fn next_due(&self) -> Option<SystemTime> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Takes the earliest timer due now (`fire_at <= now`).
    pub(super) fn pop_due(&mut self) -> Option<TimerTarget> {
        let entry = self.timers.first_entry()?;
        if entry.key().0 > self.now {
            return None;
        }
        Some(entry.remove())
    }

    /// Drops the orchestration timers and scheduled starts of `instance_id` (it finished,
    /// continued as new, or was replaced): they would fire for nobody.
    pub(super) fn cancel_instance(&mut self, instance_id: &str) {
        self.timers.retain(|_, target| match target {
            TimerTarget::Orchestration {
                instance_id: id, ..
            }
            | TimerTarget::ScheduledStart {
                instance_id: id, ..
            } => id != instance_id,
            TimerTarget::EntitySignal { .. } => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_due_at_their_time_in_creation_order() {
        let mut clock = Clock::new();
        let at = clock.now() + Duration::from_secs(60);
        for id in [1, 2] {
            clock.add(
                at,
                TimerTarget::ScheduledStart {
                    instance_id: format!("i{id}"),
                    generation: 0,
                },
            );
        }
        assert!(clock.pop_due().is_none(), "not due before its time");
        assert_eq!(clock.next_due(), Some(at));
        clock.move_to(at);
        let first = clock.pop_due();
        assert!(
            matches!(first, Some(TimerTarget::ScheduledStart { instance_id, .. }) if instance_id == "i1")
        );
        clock.cancel_instance("i2");
        assert!(clock.pop_due().is_none());
    }

    #[test]
    fn timestamps_round_trip() {
        let at = start_time() + Duration::from_nanos(123_456_789);
        assert_eq!(from_timestamp(&to_timestamp(at)), at);
    }
}
