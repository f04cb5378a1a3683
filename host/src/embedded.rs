//! The embedded backend (`backend.mode = "embedded"`): the host serves its own Durable
//! Task backend, with its state in a SQLite file or a PostgreSQL database shared with
//! other hosts (`durabletask_backend::cluster`), on `[embedded] listen`. The project's
//! client and any other Durable Task SDK connect to it there; the host's own worker
//! calls it in process ([`Embedded::in_process_client`]).

use std::net::SocketAddr;

use durabletask_backend::{
    BackendOptions, Database, EmbeddedBackend, InProcessClient, PostgresOptions, TlsFiles,
};
use tokio::sync::oneshot;

use crate::config::{DatabaseLocation, EmbeddedSettings};

/// The embedded backend, served from a thread of its own (see [`start`]).
#[derive(Debug)]
pub struct Embedded {
    local_addr: SocketAddr,
    in_process: InProcessClient,
    /// Dropped or sent: the backend shuts down (gracefully, saving its state).
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Opens the database (creating its folder if needed), recovers the state it holds and
/// starts serving; the host's worker will work on task hub `taskhub`. The error names
/// what failed.
///
/// The backend's gRPC server runs on a thread of its own, with its own single-threaded
/// runtime, not on the worker's event loop: plugin code that blocks the loop (an
/// orchestrator that sleeps, an activity that blocks before its first `.await`) must not
/// stop the backend from answering other clients and workers. (Its engine already has a
/// thread of its own.) It also lets the backend and the worker use both cores.
pub async fn start(settings: &EmbeddedSettings, taskhub: &str) -> Result<Embedded, String> {
    let database = match &settings.database {
        DatabaseLocation::Sqlite(path) => {
            if let Some(folder) = path.parent()
                && !folder.as_os_str().is_empty()
            {
                std::fs::create_dir_all(folder).map_err(|error| {
                    format!(
                        "cannot create the folder of the embedded backend's database {}: {error}",
                        settings.database
                    )
                })?;
            }
            Database::Sqlite(path.clone())
        }
        DatabaseLocation::Postgres(url) => Database::Postgres(PostgresOptions {
            takeover_time: settings.takeover_time,
            advertise: settings.advertise.clone(),
            peer_ca_file: settings.peer_ca_file.clone(),
            database_ca_file: settings.database_ca_file.clone(),
            ..PostgresOptions::new(url.clone())
        }),
    };
    let options = BackendOptions {
        max_payload_bytes: settings.max_payload_bytes,
        history_streaming_bytes: settings.history_streaming_bytes,
        max_history_events: settings.max_history_events,
        token_file: settings.token_file.clone(),
        tls: match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(certificate), Some(key)) => Some(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        ..BackendOptions::new(database, settings.listen)
    };
    let failed = |error: String| {
        format!(
            "cannot start the embedded backend (database {}, listen {}): {error}",
            settings.database, settings.listen
        )
    };
    let (ready, started) = oneshot::channel::<Result<Started, String>>();
    let (stop, stopped) = oneshot::channel::<()>();
    let taskhub = taskhub.to_owned();
    let thread = std::thread::Builder::new()
        .name("embedded-backend".into())
        .spawn(move || serve(options, &taskhub, ready, stopped))
        .map_err(|error| failed(format!("cannot start its thread: {error}")))?;
    let Started {
        local_addr,
        in_process,
    } = match started.await {
        Ok(Ok(started)) => started,
        Ok(Err(error)) => {
            let _ = thread.join();
            return Err(failed(error));
        }
        Err(_) => {
            let _ = thread.join();
            return Err(failed("its thread ended before it started".to_owned()));
        }
    };
    tracing::info!(
        database = %settings.database,
        tls = settings.serves_tls(),
        "embedded backend listening on {local_addr}"
    );
    Ok(Embedded {
        local_addr,
        in_process,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// What the backend's thread reports once the backend serves.
struct Started {
    local_addr: SocketAddr,
    in_process: InProcessClient,
}

/// The backend's thread: starts it, says whether it did, serves until told to stop (or
/// until the host lets go of it), then shuts it down gracefully.
fn serve(
    options: BackendOptions,
    taskhub: &str,
    ready: oneshot::Sender<Result<Started, String>>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(format!("cannot build its runtime: {error}")));
            return;
        }
    };
    runtime.block_on(async move {
        match EmbeddedBackend::start(options).await {
            Ok(backend) => {
                let in_process = match backend.in_process_client(taskhub) {
                    Ok(client) => client,
                    Err(error) => {
                        let _ = ready.send(Err(error.to_string()));
                        backend.shutdown().await;
                        return;
                    }
                };
                let _ = ready.send(Ok(Started {
                    local_addr: backend.local_addr(),
                    in_process,
                }));
                // A dropped sender (the host is going away) stops it as well.
                let _ = stopped.await;
                backend.shutdown().await;
            }
            Err(error) => {
                let _ = ready.send(Err(error.to_string()));
            }
        }
    });
}

impl Embedded {
    /// The address it listens on (with the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host's worker's client: calls into the engine, without gRPC.
    pub fn in_process_client(&self) -> InProcessClient {
        self.in_process.clone()
    }

    /// Stops serving and saves the state (see `EmbeddedBackend::shutdown`); returns
    /// once the database is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
