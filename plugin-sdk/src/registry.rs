//! The [`Registry`]: a plugin's orchestrators and activities by name, and the two entry
//! points the export layer calls to run them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use durabletask_proto as proto;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::activity::ActivityContext;
use crate::entity::{self, DurableEntity, EntityContext, EntityWorkItem};
use crate::error::{Error, FailureDetails, error_types};
use crate::orchestration::OrchestrationContext;
use crate::orchestration::engine::{self, OrchestratorFuture, Orchestrators};
use crate::orchestration::payload;

type ActivityFuture = Pin<Box<dyn Future<Output = Result<Option<String>, Error>> + Send>>;

/// Starts an activity from its context and raw JSON input; an input that does not fit the
/// activity's type gives a future that fails at once.
type ActivityStart = dyn Fn(ActivityContext, Option<&str>) -> ActivityFuture + Send + Sync;

/// A plugin's orchestrators and activities. Registering a name again replaces the earlier
/// function.
///
/// Most plugins never build one themselves: [`export_plugin!`](crate::export_plugin!)
/// registers the listed functions under their own names (and listed class entities under
/// their type names, lowercased), and its `register:` form hands a registry to a function
/// of yours for other names. Tests build one directly and run
/// orchestration steps ([`run_orchestrator`](Self::run_orchestrator)) and activities
/// ([`run_activity`](Self::run_activity)) without the host.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{ActivityContext, Error, OrchestrationContext, Registry};
///
/// async fn greet(ctx: OrchestrationContext, city: String) -> Result<String, Error> {
///     Ok(ctx.call_activity("say_hello", city).await?)
/// }
///
/// async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
///     Ok(format!("Hello {city}!"))
/// }
///
/// let mut registry = Registry::new();
/// registry
///     .orchestrator("greet", greet)
///     .activity("say_hello", say_hello);
/// assert_eq!(registry.orchestrator_names(), ["greet"]);
/// assert_eq!(registry.activity_names(), ["say_hello"]);
/// ```
pub struct Registry {
    orchestrators: Orchestrators,
    activities: BTreeMap<String, Box<ActivityStart>>,
    entities: entity::Entities,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("orchestrators", &self.orchestrator_names())
            .field("activities", &self.activity_names())
            .field("entities", &self.entity_names())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    ///
    /// # Examples
    ///
    /// ```
    /// let registry = durabletask_sdk::Registry::new();
    /// assert!(registry.orchestrator_names().is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            orchestrators: BTreeMap::new(),
            activities: BTreeMap::new(),
            entities: BTreeMap::new(),
        }
    }

    /// Registers an orchestrator: an async function of its context and its input (any
    /// JSON-deserializable type; a missing input reads as `null`, so `()` or `Option<T>`
    /// accept it). Its output is sent as JSON.
    ///
    /// The future runs on the replay engine's single thread, so it need not be `Send`
    /// (an [`OrchestrationContext`] is not). Returns `self` for chaining.
    ///
    /// # Examples
    ///
    /// A closure can capture configuration; `Fn` means it is called once per step:
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// let max_items = 10;
    /// let mut registry = Registry::new();
    /// registry.orchestrator(
    ///     "checkout",
    ///     move |ctx: OrchestrationContext, items: Vec<String>| async move {
    ///         if items.len() > max_items {
    ///             return Err(Error::new("TooManyItems", format!("at most {max_items} items")));
    ///         }
    ///         let receipt: String = ctx.call_activity("charge", items).await?;
    ///         Ok(receipt)
    ///     },
    /// );
    /// assert_eq!(registry.orchestrator_names(), ["checkout"]);
    /// ```
    pub fn orchestrator<F, Fut, I, O>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Error>> + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
    {
        let name = name.into();
        let label = name.clone();
        let start = move |ctx: OrchestrationContext,
                          raw: Option<&str>|
              -> Result<OrchestratorFuture, Error> {
            let input: I = payload::decode(raw).map_err(|e| {
                Error::new(
                    error_types::INVALID_INPUT,
                    format!("the input of orchestrator '{label}' does not fit its input type: {e}"),
                )
            })?;
            let running = f(ctx, input);
            Ok(Box::pin(async move {
                let output = running.await?;
                encode_output(&output, "orchestration output")
            }))
        };
        self.orchestrators.insert(name, Box::new(start));
        self
    }

    /// Registers an activity: an async function of its context and its input. It runs on
    /// the plugin's multi-threaded runtime, so its future must be `Send`. Inputs and
    /// outputs are JSON, as for [`orchestrator`](Self::orchestrator). Returns `self` for
    /// chaining.
    ///
    /// # Examples
    ///
    /// One function under two names; [`ActivityContext::name`] tells them apart:
    ///
    /// ```
    /// use durabletask_sdk::{ActivityContext, Error, Registry};
    ///
    /// async fn notify(ctx: ActivityContext, user: String) -> Result<(), Error> {
    ///     let channel = if ctx.name() == "notify_by_sms" { "SMS" } else { "e-mail" };
    ///     tracing::info!("notifying {user} by {channel}");
    ///     Ok(())
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry
    ///     .activity("notify_by_sms", notify)
    ///     .activity("notify_by_email", notify);
    /// assert_eq!(registry.activity_names(), ["notify_by_email", "notify_by_sms"]);
    /// ```
    pub fn activity<F, Fut, I, O>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, Error>> + Send + 'static,
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
    {
        let name = name.into();
        let label = name.clone();
        let start = move |ctx: ActivityContext, raw: Option<&str>| -> ActivityFuture {
            match payload::decode::<I>(raw) {
                Ok(input) => {
                    let running = f(ctx, input);
                    Box::pin(async move {
                        let output = running.await?;
                        encode_output(&output, "activity output")
                    })
                }
                Err(e) => {
                    let error = Error::new(
                        error_types::INVALID_INPUT,
                        format!("the input of activity '{label}' does not fit its input type: {e}"),
                    );
                    Box::pin(std::future::ready(Err(error)))
                }
            }
        };
        self.activities.insert(name, Box::new(start));
        self
    }

    /// The registered orchestrator names, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn noop(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     Ok(())
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("b", noop).orchestrator("a", noop);
    /// assert_eq!(registry.orchestrator_names(), ["a", "b"]);
    /// ```
    pub fn orchestrator_names(&self) -> Vec<String> {
        self.orchestrators.keys().cloned().collect()
    }

    /// The registered activity names, sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{ActivityContext, Error, Registry};
    ///
    /// async fn noop(_ctx: ActivityContext, _input: ()) -> Result<(), Error> {
    ///     Ok(())
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.activity("b", noop).activity("a", noop);
    /// assert_eq!(registry.activity_names(), ["a", "b"]);
    /// ```
    pub fn activity_names(&self) -> Vec<String> {
        self.activities.keys().cloned().collect()
    }

    /// One orchestration step: a pure, deterministic function of the request. Never
    /// panics: a panic in user code fails the orchestration with `PluginPanic`.
    /// `completion_token` is left empty for the caller to fill.
    ///
    /// The request carries the instance's history: `past_events`, already processed in
    /// earlier steps (replayed), and `new_events`, what happened since. The response lists
    /// the actions the orchestrator took: new activity calls and timers, and a
    /// `CompleteOrchestration` action once it has finished.
    ///
    /// # Examples
    ///
    /// Testing an orchestrator step by step, with hand-built histories:
    ///
    /// ```
    /// use durabletask_sdk::proto::{self, history_event::EventType};
    /// use durabletask_sdk::proto::orchestrator_action::OrchestratorActionType as Action;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn greet(ctx: OrchestrationContext, city: String) -> Result<String, Error> {
    ///     Ok(ctx.call_activity("say_hello", city).await?)
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("greet", greet);
    ///
    /// let event = |event_id, kind| proto::HistoryEvent {
    ///     event_id,
    ///     timestamp: None,
    ///     event_type: Some(kind),
    /// };
    /// let started = vec![
    ///     event(-1, EventType::OrchestratorStarted(Default::default())),
    ///     event(-1, EventType::ExecutionStarted(proto::ExecutionStartedEvent {
    ///         name: "greet".into(),
    ///         input: Some(r#""Tokyo""#.into()),
    ///         ..Default::default()
    ///     })),
    /// ];
    ///
    /// // Step 1: a new instance schedules the activity, as action 1.
    /// let request = proto::OrchestratorRequest {
    ///     instance_id: "greet-1".into(),
    ///     new_events: started.clone(),
    ///     ..Default::default()
    /// };
    /// let response = registry.run_orchestrator(&request);
    /// let Some(Action::ScheduleTask(task)) = &response.actions[0].orchestrator_action_type else {
    ///     panic!("expected an activity call, got {:?}", response.actions);
    /// };
    /// assert_eq!((response.actions[0].id, task.name.as_str()), (1, "say_hello"));
    ///
    /// // Step 2: the activity completed; the orchestrator replays and finishes.
    /// let request = proto::OrchestratorRequest {
    ///     instance_id: "greet-1".into(),
    ///     past_events: [
    ///         started,
    ///         // History must match the code: the same call under the same id.
    ///         vec![event(1, EventType::TaskScheduled(proto::TaskScheduledEvent {
    ///             name: "say_hello".into(),
    ///             ..Default::default()
    ///         }))],
    ///     ]
    ///     .concat(),
    ///     new_events: vec![event(-1, EventType::TaskCompleted(proto::TaskCompletedEvent {
    ///         task_scheduled_id: 1,
    ///         result: Some(r#""Hello Tokyo!""#.into()),
    ///     }))],
    ///     ..Default::default()
    /// };
    /// let response = registry.run_orchestrator(&request);
    /// let Some(Action::CompleteOrchestration(done)) = &response.actions[0].orchestrator_action_type
    /// else {
    ///     panic!("expected the orchestration to complete, got {:?}", response.actions);
    /// };
    /// assert_eq!(done.orchestration_status, proto::OrchestrationStatus::Completed as i32);
    /// assert_eq!(done.result.as_deref(), Some(r#""Hello Tokyo!""#));
    /// ```
    pub fn run_orchestrator(
        &self,
        request: &proto::OrchestratorRequest,
    ) -> proto::OrchestratorResponse {
        engine::run(&self.orchestrators, request)
    }

    /// Runs one activity. Panics in the activity are not caught here: the caller wraps
    /// the returned future. `completion_token` is left empty for the caller to fill.
    ///
    /// The response carries the activity's JSON output in `result`, or its failure in
    /// `failure_details` (an unknown name fails with
    /// [`error_types::ACTIVITY_NOT_REGISTERED`], an input that does not fit with
    /// [`error_types::INVALID_INPUT`]).
    ///
    /// # Examples
    ///
    /// Any executor can drive the future; this one uses tokio:
    ///
    /// ```
    /// use durabletask_sdk::{ActivityContext, Error, Registry, proto};
    ///
    /// async fn say_hello(ctx: ActivityContext, city: String) -> Result<String, Error> {
    ///     Ok(format!("Hello {city}! (task {} of {})", ctx.task_id(), ctx.instance_id()))
    /// }
    /// let mut registry = Registry::new();
    /// registry.activity("say_hello", say_hello);
    ///
    /// let request = proto::ActivityRequest {
    ///     name: "say_hello".into(),
    ///     input: Some(r#""Tokyo""#.into()),
    ///     task_id: 1,
    ///     orchestration_instance: Some(proto::OrchestrationInstance {
    ///         instance_id: "greet-1".into(),
    ///         execution_id: None,
    ///     }),
    ///     ..Default::default()
    /// };
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let response = runtime.block_on(registry.run_activity(request));
    /// assert_eq!(response.result.as_deref(), Some(r#""Hello Tokyo! (task 1 of greet-1)""#));
    /// assert!(response.failure_details.is_none());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_activity(
        &self,
        request: proto::ActivityRequest,
    ) -> Pin<Box<dyn Future<Output = proto::ActivityResponse> + Send + 'static>> {
        let instance_id = request
            .orchestration_instance
            .map(|i| i.instance_id)
            .unwrap_or_default();
        let task_id = request.task_id;
        let ctx = ActivityContext::new(instance_id.clone(), task_id, request.name.clone());
        let respond = move |outcome: Result<Option<String>, Error>| {
            let (result, failure_details) = match outcome {
                Ok(result) => (result, None),
                Err(error) => (None, Some(error.into_details().to_proto())),
            };
            proto::ActivityResponse {
                instance_id,
                task_id,
                result,
                failure_details,
                ..Default::default()
            }
        };
        let Some(start) = self.activities.get(&request.name) else {
            let error = Error::from_details(FailureDetails::new(
                error_types::ACTIVITY_NOT_REGISTERED,
                format!(
                    "Activity '{}' is not registered in this plugin",
                    request.name
                ),
            ));
            return Box::pin(std::future::ready(respond(Err(error))));
        };
        let running = start(ctx, request.input.as_deref());
        Box::pin(async move { respond(running.await) })
    }
}

/// Entities (spec §6): registration and batches.
impl Registry {
    /// Registers a function entity: a synchronous function of the [`EntityContext`] and the
    /// operation's input (any JSON-deserializable type; a missing input reads as `null`).
    /// It receives every operation of the entity and tells them apart by
    /// [`EntityContext::operation`]; there is no implicit `delete`. Its output is sent as
    /// JSON. Returns `self` for chaining.
    ///
    /// The name is lowercased: entity names are case-insensitive.
    ///
    /// # Panics
    ///
    /// If the name is empty or contains `@`, or an entity of the same name (ignoring
    /// case) is already registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityContext, Error, Registry};
    ///
    /// fn counter(ctx: &mut EntityContext, amount: Option<i64>) -> Result<i64, Error> {
    ///     let mut value: i64 = ctx.get_state()?.unwrap_or(0);
    ///     match ctx.operation() {
    ///         "add" => value += amount.unwrap_or(1),
    ///         "get" => {}
    ///         "reset" => value = 0,
    ///         other => return Err(Error::new("UnknownOperation", other.to_owned())),
    ///     }
    ///     ctx.set_state(value)?;
    ///     Ok(value)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.entity("Counter", counter);
    /// assert_eq!(registry.entity_names(), ["counter"]);
    /// ```
    pub fn entity<F, I, O>(&mut self, name: impl AsRef<str>, f: F) -> &mut Self
    where
        F: Fn(&mut EntityContext, I) -> Result<O, Error> + Send + Sync + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
    {
        self.add_entity(name.as_ref(), entity::function_entity(f))
    }

    /// Registers a class entity: a type implementing [`DurableEntity`] (usually with
    /// [`entity_operations!`](crate::entity_operations!)), whose value is the entity's
    /// state and whose methods are its operations. Returns `self` for chaining.
    ///
    /// The name is lowercased: entity names are case-insensitive.
    ///
    /// # Panics
    ///
    /// As [`entity`](Self::entity).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, Registry};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Tally {
    ///     count: u64,
    /// }
    ///
    /// impl Tally {
    ///     fn bump(&mut self) -> Result<u64, Error> {
    ///         self.count += 1;
    ///         Ok(self.count)
    ///     }
    /// }
    ///
    /// durabletask_sdk::entity_operations!(Tally { bump });
    ///
    /// let mut registry = Registry::new();
    /// registry.entity_class::<Tally>("Tally");
    /// assert_eq!(registry.entity_names(), ["tally"]);
    /// ```
    pub fn entity_class<T: DurableEntity + 'static>(&mut self, name: impl AsRef<str>) -> &mut Self {
        self.add_entity(name.as_ref(), entity::class_entity::<T>())
    }

    fn add_entity(&mut self, name: &str, start: Box<entity::EntityStart>) -> &mut Self {
        if name.is_empty() || name.contains('@') {
            panic!("invalid entity name '{name}': it must be non-empty and must not contain '@'");
        }
        let name = name.to_lowercase();
        if self.entities.contains_key(&name) {
            panic!("an entity named '{name}' is already registered (entity names ignore case)");
        }
        self.entities.insert(name, start);
        self
    }

    /// The registered entity names (lowercase), sorted.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{EntityContext, Error, Registry};
    ///
    /// fn noop(_ctx: &mut EntityContext, _input: ()) -> Result<(), Error> {
    ///     Ok(())
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.entity("B", noop).entity("a", noop);
    /// assert_eq!(registry.entity_names(), ["a", "b"]);
    /// ```
    pub fn entity_names(&self) -> Vec<String> {
        self.entities.keys().cloned().collect()
    }

    /// Runs one entity batch (spec §6.4), in either work-item shape. Never panics: a
    /// panicking operation fails with [`error_types::PLUGIN_PANIC`] and is rolled back.
    /// `completion_token` is left empty for the caller to fill.
    ///
    /// Operations run in order, each on the state the previous successful ones left. A
    /// successful operation commits its state change and its actions (signals, starts);
    /// a failed one leaves neither, and the batch goes on. The result has one
    /// `OperationResult` per operation, in order (a successful one always carries a
    /// `result`, `""` for `null`); the committed actions, in order; the final state
    /// (absent if the entity has none); and, for [`EntityWorkItem::V2`], one
    /// `OperationInfo` per result. An entity name that is not registered fails every
    /// operation with [`error_types::ENTITY_NOT_REGISTERED`], an instance id that is not
    /// `@name@key` with [`error_types::INVALID_INPUT`]; the state is then returned as it
    /// came.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::proto::{self, operation_result::ResultType};
    /// use durabletask_sdk::{EntityContext, EntityWorkItem, Error, Registry};
    ///
    /// fn greeter(ctx: &mut EntityContext, name: String) -> Result<String, Error> {
    ///     if name.is_empty() {
    ///         return Err(Error::new("NoName", "nobody to greet"));
    ///     }
    ///     let greeting = format!("Hello {name}!");
    ///     ctx.set_state(&greeting)?;
    ///     Ok(greeting)
    /// }
    /// let mut registry = Registry::new();
    /// registry.entity("greeter", greeter);
    ///
    /// let greet = |name: &str| proto::OperationRequest {
    ///     operation: "greet".into(),
    ///     input: Some(format!("{name:?}")),
    ///     ..Default::default()
    /// };
    /// let result = registry.run_entity_batch(EntityWorkItem::V1(proto::EntityBatchRequest {
    ///     instance_id: "@greeter@1".into(),
    ///     operations: vec![greet("Tokyo"), greet("")],
    ///     ..Default::default()
    /// }));
    /// let Some(ResultType::Success(ok)) = &result.results[0].result_type else { panic!() };
    /// assert_eq!(ok.result.as_deref(), Some(r#""Hello Tokyo!""#));
    /// let Some(ResultType::Failure(failed)) = &result.results[1].result_type else { panic!() };
    /// assert_eq!(failed.failure_details.as_ref().unwrap().error_type, "NoName");
    /// assert_eq!(result.entity_state.as_deref(), Some(r#""Hello Tokyo!""#));
    /// ```
    pub fn run_entity_batch(&self, request: EntityWorkItem) -> proto::EntityBatchResult {
        entity::run(&self.entities, request)
    }
}

/// Serializes a return value; `null` is sent as an absent payload.
fn encode_output<O: Serialize>(output: &O, what: &str) -> Result<Option<String>, Error> {
    payload::encode(output).map_err(|e| {
        Error::new(
            error_types::OUTPUT_NOT_SERIALIZABLE,
            format!("the {what} could not be serialized to JSON: {e}"),
        )
    })
}
