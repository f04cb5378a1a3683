//! Continue-as-new (spec §4.6): end this execution and start a fresh one with a new
//! input, optionally carrying unconsumed external events over.
//!
//! Rust API choice: the methods return `Result<O, Error>` for any output type `O`, always
//! `Err` with a marker the engine recognises, so `return ctx.continue_as_new(x);` ends the
//! orchestrator in one line whatever it returns. The completion action is only built when
//! the response is, so it takes its id after every other action of the step (spec §3.6).

use durabletask_proto as proto;
use proto::history_event::EventType;
use proto::orchestrator_action::OrchestratorActionType;
use serde::Serialize;

use super::context::OrchestrationContext;
use super::critical_section;
use super::payload;
use super::state::{ContinueAsNew, State};
use crate::error::{Error, FailureDetails, error_types};

impl OrchestrationContext {
    /// Ends this execution and restarts the orchestration, same instance id, with `input`:
    /// the way to run an eternal loop without an ever-growing history. External events not
    /// consumed yet are dropped; see
    /// [`continue_as_new_saving_events`](Self::continue_as_new_saving_events) to keep them.
    ///
    /// Return its result right away: it is always an `Err` of type
    /// [`ContinuedAsNew`](crate::error_types::CONTINUED_AS_NEW), which the engine does not
    /// report as a failure (whatever the orchestrator returns after this call is ignored).
    /// Durable calls made after it are still sent. An input that cannot be serialized
    /// fails the orchestration with `OutputNotSerializable`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn poll_feed(ctx: OrchestrationContext, seen: u64) -> Result<u64, Error> {
    ///     let latest: u64 = ctx.call_activity("latest_item", seen).await?;
    ///     if latest == u64::MAX {
    ///         return Ok(latest); // done for good
    ///     }
    ///     ctx.create_timer_after(Duration::from_secs(60)).await;
    ///     // A new execution with a fresh history.
    ///     return ctx.continue_as_new(latest);
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("poll_feed", poll_feed);
    /// ```
    pub fn continue_as_new<I: Serialize, O>(&self, input: I) -> Result<O, Error> {
        self.request_continue_as_new(&input, false)
    }

    /// [`continue_as_new`](Self::continue_as_new), carrying the external events this
    /// execution received but did not consume over to the new one, in the order they
    /// arrived (names lowercased).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn sum_events(ctx: OrchestrationContext, total: i64) -> Result<i64, Error> {
    ///     let value: i64 = ctx.wait_for_external_event("add").await?;
    ///     if value == 0 {
    ///         return Ok(total);
    ///     }
    ///     // Values raised while this execution ran are not lost.
    ///     return ctx.continue_as_new_saving_events(total + value);
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("sum_events", sum_events);
    /// ```
    pub fn continue_as_new_saving_events<I: Serialize, O>(&self, input: I) -> Result<O, Error> {
        self.request_continue_as_new(&input, true)
    }

    fn request_continue_as_new<I: Serialize, O>(
        &self,
        input: &I,
        save_events: bool,
    ) -> Result<O, Error> {
        let input = payload::encode(input);
        let mut state = self.state.borrow_mut();
        match input {
            // Ignored once the orchestration is over, as every completion is.
            Ok(input) if !state.is_complete() => {
                // Leaving an open critical section takes ids now (spec §3.6).
                critical_section::exit(&mut state);
                state.continued_as_new = Some(ContinueAsNew { input, save_events });
            }
            Ok(_) => {}
            Err(e) => {
                state.deferred_failure.get_or_insert_with(|| {
                    FailureDetails::new(
                        error_types::OUTPUT_NOT_SERIALIZABLE,
                        format!("the input to continue as new with could not be serialized: {e}"),
                    )
                });
            }
        }
        Err(Error::new(
            error_types::CONTINUED_AS_NEW,
            "the orchestration continued as new (not a failure)",
        ))
    }
}

/// Adds the continue-as-new completion, if one was requested: id taken now, after every
/// other action, with the buffered events when asked to save them.
pub(crate) fn finish(state: &mut State) {
    let Some(request) = state.continued_as_new.take() else {
        return;
    };
    let carryover_events = if request.save_events {
        state
            .buffered_events
            .drain_in_order()
            .into_iter()
            .map(|(name, input)| proto::HistoryEvent {
                event_id: -1,
                timestamp: None,
                event_type: Some(EventType::EventRaised(proto::EventRaisedEvent {
                    name,
                    input,
                })),
            })
            .collect()
    } else {
        Vec::new()
    };
    let id = state.next_id();
    state.insert_action(
        id,
        OrchestratorActionType::CompleteOrchestration(proto::CompleteOrchestrationAction {
            orchestration_status: proto::OrchestrationStatus::ContinuedAsNew as i32,
            result: request.input,
            carryover_events,
            ..Default::default()
        }),
    );
}
