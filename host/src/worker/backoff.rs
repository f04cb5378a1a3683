//! Reconnect delays: "full jitter" capped exponential backoff (protocol.md §1.8), with a
//! cap that depends on how the last attempt failed.
//!
//! `delay = uniform[0,1) × min(cap, base × 2^attempt)`, where `attempt` counts consecutive
//! failures including the current one. Full jitter spreads a fleet of workers that lost
//! the same backend instead of having them retry in lock step. Only a success (a Hello,
//! or a work-item stream that opens) resets the count.
//!
//! The base and the cap follow the [`Cause`] of the failure, because the cost of trying
//! again is not the same:
//!
//! - [`Cause::Unreachable`]: nothing answered (connection refused or reset, a timeout,
//!   `UNAVAILABLE`). The backend is down or restarting, and an attempt costs it nothing
//!   (the kernel's reset, or a proxy's `UNAVAILABLE`). Base 250 ms, cap 2 s: the first
//!   retries come fast for a blip, and however long the outage, the backend is tried
//!   again at least every 2 s (1 s on average), so a backend that comes back has its
//!   workers within about a second, not after a 30 s sleep.
//! - [`Cause::Refused`]: the backend is up and answered with an error (unauthenticated,
//!   resource exhausted, a refused stream, a stream closed at once). Trying again makes it
//!   do work, so back off as the reference worker does: base 1 s, cap 30 s.

use std::time::Duration;

/// The largest exponent used; beyond it the cap applies anyway, and it keeps `2^n` finite.
const MAX_EXPONENT: u32 = 30;

/// How the last attempt failed, which sets how soon to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing answered: the backend is down, restarting or out of reach.
    Unreachable,
    /// The backend answered, with an error.
    Refused,
}

/// The base and the cap of one cause's delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub base: Duration,
    pub cap: Duration,
}

impl Schedule {
    /// For a backend that does not answer: probed at least every 2 s.
    pub const UNREACHABLE: Schedule = Schedule {
        base: Duration::from_millis(250),
        cap: Duration::from_secs(2),
    };
    /// For a backend that answers with errors: the reference worker's 1 s and 30 s.
    pub const REFUSED: Schedule = Schedule {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(30),
    };

    /// The upper bound of the delay after `attempt` failures: `min(cap, base × 2^attempt)`.
    pub fn ceiling(self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(MAX_EXPONENT);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay after `attempt` failures for a `unit` drawn from [0, 1).
    pub fn jittered(self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Consecutive failures, and the delay before the next attempt.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// Consecutive failures counted so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Counts one more failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self, cause: Cause) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        schedule(cause).jittered(self.attempt, rand::random::<f64>())
    }
}

/// The schedule for `cause`.
pub fn schedule(cause: Cause) -> Schedule {
    match cause {
        Cause::Unreachable => Schedule::UNREACHABLE,
        Cause::Refused => Schedule::REFUSED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(durations: impl IntoIterator<Item = Duration>) -> Vec<u128> {
        durations.into_iter().map(|d| d.as_millis()).collect()
    }

    #[test]
    fn a_refusing_backend_is_backed_off_up_to_30_s() {
        let ceilings = (1..=7).map(|attempt| Schedule::REFUSED.ceiling(attempt));
        assert_eq!(
            millis(ceilings),
            [2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(Schedule::REFUSED.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn an_unreachable_backend_is_tried_again_at_least_every_2_s_however_long_it_is_gone() {
        let ceilings = (1..=5).map(|attempt| Schedule::UNREACHABLE.ceiling(attempt));
        assert_eq!(millis(ceilings), [500, 1000, 2000, 2000, 2000]);
        // An outage of hours: still at most 2 s between attempts.
        let mut backoff = Backoff::default();
        for _ in 0..10_000 {
            assert!(backoff.next_delay(Cause::Unreachable) < Duration::from_secs(2));
        }
    }

    #[test]
    fn jitter_spans_zero_to_the_ceiling() {
        let schedule = Schedule::REFUSED;
        assert_eq!(schedule.jittered(3, 0.0), Duration::ZERO);
        assert_eq!(schedule.jittered(3, 0.5), Duration::from_secs(4));
        assert!(schedule.jittered(3, 0.999_999) < Duration::from_secs(8));
        // Out-of-range draws are clamped, never past the ceiling.
        assert_eq!(schedule.jittered(3, 7.0), Duration::from_secs(8));
        assert_eq!(schedule.jittered(3, -1.0), Duration::ZERO);
    }

    #[test]
    fn every_drawn_delay_is_within_its_attempts_bounds() {
        let mut backoff = Backoff::default();
        for attempt in 1..=40u32 {
            let cause = if attempt % 3 == 0 {
                Cause::Unreachable
            } else {
                Cause::Refused
            };
            let delay = backoff.next_delay(cause);
            assert_eq!(backoff.attempt(), attempt);
            assert!(
                delay < schedule(cause).ceiling(attempt),
                "attempt {attempt} ({cause:?}): {delay:?}"
            );
        }
    }

    #[test]
    fn the_count_is_shared_so_a_backend_that_starts_refusing_gets_the_long_delays() {
        let mut backoff = Backoff::default();
        for _ in 0..6 {
            backoff.next_delay(Cause::Unreachable);
        }
        // Back, but refusing: the seventh failure in a row may wait up to the 30 s cap.
        backoff.next_delay(Cause::Refused);
        assert_eq!(
            Schedule::REFUSED.ceiling(backoff.attempt()),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::default();
        for _ in 0..10 {
            backoff.next_delay(Cause::Refused);
        }
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert!(backoff.next_delay(Cause::Refused) < Duration::from_secs(2));
        assert!(backoff.next_delay(Cause::Unreachable) < Duration::from_secs(1));
    }
}
