//! Several hosts serving one task hub whose state is in PostgreSQL.
//!
//! One host at a time runs the engine (the same engine as on SQLite, over
//! [`crate::pg::store::PgStore`]): the one holding the lease in the database
//! ([`crate::pg::lease`]). Every host serves `TaskHubSidecarService`; a host that does not
//! hold the lease forwards each call to the one that does ([`route`]), and its own
//! worker's calls go there too. So workers and clients may connect to any host, and the
//! plugins of every host share the work, while every rule of the engine (entity locks,
//! sub-orchestrations, timers, rewind, purge, queries) holds exactly as on SQLite: there
//! is one engine, so nothing needs a protocol between hosts.
//!
//! When the leader dies or is cut off, its lease expires after `takeover_time`; another
//! host takes it (incrementing the epoch), loads the state and serves; workers reconnect
//! through their hosts. A leader that was paused past its lease cannot commit when it
//! resumes (every transaction is fenced by the epoch) and answers nothing more from
//! memory (its own clock says its lease is over): it steps back and follows.
//!
//! ARCHITECTURE.md says why this design and what its limit is.

pub mod route;
mod supervisor;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::EngineHandle;
use crate::pg::lease::LeaseClock;
pub use route::Route;

/// The default of [`PostgresOptions::takeover_time`].
pub const DEFAULT_TAKEOVER_TIME: Duration = Duration::from_secs(5);

/// A task hub in PostgreSQL, shared by the hosts configured with the same database.
/// (Its `Debug` leaves the URL out: it may hold a password.)
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database[?sslmode=require]` (never logged with
    /// its password; see [`crate::pg::connect`] for TLS).
    pub url: String,
    /// The lease time: a leader that stops renewing (dead, paused, cut off) is replaced
    /// this long after its last renewal, plus the time to load the state.
    pub takeover_time: Duration,
    /// The URL other hosts forward calls to; `None`: this host's listen address (which
    /// must then not be a wildcard address).
    pub advertise: Option<String>,
    /// The CA certificate (PEM) other hosts' TLS certificates are checked against, when
    /// the hosts serve TLS.
    pub peer_ca_file: Option<PathBuf>,
    /// With `sslmode=require` in the URL: the CA certificate (PEM) the database server's
    /// certificate is checked against (the system's roots when `None`).
    pub database_ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("takeover_time", &self.takeover_time)
            .field("advertise", &self.advertise)
            .field("peer_ca_file", &self.peer_ca_file)
            .field("database_ca_file", &self.database_ca_file)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// How to reach the database, naming the connection `application_name` to the
    /// server (what `pg_stat_activity` shows).
    pub fn connector(
        &self,
        application_name: &str,
    ) -> Result<crate::pg::Connector, crate::pg::ConnectError> {
        crate::pg::Connector::new(
            &self.url,
            self.database_ca_file.as_deref(),
            application_name,
        )
    }

    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            takeover_time: DEFAULT_TAKEOVER_TIME,
            advertise: None,
            peer_ca_file: None,
            database_ca_file: None,
        }
    }
}

/// This host's part in a cluster: the task that takes, renews and gives up the lease,
/// and where calls go meanwhile.
pub struct Cluster {
    route: watch::Receiver<Route>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The engine this host runs while it holds the lease.
    engine: Arc<Mutex<Option<EngineHandle>>>,
    clock: Arc<LeaseClock>,
}

impl Cluster {
    pub(crate) fn start(setup: supervisor::Setup) -> Cluster {
        let (route_sender, route) = watch::channel(Route::Electing);
        let (stop, stopping) = watch::channel(false);
        let engine = Arc::new(Mutex::new(None));
        let clock = LeaseClock::new();
        let task = tokio::spawn(
            supervisor::Supervisor::new(
                setup,
                route_sender,
                stopping,
                engine.clone(),
                clock.clone(),
            )
            .run(),
        );
        Cluster {
            route,
            stop,
            task: Some(task),
            engine,
            clock,
        }
    }

    /// Where calls go now; changes as the lease moves.
    pub fn route(&self) -> watch::Receiver<Route> {
        self.route.clone()
    }

    /// The engine this host runs, if it holds the lease.
    pub(crate) fn engine(&self) -> Option<EngineHandle> {
        self.engine.lock().ok().and_then(|engine| engine.clone())
    }

    /// A clean stop: the engine (if this host runs it) saves and stops, and the lease is
    /// given up at once, so another host takes over without waiting for it to expire.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Cluster {
    /// Stops at once, as if the process had died: nothing more is committed or answered,
    /// and the lease is left to expire.
    fn drop(&mut self) {
        self.clock.revoke();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Ok(engine) = self.engine.lock()
            && let Some(engine) = engine.as_ref()
        {
            engine.halt();
        }
    }
}

pub(crate) use supervisor::Setup;
