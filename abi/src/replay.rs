//! Replaying a recorded history to check that code would carry its orchestration on:
//! the request that replays it and the judgement of the answer, shared by the host
//! (`durabletask-host replay-check`, `[plugins] verify_replay`) and the SDK's test kit.
//!
//! The history is handed over as one step's past events, followed by one new
//! `orchestratorStarted` (a step needs a new event; this one only says a step begins, at
//! the time of the last recorded event). The replay engine runs the orchestrator through
//! the whole history and checks every call the code makes against the call the history
//! recorded under the same id, as it does on every step in production: a different
//! activity, sub-orchestration, timer, event or entity call is a `NonDeterminism`
//! failure naming both sides.
//!
//! What a replay proves: the code makes the same calls, in the same order, for this
//! history's inputs and results. Not: anything about paths the history did not take, nor
//! about what the code does after the last recorded event (new calls are new work, not a
//! mismatch). Inputs of calls are not compared (as in Microsoft's SDKs).

use durabletask_proto as proto;
use proto::history_event::EventType;
use proto::orchestrator_action::OrchestratorActionType;

use crate::error_types;

/// What replaying one history showed.
///
/// # Examples
///
/// ```
/// use durabletask_abi::replay::Verdict;
///
/// let verdict = Verdict::NonDeterministic("another call".into());
/// assert!(!verdict.is_deterministic());
/// assert_eq!(verdict.describe(), "non-deterministic: another call");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The code replays the history: it makes the calls the history recorded, and ends
    /// where the history ended (still running, or finished as recorded).
    Deterministic,
    /// The code makes another call than the history recorded: the first mismatch, as the
    /// replay engine explains it (errorType `NonDeterminism`).
    NonDeterministic(String),
    /// The code fails the orchestration where its history does not (a panic, an
    /// orchestrator that is not registered, an input that no longer fits).
    Fails {
        /// The failure's errorType.
        error_type: String,
        /// Its message.
        message: String,
    },
}

impl Verdict {
    /// Whether the history replayed deterministically: the code may carry it on.
    pub fn is_deterministic(&self) -> bool {
        matches!(self, Self::Deterministic)
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Self::Deterministic => "ok: replays deterministically".to_owned(),
            Self::NonDeterministic(message) => format!("non-deterministic: {message}"),
            Self::Fails {
                error_type,
                message,
            } => format!("fails on replay: {error_type}: {message}"),
        }
    }
}

/// The request that replays `history` (the events of one execution, oldest first) of
/// instance `instance_id`.
///
/// # Examples
///
/// ```
/// use durabletask_abi::replay::request;
///
/// let request = request("order-1", Vec::new());
/// assert_eq!(request.instance_id, "order-1");
/// assert_eq!(request.new_events.len(), 1);
/// ```
pub fn request(instance_id: &str, history: Vec<proto::HistoryEvent>) -> proto::OrchestratorRequest {
    let now = history.last().and_then(|event| event.timestamp);
    proto::OrchestratorRequest {
        instance_id: instance_id.to_owned(),
        past_events: history,
        new_events: vec![proto::HistoryEvent {
            event_id: -1,
            timestamp: now,
            event_type: Some(EventType::OrchestratorStarted(
                proto::OrchestratorStartedEvent::default(),
            )),
        }],
        ..Default::default()
    }
}

/// Judges the answer to [`request`] against the history it replayed.
///
/// # Examples
///
/// ```
/// use durabletask_abi::replay::{Verdict, judge};
/// use durabletask_proto as proto;
///
/// // An answer that schedules more work (or nothing) is no failure.
/// assert_eq!(judge(&[], &proto::OrchestratorResponse::default()), Verdict::Deterministic);
/// ```
pub fn judge(history: &[proto::HistoryEvent], response: &proto::OrchestratorResponse) -> Verdict {
    let failure =
        response
            .actions
            .iter()
            .find_map(|action| match &action.orchestrator_action_type {
                Some(OrchestratorActionType::CompleteOrchestration(complete))
                    if complete.orchestration_status
                        == proto::OrchestrationStatus::Failed as i32 =>
                {
                    Some(complete.failure_details.clone().unwrap_or_default())
                }
                _ => None,
            });
    let Some(failure) = failure else {
        return Verdict::Deterministic;
    };
    if failure.error_type == error_types::NON_DETERMINISM {
        return Verdict::NonDeterministic(failure.error_message);
    }
    // A replay of an orchestration that failed fails again, as recorded: no news.
    let failed_in_history = history.iter().any(|event| {
        matches!(
            &event.event_type,
            Some(EventType::ExecutionCompleted(completed))
                if completed.orchestration_status == proto::OrchestrationStatus::Failed as i32
        )
    });
    if failed_in_history {
        Verdict::Deterministic
    } else {
        Verdict::Fails {
            error_type: failure.error_type,
            message: failure.error_message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: EventType) -> proto::HistoryEvent {
        proto::HistoryEvent {
            event_id: -1,
            timestamp: Some(prost_types::Timestamp {
                seconds: 7,
                nanos: 0,
            }),
            event_type: Some(event_type),
        }
    }

    fn failed(error_type: &str) -> proto::OrchestratorResponse {
        proto::OrchestratorResponse {
            actions: vec![proto::OrchestratorAction {
                orchestrator_action_type: Some(OrchestratorActionType::CompleteOrchestration(
                    proto::CompleteOrchestrationAction {
                        orchestration_status: proto::OrchestrationStatus::Failed as i32,
                        failure_details: Some(proto::TaskFailureDetails {
                            error_type: error_type.to_owned(),
                            error_message: "why".to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_request_replays_the_whole_history_in_a_new_step() {
        let history = vec![event(EventType::OrchestratorStarted(Default::default()))];
        let request = request("order-1", history.clone());
        assert_eq!(request.past_events, history);
        assert_eq!(request.new_events.len(), 1);
        assert_eq!(request.new_events[0].timestamp, history[0].timestamp);
        assert!(matches!(
            request.new_events[0].event_type,
            Some(EventType::OrchestratorStarted(_))
        ));
    }

    #[test]
    fn a_mismatch_is_non_deterministic_and_a_new_failure_fails() {
        assert_eq!(
            judge(&[], &failed(error_types::NON_DETERMINISM)),
            Verdict::NonDeterministic("why".to_owned())
        );
        let fails = judge(&[], &failed("PluginPanic"));
        assert!(!fails.is_deterministic());
        assert_eq!(fails.describe(), "fails on replay: PluginPanic: why");
    }

    #[test]
    fn a_failure_the_history_recorded_is_no_news() {
        let history = vec![event(EventType::ExecutionCompleted(
            proto::ExecutionCompletedEvent {
                orchestration_status: proto::OrchestrationStatus::Failed as i32,
                ..Default::default()
            },
        ))];
        assert_eq!(judge(&history, &failed("Boom")), Verdict::Deterministic);
        // ... but a mismatch in it still is.
        assert!(!judge(&history, &failed(error_types::NON_DETERMINISM)).is_deterministic());
    }
}
