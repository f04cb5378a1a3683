//! The embedding process's own worker, served without gRPC.
//!
//! The host runs its worker and this backend in one process. Over gRPC, every work item
//! and every result would cross loopback TCP, HTTP/2 framing and a protobuf encode and
//! decode on each side, and a hop through the server's thread, to reach an engine that
//! is a channel away. An [`InProcessClient`] hands the messages to the engine as they
//! are, from the worker's own thread; what the engine answers comes back the same way.
//!
//! Nothing else changes: results pass the same payload limits and checks as over gRPC
//! (plugin code produced them), work items are leased and redelivered the same way, and
//! a stream dropped by the worker releases its leases. What differs: the bearer token is
//! not asked for (the caller is the process that started the backend), and there is no
//! gRPC message to keep under 64 MiB, so a result whose payloads are each within
//! `max_payload_bytes` but larger than that together is accepted (the history limit
//! still bounds how many events one step adds).

use durabletask_proto::{
    ActivityResponse, EntityBatchResult, GetWorkItemsRequest, HistoryEvent, OrchestratorResponse,
    QueryInstancesRequest, QueryInstancesResponse, StreamInstanceHistoryRequest,
};
use tonic::Status;

use crate::service::{self, Service, WorkItemStream};

/// A worker's calls to one task hub of the backend, in process. Cheap to clone.
#[derive(Clone)]
pub struct InProcessClient {
    service: Service,
    hub: String,
}

impl std::fmt::Debug for InProcessClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessClient")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl InProcessClient {
    /// A client of task hub `hub` (a name as the `taskhub` header would carry it; empty
    /// is the default hub). The error says what is wrong with the name.
    pub(crate) fn new(service: Service, hub: &str) -> Result<InProcessClient, String> {
        service::validate_hub_name(hub).map_err(|status| {
            status
                .message()
                .replacen("the taskhub header", "the task hub name", 1)
        })?;
        let hub = if hub.is_empty() {
            service::DEFAULT_HUB
        } else {
            hub
        };
        Ok(InProcessClient {
            service,
            hub: hub.to_owned(),
        })
    }

    /// The task hub's state as of now, for its metrics (see [`crate::metrics::publish`]).
    pub async fn stats(&self) -> Result<crate::metrics::HubStats, Status> {
        self.service.stats(self.hub.clone()).await
    }

    /// The task hub this client works on.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// `GetWorkItems`: the work-item stream, with a `healthPing` after each quiet 20 s.
    /// Dropping it releases what was leased through it.
    pub fn get_work_items(&self, request: GetWorkItemsRequest) -> Result<WorkItemStream, Status> {
        self.service
            .open_work_item_stream(self.hub.clone(), request)
    }

    /// `CompleteOrchestratorTask`.
    pub async fn complete_orchestrator_task(
        &self,
        response: OrchestratorResponse,
    ) -> Result<(), Status> {
        self.service
            .complete_orchestration(self.hub.clone(), response)
            .await
            .map(drop)
    }

    /// `CompleteActivityTask`.
    pub async fn complete_activity_task(&self, response: ActivityResponse) -> Result<(), Status> {
        self.service
            .complete_activity(self.hub.clone(), response)
            .await
            .map(drop)
    }

    /// `CompleteEntityTask`.
    pub async fn complete_entity_task(&self, result: EntityBatchResult) -> Result<(), Status> {
        self.service
            .complete_entity_batch(self.hub.clone(), result)
            .await
            .map(drop)
    }

    /// `AbandonTaskOrchestratorWorkItem`.
    pub async fn abandon_orchestration(&self, completion_token: String) -> Result<(), Status> {
        self.service
            .abandon_orchestration(self.hub.clone(), completion_token)
            .await
            .map(drop)
    }

    /// `AbandonTaskActivityWorkItem`.
    pub async fn abandon_activity(&self, completion_token: String) -> Result<(), Status> {
        self.service
            .abandon_activity(self.hub.clone(), completion_token)
            .await
            .map(drop)
    }

    /// `AbandonTaskEntityWorkItem`.
    pub async fn abandon_entity(&self, completion_token: String) -> Result<(), Status> {
        self.service
            .abandon_entity(self.hub.clone(), completion_token)
            .await
            .map(drop)
    }

    /// `StreamInstanceHistory`, whole: in process there is no message size to keep under.
    pub async fn instance_history(
        &self,
        request: StreamInstanceHistoryRequest,
    ) -> Result<Vec<HistoryEvent>, Status> {
        self.service.history(self.hub.clone(), request).await
    }

    /// `QueryInstances`: a page of instances (the host's replay gate lists the running
    /// ones).
    pub async fn query_instances(
        &self,
        request: QueryInstancesRequest,
    ) -> Result<QueryInstancesResponse, Status> {
        self.service.query(self.hub.clone(), request).await
    }
}
