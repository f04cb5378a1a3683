//! Time helpers and constructors for the history events the backend writes itself.
//!
//! Like the reference backend, events get `eventId = -1` unless they confirm an action
//! (then the action's id). Every event carries the time the backend recorded it, as
//! Microsoft's production backends do (the in-memory test backend leaves most at the
//! epoch); only `orchestratorStarted` drives the orchestration clock.

use std::time::{SystemTime, UNIX_EPOCH};

use durabletask_proto::history_event::EventType;
use durabletask_proto::*;
use prost_types::Timestamp;

/// Nanoseconds since the Unix epoch, the unit of every stored time.
pub type Nanos = i64;

pub fn now() -> Nanos {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

pub fn to_timestamp(nanos: Nanos) -> Timestamp {
    Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

pub fn from_timestamp(timestamp: &Timestamp) -> Nanos {
    timestamp
        .seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(timestamp.nanos))
}

pub fn event(event_id: i32, event_type: EventType) -> HistoryEvent {
    HistoryEvent {
        event_id,
        timestamp: Some(to_timestamp(now())),
        event_type: Some(event_type),
    }
}

pub fn orchestrator_started(at: Nanos) -> HistoryEvent {
    HistoryEvent {
        event_id: -1,
        timestamp: Some(to_timestamp(at)),
        event_type: Some(EventType::OrchestratorStarted(OrchestratorStartedEvent {})),
    }
}

pub fn orchestrator_completed() -> HistoryEvent {
    event(
        -1,
        EventType::OrchestratorCompleted(OrchestratorCompletedEvent {}),
    )
}

pub fn event_raised(name: String, input: Option<String>) -> HistoryEvent {
    event(-1, EventType::EventRaised(EventRaisedEvent { name, input }))
}

pub fn is_orchestrator_started(event: &HistoryEvent) -> bool {
    matches!(event.event_type, Some(EventType::OrchestratorStarted(_)))
}

pub fn is_rewound(event: &HistoryEvent) -> bool {
    matches!(event.event_type, Some(EventType::ExecutionRewound(_)))
}

pub fn is_terminated(event: &HistoryEvent) -> bool {
    matches!(event.event_type, Some(EventType::ExecutionTerminated(_)))
}

/// Terminal statuses: the instance runs no more (until restarted or rewound).
pub fn is_terminal(status: i32) -> bool {
    status == OrchestrationStatus::Completed as i32
        || status == OrchestrationStatus::Failed as i32
        || status == OrchestrationStatus::Terminated as i32
        || status == OrchestrationStatus::Canceled as i32
}

pub fn failure(error_type: &str, message: String) -> TaskFailureDetails {
    TaskFailureDetails {
        error_type: error_type.to_owned(),
        error_message: message,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for nanos in [0, 1, 1_700_000_000_123_456_789, -5] {
            assert_eq!(from_timestamp(&to_timestamp(nanos)), nanos);
        }
    }
}
