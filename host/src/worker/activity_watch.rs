//! Watching one running activity: past its timeout (`[worker] activity_timeout`) the host
//! stops waiting for it and fails it with [`ACTIVITY_TIMEOUT`].
//!
//! The host cannot stop plugin code: an activity that timed out may still be running in
//! its plugin, and whatever it returns later is ignored. What the timeout gives back is
//! the activity's permits, and the orchestration an answer it can act on (the failure is
//! retriable, so retry policies apply).

use std::future::Future;
use std::time::Duration;

use durabletask_proto::{ActivityResponse, TaskFailureDetails};
use tokio::time::Instant;

/// The errorType of an activity the host failed because it ran past its timeout.
pub const ACTIVITY_TIMEOUT: &str = "ActivityTimeout";

/// What is known of a running activity, for its failure and the log.
#[derive(Debug, Clone, Copy)]
pub struct Running<'a> {
    pub name: &'a str,
    pub instance_id: &'a str,
    pub task_id: i32,
    /// `plugin-name version` of the generation running it, if any.
    pub plugin: Option<&'a str>,
}

/// Runs `activity` to its end or to `timeout` (`None`: no timeout), whichever comes
/// first; a timed-out activity's future is dropped and its failure returned instead.
pub async fn watch(
    activity: impl Future<Output = ActivityResponse>,
    running: Running<'_>,
    timeout: Option<Duration>,
) -> ActivityResponse {
    let Some(timeout) = timeout else {
        return activity.await;
    };
    let started = Instant::now();
    match tokio::time::timeout(timeout, activity).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                plugin = running.plugin,
                name = running.name,
                instance_id = running.instance_id,
                task_id = running.task_id,
                elapsed_ms = started.elapsed().as_millis(),
                "activity timed out: failing it with {ACTIVITY_TIMEOUT} and releasing its permit; the plugin's late result will be ignored"
            );
            timed_out(running, timeout)
        }
    }
}

/// The failure of an activity that did not complete within `timeout`.
fn timed_out(running: Running<'_>, timeout: Duration) -> ActivityResponse {
    ActivityResponse {
        instance_id: running.instance_id.to_owned(),
        task_id: running.task_id,
        failure_details: Some(TaskFailureDetails {
            error_type: ACTIVITY_TIMEOUT.to_owned(),
            error_message: format!(
                "activity '{}' (instance '{}', task {}) did not complete within its timeout of {timeout:?}",
                running.name, running.instance_id, running.task_id
            ),
            // Retriable: a retry policy may well succeed where a hung call did not.
            is_non_retriable: false,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

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
        let response = watch(activity, RUNNING, Some(Duration::from_secs(2))).await;
        assert_eq!(response, succeeded());
    }

    #[tokio::test(start_paused = true)]
    async fn an_activity_past_its_timeout_fails_with_activity_timeout() {
        let started = Instant::now();
        let response = watch(
            std::future::pending(),
            RUNNING,
            Some(Duration::from_millis(1500)),
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
        assert_eq!(watch(activity, RUNNING, None).await, succeeded());
    }
}
