//! The embedded backend (`backend.mode = "embedded"`): the host serves its own Durable
//! Task backend, with its state in a SQLite file, on `[embedded] listen`. The host's
//! worker, the project's client and any other Durable Task SDK connect to it there.

use std::net::SocketAddr;

use durabletask_backend::{BackendOptions, EmbeddedBackend, TlsFiles};
use tokio::sync::oneshot;

use crate::config::{BackendSettings, EmbeddedSettings, Endpoint};

/// The embedded backend, served from a thread of its own (see [`start`]).
#[derive(Debug)]
pub struct Embedded {
    local_addr: SocketAddr,
    /// Dropped or sent: the backend shuts down (gracefully, saving its state).
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Opens the database (creating its folder if needed), recovers the state it holds and
/// starts serving. The error names what failed.
///
/// The backend's gRPC server runs on a thread of its own, with its own single-threaded
/// runtime, not on the worker's event loop: plugin code that blocks the loop (an
/// orchestrator that sleeps, an activity that blocks before its first `.await`) must not
/// stop the backend from answering other clients and workers. (Its engine already has a
/// thread of its own.) It also lets the backend and the worker use both cores.
pub async fn start(settings: &EmbeddedSettings) -> Result<Embedded, String> {
    if let Some(folder) = settings.database.parent()
        && !folder.as_os_str().is_empty()
    {
        std::fs::create_dir_all(folder).map_err(|error| {
            format!(
                "cannot create the folder of the embedded backend's database {}: {error}",
                settings.database.display()
            )
        })?;
    }
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
        ..BackendOptions::new(settings.database.clone(), settings.listen)
    };
    let failed = |error: String| {
        format!(
            "cannot start the embedded backend (database {}, listen {}): {error}",
            settings.database.display(),
            settings.listen
        )
    };
    let (ready, started) = oneshot::channel::<Result<SocketAddr, String>>();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("embedded-backend".into())
        .spawn(move || serve(options, ready, stopped))
        .map_err(|error| failed(format!("cannot start its thread: {error}")))?;
    let local_addr = match started.await {
        Ok(Ok(address)) => address,
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
        database = %settings.database.display(),
        tls = settings.serves_tls(),
        "embedded backend listening on {local_addr}"
    );
    Ok(Embedded {
        local_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// The backend's thread: starts it, says whether it did, serves until told to stop (or
/// until the host lets go of it), then shuts it down gracefully.
fn serve(
    options: BackendOptions,
    ready: oneshot::Sender<Result<SocketAddr, String>>,
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
                let _ = ready.send(Ok(backend.local_addr()));
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

/// The backend settings the worker uses to reach the embedded backend: its actual
/// address (the configured port may be 0), over https when it serves TLS, the configured
/// task hub, the first token of `[embedded] token_file` if it is set, and its certificate
/// as the root to trust (the config puts these in `backend.token_file`, `ca_file` and
/// `tls_server_name`).
pub fn worker_settings(
    backend: &Embedded,
    embedded: &EmbeddedSettings,
    configured: &BackendSettings,
) -> BackendSettings {
    let mut settings = configured.clone();
    settings.endpoint = Endpoint::to_listener(backend.local_addr(), embedded.serves_tls());
    settings.token_env = None;
    settings
}
