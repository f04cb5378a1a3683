//! Durable entities: small, durable, single-threaded state objects addressed as
//! `@name@key` ([`EntityInstanceId`]).
//!
//! An entity receives operations (by name, with an optional JSON input) one at a time, in
//! batches. Each operation may read and write the entity's state, signal other entities
//! and start orchestrations ([`EntityContext`]). Operations are synchronous functions.
//! A failed operation (an `Err`, or a panic) rolls back its own state change and the
//! signals and starts it made; the rest of the batch still runs.
//!
//! There are two ways to write one:
//! - a **function entity**: `fn(&mut EntityContext, I) -> Result<O, Error>`, given every
//!   operation (it reads [`EntityContext::operation`]), registered with
//!   [`Registry::entity`](crate::Registry::entity); with [`EntityContext::dispatch`] each
//!   operation gets its own input and output types;
//! - a **class entity**: a serde type whose methods are the operations
//!   ([`DurableEntity`], implemented with [`entity_operations!`](crate::entity_operations!)),
//!   registered with [`Registry::entity_class`](crate::Registry::entity_class). It gets an
//!   implicit `delete` operation; function entities do not (they see `delete` like any
//!   other operation).
//!
//! Entity names are case-insensitive: they are lowercased at registration and in ids.
//!
//! # Examples
//!
//! ```
//! use durabletask_sdk::{EntityContext, EntityWorkItem, Error, Registry, proto};
//!
//! fn counter(ctx: &mut EntityContext, amount: Option<i64>) -> Result<i64, Error> {
//!     let value = ctx.get_state::<i64>()?.unwrap_or(0) + amount.unwrap_or(0);
//!     ctx.set_state(value)?;
//!     Ok(value)
//! }
//!
//! let mut registry = Registry::new();
//! registry.entity("Counter", counter);
//!
//! let operation = |input: &str| proto::OperationRequest {
//!     operation: "add".into(),
//!     input: Some(input.into()),
//!     ..Default::default()
//! };
//! let result = registry.run_entity_batch(EntityWorkItem::V1(proto::EntityBatchRequest {
//!     instance_id: "@counter@k".into(),
//!     entity_state: Some("10".into()),
//!     operations: vec![operation("1"), operation(r#""two""#), operation("3")],
//!     ..Default::default()
//! }));
//! // The second operation failed (its input is not a number) and changed nothing.
//! assert_eq!(result.results.len(), 3);
//! assert_eq!(result.entity_state.as_deref(), Some("14"));
//! ```

mod batch;
mod class;
mod context;
mod operations;

pub(crate) use batch::{Entities, EntityStart, class_entity, function_entity, run};
#[doc(hidden)]
pub use class::__private;
pub use class::{DurableEntity, EntityOperation, UNKNOWN_ENTITY_OPERATION, shapes};
pub use context::EntityContext;
pub use durabletask_abi::entity::{EntityInstanceId, EntityWorkItem, InvalidEntityId};
pub use operations::{OperationInput, OperationOutput, Operations};

#[cfg(test)]
mod tests;
