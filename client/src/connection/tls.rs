//! How a TLS connection trusts the backend: the roots, the name, the client certificate.
//!
//! The host fills it from `[backend]` (or `[embedded]`), the client from the same file;
//! the files it names are read at each (re)connect, not when it is built.

use std::path::PathBuf;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::ConnectionError;

/// How a TLS connection checks the backend's certificate: the roots it must chain to
/// (the system's, unless `ca_file` names others) and the name it must carry (the
/// endpoint's host, unless `server_name` says otherwise). Unused for plaintext endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// PEM certificates to trust instead of the system's roots: a private CA, or a
    /// self-signed certificate itself (the embedded backend's `tls_cert_file`).
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
    /// A client certificate chain and its key (PEM files) for a backend that asks for
    /// one (mutual TLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl TlsTrust {
    /// The client TLS configuration. The CA file is read here, on every (re)connect, so a
    /// renewed certificate is picked up as a rotated token file is.
    pub(super) fn client_config(&self) -> Result<ClientTlsConfig, ConnectionError> {
        let mut config = match &self.ca_file {
            Some(path) => {
                let ca_error = |reason: String| ConnectionError::CaFile {
                    path: path.clone(),
                    reason,
                };
                let pem = std::fs::read(path).map_err(|error| ca_error(error.to_string()))?;
                // tonic would accept a file without certificates and then trust nothing,
                // failing every handshake with an unhelpful "unknown issuer".
                if !pem
                    .windows(CERTIFICATE_PEM_HEADER.len())
                    .any(|window| window == CERTIFICATE_PEM_HEADER)
                {
                    return Err(ca_error("it holds no PEM certificate".to_owned()));
                }
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        if let Some((certificate, key)) = &self.identity {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|error| ConnectionError::ClientIdentity {
                    path: path.clone(),
                    reason: error.to_string(),
                })
            };
            config = config.identity(Identity::from_pem(read(certificate)?, read(key)?));
        }
        Ok(config)
    }
}

const CERTIFICATE_PEM_HEADER: &[u8] = b"-----BEGIN CERTIFICATE-----";
