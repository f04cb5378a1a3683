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
pub mod cluster;
mod engine;
mod in_process;
mod limits;
mod lock;
pub mod metrics;
pub mod pg;
pub mod records;
mod service;
pub mod store;
mod validate;

pub use auth::{TokenFile, TokenFileError};
pub use cluster::PostgresOptions;
pub use in_process::{InProcessClient, InProcessWorkItems};
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
pub(crate) const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
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
    #[error(transparent)]
    Migration(#[from] pg::MigrationError),
    #[error("{0}")]
    Cluster(String),
}

/// What a backend does for its task hubs (see [`EmbeddedBackend::role`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// It runs the engine over its own SQLite file.
    Alone,
    /// It holds the lease on a PostgreSQL task hub and runs the engine.
    Leader,
    /// Another host holds the lease; calls are forwarded to it at `leader`.
    Follower { leader: String },
    /// No host holds the lease right now (a takeover is under way).
    Electing,
}

impl Role {
    pub(crate) fn of(route: &cluster::Route) -> Role {
        match route {
            cluster::Route::Leader(_) => Role::Leader,
            cluster::Route::Follower(link) => Role::Follower {
                leader: link.leader.address.clone(),
            },
            cluster::Route::Electing => Role::Electing,
        }
    }

    /// Whether calls are served (here or through the leader).
    pub fn serves(&self) -> bool {
        !matches!(self, Role::Electing)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Alone => f.write_str("alone (SQLite)"),
            Role::Leader => f.write_str("leader (runs the engine)"),
            Role::Follower { leader } => write!(f, "follower of {leader}"),
            Role::Electing => f.write_str("electing (no host runs the engine)"),
        }
    }
}

/// Where the backend keeps its state.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file (created if missing), used by this backend alone.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by every host configured with it (see [`cluster`]).
    Postgres(PostgresOptions),
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Database {
        Database::Sqlite(path)
    }
}

impl std::fmt::Display for Database {
    /// The file, or the PostgreSQL server and database without credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            // The server and database only: credentials may be in the user part (a
            // password may even hold an unescaped '@': the last one ends it) or in the
            // query string (`?password=`), which is left out whole.
            Database::Postgres(options) => {
                let Some((scheme, rest)) = options.url.split_once("://") else {
                    return f.write_str("a PostgreSQL database");
                };
                let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
                write!(f, "{scheme}://{rest}")
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct BackendOptions {
    /// Where the state is kept.
    pub database: Database,
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
    pub fn new(database: impl Into<Database>, listen: SocketAddr) -> BackendOptions {
        BackendOptions {
            database: database.into(),
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
    engine: Engines,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    stop_server: Option<oneshot::Sender<()>>,
    /// What `grpc.health.v1` answers.
    health: tonic_health::server::HealthReporter,
}

/// The engine this backend serves.
enum Engines {
    /// Its own, over a SQLite file.
    Own {
        /// The calls' handler, shared by the gRPC server and [`InProcessClient`]s.
        service: service::Service,
        engine: EngineHandle,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    /// Whichever host of a PostgreSQL cluster holds the lease (this one at times).
    Cluster(Option<cluster::Cluster>),
}

impl std::fmt::Debug for EmbeddedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBackend")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBackend {
    /// Opens (creating if needed) the database, recovers its state, binds the listener
    /// and serves `TaskHubSidecarService` until [`EmbeddedBackend::shutdown`]. On
    /// PostgreSQL the schema is migrated first, and the engine runs on whichever host of
    /// the cluster holds the lease (see [`cluster`]).
    ///
    /// Work items that were handed out but not completed before a crash are ready again
    /// and are redelivered to the next worker.
    pub async fn start(options: BackendOptions) -> Result<EmbeddedBackend, BackendError> {
        // Read first: a bad token file stops the start before anything is opened.
        let token_file = match &options.token_file {
            Some(path) => Some(auth::TokenFile::open(path)?),
            None => None,
        };
        let authenticator = auth::Authenticator(token_file.clone());
        let tls = options.tls.as_ref().map(TlsFiles::load).transpose()?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(BackendError::Tls)?;
        }
        let limits = engine::HubLimits {
            history_streaming_bytes: options.history_streaming_bytes,
            max_history_events: options.max_history_events,
        };
        let payload = limits::PayloadLimit(options.max_payload_bytes);
        let own_engine = match &options.database {
            Database::Sqlite(path) => {
                let path = path.clone();
                Some(engine::spawn(move || store::Store::open(&path), limits).await?)
            }
            Database::Postgres(postgres) => {
                let connector = postgres
                    .connector("durabletask-migrate")
                    .map_err(|error| BackendError::Cluster(error.to_string()))?;
                let applied = pg::migrate_database(&connector).await?;
                if !applied.is_empty() {
                    tracing::info!(versions = ?applied, "PostgreSQL schema migrated");
                }
                None
            }
        };
        let stop_own = |own: Option<(EngineHandle, std::thread::JoinHandle<()>)>| {
            if let Some((engine, thread)) = own {
                stop_engine(&engine, thread);
            }
        };
        let bind_error = |source| BackendError::Bind {
            address: options.listen,
            source,
        };
        let listener = match tokio::net::TcpListener::bind(options.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                stop_own(own_engine);
                return Err(bind_error(error));
            }
        };
        let local_addr = match listener.local_addr() {
            Ok(address) => address,
            Err(error) => {
                stop_own(own_engine);
                return Err(bind_error(error));
            }
        };
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
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
        let mut builder = builder
            // A worker whose connection goes half-open (its machine gone, a network
            // partition) never closes its stream: pings find out, the stream ends,
            // and the work items leased to it are handed out again.
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
        let (router, engines) = match (&options.database, own_engine) {
            (Database::Postgres(postgres), _) => {
                let setup = cluster_setup(
                    postgres,
                    &options,
                    local_addr,
                    limits,
                    payload,
                    token_file.clone(),
                )?;
                let cluster = cluster::Cluster::start(setup);
                // Serving before this host knows where the engine is would refuse every
                // call: wait for the first answer (this host took the lease and loaded
                // the state, or another holds it). That takes up to a takeover time
                // when the last leader died without giving the lease up.
                let mut route = cluster.route();
                if route
                    .wait_for(|route| !matches!(route, cluster::Route::Electing))
                    .await
                    .is_err()
                {
                    return Err(BackendError::EngineStopped);
                }
                let switch = cluster::route::RouteSwitch {
                    route: cluster.route(),
                };
                let service =
                    tonic::service::interceptor::InterceptedService::new(switch, authenticator);
                (
                    builder.add_service(service).add_service(health_service),
                    Engines::Cluster(Some(cluster)),
                )
            }
            (Database::Sqlite(_), Some((engine, thread))) => {
                let handler = service::Service::new(engine.clone(), payload);
                let service = TaskHubSidecarServiceServer::new(handler.clone())
                    .max_decoding_message_size(MAX_MESSAGE_SIZE)
                    .max_encoding_message_size(MAX_MESSAGE_SIZE);
                let service =
                    tonic::service::interceptor::InterceptedService::new(service, authenticator);
                (
                    builder.add_service(service).add_service(health_service),
                    Engines::Own {
                        service: handler,
                        engine,
                        thread: Some(thread),
                    },
                )
            }
            (Database::Sqlite(_), None) => return Err(BackendError::EngineStopped),
        };
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        }));
        tracing::info!(address = %local_addr, database = %options.database, "embedded backend listening");
        Ok(EmbeddedBackend {
            local_addr,
            engine: engines,
            server: Some(server),
            stop_server: Some(stop_server),
            health,
        })
    }

    /// The address the backend listens on (with the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What this backend does for its task hubs now.
    pub fn role(&self) -> Role {
        match &self.engine {
            Engines::Own { .. } => Role::Alone,
            Engines::Cluster(None) => Role::Electing,
            Engines::Cluster(Some(cluster)) => Role::of(&cluster.route().borrow()),
        }
    }

    /// Waits until this backend runs the engine itself (alone, or as the cluster's
    /// leader).
    pub async fn until_leader(&self) {
        let Engines::Cluster(Some(cluster)) = &self.engine else {
            return;
        };
        let mut route = cluster.route();
        let _ = route
            .wait_for(|route| matches!(route, cluster::Route::Leader(_)))
            .await;
    }

    /// A worker's client of task hub `hub` that calls the engine directly, without gRPC
    /// (see [`InProcessClient`]); for the embedding process's own worker. The error says
    /// what is wrong with the hub's name (the rules of the `taskhub` header).
    pub fn in_process_client(&self, hub: &str) -> Result<InProcessClient, BackendError> {
        match &self.engine {
            Engines::Own { service, .. } => InProcessClient::new(service.clone(), hub),
            Engines::Cluster(Some(cluster)) => InProcessClient::switched(cluster.route(), hub),
            Engines::Cluster(None) => return Err(BackendError::EngineStopped),
        }
        .map_err(BackendError::TaskHub)
    }

    /// Stops serving: work-item streams end (their leases are released, so the items
    /// are redelivered after the next start), waiters get `UNAVAILABLE`, calls in
    /// progress get up to a few seconds to finish, then the state is saved and the
    /// database closed. In a cluster, the lease is given up, so another host takes over
    /// at once.
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
        let engine = match &self.engine {
            Engines::Own { engine, .. } => Some(engine.clone()),
            Engines::Cluster(cluster) => cluster.as_ref().and_then(cluster::Cluster::engine),
        };
        if let Some(engine) = engine {
            let (reply, quiesced) = oneshot::channel();
            if engine.send(String::new(), Command::Quiesce(reply)) {
                let _ = quiesced.await;
            }
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
        match &mut self.engine {
            Engines::Own { engine, thread, .. } => {
                engine.shutdown();
                if let Some(thread) = thread.take() {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
            Engines::Cluster(cluster) => {
                if let Some(cluster) = cluster.take() {
                    cluster.shutdown().await;
                }
            }
        }
        tracing::info!("embedded backend stopped");
    }
}

/// What this host's lease supervisor needs: its identity and address in the lease row,
/// how to reach other hosts, and the engine's limits.
fn cluster_setup(
    postgres: &PostgresOptions,
    options: &BackendOptions,
    local_addr: SocketAddr,
    limits: engine::HubLimits,
    payload: limits::PayloadLimit,
    token_file: Option<std::sync::Arc<auth::TokenFile>>,
) -> Result<cluster::Setup, BackendError> {
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let address = match &postgres.advertise {
        Some(address) => address.clone(),
        None if local_addr.ip().is_unspecified() => {
            return Err(BackendError::Cluster(format!(
                "the backend listens on {local_addr}, which other hosts cannot use to reach it: set the address they should use (advertise)"
            )));
        }
        None => {
            if local_addr.ip().is_loopback() {
                tracing::warn!(
                    address = %local_addr,
                    "this host listens on loopback and sets no advertise address: only hosts on this machine can forward calls to it when it runs the engine"
                );
            }
            format!("{scheme}://{local_addr}")
        }
    };
    let peer_tls = match (&postgres.peer_ca_file, &options.tls) {
        (Some(path), _) => {
            let pem = std::fs::read(path).map_err(|source| BackendError::TlsFile {
                path: path.clone(),
                source,
            })?;
            Some(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )
        }
        (None, Some(_)) => {
            return Err(BackendError::Cluster(
                "the hosts serve TLS, so each must be able to check the others' certificates: set the CA file that signed them (peer_ca_file)".to_owned(),
            ));
        }
        (None, None) => None,
    };
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    // Where this host's pid means something: the machine's boot and the PID namespace.
    // Two containers with one hostname but PID namespaces of their own differ here, so
    // neither takes the other's live process for dead (see the lease's `machine`). If a
    // part cannot be read the identity is empty, which matches no other host.
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default();
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .map(|link| link.display().to_string())
        .unwrap_or_default();
    let pid_space = if [&machine, &boot, &namespace]
        .iter()
        .any(|part| part.is_empty())
    {
        String::new()
    } else {
        format!("{machine}/{boot}/{namespace}")
    };
    Ok(cluster::Setup {
        lease_connector: postgres
            .connector("durabletask-lease")
            .map_err(|error| BackendError::Cluster(error.to_string()))?,
        engine_connector: postgres
            .connector("durabletask-engine")
            .map_err(|error| BackendError::Cluster(error.to_string()))?,
        takeover_time: postgres.takeover_time,
        candidate: pg::lease::Candidate {
            host_id: uuid::Uuid::new_v4().to_string(),
            host_name: format!("{machine} pid {} ({address})", std::process::id()),
            pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
            machine: pid_space,
            address,
        },
        limits,
        payload,
        peer_tls,
        token: token_file,
    })
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
        match &mut self.engine {
            Engines::Own { engine, thread, .. } => {
                if let Some(thread) = thread.take() {
                    engine.halt();
                    let _ = thread.join();
                }
            }
            // Its own drop halts the engine and leaves the lease to expire.
            Engines::Cluster(cluster) => drop(cluster.take()),
        }
    }
}
