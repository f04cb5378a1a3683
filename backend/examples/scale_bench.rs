//! Memory per finished instance and full-listing time at scale (issue 10, item 7):
//!
//!   cargo run --release -p durabletask-backend --example scale_bench -- [N ...]
//!
//! For each N (default 10000 50000 100000), on a fresh database: starts N orchestrations
//! (100-byte inputs), completes each in one step with a 100-byte output through a
//! work-item stream, then lists the whole hub with QueryInstances (pages of 1000,
//! without payloads) and again with payloads. Prints one JSON line per N: the process's
//! RSS growth per finished instance (backend, client and SQLite's page cache together)
//! and the listing times. Numbers for a benchmark, not a test: run it on a quiet machine.
//!
//! It then stops the backend and starts another on the same database, and prints how long
//! that start took (`restart_s`: opening and loading the state, what a restart costs; on
//! PostgreSQL, what a takeover costs on top of the lease time).
//!
//! `SCALE_BENCH_POSTGRES=postgres://user:password@host:port/postgres` runs it on a fresh
//! PostgreSQL database per N (created on that server, dropped after) instead of SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use durabletask_backend::{BackendOptions, Database, EmbeddedBackend, PostgresOptions};
use durabletask_proto::orchestrator_action::OrchestratorActionType;
use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use durabletask_proto::work_item::Request as WorkRequest;
use durabletask_proto::*;
use tonic::transport::Channel;

type Client = TaskHubSidecarServiceClient<Channel>;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn run_worker(mut client: Client, expected: usize) {
    let mut stream = client
        .get_work_items(GetWorkItemsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut done = 0;
    let output = format!("\"{}\"", "o".repeat(98));
    while done < expected {
        let item = stream.message().await.unwrap().unwrap();
        let Some(WorkRequest::OrchestratorRequest(request)) = item.request else {
            continue;
        };
        let response = OrchestratorResponse {
            instance_id: request.instance_id,
            completion_token: item.completion_token,
            actions: vec![OrchestratorAction {
                id: 0,
                orchestrator_action_type: Some(OrchestratorActionType::CompleteOrchestration(
                    CompleteOrchestrationAction {
                        orchestration_status: OrchestrationStatus::Completed as i32,
                        result: Some(output.clone()),
                        ..Default::default()
                    },
                )),
            }],
            ..Default::default()
        };
        let mut completer = client.clone();
        tokio::spawn(async move { completer.complete_orchestrator_task(response).await });
        done += 1;
    }
}

async fn list_all(client: &mut Client, payloads: bool) -> (usize, f64) {
    let started = Instant::now();
    let mut token = None;
    let mut count = 0;
    loop {
        let page = client
            .query_instances(QueryInstancesRequest {
                query: Some(InstanceQuery {
                    max_instance_count: 1000,
                    continuation_token: token,
                    fetch_inputs_and_outputs: payloads,
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        count += page.orchestration_state.len();
        token = page.continuation_token;
        if token.is_none() {
            return (count, started.elapsed().as_secs_f64());
        }
    }
}

/// A fresh database for one N: a SQLite file in `dir`, or a new PostgreSQL database on
/// `SCALE_BENCH_POSTGRES`'s server (its URL, to drop it after).
async fn database(dir: &std::path::Path, n: usize) -> (Database, Option<(String, String)>) {
    let Ok(server) = std::env::var("SCALE_BENCH_POSTGRES") else {
        return (Database::Sqlite(dir.join("scale.sqlite")), None);
    };
    let name = format!("dt_scale_{n}_{}", std::process::id());
    let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // One statement each: several in one call would run as one transaction, which
    // DROP and CREATE DATABASE refuse.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.batch_execute(&statement).await.unwrap();
    }
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    (
        Database::Postgres(PostgresOptions::new(url)),
        Some((server, name)),
    )
}

async fn measure(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (database, created) = database(dir.path(), n).await;
    let options = BackendOptions::new(database, "127.0.0.1:0".parse().unwrap());
    let backend = EmbeddedBackend::start(options.clone()).await.unwrap();
    let client = Client::connect(format!("http://{}", backend.local_addr()))
        .await
        .unwrap()
        .max_decoding_message_size(64 * 1024 * 1024);
    let before = rss_kib();
    let worker = tokio::spawn(run_worker(client.clone(), n));
    let input = format!("\"{}\"", "i".repeat(98));
    let started = Instant::now();
    let lanes = 16;
    let mut starters = Vec::new();
    for lane in 0..lanes {
        let mut client = client.clone();
        let input = input.clone();
        starters.push(tokio::spawn(async move {
            for i in (lane..n).step_by(lanes) {
                client
                    .start_instance(CreateInstanceRequest {
                        instance_id: format!("i{i:07}"),
                        name: "bench".into(),
                        input: Some(input.clone()),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for starter in starters {
        starter.await.unwrap();
    }
    worker.await.unwrap();
    let mut client = client;
    // Every completion acknowledged: wait until the listing sees them all completed.
    loop {
        let page = client
            .query_instances(QueryInstancesRequest {
                query: Some(InstanceQuery {
                    runtime_status: vec![
                        OrchestrationStatus::Running as i32,
                        OrchestrationStatus::Pending as i32,
                    ],
                    max_instance_count: 1,
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        if page.orchestration_state.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let run_s = started.elapsed().as_secs_f64();
    let grown = rss_kib().saturating_sub(before);
    let (listed, list_s) = list_all(&mut client, false).await;
    let (_, list_payloads_s) = list_all(&mut client, true).await;
    assert_eq!(listed, n);
    drop(client);
    backend.shutdown().await;
    // What a restart (or, on PostgreSQL, a takeover after the lease) costs: opening the
    // database and loading the state, until the new backend serves from its engine.
    let restarted = Instant::now();
    let backend = EmbeddedBackend::start(options).await.unwrap();
    backend.until_leader().await;
    let restart_s = restarted.elapsed().as_secs_f64();
    backend.shutdown().await;
    println!(
        "{{\"n\": {n}, \"database\": \"{}\", \"run_s\": {run_s:.2}, \"rss_growth_mb\": {:.1}, \"bytes_per_finished_instance\": {}, \"full_listing_s\": {list_s:.3}, \"full_listing_with_payloads_s\": {list_payloads_s:.3}, \"restart_s\": {restart_s:.3}}}",
        if created.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        grown as f64 / 1024.0,
        grown * 1024 / n as u64
    );
    if let Some((server, name)) = created {
        let (admin, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("N: a number of instances"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 50_000, 100_000]
    } else {
        sizes
    };
    for n in sizes {
        measure(n).await;
    }
}
