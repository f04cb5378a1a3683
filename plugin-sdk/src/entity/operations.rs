//! Typed operations for function entities: [`EntityContext::dispatch`] gives each
//! operation its own input and output types, where a plain function entity has one input
//! type for all of them.
//!
//! It fits inside an ordinary function entity (the one-input-type kind
//! [`Registry::entity`](crate::Registry::entity) and `export_plugin!` register): the
//! entity takes an [`OperationInput`], which holds the raw JSON, and returns an
//! [`OperationOutput`]; the dispatcher decodes the input into the matching operation's
//! type and encodes its output.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::EntityContext;
use super::class::UNKNOWN_ENTITY_OPERATION;
use crate::error::{Error, error_types};

/// The input of a function entity whose operations are typed: the operation's JSON
/// input, not decoded yet (`null` when there is none). Hand it to
/// [`EntityContext::dispatch`].
///
/// # Examples
///
/// ```
/// use durabletask_sdk::entity::{OperationInput, OperationOutput};
/// use durabletask_sdk::{EntityContext, Error};
///
/// fn greeter(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
///     ctx.dispatch(input)
///         .on("greet", |_ctx, name: String| Ok(format!("Hello {name}!")))
///         .finish()
/// }
/// # let _ = durabletask_sdk::Registry::new().entity("greeter", greeter);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OperationInput(serde_json::Value);

impl<'de> Deserialize<'de> for OperationInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Self)
    }
}

/// The output of a function entity whose operations are typed: the output of the
/// operation that ran, as JSON. Made by [`Operations::finish`].
///
/// It is written as a JSON value, so the fields of an object come out sorted by name
/// (JSON objects are unordered: readers are not affected).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::entity::{OperationInput, OperationOutput};
/// use durabletask_sdk::{EntityContext, Error};
///
/// fn clock(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
///     ctx.dispatch(input).on("ticks", |_ctx, (): ()| Ok(42_u64)).finish()
/// }
/// # let _ = durabletask_sdk::Registry::new().entity("clock", clock);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct OperationOutput(serde_json::Value);

impl Serialize for OperationOutput {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl EntityContext {
    /// Dispatches this operation to the handler registered for its name with
    /// [`Operations::on`], each handler with its own input and output types. Names match
    /// exactly (case-sensitive), as for class entities.
    ///
    /// An input that does not fit the handler's input type fails the operation with
    /// [`InvalidInput`](crate::error_types::INVALID_INPUT) (the handler does not run); an
    /// operation no handler takes fails with
    /// [`UNKNOWN_ENTITY_OPERATION`] and the message `Entity '@name@key' has no operation
    /// '<op>'`. There is no implicit `delete`: add a handler for it if the entity should
    /// have one.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::entity::{OperationInput, OperationOutput};
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn counter(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
    ///     ctx.dispatch(input)
    ///         .on("add", |ctx, amount: i64| {
    ///             let value = ctx.get_state::<i64>()?.unwrap_or(0) + amount;
    ///             ctx.set_state(value)?;
    ///             Ok(value)
    ///         })
    ///         .on("get", |ctx, (): ()| Ok(ctx.get_state::<i64>()?.unwrap_or(0)))
    ///         .on("delete", |ctx, (): ()| {
    ///             ctx.delete_state();
    ///             Ok(())
    ///         })
    ///         .finish()
    /// }
    /// # let _ = durabletask_sdk::Registry::new().entity("counter", counter);
    /// ```
    pub fn dispatch(&mut self, input: OperationInput) -> Operations<'_> {
        Operations {
            ctx: self,
            input: Some(input.0),
            outcome: None,
        }
    }
}

/// The typed operations of a function entity, from [`EntityContext::dispatch`]: add one
/// handler per operation with [`on`](Self::on), then [`finish`](Self::finish).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::entity::{OperationInput, OperationOutput};
/// use durabletask_sdk::{EntityContext, Error};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Rename {
///     from: String,
///     to: String,
/// }
///
/// fn directory(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
///     ctx.dispatch(input)
///         .on("add", add)
///         .on("rename", rename)
///         .on("list", |ctx, (): ()| Ok(names(ctx)?))
///         .finish()
/// }
///
/// fn names(ctx: &EntityContext) -> Result<Vec<String>, Error> {
///     Ok(ctx.get_state()?.unwrap_or_default())
/// }
///
/// fn add(ctx: &mut EntityContext, name: String) -> Result<usize, Error> {
///     let mut all = names(ctx)?;
///     all.push(name);
///     ctx.set_state(&all)?;
///     Ok(all.len())
/// }
///
/// fn rename(ctx: &mut EntityContext, rename: Rename) -> Result<bool, Error> {
///     let mut all = names(ctx)?;
///     let Some(slot) = all.iter_mut().find(|name| **name == rename.from) else {
///         return Ok(false);
///     };
///     *slot = rename.to;
///     ctx.set_state(&all)?;
///     Ok(true)
/// }
/// # let _ = durabletask_sdk::Registry::new().entity("directory", directory);
/// ```
#[must_use = "call `finish` to get the operation's output"]
pub struct Operations<'a> {
    ctx: &'a mut EntityContext,
    /// The input, until a handler takes it.
    input: Option<serde_json::Value>,
    /// The outcome of the handler that ran, if one did.
    outcome: Option<Result<OperationOutput, Error>>,
}

impl Operations<'_> {
    /// Handles the operation `name`: when this is the operation being run (and no earlier
    /// handler took it), decodes the input as `I`, runs `handler` and encodes its output.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::entity::{OperationInput, OperationOutput};
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn light(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
    ///     ctx.dispatch(input)
    ///         .on("switch", |ctx, on: bool| ctx.set_state(on))
    ///         .on("is_on", |ctx, (): ()| Ok(ctx.get_state::<bool>()?.unwrap_or(false)))
    ///         .finish()
    /// }
    /// # let _ = durabletask_sdk::Registry::new().entity("light", light);
    /// ```
    pub fn on<I, O, F>(mut self, name: &str, handler: F) -> Self
    where
        I: DeserializeOwned,
        O: Serialize,
        F: FnOnce(&mut EntityContext, I) -> Result<O, Error>,
    {
        if self.outcome.is_some() || self.ctx.operation() != name {
            return self;
        }
        let input = self.input.take().unwrap_or(serde_json::Value::Null);
        self.outcome = Some(run(self.ctx, input, handler));
        self
    }

    /// The output of the handler that ran, or its failure; an
    /// [`UNKNOWN_ENTITY_OPERATION`] failure when no handler took the operation.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::entity::{OperationInput, OperationOutput};
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn ping(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
    ///     // Every operation but `ping` fails with UnknownEntityOperation.
    ///     ctx.dispatch(input).on("ping", |_ctx, (): ()| Ok("pong")).finish()
    /// }
    /// # let _ = durabletask_sdk::Registry::new().entity("ping", ping);
    /// ```
    pub fn finish(self) -> Result<OperationOutput, Error> {
        self.outcome.unwrap_or_else(|| {
            Err(Error::new(
                UNKNOWN_ENTITY_OPERATION,
                format!(
                    "Entity '{}' has no operation '{}'",
                    self.ctx.entity_id(),
                    self.ctx.operation()
                ),
            ))
        })
    }
}

/// Runs one handler: decode, call, encode, with the messages plain function entities use.
fn run<I, O, F>(
    ctx: &mut EntityContext,
    input: serde_json::Value,
    handler: F,
) -> Result<OperationOutput, Error>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(&mut EntityContext, I) -> Result<O, Error>,
{
    let input: I = serde_json::from_value(input).map_err(|e| {
        Error::new(
            error_types::INVALID_INPUT,
            format!(
                "the input of operation '{}' on entity '{}' does not fit its input type \
                 {}: {e}",
                ctx.operation(),
                ctx.entity_id(),
                std::any::type_name::<I>()
            ),
        )
    })?;
    let output = handler(ctx, input)?;
    serde_json::to_value(&output)
        .map(OperationOutput)
        .map_err(|e| {
            Error::new(
                error_types::OUTPUT_NOT_SERIALIZABLE,
                format!(
                    "the output of operation '{}' on entity '{}' could not be serialized: {e}",
                    ctx.operation(),
                    ctx.entity_id()
                ),
            )
        })
}
