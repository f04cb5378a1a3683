//! One connection attempt: connect and Hello (when needed), open the work-item stream,
//! and feed it to the dispatcher until the stream ends, fails or goes silent.
//!
//! How a session ended decides how the worker reconnects (protocol.md §1.8), so the
//! outcome is returned as a [`SessionEnd`] rather than an error.

use std::error::Error as _;
use std::time::Duration;

use durabletask_proto::{GetWorkItemsRequest, WorkItemFilters};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Code;

use durabletask_backend::InProcessClient;
use durabletask_client::connection::{self, CallMetadata};

use super::backend_client::BackendClient;
use super::backoff::{Backoff, Cause};
use super::dispatch::Dispatcher;
use super::outage::Outage;
use crate::config::{BackendSettings, WorkerSettings};

const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a session ended, which decides what the worker does next.
#[derive(Debug)]
pub enum SessionEnd {
    /// The backend closed the stream normally. `delivered` says whether any message came
    /// first: a backend that closes streams at once must not make us spin.
    StreamClosed { delivered: bool },
    /// The connection is unusable: drop it, back off, reconnect with Hello.
    ConnectionLost(Failure),
    /// The backend refused the stream with an application-level status: keep the
    /// connection, back off and open the stream again.
    StreamFailed(Failure),
    /// The work-item filters changed: open the stream again at once, with the new ones.
    FiltersChanged,
}

/// Why an attempt failed: what to log, and how soon to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: Cause,
    pub reason: String,
}

impl Failure {
    pub fn unreachable(reason: impl Into<String>) -> Self {
        Self {
            cause: Cause::Unreachable,
            reason: reason.into(),
        }
    }

    pub fn refused(reason: impl Into<String>) -> Self {
        Self {
            cause: Cause::Refused,
            reason: reason.into(),
        }
    }
}

pub struct Session<'a> {
    pub settings: &'a WorkerSettings,
    pub backend: &'a BackendSettings,
    /// The host's own embedded backend, reached without gRPC; `None`: `backend` over gRPC.
    pub in_process: Option<&'a InProcessClient>,
    pub worker_id: &'a str,
    pub dispatcher: &'a Dispatcher,
    /// Where completions look for the connection to use.
    pub current_client: &'a watch::Sender<Option<BackendClient>>,
    /// The work-item filters each stream is opened with (`None`: none are sent).
    pub filters: &'a watch::Receiver<Option<WorkItemFilters>>,
    /// Told when the stream opens (the worker's loop tells the rest).
    pub stream: &'a super::StreamStatus,
}

impl Session<'_> {
    /// Runs one session. `client` is the connection kept from the previous session, if it
    /// is still worth using; it is replaced here after a successful Hello.
    pub async fn run(
        &self,
        client: &mut Option<BackendClient>,
        backoff: &mut Backoff,
        outage: &mut Outage,
    ) -> SessionEnd {
        let active = match client {
            Some(active) => active.clone(),
            None => match self.connect().await {
                Ok(fresh) => {
                    // In process there is no connection to prove: only work delivered
                    // resets the backoff, so an engine that stopped is not asked again
                    // and again without a pause.
                    if matches!(fresh, BackendClient::Grpc(_)) {
                        backoff.reset();
                        outage.ended();
                        tracing::info!(
                            endpoint = %self.endpoint(),
                            taskhub = %self.backend.taskhub,
                            "connected"
                        );
                    }
                    self.current_client.send_replace(Some(fresh.clone()));
                    *client = Some(fresh.clone());
                    fresh
                }
                Err(failure) => return SessionEnd::ConnectionLost(failure),
            },
        };
        self.receive(active, backoff, outage).await
    }

    /// Where the worker's backend is, for the log.
    pub fn endpoint(&self) -> String {
        match self.in_process {
            Some(_) => "in-process".to_owned(),
            None => self.backend.endpoint.to_string(),
        }
    }

    /// A new channel, proven alive by Hello (in process: the embedded backend).
    async fn connect(&self) -> Result<BackendClient, Failure> {
        if let Some(in_process) = self.in_process {
            return Ok(BackendClient::InProcess(in_process.clone()));
        }
        // A token that cannot be read is a local problem no quick retry fixes.
        let local = |error: connection::ConnectionError| Failure::refused(error.to_string());
        // A token command may take seconds: off the event loop, which has work in flight.
        let source = self.backend.token_source();
        let token =
            tokio::task::spawn_blocking(move || source.map(|source| source.read()).transpose())
                .await
                .map_err(|error| {
                    Failure::refused(format!("reading the bearer token failed: {error}"))
                })?
                .map_err(local)?;
        let metadata =
            CallMetadata::new(&self.backend.taskhub, Some(self.worker_id), token.as_ref())
                .map_err(local)?;
        let tls = self.backend.tls_trust();
        let client = BackendClient::Grpc(
            connection::connect(&self.backend.endpoint, &tls, metadata).map_err(local)?,
        );
        match tokio::time::timeout(HELLO_TIMEOUT, client.hello()).await {
            Ok(Ok(_)) => Ok(client),
            Ok(Err(status)) => Err(Failure {
                cause: cause(&status),
                reason: format!("Hello failed: {}", reason(&status)),
            }),
            Err(_) => Err(Failure::unreachable(format!(
                "Hello got no answer within {HELLO_TIMEOUT:?}"
            ))),
        }
    }

    /// Reads the work-item stream until it ends. A stream that opens ends an outage
    /// (the backend serves us again); the backoff count is reset only by a Hello or by
    /// work delivered, so a backend that opens streams and fails them at once is still
    /// backed off.
    async fn receive(
        &self,
        client: BackendClient,
        backoff: &mut Backoff,
        outage: &mut Outage,
    ) -> SessionEnd {
        let silence = self.settings.stream_silence_timeout;
        let watch_silence = !silence.is_zero();
        // One timer, pushed back on every message, rather than a new timeout per message.
        let deadline = tokio::time::sleep(if watch_silence {
            silence
        } else {
            Duration::MAX / 4
        });
        tokio::pin!(deadline);
        let silent = || {
            SessionEnd::ConnectionLost(Failure::unreachable(format!(
                "no message from the backend for {silence:?}"
            )))
        };

        // This stream's filters are the current ones; a later change ends it, so that
        // the next one is opened with the new filters.
        let mut filters = self.filters.clone();
        let request = self.work_items_request(filters.borrow_and_update().clone());
        let filters_changed = async move {
            if filters.changed().await.is_err() {
                // The sender is gone: the filters can no longer change.
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(filters_changed);

        // Some servers send the response headers only with the first item, so opening the
        // stream is covered by the silence timeout too.
        let opened = tokio::select! {
            opened = client.get_work_items(request) => opened,
            () = &mut deadline, if watch_silence => return silent(),
            () = &mut filters_changed => return SessionEnd::FiltersChanged,
        };
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(status) => return classify(&status),
        };
        outage.ended();
        self.stream.opened();

        let mut delivered = false;
        loop {
            let next = tokio::select! {
                next = stream.message() => next,
                () = &mut deadline, if watch_silence => return silent(),
                () = &mut filters_changed => return SessionEnd::FiltersChanged,
            };
            match next {
                Ok(Some(item)) => {
                    if !delivered {
                        backoff.reset();
                    }
                    delivered = true;
                    let kind = self.dispatcher.dispatch(item);
                    // Our own wait for capacity is not the backend's silence.
                    self.dispatcher.wait_for_capacity(kind).await;
                    if watch_silence {
                        deadline.as_mut().reset(Instant::now() + silence);
                    }
                }
                Ok(None) => return SessionEnd::StreamClosed { delivered },
                Err(status) => return classify(&status),
            }
        }
    }

    fn work_items_request(&self, filters: Option<WorkItemFilters>) -> GetWorkItemsRequest {
        let limit = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
        GetWorkItemsRequest {
            max_concurrent_orchestration_work_items: limit(
                self.settings.max_concurrent_orchestrations,
            ),
            max_concurrent_activity_work_items: limit(self.settings.max_concurrent_activities),
            max_concurrent_entity_work_items: limit(self.settings.max_concurrent_entities),
            // Absent unless enabled: the backend then sends every work item (§1.4).
            work_item_filters: filters,
            ..Default::default()
        }
    }
}

/// Sorts a stream error into connection-level or application-level (protocol.md §1.8).
pub fn classify(status: &tonic::Status) -> SessionEnd {
    let failure = Failure {
        cause: cause(status),
        reason: reason(status),
    };
    let connection_level = matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unauthenticated
            | Code::Aborted
    );
    // A status made on our side from a transport failure: the connection is what failed.
    if connection_level || made_here(status) {
        SessionEnd::ConnectionLost(failure)
    } else {
        SessionEnd::StreamFailed(failure)
    }
}

/// Whether a failed call means nothing answered (the backend is down, restarting or out
/// of reach: try again soon) or that the backend answered with an error (back off).
/// `UNAVAILABLE` counts as no answer whoever sent it: a proxy in front of a backend that
/// is down says exactly that, and answering it costs nothing.
pub fn cause(status: &tonic::Status) -> Cause {
    let unanswered = matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    );
    if unanswered || made_here(status) {
        Cause::Unreachable
    } else {
        Cause::Refused
    }
}

/// A status with an underlying error was made on our side from a transport failure (a
/// reset connection often surfaces as UNKNOWN or INTERNAL); statuses sent by the server
/// never carry one.
fn made_here(status: &tonic::Status) -> bool {
    status.source().is_some()
}

/// A status as a reconnect reason: its code, message and causes.
fn reason(status: &tonic::Status) -> String {
    format!(
        "{:?}: {}",
        status.code(),
        connection::describe_status(status)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_level_codes_drop_the_connection() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Unauthenticated,
            Code::Aborted,
        ] {
            assert!(
                matches!(
                    classify(&tonic::Status::new(code, "x")),
                    SessionEnd::ConnectionLost(_)
                ),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_backend_that_does_not_answer_is_tried_again_soon() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Cancelled] {
            assert_eq!(
                cause(&tonic::Status::new(code, "x")),
                Cause::Unreachable,
                "{code:?}"
            );
        }
        // A refused connection: tonic's own status, with the transport error as its source.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = tonic::Status::from_error(Box::new(refused));
        assert_eq!(cause(&status), Cause::Unreachable, "{status:?}");
        assert!(matches!(classify(&status), SessionEnd::ConnectionLost(_)));
    }

    #[test]
    fn a_backend_that_answers_with_an_error_is_backed_off() {
        for code in [
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::Unimplemented,
            Code::Internal,
            Code::Aborted,
        ] {
            assert_eq!(
                cause(&tonic::Status::new(code, "x")),
                Cause::Refused,
                "{code:?}"
            );
        }
    }

    #[test]
    fn other_codes_keep_the_connection() {
        for code in [
            Code::Internal,
            Code::Unimplemented,
            Code::Unknown,
            Code::ResourceExhausted,
        ] {
            assert!(
                matches!(
                    classify(&tonic::Status::new(code, "x")),
                    SessionEnd::StreamFailed(_)
                ),
                "{code:?}"
            );
        }
    }
}
