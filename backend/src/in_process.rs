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

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use durabletask_proto::{
    AbandonActivityTaskRequest, AbandonEntityTaskRequest, AbandonOrchestrationTaskRequest,
    ActivityResponse, EntityBatchResult, GetWorkItemsRequest, HistoryEvent, OrchestratorResponse,
    QueryInstancesRequest, QueryInstancesResponse, StreamInstanceHistoryRequest, WorkItem,
};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use crate::cluster::Route;
use crate::cluster::route::{LeaderLink, electing};
use crate::service::{self, Service, WorkItemStream};

/// A worker's calls to one task hub of the backend, in process. Cheap to clone.
///
/// On a PostgreSQL task hub shared by several hosts, the calls go to this host's engine
/// while it holds the lease, and over gRPC to the host that does otherwise (see
/// `crate::cluster`).
#[derive(Clone)]
pub struct InProcessClient {
    engine: Engine,
    hub: String,
}

/// How the client reaches the engine.
#[derive(Clone)]
enum Engine {
    /// The engine of this process, always (SQLite).
    Fixed(Service),
    /// Wherever the lease is (PostgreSQL).
    Switched(watch::Receiver<Route>),
}

/// Where one call goes.
enum Target {
    Local(Service),
    Leader(Arc<LeaderLink>),
}

impl std::fmt::Debug for InProcessClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessClient")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

/// A work-item stream of an [`InProcessClient`]: from this host's engine, or forwarded
/// from the host that runs it.
pub enum InProcessWorkItems {
    Local(WorkItemStream),
    Forwarded(tonic::Streaming<WorkItem>),
}

impl Stream for InProcessWorkItems {
    type Item = Result<WorkItem, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut() {
            InProcessWorkItems::Local(stream) => Pin::new(stream).poll_next(cx),
            InProcessWorkItems::Forwarded(stream) => Pin::new(stream).poll_next(cx),
        }
    }
}

impl InProcessClient {
    /// A client of task hub `hub` (a name as the `taskhub` header would carry it; empty
    /// is the default hub). The error says what is wrong with the name.
    pub(crate) fn new(service: Service, hub: &str) -> Result<InProcessClient, String> {
        Self::with_engine(Engine::Fixed(service), hub)
    }

    /// A client of task hub `hub` of a PostgreSQL cluster, following `route`.
    pub(crate) fn switched(
        route: watch::Receiver<Route>,
        hub: &str,
    ) -> Result<InProcessClient, String> {
        Self::with_engine(Engine::Switched(route), hub)
    }

    fn with_engine(engine: Engine, hub: &str) -> Result<InProcessClient, String> {
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
            engine,
            hub: hub.to_owned(),
        })
    }

    fn target(&self) -> Result<Target, Status> {
        match &self.engine {
            Engine::Fixed(service) => Ok(Target::Local(service.clone())),
            Engine::Switched(route) => match &*route.borrow() {
                Route::Leader(engine) => Ok(Target::Local(engine.service.clone())),
                Route::Follower(link) => Ok(Target::Leader(link.clone())),
                Route::Electing => Err(electing()),
            },
        }
    }

    /// A request to the leader, naming this client's hub and carrying the host's token.
    fn forwarded<T>(&self, link: &LeaderLink, message: T) -> Result<tonic::Request<T>, Status> {
        let mut request = tonic::Request::new(message);
        let hub = self
            .hub
            .parse()
            .map_err(|_| Status::invalid_argument("the task hub name is not a header value"))?;
        request.metadata_mut().insert("taskhub", hub);
        if let Some(token) = link.token() {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::internal("the host's token is not a header value"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    /// The task hub's state as of now, for its metrics (see [`crate::metrics::publish`]).
    /// Only the host that runs the engine knows it.
    pub async fn stats(&self) -> Result<crate::metrics::HubStats, Status> {
        match self.target()? {
            Target::Local(service) => service.stats(self.hub.clone()).await,
            Target::Leader(_) => Err(Status::unavailable(
                "this host does not run the task hub's engine; its leader reports the task hub's state",
            )),
        }
    }

    /// What the backend this client calls does now (see [`crate::Role`]).
    pub fn role(&self) -> crate::Role {
        match &self.engine {
            Engine::Fixed(_) => crate::Role::Alone,
            Engine::Switched(route) => crate::Role::of(&route.borrow()),
        }
    }

    /// The task hub this client works on.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// `GetWorkItems`: the work-item stream, with a `healthPing` after each quiet 20 s.
    /// Dropping it releases what was leased through it.
    pub async fn get_work_items(
        &self,
        request: GetWorkItemsRequest,
    ) -> Result<InProcessWorkItems, Status> {
        match self.target()? {
            Target::Local(service) => service
                .open_work_item_stream(self.hub.clone(), request)
                .map(InProcessWorkItems::Local),
            Target::Leader(link) => {
                let request = self.forwarded(&link, request)?;
                let stream = link.client().get_work_items(request).await?;
                Ok(InProcessWorkItems::Forwarded(stream.into_inner()))
            }
        }
    }

    /// `CompleteOrchestratorTask`.
    pub async fn complete_orchestrator_task(
        &self,
        response: OrchestratorResponse,
    ) -> Result<(), Status> {
        match self.target()? {
            Target::Local(service) => service
                .complete_orchestration(self.hub.clone(), response)
                .await
                .map(drop),
            Target::Leader(link) => {
                let request = self.forwarded(&link, response)?;
                link.client()
                    .complete_orchestrator_task(request)
                    .await
                    .map(drop)
            }
        }
    }

    /// `CompleteActivityTask`.
    pub async fn complete_activity_task(&self, response: ActivityResponse) -> Result<(), Status> {
        match self.target()? {
            Target::Local(service) => service
                .complete_activity(self.hub.clone(), response)
                .await
                .map(drop),
            Target::Leader(link) => {
                let request = self.forwarded(&link, response)?;
                link.client()
                    .complete_activity_task(request)
                    .await
                    .map(drop)
            }
        }
    }

    /// `CompleteEntityTask`.
    pub async fn complete_entity_task(&self, result: EntityBatchResult) -> Result<(), Status> {
        match self.target()? {
            Target::Local(service) => service
                .complete_entity_batch(self.hub.clone(), result)
                .await
                .map(drop),
            Target::Leader(link) => {
                let request = self.forwarded(&link, result)?;
                link.client().complete_entity_task(request).await.map(drop)
            }
        }
    }

    /// `AbandonTaskOrchestratorWorkItem`.
    pub async fn abandon_orchestration(&self, completion_token: String) -> Result<(), Status> {
        match self.target()? {
            Target::Local(service) => service
                .abandon_orchestration(self.hub.clone(), completion_token)
                .await
                .map(drop),
            Target::Leader(link) => {
                let request =
                    self.forwarded(&link, AbandonOrchestrationTaskRequest { completion_token })?;
                link.client()
                    .abandon_task_orchestrator_work_item(request)
                    .await
                    .map(drop)
            }
        }
    }

    /// `AbandonTaskActivityWorkItem`.
    pub async fn abandon_activity(&self, completion_token: String) -> Result<(), Status> {
        match self.target()? {
            Target::Local(service) => service
                .abandon_activity(self.hub.clone(), completion_token)
                .await
                .map(drop),
            Target::Leader(link) => {
                let request =
                    self.forwarded(&link, AbandonActivityTaskRequest { completion_token })?;
                link.client()
                    .abandon_task_activity_work_item(request)
                    .await
                    .map(drop)
            }
        }
    }

    /// `AbandonTaskEntityWorkItem`.
    pub async fn abandon_entity(&self, completion_token: String) -> Result<(), Status> {
        match self.target()? {
            Target::Local(service) => service
                .abandon_entity(self.hub.clone(), completion_token)
                .await
                .map(drop),
            Target::Leader(link) => {
                let request =
                    self.forwarded(&link, AbandonEntityTaskRequest { completion_token })?;
                link.client()
                    .abandon_task_entity_work_item(request)
                    .await
                    .map(drop)
            }
        }
    }

    /// `StreamInstanceHistory`, whole: in process there is no message size to keep under
    /// (forwarded, the leader's chunks are gathered).
    pub async fn instance_history(
        &self,
        request: StreamInstanceHistoryRequest,
    ) -> Result<Vec<HistoryEvent>, Status> {
        match self.target()? {
            Target::Local(service) => service.history(self.hub.clone(), request).await,
            Target::Leader(link) => {
                let request = self.forwarded(&link, request)?;
                let mut chunks = link
                    .client()
                    .stream_instance_history(request)
                    .await?
                    .into_inner();
                let mut events = Vec::new();
                while let Some(chunk) = chunks.next().await {
                    events.extend(chunk?.events);
                }
                Ok(events)
            }
        }
    }

    /// `QueryInstances`: a page of instances (the host's replay gate lists the running
    /// ones).
    pub async fn query_instances(
        &self,
        request: QueryInstancesRequest,
    ) -> Result<QueryInstancesResponse, Status> {
        match self.target()? {
            Target::Local(service) => service.query(self.hub.clone(), request).await,
            Target::Leader(link) => {
                let request = self.forwarded(&link, request)?;
                link.client()
                    .query_instances(request)
                    .await
                    .map(tonic::Response::into_inner)
            }
        }
    }
}
