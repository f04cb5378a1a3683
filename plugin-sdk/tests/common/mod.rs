//! History builders and response readers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use durabletask_sdk::proto::{
    self, history_event::EventType, orchestrator_action::OrchestratorActionType,
};
use serde_json::Value;

// ---- history builders ----

pub fn event(event_id: i32, kind: EventType) -> proto::HistoryEvent {
    proto::HistoryEvent {
        event_id,
        timestamp: None,
        event_type: Some(kind),
    }
}

pub fn orchestrator_started(seconds: i64) -> proto::HistoryEvent {
    proto::HistoryEvent {
        event_id: -1,
        timestamp: Some(prost_types_timestamp(seconds)),
        event_type: Some(EventType::OrchestratorStarted(Default::default())),
    }
}

pub fn prost_types_timestamp(seconds: i64) -> proto::prost_types::Timestamp {
    proto::prost_types::Timestamp { seconds, nanos: 0 }
}

pub fn execution_started(name: &str, input: Option<&str>) -> proto::HistoryEvent {
    event(
        -1,
        EventType::ExecutionStarted(proto::ExecutionStartedEvent {
            name: name.into(),
            input: input.map(Into::into),
            orchestration_instance: Some(proto::OrchestrationInstance {
                instance_id: "inst".into(),
                execution_id: None,
            }),
            ..Default::default()
        }),
    )
}

pub fn task_scheduled(id: i32, name: &str) -> proto::HistoryEvent {
    event(
        id,
        EventType::TaskScheduled(proto::TaskScheduledEvent {
            name: name.into(),
            ..Default::default()
        }),
    )
}

pub fn task_completed(id: i32, result: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::TaskCompleted(proto::TaskCompletedEvent {
            task_scheduled_id: id,
            result: Some(result.into()),
        }),
    )
}

pub fn task_failed(id: i32, error_type: &str, message: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::TaskFailed(proto::TaskFailedEvent {
            task_scheduled_id: id,
            failure_details: Some(proto::TaskFailureDetails {
                error_type: error_type.into(),
                error_message: message.into(),
                ..Default::default()
            }),
        }),
    )
}

pub fn timer_created(id: i32, seconds: i64) -> proto::HistoryEvent {
    event(
        id,
        EventType::TimerCreated(proto::TimerCreatedEvent {
            fire_at: Some(prost_types_timestamp(seconds)),
        }),
    )
}

pub fn timer_fired(id: i32, seconds: i64) -> proto::HistoryEvent {
    event(
        -1,
        EventType::TimerFired(proto::TimerFiredEvent {
            fire_at: Some(prost_types_timestamp(seconds)),
            timer_id: id,
        }),
    )
}

pub fn event_raised(name: &str, input: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::EventRaised(proto::EventRaisedEvent {
            name: name.into(),
            input: Some(input.into()),
        }),
    )
}

pub fn suspended() -> proto::HistoryEvent {
    event(-1, EventType::ExecutionSuspended(Default::default()))
}

pub fn resumed() -> proto::HistoryEvent {
    event(-1, EventType::ExecutionResumed(Default::default()))
}

pub fn terminated(output: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::ExecutionTerminated(proto::ExecutionTerminatedEvent {
            input: Some(output.into()),
            recurse: false,
        }),
    )
}

pub fn request(
    past: Vec<proto::HistoryEvent>,
    new: Vec<proto::HistoryEvent>,
) -> proto::OrchestratorRequest {
    proto::OrchestratorRequest {
        instance_id: "inst".into(),
        past_events: past,
        new_events: new,
        ..Default::default()
    }
}

// ---- response readers ----

pub fn kinds(response: &proto::OrchestratorResponse) -> Vec<(i32, &OrchestratorActionType)> {
    response
        .actions
        .iter()
        .filter_map(|a| a.orchestrator_action_type.as_ref().map(|t| (a.id, t)))
        .collect()
}

pub fn completion(
    response: &proto::OrchestratorResponse,
) -> Option<(i32, &proto::CompleteOrchestrationAction)> {
    kinds(response).into_iter().find_map(|(id, t)| match t {
        OrchestratorActionType::CompleteOrchestration(c) => Some((id, c)),
        _ => None,
    })
}

pub fn status(c: &proto::CompleteOrchestrationAction) -> proto::OrchestrationStatus {
    proto::OrchestrationStatus::try_from(c.orchestration_status)
        .unwrap_or(proto::OrchestrationStatus::Running)
}

pub fn output(c: &proto::CompleteOrchestrationAction) -> Value {
    c.result
        .as_deref()
        .map(|r| serde_json::from_str(r).unwrap_or(Value::Null))
        .unwrap_or(Value::Null)
}

pub fn failure(response: &proto::OrchestratorResponse) -> proto::TaskFailureDetails {
    let (_, c) = completion(response).unwrap_or_else(|| panic!("no completion: {response:?}"));
    assert_eq!(status(c), proto::OrchestrationStatus::Failed, "{c:?}");
    c.failure_details.clone().unwrap_or_default()
}

pub fn scheduled(response: &proto::OrchestratorResponse) -> Vec<(i32, String, Value)> {
    kinds(response)
        .into_iter()
        .filter_map(|(id, t)| match t {
            OrchestratorActionType::ScheduleTask(s) => Some((
                id,
                s.name.clone(),
                s.input
                    .as_deref()
                    .map(|i| serde_json::from_str(i).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null),
            )),
            _ => None,
        })
        .collect()
}

// ---- more history builders ----

pub fn sub_created(id: i32, name: &str, instance_id: &str) -> proto::HistoryEvent {
    event(
        id,
        EventType::SubOrchestrationInstanceCreated(proto::SubOrchestrationInstanceCreatedEvent {
            name: name.into(),
            instance_id: instance_id.into(),
            ..Default::default()
        }),
    )
}

pub fn sub_completed(id: i32, result: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::SubOrchestrationInstanceCompleted(
            proto::SubOrchestrationInstanceCompletedEvent {
                task_scheduled_id: id,
                result: Some(result.into()),
            },
        ),
    )
}

pub fn sub_failed(id: i32, error_type: &str, message: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::SubOrchestrationInstanceFailed(proto::SubOrchestrationInstanceFailedEvent {
            task_scheduled_id: id,
            failure_details: Some(proto::TaskFailureDetails {
                error_type: error_type.into(),
                error_message: message.into(),
                ..Default::default()
            }),
        }),
    )
}

pub fn non_retriable_task_failed(id: i32, message: &str) -> proto::HistoryEvent {
    event(
        -1,
        EventType::TaskFailed(proto::TaskFailedEvent {
            task_scheduled_id: id,
            failure_details: Some(proto::TaskFailureDetails {
                error_type: "Fatal".into(),
                error_message: message.into(),
                is_non_retriable: true,
                ..Default::default()
            }),
        }),
    )
}

pub fn event_sent(id: i32, instance_id: &str, name: &str) -> proto::HistoryEvent {
    event(
        id,
        EventType::EventSent(proto::EventSentEvent {
            instance_id: instance_id.into(),
            name: name.into(),
            input: None,
        }),
    )
}

pub fn execution_completed() -> proto::HistoryEvent {
    event(
        -1,
        EventType::ExecutionCompleted(proto::ExecutionCompletedEvent {
            orchestration_status: proto::OrchestrationStatus::Failed as i32,
            ..Default::default()
        }),
    )
}

// ---- more response readers ----

/// The timers a response creates: (id, fire-at seconds).
pub fn timers(response: &proto::OrchestratorResponse) -> Vec<(i32, i64)> {
    kinds(response)
        .into_iter()
        .filter_map(|(id, t)| match t {
            OrchestratorActionType::CreateTimer(t) => {
                Some((id, t.fire_at.map(|f| f.seconds).unwrap_or_default()))
            }
            _ => None,
        })
        .collect()
}

/// The sub-orchestrations a response starts.
pub fn children(
    response: &proto::OrchestratorResponse,
) -> Vec<(i32, proto::CreateSubOrchestrationAction)> {
    kinds(response)
        .into_iter()
        .filter_map(|(id, t)| match t {
            OrchestratorActionType::CreateSubOrchestration(c) => Some((id, c.clone())),
            _ => None,
        })
        .collect()
}

// ---- a tiny backend, to drive an orchestration step by step ----

/// What the simulated backend did: the history it built and every activity call.
#[derive(Default)]
pub struct Backend {
    pub past: Vec<proto::HistoryEvent>,
    pub steps: usize,
    /// (task id, activity name, orchestration clock) of every activity execution.
    pub activity_calls: Vec<(i32, String, i64)>,
    /// Every action sent, in order.
    pub actions: Vec<proto::OrchestratorAction>,
}

/// Runs `name` from t=1000 until it completes: confirms each action, runs activities
/// through `activity` (Ok = result JSON, Err = (message, non-retriable)) at the current
/// clock, fires timers at their time, one event per step, earliest first.
pub fn drive(
    registry: &durabletask_sdk::Registry,
    properties: std::collections::HashMap<String, proto::prost_types::Value>,
    name: &str,
    input: Option<&str>,
    mut activity: impl FnMut(&str, usize) -> Result<String, (String, bool)>,
) -> (proto::CompleteOrchestrationAction, Backend) {
    let mut backend = Backend::default();
    let mut clock = 1000;
    let mut new = vec![orchestrator_started(clock), execution_started(name, input)];
    let mut queue: Vec<(i64, proto::HistoryEvent)> = Vec::new();
    let mut attempts: std::collections::HashMap<String, usize> = Default::default();
    for _ in 0..1000 {
        backend.steps += 1;
        let response = registry.run_orchestrator(&proto::OrchestratorRequest {
            instance_id: "inst".into(),
            past_events: backend.past.clone(),
            new_events: new.clone(),
            properties: properties.clone(),
            ..Default::default()
        });
        backend.past.append(&mut new);
        for action in &response.actions {
            backend.actions.push(action.clone());
            let id = action.id;
            match action.orchestrator_action_type.as_ref() {
                Some(OrchestratorActionType::CompleteOrchestration(c)) => {
                    return (c.clone(), backend);
                }
                Some(OrchestratorActionType::ScheduleTask(t)) => {
                    backend.past.push(task_scheduled(id, &t.name));
                    backend.activity_calls.push((id, t.name.clone(), clock));
                    let n = attempts.entry(t.name.clone()).or_default();
                    *n += 1;
                    let outcome = match activity(&t.name, *n) {
                        Ok(result) => task_completed(id, &result),
                        Err((message, non_retriable)) if non_retriable => {
                            non_retriable_task_failed(id, &message)
                        }
                        Err((message, _)) => task_failed(id, "Boom", &message),
                    };
                    queue.push((clock, outcome));
                }
                Some(OrchestratorActionType::CreateTimer(t)) => {
                    let at = t.fire_at.map(|f| f.seconds).unwrap_or_default();
                    backend.past.push(timer_created(id, at));
                    queue.push((at, timer_fired(id, at)));
                }
                other => panic!("the test backend does not handle {other:?}"),
            }
        }
        // The earliest outcome next (the first queued among equals).
        let next = queue
            .iter()
            .enumerate()
            .min_by_key(|(i, (at, _))| (*at, *i))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("stuck: nothing to deliver after {response:?}"));
        let (at, outcome) = queue.remove(next);
        clock = clock.max(at);
        new = vec![orchestrator_started(clock), outcome];
    }
    panic!("the orchestration did not complete in 1000 steps")
}

/// Request properties with the maximum timer interval set.
pub fn max_timer_interval(
    seconds: f64,
) -> std::collections::HashMap<String, proto::prost_types::Value> {
    [(
        durabletask_sdk::orchestration::MAXIMUM_TIMER_INTERVAL_PROPERTY.to_owned(),
        proto::prost_types::Value {
            kind: Some(proto::prost_types::value::Kind::NumberValue(seconds)),
        },
    )]
    .into_iter()
    .collect()
}

/// Like [`drive`], for an orchestration that starts children: each child is driven to its
/// end (recursively) as soon as it is created, and its outcome delivered to the parent at
/// the clock it ended at. Returns the parent's completion, the end clock, and how many
/// times each orchestrator started an execution.
pub fn drive_tree(
    registry: &durabletask_sdk::Registry,
    instance_id: &str,
    name: &str,
    input: Option<&str>,
    start_clock: i64,
    activity: &mut dyn FnMut(&str) -> Result<String, String>,
    executions: &mut std::collections::BTreeMap<String, usize>,
) -> (proto::CompleteOrchestrationAction, i64) {
    *executions.entry(name.to_owned()).or_default() += 1;
    let mut past: Vec<proto::HistoryEvent> = Vec::new();
    let mut clock = start_clock;
    let mut new = vec![orchestrator_started(clock), execution_started(name, input)];
    let mut queue: Vec<(i64, proto::HistoryEvent)> = Vec::new();
    for _ in 0..1000 {
        let response = registry.run_orchestrator(&proto::OrchestratorRequest {
            instance_id: instance_id.into(),
            past_events: past.clone(),
            new_events: new.clone(),
            ..Default::default()
        });
        past.append(&mut new);
        for action in &response.actions {
            let id = action.id;
            match action.orchestrator_action_type.as_ref() {
                Some(OrchestratorActionType::CompleteOrchestration(c)) => {
                    return (c.clone(), clock);
                }
                Some(OrchestratorActionType::ScheduleTask(t)) => {
                    past.push(task_scheduled(id, &t.name));
                    let outcome = match activity(&t.name) {
                        Ok(result) => task_completed(id, &result),
                        Err(message) => task_failed(id, "Boom", &message),
                    };
                    queue.push((clock, outcome));
                }
                Some(OrchestratorActionType::CreateTimer(t)) => {
                    let at = t.fire_at.map(|f| f.seconds).unwrap_or_default();
                    past.push(timer_created(id, at));
                    queue.push((at, timer_fired(id, at)));
                }
                Some(OrchestratorActionType::CreateSubOrchestration(c)) => {
                    past.push(sub_created(id, &c.name, &c.instance_id));
                    let (done, end) = drive_tree(
                        registry,
                        &c.instance_id,
                        &c.name,
                        c.input.as_deref(),
                        clock,
                        activity,
                        executions,
                    );
                    let outcome = match done.failure_details {
                        Some(f) => event(
                            -1,
                            EventType::SubOrchestrationInstanceFailed(
                                proto::SubOrchestrationInstanceFailedEvent {
                                    task_scheduled_id: id,
                                    failure_details: Some(f),
                                },
                            ),
                        ),
                        None => sub_completed(id, done.result.as_deref().unwrap_or("")),
                    };
                    queue.push((end, outcome));
                }
                other => panic!("the test backend does not handle {other:?}"),
            }
        }
        let next = queue
            .iter()
            .enumerate()
            .min_by_key(|(i, (at, _))| (*at, *i))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("stuck: nothing to deliver after {response:?}"));
        let (at, outcome) = queue.remove(next);
        clock = clock.max(at);
        new = vec![orchestrator_started(clock), outcome];
    }
    panic!("the orchestration did not complete in 1000 steps")
}
