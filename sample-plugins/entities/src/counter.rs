//! The `counter` function entity, and two orchestrations that use it: one that calls it
//! and one that signals it.

use durabletask_sdk::entity::{OperationInput, OperationOutput};
use durabletask_sdk::{EntityContext, EntityInstanceId, Error, OrchestrationContext};
use serde::Deserialize;

use crate::invalid_input;

/// The name [`counter`] is registered under (`export_plugin!` registers a function
/// entity under the function's name): its ids are `@counter@<key>`.
pub const COUNTER: &str = "counter";

/// The most signals [`count_to`] sends in one run. Each signal is an event in the
/// orchestration's history, and backends cap history length (the reference backend at
/// 10,000 events), so an unbounded count is refused up front with a clear error.
pub const MAX_COUNT: u32 = 1_000;

/// Function entity: a named number that starts at 0. Every operation returns the value
/// the counter holds after it.
///
/// - `add` (input: the amount, any `i64`) adds the amount;
/// - `get` returns the value, 0 for a counter that was never written or was deleted;
/// - `reset` sets the value to 0;
/// - `delete` removes the counter's state altogether.
///
/// A function entity gets every operation sent to it, whatever its name; `dispatch`
/// gives each operation its own input type (`add` an amount, the others none: an input
/// sent to them is refused with `InvalidInput`) and fails any other operation with
/// `UnknownEntityOperation`.
pub fn counter(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
    ctx.dispatch(input)
        .on("add", add)
        // Reading does not write, so reading a counter that does not exist does not
        // create it.
        .on("get", |ctx, (): ()| value(ctx))
        .on("reset", |ctx, (): ()| {
            ctx.set_state(0)?;
            Ok(0)
        })
        // Class entities get an implicit `delete`; a function entity sees `delete` like
        // any other operation and must handle it itself.
        .on("delete", |ctx, (): ()| {
            ctx.delete_state();
            Ok(0)
        })
        .finish()
}

/// The counter's value: 0 when it has none.
fn value(ctx: &EntityContext) -> Result<i64, Error> {
    Ok(ctx.get_state()?.unwrap_or(0))
}

/// `add`: the amount is optional in the type so that a missing one gets a message saying
/// what is missing, rather than a deserialization error.
fn add(ctx: &mut EntityContext, amount: Option<i64>) -> Result<i64, Error> {
    let amount = amount.ok_or_else(|| {
        invalid_input(format!(
            "'add' on entity '{}' needs an amount",
            ctx.entity_id()
        ))
    })?;
    let value = value(ctx)?;
    let sum = value.checked_add(amount).ok_or_else(|| {
        Error::new(
            "Overflow",
            format!(
                "entity '{}' holds {value}; adding {amount} does not fit in an i64",
                ctx.entity_id()
            ),
        )
    })?;
    ctx.set_state(sum)?;
    Ok(sum)
}

/// The input of [`call_counter`]: `{"key": "visits", "operation": "add", "amount": 5}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterCall {
    /// The counter's key.
    pub key: String,
    /// The operation to run: `add`, `get`, `reset` or `delete`.
    pub operation: String,
    /// The amount, for `add`; omitted for the other operations.
    pub amount: Option<i64>,
}

/// Orchestrator: runs one operation on a counter and returns its result. Clients cannot
/// call entities themselves, so this is how they get an answer from one.
///
/// A call waits for the entity to run the operation. If the operation fails, `?` fails
/// the orchestration with errorType `TaskFailed`, the counter's own failure as the inner
/// failure.
pub async fn call_counter(ctx: OrchestrationContext, call: CounterCall) -> Result<i64, Error> {
    let counter = EntityInstanceId::new(COUNTER, call.key)?;
    Ok(ctx
        .call_entity(&counter, &call.operation, call.amount)
        .await?)
}

/// The input of [`count_to`]: `{"key": "visits", "times": 3}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountTo {
    /// The counter's key.
    pub key: String,
    /// How many times to add 1, at most [`MAX_COUNT`].
    pub times: u32,
}

/// Orchestrator: signals `add 1` to a counter `times` times, then calls `get` and returns
/// the value (`times` more than before, if nothing else changed the counter meanwhile).
///
/// Signals are one-way: there is nothing to await and no result, and the orchestration
/// does not wait for them to run. The call at the end does wait, and since an entity
/// runs the messages from one orchestration in the order they were sent, `get` runs after
/// every `add`.
pub async fn count_to(ctx: OrchestrationContext, request: CountTo) -> Result<i64, Error> {
    if request.times > MAX_COUNT {
        return Err(invalid_input(format!(
            "times must be at most {MAX_COUNT}, got {}",
            request.times
        )));
    }
    let counter = EntityInstanceId::new(COUNTER, request.key)?;
    for _ in 0..request.times {
        ctx.signal_entity(&counter, "add", 1)?;
    }
    Ok(ctx.call_entity(&counter, "get", ()).await?)
}
