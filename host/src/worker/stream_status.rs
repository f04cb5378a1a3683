//! Where the worker's work-item stream stands, for readiness probes and the status page:
//! opening, open, down (and why), or draining. The session and the worker's loop set it;
//! anyone may watch it.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::telemetry;

/// The work-item stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamState {
    /// Not open yet: the worker is connecting.
    Connecting,
    /// Open: the backend can hand out work.
    Open { since: SystemTime },
    /// Ended or refused; the worker tries again. `reason` says what happened.
    Down { reason: String, since: SystemTime },
    /// The worker stopped taking work and finishes what it has.
    Draining,
}

impl StreamState {
    /// A short word for it (`connecting`, `open`, `down`, `draining`).
    pub fn label(&self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Open { .. } => "open",
            StreamState::Down { .. } => "down",
            StreamState::Draining => "draining",
        }
    }
}

/// The stream's state, shared: cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    state: Arc<watch::Sender<StreamState>>,
}

impl Default for StreamStatus {
    fn default() -> Self {
        Self {
            state: Arc::new(watch::Sender::new(StreamState::Connecting)),
        }
    }
}

impl StreamStatus {
    /// The state now.
    pub fn get(&self) -> StreamState {
        self.state.borrow().clone()
    }

    /// Follows changes.
    pub fn subscribe(&self) -> watch::Receiver<StreamState> {
        self.state.subscribe()
    }

    pub(crate) fn opened(&self) {
        metrics::gauge!(telemetry::STREAM_CONNECTED).set(1.0);
        self.state.send_replace(StreamState::Open {
            since: SystemTime::now(),
        });
    }

    pub(crate) fn down(&self, reason: &str) {
        metrics::gauge!(telemetry::STREAM_CONNECTED).set(0.0);
        if matches!(*self.state.borrow(), StreamState::Open { .. }) {
            metrics::counter!(telemetry::STREAM_RECONNECTS).increment(1);
        }
        self.state.send_replace(StreamState::Down {
            reason: reason.to_owned(),
            since: SystemTime::now(),
        });
    }

    pub(crate) fn draining(&self) {
        metrics::gauge!(telemetry::STREAM_CONNECTED).set(0.0);
        self.state.send_replace(StreamState::Draining);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_stream() {
        let status = StreamStatus::default();
        assert_eq!(status.get(), StreamState::Connecting);
        status.opened();
        assert_eq!(status.get().label(), "open");
        status.down("UNAVAILABLE: connection refused");
        match status.get() {
            StreamState::Down { reason, .. } => assert!(reason.contains("refused")),
            other => panic!("{other:?}"),
        }
        status.draining();
        assert_eq!(status.get(), StreamState::Draining);
    }
}
