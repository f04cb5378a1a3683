//! Running an entity batch (spec §6.3, §6.4): both work-item shapes, per-operation
//! commit and rollback of the state and the actions.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::SystemTime;

use durabletask_abi::entity::EntityBatch;
use durabletask_abi::failure;
use durabletask_proto as proto;
use proto::operation_result::ResultType;

use super::class::encode_output;
use super::context::to_timestamp;
use super::{DurableEntity, EntityContext, EntityInstanceId, EntityWorkItem};
use crate::error::{Error, FailureDetails, error_types};
use crate::orchestration::payload;

/// Runs one operation: the context, the raw JSON input; the raw JSON output.
pub(crate) type EntityStart =
    dyn Fn(&mut EntityContext, Option<&str>) -> Result<Option<String>, Error> + Send + Sync;

/// The registered entities by (lowercase) name.
pub(crate) type Entities = BTreeMap<String, Box<EntityStart>>;

/// Runs a batch against the registered entities (spec §6.4).
pub(crate) fn run(entities: &Entities, item: EntityWorkItem) -> proto::EntityBatchResult {
    let batch = EntityBatch::from(item);
    let target = EntityInstanceId::parse(&batch.instance_id)
        .map_err(|e| FailureDetails::new(error_types::INVALID_INPUT, e.to_string()))
        .and_then(|id| match entities.get(id.name()) {
            Some(start) => Ok((id, start)),
            None => Err(FailureDetails::new(
                error_types::ENTITY_NOT_REGISTERED,
                format!("no loaded plugin registers an entity named '{}'", id.name()),
            )),
        });
    let (id, start) = match target {
        Ok(target) => target,
        Err(details) => return failure::every_operation(batch, details.to_proto()),
    };

    let mut state = batch.state.filter(|s| !s.is_empty());
    let mut actions = Vec::new();
    let mut results = Vec::with_capacity(batch.operations.len());
    for request in batch.operations {
        let started = SystemTime::now();
        let mut ctx = EntityContext::new(id.clone(), request.operation, state.clone());
        let input = payload::non_empty(request.input.as_ref());
        let outcome = match catch_unwind(AssertUnwindSafe(|| start(&mut ctx, input))) {
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
        };
        let ended = SystemTime::now();
        results.push(match outcome {
            Ok(output) => proto::OperationResult {
                result_type: Some(ResultType::Success(proto::OperationResultSuccess {
                    // Always present: "" stands for null.
                    result: Some(output.unwrap_or_default()),
                    start_time_utc: Some(to_timestamp(started)),
                    end_time_utc: Some(to_timestamp(ended)),
                })),
            },
            Err(details) => failure::operation(details.to_proto(), started, ended),
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
