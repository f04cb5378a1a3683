//! Saying in the log that the backend is gone, and that it is back, without a line per
//! attempt.
//!
//! An outage runs from the first failed attempt to the next success (a Hello, or a
//! work-item stream that opens). Its first failure is one WARN line; while it lasts, a WARN
//! summary every [`SUMMARY_INTERVAL`] says for how long and how many attempts, with the
//! latest reason; its end is one INFO line. Each attempt in between is logged at DEBUG.
//! How soon the worker tries again is [`super::backoff`]'s business.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff::Cause;
use super::session::Failure;

/// How often a continuing outage is summarised at WARN.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// The worker's view of one outage.
#[derive(Debug, Default)]
pub struct Outage {
    started: Option<Instant>,
    attempts: u32,
    last_summary: Option<Instant>,
}

impl Outage {
    /// An attempt failed (or the connection was lost); the next one is in `delay`.
    pub fn failed(&mut self, failure: &Failure, delay: Duration) {
        self.failed_at(Instant::now(), failure, delay);
    }

    fn failed_at(&mut self, now: Instant, failure: &Failure, delay: Duration) {
        let reason = failure.reason.as_str();
        self.attempts += 1;
        let Some(started) = self.started else {
            self.started = Some(now);
            self.last_summary = Some(now);
            match failure.cause {
                Cause::Unreachable => {
                    tracing::warn!(reason, retry_in = ?delay, "cannot reach the backend; reconnecting");
                }
                Cause::Refused => {
                    tracing::warn!(reason, retry_in = ?delay, "the backend refused the worker; retrying");
                }
            }
            return;
        };
        tracing::debug!(attempt = self.attempts, delay = ?delay, reason, "reconnecting");
        if self
            .last_summary
            .is_none_or(|last| now.duration_since(last) >= SUMMARY_INTERVAL)
        {
            self.last_summary = Some(now);
            let state = match failure.cause {
                Cause::Unreachable => "still unreachable",
                Cause::Refused => "still refusing the worker",
            };
            tracing::warn!(
                "the backend is {state} after {:.0?} ({} attempts): {reason}",
                now.duration_since(started),
                self.attempts
            );
        }
    }

    /// The backend serves us again: ends the outage, if there was one.
    pub fn ended(&mut self) {
        if let Some(started) = self.started.take() {
            tracing::info!(
                "reconnected to the backend after {:.1?} ({} attempts)",
                started.elapsed(),
                self.attempts
            );
        }
        self.attempts = 0;
        self.last_summary = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_counts_attempts_and_summarises_every_30_s() {
        let mut outage = Outage::default();
        let failure = Failure::unreachable("connection refused");
        let start = Instant::now();
        outage.failed_at(start, &failure, Duration::from_millis(100));
        assert!(outage.started.is_some());
        assert_eq!(outage.last_summary, Some(start));
        outage.failed_at(start + Duration::from_secs(10), &failure, Duration::ZERO);
        assert_eq!(outage.last_summary, Some(start), "no summary before 30 s");
        let later = start + Duration::from_secs(31);
        outage.failed_at(later, &failure, Duration::ZERO);
        assert_eq!(outage.last_summary, Some(later));
        assert_eq!(outage.attempts, 3);

        outage.ended();
        assert!(outage.started.is_none());
        assert_eq!(outage.attempts, 0);
        // Ending twice (a Hello, then the stream opening) is harmless.
        outage.ended();
        assert!(outage.started.is_none());
    }
}
