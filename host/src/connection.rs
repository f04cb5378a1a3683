//! The gRPC channel to the backend and the metadata every call carries.
//!
//! Shared by the worker and the command-line client. Channels are created lazily: the
//! first RPC (Hello, for the worker) is what really connects, so a refused connection
//! surfaces as an `UNAVAILABLE` status that the callers already know how to handle.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

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

/// How long `[backend] token_command` may take.
pub const TOKEN_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
            return Self::from_file(path).map(Some);
        }
        if let Some(command) = &settings.token_command {
            return Self::from_command(command).map(Some);
        }
        Ok(None)
    }

    /// Runs `command` (a program and its arguments, no shell) and takes the first
    /// non-blank line it prints: a token minted by a credential helper, fresh on every
    /// (re)connect. It must finish within [`TOKEN_COMMAND_TIMEOUT`]; it blocks the caller
    /// meanwhile (the worker calls this off its event loop).
    pub fn from_command(command: &[String]) -> Result<Self, ConnectionError> {
        let failed = |reason: String| ConnectionError::TokenCommand {
            command: command.to_vec(),
            reason,
        };
        let Some((program, args)) = command.split_first() else {
            return Err(failed("is empty".to_owned()));
        };
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|error| failed(format!("cannot be run: {error}")))?;
        let deadline = std::time::Instant::now() + TOKEN_COMMAND_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(failed(format!(
                        "did not finish within {TOKEN_COMMAND_TIMEOUT:?}; it was killed"
                    )));
                }
                Err(error) => return Err(failed(format!("cannot be waited for: {error}"))),
            }
        };
        let output = child
            .wait_with_output()
            .map_err(|error| failed(format!("output cannot be read: {error}")))?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(failed(format!(
                "failed ({status}): {}",
                stderr.trim().lines().last().unwrap_or_default()
            )));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let first = stdout
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or_default()
            .to_owned();
        Self::non_empty(first, || format!("the output of token_command {command:?}"))
    }

    /// Reads the token of the file at `path`: its first line that is not blank or a `#`
    /// comment (a file may list several, which the embedded backend accepts each of, for
    /// rotation).
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConnectionError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConnectionError::TokenFileUnreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            }
        })?;
        let first = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .unwrap_or_default()
            .to_owned();
        Self::non_empty(first, || path.display().to_string())
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
    /// `[backend] ca_file` and `tls_server_name` (in embedded mode the config derives them
    /// from `[embedded]`).
    pub fn from_settings(settings: &BackendSettings) -> Self {
        Self {
            ca_file: settings.ca_file.clone(),
            server_name: settings.tls_server_name.clone(),
            identity: settings
                .tls_cert_file
                .clone()
                .zip(settings.tls_key_file.clone()),
        }
    }

    /// The client TLS configuration. The CA file is read here, on every (re)connect, so a
    /// renewed certificate is picked up as a rotated token file is.
    fn client_config(&self) -> Result<ClientTlsConfig, ConnectionError> {
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
    fn a_token_command_prints_the_token_or_is_named_with_its_failure() {
        let sh = |script: &str| vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
        let token =
            BearerToken::from_command(&sh("printf '\\n  minted-token  \\nother\\n'")).unwrap();
        assert_eq!(token.0, "minted-token");
        let error = BearerToken::from_command(&sh("echo denied >&2; exit 3"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("token_command"), "{error}");
        assert!(error.contains("denied"), "{error}");
        assert!(error.contains("exit status: 3"), "{error}");
        let error = BearerToken::from_command(&sh("true"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("is empty"), "{error}");
        let missing = vec!["/no/such/helper".to_owned()];
        let error = BearerToken::from_command(&missing).unwrap_err().to_string();
        assert!(error.contains("cannot be run"), "{error}");
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
    fn token_debug_is_redacted() {
        assert!(!format!("{:?}", BearerToken::new("s3cret")).contains("s3cret"));
    }

    #[test]
    fn worker_id_has_three_parts() {
        let id = new_worker_id();
        assert_eq!(id.split(':').count(), 3, "{id}");
    }
}
