//! Connections to the task hub's PostgreSQL database: plaintext, or TLS when the URL
//! says `sslmode=require`.
//!
//! With TLS the server's certificate is always verified (name and chain), against the
//! CA file configured for it or else the system's roots: stricter than libpq's
//! `require`, which does not verify, because a host that talks to an impostor database
//! would hand it the whole task hub. `sslmode=prefer` (tokio-postgres's default) is
//! taken as plaintext: an unverified "maybe TLS" protects nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

/// How long a connection may go unanswered (connecting, unacknowledged data, silence
/// under keepalive) before it counts as dead and its call fails.
pub const DEAD_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// How to reach the database: its parsed URL and the TLS it asks for.
#[derive(Clone)]
pub struct Connector {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// Why a connection could not be set up or made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the PostgreSQL URL is not usable: {0}")]
    Url(tokio_postgres::Error),
    #[error("cannot read the PostgreSQL CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("sslmode=require, but no CA certificate to check the server against: {0}")]
    NoRoots(String),
    #[error("TLS to PostgreSQL: {0}")]
    Tls(rustls::Error),
    #[error("{}", super::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
}

impl Connector {
    /// For `url`, naming itself to the server as `application_name`; `ca_file` (PEM)
    /// holds the CAs the server's certificate is checked against with `sslmode=require`
    /// (the system's roots when `None`).
    pub fn new(
        url: &str,
        ca_file: Option<&Path>,
        application_name: &str,
    ) -> Result<Connector, ConnectError> {
        let mut config: Config = url.parse().map_err(ConnectError::Url)?;
        config.application_name(application_name);
        // A connection that went dead silently (a firewall or NAT forgot it, the server's
        // machine vanished) would otherwise hang a call for TCP's retransmission time,
        // about 15 minutes, with the lease renewed meanwhile by another connection.
        config
            .connect_timeout(DEAD_AFTER)
            .tcp_user_timeout(DEAD_AFTER)
            .keepalives(true)
            .keepalives_idle(DEAD_AFTER / 2)
            .keepalives_interval(DEAD_AFTER / 4)
            .keepalives_retries(2);
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(tls_connector(ca_file)?),
            _ => {
                // Plaintext: sslmode=prefer would otherwise try TLS without checking it.
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        Ok(Connector { config, tls })
    }

    /// Connects; the connection's I/O runs in a task spawned on the current runtime,
    /// which ends when the client is dropped (or the connection fails).
    pub async fn connect(
        &self,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let log_end = |result: Result<(), tokio_postgres::Error>| {
            if let Err(error) = result {
                tracing::debug!(%error, "a PostgreSQL connection ended");
            }
        };
        match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                Ok((
                    client,
                    tokio::spawn(async move { log_end(connection.await) }),
                ))
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                Ok((
                    client,
                    tokio::spawn(async move { log_end(connection.await) }),
                ))
            }
        }
    }
}

fn tls_connector(
    ca_file: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |reason: String| ConnectError::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            let certificates =
                CertificateDer::pem_file_iter(path).map_err(|error| ca_error(error.to_string()))?;
            for certificate in certificates {
                let certificate = certificate.map_err(|error| ca_error(error.to_string()))?;
                roots
                    .add(certificate)
                    .map_err(|error| ca_error(error.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("it holds no certificate".to_owned()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(ConnectError::NoRoots(
                    "the system has no root certificates; set the database's CA file".to_owned(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConnectError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tls_only_with_sslmode_require_and_a_missing_ca_file_is_named() {
        let plain = Connector::new("postgres://u@h/db", None, "t").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        let prefer = Connector::new("postgres://u@h/db?sslmode=prefer", None, "t").unwrap();
        assert!(
            prefer.tls.is_none(),
            "prefer is plaintext, not unchecked TLS"
        );
        let missing = Connector::new(
            "postgres://u@h/db?sslmode=require",
            Some(Path::new("/nonexistent/ca.pem")),
            "t",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
        let bad_url = Connector::new("postgres://u@h/db?sslmode=sometimes", None, "t")
            .err()
            .unwrap()
            .to_string();
        assert!(bad_url.contains("not usable"), "{bad_url}");
    }
}
