//! [`EntityContext`]: what an entity operation sees and may do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use durabletask_proto as proto;
use proto::operation_action::OperationActionType;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::EntityInstanceId;
use crate::error::{Error, error_types};
use crate::orchestration::payload;

/// Passed to every entity operation: which entity and operation this is, the entity's
/// state, and the messages the operation sends.
///
/// The state is JSON, read and written with serde. Signals and orchestration starts are
/// sent only if the operation succeeds: a failed operation (an `Err` or a panic) leaves the
/// state as it was and sends nothing.
///
/// # Examples
///
/// A counter as a function entity:
///
/// ```
/// use durabletask_sdk::{EntityContext, Error};
///
/// fn counter(ctx: &mut EntityContext, amount: Option<i64>) -> Result<i64, Error> {
///     let mut value: i64 = ctx.get_state()?.unwrap_or(0);
///     match ctx.operation() {
///         "add" => value += amount.unwrap_or(1),
///         "reset" => value = 0,
///         "get" => return Ok(value),
///         "delete" => {
///             ctx.delete_state();
///             return Ok(0);
///         }
///         other => return Err(Error::new("UnknownOperation", format!("no operation '{other}'"))),
///     }
///     ctx.set_state(value)?;
///     Ok(value)
/// }
/// # let mut registry = durabletask_sdk::Registry::new();
/// # registry.entity("counter", counter);
/// ```
#[derive(Debug)]
pub struct EntityContext {
    id: EntityInstanceId,
    operation: String,
    /// The serialized state; `None` when the entity has none.
    state: Option<String>,
    /// Whether `set_state` or `delete_state` ran during this operation.
    state_written: bool,
    actions: Vec<proto::OperationAction>,
}

impl EntityContext {
    pub(crate) fn new(id: EntityInstanceId, operation: String, state: Option<String>) -> Self {
        Self {
            id,
            operation,
            state,
            state_written: false,
            actions: Vec::new(),
        }
    }

    /// The operation being run, as the caller spelled it.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn echo(ctx: &mut EntityContext, _input: ()) -> Result<String, Error> {
    ///     Ok(format!("{} on {}", ctx.operation(), ctx.entity_id()))
    /// }
    /// # let mut registry = durabletask_sdk::Registry::new();
    /// # registry.entity("echo", echo);
    /// ```
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The id of the entity the operation runs on.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, Registry};
    ///
    /// /// One inbox per user: the entity's key says whose.
    /// fn inbox(ctx: &mut EntityContext, message: String) -> Result<(), Error> {
    ///     let mut messages: Vec<String> = ctx.get_state()?.unwrap_or_default();
    ///     messages.push(format!("to {}: {message}", ctx.entity_id().key()));
    ///     ctx.set_state(messages)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.entity("inbox", inbox);
    /// let mut runtime = TestRuntime::new(registry);
    /// let ada = EntityInstanceId::new("inbox", "ada")?;
    /// runtime.signal_entity(&ada, "post", "lunch at noon?")?;
    /// assert_eq!(
    ///     runtime.entity_state::<Vec<String>>(&ada)?,
    ///     Some(vec!["to ada: lunch at noon?".to_owned()])
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entity_id(&self) -> &EntityInstanceId {
        &self.id
    }

    /// Whether the entity has a state at all (a deleted or never-written entity has none).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, Registry};
    ///
    /// /// A username registry: the first claim of a name wins.
    /// fn username(ctx: &mut EntityContext, owner: String) -> Result<bool, Error> {
    ///     if ctx.has_state() {
    ///         return Ok(false);
    ///     }
    ///     ctx.set_state(owner)?;
    ///     Ok(true)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.entity("username", username);
    /// let mut runtime = TestRuntime::new(registry);
    /// let name = EntityInstanceId::new("username", "ada")?;
    /// runtime.signal_entity(&name, "claim", "user-1")?;
    /// runtime.signal_entity(&name, "claim", "user-2")?;
    /// assert_eq!(runtime.entity_state::<String>(&name)?.as_deref(), Some("user-1"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn has_state(&self) -> bool {
        self.state.is_some()
    }

    /// The entity's state read as `T`, or `None` when the entity has no state. A state
    /// that does not fit `T` is an [`error_types::INVALID_INPUT`] error.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn get(ctx: &mut EntityContext, _input: ()) -> Result<Vec<String>, Error> {
    ///     Ok(ctx.get_state::<Vec<String>>()?.unwrap_or_default())
    /// }
    /// # let mut registry = durabletask_sdk::Registry::new();
    /// # registry.entity("list", get);
    /// ```
    pub fn get_state<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        let Some(text) = self.state.as_deref() else {
            return Ok(None);
        };
        serde_json::from_str(text).map_err(|e| {
            Error::new(
                error_types::INVALID_INPUT,
                format!(
                    "the state of entity '{}' does not fit the type {}: {e}",
                    self.id,
                    std::any::type_name::<T>()
                ),
            )
        })
    }

    /// Replaces the entity's state. A value that serializes to `null` deletes the state,
    /// as [`delete_state`](Self::delete_state) does. A value that cannot be serialized is
    /// an [`error_types::OUTPUT_NOT_SERIALIZABLE`] error and leaves the state unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn remember(ctx: &mut EntityContext, note: String) -> Result<(), Error> {
    ///     let mut notes: Vec<String> = ctx.get_state()?.unwrap_or_default();
    ///     notes.push(note);
    ///     ctx.set_state(&notes)
    /// }
    /// # let mut registry = durabletask_sdk::Registry::new();
    /// # registry.entity("notes", remember);
    /// ```
    pub fn set_state<T: Serialize>(&mut self, state: T) -> Result<(), Error> {
        let encoded = payload::encode(&state).map_err(|e| {
            Error::new(
                error_types::OUTPUT_NOT_SERIALIZABLE,
                format!(
                    "the state of entity '{}' could not be serialized: {e}",
                    self.id
                ),
            )
        })?;
        self.state = encoded;
        self.state_written = true;
        Ok(())
    }

    /// Deletes the entity's state: once the batch is saved the entity no longer exists
    /// (until an operation sets a state again).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, Registry};
    ///
    /// fn session(ctx: &mut EntityContext, _input: ()) -> Result<(), Error> {
    ///     match ctx.operation() {
    ///         "touch" => {
    ///             let hits = ctx.get_state::<u32>()?.unwrap_or(0);
    ///             ctx.set_state(hits + 1)
    ///         }
    ///         "end" => {
    ///             ctx.delete_state();
    ///             Ok(())
    ///         }
    ///         other => Err(Error::new("UnknownOperation", format!("no operation '{other}'"))),
    ///     }
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.entity("session", session);
    /// let mut runtime = TestRuntime::new(registry);
    /// let session_id = EntityInstanceId::new("session", "s-42")?;
    /// runtime.signal_entity(&session_id, "touch", ())?;
    /// assert_eq!(runtime.entity_state::<u32>(&session_id)?, Some(1));
    /// runtime.signal_entity(&session_id, "end", ())?;
    /// assert_eq!(runtime.entity_state::<u32>(&session_id)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_state(&mut self) {
        self.state = None;
        self.state_written = true;
    }

    /// Sends a one-way operation to an entity (possibly this one), once this operation
    /// has succeeded. `input` is any serializable value; `()` sends none.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityContext, EntityInstanceId, Error};
    ///
    /// fn add(ctx: &mut EntityContext, amount: i64) -> Result<(), Error> {
    ///     let total: i64 = ctx.get_state()?.unwrap_or(0) + amount;
    ///     ctx.set_state(total)?;
    ///     let audit = EntityInstanceId::new("audit", ctx.entity_id().key())?;
    ///     ctx.signal_entity(&audit, "record", amount)
    /// }
    /// # let mut registry = durabletask_sdk::Registry::new();
    /// # registry.entity("counter", add);
    /// ```
    pub fn signal_entity<I: Serialize>(
        &mut self,
        id: &EntityInstanceId,
        operation: impl Into<String>,
        input: I,
    ) -> Result<(), Error> {
        self.signal(id, operation.into(), input, None)
    }

    /// Like [`signal_entity`](Self::signal_entity), but the backend delivers the signal
    /// no earlier than `time` (a time in the past delivers it at once).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn start(ctx: &mut EntityContext, _input: ()) -> Result<(), Error> {
    ///     let me = ctx.entity_id().clone();
    ///     let in_a_minute = SystemTime::now() + Duration::from_secs(60);
    ///     ctx.signal_entity_at(&me, "expire", (), in_a_minute)
    /// }
    /// # let mut registry = durabletask_sdk::Registry::new();
    /// # registry.entity("session", start);
    /// ```
    pub fn signal_entity_at<I: Serialize>(
        &mut self,
        id: &EntityInstanceId,
        operation: impl Into<String>,
        input: I,
        time: SystemTime,
    ) -> Result<(), Error> {
        self.signal(id, operation.into(), input, Some(time))
    }

    fn signal<I: Serialize>(
        &mut self,
        id: &EntityInstanceId,
        operation: String,
        input: I,
        time: Option<SystemTime>,
    ) -> Result<(), Error> {
        let input = self.encode_input(&input, "signal input")?;
        self.push(OperationActionType::SendSignal(proto::SendSignalAction {
            instance_id: id.to_string(),
            name: operation,
            input,
            scheduled_time: time.map(to_timestamp),
            ..Default::default()
        }));
        Ok(())
    }

    /// Starts a new orchestration once this operation has succeeded, and returns its
    /// instance id: `instance_id` if given, else a new random id (a UUID in hex).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityContext, Error};
    ///
    /// fn checkout(ctx: &mut EntityContext, cart: Vec<String>) -> Result<String, Error> {
    ///     let order = format!("order-{}", ctx.entity_id().key());
    ///     ctx.schedule_new_orchestration("process_order", cart, Some(order))
    /// }
    /// # let mut registry = durabletask_sdk::Registry::new();
    /// # registry.entity("cart", checkout);
    /// ```
    pub fn schedule_new_orchestration<I: Serialize>(
        &mut self,
        name: impl Into<String>,
        input: I,
        instance_id: Option<String>,
    ) -> Result<String, Error> {
        let input = self.encode_input(&input, "orchestration input")?;
        let instance_id = instance_id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        self.push(OperationActionType::StartNewOrchestration(
            proto::StartNewOrchestrationAction {
                instance_id: instance_id.clone(),
                name: name.into(),
                input,
                ..Default::default()
            },
        ));
        Ok(instance_id)
    }

    fn encode_input<I: Serialize>(&self, input: &I, what: &str) -> Result<Option<String>, Error> {
        payload::encode(input).map_err(|e| {
            Error::new(
                error_types::OUTPUT_NOT_SERIALIZABLE,
                format!(
                    "the {what} from entity '{}' could not be serialized: {e}",
                    self.id
                ),
            )
        })
    }

    fn push(&mut self, action: OperationActionType) {
        self.actions.push(proto::OperationAction {
            id: 0,
            operation_action_type: Some(action),
        });
    }

    pub(crate) fn state_written(&self) -> bool {
        self.state_written
    }

    pub(crate) fn set_raw_state(&mut self, state: Option<String>) {
        self.state = state;
    }

    pub(crate) fn into_parts(self) -> (Option<String>, Vec<proto::OperationAction>) {
        (self.state, self.actions)
    }
}

/// A `SystemTime` as a protobuf timestamp (times before the epoch clamp to it).
pub(crate) fn to_timestamp(time: SystemTime) -> proto::prost_types::Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    proto::prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}
