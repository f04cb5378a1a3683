//! Graceful shutdown: let accepted work finish, within a deadline.
//!
//! By the time this runs the stream is gone, so nothing new arrives; the connection is
//! still open so results can be delivered. What has not finished by the deadline is
//! abandoned so another worker (or this one, restarted) picks it up at once. Activities are
//! the exception: the reference backend drops an abandoned activity for good, stranding
//! its orchestration, while an unanswered one is redelivered when its lock expires.

use std::time::Duration;

use super::completion::{self, CurrentClient};
use super::in_flight::{InFlight, WorkKind};

/// How long the abandon calls for unfinished items may take, after the drain timeout.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn drain(in_flight: &InFlight, timeout: Duration, client: &CurrentClient) {
    tracing::info!(in_flight = in_flight.len(), timeout = ?timeout, "draining");
    if tokio::time::timeout(timeout, in_flight.wait_until_empty())
        .await
        .is_ok()
    {
        tracing::info!("drained");
        return;
    }

    let unfinished = in_flight.abort_all();
    let mut abandons = Vec::new();
    let mut activities_left = 0usize;
    for item in &unfinished {
        match item.kind {
            WorkKind::Activity => {
                activities_left += 1;
                tracing::warn!(
                    instance_id = %item.instance_id,
                    task_id = item.task_id,
                    "activity did not finish within the drain timeout; the backend will redeliver it"
                );
            }
            kind => abandons.push(async move {
                tracing::warn!(
                    instance_id = %item.instance_id,
                    ?kind,
                    "work item did not finish within the drain timeout; abandoning it"
                );
                if kind == WorkKind::Orchestration {
                    completion::abandon_orchestration(
                        client,
                        &item.instance_id,
                        &item.completion_token,
                    )
                    .await;
                } else {
                    completion::abandon_entity(client, &item.instance_id, &item.completion_token)
                        .await;
                }
            }),
        }
    }
    let abandoned = abandons.len();
    if tokio::time::timeout(ABANDON_TIMEOUT, futures::future::join_all(abandons))
        .await
        .is_err()
    {
        tracing::warn!("some abandon calls did not finish in time");
    }
    tracing::info!(abandoned, activities_left, "drained (timeout reached)");
}
