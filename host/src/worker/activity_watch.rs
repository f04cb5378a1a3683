//! Watching one running activity: while it runs long it is reported in the log
//! (`[worker] long_activity_threshold`), and past its timeout (`[worker]
//! activity_timeout`) the host stops waiting for it and fails it with
//! [`ACTIVITY_TIMEOUT`].
//!
//! The host cannot stop plugin code: an activity that timed out may still be running in
//! its plugin, and whatever it returns later is ignored. What the timeout gives back is
//! the activity's permits, and the orchestration an answer it can act on (the failure is
//! retriable, so retry policies apply).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use durabletask_abi::error_types::ACTIVITY_TIMEOUT;
use durabletask_abi::failure;
use durabletask_abi::properties::ACTIVITY_TIMEOUT_TAG;
use durabletask_proto::ActivityResponse;
use tokio::time::Instant;

/// What is known of a running activity, for its failure and the log.
#[derive(Debug, Clone, Copy)]
pub struct Running<'a> {
    pub name: &'a str,
    pub instance_id: &'a str,
    pub task_id: i32,
    /// `plugin-name version` of the generation running it, if any.
    pub plugin: Option<&'a str>,
}

/// How long an activity may run, and when it is reported as long-running.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// `None`: no timeout.
    pub timeout: Option<Duration>,
    /// Reported once it has run this long, then again each time its running time has
    /// doubled; `None`: never.
    pub report_after: Option<Duration>,
}

impl Limits {
    /// These limits for an activity with `tags`: its own timeout
    /// ([`ACTIVITY_TIMEOUT_TAG`], set by the SDK's `ActivityOptions::timeout`; `0`: none)
    /// wins over the host's, which a tag that does not read as seconds leaves in place.
    pub fn for_activity(self, tags: &HashMap<String, String>, running: Running<'_>) -> Self {
        let Some(value) = tags.get(ACTIVITY_TIMEOUT_TAG) else {
            return self;
        };
        let seconds = value.trim().parse::<f64>().ok();
        let timeout = match seconds {
            Some(0.0) => None,
            Some(seconds) if seconds > 0.0 => match Duration::try_from_secs_f64(seconds) {
                Ok(timeout) => Some(timeout),
                Err(_) => return self.ignoring(value, running),
            },
            _ => return self.ignoring(value, running),
        };
        Self { timeout, ..self }
    }

    fn ignoring(self, value: &str, running: Running<'_>) -> Self {
        tracing::warn!(
            name = %running.name,
            instance_id = running.instance_id,
            task_id = running.task_id,
            "ignoring the activity's tag {ACTIVITY_TIMEOUT_TAG} = {value:?}: not a number of seconds (0 or more); the host's activity_timeout applies"
        );
        self
    }
}

/// A WARN line about a running activity: its plugin, name, instance, task id and running
/// time, then the message.
macro_rules! warn_about {
    ($running:expr, $elapsed:expr, $($message:tt)+) => {
        tracing::warn!(
            plugin = %$running.plugin.unwrap_or("none"),
            name = %$running.name,
            instance_id = $running.instance_id,
            task_id = $running.task_id,
            elapsed_ms = $elapsed.as_millis(),
            $($message)+
        )
    };
}

/// Runs `activity` to its end or to its timeout, whichever comes first, reporting it
/// while it runs long; a timed-out activity's future is dropped and its failure returned
/// instead.
pub async fn watch(
    activity: impl Future<Output = ActivityResponse>,
    running: Running<'_>,
    limits: Limits,
) -> ActivityResponse {
    if limits.timeout.is_none() && limits.report_after.is_none() {
        return activity.await;
    }
    let started = Instant::now();
    // Checked: a timeout too far ahead to be a time (a tag of "1e19" seconds) is no
    // deadline at all, not a panic.
    let deadline = limits
        .timeout
        .and_then(|timeout| started.checked_add(timeout));
    let mut next_report = limits.report_after;
    tokio::pin!(activity);
    loop {
        let report_at = next_report.and_then(|after| started.checked_add(after));
        let wake = match (deadline, report_at) {
            (Some(deadline), Some(report_at)) => deadline.min(report_at),
            (deadline, report_at) => match deadline.or(report_at) {
                Some(wake) => wake,
                None => return activity.await,
            },
        };
        tokio::select! {
            biased;
            response = &mut activity => return response,
            () = tokio::time::sleep_until(wake) => {}
        }
        let elapsed = started.elapsed();
        if let Some(timeout) = limits.timeout
            && elapsed >= timeout
        {
            warn_about!(
                running,
                elapsed,
                "activity timed out: failing it with {ACTIVITY_TIMEOUT} and releasing its permit; the plugin's late result will be ignored"
            );
            return timed_out(running, timeout);
        }
        if let Some(after) = next_report
            && elapsed >= after
        {
            // Growing intervals: a hung activity is reported a few times, not forever
            // at the same rate.
            let again = after.saturating_mul(2);
            warn_about!(
                running,
                elapsed,
                "activity still running after {elapsed:.1?}; it holds an activity permit of its plugin until it ends{} (next report after {again:?})",
                limits
                    .timeout
                    .map(|timeout| format!(" or times out at {timeout:?}"))
                    .unwrap_or_default(),
            );
            next_report = Some(again);
        }
    }
}

/// The failure of an activity that did not complete within `timeout`: retriable, since
/// a retry policy may well succeed where a hung call did not.
fn timed_out(running: Running<'_>, timeout: Duration) -> ActivityResponse {
    let message = format!(
        "activity '{}' (instance '{}', task {}) did not complete within its timeout of {timeout:?}",
        running.name, running.instance_id, running.task_id
    );
    failure::activity(
        running.instance_id,
        running.task_id,
        failure::details(ACTIVITY_TIMEOUT, message),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const RUNNING: Running<'static> = Running {
        name: "charge",
        instance_id: "order-7",
        task_id: 3,
        plugin: Some("billing 1.0.0"),
    };

    fn succeeded() -> ActivityResponse {
        ActivityResponse {
            instance_id: "order-7".to_owned(),
            task_id: 3,
            result: Some("\"ok\"".to_owned()),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_activity_that_finishes_in_time_keeps_its_result() {
        let activity = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            succeeded()
        };
        let response = watch(activity, RUNNING, timeout(Duration::from_secs(2))).await;
        assert_eq!(response, succeeded());
    }

    #[tokio::test(start_paused = true)]
    async fn an_activity_past_its_timeout_fails_with_activity_timeout() {
        let started = Instant::now();
        let response = watch(
            std::future::pending(),
            RUNNING,
            timeout(Duration::from_millis(1500)),
        )
        .await;
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        assert_eq!(
            (response.instance_id.as_str(), response.task_id),
            ("order-7", 3)
        );
        let failure = response.failure_details.unwrap();
        assert_eq!(failure.error_type, "ActivityTimeout");
        assert_eq!(
            failure.error_message,
            "activity 'charge' (instance 'order-7', task 3) did not complete within its timeout of 1.5s"
        );
        assert!(!failure.is_non_retriable);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timeout_an_activity_may_take_as_long_as_it_takes() {
        let activity = async {
            tokio::time::sleep(Duration::from_secs(86_400)).await;
            succeeded()
        };
        assert_eq!(
            watch(activity, RUNNING, Limits::default()).await,
            succeeded()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_too_far_ahead_to_be_a_time_is_no_deadline_not_a_panic() {
        let mut tags = HashMap::new();
        tags.insert(ACTIVITY_TIMEOUT_TAG.to_owned(), "1e19".to_owned());
        let limits = timeout(Duration::from_secs(5)).for_activity(&tags, RUNNING);
        assert!(
            limits
                .timeout
                .is_some_and(|t| t > Duration::from_secs(1 << 62))
        );
        let activity = async {
            tokio::time::sleep(Duration::from_secs(86_400)).await;
            succeeded()
        };
        assert_eq!(watch(activity, RUNNING, limits).await, succeeded());
        let forever = Limits {
            timeout: Some(Duration::MAX),
            ..Limits::default()
        };
        let activity = async { succeeded() };
        assert_eq!(watch(activity, RUNNING, forever).await, succeeded());
    }

    /// Counts the long-running reports the watched activity makes.
    #[tokio::test(start_paused = true)]
    async fn a_long_activity_is_reported_at_growing_intervals() {
        let reports = Arc::new(AtomicUsize::new(0));
        let subscriber = CountWarnings(Arc::clone(&reports));
        let _guard = tracing::subscriber::set_default(subscriber);
        let activity = async {
            tokio::time::sleep(Duration::from_secs(9)).await;
            succeeded()
        };
        let limits = Limits {
            timeout: None,
            report_after: Some(Duration::from_secs(1)),
        };
        assert_eq!(watch(activity, RUNNING, limits).await, succeeded());
        // At 1 s, 2 s, 4 s and 8 s.
        assert_eq!(reports.load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_activity_is_reported_until_it_times_out() {
        let warnings = Arc::new(AtomicUsize::new(0));
        let _guard = tracing::subscriber::set_default(CountWarnings(Arc::clone(&warnings)));
        let limits = Limits {
            timeout: Some(Duration::from_secs(3)),
            report_after: Some(Duration::from_secs(1)),
        };
        let response = watch(std::future::pending(), RUNNING, limits).await;
        assert!(response.failure_details.is_some());
        // Reports at 1 s and 2 s, then the timeout.
        assert_eq!(warnings.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn an_activitys_own_timeout_wins_over_the_hosts() {
        let host = Limits {
            timeout: Some(Duration::from_secs(60)),
            report_after: Some(Duration::from_secs(10)),
        };
        let with_tag = |value: &str| {
            let tags = HashMap::from([(ACTIVITY_TIMEOUT_TAG.to_owned(), value.to_owned())]);
            host.for_activity(&tags, RUNNING)
        };
        let timeout = |value: &str| with_tag(value).timeout;
        assert_eq!(timeout("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(timeout("600"), Some(Duration::from_secs(600)));
        // Zero: as long as it takes, whatever the host says.
        assert_eq!(timeout("0"), None);
        // Nonsense leaves the host's in place.
        for bad in ["", "soon", "-1", "NaN", "inf", "1e300"] {
            assert_eq!(timeout(bad), Some(Duration::from_secs(60)), "{bad:?}");
        }
        assert_eq!(
            with_tag("1").report_after,
            Some(Duration::from_secs(10)),
            "reports are the host's business"
        );
        let untagged = host.for_activity(&HashMap::new(), RUNNING);
        assert_eq!(untagged.timeout, Some(Duration::from_secs(60)));
        // Without a host timeout, the activity's own still applies.
        let tags = HashMap::from([(ACTIVITY_TIMEOUT_TAG.to_owned(), "3".to_owned())]);
        assert_eq!(
            Limits::default().for_activity(&tags, RUNNING).timeout,
            Some(Duration::from_secs(3))
        );
    }

    fn timeout(timeout: Duration) -> Limits {
        Limits {
            timeout: Some(timeout),
            report_after: None,
        }
    }

    /// A subscriber that counts WARN events.
    struct CountWarnings(Arc<AtomicUsize>);

    impl tracing::Subscriber for CountWarnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
}
