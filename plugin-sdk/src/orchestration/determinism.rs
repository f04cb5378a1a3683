//! Checking a replayed action against the history event that confirmed it (spec §3.4),
//! and explaining a mismatch with both sides named.

use durabletask_proto as proto;
use proto::history_event::EventType;
use proto::orchestrator_action::OrchestratorActionType;
use proto::send_entity_message_action::EntityMessageType;

use super::state::fold_event_name;

/// A call as the history recorded it (from a confirmation event).
pub(crate) enum Recorded<'a> {
    Activity(&'a str),
    Timer,
    SubOrchestration(&'a str),
    SendEvent { instance: &'a str, name: &'a str },
    CallEntity { operation: &'a str, target: &'a str },
    SignalEntity { operation: &'a str, target: &'a str },
    LockEntities,
}

impl<'a> Recorded<'a> {
    /// The recorded call a confirmation event stands for; `None` for other events.
    pub(crate) fn from_event(event: &'a EventType) -> Option<Self> {
        Some(match event {
            EventType::TaskScheduled(e) => Self::Activity(&e.name),
            EventType::TimerCreated(_) => Self::Timer,
            EventType::SubOrchestrationInstanceCreated(e) => Self::SubOrchestration(&e.name),
            EventType::EventSent(e) => Self::SendEvent {
                instance: &e.instance_id,
                name: &e.name,
            },
            EventType::EntityOperationCalled(e) => Self::CallEntity {
                operation: &e.operation,
                target: e.target_instance_id.as_deref().unwrap_or(""),
            },
            EventType::EntityOperationSignaled(e) => Self::SignalEntity {
                operation: &e.operation,
                target: e.target_instance_id.as_deref().unwrap_or(""),
            },
            EventType::EntityLockRequested(_) => Self::LockEntities,
            _ => return None,
        })
    }

    fn describe(&self) -> String {
        match self {
            Self::Activity(name) => format!("call_activity('{name}')"),
            Self::Timer => "create_timer".to_owned(),
            Self::SubOrchestration(name) => format!("call_sub_orchestrator('{name}')"),
            Self::SendEvent { instance, name } => format!("send_event('{name}' to '{instance}')"),
            Self::CallEntity { operation, target } => {
                format!("call_entity('{operation}' on '{target}')")
            }
            Self::SignalEntity { operation, target } => {
                format!("signal_entity('{operation}' on '{target}')")
            }
            Self::LockEntities => "lock_entities".to_owned(),
        }
    }

    /// Whether the action the code made now is the call history recorded. Like the
    /// reference, inputs are not compared; names and targets are.
    fn matches(&self, action: Option<&OrchestratorActionType>) -> bool {
        match (self, action) {
            (Self::Activity(name), Some(OrchestratorActionType::ScheduleTask(a))) => {
                a.name == *name
            }
            (Self::Timer, Some(OrchestratorActionType::CreateTimer(_))) => true,
            (
                Self::SubOrchestration(name),
                Some(OrchestratorActionType::CreateSubOrchestration(a)),
            ) => a.name == *name,
            (Self::SendEvent { instance, name }, Some(OrchestratorActionType::SendEvent(a))) => {
                a.instance.as_ref().map(|i| i.instance_id.as_str()) == Some(*instance)
                    && fold_event_name(&a.name) == fold_event_name(name)
            }
            (Self::CallEntity { .. }, Some(OrchestratorActionType::SendEntityMessage(m))) => {
                matches!(
                    m.entity_message_type,
                    Some(EntityMessageType::EntityOperationCalled(_))
                )
            }
            (Self::SignalEntity { .. }, Some(OrchestratorActionType::SendEntityMessage(m))) => {
                matches!(
                    m.entity_message_type,
                    Some(EntityMessageType::EntityOperationSignaled(_))
                )
            }
            (Self::LockEntities, Some(OrchestratorActionType::SendEntityMessage(m))) => {
                matches!(
                    m.entity_message_type,
                    Some(EntityMessageType::EntityLockRequested(_))
                )
            }
            _ => false,
        }
    }
}

fn describe_action(action: Option<&OrchestratorActionType>) -> String {
    match action {
        Some(OrchestratorActionType::ScheduleTask(a)) => format!("call_activity('{}')", a.name),
        Some(OrchestratorActionType::CreateTimer(_)) => "create_timer".to_owned(),
        Some(OrchestratorActionType::CreateSubOrchestration(a)) => {
            format!("call_sub_orchestrator('{}')", a.name)
        }
        Some(OrchestratorActionType::SendEvent(a)) => format!(
            "send_event('{}' to '{}')",
            a.name,
            a.instance
                .as_ref()
                .map(|i| i.instance_id.as_str())
                .unwrap_or("")
        ),
        Some(OrchestratorActionType::CompleteOrchestration(_)) => {
            "complete_orchestration".to_owned()
        }
        Some(OrchestratorActionType::TerminateOrchestration(_)) => {
            "terminate_orchestration".to_owned()
        }
        Some(OrchestratorActionType::SendEntityMessage(m)) => match &m.entity_message_type {
            Some(EntityMessageType::EntityOperationCalled(e)) => format!(
                "call_entity('{}' on '{}')",
                e.operation,
                e.target_instance_id.as_deref().unwrap_or("")
            ),
            Some(EntityMessageType::EntityOperationSignaled(e)) => format!(
                "signal_entity('{}' on '{}')",
                e.operation,
                e.target_instance_id.as_deref().unwrap_or("")
            ),
            Some(EntityMessageType::EntityLockRequested(_)) => "lock_entities".to_owned(),
            Some(EntityMessageType::EntityUnlockSent(_)) => "unlock_entities".to_owned(),
            None => "an entity message".to_owned(),
        },
        Some(OrchestratorActionType::RewindOrchestration(_)) => "rewind_orchestration".to_owned(),
        None => "an unknown action".to_owned(),
    }
}

const ADVICE: &str = "An orchestrator must make the same durable calls in the same order \
    on every replay: either its logic is non-deterministic, or its code changed while this \
    instance was running.";

/// Checks a confirmation event against the action the code recorded under the same id
/// (`None` if the code recorded nothing there). `Some(message)` on a mismatch.
pub(crate) fn check(
    recorded: &Recorded<'_>,
    id: i32,
    action: Option<&proto::OrchestratorAction>,
) -> Option<String> {
    let history = recorded.describe();
    match action {
        None => Some(format!(
            "Non-deterministic orchestration: the history has {history} with id {id}, but the \
             orchestrator code made no call with that id this time. {ADVICE}"
        )),
        Some(action) => {
            let kind = action.orchestrator_action_type.as_ref();
            if recorded.matches(kind) {
                None
            } else {
                Some(format!(
                    "Non-deterministic orchestration: the history has {history} with id {id}, \
                     but the orchestrator code now calls {} at that id. {ADVICE}",
                    describe_action(kind)
                ))
            }
        }
    }
}
