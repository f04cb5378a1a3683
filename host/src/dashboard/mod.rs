//! The web dashboard, served at the admin listener's root (`[admin] dashboard`, on by
//! default): pages to see and steer orchestrations and entities, for whatever backend the
//! host uses.
//!
//! It is a client of `TaskHubSidecarService` like `durabletask-host client`: every page's
//! data comes from the same `durabletask_client::Client` calls, over gRPC to the embedded
//! backend's listener (so a follower of a PostgreSQL cluster forwards them to the leader)
//! or to the remote backend. Only two things come from inside the host: the plugin
//! generations it serves (what a start form offers) and, when it runs the embedded
//! engine, its counts by status ([`counts`]).
//!
//! - `assets`: the page (one HTML shell, a script and a stylesheet, built into the
//!   binary: nothing to install, nothing fetched from elsewhere); `first_view`: the data
//!   a page's first view reads, sent with the page.
//! - [`api`]: `/api/...`, JSON, one handler per page or action; `request` admits the
//!   caller and reads its parameters and body, `answer` turns results and errors into
//!   HTTP.
//! - [`access`]: who may call the API and with which token the backend is called.
//! - [`listing`]: the instances listing with the name filter the protocol lacks.

pub mod access;
mod answer;
mod api;
mod assets;
pub mod counts;
mod first_view;
pub mod listing;
mod request;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use durabletask_backend::{InProcessClient, TokenFile};
use durabletask_client::connection::{BearerToken, TlsTrust};
use durabletask_client::{Client, ClientError, ClientOptions, Endpoint};

use crate::config::{BackendMode, Config};
use crate::plugins::PluginHost;
use access::Access;

/// At most this many distinct callers' tokens keep a connection each.
const MAX_CACHED_CLIENTS: usize = 16;
/// The host's own token is read again (and a new connection made) this often, so a
/// rotated token is picked up as the worker's reconnects pick it up.
const OWN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A connection and when it was made.
type CachedClient = (Arc<Client>, Instant);

/// What the dashboard serves from and calls.
pub struct Dashboard {
    access: Access,
    endpoint: Endpoint,
    taskhub: String,
    tls: TlsTrust,
    /// The host's own token for the backend (used unless the caller's is passed on).
    own_token: Option<durabletask_client::connection::TokenSource>,
    /// A start without a version gets this one, as `client start` does.
    default_version: Option<String>,
    /// Connections by the token they present (`None`: the host's own or none).
    clients: Mutex<HashMap<Option<String>, CachedClient>>,
    plugins: Option<Arc<PluginHost>>,
    embedded: Option<InProcessClient>,
    counts: counts::ListedCounts,
    /// Where the backend is, as `/status` says it.
    backend: String,
}

impl Dashboard {
    /// The dashboard of a host with `config`; the error names the setting at fault.
    ///
    /// `embedded_listener` is where the embedded backend listens in fact (its port may
    /// have been chosen at start, `listen = "127.0.0.1:0"`).
    pub fn from_config(
        config: &Config,
        plugins: Option<Arc<PluginHost>>,
        embedded: Option<(InProcessClient, std::net::SocketAddr)>,
        backend: String,
    ) -> Result<Dashboard, String> {
        let mut defaults = config.client_defaults();
        let embedded = embedded.map(|(client, listener)| {
            defaults.endpoint = Endpoint::to_listener(listener, config.embedded.serves_tls());
            client
        });
        let access = decide_access(
            config,
            defaults.token.is_some() || defaults.tls.identity.is_some(),
        )?;
        if !matches!(access, Access::Open | Access::Refused(_))
            && !config.admin.listen.ip().is_loopback()
        {
            tracing::warn!(
                listen = %config.admin.listen,
                "the dashboard's tokens travel in clear text to [admin] listen, which other machines reach: put TLS in front of it (a reverse proxy) or keep it on loopback"
            );
        }
        Ok(Dashboard {
            access,
            endpoint: defaults.endpoint,
            taskhub: defaults.taskhub,
            tls: defaults.tls,
            // With the embedded backend's tokens the caller's own is passed on instead.
            own_token: match config.backend.mode() {
                BackendMode::Embedded => None,
                BackendMode::Remote => defaults.token,
            },
            default_version: defaults.default_version,
            clients: Mutex::new(HashMap::new()),
            plugins,
            embedded,
            counts: counts::ListedCounts::default(),
            backend,
        })
    }

    /// The routes: the pages, their assets and `/api/...`.
    pub fn routes(self) -> Router {
        let api = api::routes(Arc::new(self));
        assets::routes(api.clone()).merge(api)
    }

    /// The connection to call the backend with for a caller admitted with `pass_on`.
    fn client(&self, pass_on: Option<String>) -> Result<Arc<Client>, ClientError> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let expires = pass_on.is_none() && self.own_token.is_some();
        if let Some((client, made)) = clients.get(&pass_on)
            && !(expires && made.elapsed() >= OWN_TOKEN_LIFETIME)
        {
            return Ok(Arc::clone(client));
        }
        let token = match &pass_on {
            Some(token) => Some(BearerToken::new(token.clone())),
            None => self
                .own_token
                .as_ref()
                .map(|source| source.read())
                .transpose()
                .map_err(|error| {
                    ClientError::Usage(format!("the host's backend token: {error}"))
                })?,
        };
        let client = Arc::new(Client::connect(&ClientOptions {
            endpoint: self.endpoint.clone(),
            taskhub: self.taskhub.clone(),
            token,
            tls: self.tls.clone(),
        })?);
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(pass_on, (Arc::clone(&client), Instant::now()));
        Ok(client)
    }
}

/// Who may use the dashboard (see [`access`]): `credentials` says whether the host calls a
/// remote backend with a token or a client certificate.
fn decide_access(config: &Config, credentials: bool) -> Result<Access, String> {
    let open = |path: &std::path::Path, setting: &str| {
        TokenFile::open(path).map_err(|error| format!("{setting}: {error}"))
    };
    if config.backend.mode() == BackendMode::Embedded
        && let Some(path) = &config.embedded.token_file
    {
        return Ok(Access::BackendTokens(open(path, "[embedded] token_file")?));
    }
    if let Some(path) = &config.admin.dashboard_token_file {
        return Ok(Access::DashboardTokens(open(
            path,
            "[admin] dashboard_token_file",
        )?));
    }
    if config.backend.mode() == BackendMode::Remote && credentials {
        return Ok(Access::Refused(
            "the dashboard is off: it would call the backend with this host's credentials for anyone who reaches the admin listener; set [admin] dashboard_token_file (its tokens then open the dashboard), or [admin] dashboard = false".to_owned(),
        ));
    }
    if !config.admin.listen.ip().is_loopback() {
        return Ok(Access::Refused(format!(
            "the dashboard is off: [admin] listen = \"{}\" is reachable from other machines, which could start, terminate and purge workflows; set [admin] dashboard_token_file (its tokens then open the dashboard), or [admin] dashboard = false",
            config.admin.listen
        )));
    }
    Ok(Access::Open)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The dashboard of a host configured with `text` (token files `backend.token`,
    /// `embedded.tokens` and `admin.tokens` exist beside it).
    fn access_of(text: &str) -> Result<Access, String> {
        let dir = tempfile::tempdir().unwrap();
        for file in ["backend.token", "embedded.tokens", "admin.tokens"] {
            std::fs::write(dir.path().join(file), "secret\n").unwrap();
        }
        let path = dir.path().join("host.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).map_err(|error| error.to_string())?;
        Dashboard::from_config(&config, None, None, "test".to_owned())
            .map(|dashboard| dashboard.access)
    }

    #[test]
    fn the_embedded_backends_tokens_guard_it_when_set() {
        let access = access_of(
            "[embedded]\ntoken_file = \"embedded.tokens\"\n\n[admin]\ndashboard_token_file = \"admin.tokens\"\n",
        )
        .unwrap();
        assert!(matches!(access, Access::BackendTokens(_)));
        let access = access_of("[admin]\ndashboard_token_file = \"admin.tokens\"\n").unwrap();
        assert!(matches!(access, Access::DashboardTokens(_)));
        assert!(matches!(access_of("").unwrap(), Access::Open));
    }

    #[test]
    fn a_scrapers_token_does_not_open_it() {
        // [admin] token_file is Prometheus's: on loopback the dashboard stays as open as
        // the backend, and its actions never take the scraper's token.
        let access = access_of("[admin]\ntoken_file = \"admin.tokens\"\n").unwrap();
        assert!(matches!(access, Access::Open));
    }

    #[test]
    fn a_listener_other_machines_reach_needs_a_dashboard_token() {
        let reachable = "[admin]\nlisten = \"0.0.0.0:9464\"\ninsecure = true\n";
        let Access::Refused(reason) = access_of(reachable).unwrap() else {
            panic!("an open dashboard on the network");
        };
        assert!(reason.contains("dashboard_token_file"), "{reason}");
        let guarded = format!("{reachable}dashboard_token_file = \"admin.tokens\"\n");
        assert!(matches!(
            access_of(&guarded).unwrap(),
            Access::DashboardTokens(_)
        ));
    }

    #[test]
    fn a_remote_backend_with_credentials_needs_a_dashboard_token() {
        let remote = "[backend]\nendpoint = \"http://backend.example:4001\"\ntoken_file = \"backend.token\"\n";
        let Access::Refused(reason) = access_of(remote).unwrap() else {
            panic!("a dashboard acting with the host's credentials for anyone");
        };
        assert!(reason.contains("[admin] dashboard_token_file"), "{reason}");
        let guarded = format!("{remote}\n[admin]\ndashboard_token_file = \"admin.tokens\"\n");
        assert!(matches!(
            access_of(&guarded).unwrap(),
            Access::DashboardTokens(_)
        ));
        let without_credentials = "[backend]\nendpoint = \"http://backend.example:4001\"\n";
        assert!(matches!(
            access_of(without_credentials).unwrap(),
            Access::Open
        ));
    }
}
