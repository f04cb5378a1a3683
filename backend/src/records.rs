//! The records the engine persists, as prost messages of our own.
//!
//! Each record is stored under `(hub, kind, key)` in the generic `records` table (see
//! [`crate::store`]). Protocol types (`HistoryEvent`, `TaskFailureDetails`, ...) are
//! embedded as they are, so nothing is translated on the way in or out. Times are
//! nanoseconds since the Unix epoch.
//!
//! Field numbers are part of the file format: add new fields with new numbers, never
//! renumber.

use std::collections::HashMap;

use durabletask_proto::{HistoryEvent, ParentInstanceInfo, TaskFailureDetails, TraceContext};

/// What a record is; the `kind` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Instance = 1,
    Activity = 2,
    Timer = 3,
    Entity = 4,
    LockRequest = 5,
}

impl Kind {
    pub fn from_i64(value: i64) -> Option<Kind> {
        Some(match value {
            1 => Kind::Instance,
            2 => Kind::Activity,
            3 => Kind::Timer,
            4 => Kind::Entity,
            5 => Kind::LockRequest,
            _ => return None,
        })
    }
}

/// Formats a numeric record key so that keys sort like their numbers.
pub fn numeric_key(id: u64) -> String {
    format!("{id:020}")
}

/// An orchestration instance: its metadata and the events not yet in its history.
///
/// The history itself lives in the append-only `history` table.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstanceRecord {
    #[prost(string, tag = "1")]
    pub instance_id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, optional, tag = "3")]
    pub version: Option<String>,
    /// An `OrchestrationStatus` value.
    #[prost(int32, tag = "4")]
    pub status: i32,
    #[prost(string, optional, tag = "5")]
    pub input: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub output: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub custom_status: Option<String>,
    #[prost(message, optional, tag = "8")]
    pub failure_details: Option<TaskFailureDetails>,
    #[prost(int64, tag = "9")]
    pub created_at: i64,
    #[prost(int64, tag = "10")]
    pub last_updated_at: i64,
    #[prost(int64, optional, tag = "11")]
    pub completed_at: Option<i64>,
    /// The requested start time (reported in the state).
    #[prost(int64, optional, tag = "12")]
    pub scheduled_start: Option<i64>,
    /// Not dispatched before this time (a scheduled start that has not come yet).
    #[prost(int64, optional, tag = "13")]
    pub not_before: Option<i64>,
    #[prost(map = "string, string", tag = "14")]
    pub tags: HashMap<String, String>,
    /// Where this instance reports its completion (a sub-orchestration's parent).
    #[prost(message, optional, tag = "15")]
    pub parent: Option<ParentLink>,
    /// The run: a new one (hub-wide unique) for every created instance and every
    /// continue-as-new; work and links of an older run (activity results, timers,
    /// sub-orchestration completions) are dropped.
    #[prost(uint64, tag = "16")]
    pub generation: u64,
    #[prost(string, tag = "17")]
    pub execution_id: String,
    /// Events waiting to be delivered to a worker, oldest first. Events that were handed
    /// out but not completed are stored here too, so they are redelivered after a restart.
    #[prost(message, repeated, tag = "18")]
    pub pending: Vec<HistoryEvent>,
}

/// A sub-orchestration's link to its parent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ParentLink {
    #[prost(string, tag = "1")]
    pub instance_id: String,
    /// The parent's `createSubOrchestration` action id.
    #[prost(int32, tag = "2")]
    pub task_scheduled_id: i32,
    /// The parent's generation when it created the child.
    #[prost(uint64, tag = "3")]
    pub generation: u64,
    /// As sent in the child's `executionStarted.parentInstance`.
    #[prost(message, optional, tag = "4")]
    pub info: Option<ParentInstanceInfo>,
}

/// An activity to run (or running) for an orchestration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ActivityRecord {
    #[prost(string, tag = "1")]
    pub instance_id: String,
    #[prost(uint64, tag = "2")]
    pub generation: u64,
    #[prost(int32, tag = "3")]
    pub task_id: i32,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, optional, tag = "5")]
    pub version: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub input: Option<String>,
    #[prost(map = "string, string", tag = "7")]
    pub tags: HashMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub trace_context: Option<TraceContext>,
    #[prost(string, tag = "9")]
    pub execution_id: String,
}

/// Something to do at a given time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimerRecord {
    /// When, in nanoseconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub due: i64,
    #[prost(oneof = "TimerTarget", tags = "2, 3, 4")]
    pub target: Option<TimerTarget>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
#[allow(clippy::large_enum_variant)] // prost's derive does not support boxed variants
pub enum TimerTarget {
    /// An orchestration's durable timer: deliver `timerFired`.
    #[prost(message, tag = "2")]
    Orchestration(OrchestrationTimer),
    /// A delayed entity signal: queue the operation.
    #[prost(message, tag = "3")]
    EntitySignal(DelayedSignal),
    /// A scheduled start: the instance becomes dispatchable.
    #[prost(message, tag = "4")]
    ScheduledStart(ScheduledStart),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OrchestrationTimer {
    #[prost(string, tag = "1")]
    pub instance_id: String,
    #[prost(uint64, tag = "2")]
    pub generation: u64,
    #[prost(int32, tag = "3")]
    pub timer_id: i32,
    #[prost(message, optional, tag = "4")]
    pub fire_at: Option<prost_types::Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DelayedSignal {
    #[prost(string, tag = "1")]
    pub entity_id: String,
    #[prost(message, optional, tag = "2")]
    pub event: Option<HistoryEvent>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ScheduledStart {
    #[prost(string, tag = "1")]
    pub instance_id: String,
    #[prost(uint64, tag = "2")]
    pub generation: u64,
}

/// An entity: its state, lock and queued operations.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntityRecord {
    #[prost(string, tag = "1")]
    pub instance_id: String,
    #[prost(string, optional, tag = "2")]
    pub state: Option<String>,
    #[prost(int64, tag = "3")]
    pub last_modified_at: i64,
    /// The critical section holding the lock.
    #[prost(string, optional, tag = "4")]
    pub locked_by: Option<String>,
    /// The orchestration that owns that critical section.
    #[prost(string, optional, tag = "5")]
    pub lock_owner: Option<String>,
    /// Operations not yet completed (including ones handed out), in arrival order.
    #[prost(message, repeated, tag = "6")]
    pub operations: Vec<QueuedOperation>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct QueuedOperation {
    /// Arrival order, shared with lock requests: it decides who goes first.
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    /// `entityOperationSignaled` or `entityOperationCalled`.
    #[prost(message, optional, tag = "2")]
    pub event: Option<HistoryEvent>,
}

/// A lock request waiting for its entities.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LockRequestRecord {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(string, tag = "2")]
    pub critical_section_id: String,
    #[prost(string, tag = "3")]
    pub parent_instance_id: String,
    #[prost(string, repeated, tag = "4")]
    pub lock_set: Vec<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use prost::Message;

    #[test]
    fn numeric_keys_sort_like_numbers() {
        assert!(numeric_key(9) < numeric_key(10));
        assert!(numeric_key(99) < numeric_key(1000));
    }

    #[test]
    fn timer_record_round_trips() {
        let record = TimerRecord {
            due: 42,
            target: Some(TimerTarget::ScheduledStart(ScheduledStart {
                instance_id: "i".into(),
                generation: 3,
            })),
        };
        let bytes = record.encode_to_vec();
        assert_eq!(TimerRecord::decode(bytes.as_slice()).unwrap(), record);
    }
}
