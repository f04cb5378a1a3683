//! The work-item loop: connect, receive work items, run them through a
//! [`WorkItemExecutor`], complete them, reconnect when the backend goes away, and drain
//! on shutdown.
//!
//! Module map: [`session`] is one connection's life, over the [`backend_client`] (gRPC,
//! or in process to the host's own embedded backend); [`dispatch`] turns work items into
//! tasks; [`completion`] sends results back; [`in_flight`] tracks accepted work;
//! [`drain`] finishes it on shutdown; [`permits`] bounds running activities, host-wide
//! and per plugin generation, and [`activity_watch`] times them out; [`backoff`] spaces
//! out reconnects (soon for a backend that does not answer, slowly for one that answers
//! with errors) and [`outage`] logs them; [`filters`] builds the optional work-item
//! filters.

mod activity_watch;
mod backend_client;
pub mod backoff;
mod completion;
mod dispatch;
mod drain;
pub mod executor;
pub mod filters;
mod history;
pub mod in_flight;
mod outage;
mod permits;
mod session;
mod stream_status;

use std::future::Future;
use std::sync::Arc;

use durabletask_backend::InProcessClient;
use durabletask_client::connection::{self, CallMetadata, ConnectionError};
use durabletask_proto::WorkItemFilters;
use tokio::sync::watch;

pub use executor::{ActivityOwner, EntityWork, OrchestratorOutcome, WorkItemExecutor};

use crate::config::{BackendMode, BackendSettings, WorkerSettings};
pub use backend_client::BackendClient;
use backoff::Backoff;
use dispatch::Dispatcher;
pub use in_flight::InFlight;
use session::{Failure, Session, SessionEnd};
pub use stream_status::{StreamState, StreamStatus};

/// What the worker reports while it runs, for the status report, the status page and
/// readiness: the work in flight, and where the work-item stream stands.
#[derive(Clone, Default)]
pub struct Reporting {
    pub in_flight: Arc<InFlight>,
    pub stream: StreamStatus,
}

/// Problems that stop the worker before it starts; everything after start-up is retried.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

/// Runs the worker until `shutdown` resolves, then drains in-flight work (bounded by
/// `settings.drain_timeout`) and returns.
///
/// `filters` holds the `GetWorkItemsRequest.workItemFilters` to send: `None` sends none
/// (the backend hands out everything), `Some` is sent as is ([`filters::generate`] builds
/// them from the plugins' registrations). Each stream is opened with the current value,
/// and a new value reopens the stream at once on the same connection, so whoever owns the
/// sender can renew them when the set of plugins changes. A dropped sender keeps the
/// last value. Accepted work items are registered in `reporting.in_flight` until they
/// end, and `reporting.stream` follows the work-item stream.
///
/// `in_process` is the host's own embedded backend, called without gRPC; with it,
/// `backend`'s connection settings are not used.
pub async fn run(
    settings: &WorkerSettings,
    backend: &BackendSettings,
    in_process: Option<InProcessClient>,
    executor: Arc<dyn WorkItemExecutor>,
    filters: watch::Receiver<Option<WorkItemFilters>>,
    reporting: Reporting,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let Reporting { in_flight, stream } = reporting;
    let worker_id = connection::new_worker_id();
    if in_process.is_none() {
        check_connection_settings(backend, &worker_id)?;
    }

    let (current_client, completion_client) = watch::channel(None);
    let dispatcher = Dispatcher::new(
        settings,
        executor,
        completion_client.clone(),
        Arc::clone(&in_flight),
        // The host's own backend hands an abandoned activity out again; of other backends
        // we cannot know it, and the reference one loses it.
        backend.mode() == BackendMode::Embedded,
    );
    let session = Session {
        settings,
        backend,
        in_process: in_process.as_ref(),
        worker_id: &worker_id,
        dispatcher: &dispatcher,
        current_client: &current_client,
        filters: &filters,
        stream: &stream,
    };

    tokio::pin!(shutdown);
    let mut client = None;
    let mut backoff = Backoff::default();
    let mut outage = outage::Outage::default();
    tracing::info!(endpoint = %session.endpoint(), taskhub = %backend.taskhub, worker_id, "worker starting");
    loop {
        let end = tokio::select! {
            biased;
            () = &mut shutdown => break,
            end = session.run(&mut client, &mut backoff, &mut outage) => end,
        };
        let failure = match end {
            SessionEnd::StreamClosed { delivered: true } => {
                // The backend ended the stream on purpose (e.g. a rolling restart): come
                // back at once, on a fresh connection.
                tracing::info!("the backend closed the work-item stream; reconnecting");
                stream.down("the backend closed the work-item stream");
                client = None;
                continue;
            }
            SessionEnd::FiltersChanged => {
                tracing::info!("the work-item filters changed; reopening the work-item stream");
                continue;
            }
            SessionEnd::StreamClosed { delivered: false } => {
                client = None;
                // It answered, so it is up: a backend that does this must not make us spin.
                Failure::refused("the backend closed the work-item stream before sending anything")
            }
            SessionEnd::ConnectionLost(failure) => {
                client = None;
                failure
            }
            SessionEnd::StreamFailed(failure) => failure,
        };
        stream.down(&failure.reason);
        let delay = backoff.next_delay(failure.cause);
        outage.failed(&failure, delay);
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            () = tokio::time::sleep(delay) => {}
        }
    }

    stream.draining();
    // Leaving the loop dropped the stream (the backend sees it cancelled); the connection
    // stays open in `current_client` for the drain's completions.
    drain::drain(&in_flight, settings.drain_timeout, &completion_client).await;
    drop(current_client);
    Ok(())
}

/// Fails fast on settings that no retry can fix, such as a missing token variable.
fn check_connection_settings(
    backend: &BackendSettings,
    worker_id: &str,
) -> Result<(), ConnectionError> {
    let token = backend
        .token_source()
        .map(|source| source.read())
        .transpose()?;
    let metadata = CallMetadata::new(&backend.taskhub, Some(worker_id), token.as_ref())?;
    // Lazy: this does not touch the network, it only validates the address.
    connection::connect(&backend.endpoint, &backend.tls_trust(), metadata)?;
    Ok(())
}
