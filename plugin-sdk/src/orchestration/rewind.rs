//! Rewind, the worker's half (spec §4.14): a failed orchestration asked to rewind answers
//! with its history minus the failures, and the backend replays it from there. No user
//! code runs in this step.

use std::collections::BTreeSet;

use durabletask_proto as proto;
use proto::history_event::EventType;
use proto::orchestrator_action::OrchestratorActionType;

/// Whether the request is a rewind: `executionRewound` among the new events of an
/// orchestration whose history completed (spec §3.1).
pub(crate) fn is_rewind(request: &proto::OrchestratorRequest) -> bool {
    let has = |events: &[proto::HistoryEvent], wanted: fn(&EventType) -> bool| {
        events
            .iter()
            .any(|e| e.event_type.as_ref().is_some_and(wanted))
    };
    has(&request.new_events, |e| {
        matches!(e, EventType::ExecutionRewound(_))
    }) && has(&request.past_events, |e| {
        matches!(e, EventType::ExecutionCompleted(_))
    })
}

/// The rewind action (id -1) with the cleaned history, or `Err(message)` when the new
/// events are not exactly `[<anything>, executionRewound]`.
pub(crate) fn rewind(
    request: &proto::OrchestratorRequest,
) -> Result<proto::OrchestratorAction, String> {
    let rewound = match request.new_events.as_slice() {
        [
            _,
            proto::HistoryEvent {
                event_type: Some(EventType::ExecutionRewound(rewound)),
                ..
            },
        ] => rewound,
        _ => {
            return Err("A rewind request must have exactly two new events: \
                        orchestratorStarted, then executionRewound."
                .to_owned());
        }
    };
    let all = request.past_events.iter().chain(&request.new_events);
    // Activities that failed are scheduled again by the replay after the rewind.
    let failed_tasks: BTreeSet<i32> = all
        .clone()
        .filter_map(|e| match &e.event_type {
            Some(EventType::TaskFailed(f)) => Some(f.task_scheduled_id),
            _ => None,
        })
        .collect();
    // A fresh execution id: the rewound run is a new execution of the same instance.
    let execution_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_execution_id = rewound
        .parent_execution_id
        .clone()
        .filter(|id| !id.is_empty());
    let new_history = all
        .filter(|e| match &e.event_type {
            Some(EventType::TaskFailed(_))
            | Some(EventType::SubOrchestrationInstanceFailed(_))
            | Some(EventType::ExecutionCompleted(_)) => false,
            Some(EventType::TaskScheduled(_)) => !failed_tasks.contains(&e.event_id),
            // Children stay: the backend rewinds the ones that failed.
            _ => true,
        })
        .map(|e| {
            let mut e = e.clone();
            if let Some(EventType::ExecutionStarted(started)) = &mut e.event_type {
                started
                    .orchestration_instance
                    .get_or_insert_with(|| proto::OrchestrationInstance {
                        instance_id: request.instance_id.clone(),
                        execution_id: None,
                    })
                    .execution_id = Some(execution_id.clone());
                if let (Some(parent), Some(id)) =
                    (started.parent_instance.as_mut(), &parent_execution_id)
                {
                    parent
                        .orchestration_instance
                        .get_or_insert_with(Default::default)
                        .execution_id = Some(id.clone());
                }
            }
            e
        })
        .collect();
    Ok(proto::OrchestratorAction {
        id: -1,
        orchestrator_action_type: Some(OrchestratorActionType::RewindOrchestration(
            proto::RewindOrchestrationAction { new_history },
        )),
    })
}
