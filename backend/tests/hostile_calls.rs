//! Regressions for calls a hostile or broken client can make (issue 10, items 2, 6, 8):
//! each was accepted in a harmful form before, and is now refused or harmless.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::BufMut;
use common::*;
use durabletask_backend::{BackendOptions, Database, EmbeddedBackend, PostgresOptions};
use durabletask_proto::*;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;

fn with_raw_hub<T>(hub: &[u8], message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "taskhub",
        MetadataValue::try_from(hub).expect("a header value of opaque bytes"),
    );
    request
}

#[tokio::test]
async fn a_taskhub_header_that_is_not_a_plain_name_is_refused_not_read_as_default() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    start(&mut client, "keep", "orchestrator", None).await;

    for bad in [&b"h\xc3\xa9"[..], b"two words", b"tab\there"] {
        let status = client
            .delete_task_hub(with_raw_hub(bad, DeleteTaskHubRequest {}))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
        assert!(status.message().contains("taskhub"), "{}", status.message());
    }
    let long = "h".repeat(257);
    let status = client
        .get_instance(in_hub(&long, GetInstanceRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // The default hub was not wiped.
    assert!(state(&mut client, "keep").await.is_some());
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn reads_naming_new_task_hubs_leave_nothing_behind() {
    let db = TestDb::new();
    let backend = db.start().await;
    let client = common::client(&backend).await;
    let read_all = |round: usize| {
        let client = client.clone();
        async move {
            let mut tasks = Vec::new();
            for lane in 0..8 {
                let mut client = client.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..1_250 {
                        let hub = format!("probe-{round}-{lane}-{i}");
                        let found = client
                            .get_instance(in_hub(&hub, GetInstanceRequest::default()))
                            .await
                            .unwrap()
                            .into_inner();
                        assert!(!found.exists);
                        client
                            .query_instances(in_hub(&hub, QueryInstancesRequest::default()))
                            .await
                            .unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    // A first round warms up allocator arenas and connection buffers.
    read_all(0).await;
    let before = resident_kib();
    read_all(1).await;
    read_all(2).await;
    let grown = resident_kib().saturating_sub(before);
    // 20,000 new hubs kept in memory took ~50 MB before; what is left is noise.
    assert!(
        grown < 12 * 1024,
        "RSS grew by {grown} KiB over 20,000 reads of new hubs"
    );
}

#[tokio::test]
async fn a_forged_activity_token_does_not_complete_work_another_worker_holds() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "victim", "orchestrator", None).await;
    let (request, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "victim",
        &token,
        vec![schedule(0, "charge", None)],
    )
    .await;
    let (activity, real_token) = worker.next_activity().await;
    let execution_id = request.execution_id.clone().unwrap_or_default();
    let (_, named) = real_token.split_once('~').unwrap();
    assert!(named.starts_with(&execution_id), "{real_token}");

    for forged in [
        format!("anything~{execution_id}"),
        format!("x-1~{execution_id}~00000000000000000000000000000000"),
        real_token.replacen(|c: char| c.is_ascii_digit(), "9", 1),
    ] {
        if forged == real_token {
            continue;
        }
        client
            .complete_activity_task(ActivityResponse {
                instance_id: "victim".into(),
                task_id: activity.task_id,
                result: Some("\"forged\"".into()),
                failure_details: None,
                completion_token: forged,
            })
            .await
            .unwrap();
    }
    // The real result is the one the orchestration gets.
    complete_activity(&mut client, &activity, &real_token, Some("\"real\"")).await;
    let (next, _) = worker.next_orchestration().await;
    let results: Vec<_> = next
        .new_events
        .iter()
        .filter_map(|event| match &event.event_type {
            Some(history_event::EventType::TaskCompleted(done)) => done.result.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(results, vec!["\"real\"".to_owned()]);
}

#[tokio::test]
async fn a_completion_with_a_status_that_ends_nothing_is_refused_and_the_instance_goes_on() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "o", "orchestrator", None).await;
    let (_, token) = worker.next_orchestration().await;
    for status in [
        OrchestrationStatus::Running as i32,
        OrchestrationStatus::Pending as i32,
        42,
    ] {
        let refused = client
            .complete_orchestrator_task(OrchestratorResponse {
                instance_id: "o".into(),
                actions: vec![finish(0, OrchestrationStatus::Completed, None)]
                    .into_iter()
                    .map(|mut action| {
                        if let Some(
                            orchestrator_action::OrchestratorActionType::CompleteOrchestration(c),
                        ) = &mut action.orchestrator_action_type
                        {
                            c.orchestration_status = status;
                        }
                        action
                    })
                    .collect(),
                completion_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("orchestrationStatus"),
            "{}",
            refused.message()
        );
    }
    // Nothing was stored: the lease still stands and a proper completion ends it.
    complete(
        &mut client,
        "o",
        &token,
        vec![finish(0, OrchestrationStatus::Completed, Some("1"))],
    )
    .await;
    let done = wait_completion(&mut client, "o").await;
    assert_eq!(
        done.orchestration_status,
        OrchestrationStatus::Completed as i32
    );
    assert_eq!(done.output.as_deref(), Some("1"));
}

#[tokio::test]
async fn times_the_backend_cannot_keep_are_refused_not_clamped() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let year_9999 = prost_types::Timestamp {
        seconds: 253_402_300_799,
        nanos: 0,
    };
    let status = client
        .start_instance(CreateInstanceRequest {
            instance_id: "late".into(),
            name: "orchestrator".into(),
            scheduled_start_timestamp: Some(year_9999),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("scheduledStartTimestamp"),
        "{}",
        status.message()
    );
    assert!(state(&mut client, "late").await.is_none());

    let status = client
        .signal_entity(SignalEntityRequest {
            instance_id: "@counter@a".into(),
            name: "add".into(),
            request_id: "r".into(),
            scheduled_time: Some(year_9999),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "t", "orchestrator", None).await;
    let (_, token) = worker.next_orchestration().await;
    let refused = client
        .complete_orchestrator_task(OrchestratorResponse {
            instance_id: "t".into(),
            actions: vec![timer(3, year_9999)],
            completion_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("action 3"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn every_history_event_carries_the_time_it_was_recorded() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let before = now_plus(Duration::ZERO).seconds;
    start(&mut client, "o", "orchestrator", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "o", &token, vec![schedule(0, "a", None)]).await;
    let (activity, token) = worker.next_activity().await;
    complete_activity(&mut client, &activity, &token, Some("1")).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "o",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, None)],
    )
    .await;
    wait_completion(&mut client, "o").await;
    let after = now_plus(Duration::from_secs(1)).seconds;
    let events = history(&mut client, "o").await;
    assert!(events.len() >= 6, "{:?}", kinds(&events));
    for (event, kind) in events.iter().zip(kinds(&events)) {
        let at = event.timestamp.as_ref().unwrap().seconds;
        assert!(
            (before..=after).contains(&at),
            "{kind} recorded at {at}, outside {before}..={after}"
        );
    }
}

#[tokio::test]
async fn a_second_backend_on_the_same_database_is_refused_with_the_holders_pid() {
    let db = TestDb::new();
    let first = db.start().await;
    let error = EmbeddedBackend::start(BackendOptions::new(
        db.path.clone(),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("backend.sqlite"), "{error}");
    assert!(
        error.contains(&format!("pid {}", std::process::id())),
        "{error}"
    );
    drop(first);
    // Released with the first backend: the same file opens again.
    db.start().await;
}

#[tokio::test]
async fn the_database_and_its_companions_are_private_to_the_user() {
    use std::os::unix::fs::PermissionsExt;
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    start(&mut client, "o", "orchestrator", None).await;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut path = db.path.clone().into_os_string();
        path.push(suffix);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path:?} has mode {mode:o}");
    }
}

/// Sends raw bytes as the request message, to see what malformed protobuf gets.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct StatusOnly;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for StatusOnly {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, _src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        Ok(Some(()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = StatusOnly;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> StatusOnly {
        StatusOnly
    }
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument() {
    let db = TestDb::new();
    let backend = db.start().await;
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", backend.local_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    // A field header announcing 100 bytes of string, followed by 2.
    let status = grpc
        .unary(
            tonic::Request::new(vec![0x0a, 100, b'x', b'y']),
            http::uri::PathAndQuery::from_static("/TaskHubSidecarService/StartInstance"),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("malformed"),
        "{}",
        status.message()
    );
}

fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    request
}

#[tokio::test]
async fn with_a_token_file_only_calls_bearing_one_of_its_tokens_are_served() {
    let db = TestDb::new();
    let tokens = db.dir.path().join("tokens");
    std::fs::write(&tokens, "# the host's own\nfirst-token\n").unwrap();
    let backend = EmbeddedBackend::start(BackendOptions {
        token_file: Some(tokens.clone()),
        ..db.options()
    })
    .await
    .unwrap();
    let mut client = common::client(&backend).await;
    let get = || GetInstanceRequest {
        instance_id: "x".into(),
        get_inputs_and_outputs: false,
    };
    // Without a token, with a wrong one, and for destructive calls alike: refused.
    let status = client.get_instance(get()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .delete_task_hub(DeleteTaskHubRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = client
        .get_instance(with_token("wrong", get()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    client
        .get_instance(with_token("first-token", get()))
        .await
        .unwrap();

    // Rotated in the file: the new token is taken up without a restart, the old dropped.
    std::fs::write(&tokens, "second-token\n").unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while client
        .get_instance(with_token("second-token", get()))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new token was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = client
        .get_instance(with_token("first-token", get()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_token_file_with_no_token_stops_the_start() {
    let db = TestDb::new();
    let tokens = db.dir.path().join("tokens");
    std::fs::write(&tokens, "\n# none yet\n").unwrap();
    let error = EmbeddedBackend::start(BackendOptions {
        token_file: Some(tokens),
        ..db.options()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("holds no token"), "{error}");
}

#[tokio::test]
async fn with_tls_files_the_backend_serves_tls_only() {
    let db = TestDb::new();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let certificate = db.dir.path().join("cert.pem");
    let key = db.dir.path().join("key.pem");
    std::fs::write(&certificate, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    // On PostgreSQL, hosts serving TLS check each other against a CA: here the
    // self-signed certificate itself.
    let database = match db.database.clone() {
        Database::Postgres(options) => Database::Postgres(PostgresOptions {
            peer_ca_file: Some(certificate.clone()),
            ..options
        }),
        sqlite => sqlite,
    };
    let backend = EmbeddedBackend::start(BackendOptions {
        tls: Some(durabletask_backend::TlsFiles {
            certificate: certificate.clone(),
            key,
        }),
        database,
        ..db.options()
    })
    .await
    .unwrap();
    let port = backend.local_addr().port();

    let trusted = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            certified.cert.pem(),
        ))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(trusted)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = Client::new(channel);
    start(&mut client, "over-tls", "orchestrator", None).await;
    assert!(state(&mut client, "over-tls").await.is_some());

    // Plaintext gets nothing.
    let plaintext = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(Client::new(channel).hello(()).await.is_err());
    }
}
