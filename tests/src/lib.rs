//! # durabletask-e2e: the end-to-end test harness
//!
//! Drives the real things a user runs, nothing mocked:
//! - [`Backend`]: Microsoft's in-memory Durable Task backend (`durabletask.testing` from the
//!   PyPI package `durabletask==1.12.0`), in a venv the harness creates once and reuses
//!   ([`python`]);
//! - [`Host`]: the `durabletask-host` binary with a generated `host.toml` and private copies
//!   of the plugins a test asks for;
//! - [`Client`]: the host's own `client` subcommand, whose JSON output is parsed into
//!   `serde_json::Value`s.
//!
//! Nothing here sleeps to synchronise: every wait is on a signal (the backend's `READY`
//! line, a host log line, a client `wait`) and every wait is bounded.
//!
//! The binaries and plugins must be built first (`cargo build --workspace`, plus
//! `cargo build -p faulty-plugin --profile panic-abort` for the panic=abort plugin);
//! `scripts/test` does all of it.

// Test code: a failed `expect` is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backend;
mod client;
mod error;
mod hello_probe;
mod host;
mod http;
pub mod otlp;
pub mod paths;
pub mod postgres;
mod process;
pub mod prometheus;
pub mod python;
mod python_worker;

pub use backend::{Backend, free_port};
pub use client::{Client, ClientRun, exit_codes, instance_id};
pub use error::{Context, Error, Result};
pub use hello_probe::HelloProbe;
pub use host::{
    ADMIN_LISTENING, EMBEDDED_LISTENING, EmbeddedBackend, Host, HostConfig, PluginFile,
    shipped_config,
};
pub use http::{HttpResponse, http_get};
pub use process::{poll_until, run_with_timeout};
pub use python_worker::PythonWorker;

use std::time::Duration;

/// How long any single wait in a test may take. Generous because the machine has two
/// cores and test binaries run their tests in parallel, each with a Python backend.
pub const WAIT: Duration = Duration::from_secs(60);

/// Set to `embedded` to run every [`Fixture`] on the host's own embedded backend instead
/// of Microsoft's reference backend, or to `postgres` to run it on the embedded backend
/// with its state in a fresh PostgreSQL database (scripts/test runs the conformance
/// suites all three ways).
pub const BACKEND_ENV: &str = "DURABLETASK_E2E_BACKEND";

/// Whether fixtures run on the host's embedded backend (see [`BACKEND_ENV`]), on SQLite
/// or PostgreSQL.
pub fn embedded_backend_selected() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|value| value == "embedded" || value == "postgres")
}

/// Whether the embedded backends of [`HostConfig::embedded`] keep their state in
/// PostgreSQL (see [`BACKEND_ENV`]).
pub fn postgres_backend_selected() -> bool {
    std::env::var(BACKEND_ENV).is_ok_and(|value| value == "postgres")
}

/// A backend, a host serving some plugins against it, and a client for both: what most
/// tests need. Dropping it kills the host, then the backend.
///
/// The backend is Microsoft's reference backend, or, with
/// `DURABLETASK_E2E_BACKEND=embedded`, the host's own embedded one (then `backend` is
/// `None`: the host is the backend).
pub struct Fixture {
    /// The running host (declared first so it is dropped before the backend).
    pub host: Host,
    /// The running reference backend, unless the host serves its own.
    pub backend: Option<Backend>,
    /// A client pointed at the backend.
    pub client: Client,
}

impl Fixture {
    /// Starts a backend and a host serving the given plugins (library names, as in
    /// `target/debug/lib<name>.so`) with default settings.
    pub fn start(plugins: &[&str]) -> Result<Self> {
        Self::start_with(plugins, |config| config)
    }

    /// Like [`Fixture::start`], with a chance to adjust the host's configuration.
    pub fn start_with(
        plugins: &[&str],
        configure: impl FnOnce(HostConfig) -> HostConfig,
    ) -> Result<Self> {
        let backend = if embedded_backend_selected() {
            None
        } else {
            Some(Backend::start()?)
        };
        let mut config = match &backend {
            Some(backend) => HostConfig::new(backend.endpoint()),
            None => HostConfig::embedded(),
        };
        for name in plugins {
            config = config.plugin(PluginFile::built(name)?);
        }
        let mut host = Host::start(&configure(config))?;
        let endpoint = match &backend {
            Some(backend) => backend.endpoint(),
            None => host.embedded_endpoint()?,
        };
        let client = Client::new(endpoint)?;
        Ok(Self {
            host,
            backend,
            client,
        })
    }

    /// A failure message for an assertion about `state`: the state and the host's log.
    pub fn explain(&self, state: &serde_json::Value) -> String {
        format!("instance state: {state:#}\n{}", self.host.log_tail())
    }

    /// Starts `name` with `input` and waits (bounded) for it to finish; returns the
    /// client's JSON view of the instance, whatever its final status.
    pub fn run(&self, name: &str, input: Option<serde_json::Value>) -> Result<serde_json::Value> {
        self.client
            .start_and_wait(name, input.as_ref(), WAIT)
            .with_context(|| self.host.log_tail())
    }
}

/// The output of the `hello` sample's `hello_cities`.
pub fn hello_cities_output() -> serde_json::Value {
    serde_json::json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
}

/// Asserts that `state` is a `hello_cities` run that completed with its greetings; a
/// failure shows the state and the host's log.
pub fn assert_hello_cities_completed(state: &serde_json::Value, host: &Host) {
    assert_eq!(
        state["status"],
        "COMPLETED",
        "{state:#}\n{}",
        host.log_tail()
    );
    assert_eq!(state["output"], hello_cities_output(), "{state:#}");
}
