//! A test harness: a backend on a temporary database, a real gRPC client, and a
//! hand-driven "worker" that reads work items and answers them.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use durabletask_backend::{BackendOptions, Database, EmbeddedBackend, PostgresOptions};
use durabletask_proto::history_event::EventType;
use durabletask_proto::orchestrator_action::OrchestratorActionType as Action;
use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use durabletask_proto::work_item::Request as WorkRequest;
use durabletask_proto::*;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

pub type Client = TaskHubSidecarServiceClient<Channel>;

pub const WAIT: Duration = Duration::from_secs(10);

pub mod postgres;

/// A test's database: a SQLite file in a folder of its own, or, with
/// `DURABLETASK_TEST_STORE=postgres`, a fresh PostgreSQL database (see [`postgres`]).
pub struct TestDb {
    pub dir: tempfile::TempDir,
    /// The SQLite file (where tests look at files beside the database).
    pub path: PathBuf,
    pub database: Database,
}

impl TestDb {
    pub fn new() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backend.sqlite");
        let database = if postgres::selected() {
            Database::Postgres(PostgresOptions {
                // Tests that stop a backend and start another on the same database
                // should not wait out a lease.
                takeover_time: Duration::from_secs(2),
                ..PostgresOptions::new(postgres::fresh_database("backend"))
            })
        } else {
            Database::Sqlite(path.clone())
        };
        TestDb {
            dir,
            path,
            database,
        }
    }

    /// How long a backend started after a crash of the last one may take to serve: the
    /// lease time on PostgreSQL (it must expire), nothing on SQLite.
    pub fn restart_delay(&self) -> Duration {
        match &self.database {
            Database::Postgres(options) => options.takeover_time,
            Database::Sqlite(_) => Duration::ZERO,
        }
    }

    /// Options for a backend on this database, on a free port.
    pub fn options(&self) -> BackendOptions {
        BackendOptions::new(self.database.clone(), "127.0.0.1:0".parse().unwrap())
    }

    /// A backend on this database, serving (on PostgreSQL, once it holds the lease: after
    /// a backend on the same database was dropped as in a crash, its lease must expire
    /// first).
    pub async fn start(&self) -> EmbeddedBackend {
        let backend = EmbeddedBackend::start(self.options()).await.unwrap();
        tokio::time::timeout(WAIT, backend.until_leader())
            .await
            .expect("the backend took the lease in time");
        backend
    }
}

pub async fn client(backend: &EmbeddedBackend) -> Client {
    let endpoint = format!("http://{}", backend.local_addr());
    TaskHubSidecarServiceClient::connect(endpoint)
        .await
        .unwrap()
}

/// A request for hub `hub` (the `taskhub` header).
pub fn in_hub<T>(hub: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("taskhub", MetadataValue::try_from(hub).unwrap());
    request
}

pub fn now_plus(offset: Duration) -> prost_types::Timestamp {
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + offset;
    prost_types::Timestamp {
        seconds: at.as_secs() as i64,
        nanos: at.subsec_nanos() as i32,
    }
}

pub struct Worker {
    pub items: tonic::Streaming<WorkItem>,
}

impl Worker {
    pub async fn open(client: &mut Client, request: GetWorkItemsRequest) -> Worker {
        Self::open_in(client, "default", request).await
    }

    /// Opens a stream, retrying while no backend of a cluster runs the engine (up to
    /// three times [`WAIT`]).
    pub async fn open_retrying(client: &mut Client) -> Worker {
        let deadline = tokio::time::Instant::now() + 3 * WAIT;
        loop {
            match client.get_work_items(unlimited()).await {
                Ok(items) => {
                    return Worker {
                        items: items.into_inner(),
                    };
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    assert!(tokio::time::Instant::now() < deadline, "{status:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("{status:?}"),
            }
        }
    }

    pub async fn open_in(client: &mut Client, hub: &str, request: GetWorkItemsRequest) -> Worker {
        let items = client
            .get_work_items(in_hub(hub, request))
            .await
            .unwrap()
            .into_inner();
        Worker { items }
    }

    /// The next work item (health pings skipped), or a panic after [`WAIT`].
    pub async fn next(&mut self) -> WorkItem {
        self.try_next(WAIT)
            .await
            .expect("no work item arrived in time")
    }

    pub async fn try_next(&mut self, wait: Duration) -> Option<WorkItem> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let item = tokio::time::timeout_at(deadline, self.items.message())
                .await
                .ok()?
                .unwrap()
                .expect("the stream ended");
            if !matches!(item.request, Some(WorkRequest::HealthPing(_))) {
                return Some(item);
            }
        }
    }

    pub async fn next_orchestration(&mut self) -> (OrchestratorRequest, String) {
        let item = self.next().await;
        match item.request {
            Some(WorkRequest::OrchestratorRequest(request)) => (request, item.completion_token),
            other => panic!("expected an orchestration work item, got {other:?}"),
        }
    }

    pub async fn next_activity(&mut self) -> (ActivityRequest, String) {
        let item = self.next().await;
        match item.request {
            Some(WorkRequest::ActivityRequest(request)) => (request, item.completion_token),
            other => panic!("expected an activity work item, got {other:?}"),
        }
    }

    pub async fn next_entity(&mut self) -> (EntityRequest, String) {
        let item = self.next().await;
        match item.request {
            Some(WorkRequest::EntityRequestV2(request)) => (request, item.completion_token),
            other => panic!("expected an entity work item, got {other:?}"),
        }
    }
}

pub fn unlimited() -> GetWorkItemsRequest {
    GetWorkItemsRequest::default()
}

pub async fn start(client: &mut Client, id: &str, name: &str, input: Option<&str>) {
    client
        .start_instance(CreateInstanceRequest {
            instance_id: id.into(),
            name: name.into(),
            input: input.map(str::to_owned),
            ..Default::default()
        })
        .await
        .unwrap();
}

pub async fn complete(
    client: &mut Client,
    id: &str,
    token: &str,
    actions: Vec<OrchestratorAction>,
) {
    client
        .complete_orchestrator_task(OrchestratorResponse {
            instance_id: id.into(),
            actions,
            completion_token: token.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

pub async fn complete_activity(
    client: &mut Client,
    request: &ActivityRequest,
    token: &str,
    result: Option<&str>,
) {
    client
        .complete_activity_task(ActivityResponse {
            instance_id: request
                .orchestration_instance
                .as_ref()
                .unwrap()
                .instance_id
                .clone(),
            task_id: request.task_id,
            result: result.map(str::to_owned),
            failure_details: None,
            completion_token: token.into(),
        })
        .await
        .unwrap();
}

pub async fn state(client: &mut Client, id: &str) -> Option<OrchestrationState> {
    let response = client
        .get_instance(GetInstanceRequest {
            instance_id: id.into(),
            get_inputs_and_outputs: true,
        })
        .await
        .unwrap()
        .into_inner();
    response
        .exists
        .then(|| response.orchestration_state.unwrap())
}

pub async fn wait_completion(client: &mut Client, id: &str) -> OrchestrationState {
    let mut request = tonic::Request::new(GetInstanceRequest {
        instance_id: id.into(),
        get_inputs_and_outputs: true,
    });
    request.set_timeout(WAIT);
    let response = client
        .wait_for_instance_completion(request)
        .await
        .unwrap()
        .into_inner();
    assert!(response.exists);
    response.orchestration_state.unwrap()
}

pub async fn history(client: &mut Client, id: &str) -> Vec<HistoryEvent> {
    let mut stream = client
        .stream_instance_history(StreamInstanceHistoryRequest {
            instance_id: id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        events.extend(chunk.events);
    }
    events
}

pub fn action(id: i32, kind: Action) -> OrchestratorAction {
    OrchestratorAction {
        id,
        orchestrator_action_type: Some(kind),
    }
}

pub fn schedule(id: i32, name: &str, input: Option<&str>) -> OrchestratorAction {
    action(
        id,
        Action::ScheduleTask(ScheduleTaskAction {
            name: name.into(),
            input: input.map(str::to_owned),
            ..Default::default()
        }),
    )
}

/// Starts sub-orchestration `name` as `child`.
pub fn sub(id: i32, child: &str, name: &str) -> OrchestratorAction {
    action(
        id,
        Action::CreateSubOrchestration(CreateSubOrchestrationAction {
            instance_id: child.into(),
            name: name.into(),
            ..Default::default()
        }),
    )
}

pub fn timer(id: i32, fire_at: prost_types::Timestamp) -> OrchestratorAction {
    action(
        id,
        Action::CreateTimer(CreateTimerAction {
            fire_at: Some(fire_at),
        }),
    )
}

pub fn finish(id: i32, status: OrchestrationStatus, result: Option<&str>) -> OrchestratorAction {
    action(
        id,
        Action::CompleteOrchestration(CompleteOrchestrationAction {
            orchestration_status: status as i32,
            result: result.map(str::to_owned),
            ..Default::default()
        }),
    )
}

pub fn fail(id: i32, error_type: &str, message: &str) -> OrchestratorAction {
    action(
        id,
        Action::CompleteOrchestration(CompleteOrchestrationAction {
            orchestration_status: OrchestrationStatus::Failed as i32,
            failure_details: Some(TaskFailureDetails {
                error_type: error_type.into(),
                error_message: message.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
}

/// The event types, as names (as `client history` prints them), for compact assertions.
pub fn kinds(events: &[HistoryEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|event| durabletask_json::kind_name(event.event_type.as_ref().unwrap()))
        .collect()
}

/// A worker that runs "three activities in sequence, then complete with \"3\"" for every
/// orchestration, until the stream ends or the task is aborted.
pub fn spawn_auto_worker(mut client: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(response) = client.get_work_items(unlimited()).await else {
            return;
        };
        let mut items = response.into_inner();
        while let Ok(Some(item)) = items.message().await {
            let token = item.completion_token;
            let mut client = client.clone();
            match item.request {
                Some(WorkRequest::OrchestratorRequest(request)) => {
                    let all = || request.past_events.iter().chain(request.new_events.iter());
                    let done = all()
                        .filter(|e| matches!(e.event_type, Some(EventType::TaskCompleted(_))))
                        .count() as i32;
                    let scheduled = all()
                        .filter(|e| matches!(e.event_type, Some(EventType::TaskScheduled(_))))
                        .count() as i32;
                    let actions = if done == 3 {
                        vec![finish(4, OrchestrationStatus::Completed, Some("3"))]
                    } else if scheduled == done {
                        vec![schedule(done + 1, "step", Some("1"))]
                    } else {
                        vec![]
                    };
                    let _ = client
                        .complete_orchestrator_task(OrchestratorResponse {
                            instance_id: request.instance_id,
                            actions,
                            completion_token: token,
                            ..Default::default()
                        })
                        .await;
                }
                Some(WorkRequest::ActivityRequest(request)) => {
                    let _ = client
                        .complete_activity_task(ActivityResponse {
                            instance_id: request.orchestration_instance.unwrap().instance_id,
                            task_id: request.task_id,
                            result: Some("1".into()),
                            failure_details: None,
                            completion_token: token,
                        })
                        .await;
                }
                _ => {}
            }
        }
    })
}

pub async fn get_entity(client: &mut Client, id: &str) -> Option<EntityMetadata> {
    let response = client
        .get_entity(GetEntityRequest {
            instance_id: id.into(),
            include_state: true,
        })
        .await
        .unwrap()
        .into_inner();
    response.exists.then(|| response.entity.unwrap())
}
