//! What the test runtime keeps of an orchestration instance: its record (status, output,
//! custom status), the history of its current execution, and the events waiting for its
//! next step.

use std::collections::HashMap;
use std::time::SystemTime;

use durabletask_proto as proto;
use proto::OrchestrationStatus;
use proto::history_event::EventType;

/// Where a sub-orchestration reports how it ended: its parent's action, in the parent's
/// execution that created it.
#[derive(Debug, Clone)]
pub(super) struct ParentLink {
    pub(super) instance_id: String,
    pub(super) task_scheduled_id: i32,
    pub(super) generation: u64,
    pub(super) info: proto::ParentInstanceInfo,
}

/// What a new instance starts with.
#[derive(Debug)]
pub(super) struct NewInstance {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) version: Option<String>,
    pub(super) input: Option<String>,
    pub(super) tags: HashMap<String, String>,
    pub(super) scheduled_start: Option<SystemTime>,
    pub(super) parent: Option<ParentLink>,
}

/// One orchestration instance.
#[derive(Debug)]
pub(super) struct Instance {
    pub(super) name: String,
    pub(super) version: Option<String>,
    pub(super) tags: HashMap<String, String>,
    pub(super) status: OrchestrationStatus,
    pub(super) output: Option<String>,
    pub(super) failure: Option<proto::TaskFailureDetails>,
    pub(super) custom_status: Option<String>,
    /// The current execution's history (a continue-as-new starts a new one).
    pub(super) history: Vec<proto::HistoryEvent>,
    /// Events for the next step, oldest first.
    pub(super) pending: Vec<proto::HistoryEvent>,
    /// Changes with every execution: work of an earlier execution is dropped.
    pub(super) generation: u64,
    pub(super) execution_id: String,
    pub(super) parent: Option<ParentLink>,
    /// A scheduled start not reached yet.
    pub(super) not_before: Option<SystemTime>,
}

pub(super) fn is_terminal(status: OrchestrationStatus) -> bool {
    matches!(
        status,
        OrchestrationStatus::Completed
            | OrchestrationStatus::Failed
            | OrchestrationStatus::Terminated
            | OrchestrationStatus::Canceled
    )
}

pub(super) fn is_terminated(event: &proto::HistoryEvent) -> bool {
    matches!(event.event_type, Some(EventType::ExecutionTerminated(_)))
}

impl Instance {
    pub(super) fn is_terminal(&self) -> bool {
        is_terminal(self.status)
    }

    /// Whether a step should run now, by the embedded backend's rule: there are new
    /// events, the instance has not finished, its scheduled start has come (unless it is
    /// being terminated), and, while suspended, only for a resume or a termination (the
    /// rest waits for the resume).
    pub(super) fn dispatchable(&self, now: SystemTime) -> bool {
        if self.pending.is_empty() || self.is_terminal() {
            return false;
        }
        let terminating = self.pending.iter().any(is_terminated);
        if !terminating && self.not_before.is_some_and(|at| at > now) {
            return false;
        }
        self.status != OrchestrationStatus::Suspended
            || self.pending.iter().any(|event| {
                matches!(
                    event.event_type,
                    Some(EventType::ExecutionResumed(_) | EventType::ExecutionTerminated(_))
                )
            })
    }

    /// Suspended, counting the suspends and resumes not processed yet.
    pub(super) fn effectively_suspended(&self) -> bool {
        let mut suspended = self.status == OrchestrationStatus::Suspended;
        for event in &self.pending {
            match event.event_type {
                Some(EventType::ExecutionSuspended(_)) => suspended = true,
                Some(EventType::ExecutionResumed(_)) => suspended = false,
                _ => {}
            }
        }
        suspended
    }
}
