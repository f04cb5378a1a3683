//! Running an entity batch (spec §6.3, §6.4): both work-item shapes, per-operation
//! commit and rollback of the state and the actions.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::SystemTime;

use durabletask_proto as proto;
use proto::history_event::EventType;
use proto::operation_result::ResultType;

use super::class::encode_output;
use super::context::to_timestamp;
use super::{DurableEntity, EntityContext, EntityInstanceId};
use crate::error::{Error, FailureDetails, error_types};
use crate::orchestration::payload;

/// Runs one operation: the context, the raw JSON input; the raw JSON output.
pub(crate) type EntityStart =
    dyn Fn(&mut EntityContext, Option<&str>) -> Result<Option<String>, Error> + Send + Sync;

/// The registered entities by (lowercase) name.
pub(crate) type Entities = BTreeMap<String, Box<EntityStart>>;

/// An entity work item in either of its two shapes, as
/// [`Registry::run_entity_batch`](crate::Registry::run_entity_batch) takes it.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{EntityWorkItem, proto};
///
/// let v1: EntityWorkItem = proto::EntityBatchRequest::default().into();
/// let v2: EntityWorkItem = proto::EntityRequest::default().into();
/// assert!(matches!(v1, EntityWorkItem::V1(_)));
/// assert!(matches!(v2, EntityWorkItem::V2(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum EntityWorkItem {
    /// `entityRequest`: a batch of `OperationRequest`s. Answered without `operationInfos`.
    V1(proto::EntityBatchRequest),
    /// `entityRequestV2`: a batch of `entityOperationSignaled` / `entityOperationCalled`
    /// history events (other events are ignored). Answered with one `OperationInfo` per
    /// result, naming where a call's response goes.
    V2(proto::EntityRequest),
}

impl From<proto::EntityBatchRequest> for EntityWorkItem {
    fn from(request: proto::EntityBatchRequest) -> Self {
        Self::V1(request)
    }
}

impl From<proto::EntityRequest> for EntityWorkItem {
    fn from(request: proto::EntityRequest) -> Self {
        Self::V2(request)
    }
}

/// The batch in one shape: id, state, operations, and (v2) the infos to answer with.
struct Batch {
    instance_id: String,
    state: Option<String>,
    operations: Vec<proto::OperationRequest>,
    infos: Option<Vec<proto::OperationInfo>>,
}

impl From<EntityWorkItem> for Batch {
    fn from(item: EntityWorkItem) -> Self {
        match item {
            EntityWorkItem::V1(request) => Self {
                instance_id: request.instance_id,
                state: request.entity_state,
                operations: request.operations,
                infos: None,
            },
            EntityWorkItem::V2(request) => {
                let mut operations = Vec::new();
                let mut infos = Vec::new();
                for event in request.operation_requests {
                    match event.event_type {
                        Some(EventType::EntityOperationSignaled(signal)) => {
                            infos.push(proto::OperationInfo {
                                request_id: signal.request_id.clone(),
                                response_destination: None,
                            });
                            operations.push(proto::OperationRequest {
                                operation: signal.operation,
                                request_id: signal.request_id,
                                input: signal.input,
                                trace_context: None,
                            });
                        }
                        Some(EventType::EntityOperationCalled(call)) => {
                            infos.push(proto::OperationInfo {
                                request_id: call.request_id.clone(),
                                response_destination: Some(proto::OrchestrationInstance {
                                    instance_id: call.parent_instance_id.unwrap_or_default(),
                                    execution_id: call.parent_execution_id,
                                }),
                            });
                            operations.push(proto::OperationRequest {
                                operation: call.operation,
                                request_id: call.request_id,
                                input: call.input,
                                trace_context: None,
                            });
                        }
                        // Lock and unlock messages are the backend's business.
                        _ => {}
                    }
                }
                Self {
                    instance_id: request.instance_id,
                    state: request.entity_state,
                    operations,
                    infos: Some(infos),
                }
            }
        }
    }
}

/// Runs a batch against the registered entities (spec §6.4).
pub(crate) fn run(entities: &Entities, item: EntityWorkItem) -> proto::EntityBatchResult {
    let batch = Batch::from(item);
    let mut state = batch.state.filter(|s| !s.is_empty());
    let mut actions = Vec::new();
    let mut results = Vec::with_capacity(batch.operations.len());

    let target = EntityInstanceId::parse(&batch.instance_id)
        .map_err(|e| FailureDetails::new(error_types::INVALID_INPUT, e.to_string()))
        .and_then(|id| match entities.get(id.name()) {
            Some(start) => Ok((id, start)),
            None => Err(FailureDetails::new(
                error_types::ENTITY_NOT_REGISTERED,
                format!("no loaded plugin registers an entity named '{}'", id.name()),
            )),
        });

    for request in batch.operations {
        let started = SystemTime::now();
        let outcome = match &target {
            Err(failure) => Err(failure.clone()),
            Ok((id, start)) => {
                let mut ctx = EntityContext::new(id.clone(), request.operation, state.clone());
                let input = payload::non_empty(request.input.as_ref());
                match catch_unwind(AssertUnwindSafe(|| start(&mut ctx, input))) {
                    Ok(Ok(output)) => {
                        // Commit: the state and the actions of this operation.
                        let (new_state, new_actions) = ctx.into_parts();
                        state = new_state;
                        actions.extend(new_actions);
                        Ok(output)
                    }
                    // Roll back: the context, with its state and actions, is dropped.
                    Ok(Err(error)) => Err(error.into_details()),
                    Err(panic) => Err(panic_details(panic.as_ref())),
                }
            }
        };
        let (start_time_utc, end_time_utc) = (
            Some(to_timestamp(started)),
            Some(to_timestamp(SystemTime::now())),
        );
        let result_type = match outcome {
            Ok(output) => ResultType::Success(proto::OperationResultSuccess {
                // Always present: "" stands for null.
                result: Some(output.unwrap_or_default()),
                start_time_utc,
                end_time_utc,
            }),
            Err(failure) => ResultType::Failure(proto::OperationResultFailure {
                failure_details: Some(failure.to_proto()),
                start_time_utc,
                end_time_utc,
            }),
        };
        results.push(proto::OperationResult {
            result_type: Some(result_type),
        });
    }

    proto::EntityBatchResult {
        results,
        actions,
        entity_state: state,
        operation_infos: batch.infos.unwrap_or_default(),
        ..Default::default()
    }
}

/// The failure of an operation that panicked, with the backtrace the hook recorded.
fn panic_details(panic: &(dyn std::any::Any + Send)) -> FailureDetails {
    let mut details = FailureDetails::new(
        error_types::PLUGIN_PANIC,
        crate::export::panic_message(panic),
    );
    details.stack_trace = crate::panic_trace::take();
    details
}

/// The [`EntityStart`] of a function entity.
pub(crate) fn function_entity<F, I, O>(f: F) -> Box<EntityStart>
where
    F: Fn(&mut EntityContext, I) -> Result<O, Error> + Send + Sync + 'static,
    I: serde::de::DeserializeOwned + 'static,
    O: serde::Serialize + 'static,
{
    Box::new(move |ctx: &mut EntityContext, raw: Option<&str>| {
        let input: I = payload::decode(raw).map_err(|e| {
            Error::new(
                error_types::INVALID_INPUT,
                format!(
                    "the input of operation '{}' on entity '{}' does not fit its input type: {e}",
                    ctx.operation(),
                    ctx.entity_id()
                ),
            )
        })?;
        let output = f(ctx, input)?;
        encode_output(ctx, &output)
    })
}

/// The [`EntityStart`] of a class entity: load the value, dispatch, save the value.
pub(crate) fn class_entity<T: DurableEntity + 'static>() -> Box<EntityStart> {
    Box::new(|ctx: &mut EntityContext, raw: Option<&str>| {
        let existed = ctx.has_state();
        let mut entity: T = ctx.get_state()?.unwrap_or_default();
        let operation = ctx.operation().to_owned();
        let output = entity.dispatch(ctx, &operation, raw)?;
        if !ctx.state_written() {
            let saved = payload::encode(&entity).map_err(|e| {
                Error::new(
                    error_types::OUTPUT_NOT_SERIALIZABLE,
                    format!(
                        "the state of entity '{}' could not be serialized: {e}",
                        ctx.entity_id()
                    ),
                )
            })?;
            // A missing entity that is still the default stays missing.
            let unchanged_default =
                !existed && saved == payload::encode(&T::default()).ok().flatten();
            if !unchanged_default {
                ctx.set_raw_state(saved);
            }
        }
        Ok(output)
    })
}
