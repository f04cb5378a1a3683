//! `send_event` (spec §4.5): raise an event on another orchestration instance. Validated
//! before an action id is taken, so a refused call shifts no later ids.

use durabletask_proto as proto;
use proto::orchestrator_action::OrchestratorActionType;
use serde::Serialize;

use super::context::OrchestrationContext;
use super::payload;
use crate::error::{Error, error_types};

impl OrchestrationContext {
    /// Raises the external event `event_name` with `data` (as JSON) on the orchestration
    /// `instance_id`, as a client's raise-event would. Fire and forget: there is nothing to
    /// await, and an event for a missing or finished instance is dropped by the backend.
    ///
    /// Takes the next action id, like every durable call. Fails, without taking an id, with
    /// `InvalidInput` when the instance id or event name is empty or blank, when the
    /// instance id starts with `@` (reserved for entities), or when `data` cannot be
    /// serialized.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn approve(ctx: OrchestrationContext, request_id: String) -> Result<(), Error> {
    ///     let approved: bool = ctx.call_activity("check_policy", &request_id).await?;
    ///     // Wake the orchestration waiting for the decision.
    ///     ctx.send_event(&request_id, "Approval", approved)?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("approve", approve);
    /// ```
    pub fn send_event<T: Serialize>(
        &self,
        instance_id: &str,
        event_name: &str,
        data: T,
    ) -> Result<(), Error> {
        let invalid = |message: &str| Err(Error::new(error_types::INVALID_INPUT, message));
        if instance_id.trim().is_empty() {
            return invalid("send_event: the target instance id is empty");
        }
        if instance_id.starts_with('@') {
            return invalid(
                "send_event: instance ids starting with '@' belong to entities; \
                 signal the entity instead",
            );
        }
        if event_name.trim().is_empty() {
            return invalid("send_event: the event name is empty");
        }
        let data = payload::encode(&data).map_err(|e| {
            Error::new(
                error_types::INVALID_INPUT,
                format!(
                    "send_event: the data of event '{event_name}' could not be serialized: {e}"
                ),
            )
        })?;
        let mut state = self.state.borrow_mut();
        let id = state.next_id();
        state.insert_action(
            id,
            OrchestratorActionType::SendEvent(proto::SendEventAction {
                instance: Some(proto::OrchestrationInstance {
                    instance_id: instance_id.to_owned(),
                    execution_id: None,
                }),
                name: event_name.to_owned(),
                data,
            }),
        );
        Ok(())
    }
}
