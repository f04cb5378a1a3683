//! Delivering results (and abandons) back to the backend.
//!
//! Completions go through the *current* connection, which may be newer than the one the
//! work item arrived on: after a reconnect, a result is still worth delivering (the
//! backend decides, by token, whether it is stale). A failed delivery is logged and left to
//! the backend's redelivery; only `UNAVAILABLE`, which usually means the request never
//! left, is retried a few times quickly.

use std::future::Future;
use std::time::Duration;

use durabletask_proto::{ActivityResponse, EntityBatchResult, OrchestratorResponse};
use tokio::sync::watch;
use tonic::Code;

use super::backend_client::BackendClient;
use super::in_flight::WorkKind;
use crate::telemetry;

/// The connection completions are sent on; replaced by the worker on every reconnect.
pub type CurrentClient = watch::Receiver<Option<BackendClient>>;

const RETRIES_WHEN_UNAVAILABLE: u32 = 3;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// A completion that takes longer than this is given up (the backend will redeliver).
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

// Completions are sent as soon as they are ready, with no window of their own. Over
// gRPC, those that finish in the same turn of the event loop (and under load the
// runtime's coalescing pause makes a turn take in what arrived together) leave in the
// same HTTP/2 write anyway; in process, the engine commits together what arrives while
// it commits. A 2 ms window here used to add about 1 ms to every work item: one
// orchestration of 11 work items took p50 52-54 ms with it and 25-26 ms without
// (`embedded_bench` one at a time, before the in-process path), at the same CPU per
// orchestration (throughput, and against the reference backend, bench_seq_fan N=1000
// K=5 F=10: host/Python CPU 0.094-0.124 without, 0.103-0.110 with).

pub async fn complete_orchestration(client: &CurrentClient, response: OrchestratorResponse) {
    let instance_id = response.instance_id.clone();
    let delivered = deliver(
        client,
        "CompleteOrchestratorTask",
        &instance_id,
        move |client| {
            let response = response.clone();
            async move { client.complete_orchestrator_task(response).await }
        },
    )
    .await;
    if !delivered {
        completion_failed(WorkKind::Orchestration);
    }
}

pub async fn complete_activity(client: &CurrentClient, response: ActivityResponse) {
    let instance_id = response.instance_id.clone();
    let delivered = deliver(
        client,
        "CompleteActivityTask",
        &instance_id,
        move |client| {
            let response = response.clone();
            async move { client.complete_activity_task(response).await }
        },
    )
    .await;
    if !delivered {
        completion_failed(WorkKind::Activity);
    }
}

pub async fn complete_entity(client: &CurrentClient, result: EntityBatchResult) {
    // The entity's instance id is not in the result; the token identifies the batch.
    let token = result.completion_token.clone();
    let delivered = deliver(client, "CompleteEntityTask", &token, move |client| {
        let result = result.clone();
        async move { client.complete_entity_task(result).await }
    })
    .await;
    if !delivered {
        completion_failed(WorkKind::Entity);
    }
}

pub async fn abandon_orchestration(
    client: &CurrentClient,
    instance_id: &str,
    completion_token: &str,
) {
    abandoned(WorkKind::Orchestration);
    deliver(
        client,
        "AbandonTaskOrchestratorWorkItem",
        instance_id,
        move |client| {
            let token = completion_token.to_owned();
            async move { client.abandon_orchestration(token).await }
        },
    )
    .await;
}

/// Only for a backend known to hand an abandoned activity out again: the reference one
/// loses it, stranding its orchestration (protocol.md §7).
pub async fn abandon_activity(client: &CurrentClient, instance_id: &str, completion_token: &str) {
    abandoned(WorkKind::Activity);
    deliver(
        client,
        "AbandonTaskActivityWorkItem",
        instance_id,
        move |client| {
            let token = completion_token.to_owned();
            async move { client.abandon_activity(token).await }
        },
    )
    .await;
}

pub async fn abandon_entity(client: &CurrentClient, instance_id: &str, completion_token: &str) {
    abandoned(WorkKind::Entity);
    deliver(
        client,
        "AbandonTaskEntityWorkItem",
        instance_id,
        move |client| {
            let token = completion_token.to_owned();
            async move { client.abandon_entity(token).await }
        },
    )
    .await;
}

fn completion_failed(kind: WorkKind) {
    metrics::counter!(telemetry::COMPLETIONS_FAILED, "kind" => telemetry::kind_label(kind))
        .increment(1);
}

fn abandoned(kind: WorkKind) {
    metrics::counter!(telemetry::WORK_ITEMS_ABANDONED, "kind" => telemetry::kind_label(kind))
        .increment(1);
}

/// Sends one RPC built by `call`, retrying briefly while the backend is `UNAVAILABLE`.
/// Whether the backend took it.
async fn deliver<F, Fut>(current: &CurrentClient, rpc: &str, instance_id: &str, mut call: F) -> bool
where
    F: FnMut(BackendClient) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    let mut retry_delay = FIRST_RETRY_DELAY;
    for attempt in 0..=RETRIES_WHEN_UNAVAILABLE {
        let Some(client) = current.borrow().clone() else {
            tracing::warn!(
                rpc,
                instance_id,
                "not connected to the backend; leaving the work item to be redelivered"
            );
            return false;
        };
        match tokio::time::timeout(RPC_TIMEOUT, call(client)).await {
            Ok(Ok(())) => return true,
            Ok(Err(status))
                if status.code() == Code::Unavailable && attempt < RETRIES_WHEN_UNAVAILABLE =>
            {
                tracing::debug!(rpc, instance_id, attempt, error = %status.message(), "backend unavailable; retrying");
                tokio::time::sleep(retry_delay).await;
                retry_delay *= 2;
            }
            Ok(Err(status)) => {
                tracing::warn!(
                    rpc,
                    instance_id,
                    code = ?status.code(),
                    error = %status.message(),
                    "delivery failed; the backend will redeliver the work item"
                );
                return false;
            }
            Err(_) => {
                tracing::warn!(rpc, instance_id, timeout = ?RPC_TIMEOUT, "delivery timed out; the backend will redeliver the work item");
                return false;
            }
        }
    }
    false
}
