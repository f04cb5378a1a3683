//! Reconnect delays: "full jitter" exponential backoff (protocol.md §1.8).
//!
//! `delay = uniform[0,1) × min(cap, base × 2^attempt)`, where `attempt` counts consecutive
//! failures including the current one, so the first retry waits in [0, 2 s). Full jitter
//! spreads a fleet of workers that lost the same backend instead of having them retry in
//! lock step. Only a successful Hello resets the count.

use std::time::Duration;

/// The largest exponent used; beyond it the cap applies anyway, and it keeps `2^n` finite.
const MAX_EXPONENT: u32 = 30;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// Base 1 s and cap 30 s, the reference worker's defaults.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Consecutive failures counted so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures (after a successful Hello).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Counts one more failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        jittered_delay(self.base, self.cap, self.attempt, rand::random::<f64>())
    }
}

/// The upper bound of the delay after `attempt` failures: `min(cap, base × 2^attempt)`.
pub fn delay_ceiling(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.min(MAX_EXPONENT);
    base.saturating_mul(factor).min(cap)
}

/// The delay for a given `unit` drawn from [0, 1).
pub fn jittered_delay(base: Duration, cap: Duration, attempt: u32, unit: f64) -> Duration {
    delay_ceiling(base, cap, attempt).mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const CAP: Duration = Duration::from_secs(30);

    #[test]
    fn ceilings_double_then_cap() {
        let ceilings: Vec<u64> = (1..=7)
            .map(|attempt| delay_ceiling(BASE, CAP, attempt).as_secs())
            .collect();
        assert_eq!(ceilings, [2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(delay_ceiling(BASE, CAP, u32::MAX), CAP);
    }

    #[test]
    fn jitter_spans_zero_to_the_ceiling() {
        assert_eq!(jittered_delay(BASE, CAP, 3, 0.0), Duration::ZERO);
        assert_eq!(jittered_delay(BASE, CAP, 3, 0.5), Duration::from_secs(4));
        assert!(jittered_delay(BASE, CAP, 3, 0.999_999) < Duration::from_secs(8));
    }

    #[test]
    fn every_drawn_delay_is_within_its_attempts_bounds() {
        let mut backoff = Backoff::default();
        for attempt in 1..=40u32 {
            let delay = backoff.next_delay();
            assert_eq!(backoff.attempt(), attempt);
            assert!(
                delay < delay_ceiling(BASE, CAP, attempt),
                "attempt {attempt}: {delay:?}"
            );
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::default();
        for _ in 0..10 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert!(backoff.next_delay() < Duration::from_secs(2));
    }
}
