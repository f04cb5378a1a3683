//! An embedded, durable Durable Task backend: Microsoft's `TaskHubSidecarService` served
//! from a SQLite file, so one process (the host) runs everything on a fresh machine.
//!
//! - `service`: the gRPC surface; every call is forwarded to the engine.
//! - `in_process`: the same calls for the embedding process's own worker, without gRPC
//!   ([`EmbeddedBackend::in_process_client`]).
//! - `engine`: one actor owning all state, applying calls in batches and committing each
//!   batch in one transaction before answering (see its module documentation).
//! - `store`: SQLite persistence; `records`: the persisted record types.
//!
//! Semantics follow Microsoft's Python in-memory backend (protocol.md §7), without its
//! gaps: scheduled starts wait, abandoned activities are redelivered, sub-orchestrations
//! know their parent and report their real failure, recursive terminate and purge,
//! locked entities serve only their lock holder, and everything survives a crash.
//!
//! # For the embedding process
//!
//! - **Address.** [`BackendOptions::listen`] may use port 0; [`EmbeddedBackend::local_addr`]
//!   then gives the real port (plaintext HTTP/2: point workers and clients at
//!   `http://<local_addr>`).
//! - **Task hubs.** Each call's `taskhub` header selects a hub (`default` without one);
//!   hubs share nothing but the file.
//! - **Durability.** A call is answered only once its effects are committed (SQLite WAL,
//!   `synchronous=NORMAL`: safe against the process being killed at any moment, not
//!   against power loss). Handed-out work items are leases in memory: after a restart
//!   they are simply redelivered, and completion tokens from before are stale. If a
//!   batch cannot be saved (disk full, I/O error, the file locked by another process past
//!   SQLite's 5 s busy timeout), its callers get `INTERNAL` and the engine goes back to
//!   the last saved state as a restart would: work-item streams end (`UNAVAILABLE`,
//!   workers reconnect) and their work is redelivered.
//! - **Shutdown.** [`EmbeddedBackend::shutdown`] stops accepting calls, ends the work-item
//!   streams (their items are released) and the pending waits (`UNAVAILABLE`), gives
//!   calls in progress up to 5 s, saves and closes. Stop the worker first to let it
//!   deliver its results. Dropping an [`EmbeddedBackend`] instead stops it at once,
//!   like a crash (nothing acknowledged is lost).
//! - **Workers.** Quiet work-item streams get a `healthPing` every 20 s.
//!   `maxConcurrent*Items` of `GetWorkItemsRequest` are honoured per stream (0: no
//!   limit). A completion sent after its stream closed is still accepted until the item
//!   has been handed out again.

#![forbid(unsafe_code)]

/// How often the server pings an idle HTTP/2 connection, and how long it waits for the
/// answer before it drops the connection (and with it the worker's leases).
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

mod auth;
mod engine;
mod in_process;
mod limits;
mod lock;
pub mod metrics;
pub mod pg;
mod records;
mod service;
mod store;
mod validate;

pub use auth::{TokenFile, TokenFileError};
pub use in_process::InProcessClient;
pub use limits::{DEFAULT_MAX_PAYLOAD_BYTES, PAYLOAD_TOO_LARGE};
pub use lock::LockError;
pub use service::WorkItemStream;
pub use store::StoreError;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use durabletask_proto::task_hub_sidecar_service_server::TaskHubSidecarServiceServer;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;

use engine::{Command, EngineHandle};

/// The largest message accepted (histories and batches can be large).
const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
/// The default of [`BackendOptions::history_streaming_bytes`]: half the message limit.
pub const DEFAULT_HISTORY_STREAMING_BYTES: usize = MAX_MESSAGE_SIZE / 2;
/// The default of [`BackendOptions::max_history_events`]: the reference backend's.
pub const DEFAULT_MAX_HISTORY_EVENTS: usize = 10_000;
/// The errorType of an orchestration failed for [`BackendOptions::max_history_events`].
pub const HISTORY_TOO_LARGE: &str = "HistoryTooLarge";
/// How long [`EmbeddedBackend::shutdown`] waits for calls in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The protocol's service, as `grpc.health.v1` names it.
const SIDECAR_SERVICE: &str = "TaskHubSidecarService";

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the backend database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the backend engine thread: {0}")]
    Thread(std::io::Error),
    #[error("the backend engine stopped while starting")]
    EngineStopped,
    #[error(transparent)]
    Tokens(#[from] TokenFileError),
    #[error("cannot read the TLS file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid task hub name: {0}")]
    TaskHub(String),
    #[error("the TLS certificate or key is not usable: {0}")]
    Tls(tonic::transport::Error),
}

#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// The SQLite file (created if missing).
    pub database: PathBuf,
    /// Where to listen; port 0 picks a free port (see [`EmbeddedBackend::local_addr`]).
    pub listen: SocketAddr,
    /// The largest input, output, event, result or custom status accepted, in bytes
    /// (see the `limits` module for what happens to larger ones).
    pub max_payload_bytes: usize,
    /// A work item whose past events take more bytes than this (encoded) is sent
    /// without them and with `requiresHistoryStreaming`: the worker reads them with
    /// `StreamInstanceHistory`. Workers that do not support it (Microsoft's Python SDK
    /// 1.12) fail on such items, so the default only streams what could not be sent in
    /// one message anyway.
    pub history_streaming_bytes: usize,
    /// The most events one history may hold: an orchestration step that would take it
    /// further is refused with `RESOURCE_EXHAUSTED` and the orchestration fails with
    /// `HistoryTooLarge`; an event raised on it is refused with `RESOURCE_EXHAUSTED`.
    pub max_history_events: usize,
    /// Accept only calls with `authorization: Bearer <token>` naming a token of this
    /// file (one per line; re-read when it changes). `None`: no authentication.
    pub token_file: Option<PathBuf>,
    /// Serve TLS with this certificate chain and private key (PEM files). `None`:
    /// plaintext HTTP/2.
    pub tls: Option<TlsFiles>,
}

/// The PEM files of the backend's TLS identity.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    fn load(&self) -> Result<tonic::transport::ServerTlsConfig, BackendError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| BackendError::TlsFile {
                path: path.clone(),
                source,
            })
        };
        let identity =
            tonic::transport::Identity::from_pem(read(&self.certificate)?, read(&self.key)?);
        Ok(tonic::transport::ServerTlsConfig::new().identity(identity))
    }
}

impl BackendOptions {
    /// Options with the default limits.
    pub fn new(database: PathBuf, listen: SocketAddr) -> BackendOptions {
        BackendOptions {
            database,
            listen,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            history_streaming_bytes: DEFAULT_HISTORY_STREAMING_BYTES,
            max_history_events: DEFAULT_MAX_HISTORY_EVENTS,
            token_file: None,
            tls: None,
        }
    }
}

/// A running backend. Stop it with [`EmbeddedBackend::shutdown`]; dropping it stops it
/// abruptly, saving nothing more (everything acknowledged is already saved).
pub struct EmbeddedBackend {
    local_addr: SocketAddr,
    /// The calls' handler, shared by the gRPC server and [`InProcessClient`]s.
    service: service::Service,
    engine: EngineHandle,
    engine_thread: Option<std::thread::JoinHandle<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    stop_server: Option<oneshot::Sender<()>>,
    /// What `grpc.health.v1` answers.
    health: tonic_health::server::HealthReporter,
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBackend {
    /// Opens (creating if needed) the SQLite database, recovers its state, binds the
    /// listener and serves `TaskHubSidecarService` until [`EmbeddedBackend::shutdown`].
    ///
    /// Work items that were handed out but not completed before a crash are ready again
    /// and are redelivered to the next worker.
    pub async fn start(options: BackendOptions) -> Result<EmbeddedBackend, BackendError> {
        // Read first: a bad token file stops the start before anything is opened.
        let authenticator = auth::Authenticator(match &options.token_file {
            Some(path) => Some(auth::TokenFile::open(path)?),
            None => None,
        });
        let tls = options.tls.as_ref().map(TlsFiles::load).transpose()?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(BackendError::Tls)?;
        }
        let (engine, engine_thread) = engine::spawn(
            options.database.clone(),
            engine::HubLimits {
                history_streaming_bytes: options.history_streaming_bytes,
                max_history_events: options.max_history_events,
            },
        )
        .await?;
        let bind_error = |source| BackendError::Bind {
            address: options.listen,
            source,
        };
        let listener = match tokio::net::TcpListener::bind(options.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                stop_engine(&engine, engine_thread);
                return Err(bind_error(error));
            }
        };
        let local_addr = match listener.local_addr() {
            Ok(address) => address,
            Err(error) => {
                stop_engine(&engine, engine_thread);
                return Err(bind_error(error));
            }
        };
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let handler = service::Service::new(
            engine.clone(),
            limits::PayloadLimit(options.max_payload_bytes),
        );
        let service = TaskHubSidecarServiceServer::new(handler.clone())
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        let service = tonic::service::interceptor::InterceptedService::new(service, authenticator);
        // grpc.health.v1 beside it, without the token (probes such as Kubernetes' gRPC
        // probe send none; it says only whether the backend serves): SERVING for the
        // server ("") and for TaskHubSidecarService, NOT_SERVING from the start of a
        // shutdown.
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in ["", SIDECAR_SERVICE] {
            health
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            builder
                // A worker whose connection goes half-open (its machine gone, a network
                // partition) never closes its stream: pings find out, the stream ends,
                // and the work items leased to it are handed out again.
                .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
                .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
                .add_service(service)
                .add_service(health_service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        tracing::info!(address = %local_addr, database = %options.database.display(), "embedded backend listening");
        Ok(EmbeddedBackend {
            local_addr,
            service: handler,
            engine,
            engine_thread: Some(engine_thread),
            server: Some(server),
            stop_server: Some(stop_server),
            health,
        })
    }

    /// The address the backend listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A worker's client of task hub `hub` that calls the engine directly, without gRPC
    /// (see [`InProcessClient`]); for the embedding process's own worker. The error says
    /// what is wrong with the hub's name (the rules of the `taskhub` header).
    pub fn in_process_client(&self, hub: &str) -> Result<InProcessClient, BackendError> {
        InProcessClient::new(self.service.clone(), hub).map_err(BackendError::TaskHub)
    }

    /// Stops serving: work-item streams end (their leases are released, so the items
    /// are redelivered after the next start), waiters get `UNAVAILABLE`, calls in
    /// progress get up to a few seconds to finish, then the state is saved and the
    /// database closed.
    pub async fn shutdown(mut self) {
        // First no new calls (the server stops accepting), then the long-lived ones
        // (work-item streams, waiters) are ended, so the server can finish.
        for name in ["", SIDECAR_SERVICE] {
            self.health
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        let (reply, quiesced) = oneshot::channel();
        if self.engine.send(String::new(), Command::Quiesce(reply)) {
            let _ = quiesced.await;
        }
        if let Some(mut server) = self.server.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => {
                    tracing::warn!(%error, "the backend server ended with an error")
                }
                Ok(Err(error)) => tracing::warn!(%error, "the backend server task failed"),
                Err(_) => {
                    tracing::warn!(
                        "calls still in progress after {SHUTDOWN_GRACE:?}; closing anyway"
                    );
                    server.abort();
                }
            }
        }
        self.engine.shutdown();
        if let Some(thread) = self.engine_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        tracing::info!("embedded backend stopped");
    }
}

fn stop_engine(engine: &EngineHandle, thread: std::thread::JoinHandle<()>) {
    engine.shutdown();
    let _ = thread.join();
}

impl Drop for EmbeddedBackend {
    /// Stops at once, as if the process had died: nothing more is saved.
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(thread) = self.engine_thread.take() {
            self.engine.halt();
            let _ = thread.join();
        }
    }
}
