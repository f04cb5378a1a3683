//! Several backends on one PostgreSQL database, in one process: one runs the engine (it
//! holds the lease), the others forward to it; when it dies another takes over; a host
//! that lost the lease cannot commit. Always on PostgreSQL (the test cluster of
//! `scripts/lib/postgres.sh`). The end-to-end cluster test (tests/tests/cluster.rs) does
//! the same with host processes, SIGKILL and SIGSTOP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use durabletask_backend::pg::lease::{self, Candidate, LeaseClock};
use durabletask_backend::pg::store::{Fence, PgStore, SessionLimits};
use durabletask_backend::records::Kind;
use durabletask_backend::store::Op;
use durabletask_backend::{BackendOptions, Database, EmbeddedBackend, PostgresOptions};
use durabletask_proto::*;

const TAKEOVER: Duration = Duration::from_secs(1);

fn options(url: &str) -> BackendOptions {
    BackendOptions::new(
        Database::Postgres(PostgresOptions {
            takeover_time: TAKEOVER,
            ..PostgresOptions::new(url)
        }),
        "127.0.0.1:0".parse().unwrap(),
    )
}

/// A host named `name` in the lease row (on no real machine: no dead-process shortcut).
fn candidate(name: &str) -> Candidate {
    Candidate {
        host_id: name.to_owned(),
        host_name: name.to_owned(),
        machine: "test".to_owned(),
        pid: 0,
        address: format!("http://{name}"),
    }
}

async fn backend(url: &str) -> EmbeddedBackend {
    EmbeddedBackend::start(options(url)).await.unwrap()
}

/// Runs a one-activity orchestration through `worker` (connected anywhere): answers its
/// first step with an activity, the activity with `result`, the last step by
/// completing with the activity's result.
async fn run_one_activity(client: &mut Client, worker: &mut Worker, id: &str, result: &str) {
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, id);
    complete(client, id, &token, vec![schedule(1, "act", None)]).await;
    let (activity, token) = worker.next_activity().await;
    complete_activity(client, &activity, &token, Some(result)).await;
    let (request, token) = worker.next_orchestration().await;
    let done = request
        .new_events
        .iter()
        .find_map(|event| match &event.event_type {
            Some(history_event::EventType::TaskCompleted(done)) => done.result.clone(),
            _ => None,
        })
        .expect("the activity's result");
    complete(
        client,
        id,
        &token,
        vec![finish(2, OrchestrationStatus::Completed, Some(&done))],
    )
    .await;
}

#[tokio::test]
async fn a_follower_forwards_calls_and_work_items_to_the_leader() {
    let url = postgres::fresh_database("follow");
    let leader = backend(&url).await;
    let follower = backend(&url).await;
    let mut through_follower = client(&follower).await;
    let mut through_leader = client(&leader).await;
    // The worker and the client talk to the follower only.
    let mut worker = Worker::open(&mut through_follower, unlimited()).await;
    start(&mut through_follower, "o1", "orchestrator", Some("1")).await;
    run_one_activity(&mut through_follower, &mut worker, "o1", "\"done\"").await;
    let state = wait_completion(&mut through_leader, "o1").await;
    assert_eq!(
        state.orchestration_status,
        OrchestrationStatus::Completed as i32
    );
    assert_eq!(state.output.as_deref(), Some("\"done\""));
    // The follower's in-process client reaches the leader's engine as well.
    let in_process = follower.in_process_client("default").unwrap();
    let history = in_process
        .instance_history(StreamInstanceHistoryRequest {
            instance_id: "o1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        kinds(&history).last(),
        Some(&"executionCompleted"),
        "{history:?}"
    );
}

#[tokio::test]
async fn when_the_leader_dies_another_takes_over_and_nothing_accepted_is_lost() {
    let url = postgres::fresh_database("takeover");
    let leader = backend(&url).await;
    let follower = backend(&url).await;
    let mut through_follower = client(&follower).await;
    start(&mut through_follower, "o2", "orchestrator", None).await;
    // Work handed out by the leader and never completed: redelivered after the takeover.
    let mut worker = Worker::open(&mut through_follower, unlimited()).await;
    let (request, _stale) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "o2");
    let died = Instant::now();
    drop(leader);
    // The follower's own calls work again once it runs the engine.
    let state = loop {
        match through_follower
            .get_instance(GetInstanceRequest {
                instance_id: "o2".into(),
                get_inputs_and_outputs: true,
            })
            .await
        {
            Ok(response) => break response.into_inner(),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                assert!(died.elapsed() < WAIT, "no takeover within {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let takeover = died.elapsed();
    assert!(state.exists, "the accepted start survived the leader");
    assert!(
        takeover < TAKEOVER * 4,
        "took over in {takeover:?}, lease {TAKEOVER:?}"
    );
    let mut worker = Worker::open(&mut through_follower, unlimited()).await;
    run_one_activity(&mut through_follower, &mut worker, "o2", "\"after\"").await;
    let state = wait_completion(&mut through_follower, "o2").await;
    assert_eq!(state.output.as_deref(), Some("\"after\""));
}

#[tokio::test]
async fn a_leader_that_shuts_down_hands_over_at_once() {
    let url = postgres::fresh_database("handover");
    // A lease far longer than the wait below: only giving it up lets the follower in.
    let long_lease = |url: &str| BackendOptions {
        database: Database::Postgres(PostgresOptions {
            takeover_time: Duration::from_secs(15),
            ..PostgresOptions::new(url)
        }),
        ..options(url)
    };
    let leader = EmbeddedBackend::start(long_lease(&url)).await.unwrap();
    let follower = EmbeddedBackend::start(long_lease(&url)).await.unwrap();
    let mut through_follower = client(&follower).await;
    start(&mut through_follower, "o3", "orchestrator", None).await;
    let stopped = Instant::now();
    leader.shutdown().await;
    let mut worker = Worker::open_retrying(&mut through_follower).await;
    let (request, token) = worker.next_orchestration().await;
    // Given up, not expired: the follower did not wait out the 15 s lease (it looks at
    // it every third of the lease: 5 s here at most).
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(request.instance_id, "o3");
    complete(
        &mut through_follower,
        "o3",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some("3"))],
    )
    .await;
    assert_eq!(
        wait_completion(&mut through_follower, "o3")
            .await
            .output
            .as_deref(),
        Some("3")
    );
}

#[tokio::test]
async fn a_host_whose_lease_was_taken_over_cannot_commit() {
    let url = postgres::fresh_database("fence");
    let connector = durabletask_backend::pg::Connector::new(&url, None, "test").unwrap();
    durabletask_backend::pg::migrate_database(&connector)
        .await
        .unwrap();
    let (mut admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let lease_time = Duration::from_secs(60);
    let sent = Instant::now();
    let epoch = lease::try_acquire(&mut admin, &candidate("a"), lease_time)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lease::try_acquire(&mut admin, &candidate("b"), lease_time)
            .await
            .unwrap(),
        None,
        "held: nobody else takes it"
    );
    let clock = LeaseClock::new();
    clock.extend(sent, lease_time);
    let fence = Fence {
        host_id: "a".into(),
        epoch,
        clock: clock.clone(),
    };
    let limits = SessionLimits {
        lock_timeout: Duration::from_secs(10),
        idle_in_transaction: Duration::from_secs(5),
    };
    let records = |value: &[u8]| {
        vec![Op::Put {
            hub: "h".into(),
            kind: Kind::Instance,
            key: "i1".into(),
            value: value.to_vec(),
        }]
    };
    let outcome = tokio::task::spawn_blocking(move || {
        let mut store = PgStore::open(connector, fence, limits).unwrap();
        store.apply(&records(b"first")).unwrap();
        store
    })
    .await
    .unwrap();
    // As if host a froze past its lease: it expires and b takes it.
    admin
        .execute(
            "UPDATE durabletask.dt_leader SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let taken = lease::try_acquire(&mut admin, &candidate("b"), lease_time)
        .await
        .unwrap();
    assert_eq!(taken, Some(epoch + 1));
    // a wakes up: its own clock still says it holds the lease, the database does not.
    assert!(clock.is_valid());
    let mut store = outcome;
    let refused = tokio::task::spawn_blocking(move || {
        let result = store.apply(&records(b"stale"));
        (result.map_err(|error| error.to_string()), store)
    })
    .await
    .unwrap();
    assert!(
        refused
            .0
            .as_ref()
            .is_err_and(|error| error.contains("no longer holds the lease")),
        "{:?}",
        refused.0
    );
    assert!(
        !clock.is_valid(),
        "a refused fence revokes the host's own clock"
    );
    let value: Vec<u8> = admin
        .query_one(
            "SELECT value FROM durabletask.dt_records WHERE key = 'i1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(value, b"first", "the stale write left nothing");
}

#[tokio::test]
async fn a_cut_database_connection_costs_one_batch_and_the_engine_comes_back() {
    let url = postgres::fresh_database("cut");
    let backend = backend(&url).await;
    backend.until_leader().await;
    let mut client = client(&backend).await;
    start(&mut client, "before", "orchestrator", Some("1")).await;
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let cut = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'durabletask-engine' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(cut.len(), 1, "the engine has one connection");
    // The next save fails (its callers hear so), the engine cannot read back over the
    // dead connection and stops, and the host takes the lease again with a new one.
    let deadline = Instant::now() + WAIT;
    let mut refused = 0;
    loop {
        match client
            .start_instance(CreateInstanceRequest {
                instance_id: "after".into(),
                name: "orchestrator".into(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => break,
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Internal
                    ),
                    "{status:?}"
                );
                assert!(Instant::now() < deadline, "the engine did not come back");
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(refused > 0, "the cut connection went unnoticed");
    for id in ["before", "after"] {
        let state = state(&mut client, id).await.expect(id);
        assert_eq!(
            state.orchestration_status,
            OrchestrationStatus::Pending as i32
        );
    }
}

#[tokio::test]
async fn hosts_serving_tls_with_tokens_forward_over_tls_with_the_callers_token() {
    let url = postgres::fresh_database("tls");
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let certificate = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let tokens = dir.path().join("tokens");
    std::fs::write(&certificate, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    std::fs::write(&tokens, "cluster-token\n").unwrap();
    let options = || BackendOptions {
        tls: Some(durabletask_backend::TlsFiles {
            certificate: certificate.clone(),
            key: key.clone(),
        }),
        token_file: Some(tokens.clone()),
        database: Database::Postgres(PostgresOptions {
            takeover_time: TAKEOVER,
            // The hosts' certificates are checked against this CA (here the self-signed
            // certificate itself).
            peer_ca_file: Some(certificate.clone()),
            ..PostgresOptions::new(url.as_str())
        }),
        ..options(&url)
    };
    let leader = EmbeddedBackend::start(options()).await.unwrap();
    let follower = EmbeddedBackend::start(options()).await.unwrap();
    assert_eq!(
        follower.role(),
        durabletask_backend::Role::Follower {
            leader: format!("https://{}", leader.local_addr())
        }
    );
    let channel = tonic::transport::Channel::from_shared(format!(
        "https://127.0.0.1:{}",
        follower.local_addr().port()
    ))
    .unwrap()
    .tls_config(
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(
                certified.cert.pem(),
            ))
            .domain_name("localhost"),
    )
    .unwrap()
    .connect()
    .await
    .unwrap();
    let with_token = |token: &'static str| {
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            Ok(request)
        }
    };
    // A caller without the token is refused (by the follower, before forwarding).
    let mut stranger =
        durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient::with_interceptor(
            channel.clone(),
            with_token("wrong"),
        );
    let refused = stranger
        .get_instance(GetInstanceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut caller =
        durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient::with_interceptor(
            channel,
            with_token("cluster-token"),
        );
    caller
        .start_instance(CreateInstanceRequest {
            instance_id: "tls".into(),
            name: "orchestrator".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // The follower's own worker reaches the leader over TLS with the file's token.
    let in_process = follower.in_process_client("default").unwrap();
    let mut items = in_process.get_work_items(unlimited()).await.unwrap();
    let item = tokio::time::timeout(WAIT, tokio_stream::StreamExt::next(&mut items))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Some(work_item::Request::OrchestratorRequest(request)) = item.request else {
        panic!("{item:?}");
    };
    assert_eq!(request.instance_id, "tls");
    in_process
        .complete_orchestrator_task(OrchestratorResponse {
            instance_id: "tls".into(),
            actions: vec![finish(1, OrchestrationStatus::Completed, Some("\"ok\""))],
            completion_token: item.completion_token,
            ..Default::default()
        })
        .await
        .unwrap();
    let state = caller
        .get_instance(GetInstanceRequest {
            instance_id: "tls".into(),
            get_inputs_and_outputs: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        state.orchestration_state.unwrap().output.as_deref(),
        Some("\"ok\"")
    );
}

#[tokio::test]
async fn with_sslmode_require_the_database_is_reached_over_tls_checked_against_its_ca() {
    let url = postgres::fresh_database("pgtls");
    let tls_url = postgres::with_tls(&url);
    let options = |ca_file| {
        BackendOptions::new(
            Database::Postgres(PostgresOptions {
                takeover_time: TAKEOVER,
                database_ca_file: Some(ca_file),
                ..PostgresOptions::new(tls_url.as_str())
            }),
            "127.0.0.1:0".parse().unwrap(),
        )
    };
    // A CA that did not sign the server's certificate: refused at start, not used
    // unchecked.
    let stranger = tempfile::tempdir().unwrap();
    let other_ca = stranger.path().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let refused = EmbeddedBackend::start(options(other_ca))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    let backend = EmbeddedBackend::start(options(postgres::ca_file()))
        .await
        .unwrap();
    backend.until_leader().await;
    let mut client = client(&backend).await;
    start(&mut client, "over-tls", "orchestrator", None).await;
    assert!(state(&mut client, "over-tls").await.is_some());
    // Every connection of the host to the database is encrypted.
    let encrypted = postgres::psql(
        &url,
        "SELECT string_agg(a.application_name || '=' || s.ssl::text, ',' ORDER BY a.application_name) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name LIKE 'durabletask-%' AND a.datname = current_database()",
    );
    assert_eq!(
        encrypted.trim(),
        "durabletask-engine=true,durabletask-lease=true"
    );
}

#[tokio::test]
async fn a_taker_waits_for_the_holders_transaction_that_passed_its_fence() {
    let url = postgres::fresh_database("order");
    let connector = durabletask_backend::pg::Connector::new(&url, None, "test").unwrap();
    durabletask_backend::pg::migrate_database(&connector)
        .await
        .unwrap();
    let connect = |url: String| async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    };
    let mut holder = connect(url.clone()).await;
    let epoch = lease::try_acquire(&mut holder, &candidate("a"), Duration::from_millis(500))
        .await
        .unwrap()
        .unwrap();
    // Host a's batch passes its fence, then takes its time to commit.
    let batch = holder.transaction().await.unwrap();
    let fenced = batch
        .query_opt(lease::FENCE, &[&"a", &epoch])
        .await
        .unwrap();
    assert!(fenced.is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The lease has expired: b tries to take it, and must wait for a's commit.
    let taker_url = url.clone();
    let taking = tokio::spawn(async move {
        let mut taker = connect(taker_url).await;
        lease::try_acquire(&mut taker, &candidate("b"), Duration::from_secs(60))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!taking.is_finished(), "b took the lease during a's batch");
    batch
        .execute(
            "INSERT INTO durabletask.dt_meta (key, value) VALUES ('a-wrote', '\\x01')",
            &[],
        )
        .await
        .unwrap();
    batch.commit().await.unwrap();
    assert_eq!(taking.await.unwrap(), Some(epoch + 1));
}
