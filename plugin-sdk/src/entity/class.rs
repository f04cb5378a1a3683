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
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::entity::{DurableEntity, UNKNOWN_ENTITY_OPERATION};
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, Registry};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Counter {
    ///     value: i64,
    /// }
    ///
    /// // Written by hand instead of by `entity_operations!`: operation names in any case.
    /// impl DurableEntity for Counter {
    ///     fn dispatch(
    ///         &mut self,
    ///         _ctx: &mut EntityContext,
    ///         operation: &str,
    ///         input: Option<&str>,
    ///     ) -> Result<Option<String>, Error> {
    ///         match operation.to_ascii_lowercase().as_str() {
    ///             "add" => {
    ///                 self.value += serde_json::from_str::<i64>(input.unwrap_or("1"))?;
    ///                 Ok(None)
    ///             }
    ///             "get" => Ok(Some(self.value.to_string())),
    ///             _ => {
    ///                 let message = format!("no operation '{operation}'");
    ///                 Err(Error::new(UNKNOWN_ENTITY_OPERATION, message))
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.entity_class::<Counter>("counter");
    /// let mut runtime = TestRuntime::new(registry);
    /// let counter = EntityInstanceId::new("counter", "c")?;
    /// runtime.signal_entity(&counter, "ADD", 5)?;
    /// runtime.signal_entity(&counter, "Add", ())?;
    /// let state = runtime.entity_state::<serde_json::Value>(&counter)?;
    /// assert_eq!(state, Some(serde_json::json!({ "value": 6 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
///
/// # Examples
///
/// The four shapes in one class entity:
///
/// ```
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, Registry};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// impl Cart {
///     // `(&mut self, &mut EntityContext, I)`
///     fn add(&mut self, ctx: &mut EntityContext, item: String) -> Result<usize, Error> {
///         if self.items.len() >= 3 {
///             let id = ctx.entity_id();
///             return Err(Error::new("CartFull", format!("{id} holds 3 items already")));
///         }
///         self.items.push(item);
///         Ok(self.items.len())
///     }
///
///     // `(&mut self, I)`
///     fn remove(&mut self, item: String) -> Result<bool, Error> {
///         let before = self.items.len();
///         self.items.retain(|i| *i != item);
///         Ok(self.items.len() < before)
///     }
///
///     // `(&mut self)`
///     fn clear(&mut self) -> Result<(), Error> {
///         self.items.clear();
///         Ok(())
///     }
///
///     // `(&self)`
///     fn count(&self) -> Result<usize, Error> {
///         Ok(self.items.len())
///     }
/// }
///
/// durabletask_sdk::entity_operations!(Cart { add, remove, clear, count });
///
/// let mut registry = Registry::new();
/// registry.entity_class::<Cart>("cart");
/// let mut runtime = TestRuntime::new(registry);
/// let cart = EntityInstanceId::new("cart", "ada")?;
/// runtime.signal_entity(&cart, "add", "pen")?;
/// runtime.signal_entity(&cart, "add", "ink")?;
/// runtime.signal_entity(&cart, "remove", "pen")?;
/// assert_eq!(runtime.entity_state::<Cart>(&cart)?.map(|c| c.items), Some(vec!["ink".to_owned()]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
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

/// The `errorType` of an operation a class entity does not have.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::entity::UNKNOWN_ENTITY_OPERATION;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{EntityInstanceId, Error, OrchestrationContext, Registry};
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
/// }
///
/// durabletask_sdk::entity_operations!(Light { switch });
///
/// /// Dims the light if it can, else switches it off.
/// async fn dim(ctx: OrchestrationContext, room: String) -> Result<&'static str, Error> {
///     let light = EntityInstanceId::new("light", &room)?;
///     match ctx.call_entity::<_, ()>(&light, "dim", 50).await {
///         Ok(()) => Ok("dimmed"),
///         Err(failed) if failed.details.error_type == UNKNOWN_ENTITY_OPERATION => {
///             ctx.call_entity::<_, ()>(&light, "switch", false).await?;
///             Ok("switched off")
///         }
///         Err(failed) => Err(failed.into()),
///     }
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("dim", dim).entity_class::<Light>("light");
/// let mut runtime = TestRuntime::new(registry);
/// let id = runtime.start("dim", "kitchen")?;
/// assert_eq!(runtime.output::<String>(&id)?, "switched off");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
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
