//! [`RetryPolicy`]: how often, and how long apart, a failed activity or sub-orchestration
//! is tried again (spec §4.8), and the delay rule the engine applies on each failure.
//!
//! Two project decisions shape the rule: time is the orchestration's clock (so replays
//! decide the same way), and a retry whose delay would end past the retry timeout is not
//! attempted at all (deterministic, and it gives the reference's attempt counts).

use std::fmt;
use std::time::{Duration, SystemTime};

/// When and how often a failed activity or sub-orchestration is tried again.
///
/// The first attempt runs at once. After attempt `n` fails, the next one starts after
/// `first_retry_interval × backoff_coefficient^(n-1)`, capped by `max_retry_interval`, on a
/// durable timer. Retries stop after `max_number_of_attempts` attempts in total, when the
/// failure is marked non-retriable ([`Error::non_retriable`](crate::Error::non_retriable)),
/// or when the next attempt would start later than `retry_timeout` after the first call.
/// The task then fails with the last attempt's failure.
///
/// Times come from the orchestration clock
/// ([`current_utc_datetime`](super::OrchestrationContext::current_utc_datetime)), so a
/// replay always makes the same decision.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::RetryPolicy;
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn reserve(ctx: OrchestrationContext, sku: String) -> Result<String, Error> {
///     // Up to 5 attempts, 1 s, 2 s, 4 s, 8 s apart, all within a minute.
///     let policy = RetryPolicy::new(Duration::from_secs(1), 5)?
///         .with_backoff_coefficient(2.0)?
///         .with_max_retry_interval(Duration::from_secs(10))
///         .with_retry_timeout(Duration::from_secs(60));
///     Ok(ctx.call_activity_with_retry("reserve_stock", sku, &policy).await?)
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("reserve", reserve);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    first_retry_interval: Duration,
    max_number_of_attempts: u32,
    backoff_coefficient: f64,
    max_retry_interval: Option<Duration>,
    retry_timeout: Option<Duration>,
}

/// Why a [`RetryPolicy`] was refused. It converts into [`Error`](crate::Error) with `?`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::RetryPolicy;
///
/// let refused = RetryPolicy::new(Duration::from_secs(1), 0).unwrap_err();
/// assert!(refused.to_string().contains("max_number_of_attempts"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRetryPolicy(String);

impl fmt::Display for InvalidRetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid retry policy: {}", self.0)
    }
}

impl std::error::Error for InvalidRetryPolicy {}

impl RetryPolicy {
    /// A policy of at most `max_number_of_attempts` attempts in total (the first call
    /// included; at least 1), `first_retry_interval` apart, with no backoff, no cap and no
    /// timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(Duration::from_secs(5), 3)?;
    /// assert_eq!(policy.max_number_of_attempts(), 3);
    /// assert_eq!(policy.backoff_coefficient(), 1.0);
    /// # Ok::<(), durabletask_sdk::orchestration::InvalidRetryPolicy>(())
    /// ```
    pub fn new(
        first_retry_interval: Duration,
        max_number_of_attempts: u32,
    ) -> Result<Self, InvalidRetryPolicy> {
        if max_number_of_attempts < 1 {
            return Err(InvalidRetryPolicy(
                "max_number_of_attempts must be at least 1".to_owned(),
            ));
        }
        Ok(Self {
            first_retry_interval,
            max_number_of_attempts,
            backoff_coefficient: 1.0,
            max_retry_interval: None,
            retry_timeout: None,
        })
    }

    /// Multiplies each delay by `coefficient` (at least 1, finite) over the previous one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(Duration::from_secs(1), 4)?;
    /// assert!(policy.clone().with_backoff_coefficient(0.5).is_err());
    /// assert_eq!(policy.with_backoff_coefficient(2.0)?.backoff_coefficient(), 2.0);
    /// # Ok::<(), durabletask_sdk::orchestration::InvalidRetryPolicy>(())
    /// ```
    pub fn with_backoff_coefficient(
        mut self,
        coefficient: f64,
    ) -> Result<Self, InvalidRetryPolicy> {
        // NaN fails `is_finite`.
        if !coefficient.is_finite() || coefficient < 1.0 {
            return Err(InvalidRetryPolicy(format!(
                "backoff_coefficient must be a finite number of at least 1, not {coefficient}"
            )));
        }
        self.backoff_coefficient = coefficient;
        Ok(self)
    }

    /// Caps every delay at `max`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(Duration::from_secs(1), 10)?
    ///     .with_max_retry_interval(Duration::from_secs(30));
    /// assert_eq!(policy.max_retry_interval(), Some(Duration::from_secs(30)));
    /// # Ok::<(), durabletask_sdk::orchestration::InvalidRetryPolicy>(())
    /// ```
    pub fn with_max_retry_interval(mut self, max: Duration) -> Self {
        self.max_retry_interval = Some(max);
        self
    }

    /// No attempt starts later than `timeout` after the first call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(Duration::from_secs(1), 10)?
    ///     .with_retry_timeout(Duration::from_secs(60));
    /// assert_eq!(policy.retry_timeout(), Some(Duration::from_secs(60)));
    /// # Ok::<(), durabletask_sdk::orchestration::InvalidRetryPolicy>(())
    /// ```
    pub fn with_retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = Some(timeout);
        self
    }

    /// The delay before the second attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// /// Polls a job until it is done, as often and as long as the policy allows.
    /// async fn await_job(ctx: OrchestrationContext, job: String) -> Result<u32, Error> {
    ///     let policy = RetryPolicy::new(Duration::from_secs(30), 10)?;
    ///     for poll in 1..=policy.max_number_of_attempts() {
    ///         if ctx.call_activity::<_, bool>("job_done", &job).await? {
    ///             return Ok(poll);
    ///         }
    ///         ctx.create_timer_after(policy.first_retry_interval()).await;
    ///     }
    ///     Err(Error::new("JobTimeout", format!("{job} is still running")))
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("await_job", await_job);
    /// let mut runtime = TestRuntime::new(registry);
    /// // The job is done at the third poll.
    /// let polls = Cell::new(0);
    /// runtime.mock_activity("job_done", move |_job: String| {
    ///     polls.set(polls.get() + 1);
    ///     Ok(polls.get() == 3)
    /// });
    /// let id = runtime.start("await_job", "nightly-export")?;
    /// runtime.advance(Duration::from_secs(60))?;
    /// assert_eq!(runtime.output::<u32>(&id)?, 3);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn first_retry_interval(&self) -> Duration {
        self.first_retry_interval
    }

    /// The most attempts in total, the first included.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{InvalidRetryPolicy, RetryPolicy};
    ///
    /// /// The plugin's one policy for calls to the payment service.
    /// fn payment_retries() -> Result<RetryPolicy, InvalidRetryPolicy> {
    ///     RetryPolicy::new(Duration::from_secs(1), 5)
    /// }
    ///
    /// // A unit test pins what operations agreed on: the first call and four retries.
    /// assert_eq!(payment_retries()?.max_number_of_attempts(), 5);
    /// # Ok::<(), InvalidRetryPolicy>(())
    /// ```
    pub fn max_number_of_attempts(&self) -> u32 {
        self.max_number_of_attempts
    }

    /// The factor between consecutive delays (1 = constant delays).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(Duration::from_secs(1), 4)?.with_backoff_coefficient(2.0)?;
    /// // The delays before attempts 2, 3 and 4, e.g. for a status page.
    /// let delays: Vec<Duration> = (0..3)
    ///     .map(|n| policy.first_retry_interval().mul_f64(policy.backoff_coefficient().powi(n)))
    ///     .collect();
    /// assert_eq!(delays, [1, 2, 4].map(Duration::from_secs));
    /// # Ok::<(), durabletask_sdk::orchestration::InvalidRetryPolicy>(())
    /// ```
    pub fn backoff_coefficient(&self) -> f64 {
        self.backoff_coefficient
    }

    /// The cap on each delay, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    ///
    /// let policy = RetryPolicy::new(Duration::from_secs(10), 6)?
    ///     .with_backoff_coefficient(3.0)?
    ///     .with_max_retry_interval(Duration::from_secs(60));
    /// // The longest wait between two attempts: 10 s × 3⁴ would be 810 s, the cap says 60 s.
    /// let uncapped = policy.first_retry_interval().mul_f64(policy.backoff_coefficient().powi(4));
    /// let longest = policy.max_retry_interval().map_or(uncapped, |cap| uncapped.min(cap));
    /// assert_eq!(longest, Duration::from_secs(60));
    /// # Ok::<(), durabletask_sdk::orchestration::InvalidRetryPolicy>(())
    /// ```
    pub fn max_retry_interval(&self) -> Option<Duration> {
        self.max_retry_interval
    }

    /// The overall budget from the first call, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn reserve(ctx: OrchestrationContext, sku: String) -> Result<String, Error> {
    ///     let policy = RetryPolicy::new(Duration::from_secs(1), 10)?
    ///         .with_retry_timeout(Duration::from_secs(120));
    ///     if let Some(budget) = policy.retry_timeout() {
    ///         ctx.set_custom_status(format!("reserving {sku} for up to {} s", budget.as_secs()));
    ///     }
    ///     Ok(ctx.call_activity_with_retry("reserve_stock", &sku, &policy).await?)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("reserve", reserve);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.mock_activity("reserve_stock", |sku: String| Ok(format!("{sku} reserved")));
    /// let id = runtime.start("reserve", "pen")?;
    /// assert_eq!(
    ///     runtime.custom_status::<String>(&id)?.as_deref(),
    ///     Some("reserving pen for up to 120 s")
    /// );
    /// assert_eq!(runtime.output::<String>(&id)?, "pen reserved");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn retry_timeout(&self) -> Option<Duration> {
        self.retry_timeout
    }

    /// The delay before the next attempt after `attempts` attempts have failed, the first
    /// of them called at `first_call`; `None` when there is no next attempt.
    pub(crate) fn next_delay(
        &self,
        attempts: u32,
        first_call: SystemTime,
        now: SystemTime,
    ) -> Option<Duration> {
        if attempts >= self.max_number_of_attempts {
            return None;
        }
        let exponent = i32::try_from(attempts.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs =
            self.backoff_coefficient.powi(exponent) * self.first_retry_interval.as_secs_f64();
        // Overflow (a huge coefficient) saturates to the longest delay a timer can take.
        let mut delay = Duration::try_from_secs_f64(secs).unwrap_or(MAX_DELAY);
        if let Some(max) = self.max_retry_interval {
            delay = delay.min(max);
        }
        // A deadline past the end of time is no deadline.
        if let Some(deadline) = self.retry_timeout.and_then(|t| first_call.checked_add(t)) {
            // Stop when the budget is spent, or when waiting would spend it.
            if now >= deadline || now.checked_add(delay).is_none_or(|at| at > deadline) {
                return None;
            }
        }
        Some(delay)
    }
}

/// About 136 years: far beyond any real timer, small enough to add to any clock value.
const MAX_DELAY: Duration = Duration::from_secs(u32::MAX as u64);

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn delays_follow_the_reference_sequence() {
        // first 1 s, coefficient 2, max 10 s, 6 attempts: 1, 2, 4, 8, 10, then none.
        let policy = RetryPolicy::new(secs(1), 6)
            .and_then(|p| p.with_backoff_coefficient(2.0))
            .map(|p| p.with_max_retry_interval(secs(10)))
            .ok();
        let policy = policy.as_ref();
        let start = SystemTime::UNIX_EPOCH;
        let delays: Vec<_> = (1..=6)
            .map(|n| policy.and_then(|p| p.next_delay(n, start, start)))
            .collect();
        assert_eq!(
            delays,
            [
                Some(secs(1)),
                Some(secs(2)),
                Some(secs(4)),
                Some(secs(8)),
                Some(secs(10)),
                None
            ]
        );
    }

    #[test]
    fn stops_when_the_next_delay_would_pass_the_timeout() {
        // The conformance test's policy: 1 s, 5 attempts, coefficient 2, timeout 14 s.
        let policy = RetryPolicy::new(secs(1), 5)
            .and_then(|p| p.with_backoff_coefficient(2.0))
            .map(|p| p.with_retry_timeout(secs(14)))
            .ok();
        let policy = policy.as_ref();
        let start = SystemTime::UNIX_EPOCH;
        let at = |s| start + secs(s);
        // Failures at t=0, 1, 3, 7: delays 1, 2, 4, then 8 would end at 15 > 14.
        assert_eq!(
            policy.and_then(|p| p.next_delay(1, start, at(0))),
            Some(secs(1))
        );
        assert_eq!(
            policy.and_then(|p| p.next_delay(2, start, at(1))),
            Some(secs(2))
        );
        assert_eq!(
            policy.and_then(|p| p.next_delay(3, start, at(3))),
            Some(secs(4))
        );
        assert_eq!(policy.and_then(|p| p.next_delay(4, start, at(7))), None);
        assert_eq!(policy.and_then(|p| p.next_delay(1, start, at(14))), None);
    }

    #[test]
    fn validation() {
        assert!(RetryPolicy::new(secs(1), 0).is_err());
        for bad in [0.0, 0.99, f64::NAN, f64::INFINITY, -1.0] {
            let policy = RetryPolicy::new(secs(1), 1).and_then(|p| p.with_backoff_coefficient(bad));
            assert!(policy.is_err(), "{bad}");
        }
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let policy = RetryPolicy::new(Duration::MAX, u32::MAX)
            .and_then(|p| p.with_backoff_coefficient(f64::MAX))
            .map(|p| p.with_retry_timeout(Duration::MAX))
            .ok();
        let start = SystemTime::UNIX_EPOCH;
        let _ = policy.map(|p| p.next_delay(u32::MAX - 1, start, start));
    }
}
