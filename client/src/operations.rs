//! The operations of the client, one gRPC call (or a few) each, every one returning the
//! JSON object the CLI prints, so tests drive the backend through the same code path as a
//! user.

use std::time::{Duration, SystemTime};

use durabletask_abi::entity::EntityInstanceId;
use durabletask_proto::{
    CreateInstanceRequest, EntityQuery, GetEntityRequest, GetInstanceRequest, GetInstanceResponse,
    InstanceQuery, OrchestrationState, PurgeInstancesRequest, QueryEntitiesRequest,
    QueryInstancesRequest, RaiseEventRequest, RestartInstanceRequest, ResumeRequest,
    RewindInstanceRequest, SignalEntityRequest, StreamInstanceHistoryRequest, SuspendRequest,
    TerminateRequest, purge_instances_request,
};
use prost_types::Timestamp;
use serde_json::{Value, json};
use tonic::Code;

use crate::connection::{self, CallMetadata, SidecarClient};
use crate::paging::{Page, follow_pages};
use crate::{
    ClientError, ClientOptions, EntityListOptions, JsonText, ListOptions, NamedPage, SignalOptions,
    StartOptions,
};
use durabletask_json::event_to_json;
use durabletask_json::{entity_to_json, state_to_json};

/// A deadline for calls that should answer at once, so a hung backend cannot hang the CLI.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one backend and task hub, and the operations on it.
pub struct Client {
    inner: SidecarClient,
    endpoint: String,
}

impl Client {
    /// Prepares a connection (made lazily, on the first call). Needs a tokio runtime.
    pub fn connect(options: &ClientOptions) -> Result<Client, ClientError> {
        let metadata = CallMetadata::new(&options.taskhub, None, options.token.as_ref())
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        let inner = connection::connect(&options.endpoint, &options.tls, metadata)
            .map_err(|error| ClientError::Usage(error.to_string()))?;
        Ok(Client {
            inner,
            endpoint: options.endpoint.to_string(),
        })
    }

    /// Starts an orchestration and prints its state (after completion with `wait`).
    pub async fn start(&self, name: &str, options: StartOptions) -> Result<Value, ClientError> {
        let request = CreateInstanceRequest {
            instance_id: options.instance_id.unwrap_or_default(),
            name: name.to_owned(),
            version: options.version,
            input: options.input.map(JsonText::into_string),
            tags: options.tags,
            parent_trace_context: options.traceparent.map(|trace_parent| {
                durabletask_proto::TraceContext {
                    trace_parent: trace_parent.into_string(),
                    ..Default::default()
                }
            }),
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
        let state = match options.wait {
            Some(timeout) => self.wait(&instance_id, timeout).await,
            None => self.status(&instance_id).await,
        };
        state.map_err(|source| ClientError::Started {
            instance_id,
            source: Box::new(source),
        })
    }

    /// The current state of an instance.
    pub async fn status(&self, instance_id: &str) -> Result<Value, ClientError> {
        self.state(instance_id, true).await
    }

    /// The instance's state, with its input, output and custom status if `payloads`
    /// (they may be megabytes: a caller that needs only the status asks without).
    async fn state(&self, instance_id: &str, payloads: bool) -> Result<Value, ClientError> {
        let request = GetInstanceRequest {
            instance_id: instance_id.to_owned(),
            get_inputs_and_outputs: payloads,
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
        data: Option<JsonText>,
    ) -> Result<Value, ClientError> {
        let request = RaiseEventRequest {
            instance_id: instance_id.to_owned(),
            name: name.to_owned(),
            input: data.map(JsonText::into_string),
        };
        let finished = self.finished_status(instance_id).await;
        let answer = self
            .acknowledged(
                instance_id,
                "RaiseEvent",
                request,
                |mut client, request| async move { client.raise_event(request).await },
            )
            .await?;
        Ok(with_note(
            answer,
            finished.map(|status| {
                format!(
                    "the instance had already finished ({status}): nothing will receive the event"
                )
            }),
        ))
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

    /// Terminates an instance with `output`; with `recursive`, its running
    /// sub-orchestrations too.
    pub async fn terminate(
        &self,
        instance_id: &str,
        output: Option<JsonText>,
        recursive: bool,
    ) -> Result<Value, ClientError> {
        let request = TerminateRequest {
            instance_id: instance_id.to_owned(),
            output: output.map(JsonText::into_string),
            recursive,
        };
        let finished = self.finished_status(instance_id).await;
        let answer = self
            .acknowledged(
                instance_id,
                "TerminateInstance",
                request,
                |mut client, request| async move { client.terminate_instance(request).await },
            )
            .await?;
        Ok(with_note(
            answer,
            finished.map(|status| {
                format!(
                    "the instance had already finished ({status}): terminating it changed nothing"
                )
            }),
        ))
    }

    /// The instance's status if it has finished (`None` if it runs, does not exist, or
    /// cannot be read: the call that follows reports those).
    async fn finished_status(&self, instance_id: &str) -> Option<String> {
        let state = self.state(instance_id, false).await.ok()?;
        let status = state["status"].as_str()?.to_owned();
        matches!(status.as_str(), "COMPLETED" | "FAILED" | "TERMINATED").then_some(status)
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
        if response.deleted_instance_count == 0 {
            // Say why nothing was deleted: it does not exist, or it has not finished.
            let state = self.state(instance_id, false).await?;
            let status = state["status"].as_str().unwrap_or("not finished");
            return Err(ClientError::WrongState {
                instance_id: instance_id.to_owned(),
                message: format!(
                    "instance '{instance_id}' is {status}: purge deletes only finished instances (terminate it first)"
                ),
            });
        }
        Ok(json!({ "instance_id": instance_id, "deleted": response.deleted_instance_count }))
    }

    /// The instance's history, oldest event first: `{"instance_id", "events": [...]}`,
    /// each event rendered by [`event_to_json`].
    pub async fn history(&self, instance_id: &str) -> Result<Value, ClientError> {
        const OPERATION: &str = "StreamInstanceHistory";
        let request = StreamInstanceHistoryRequest {
            instance_id: instance_id.to_owned(),
            execution_id: None,
            for_work_item_processing: false,
        };
        let read_all = async {
            let mut stream = self
                .call(
                    OPERATION,
                    CALL_TIMEOUT,
                    |mut client, request| async move {
                        client.stream_instance_history(request).await
                    },
                    request,
                )
                .await?;
            let mut events = Vec::new();
            // The backend sends the history in chunks (of 100 events for the reference
            // backend); the stream's end is the history's end.
            while let Some(chunk) = stream
                .message()
                .await
                .map_err(|status| self.rpc_error(OPERATION, &status))?
            {
                events.extend(chunk.events.iter().map(event_to_json));
            }
            Ok(events)
        };
        // The deadline covers the whole stream, not only its first answer.
        let events =
            match tokio::time::timeout(CALL_TIMEOUT + Duration::from_secs(2), read_all).await {
                Ok(result) => result.map_err(|error| not_found_for(instance_id, error))?,
                Err(_) => {
                    return Err(ClientError::Rpc {
                        endpoint: self.endpoint.clone(),
                        operation: OPERATION,
                        code: Code::DeadlineExceeded,
                        message: format!("the history did not arrive within {CALL_TIMEOUT:?}"),
                    });
                }
            };
        Ok(json!({ "instance_id": instance_id, "events": events }))
    }

    /// Rewinds a FAILED instance: its failed tasks run again. `{"instance_id", "ok": true}`.
    pub async fn rewind(
        &self,
        instance_id: &str,
        reason: Option<String>,
    ) -> Result<Value, ClientError> {
        let request = RewindInstanceRequest {
            instance_id: instance_id.to_owned(),
            reason,
        };
        self.acknowledged(
            instance_id,
            "RewindInstance",
            request,
            |mut client, request| async move { client.rewind_instance(request).await },
        )
        .await
        .map_err(|error| {
            wrong_state_for(
                instance_id,
                "rewind",
                "it is not FAILED, and only a failed orchestration can be rewound",
                error,
            )
        })
    }

    /// Runs a finished instance again from the start with the same name, input and
    /// version, under the same id or a new one: `{"instance_id": <the restarted id>}`.
    pub async fn restart(&self, instance_id: &str, new_id: bool) -> Result<Value, ClientError> {
        let request = RestartInstanceRequest {
            instance_id: instance_id.to_owned(),
            restart_with_new_instance_id: new_id,
        };
        let response = self
            .call(
                "RestartInstance",
                CALL_TIMEOUT,
                |mut client, request| async move { client.restart_instance(request).await },
                request,
            )
            .await
            .map_err(|error| not_found_for(instance_id, error))
            .map_err(|error| {
                wrong_state_for(
                    instance_id,
                    "restart",
                    "it has not finished, and only a COMPLETED, FAILED or TERMINATED \
                     orchestration can be restarted",
                    error,
                )
            })?;
        Ok(json!({ "instance_id": response.instance_id }))
    }

    /// Instances matching `options`, following continuation tokens up to the paging limit:
    /// `{"instances": [<state as status prints it>...], "continuation_token": <where to
    /// go on, or null when there is nothing more>}`.
    pub async fn list(&self, options: ListOptions) -> Result<Value, ClientError> {
        let payloads = options.payloads;
        let (instances, token) = follow_pages(options.paging.clone(), |count, token| {
            let request = instances_request(&options, count, token);
            async move {
                let (states, continuation_token) = self.query_instances(request).await?;
                Ok(Page {
                    items: states
                        .into_iter()
                        .map(|state| listed_state_json(state, payloads))
                        .collect(),
                    continuation_token,
                })
            }
        })
        .await?;
        Ok(json!({ "instances": instances, "continuation_token": token }))
    }

    /// One backend page (one `QueryInstances` call) of at most `options.paging.page_size`
    /// instances matching `options`, from its continuation token, keeping those named
    /// `name`. The protocol's query cannot filter by name, so a name filter reads page
    /// after page; the others are dropped before anything is made of them.
    pub async fn list_page_named(
        &self,
        options: &ListOptions,
        name: &str,
    ) -> Result<NamedPage, ClientError> {
        let count = i32::try_from(options.paging.page_size.max(1)).unwrap_or(i32::MAX);
        let token = options
            .paging
            .continuation_token
            .clone()
            .filter(|token| !token.is_empty());
        let request = instances_request(options, count, token);
        let (states, continuation_token) = self.query_instances(request).await?;
        let scanned = states.len();
        let instances = states
            .into_iter()
            .filter(|state| state.name == name)
            .map(|state| listed_state_json(state, options.payloads))
            .collect();
        Ok(NamedPage {
            instances,
            scanned,
            continuation_token: continuation_token.filter(|token| !token.is_empty()),
        })
    }

    /// One `QueryInstances` call: the states and the continuation token.
    async fn query_instances(
        &self,
        query: InstanceQuery,
    ) -> Result<(Vec<OrchestrationState>, Option<String>), ClientError> {
        let response = self
            .call(
                "QueryInstances",
                CALL_TIMEOUT,
                |mut client, request| async move { client.query_instances(request).await },
                QueryInstancesRequest { query: Some(query) },
            )
            .await?;
        Ok((response.orchestration_state, response.continuation_token))
    }

    /// Queues operation `operation` for an entity without waiting for it to run:
    /// `{"entity_id" (in its canonical form), "operation", "signalled": true,
    /// "scheduled_time": <RFC 3339, or null for now>}`.
    pub async fn signal_entity(
        &self,
        entity_id: &EntityInstanceId,
        operation: &str,
        options: SignalOptions,
    ) -> Result<Value, ClientError> {
        let entity_id = entity_id.to_string();
        let at = options.at.map(Timestamp::from);
        let scheduled_time = durabletask_json::timestamp(at.as_ref());
        let request = SignalEntityRequest {
            instance_id: entity_id.clone(),
            name: operation.to_owned(),
            input: options.input.map(JsonText::into_string),
            // The backend uses the request id to tell signals apart; each call is a new one.
            request_id: uuid::Uuid::new_v4().to_string(),
            scheduled_time: at,
            request_time: Some(Timestamp::from(SystemTime::now())),
            parent_trace_context: None,
        };
        self.call(
            "SignalEntity",
            CALL_TIMEOUT,
            |mut client, request| async move { client.signal_entity(request).await },
            request,
        )
        .await?;
        Ok(json!({
            "entity_id": entity_id,
            "operation": operation,
            "signalled": true,
            "scheduled_time": scheduled_time,
        }))
    }

    /// An entity's metadata and (with `include_state`) its state, as [`entity_to_json`]
    /// renders it; [`ClientError::EntityNotFound`] if it does not exist.
    pub async fn get_entity(
        &self,
        entity_id: &EntityInstanceId,
        include_state: bool,
    ) -> Result<Value, ClientError> {
        let entity_id = entity_id.to_string();
        let request = GetEntityRequest {
            instance_id: entity_id.clone(),
            include_state,
        };
        let response = self
            .call(
                "GetEntity",
                CALL_TIMEOUT,
                |mut client, request| async move { client.get_entity(request).await },
                request,
            )
            .await?;
        match response.entity {
            Some(entity) if response.exists => Ok(entity_to_json(&entity)),
            _ => Err(ClientError::EntityNotFound { entity_id }),
        }
    }

    /// Entities matching `options`, paged like [`Client::list`]: `{"entities": [<as
    /// get-entity prints it>...], "continuation_token": <where to go on, or null>}`.
    /// Entities with operations still queued are left out (`includeTransient: false`).
    pub async fn list_entities(&self, options: EntityListOptions) -> Result<Value, ClientError> {
        let prefix = options.prefix.filter(|prefix| !prefix.is_empty());
        let include_state = options.include_state;
        let (entities, token) = follow_pages(options.paging, |count, token| {
            let query = EntityQuery {
                instance_id_starts_with: prefix.clone(),
                include_state,
                include_transient: false,
                page_size: Some(count),
                continuation_token: token,
                ..Default::default()
            };
            async move {
                let response = self
                    .call(
                        "QueryEntities",
                        CALL_TIMEOUT,
                        |mut client, request| async move { client.query_entities(request).await },
                        QueryEntitiesRequest { query: Some(query) },
                    )
                    .await?;
                Ok(Page {
                    items: response.entities.iter().map(entity_to_json).collect(),
                    continuation_token: response.continuation_token,
                })
            }
        })
        .await?;
        Ok(json!({ "entities": entities, "continuation_token": token }))
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
        let deadline = || ClientError::Rpc {
            endpoint: self.endpoint.clone(),
            operation,
            code: Code::DeadlineExceeded,
            message: format!("no answer within {timeout:?}"),
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
            Ok(Err(status)) if is_local_deadline(&status) => Err(deadline()),
            Ok(Err(status)) => Err(self.rpc_error(operation, &status)),
            Err(_) => Err(deadline()),
        }
    }

    fn rpc_error(&self, operation: &'static str, status: &tonic::Status) -> ClientError {
        ClientError::Rpc {
            endpoint: self.endpoint.clone(),
            operation,
            code: status.code(),
            message: connection::describe_status(status),
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

/// `answer` with a `note` saying what the call did not do, if anything.
fn with_note(mut answer: Value, note: Option<String>) -> Value {
    if let (Some(note), Some(object)) = (note, answer.as_object_mut()) {
        object.insert("note".to_owned(), Value::String(note));
    }
    answer
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

/// The backend answers FAILED_PRECONDITION when the instance is in the wrong state for
/// `verb`; say so plainly, keeping the backend's own words.
fn wrong_state_for(instance_id: &str, verb: &str, why: &str, error: ClientError) -> ClientError {
    match error {
        ClientError::Rpc {
            code: Code::FailedPrecondition,
            message,
            ..
        } => ClientError::WrongState {
            instance_id: instance_id.to_owned(),
            message: format!("cannot {verb} instance '{instance_id}': {why} (backend: {message})"),
        },
        other => other,
    }
}

/// Whether tonic cancelled the call because the request's own timeout expired.
fn is_local_deadline(status: &tonic::Status) -> bool {
    status.code() == Code::Cancelled && status.message().contains("Timeout expired")
}

/// The query for `options`' filters: at most `count` instances from `token`.
fn instances_request(options: &ListOptions, count: i32, token: Option<String>) -> InstanceQuery {
    InstanceQuery {
        runtime_status: options
            .statuses
            .iter()
            .map(|status| *status as i32)
            .collect(),
        created_time_from: options.created_from.map(Timestamp::from),
        created_time_to: options.created_to.map(Timestamp::from),
        max_instance_count: count,
        continuation_token: token,
        instance_id_prefix: options.prefix.clone().filter(|prefix| !prefix.is_empty()),
        fetch_inputs_and_outputs: options.payloads,
        ..Default::default()
    }
}

/// A listed state as `status` prints it.
fn listed_state_json(mut state: OrchestrationState, payloads: bool) -> Value {
    // A backend may send these anyway (they are not input or output); a listing without
    // payloads holds none of them, whatever their size.
    if !payloads {
        state.custom_status = None;
        state.failure_details = None;
    }
    state_to_json(&state)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::connection::TlsTrust;

    #[test]
    fn a_failed_precondition_says_what_state_is_wrong() {
        let rpc = |code| ClientError::Rpc {
            endpoint: "http://x".into(),
            operation: "RewindInstance",
            code,
            message: "Orchestration instance 'x' is not in a failed state".into(),
        };
        let error = wrong_state_for(
            "x",
            "rewind",
            "it is not FAILED, and ...",
            rpc(Code::FailedPrecondition),
        );
        assert_eq!(error.exit_code(), 2);
        let value = error.to_json();
        assert_eq!(value["instance_id"], "x");
        let message = value["error"].as_str().unwrap();
        assert!(
            message.starts_with("cannot rewind instance 'x': it is not FAILED, and ..."),
            "{message}"
        );
        // Other codes pass through unchanged.
        let other = wrong_state_for("x", "rewind", "-", rpc(Code::Unavailable));
        assert!(matches!(
            other,
            ClientError::Rpc {
                code: Code::Unavailable,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn unreachable_backend_names_the_endpoint() {
        // Port 1 on localhost: nothing listens there, so the connection is refused.
        let client = Client::connect(&ClientOptions {
            endpoint: crate::Endpoint::parse("http://127.0.0.1:1").unwrap(),
            taskhub: "default".into(),
            token: None,
            tls: TlsTrust::default(),
        })
        .unwrap();
        let error = client.status("abc").await.unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains("http://127.0.0.1:1"), "{message}");
    }
}
