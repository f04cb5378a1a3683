//! The [`Registry`]: a plugin's orchestrators and activities by name, and the two entry
//! points the export layer calls to run them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use durabletask_proto as proto;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::activity::ActivityContext;
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
pub struct Registry {
    orchestrators: Orchestrators,
    activities: BTreeMap<String, Box<ActivityStart>>,
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
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            orchestrators: BTreeMap::new(),
            activities: BTreeMap::new(),
        }
    }

    /// Registers an orchestrator: an async function of its context and its input (any
    /// JSON-deserializable type; a missing input reads as `null`, so `()` or `Option<T>`
    /// accept it). Its output is sent as JSON.
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
    /// the plugin's multi-threaded runtime, so its future must be `Send`.
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
    pub fn orchestrator_names(&self) -> Vec<String> {
        self.orchestrators.keys().cloned().collect()
    }

    /// The registered activity names, sorted.
    pub fn activity_names(&self) -> Vec<String> {
        self.activities.keys().cloned().collect()
    }

    /// One orchestration step: a pure, deterministic function of the request. Never
    /// panics: a panic in user code fails the orchestration with `PluginPanic`.
    /// `completion_token` is left empty for the caller to fill.
    pub fn run_orchestrator(
        &self,
        request: &proto::OrchestratorRequest,
    ) -> proto::OrchestratorResponse {
        engine::run(&self.orchestrators, request)
    }

    /// Runs one activity. Panics in the activity are not caught here: the caller wraps
    /// the returned future. `completion_token` is left empty for the caller to fill.
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

/// Serializes a return value; `null` is sent as an absent payload.
fn encode_output<O: Serialize>(output: &O, what: &str) -> Result<Option<String>, Error> {
    payload::encode(output).map_err(|e| {
        Error::new(
            error_types::OUTPUT_NOT_SERIALIZABLE,
            format!("the {what} could not be serialized to JSON: {e}"),
        )
    })
}
