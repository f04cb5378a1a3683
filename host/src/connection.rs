//! The gRPC channel to the backend and the metadata every call carries.
//!
//! Shared by the worker and the command-line client. Channels are created lazily: the
//! first RPC (Hello, for the worker) is what really connects, so a refused connection
//! surfaces as an `UNAVAILABLE` status that the callers already know how to handle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::config::{BackendSettings, Endpoint};

/// The generated client over a channel that adds [`CallMetadata`] to every call.
pub type SidecarClient = TaskHubSidecarServiceClient<InterceptedService<Channel, CallMetadata>>;

/// Orchestration histories can be large; gRPC's 4 MB default would refuse them.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("invalid backend address {endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("bearer token: environment variable {name} is not set or not valid UTF-8")]
    TokenEnvMissing { name: String },
    #[error("bearer token: cannot read {}: {reason}", path.display())]
    TokenFileUnreadable {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("bearer token: {source_name} is empty")]
    TokenEmpty { source_name: String },
    #[error("invalid value for the {header} header: {reason}")]
    Header {
        header: &'static str,
        reason: String,
    },
}

/// A bearer token. Its `Debug` never shows the value, so it cannot leak into logs.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Reads the token named by `[backend] token_env` or `token_file`, if either is set.
    /// Called on every (re)connect so that a rotated token file is picked up.
    pub fn from_settings(settings: &BackendSettings) -> Result<Option<Self>, ConnectionError> {
        if let Some(name) = &settings.token_env {
            return Self::from_env(name).map(Some);
        }
        if let Some(path) = &settings.token_file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                ConnectionError::TokenFileUnreadable {
                    path: path.clone(),
                    reason: error.to_string(),
                }
            })?;
            // The first token line: a file may list several (the embedded backend
            // accepts each, for rotation) and comments.
            let first = text
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty() && !line.starts_with('#'))
                .unwrap_or_default()
                .to_owned();
            return Self::non_empty(first, || path.display().to_string()).map(Some);
        }
        Ok(None)
    }

    /// Reads a token from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, ConnectionError> {
        let value = std::env::var(name).map_err(|_| ConnectionError::TokenEnvMissing {
            name: name.to_owned(),
        })?;
        Self::non_empty(value, || format!("environment variable {name}"))
    }

    fn non_empty(
        text: String,
        source_name: impl FnOnce() -> String,
    ) -> Result<Self, ConnectionError> {
        let token = text.trim();
        if token.is_empty() {
            return Err(ConnectionError::TokenEmpty {
                source_name: source_name(),
            });
        }
        Ok(Self(token.to_owned()))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// The headers sent with every call: `taskhub`, `x-user-agent`, optionally `workerid`
/// and `authorization`. Built once per connection; cloning is a reference count.
#[derive(Clone)]
pub struct CallMetadata {
    headers: Arc<[(AsciiMetadataKey, AsciiMetadataValue)]>,
}

impl CallMetadata {
    pub fn new(
        taskhub: &str,
        worker_id: Option<&str>,
        token: Option<&BearerToken>,
    ) -> Result<Self, ConnectionError> {
        let mut headers = vec![
            (
                AsciiMetadataKey::from_static("taskhub"),
                header_value("taskhub", taskhub)?,
            ),
            (
                // `user-agent` itself is reserved by gRPC, hence the `x-`.
                AsciiMetadataKey::from_static("x-user-agent"),
                header_value("x-user-agent", &user_agent())?,
            ),
        ];
        if let Some(worker_id) = worker_id {
            headers.push((
                AsciiMetadataKey::from_static("workerid"),
                header_value("workerid", worker_id)?,
            ));
        }
        if let Some(token) = token {
            let mut value = AsciiMetadataValue::try_from(format!("Bearer {}", token.0)).map_err(
                // Never echo the token itself.
                |_| ConnectionError::Header {
                    header: "authorization",
                    reason: "the bearer token contains characters not allowed in a header".into(),
                },
            )?;
            value.set_sensitive(true);
            headers.push((AsciiMetadataKey::from_static("authorization"), value));
        }
        Ok(Self {
            headers: headers.into(),
        })
    }
}

impl Interceptor for CallMetadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        for (key, value) in self.headers.iter() {
            metadata.insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

fn header_value(header: &'static str, value: &str) -> Result<AsciiMetadataValue, ConnectionError> {
    AsciiMetadataValue::try_from(value).map_err(|error| ConnectionError::Header {
        header,
        reason: format!("{value:?}: {error}"),
    })
}

/// A status's message followed by its causes, each said once (tonic and hyper wrap the
/// same cause several times: "tcp connect error: transport error: tcp connect error").
pub fn describe_status(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let mut text = status.message().to_owned();
    let mut source = status.source();
    while let Some(error) = source {
        let part = error.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = error.source();
    }
    text
}

/// `durabletask-host/<version>`, sent as `x-user-agent`.
pub fn user_agent() -> String {
    format!("durabletask-host/{}", env!("CARGO_PKG_VERSION"))
}

/// `<hostname>:<pid>:<random>`, the worker's identity in the `workerid` header.
pub fn new_worker_id() -> String {
    let host = hostname();
    let nonce: u64 = rand::random();
    format!("{host}:{}:{nonce:016x}", std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A client on a new, lazily connected channel to `endpoint`.
pub fn connect(
    endpoint: &Endpoint,
    metadata: CallMetadata,
) -> Result<SidecarClient, ConnectionError> {
    let invalid = |reason: String| ConnectionError::Endpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let mut transport = tonic::transport::Endpoint::from_shared(endpoint.uri().to_owned())
        .map_err(|error| invalid(error.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    if endpoint.uses_tls() {
        transport = transport
            .tls_config(ClientTlsConfig::new().with_native_roots())
            .map_err(|error| invalid(error.to_string()))?;
    }
    let channel = transport.connect_lazy();
    Ok(
        TaskHubSidecarServiceClient::with_interceptor(channel, metadata)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn metadata_carries_every_header() {
        let token = BearerToken::new("s3cret");
        let mut metadata = CallMetadata::new("hub", Some("h:1:ab"), Some(&token)).unwrap();
        let request = metadata.call(tonic::Request::new(())).unwrap();
        let headers = request.metadata();
        assert_eq!(headers.get("taskhub").unwrap(), "hub");
        assert_eq!(headers.get("workerid").unwrap(), "h:1:ab");
        assert_eq!(headers.get("authorization").unwrap(), "Bearer s3cret");
        assert!(
            headers
                .get("x-user-agent")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("durabletask-host/")
        );
    }

    #[test]
    fn a_token_file_gives_its_first_token_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(
            &path,
            "# rotated 2026-12-02

  new  
old
",
        )
        .unwrap();
        let settings = BackendSettings {
            token_file: Some(path),
            ..BackendSettings::default()
        };
        let token = BearerToken::from_settings(&settings).unwrap().unwrap();
        assert_eq!(token.0, "new");
    }

    #[test]
    fn token_debug_is_redacted() {
        assert!(!format!("{:?}", BearerToken::new("s3cret")).contains("s3cret"));
    }

    #[test]
    fn worker_id_has_three_parts() {
        let id = new_worker_id();
        assert_eq!(id.split(':').count(), 3, "{id}");
    }
}
