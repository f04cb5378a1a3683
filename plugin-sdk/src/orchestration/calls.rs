//! Durable calls with results: activities and sub-orchestrations (spec §4.1, §4.3), with
//! their options and retry policies. Each takes its action id when it is made.

use std::rc::Rc;

use durabletask_proto as proto;
use proto::orchestrator_action::OrchestratorActionType;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::OrchestrationContext;
use super::options::{ActivityOptions, SubOrchestrationOptions};
use super::payload;
use super::retry::RetryPolicy;
use super::state::{CallKind, Outcome, PendingCall, PendingTask, Retry, State, TaskCell, TaskRef};
use super::tasks::{
    ActivityTask, SubOrchestrationTask, activity_failure, sub_orchestration_failure,
};
use crate::error::{FailureDetails, error_types};

pub use durabletask_abi::properties::DEFAULT_VERSION_PROPERTY;

/// Reads [`DEFAULT_VERSION_PROPERTY`] from a request; `None` = children keep no version.
pub(crate) fn default_version(request: &proto::OrchestratorRequest) -> Option<String> {
    match &request.properties.get(DEFAULT_VERSION_PROPERTY)?.kind {
        Some(proto::prost_types::value::Kind::StringValue(version)) if !version.is_empty() => {
            Some(version.clone())
        }
        _ => None,
    }
}

impl OrchestrationContext {
    /// Schedules an activity with options: a retry policy, tags. See
    /// [`call_activity`](Self::call_activity) for the rest.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::ActivityOptions;
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn tagged(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     let options = ActivityOptions::new().tag("priority", "high");
    ///     ctx.call_activity_with::<_, ()>("notify", "ops", options).await?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("tagged", tagged);
    /// ```
    pub fn call_activity_with<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: I,
        options: ActivityOptions,
    ) -> ActivityTask<O> {
        // Serialized before borrowing the state: `Serialize` impls are user code.
        let input = payload::encode(&input);
        let mut state = self.state.borrow_mut();
        let id = state.next_id();
        let cell = TaskCell::new(&state.awaited);
        match input {
            Ok(input) => {
                let action = OrchestratorActionType::ScheduleTask(proto::ScheduleTaskAction {
                    name: name.to_owned(),
                    input,
                    tags: options.tags.into_iter().collect(),
                    ..Default::default()
                });
                start_call(
                    &mut state,
                    CallKind::Activity,
                    id,
                    &cell,
                    action,
                    options.retry_policy,
                );
            }
            // Nothing can be sent, so the task fails at once. The id is still used up, so
            // the ids of later calls do not depend on whether this one worked.
            Err(e) => {
                let details = FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!("the input of activity '{name}' could not be serialized: {e}"),
                );
                let failure = activity_failure(&state.instance_id, id, details);
                TaskCell::complete(&cell, Outcome::Failed(failure));
            }
        }
        let name = state.shared_name(name);
        ActivityTask::new(cell, id, Rc::clone(&state.instance_id), name)
    }

    /// Schedules an activity that is retried by `policy` when it fails (spec §4.8). The
    /// task fails only when the policy gives up, with the last attempt's failure.
    ///
    /// Retries run on durable timers, each of which takes an action id; every attempt
    /// keeps the call's original id (the activity sees it as its task id).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::RetryPolicy;
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn flaky(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ///     let policy = RetryPolicy::new(Duration::from_secs(1), 3)?;
    ///     Ok(ctx.call_activity_with_retry("call_partner_api", (), &policy).await?)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("flaky", flaky);
    /// ```
    pub fn call_activity_with_retry<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: I,
        policy: &RetryPolicy,
    ) -> ActivityTask<O> {
        self.call_activity_with(
            name,
            input,
            ActivityOptions::new().retry_policy(policy.clone()),
        )
    }

    /// Starts another orchestration as a child of this one and returns a task for its
    /// output. The child's instance id is `<this instance id>:<action id as at least 4
    /// lowercase hex digits>` (e.g. `order-7:0001`). Its version is the worker's default
    /// version when the host has one configured
    /// ([`DEFAULT_VERSION_PROPERTY`](super::DEFAULT_VERSION_PROPERTY)), else none; it is
    /// never this orchestration's version. Use
    /// [`call_sub_orchestrator_with`](Self::call_sub_orchestrator_with) to choose them or
    /// to retry.
    ///
    /// The call is recorded now, even if the task is never awaited. A failed child makes
    /// the task fail with a [`TaskFailedError`](crate::TaskFailedError): message
    /// `Sub-orchestration task #<id> failed: <child message>`, details = the child's
    /// failure. An input that cannot be serialized, or an output that does not fit `O`,
    /// fails the task with `InvalidInput`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::when_all;
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn process_batch(ctx: OrchestrationContext, orders: Vec<String>) -> Result<usize, Error> {
    ///     let children = orders
    ///         .iter()
    ///         .map(|order| ctx.call_sub_orchestrator::<_, bool>("process_order", order))
    ///         .collect();
    ///     let shipped = when_all(children).await?;
    ///     Ok(shipped.into_iter().filter(|s| *s).count())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("process_batch", process_batch);
    /// ```
    pub fn call_sub_orchestrator<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: I,
    ) -> SubOrchestrationTask<O> {
        self.call_sub_orchestrator_with(name, input, SubOrchestrationOptions::new())
    }

    /// Starts a child orchestration with options: instance id, version, retry policy.
    /// See [`call_sub_orchestrator`](Self::call_sub_orchestrator).
    ///
    /// Without [`SubOrchestrationOptions::version`] (or with an empty one), the child gets
    /// the worker's default version, as with `call_sub_orchestrator`. A retried child is
    /// started again under the same instance id, with the same input and version.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{RetryPolicy, SubOrchestrationOptions};
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn parent(ctx: OrchestrationContext, user: String) -> Result<(), Error> {
    ///     let options = SubOrchestrationOptions::new()
    ///         .instance_id(format!("provision-{user}"))
    ///         .retry_policy(RetryPolicy::new(Duration::from_secs(30), 3)?);
    ///     ctx.call_sub_orchestrator_with::<_, ()>("provision", &user, options).await?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("parent", parent);
    /// ```
    pub fn call_sub_orchestrator_with<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: I,
        options: SubOrchestrationOptions,
    ) -> SubOrchestrationTask<O> {
        let input = payload::encode(&input);
        let mut state = self.state.borrow_mut();
        let id = state.next_id();
        let cell = TaskCell::new(&state.awaited);
        let child_id = options
            .instance_id
            .unwrap_or_else(|| format!("{}:{id:04x}", state.instance_id));
        let version = options.version.or_else(|| state.default_version.clone());
        match input {
            Ok(input) => {
                let action = OrchestratorActionType::CreateSubOrchestration(
                    proto::CreateSubOrchestrationAction {
                        instance_id: child_id.clone(),
                        name: name.to_owned(),
                        version,
                        input,
                        ..Default::default()
                    },
                );
                start_call(
                    &mut state,
                    CallKind::SubOrchestration,
                    id,
                    &cell,
                    action,
                    options.retry_policy,
                );
            }
            Err(e) => {
                let details = FailureDetails::new(
                    error_types::INVALID_INPUT,
                    format!("the input of sub-orchestration '{name}' could not be serialized: {e}"),
                );
                TaskCell::complete(
                    &cell,
                    Outcome::Failed(sub_orchestration_failure(id, details)),
                );
            }
        }
        let name = state.shared_name(name);
        SubOrchestrationTask::new(cell, id, child_id, name)
    }
}

/// Records a call's action and its pending task, with what a retry needs.
fn start_call(
    state: &mut State,
    kind: CallKind,
    id: i32,
    cell: &TaskRef,
    action: OrchestratorActionType,
    policy: Option<RetryPolicy>,
) {
    let retry = policy.map(|policy| {
        Box::new(Retry {
            policy,
            first_call: state.clock,
            attempts: 1,
            action: action.clone(),
        })
    });
    state.insert_action(id, action);
    state.tasks.insert(
        id,
        PendingTask::Call(PendingCall {
            kind,
            cell: Rc::clone(cell),
            retry,
        }),
    );
}
