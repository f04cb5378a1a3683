//! A validated backend address: the endpoint the worker and the client connect to.
//!
//! Here, not in the host's configuration, because the client connects to it too; the
//! host's `[backend] endpoint` deserializes into it.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A validated backend address.
///
/// Accepts `http://`, `https://`, `grpc://` and `grpcs://` (case-insensitive). The `s`
/// forms use TLS (with the system roots unless `[backend] ca_file` names others).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// As written in the config, for messages.
    configured: String,
    /// Normalised to `http://` or `https://`, which is what tonic understands.
    uri: String,
    tls: bool,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!("'{text}' has no scheme: write http://host:port (plaintext) or https://host:port (TLS)")
        })?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" | "grpc" => false,
            "https" | "grpcs" => true,
            other => {
                return Err(format!(
                    "'{text}' has the unsupported scheme '{other}': use http, https, grpc or grpcs"
                ));
            }
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("'{text}' has no host"));
        }
        let uri = format!("{}://{rest}", if tls { "https" } else { "http" });
        tonic::transport::Endpoint::from_shared(uri.clone())
            .map_err(|error| format!("'{text}' is not a valid address: {error}"))?;
        Ok(Self {
            configured: text.to_owned(),
            uri,
            tls,
        })
    }

    /// The address of a listener on this machine (`https` when it serves TLS): an
    /// unspecified IP (0.0.0.0, ::) is reached through loopback.
    pub fn to_listener(mut address: std::net::SocketAddr, tls: bool) -> Self {
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let text = format!("{}://{address}", if tls { "https" } else { "http" });
        Self {
            configured: text.clone(),
            uri: text,
            tls,
        }
    }

    /// The address with an `http`/`https` scheme.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn uses_tls(&self) -> bool {
        self.tls
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Self {
            configured: "http://localhost:4001".to_owned(),
            uri: "http://localhost:4001".to_owned(),
            tls: false,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.configured)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.configured)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Endpoint::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn endpoint_schemes_are_case_insensitive() {
        let endpoint = Endpoint::parse("GRPC://h:1").unwrap();
        assert_eq!(endpoint.uri(), "http://h:1");
        assert!(!endpoint.uses_tls());
        assert!(Endpoint::parse("HTTPS://h").unwrap().uses_tls());
    }
}
