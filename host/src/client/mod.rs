//! A command-line client for the backend: start, inspect and control orchestrations.
//!
//! Every operation returns the one JSON object the CLI prints, so tests can drive the
//! backend through the same code path as a user. [`cli`] is the thin clap layer.

pub mod cli;
mod state;

use std::time::Duration;

use durabletask_proto::{
    CreateInstanceRequest, GetInstanceRequest, GetInstanceResponse, PurgeInstancesRequest,
    RaiseEventRequest, ResumeRequest, SuspendRequest, TerminateRequest, purge_instances_request,
};
use serde_json::{Value, json};
use tonic::Code;

pub use state::{failure_to_json, payload, state_to_json, status_name};

use crate::config::Endpoint;
use crate::connection::{self, BearerToken, CallMetadata, SidecarClient};

/// A deadline for calls that should answer at once, so a hung backend cannot hang the CLI.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an operation failed. Each kind has its own exit code and JSON shape.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad argument (invalid JSON, bad endpoint). Exit 2.
    #[error("{0}")]
    Usage(String),
    /// The backend could not be reached or refused the call. Exit 2.
    #[error("{operation} on the backend at {endpoint} failed: {code:?}: {message}")]
    Rpc {
        endpoint: String,
        operation: &'static str,
        code: Code,
        message: String,
    },
    /// Waiting for completion took longer than allowed. Exit 3.
    #[error("instance '{instance_id}' did not complete within {timeout:?}")]
    Timeout {
        instance_id: String,
        timeout: Duration,
    },
    /// No such instance. Exit 4.
    #[error("instance '{instance_id}' does not exist")]
    NotFound { instance_id: String },
}

impl ClientError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) | ClientError::Rpc { .. } => 2,
            ClientError::Timeout { .. } => 3,
            ClientError::NotFound { .. } => 4,
        }
    }

    /// The object printed on stdout for this error.
    pub fn to_json(&self) -> Value {
        match self {
            ClientError::NotFound { instance_id } => {
                json!({ "instance_id": instance_id, "exists": false })
            }
            ClientError::Timeout { instance_id, .. } => {
                json!({ "error": self.to_string(), "instance_id": instance_id })
            }
            ClientError::Usage(_) | ClientError::Rpc { .. } => json!({ "error": self.to_string() }),
        }
    }
}

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub endpoint: String,
    pub taskhub: String,
    pub token: Option<BearerToken>,
}

/// What `start` needs beyond the orchestrator name.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// JSON text, already validated with [`validate_json`].
    pub input: Option<String>,
    pub instance_id: Option<String>,
    pub version: Option<String>,
    /// Wait for completion, at most this long.
    pub wait: Option<Duration>,
}

/// Checks that a flag's value is JSON; the error names the flag.
pub fn validate_json(flag: &str, text: &str) -> Result<String, ClientError> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| text.to_owned())
        .map_err(|error| ClientError::Usage(format!("invalid JSON in {flag}: {error}")))
}

pub struct Client {
    inner: SidecarClient,
    endpoint: String,
}

impl Client {
    /// Prepares a connection (made lazily, on the first call). Needs a tokio runtime.
    pub fn connect(options: &ClientOptions) -> Result<Client, ClientError> {
        let endpoint = Endpoint::parse(&options.endpoint)
            .map_err(|reason| ClientError::Usage(format!("invalid --endpoint: {reason}")))?;
        let metadata = CallMetadata::new(&options.taskhub, None, options.token.as_ref())
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        let inner = connection::connect(&endpoint, metadata)
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        Ok(Client {
            inner,
            endpoint: endpoint.to_string(),
        })
    }

    /// Starts an orchestration and prints its state (after completion with `wait`).
    pub async fn start(&self, name: &str, options: StartOptions) -> Result<Value, ClientError> {
        let request = CreateInstanceRequest {
            instance_id: options.instance_id.unwrap_or_default(),
            name: name.to_owned(),
            version: options.version,
            input: options.input,
            ..Default::default()
        };
        let created = self
            .call(
                "StartInstance",
                CALL_TIMEOUT,
                |mut client, request| async move { client.start_instance(request).await },
                request,
            )
            .await?;
        let instance_id = created.instance_id;
        match options.wait {
            Some(timeout) => self.wait(&instance_id, timeout).await,
            None => self.status(&instance_id).await,
        }
    }

    /// The current state of an instance.
    pub async fn status(&self, instance_id: &str) -> Result<Value, ClientError> {
        let request = GetInstanceRequest {
            instance_id: instance_id.to_owned(),
            get_inputs_and_outputs: true,
        };
        let response = self
            .call(
                "GetInstance",
                CALL_TIMEOUT,
                |mut client, request| async move { client.get_instance(request).await },
                request,
            )
            .await?;
        instance_state(instance_id, response)
    }

    /// Waits until the instance completes, fails or is terminated.
    pub async fn wait(&self, instance_id: &str, timeout: Duration) -> Result<Value, ClientError> {
        let request = GetInstanceRequest {
            instance_id: instance_id.to_owned(),
            get_inputs_and_outputs: true,
        };
        let result = self
            .call("WaitForInstanceCompletion", timeout, |mut client, request| async move {
                client.wait_for_instance_completion(request).await
            }, request)
            .await;
        match result {
            Ok(response) => instance_state(instance_id, response),
            Err(ClientError::Rpc {
                code: Code::DeadlineExceeded,
                ..
            }) => Err(ClientError::Timeout {
                instance_id: instance_id.to_owned(),
                timeout,
            }),
            Err(error) => Err(error),
        }
    }

    pub async fn raise_event(
        &self,
        instance_id: &str,
        name: &str,
        data: Option<String>,
    ) -> Result<Value, ClientError> {
        let request = RaiseEventRequest {
            instance_id: instance_id.to_owned(),
            name: name.to_owned(),
            input: data,
        };
        self.acknowledged(
            instance_id,
            "RaiseEvent",
            request,
            |mut client, request| async move { client.raise_event(request).await },
        )
        .await
    }

    pub async fn suspend(
        &self,
        instance_id: &str,
        reason: Option<String>,
    ) -> Result<Value, ClientError> {
        let request = SuspendRequest {
            instance_id: instance_id.to_owned(),
            reason,
        };
        self.acknowledged(
            instance_id,
            "SuspendInstance",
            request,
            |mut client, request| async move { client.suspend_instance(request).await },
        )
        .await
    }

    pub async fn resume(
        &self,
        instance_id: &str,
        reason: Option<String>,
    ) -> Result<Value, ClientError> {
        let request = ResumeRequest {
            instance_id: instance_id.to_owned(),
            reason,
        };
        self.acknowledged(
            instance_id,
            "ResumeInstance",
            request,
            |mut client, request| async move { client.resume_instance(request).await },
        )
        .await
    }

    pub async fn terminate(
        &self,
        instance_id: &str,
        output: Option<String>,
    ) -> Result<Value, ClientError> {
        let request = TerminateRequest {
            instance_id: instance_id.to_owned(),
            output,
            recursive: false,
        };
        self.acknowledged(
            instance_id,
            "TerminateInstance",
            request,
            |mut client, request| async move { client.terminate_instance(request).await },
        )
        .await
    }

    /// Deletes a finished instance's history: `{"instance_id", "deleted": n}`.
    pub async fn purge(&self, instance_id: &str) -> Result<Value, ClientError> {
        let request = PurgeInstancesRequest {
            request: Some(purge_instances_request::Request::InstanceId(
                instance_id.to_owned(),
            )),
            recursive: false,
            is_orchestration: true,
        };
        let response = self
            .call(
                "PurgeInstances",
                CALL_TIMEOUT,
                |mut client, request| async move { client.purge_instances(request).await },
                request,
            )
            .await
            .map_err(|error| not_found_for(instance_id, error))?;
        Ok(json!({ "instance_id": instance_id, "deleted": response.deleted_instance_count }))
    }

    /// Runs a call whose answer is empty: `{"instance_id", "ok": true}`.
    async fn acknowledged<Req, Resp, F, Fut>(
        &self,
        instance_id: &str,
        operation: &'static str,
        request: Req,
        call: F,
    ) -> Result<Value, ClientError>
    where
        F: FnOnce(SidecarClient, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call(operation, CALL_TIMEOUT, call, request)
            .await
            .map_err(|error| not_found_for(instance_id, error))?;
        Ok(json!({ "instance_id": instance_id, "ok": true }))
    }

    /// One RPC with a deadline, sent to the server too so it stops waiting as well.
    async fn call<Req, Resp, F, Fut>(
        &self,
        operation: &'static str,
        timeout: Duration,
        call: F,
        request: Req,
    ) -> Result<Resp, ClientError>
    where
        F: FnOnce(SidecarClient, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let mut request = tonic::Request::new(request);
        request.set_timeout(timeout);
        let failed = |code: Code, message: String| ClientError::Rpc {
            endpoint: self.endpoint.clone(),
            operation,
            code,
            message,
        };
        // A little slack so the server's own DEADLINE_EXCEEDED normally arrives first.
        match tokio::time::timeout(
            timeout + Duration::from_secs(2),
            call(self.inner.clone(), request),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            // tonic enforces the request's timeout on our side too, and reports its own
            // expiry as CANCELLED: that is the deadline, whichever side noticed first.
            Ok(Err(status)) if is_local_deadline(&status) => Err(failed(
                Code::DeadlineExceeded,
                format!("no answer within {timeout:?}"),
            )),
            Ok(Err(status)) => Err(failed(status.code(), connection::describe_status(&status))),
            Err(_) => Err(failed(
                Code::DeadlineExceeded,
                format!("no answer within {timeout:?}"),
            )),
        }
    }
}

fn instance_state(instance_id: &str, response: GetInstanceResponse) -> Result<Value, ClientError> {
    match response.orchestration_state {
        Some(state) if response.exists => Ok(state_to_json(&state)),
        _ => Err(ClientError::NotFound {
            instance_id: instance_id.to_owned(),
        }),
    }
}

/// The backend answers NOT_FOUND for an unknown instance; report it like `status` does.
fn not_found_for(instance_id: &str, error: ClientError) -> ClientError {
    match error {
        ClientError::Rpc {
            code: Code::NotFound,
            ..
        } => ClientError::NotFound {
            instance_id: instance_id.to_owned(),
        },
        other => other,
    }
}

/// Whether tonic cancelled the call because the request's own timeout expired.
fn is_local_deadline(status: &tonic::Status) -> bool {
    status.code() == Code::Cancelled && status.message().contains("Timeout expired")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn invalid_json_names_the_flag() {
        let error = validate_json("--input", "{nope").unwrap_err();
        assert!(error.to_string().contains("--input"));
        assert_eq!(error.exit_code(), 2);
        assert_eq!(validate_json("--data", " [1, 2] ").unwrap(), " [1, 2] ");
    }

    #[test]
    fn error_shapes() {
        let not_found = ClientError::NotFound {
            instance_id: "x".into(),
        };
        assert_eq!(
            not_found.to_json(),
            json!({"instance_id": "x", "exists": false})
        );
        assert_eq!(not_found.exit_code(), 4);
        let timeout = ClientError::Timeout {
            instance_id: "x".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.exit_code(), 3);
        assert_eq!(timeout.to_json()["instance_id"], "x");
    }

    #[tokio::test]
    async fn unreachable_backend_names_the_endpoint() {
        // Port 1 on localhost: nothing listens there, so the connection is refused.
        let client = Client::connect(&ClientOptions {
            endpoint: "http://127.0.0.1:1".into(),
            taskhub: "default".into(),
            token: None,
        })
        .unwrap();
        let error = client.status("abc").await.unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains("http://127.0.0.1:1"), "{message}");
    }
}
