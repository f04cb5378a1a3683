//! The work-item loop against a fake in-process backend.
//!
//! The fake exists for what the reference backend cannot do on demand: go silent, close
//! streams, and show exactly which completions and abandons arrived. End-to-end behaviour
//! against the real backend is tested in the `tests` crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durabletask_host::config::{BackendSettings, Endpoint, WorkerSettings};
use durabletask_host::worker::{self, EntityWork, OrchestratorOutcome, WorkItemExecutor};
use durabletask_proto::task_hub_sidecar_service_server::{
    TaskHubSidecarService, TaskHubSidecarServiceServer,
};
use durabletask_proto::*;
use futures::future::BoxFuture;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

// ---------------------------------------------------------------- the fake backend

/// What one `GetWorkItems` call does: send these items, then stay open or close.
struct StreamPlan {
    items: Vec<WorkItem>,
    close_after: bool,
}

#[derive(Default)]
struct Recorded {
    hellos: usize,
    hello_headers: Vec<tonic::metadata::MetadataMap>,
    work_item_requests: Vec<GetWorkItemsRequest>,
    orchestrations_completed: Vec<OrchestratorResponse>,
    activities_completed: Vec<ActivityResponse>,
    orchestrations_abandoned: Vec<String>,
    activities_abandoned: Vec<String>,
    entities_abandoned: Vec<String>,
    entities_completed: Vec<EntityBatchResult>,
}

#[derive(Clone, Default)]
struct FakeBackend {
    recorded: Arc<Mutex<Recorded>>,
    changed: Arc<Notify>,
    plans: Arc<Mutex<VecDeque<StreamPlan>>>,
}

impl FakeBackend {
    fn record(&self, update: impl FnOnce(&mut Recorded)) {
        update(&mut self.recorded.lock().unwrap());
        self.changed.notify_waiters();
    }

    /// Waits until `condition` holds for what was recorded, or fails the test.
    async fn wait_for(&self, what: &str, condition: impl Fn(&Recorded) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if condition(&self.recorded.lock().unwrap()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("timed out waiting for: {what}");
            }
        }
    }
}

macro_rules! sidecar_service {
    (
        impl for $ty:ty { $($implemented:tt)* }
        unimplemented { $($name:ident($req:ty) -> $resp:ty;)* }
    ) => {
        #[tonic::async_trait]
        impl TaskHubSidecarService for $ty {
            $($implemented)*
            $(
                async fn $name(&self, _request: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(stringify!($name)))
                }
            )*
        }
    };
}

sidecar_service! {
    impl for FakeBackend {
        type GetWorkItemsStream = ReceiverStream<Result<WorkItem, Status>>;
        type StreamInstanceHistoryStream = ReceiverStream<Result<HistoryChunk, Status>>;

        async fn hello(&self, request: Request<()>) -> Result<Response<()>, Status> {
            self.record(|r| {
                r.hellos += 1;
                r.hello_headers.push(request.metadata().clone());
            });
            Ok(Response::new(()))
        }

        async fn get_work_items(
            &self,
            request: Request<GetWorkItemsRequest>,
        ) -> Result<Response<Self::GetWorkItemsStream>, Status> {
            self.record(|r| r.work_item_requests.push(request.into_inner()));
            let plan = self.plans.lock().unwrap().pop_front().unwrap_or(StreamPlan {
                items: Vec::new(),
                close_after: false,
            });
            let (sender, receiver) = mpsc::channel(16);
            tokio::spawn(async move {
                for item in plan.items {
                    if sender.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                if !plan.close_after {
                    sender.closed().await;
                }
            });
            Ok(Response::new(ReceiverStream::new(receiver)))
        }

        async fn complete_orchestrator_task(
            &self,
            request: Request<OrchestratorResponse>,
        ) -> Result<Response<CompleteTaskResponse>, Status> {
            self.record(|r| r.orchestrations_completed.push(request.into_inner()));
            Ok(Response::new(CompleteTaskResponse {}))
        }

        async fn complete_activity_task(
            &self,
            request: Request<ActivityResponse>,
        ) -> Result<Response<CompleteTaskResponse>, Status> {
            self.record(|r| r.activities_completed.push(request.into_inner()));
            Ok(Response::new(CompleteTaskResponse {}))
        }

        async fn complete_entity_task(
            &self,
            request: Request<EntityBatchResult>,
        ) -> Result<Response<CompleteTaskResponse>, Status> {
            self.record(|r| r.entities_completed.push(request.into_inner()));
            Ok(Response::new(CompleteTaskResponse {}))
        }

        async fn abandon_task_orchestrator_work_item(
            &self,
            request: Request<AbandonOrchestrationTaskRequest>,
        ) -> Result<Response<AbandonOrchestrationTaskResponse>, Status> {
            self.record(|r| r.orchestrations_abandoned.push(request.into_inner().completion_token));
            Ok(Response::new(AbandonOrchestrationTaskResponse {}))
        }

        async fn abandon_task_activity_work_item(
            &self,
            request: Request<AbandonActivityTaskRequest>,
        ) -> Result<Response<AbandonActivityTaskResponse>, Status> {
            self.record(|r| r.activities_abandoned.push(request.into_inner().completion_token));
            Ok(Response::new(AbandonActivityTaskResponse {}))
        }

        async fn abandon_task_entity_work_item(
            &self,
            request: Request<AbandonEntityTaskRequest>,
        ) -> Result<Response<AbandonEntityTaskResponse>, Status> {
            self.record(|r| r.entities_abandoned.push(request.into_inner().completion_token));
            Ok(Response::new(AbandonEntityTaskResponse {}))
        }
    }
    unimplemented {
        start_instance(CreateInstanceRequest) -> CreateInstanceResponse;
        get_instance(GetInstanceRequest) -> GetInstanceResponse;
        rewind_instance(RewindInstanceRequest) -> RewindInstanceResponse;
        restart_instance(RestartInstanceRequest) -> RestartInstanceResponse;
        wait_for_instance_start(GetInstanceRequest) -> GetInstanceResponse;
        wait_for_instance_completion(GetInstanceRequest) -> GetInstanceResponse;
        raise_event(RaiseEventRequest) -> RaiseEventResponse;
        terminate_instance(TerminateRequest) -> TerminateResponse;
        suspend_instance(SuspendRequest) -> SuspendResponse;
        resume_instance(ResumeRequest) -> ResumeResponse;
        query_instances(QueryInstancesRequest) -> QueryInstancesResponse;
        list_instance_ids(ListInstanceIdsRequest) -> ListInstanceIdsResponse;
        purge_instances(PurgeInstancesRequest) -> PurgeInstancesResponse;
        stream_instance_history(StreamInstanceHistoryRequest) -> Self::StreamInstanceHistoryStream;
        create_task_hub(CreateTaskHubRequest) -> CreateTaskHubResponse;
        delete_task_hub(DeleteTaskHubRequest) -> DeleteTaskHubResponse;
        signal_entity(SignalEntityRequest) -> SignalEntityResponse;
        get_entity(GetEntityRequest) -> GetEntityResponse;
        query_entities(QueryEntitiesRequest) -> QueryEntitiesResponse;
        clean_entity_storage(CleanEntityStorageRequest) -> CleanEntityStorageResponse;
        skip_graceful_orchestration_terminations(SkipGracefulOrchestrationTerminationsRequest) -> SkipGracefulOrchestrationTerminationsResponse;
    }
}

async fn start_backend(plans: Vec<StreamPlan>) -> (FakeBackend, SocketAddr) {
    let backend = FakeBackend::default();
    backend.plans.lock().unwrap().extend(plans);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = TaskHubSidecarServiceServer::new(backend.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (backend, address)
}

// ---------------------------------------------------------------- a test executor

/// Orchestrations answer at once (or never, with `hang_orchestrations`); activities wait
/// for a permit of `activity_gate` when one is given.
#[derive(Default)]
struct TestExecutor {
    activity_gate: Option<Arc<Semaphore>>,
    hang_orchestrations: bool,
}

impl WorkItemExecutor for TestExecutor {
    fn execute_orchestrator(
        &self,
        request: OrchestratorRequest,
    ) -> BoxFuture<'static, OrchestratorOutcome> {
        let hang = self.hang_orchestrations;
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            OrchestratorOutcome::Completed(OrchestratorResponse {
                instance_id: request.instance_id,
                ..Default::default()
            })
        })
    }

    fn execute_entity(&self, work: EntityWork) -> BoxFuture<'static, EntityBatchResult> {
        // One successful result per operation of a v1 batch; enough to see the plumbing.
        let operations = match work {
            EntityWork::V1(request) => request.operations.len(),
            EntityWork::V2(request) => request.operation_requests.len(),
        };
        Box::pin(std::future::ready(EntityBatchResult {
            results: vec![OperationResult::default(); operations],
            ..Default::default()
        }))
    }

    fn execute_activity(&self, request: ActivityRequest) -> BoxFuture<'static, ActivityResponse> {
        let gate = self.activity_gate.clone();
        Box::pin(async move {
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            ActivityResponse {
                instance_id: request
                    .orchestration_instance
                    .unwrap_or_default()
                    .instance_id,
                task_id: request.task_id,
                result: Some("\"done\"".into()),
                ..Default::default()
            }
        })
    }
}

// ---------------------------------------------------------------- helpers

fn orchestration_item(instance_id: &str, token: &str) -> WorkItem {
    WorkItem {
        request: Some(work_item::Request::OrchestratorRequest(
            OrchestratorRequest {
                instance_id: instance_id.into(),
                ..Default::default()
            },
        )),
        completion_token: token.into(),
    }
}

fn activity_item(instance_id: &str, task_id: i32, token: &str) -> WorkItem {
    WorkItem {
        request: Some(work_item::Request::ActivityRequest(ActivityRequest {
            name: "say_hello".into(),
            task_id,
            orchestration_instance: Some(OrchestrationInstance {
                instance_id: instance_id.into(),
                execution_id: None,
            }),
            ..Default::default()
        })),
        completion_token: token.into(),
    }
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        max_concurrent_orchestrations: 3,
        max_concurrent_activities: 4,
        max_concurrent_entities: 5,
        drain_timeout: Duration::from_secs(5),
        stream_silence_timeout: Duration::from_secs(60),
        ..WorkerSettings::default()
    }
}

fn backend_settings(address: SocketAddr) -> BackendSettings {
    BackendSettings {
        endpoint: Endpoint::parse(&format!("http://{address}")).unwrap(),
        taskhub: "hub-a".into(),
        ..Default::default()
    }
}

/// Runs the worker in the background, without work-item filters; send on the returned
/// channel to shut it down.
fn spawn_worker(
    settings: WorkerSettings,
    backend: BackendSettings,
    executor: TestExecutor,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), worker::WorkerError>>,
) {
    spawn_worker_with_filters(settings, backend, executor, watch::channel(None).1)
}

/// [`spawn_worker`] with the work-item filters `filters` holds.
fn spawn_worker_with_filters(
    settings: WorkerSettings,
    backend: BackendSettings,
    executor: TestExecutor,
    filters: watch::Receiver<Option<WorkItemFilters>>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), worker::WorkerError>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker::run(
            &settings,
            &backend,
            None,
            Arc::new(executor),
            filters,
            worker::Reporting::default(),
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    (stop, handle)
}

async fn finish(handle: tokio::task::JoinHandle<Result<(), worker::WorkerError>>) {
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the worker did not stop")
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_work_items_echoing_tokens_with_headers_and_limits() {
    let (backend, address) = start_backend(vec![StreamPlan {
        items: vec![
            orchestration_item("orch-1", "7"),
            WorkItem {
                request: Some(work_item::Request::HealthPing(HealthPing {})),
                completion_token: String::new(),
            },
            activity_item("orch-1", 1, "token with spaces"),
        ],
        close_after: false,
    }])
    .await;
    let (stop, handle) = spawn_worker(
        settings(),
        backend_settings(address),
        TestExecutor::default(),
    );

    backend
        .wait_for("both completions", |r| {
            r.orchestrations_completed.len() == 1 && r.activities_completed.len() == 1
        })
        .await;
    stop.send(()).unwrap();
    finish(handle).await;

    let recorded = backend.recorded.lock().unwrap();
    let orchestration = &recorded.orchestrations_completed[0];
    assert_eq!(orchestration.instance_id, "orch-1");
    assert_eq!(orchestration.completion_token, "7");
    let activity = &recorded.activities_completed[0];
    assert_eq!(
        (
            activity.instance_id.as_str(),
            activity.task_id,
            activity.completion_token.as_str()
        ),
        ("orch-1", 1, "token with spaces")
    );

    let request = &recorded.work_item_requests[0];
    assert_eq!(request.max_concurrent_orchestration_work_items, 3);
    assert_eq!(request.max_concurrent_activity_work_items, 4);
    assert_eq!(request.max_concurrent_entity_work_items, 5);
    // Filters are opt-in: without them the field is absent (protocol.md §1.4).
    assert_eq!(request.work_item_filters, None);

    let headers = &recorded.hello_headers[0];
    assert_eq!(headers.get("taskhub").unwrap(), "hub-a");
    assert!(
        headers
            .get("x-user-agent")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("durabletask-host/")
    );
    assert_eq!(
        headers
            .get("workerid")
            .unwrap()
            .to_str()
            .unwrap()
            .split(':')
            .count(),
        3
    );
    assert!(headers.get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_item_filters_are_sent_and_a_change_reopens_the_stream() {
    let (backend, address) = start_backend(Vec::new()).await;
    let first = worker::filters::generate(
        [("orch_b", vec!["1.0"]), ("orch_a", vec!["1.0"])],
        ["act"],
        [],
        None,
    );
    let (filters_sender, filters) = watch::channel(Some(first));
    let (stop, handle) = spawn_worker_with_filters(
        settings(),
        backend_settings(address),
        TestExecutor::default(),
        filters,
    );
    backend
        .wait_for("the stream", |r| !r.work_item_requests.is_empty())
        .await;

    // New filters (as hot swap sends): the stream is reopened with them, on the same
    // connection (no second Hello).
    let second = worker::filters::generate([("orch_c", vec!["2.0"])], [], [], None);
    filters_sender.send_replace(Some(second));
    backend
        .wait_for("the second stream", |r| r.work_item_requests.len() == 2)
        .await;
    stop.send(()).unwrap();
    finish(handle).await;

    let recorded = backend.recorded.lock().unwrap();
    let sent = |index: usize| {
        let filters = recorded.work_item_requests[index]
            .work_item_filters
            .clone()
            .expect("the request should carry work-item filters");
        (
            filters
                .orchestrations
                .into_iter()
                .map(|f| f.name)
                .collect::<Vec<_>>(),
            filters
                .activities
                .into_iter()
                .map(|f| f.name)
                .collect::<Vec<_>>(),
            filters.entities.len(),
        )
    };
    assert_eq!(
        sent(0),
        (
            vec!["orch_a".to_owned(), "orch_b".to_owned()],
            vec!["act".to_owned()],
            0
        )
    );
    assert_eq!(sent(1), (vec!["orch_c".to_owned()], Vec::new(), 0));
    assert_eq!(recorded.hellos, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_sent_from_a_file() {
    let (backend, address) = start_backend(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "abc123\n").unwrap();
    let settings_with_token = BackendSettings {
        token_file: Some(token_file),
        ..backend_settings(address)
    };
    let (stop, handle) = spawn_worker(settings(), settings_with_token, TestExecutor::default());
    backend.wait_for("a Hello", |r| r.hellos >= 1).await;
    stop.send(()).unwrap();
    finish(handle).await;
    let recorded = backend.recorded.lock().unwrap();
    assert_eq!(
        recorded.hello_headers[0].get("authorization").unwrap(),
        "Bearer abc123"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stream_is_reopened_on_a_new_connection() {
    let (backend, address) = start_backend(vec![
        StreamPlan {
            items: vec![orchestration_item("a", "1")],
            close_after: true,
        },
        StreamPlan {
            items: vec![orchestration_item("b", "2")],
            close_after: false,
        },
    ])
    .await;
    let (stop, handle) = spawn_worker(
        settings(),
        backend_settings(address),
        TestExecutor::default(),
    );
    backend
        .wait_for("work from the second stream", |r| {
            r.orchestrations_completed.len() == 2
        })
        .await;
    stop.send(()).unwrap();
    finish(handle).await;
    let recorded = backend.recorded.lock().unwrap();
    assert_eq!(
        recorded.hellos, 2,
        "a closed stream means a new connection and Hello"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stream_counts_as_dead() {
    let (backend, address) = start_backend(Vec::new()).await;
    let quick_silence = WorkerSettings {
        stream_silence_timeout: Duration::from_millis(200),
        ..settings()
    };
    let (stop, handle) = spawn_worker(
        quick_silence,
        backend_settings(address),
        TestExecutor::default(),
    );
    // The first retry waits at most 2 s (full jitter on 2^1 s).
    backend.wait_for("a second Hello", |r| r.hellos >= 2).await;
    stop.send(()).unwrap();
    finish(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_lets_in_flight_work_complete() {
    let (backend, address) = start_backend(vec![StreamPlan {
        items: vec![activity_item("i", 1, "t1"), activity_item("i", 2, "t2")],
        close_after: false,
    }])
    .await;
    let gate = Arc::new(Semaphore::new(0));
    let executor = TestExecutor {
        activity_gate: Some(Arc::clone(&gate)),
        ..Default::default()
    };
    let (stop, handle) = spawn_worker(settings(), backend_settings(address), executor);
    backend
        .wait_for("the stream", |r| !r.work_item_requests.is_empty())
        .await;
    // Let the worker take both items off the stream before shutting down.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    gate.add_permits(2);
    finish(handle).await;
    let recorded = backend.recorded.lock().unwrap();
    let mut tokens: Vec<_> = recorded
        .activities_completed
        .iter()
        .map(|response| response.completion_token.clone())
        .collect();
    tokens.sort();
    assert_eq!(tokens, ["t1", "t2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_abandons_orchestrations_but_never_activities() {
    let (backend, address) = start_backend(vec![StreamPlan {
        items: vec![
            orchestration_item("stuck", "o1"),
            activity_item("stuck", 1, "a1"),
        ],
        close_after: false,
    }])
    .await;
    let executor = TestExecutor {
        activity_gate: Some(Arc::new(Semaphore::new(0))),
        hang_orchestrations: true,
    };
    let short_drain = WorkerSettings {
        drain_timeout: Duration::from_millis(300),
        ..settings()
    };
    let (stop, handle) = spawn_worker(short_drain, backend_settings(address), executor);
    backend
        .wait_for("the stream", |r| !r.work_item_requests.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    finish(handle).await;
    let recorded = backend.recorded.lock().unwrap();
    assert_eq!(recorded.orchestrations_abandoned, ["o1"]);
    assert!(recorded.activities_abandoned.is_empty());
    assert!(recorded.activities_completed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_work_items_are_run_and_completed_with_their_token() {
    let (backend, address) = start_backend(vec![StreamPlan {
        items: vec![WorkItem {
            request: Some(work_item::Request::EntityRequestV2(EntityRequest {
                instance_id: "@counter@x".into(),
                operation_requests: vec![Default::default(), Default::default()],
                ..Default::default()
            })),
            completion_token: "e1".into(),
        }],
        close_after: false,
    }])
    .await;
    let (stop, handle) = spawn_worker(
        settings(),
        backend_settings(address),
        TestExecutor::default(),
    );
    backend
        .wait_for("the entity completion", |r| {
            !r.entities_completed.is_empty()
        })
        .await;
    stop.send(()).unwrap();
    finish(handle).await;
    let recorded = backend.recorded.lock().unwrap();
    assert!(recorded.entities_abandoned.is_empty());
    assert_eq!(recorded.entities_completed[0].completion_token, "e1");
    assert_eq!(recorded.entities_completed[0].results.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_backend_is_down_returns_promptly() {
    // Nothing listens on this port: the worker keeps backing off until told to stop.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let (stop, handle) = spawn_worker(
        settings(),
        backend_settings(address),
        TestExecutor::default(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    finish(handle).await;
}
