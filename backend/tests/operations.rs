//! What operators' tools see of the backend: `grpc.health.v1` answers SERVING without a
//! token while the backend serves (for the server and for `TaskHubSidecarService`), and
//! the hub's state for the metrics counts instances by status and the ready backlog by
//! kind and name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use durabletask_backend::{BackendOptions, EmbeddedBackend};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn grpc_health_answers_serving_without_a_token() {
    let db = TestDb::new();
    let token_file = db.path.with_extension("tokens");
    std::fs::write(&token_file, "secret-token\n").unwrap();
    let backend = EmbeddedBackend::start(BackendOptions {
        token_file: Some(token_file),
        ..db.options()
    })
    .await
    .unwrap();
    let endpoint = format!("http://{}", backend.local_addr());
    let channel = tonic::transport::Endpoint::from_shared(endpoint)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "TaskHubSidecarService"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "NoSuchService".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    backend.shutdown().await;
}

#[tokio::test]
async fn stats_count_instances_by_status_and_the_backlog_by_kind_and_name() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let in_process = backend.in_process_client("").unwrap();

    let empty = in_process.stats().await.unwrap();
    assert!(empty.instances.is_empty(), "{empty:?}");
    assert!(empty.database_bytes > 0, "{empty:?}");

    for index in 0..3 {
        start(&mut client, &format!("a-{index}"), "alpha", None).await;
    }
    start(&mut client, "b-0", "beta", None).await;
    let stats = in_process.stats().await.unwrap();
    assert_eq!(
        stats
            .instances
            .get("PENDING")
            .or(stats.instances.get("RUNNING"))
            .copied(),
        Some(4),
        "{stats:?}"
    );
    let ready = &stats.ready["orchestration"];
    assert_eq!(ready.get("alpha"), Some(&3), "{stats:?}");
    assert_eq!(ready.get("beta"), Some(&1), "{stats:?}");
    assert!(
        stats.oldest_ready.contains_key("orchestration"),
        "{stats:?}"
    );
    assert!(stats.ready["activity"].is_empty());

    // One handed out is no longer ready; one completed counts as COMPLETED.
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let (request, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        &request.instance_id,
        &token,
        vec![finish(
            0,
            durabletask_proto::OrchestrationStatus::Completed,
            None,
        )],
    )
    .await;
    wait_completion(&mut client, &request.instance_id).await;
    let stats = in_process.stats().await.unwrap();
    assert_eq!(stats.instances.get("COMPLETED"), Some(&1), "{stats:?}");
    let still_ready: u64 = stats.ready["orchestration"].values().sum();
    assert!(still_ready <= 3, "{stats:?}");
    backend.shutdown().await;
}
