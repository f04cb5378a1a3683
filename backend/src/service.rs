//! The `TaskHubSidecarService` gRPC surface: each call reads its task hub from the
//! `taskhub` header and is forwarded to the engine; the engine's answer is the reply.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use durabletask_proto::task_hub_sidecar_service_server::TaskHubSidecarService;
use durabletask_proto::*;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::oneshot;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::engine::{Command, EngineHandle, Reply, WaitUntil};
use crate::limits::{EntityBatchCheck, PayloadLimit};
use crate::validate;

/// The hub used when a call has no `taskhub` header.
pub const DEFAULT_HUB: &str = "default";
/// A work-item stream with nothing to send gets a `healthPing` this often, so workers'
/// silence timeouts do not fire.
const HEALTH_PING_INTERVAL: Duration = Duration::from_secs(20);
/// The most events, and bytes of events, per `HistoryChunk` (a chunk holds at least one
/// event): a history of any size streams in messages far under the gRPC limit.
const HISTORY_CHUNK_EVENTS: usize = 100;
const HISTORY_CHUNK_BYTES: usize = 1024 * 1024;

/// Cheap to clone: the in-process client holds one (see `in_process`).
#[derive(Clone)]
pub struct Service {
    engine: EngineHandle,
    limit: PayloadLimit,
    next_stream: Arc<AtomicU64>,
}

impl Service {
    pub fn new(engine: EngineHandle, limit: PayloadLimit) -> Service {
        Service {
            engine,
            limit,
            next_stream: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Sends a command built around a reply channel and waits for the engine's answer.
    async fn ask<T>(
        &self,
        hub: String,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, Status> {
        let (reply, answer) = oneshot::channel();
        if !self.engine.send(hub, command(reply)) {
            return Err(stopped());
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(stopped()),
        }
    }

    /// [`Service::ask`], answered as a gRPC response.
    async fn call<T>(
        &self,
        hub: String,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Response<T>, Status> {
        self.ask(hub, command).await.map(Response::new)
    }

    // The calls a worker makes, for the gRPC surface and the in-process client alike:
    // whoever calls, a worker's results pass the same limits and checks.

    /// `GetWorkItems`: a new work-item stream of `hub`.
    pub(crate) fn open_work_item_stream(
        &self,
        hub: String,
        request: GetWorkItemsRequest,
    ) -> Result<WorkItemStream, Status> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (sender, items) = unbounded_channel();
        tracing::debug!(hub, stream = id, "worker connected");
        if !self.engine.send(
            hub.clone(),
            Command::OpenStream {
                id,
                request,
                sender,
            },
        ) {
            return Err(stopped());
        }
        Ok(WorkItemStream {
            id,
            hub,
            engine: self.engine.clone(),
            items,
            ping: Box::pin(tokio::time::sleep(HEALTH_PING_INTERVAL)),
        })
    }

    pub(crate) async fn complete_orchestration(
        &self,
        hub: String,
        mut response: OrchestratorResponse,
    ) -> Result<CompleteTaskResponse, Status> {
        self.limit.orchestrator_response(&mut response);
        validate::orchestrator_response(&response)?;
        self.ask(hub, |reply| Command::CompleteOrchestration(response, reply))
            .await
    }

    pub(crate) async fn complete_activity(
        &self,
        hub: String,
        mut response: ActivityResponse,
    ) -> Result<CompleteTaskResponse, Status> {
        self.limit.activity_response(&mut response);
        self.ask(hub, |reply| Command::CompleteActivity(response, reply))
            .await
    }

    pub(crate) async fn complete_entity_batch(
        &self,
        hub: String,
        mut result: EntityBatchResult,
    ) -> Result<CompleteTaskResponse, Status> {
        if let EntityBatchCheck::Rejected(message) = self.limit.entity_batch_result(&mut result) {
            // The batch now carries failureDetails: the engine keeps the entity's state
            // and applies none of its actions.
            tracing::warn!(hub, "an entity batch was rejected: {message}");
        }
        validate::entity_batch_result(&result)?;
        self.ask(hub, |reply| Command::CompleteEntity(result, reply))
            .await
    }

    /// The whole history of an instance (the gRPC surface streams it in chunks).
    /// The state of `hub` for its metrics.
    pub(crate) async fn stats(&self, hub: String) -> Result<crate::metrics::HubStats, Status> {
        self.ask(hub, Command::Stats).await
    }

    pub(crate) async fn history(
        &self,
        hub: String,
        request: StreamInstanceHistoryRequest,
    ) -> Result<Vec<HistoryEvent>, Status> {
        self.ask(hub, |reply| Command::History(request, reply))
            .await
    }

    /// `QueryInstances` (for the embedding process's own checks, such as its replay gate).
    pub(crate) async fn query(
        &self,
        hub: String,
        request: QueryInstancesRequest,
    ) -> Result<QueryInstancesResponse, Status> {
        validate::query_instances(&request)?;
        self.ask(hub, |reply| Command::QueryInstances(request, reply))
            .await
    }

    pub(crate) async fn abandon_orchestration(
        &self,
        hub: String,
        completion_token: String,
    ) -> Result<AbandonOrchestrationTaskResponse, Status> {
        self.ask(hub, |reply| {
            Command::AbandonOrchestration(completion_token, reply)
        })
        .await
    }

    pub(crate) async fn abandon_activity(
        &self,
        hub: String,
        completion_token: String,
    ) -> Result<AbandonActivityTaskResponse, Status> {
        self.ask(hub, |reply| {
            Command::AbandonActivity(completion_token, reply)
        })
        .await
    }

    pub(crate) async fn abandon_entity(
        &self,
        hub: String,
        completion_token: String,
    ) -> Result<AbandonEntityTaskResponse, Status> {
        self.ask(hub, |reply| Command::AbandonEntity(completion_token, reply))
            .await
    }

    /// `WaitForInstanceStart` / `WaitForInstanceCompletion`: a long poll, answered by the
    /// engine when the instance gets there, or here when the caller's deadline is near.
    async fn wait(
        &self,
        request: Request<GetInstanceRequest>,
        until: WaitUntil,
    ) -> Result<Response<GetInstanceResponse>, Status> {
        let hub = hub_of(&request)?;
        let deadline = deadline_of(&request);
        let request = request.into_inner();
        let instance_id = request.instance_id.clone();
        let (reply, answer) = oneshot::channel();
        if !self
            .engine
            .send(hub.clone(), Command::Wait(request, until, reply))
        {
            return Err(stopped());
        }
        let answered = match deadline {
            // Answer a little before the deadline, so that the caller gets our
            // DEADLINE_EXCEEDED rather than its transport's cancellation.
            Some(timeout) => {
                let margin =
                    (timeout / 20).clamp(Duration::from_millis(5), Duration::from_millis(200));
                tokio::time::timeout(timeout.saturating_sub(margin), answer).await
            }
            None => Ok(answer.await),
        };
        match answered {
            Ok(Ok(result)) => result.map(Response::new),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => {
                // Like the reference: an unknown instance is "does not exist", a known
                // one that did not get there in time is a deadline error.
                let exists = self
                    .call(hub, |reply| {
                        Command::GetInstance(
                            GetInstanceRequest {
                                instance_id: instance_id.clone(),
                                get_inputs_and_outputs: false,
                            },
                            reply,
                        )
                    })
                    .await?
                    .into_inner()
                    .exists;
                if exists {
                    let what = match until {
                        WaitUntil::Started => "start",
                        WaitUntil::Completed => "complete",
                    };
                    Err(Status::deadline_exceeded(format!(
                        "timed out waiting for instance '{instance_id}' to {what}"
                    )))
                } else {
                    Ok(Response::new(GetInstanceResponse {
                        exists: false,
                        orchestration_state: None,
                    }))
                }
            }
        }
    }
}

fn stopped() -> Status {
    Status::unavailable("the backend is stopping")
}

/// The longest task hub name accepted.
const MAX_HUB_NAME: usize = 256;

/// The task hub a call is for: its `taskhub` header, else [`DEFAULT_HUB`]. A header that
/// is not a plain name is refused rather than read as another hub (a caller that meant
/// some hub must never act on `default` instead).
fn hub_of<T>(request: &Request<T>) -> Result<String, Status> {
    let Some(value) = request.metadata().get("taskhub") else {
        return Ok(DEFAULT_HUB.to_owned());
    };
    let name = value.to_str().map_err(|_| {
        Status::invalid_argument("the taskhub header must be printable ASCII (no spaces)")
    })?;
    validate_hub_name(name)?;
    Ok(if name.is_empty() { DEFAULT_HUB } else { name }.to_owned())
}

pub(crate) fn validate_hub_name(name: &str) -> Result<(), Status> {
    if name.len() > MAX_HUB_NAME {
        return Err(Status::invalid_argument(format!(
            "the taskhub header is {} bytes long; at most {MAX_HUB_NAME} are accepted",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(Status::invalid_argument(format!(
            "the taskhub header may hold only printable ASCII without spaces; found {bad:?}"
        )));
    }
    Ok(())
}

/// The caller's deadline, from the `grpc-timeout` header (`<digits><unit>`).
fn deadline_of<T>(request: &Request<T>) -> Option<Duration> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    parse_grpc_timeout(value)
}

fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.saturating_mul(3600)),
        "M" => Duration::from_secs(amount.saturating_mul(60)),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The work items of one `GetWorkItems` call, with a `healthPing` after each quiet
/// `HEALTH_PING_INTERVAL`. Dropping it (the worker went away) tells the engine, which
/// releases everything leased to it.
pub struct WorkItemStream {
    id: u64,
    hub: String,
    engine: EngineHandle,
    items: UnboundedReceiver<Result<WorkItem, Status>>,
    ping: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for WorkItemStream {
    type Item = Result<WorkItem, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.items.poll_recv(cx) {
            Poll::Ready(item) => {
                let next = tokio::time::Instant::now() + HEALTH_PING_INTERVAL;
                self.ping.as_mut().reset(next);
                Poll::Ready(item)
            }
            Poll::Pending => match self.ping.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let next = tokio::time::Instant::now() + HEALTH_PING_INTERVAL;
                    self.ping.as_mut().reset(next);
                    Poll::Ready(Some(Ok(WorkItem {
                        request: Some(work_item::Request::HealthPing(HealthPing {})),
                        completion_token: String::new(),
                    })))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Drop for WorkItemStream {
    fn drop(&mut self) {
        self.engine
            .send(self.hub.clone(), Command::CloseStream { id: self.id });
    }
}

pub type HistoryStream = tokio_stream::Iter<std::vec::IntoIter<Result<HistoryChunk, Status>>>;

#[tonic::async_trait]
impl TaskHubSidecarService for Service {
    type GetWorkItemsStream = WorkItemStream;
    type StreamInstanceHistoryStream = HistoryStream;

    async fn hello(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    async fn start_instance(
        &self,
        request: Request<CreateInstanceRequest>,
    ) -> Result<Response<CreateInstanceResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.limit.create_instance(&request)?;
        validate::create_instance(&request)?;
        self.call(hub, |reply| Command::StartInstance(request, reply))
            .await
    }

    async fn get_instance(
        &self,
        request: Request<GetInstanceRequest>,
    ) -> Result<Response<GetInstanceResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.call(hub, |reply| Command::GetInstance(request, reply))
            .await
    }

    async fn rewind_instance(
        &self,
        request: Request<RewindInstanceRequest>,
    ) -> Result<Response<RewindInstanceResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.call(hub, |reply| Command::Rewind(request, reply))
            .await
    }

    async fn restart_instance(
        &self,
        request: Request<RestartInstanceRequest>,
    ) -> Result<Response<RestartInstanceResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.call(hub, |reply| Command::Restart(request, reply))
            .await
    }

    async fn wait_for_instance_start(
        &self,
        request: Request<GetInstanceRequest>,
    ) -> Result<Response<GetInstanceResponse>, Status> {
        self.wait(request, WaitUntil::Started).await
    }

    async fn wait_for_instance_completion(
        &self,
        request: Request<GetInstanceRequest>,
    ) -> Result<Response<GetInstanceResponse>, Status> {
        self.wait(request, WaitUntil::Completed).await
    }

    async fn raise_event(
        &self,
        request: Request<RaiseEventRequest>,
    ) -> Result<Response<RaiseEventResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.limit.raise_event(&request)?;
        self.call(hub, |reply| Command::RaiseEvent(request, reply))
            .await
    }

    async fn terminate_instance(
        &self,
        request: Request<TerminateRequest>,
    ) -> Result<Response<TerminateResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.limit.terminate(&request)?;
        self.call(hub, |reply| Command::Terminate(request, reply))
            .await
    }

    async fn suspend_instance(
        &self,
        request: Request<SuspendRequest>,
    ) -> Result<Response<SuspendResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.call(hub, |reply| Command::Suspend(request, reply))
            .await
    }

    async fn resume_instance(
        &self,
        request: Request<ResumeRequest>,
    ) -> Result<Response<ResumeResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.call(hub, |reply| Command::Resume(request, reply))
            .await
    }

    async fn query_instances(
        &self,
        request: Request<QueryInstancesRequest>,
    ) -> Result<Response<QueryInstancesResponse>, Status> {
        let hub = hub_of(&request)?;
        self.query(hub, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_instance_ids(
        &self,
        request: Request<ListInstanceIdsRequest>,
    ) -> Result<Response<ListInstanceIdsResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        validate::list_instance_ids(&request)?;
        self.call(hub, |reply| Command::ListInstanceIds(request, reply))
            .await
    }

    async fn purge_instances(
        &self,
        request: Request<PurgeInstancesRequest>,
    ) -> Result<Response<PurgeInstancesResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        validate::purge(&request)?;
        self.call(hub, |reply| Command::Purge(request, reply)).await
    }

    async fn get_work_items(
        &self,
        request: Request<GetWorkItemsRequest>,
    ) -> Result<Response<Self::GetWorkItemsStream>, Status> {
        let hub = hub_of(&request)?;
        self.open_work_item_stream(hub, request.into_inner())
            .map(Response::new)
    }

    async fn complete_activity_task(
        &self,
        request: Request<ActivityResponse>,
    ) -> Result<Response<CompleteTaskResponse>, Status> {
        let hub = hub_of(&request)?;
        self.complete_activity(hub, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn complete_orchestrator_task(
        &self,
        request: Request<OrchestratorResponse>,
    ) -> Result<Response<CompleteTaskResponse>, Status> {
        let hub = hub_of(&request)?;
        self.complete_orchestration(hub, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn complete_entity_task(
        &self,
        request: Request<EntityBatchResult>,
    ) -> Result<Response<CompleteTaskResponse>, Status> {
        let hub = hub_of(&request)?;
        self.complete_entity_batch(hub, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn stream_instance_history(
        &self,
        request: Request<StreamInstanceHistoryRequest>,
    ) -> Result<Response<Self::StreamInstanceHistoryStream>, Status> {
        let hub = hub_of(&request)?;
        let events = self.history(hub, request.into_inner()).await?;
        let chunks = history_chunks(events)
            .into_iter()
            .map(Ok)
            .collect::<Vec<_>>();
        Ok(Response::new(tokio_stream::iter(chunks)))
    }

    async fn create_task_hub(
        &self,
        request: Request<CreateTaskHubRequest>,
    ) -> Result<Response<CreateTaskHubResponse>, Status> {
        // Hubs are created on first use; recreating one starts it empty.
        let hub = hub_of(&request)?;
        if request.into_inner().recreate_if_exists {
            self.call(hub, Command::DeleteHub).await?;
        }
        Ok(Response::new(CreateTaskHubResponse {}))
    }

    async fn delete_task_hub(
        &self,
        request: Request<DeleteTaskHubRequest>,
    ) -> Result<Response<DeleteTaskHubResponse>, Status> {
        let hub = hub_of(&request)?;
        self.call(hub, Command::DeleteHub).await
    }

    async fn signal_entity(
        &self,
        request: Request<SignalEntityRequest>,
    ) -> Result<Response<SignalEntityResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.limit.signal_entity(&request)?;
        validate::signal_entity(&request)?;
        self.call(hub, |reply| Command::SignalEntity(request, reply))
            .await
    }

    async fn get_entity(
        &self,
        request: Request<GetEntityRequest>,
    ) -> Result<Response<GetEntityResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.call(hub, |reply| Command::GetEntity(request, reply))
            .await
    }

    async fn query_entities(
        &self,
        request: Request<QueryEntitiesRequest>,
    ) -> Result<Response<QueryEntitiesResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        validate::query_entities(&request)?;
        self.call(hub, |reply| Command::QueryEntities(request, reply))
            .await
    }

    async fn clean_entity_storage(
        &self,
        request: Request<CleanEntityStorageRequest>,
    ) -> Result<Response<CleanEntityStorageResponse>, Status> {
        let hub = hub_of(&request)?;
        let request = request.into_inner();
        self.call(hub, |reply| Command::CleanEntityStorage(request, reply))
            .await
    }

    async fn abandon_task_activity_work_item(
        &self,
        request: Request<AbandonActivityTaskRequest>,
    ) -> Result<Response<AbandonActivityTaskResponse>, Status> {
        let hub = hub_of(&request)?;
        let token = request.into_inner().completion_token;
        self.abandon_activity(hub, token).await.map(Response::new)
    }

    async fn abandon_task_orchestrator_work_item(
        &self,
        request: Request<AbandonOrchestrationTaskRequest>,
    ) -> Result<Response<AbandonOrchestrationTaskResponse>, Status> {
        let hub = hub_of(&request)?;
        let token = request.into_inner().completion_token;
        self.abandon_orchestration(hub, token)
            .await
            .map(Response::new)
    }

    async fn abandon_task_entity_work_item(
        &self,
        request: Request<AbandonEntityTaskRequest>,
    ) -> Result<Response<AbandonEntityTaskResponse>, Status> {
        let hub = hub_of(&request)?;
        let token = request.into_inner().completion_token;
        self.abandon_entity(hub, token).await.map(Response::new)
    }

    async fn skip_graceful_orchestration_terminations(
        &self,
        _request: Request<SkipGracefulOrchestrationTerminationsRequest>,
    ) -> Result<Response<SkipGracefulOrchestrationTerminationsResponse>, Status> {
        Err(Status::unimplemented(
            "SkipGracefulOrchestrationTerminations is not supported by this backend",
        ))
    }
}

/// Splits a history into chunks bounded by [`HISTORY_CHUNK_EVENTS`] and
/// [`HISTORY_CHUNK_BYTES`].
fn history_chunks(events: Vec<HistoryEvent>) -> Vec<HistoryChunk> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for event in events {
        let size = prost::Message::encoded_len(&event);
        if !current.is_empty()
            && (current.len() == HISTORY_CHUNK_EVENTS || bytes + size > HISTORY_CHUNK_BYTES)
        {
            chunks.push(HistoryChunk {
                events: std::mem::take(&mut current),
            });
            bytes = 0;
        }
        bytes += size;
        current.push(event);
    }
    if !current.is_empty() {
        chunks.push(HistoryChunk { events: current });
    }
    chunks
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn quiet_streams_get_health_pings() {
        let (sender, items) = unbounded_channel();
        let mut stream = WorkItemStream {
            id: 1,
            hub: DEFAULT_HUB.into(),
            engine: EngineHandle::detached(),
            items,
            ping: Box::pin(tokio::time::sleep(HEALTH_PING_INTERVAL)),
        };
        let started = tokio::time::Instant::now();
        let ping = stream.next().await.unwrap().unwrap();
        assert!(matches!(
            ping.request,
            Some(work_item::Request::HealthPing(_))
        ));
        assert_eq!(started.elapsed(), HEALTH_PING_INTERVAL);
        sender
            .send(Ok(WorkItem {
                completion_token: "t".into(),
                ..Default::default()
            }))
            .unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().completion_token, "t");
        drop(sender);
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn history_chunks_are_bounded_by_events_and_bytes() {
        let raised =
            |bytes: usize| crate::engine::test_event_raised("e".into(), Some("x".repeat(bytes)));
        let small: Vec<HistoryEvent> = (0..250).map(|_| raised(10)).collect();
        let sizes: Vec<usize> = history_chunks(small)
            .iter()
            .map(|c| c.events.len())
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        // 400 KiB events: two per chunk (a third would pass 1 MiB); one huge event alone.
        let mut large: Vec<HistoryEvent> = (0..5).map(|_| raised(400 * 1024)).collect();
        large.push(raised(3 * 1024 * 1024));
        large.push(raised(1));
        let chunks = history_chunks(large);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.events.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1, 1, 1]);
        assert_eq!(chunks.iter().map(|c| c.events.len()).sum::<usize>(), 7);
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }
}
