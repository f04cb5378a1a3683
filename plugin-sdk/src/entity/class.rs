//! Class-based entities: a Rust type whose methods are the operations
//! ([`DurableEntity`], [`entity_operations!`](crate::entity_operations!)).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::EntityContext;
use crate::error::{Error, error_types};
use crate::orchestration::payload;

/// An entity whose state is the value of a Rust type and whose operations are its methods.
///
/// The type itself is the state, persisted as JSON with serde: before each operation the
/// state is read into a value (a missing state gives `Default::default()`), the method
/// runs on it, and afterwards the value is saved. Two exceptions: an operation that calls
/// [`EntityContext::set_state`] or [`EntityContext::delete_state`] keeps what it wrote
/// instead, and an entity without a state whose value is still the default after the
/// operation stays without one (reading a missing entity does not create it).
///
/// Implement it with [`entity_operations!`](crate::entity_operations!), which dispatches an
/// operation to the method of the same name (case-sensitive) and adds an implicit `delete`
/// operation that deletes the state. Register the type with
/// [`Registry::entity_class`](crate::Registry::entity_class).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{EntityContext, Error, Registry};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Account {
///     balance: i64,
/// }
///
/// impl Account {
///     fn deposit(&mut self, amount: i64) -> Result<i64, Error> {
///         self.balance += amount;
///         Ok(self.balance)
///     }
///
///     fn withdraw(&mut self, ctx: &mut EntityContext, amount: i64) -> Result<i64, Error> {
///         if amount > self.balance {
///             let id = ctx.entity_id();
///             return Err(Error::new("Overdraft", format!("{id} holds only {}", self.balance)));
///         }
///         self.balance -= amount;
///         Ok(self.balance)
///     }
///
///     fn balance(&self) -> Result<i64, Error> {
///         Ok(self.balance)
///     }
/// }
///
/// durabletask_sdk::entity_operations!(Account { deposit, withdraw, balance });
///
/// let mut registry = Registry::new();
/// registry.entity_class::<Account>("account");
/// assert_eq!(registry.entity_names(), ["account"]);
/// ```
pub trait DurableEntity: Serialize + DeserializeOwned + Default {
    /// Runs `operation` with its raw JSON `input` (`None` for none) and returns its JSON
    /// output (`None` for `null`). [`entity_operations!`](crate::entity_operations!)
    /// writes it.
    fn dispatch(
        &mut self,
        ctx: &mut EntityContext,
        operation: &str,
        input: Option<&str>,
    ) -> Result<Option<String>, Error>;
}

/// One operation of a class entity: a method taking `&mut self` or `&self`, optionally
/// the [`EntityContext`], optionally an input of any deserializable type, and returning a
/// `Result` of any serializable type. The `Marker` parameter only tells the supported
/// shapes apart; [`entity_operations!`](crate::entity_operations!) uses this trait and
/// user code never names it.
///
/// The supported shapes:
///
/// ```text
/// fn op(&mut self, ctx: &mut EntityContext, input: I) -> Result<O, Error>
/// fn op(&mut self, input: I) -> Result<O, Error>
/// fn op(&mut self) -> Result<O, Error>
/// fn op(&self) -> Result<O, Error>
/// ```
pub trait EntityOperation<T, Marker> {
    /// Decodes the input, calls the method and encodes its output.
    fn invoke(
        &self,
        entity: &mut T,
        ctx: &mut EntityContext,
        input: Option<&str>,
    ) -> Result<Option<String>, Error>;
}

/// Marker types of the [`EntityOperation`] shapes.
#[doc(hidden)]
pub mod shapes {
    /// `(&mut self, &mut EntityContext, I)`
    pub struct WithContext<I, O>(std::marker::PhantomData<(I, O)>);
    /// `(&mut self, I)`
    pub struct WithInput<I, O>(std::marker::PhantomData<(I, O)>);
    /// `(&mut self)`
    pub struct NoInput<O>(std::marker::PhantomData<O>);
    /// `(&self)`
    pub struct ReadOnly<O>(std::marker::PhantomData<O>);
}

fn decode_input<I: DeserializeOwned>(ctx: &EntityContext, raw: Option<&str>) -> Result<I, Error> {
    payload::decode(raw).map_err(|e| {
        Error::new(
            error_types::INVALID_INPUT,
            format!(
                "the input of operation '{}' on entity '{}' does not fit its input type: {e}",
                ctx.operation(),
                ctx.entity_id()
            ),
        )
    })
}

/// Encodes an operation's output; `null` is `None`.
pub(crate) fn encode_output<O: Serialize>(
    ctx: &EntityContext,
    output: &O,
) -> Result<Option<String>, Error> {
    payload::encode(output).map_err(|e| {
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

impl<T, F, I, O> EntityOperation<T, shapes::WithContext<I, O>> for F
where
    F: Fn(&mut T, &mut EntityContext, I) -> Result<O, Error>,
    I: DeserializeOwned,
    O: Serialize,
{
    fn invoke(
        &self,
        entity: &mut T,
        ctx: &mut EntityContext,
        input: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let input = decode_input(ctx, input)?;
        let output = self(entity, ctx, input)?;
        encode_output(ctx, &output)
    }
}

impl<T, F, I, O> EntityOperation<T, shapes::WithInput<I, O>> for F
where
    F: Fn(&mut T, I) -> Result<O, Error>,
    I: DeserializeOwned,
    O: Serialize,
{
    fn invoke(
        &self,
        entity: &mut T,
        ctx: &mut EntityContext,
        input: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let input = decode_input(ctx, input)?;
        let output = self(entity, input)?;
        encode_output(ctx, &output)
    }
}

impl<T, F, O> EntityOperation<T, shapes::NoInput<O>> for F
where
    F: Fn(&mut T) -> Result<O, Error>,
    O: Serialize,
{
    fn invoke(
        &self,
        entity: &mut T,
        ctx: &mut EntityContext,
        _input: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let output = self(entity)?;
        encode_output(ctx, &output)
    }
}

impl<T, F, O> EntityOperation<T, shapes::ReadOnly<O>> for F
where
    F: Fn(&T) -> Result<O, Error>,
    O: Serialize,
{
    fn invoke(
        &self,
        entity: &mut T,
        ctx: &mut EntityContext,
        _input: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let output = self(entity)?;
        encode_output(ctx, &output)
    }
}

/// Support for [`entity_operations!`](crate::entity_operations!); not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::{EntityContext, EntityOperation, Error};

    /// Calls one operation method.
    pub fn invoke<T, M, F: EntityOperation<T, M>>(
        method: F,
        entity: &mut T,
        ctx: &mut EntityContext,
        input: Option<&str>,
    ) -> Result<Option<String>, Error> {
        method.invoke(entity, ctx, input)
    }

    /// The implicit `delete` operation.
    pub fn delete(ctx: &mut EntityContext) -> Result<Option<String>, Error> {
        ctx.delete_state();
        Ok(None)
    }

    /// The failure for an operation the entity does not have.
    pub fn unknown_operation(ctx: &EntityContext, operation: &str) -> Error {
        Error::new(
            super::UNKNOWN_ENTITY_OPERATION,
            format!(
                "Entity '{}' has no operation '{operation}'",
                ctx.entity_id()
            ),
        )
    }
}

pub use durabletask_abi::error_types::UNKNOWN_ENTITY_OPERATION;

/// Implements [`DurableEntity`] for a type from the list of its operation methods.
///
/// `entity_operations!(Type { method, ... })` dispatches the operation named `method`
/// (case-sensitive) to `Type::method`, which may have any of the shapes
/// [`EntityOperation`](crate::entity::EntityOperation) lists: `&mut self` or `&self`,
/// optionally the `&mut EntityContext`, optionally a typed input, returning
/// `Result<O, Error>`. An operation named `delete` that is not in the list deletes the
/// entity's state; any other unknown operation fails with
/// [`UNKNOWN_ENTITY_OPERATION`](crate::entity::UNKNOWN_ENTITY_OPERATION) and the message
/// `Entity '@name@key' has no operation '<op>'`.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{EntityContext, Error};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Light {
///     on: bool,
/// }
///
/// impl Light {
///     fn switch(&mut self, on: bool) -> Result<(), Error> {
///         self.on = on;
///         Ok(())
///     }
///
///     fn is_on(&self) -> Result<bool, Error> {
///         Ok(self.on)
///     }
/// }
///
/// durabletask_sdk::entity_operations!(Light { switch, is_on });
/// # let _ = durabletask_sdk::Registry::new().entity_class::<Light>("light");
/// ```
#[macro_export]
macro_rules! entity_operations {
    ($entity:ty { $($method:ident),* $(,)? }) => {
        impl $crate::entity::DurableEntity for $entity {
            fn dispatch(
                &mut self,
                ctx: &mut $crate::entity::EntityContext,
                operation: &str,
                input: ::core::option::Option<&str>,
            ) -> ::core::result::Result<::core::option::Option<::std::string::String>, $crate::Error>
            {
                $(
                    if operation == ::core::stringify!($method) {
                        return $crate::entity::__private::invoke(
                            <$entity>::$method,
                            self,
                            ctx,
                            input,
                        );
                    }
                )*
                if operation == "delete" {
                    return $crate::entity::__private::delete(ctx);
                }
                ::core::result::Result::Err($crate::entity::__private::unknown_operation(
                    ctx, operation,
                ))
            }
        }
    };
}
