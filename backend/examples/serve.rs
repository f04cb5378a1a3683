//! Serves the embedded backend on its own: `serve <database> [port]`.
//!
//! Not part of the product (the host embeds the backend); it exists to benchmark the
//! backend with the peer harness and to run the E2E suite against it. It prints
//! `READY port=<p> pid=<n>` once listening, like `tests/reference_backend.py`, and
//! shuts down cleanly on SIGINT or SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_backend::{BackendOptions, EmbeddedBackend};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let database: std::path::PathBuf = args.next().expect("usage: serve <database> [port]").into();
    let port: u16 = args
        .next()
        .map_or(0, |port| port.parse().expect("a port number"));
    let backend =
        EmbeddedBackend::start(BackendOptions::new(database, ([127, 0, 0, 1], port).into()))
            .await
            .unwrap();
    println!(
        "READY port={} pid={}",
        backend.local_addr().port(),
        std::process::id()
    );
    let mut terminate = signal(SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    backend.shutdown().await;
}
