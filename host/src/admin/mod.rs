//! The admin listener (`[admin]`): what operators' tools ask a running host.
//!
//! - `GET /livez`: 200 while the process serves HTTP at all.
//! - `GET /readyz`: 200 when work reaches plugin code, else 503; a JSON body says why
//!   ([`readiness`]).
//! - `GET /metrics`: the Prometheus text exposition ([`crate::telemetry`]); the embedded
//!   backend's state is read at each scrape.
//! - `GET /status`: JSON: version, backend, the work-item stream, the plugin generations
//!   in service and the work in flight.
//!
//! - `/` and `/api/...`: the web dashboard ([`crate::dashboard`]), unless `[admin]
//!   dashboard = false`.
//!
//! `/metrics` and `/status` name workflows, so with `[admin] token_file` they answer only
//! requests bearing one of its tokens; the probes stay open.

pub mod readiness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use durabletask_backend::{InProcessClient, TokenFile};
use serde_json::json;
use tokio::sync::oneshot;

use crate::config::AdminSettings;
use crate::plugins::PluginHost;
use crate::telemetry::{self, Recorder};
use crate::worker::{Reporting, StreamState};

/// What the host logs, followed by the URL, once the admin listener listens.
pub const LISTENING: &str = "admin listener on ";

/// At most this many work items in flight are listed on `/status`.
const MAX_LISTED: usize = 100;

/// What the listener reads from the rest of the host.
pub struct Sources {
    pub recorder: Recorder,
    /// `None` for a backend-only host (`durabletask-host serve`).
    pub plugins: Option<Arc<PluginHost>>,
    pub reporting: Reporting,
    /// The embedded backend, whose state `/metrics` reports.
    pub embedded: Option<InProcessClient>,
    /// For `/status`: where the backend is.
    pub backend: String,
    /// The web dashboard, served at the root (`[admin] dashboard`).
    pub dashboard: Option<crate::dashboard::Dashboard>,
}

struct Shared {
    sources: Sources,
    tokens: Option<Arc<TokenFile>>,
    started: Instant,
    /// The backlog names the last scrape published (see `durabletask_backend::metrics`).
    published_backlog: Mutex<BTreeMap<&'static str, Vec<String>>>,
}

/// The running listener; [`AdminServer::stop`] ends it.
pub struct AdminServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// Binds `settings.listen` and serves. The error names the setting.
    pub async fn start(
        settings: &AdminSettings,
        mut sources: Sources,
    ) -> Result<AdminServer, String> {
        let tokens = settings
            .token_file
            .as_deref()
            .map(TokenFile::open)
            .transpose()
            .map_err(|error| format!("[admin] token_file: {error}"))?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|error| {
                format!(
                    "cannot listen on [admin] listen = \"{}\": {error} (set another address, or enabled = false)",
                    settings.listen
                )
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|error| format!("[admin] listen: {error}"))?;
        // Answers go out as soon as they are written: with Nagle's algorithm a response
        // written in more than one piece can wait for the browser's delayed ACK (40 ms).
        let listener = listener.tap_io(|connection| {
            if let Err(error) = connection.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY on an admin connection");
            }
        });
        let dashboard = sources.dashboard.take();
        let shared = Arc::new(Shared {
            sources,
            tokens,
            started: Instant::now(),
            published_backlog: Mutex::new(BTreeMap::new()),
        });
        let upkeep = Arc::clone(&shared);
        let router = Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/status", get(status))
            .with_state(shared);
        let router = match dashboard {
            Some(dashboard) => router.merge(dashboard.routes()),
            None => router,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // Histogram samples are drained into buckets now and then, scraped or not.
            let upkeep = async move {
                let mut ticks = tokio::time::interval(std::time::Duration::from_secs(10));
                loop {
                    ticks.tick().await;
                    upkeep.sources.recorder.run_upkeep();
                }
            };
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            tokio::select! {
                result = serve => {
                    if let Err(error) = result {
                        tracing::error!(%error, "the admin listener failed");
                    }
                }
                () = upkeep => {}
            }
        });
        tracing::info!("{LISTENING}http://{local_addr}");
        Ok(AdminServer {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving (requests in progress finish).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
    }
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let readiness = match (&shared.sources.plugins, &shared.sources.embedded) {
        (Some(plugins), _) => readiness::judge(
            &shared.sources.reporting.stream.get(),
            plugins.catalog().generations().len(),
        ),
        (None, Some(embedded)) => readiness::judge_backend(&embedded.role()),
        (None, None) => readiness::judge_backend(&durabletask_backend::Role::Electing),
    };
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(readiness)).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_without_token(&shared, &headers) {
        return refused;
    }
    if let Some(plugins) = &shared.sources.plugins {
        let generations = plugins.catalog().generations().len();
        // A count of generations is far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(telemetry::GENERATIONS_IN_SERVICE).set(generations as f64);
    }
    if let Some(embedded) = &shared.sources.embedded {
        match embedded.stats().await {
            Ok(stats) => {
                let mut published = shared
                    .published_backlog
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                durabletask_backend::metrics::publish(&stats, &mut published);
            }
            Err(status) => {
                tracing::debug!(error = %status.message(), "the embedded backend's state could not be read for the metrics");
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.sources.recorder.render(),
    )
        .into_response()
}

async fn status(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_without_token(&shared, &headers) {
        return refused;
    }
    let sources = &shared.sources;
    let generations = sources
        .plugins
        .as_ref()
        .map(|plugins| generations_json(plugins))
        .unwrap_or_default();
    let mut items = sources.reporting.in_flight.snapshot();
    items.sort_by_key(|item| std::cmp::Reverse(item.age));
    let listed: Vec<_> = items
        .iter()
        .take(MAX_LISTED)
        .map(|item| {
            json!({
                "kind": crate::telemetry::kind_label(item.kind),
                "instance_id": item.instance_id,
                "name": item.name,
                "task_id": item.task_id,
                "age_seconds": item.age.as_secs_f64(),
            })
        })
        .collect();
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_seconds": shared.started.elapsed().as_secs_f64(),
        "backend": sources.backend,
        "backend_role": sources.embedded.as_ref().map(|embedded| embedded.role().to_string()),
        "stream": stream_json(&sources.reporting.stream.get()),
        "generations": generations,
        "in_flight": { "count": items.len(), "items": listed },
    });
    axum::Json(body).into_response()
}

/// The plugin generations in service and what each registers (`/status`, and the
/// dashboard's plugins page).
pub fn generations_json(plugins: &PluginHost) -> Vec<serde_json::Value> {
    plugins
        .catalog()
        .generations()
        .iter()
        .map(|generation| {
            let plugin = generation.plugin();
            json!({
                "label": generation.label(),
                "plugin": plugin.name,
                "version": plugin.version,
                "build": plugin.content_hash,
                "runs": plugin.runs_where(),
                "orchestrators": plugin.orchestrators,
                "activities": plugin.activities,
                "entities": plugin.entities,
            })
        })
        .collect()
}

fn stream_json(stream: &StreamState) -> serde_json::Value {
    let since = |time: &SystemTime| {
        time.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64())
    };
    match stream {
        StreamState::Open { since: time } => json!({ "state": "open", "since": since(time) }),
        StreamState::Down {
            reason,
            since: time,
        } => json!({ "state": "down", "reason": reason, "since": since(time) }),
        other => json!({ "state": other.label() }),
    }
}

/// `None` if the request may see the page; else the 401 to answer.
fn refuse_without_token(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let tokens = shared.tokens.as_ref()?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !presented.is_empty() && tokens.accepts(presented) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token of [admin] token_file is required\n",
        )
            .into_response(),
    )
}
