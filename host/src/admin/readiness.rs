//! Whether the host is ready for work, and why not: what `/readyz` answers.
//!
//! Ready means work reaches plugin code: the work-item stream is open, at least one
//! plugin generation is in service, and the host is not draining. Each missing part is a
//! reason, so that the probe's body says what to fix.

use serde::Serialize;

use crate::worker::StreamState;

/// What `/readyz` answers (200 when `ready`, else 503), as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Why not, one sentence each; empty when ready.
    pub reasons: Vec<String>,
    /// The work-item stream: `connecting`, `open`, `down` or `draining`.
    pub stream: &'static str,
    pub generations_in_service: usize,
}

/// Judges readiness from the stream's state and the generations in service.
pub fn judge(stream: &StreamState, generations_in_service: usize) -> Readiness {
    let mut reasons = Vec::new();
    match stream {
        StreamState::Open { .. } => {}
        StreamState::Connecting => {
            reasons.push("the work-item stream to the backend is not open yet".to_owned());
        }
        StreamState::Down { reason, .. } => {
            reasons.push(format!(
                "the work-item stream to the backend is down: {reason}"
            ));
        }
        StreamState::Draining => {
            reasons.push(
                "the host is draining: it takes no new work and finishes what it has".to_owned(),
            );
        }
    }
    if generations_in_service == 0 {
        reasons
            .push("no plugin is in service: put a plugin library in the plugins folder".to_owned());
    }
    Readiness {
        ready: reasons.is_empty(),
        reasons,
        stream: stream.label(),
        generations_in_service,
    }
}

/// Readiness of a backend-only host (`durabletask-host serve`): it has no worker and no
/// plugin; it is ready when it serves calls (it runs the engine, or forwards to the host
/// of its cluster that does).
pub fn judge_backend(role: &durabletask_backend::Role) -> Readiness {
    let reasons = if role.serves() {
        Vec::new()
    } else {
        vec![
            "no host of the cluster runs the task hub's engine right now (a takeover is under way)"
                .to_owned(),
        ]
    };
    Readiness {
        ready: reasons.is_empty(),
        reasons,
        stream: "none",
        generations_in_service: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn open() -> StreamState {
        StreamState::Open {
            since: SystemTime::now(),
        }
    }

    #[test]
    fn an_open_stream_and_a_plugin_are_ready() {
        let readiness = judge(&open(), 1);
        assert!(readiness.ready);
        assert!(readiness.reasons.is_empty());
        assert_eq!(readiness.stream, "open");
    }

    #[test]
    fn each_missing_part_is_a_reason() {
        let down = StreamState::Down {
            reason: "Unavailable: connection refused".to_owned(),
            since: SystemTime::now(),
        };
        let readiness = judge(&down, 0);
        assert!(!readiness.ready);
        assert_eq!(readiness.reasons.len(), 2, "{readiness:?}");
        assert!(readiness.reasons[0].contains("connection refused"));
        assert!(readiness.reasons[1].contains("no plugin"));

        let draining = judge(&StreamState::Draining, 2);
        assert!(!draining.ready);
        assert!(draining.reasons[0].contains("draining"));
        assert_eq!(draining.stream, "draining");

        assert!(!judge(&StreamState::Connecting, 1).ready);
    }

    #[test]
    fn a_backend_only_host_is_ready_while_it_serves() {
        use durabletask_backend::Role;
        assert!(judge_backend(&Role::Leader).ready);
        assert!(
            judge_backend(&Role::Follower {
                leader: "http://10.0.0.1:4001".into()
            })
            .ready
        );
        let electing = judge_backend(&Role::Electing);
        assert!(!electing.ready);
        assert!(electing.reasons[0].contains("takeover"), "{electing:?}");
    }
}
