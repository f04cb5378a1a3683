//! How the worker reaches its backend: over gRPC (any backend), or, for the host's own
//! embedded backend, in process (`durabletask_backend::InProcessClient`: the messages
//! go to its engine as they are, with no loopback TCP, HTTP/2 or protobuf encoding in
//! between). The rest of the worker does not know which.

use durabletask_backend::{InProcessClient, InProcessWorkItems};
use durabletask_proto::{
    AbandonActivityTaskRequest, AbandonEntityTaskRequest, AbandonOrchestrationTaskRequest,
    ActivityResponse, EntityBatchResult, GetWorkItemsRequest, HistoryEvent, OrchestratorResponse,
    QueryInstancesRequest, QueryInstancesResponse, StreamInstanceHistoryRequest, WorkItem,
};
use tokio_stream::StreamExt;
use tonic::Status;

use durabletask_client::connection::SidecarClient;

/// A connection to the backend the worker serves. Cheap to clone.
#[derive(Clone, Debug)]
pub enum BackendClient {
    Grpc(SidecarClient),
    InProcess(InProcessClient),
}

/// An open work-item stream.
pub enum WorkItems {
    Grpc(tonic::Streaming<WorkItem>),
    InProcess(InProcessWorkItems),
}

impl WorkItems {
    /// The next work item; `None` once the backend ended the stream.
    pub async fn message(&mut self) -> Result<Option<WorkItem>, Status> {
        match self {
            WorkItems::Grpc(stream) => stream.message().await,
            WorkItems::InProcess(stream) => stream.next().await.transpose(),
        }
    }
}

impl BackendClient {
    /// `Hello`: proves a new gRPC connection alive. In process there is nothing to prove.
    pub async fn hello(&self) -> Result<(), Status> {
        match self {
            BackendClient::Grpc(client) => client.clone().hello(()).await.map(drop),
            BackendClient::InProcess(_) => Ok(()),
        }
    }

    pub async fn get_work_items(&self, request: GetWorkItemsRequest) -> Result<WorkItems, Status> {
        match self {
            BackendClient::Grpc(client) => client
                .clone()
                .get_work_items(request)
                .await
                .map(|response| WorkItems::Grpc(response.into_inner())),
            BackendClient::InProcess(client) => client
                .get_work_items(request)
                .await
                .map(WorkItems::InProcess),
        }
    }

    pub async fn complete_orchestrator_task(
        &self,
        response: OrchestratorResponse,
    ) -> Result<(), Status> {
        match self {
            BackendClient::Grpc(client) => client
                .clone()
                .complete_orchestrator_task(response)
                .await
                .map(drop),
            BackendClient::InProcess(client) => client.complete_orchestrator_task(response).await,
        }
    }

    pub async fn complete_activity_task(&self, response: ActivityResponse) -> Result<(), Status> {
        match self {
            BackendClient::Grpc(client) => client
                .clone()
                .complete_activity_task(response)
                .await
                .map(drop),
            BackendClient::InProcess(client) => client.complete_activity_task(response).await,
        }
    }

    pub async fn complete_entity_task(&self, result: EntityBatchResult) -> Result<(), Status> {
        match self {
            BackendClient::Grpc(client) => {
                client.clone().complete_entity_task(result).await.map(drop)
            }
            BackendClient::InProcess(client) => client.complete_entity_task(result).await,
        }
    }

    pub async fn abandon_orchestration(&self, completion_token: String) -> Result<(), Status> {
        match self {
            BackendClient::Grpc(client) => client
                .clone()
                .abandon_task_orchestrator_work_item(AbandonOrchestrationTaskRequest {
                    completion_token,
                })
                .await
                .map(drop),
            BackendClient::InProcess(client) => {
                client.abandon_orchestration(completion_token).await
            }
        }
    }

    pub async fn abandon_activity(&self, completion_token: String) -> Result<(), Status> {
        match self {
            BackendClient::Grpc(client) => client
                .clone()
                .abandon_task_activity_work_item(AbandonActivityTaskRequest { completion_token })
                .await
                .map(drop),
            BackendClient::InProcess(client) => client.abandon_activity(completion_token).await,
        }
    }

    pub async fn abandon_entity(&self, completion_token: String) -> Result<(), Status> {
        match self {
            BackendClient::Grpc(client) => client
                .clone()
                .abandon_task_entity_work_item(AbandonEntityTaskRequest { completion_token })
                .await
                .map(drop),
            BackendClient::InProcess(client) => client.abandon_entity(completion_token).await,
        }
    }

    /// The whole history of an instance: over gRPC read chunk by chunk from
    /// `StreamInstanceHistory`.
    pub async fn instance_history(
        &self,
        request: StreamInstanceHistoryRequest,
    ) -> Result<Vec<HistoryEvent>, Status> {
        match self {
            BackendClient::Grpc(client) => {
                let mut stream = client
                    .clone()
                    .stream_instance_history(request)
                    .await?
                    .into_inner();
                let mut events = Vec::new();
                while let Some(chunk) = stream.message().await? {
                    events.extend(chunk.events);
                }
                Ok(events)
            }
            BackendClient::InProcess(client) => client.instance_history(request).await,
        }
    }

    /// `QueryInstances`: one page of instances.
    pub async fn query_instances(
        &self,
        request: QueryInstancesRequest,
    ) -> Result<QueryInstancesResponse, Status> {
        match self {
            BackendClient::Grpc(client) => client
                .clone()
                .query_instances(request)
                .await
                .map(tonic::Response::into_inner),
            BackendClient::InProcess(client) => client.query_instances(request).await,
        }
    }
}
