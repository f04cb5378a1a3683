//! The gRPC channel to the backend and the metadata every call carries.
//!
//! Shared by the worker and the command-line client. Channels are created lazily: the
//! first RPC (Hello, for the worker) is what really connects, so a refused connection
//! surfaces as an `UNAVAILABLE` status that the callers already know how to handle.

mod tls;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use tls::TlsTrust;
pub use token::{BearerToken, TOKEN_COMMAND_TIMEOUT, TokenSource};

use crate::Endpoint;

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
    #[error("bearer token: token_command {command:?} {reason}")]
    TokenCommand {
        command: Vec<String>,
        reason: String,
    },
    #[error("bearer token: cannot read {}: {reason}", path.display())]
    TokenFileUnreadable {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("TLS: cannot use the CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS: cannot read the client certificate or key {}: {reason}", path.display())]
    ClientIdentity { path: PathBuf, reason: String },
    #[error("bearer token: {source_name} is empty")]
    TokenEmpty { source_name: String },
    #[error("invalid value for the {header} header: {reason}")]
    Header {
        header: &'static str,
        reason: String,
    },
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
            let mut value = AsciiMetadataValue::try_from(format!("Bearer {}", token.secret()))
                .map_err(
                    // Never echo the token itself.
                    |_| ConnectionError::Header {
                        header: "authorization",
                        reason: "the bearer token contains characters not allowed in a header"
                            .into(),
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
    if let Some(hint) = hint_for(&text) {
        text.push_str(" (");
        text.push_str(hint);
        text.push(')');
    }
    text
}

/// What a transport error usually means, where its own words are obscure.
fn hint_for(text: &str) -> Option<&'static str> {
    if text.contains("InvalidContentType") {
        return Some(
            "the server did not answer with TLS: if it serves plaintext, write http:// instead of https://",
        );
    }
    if text.contains("while receiving response with status: ") && !text.contains("status: 200") {
        return Some(
            "the server answered with an HTTP error instead of gRPC: a proxy or TLS terminator in front of the backend refused the call (a client certificate, token or route it requires?)",
        );
    }
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        return Some(
            "the backend's certificate is not trusted: set [backend] ca_file to its CA (or to the certificate itself, if self-signed)",
        );
    }
    None
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

/// A client on a new, lazily connected channel to `endpoint`; `tls` says how an https
/// endpoint's certificate is checked.
pub fn connect(
    endpoint: &Endpoint,
    tls: &TlsTrust,
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
            .tls_config(tls.client_config()?)
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
    fn obscure_transport_errors_get_a_hint() {
        let plaintext = tonic::Status::unavailable(
            "received corrupt message of type InvalidContentType: transport error",
        );
        assert!(describe_status(&plaintext).contains("write http://"));
        let proxy = tonic::Status::internal(
            "protocol error: received message with invalid compression flag: 60 (valid flags are 0 and 1) while receiving response with status: 400 Bad Request",
        );
        assert!(describe_status(&proxy).contains("a proxy or TLS terminator"));
        let plain = tonic::Status::unavailable("connection refused");
        assert_eq!(describe_status(&plain), "connection refused");
    }

    #[test]
    fn a_ca_file_that_is_missing_or_holds_no_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let endpoint = Endpoint::parse("https://127.0.0.1:1").unwrap();
        let tls = TlsTrust {
            ca_file: Some(path.clone()),
            server_name: None,
            identity: None,
        };
        let error = |tls: &TlsTrust| {
            let metadata = CallMetadata::new("hub", None, None).unwrap();
            connect(&endpoint, tls, metadata).err().unwrap().to_string()
        };
        let missing = error(&tls);
        assert!(missing.contains(&path.display().to_string()), "{missing}");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let empty = error(&tls);
        assert!(empty.contains("holds no PEM certificate"), "{empty}");
        assert!(empty.contains(&path.display().to_string()), "{empty}");
    }

    #[test]
    fn worker_id_has_three_parts() {
        let id = new_worker_id();
        assert_eq!(id.split(':').count(), 3, "{id}");
    }
}
