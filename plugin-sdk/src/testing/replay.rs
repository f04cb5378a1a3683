//! Replaying a recorded history against a registry, as the host's `replay-check` does:
//! the history as one step's past events plus a new `orchestratorStarted`, then the
//! engine's answer judged against the history.

use durabletask_proto as proto;

use super::error::TestError;
use crate::registry::Registry;

/// What replaying one history against a registry showed (the host's `replay-check` and
/// `[plugins] verify_replay` judge the same way).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::testing::Verdict;
///
/// let verdict = Verdict::NonDeterministic("another call".into());
/// assert!(!verdict.is_deterministic());
/// ```
pub use durabletask_abi::replay::Verdict;

/// Replays `history` (the events of one execution of `instance_id`, oldest first) against
/// `registry`'s code, the way a new step would replay it, and judges the answer.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::testing::{HistoryBuilder, Verdict, replay};
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
/// use serde_json::json;
///
/// async fn greet(ctx: OrchestrationContext, city: String) -> Result<String, Error> {
///     Ok(ctx.call_activity("say_hello", city).await?)
/// }
/// let mut registry = Registry::new();
/// registry.orchestrator("greet", greet);
///
/// let history = HistoryBuilder::start("greet", json!("Tokyo"))
///     .activity_scheduled(1, "say_hello", json!("Tokyo"))
///     .build();
/// assert_eq!(replay(&registry, "greet-1", history), Verdict::Deterministic);
///
/// let other = HistoryBuilder::start("greet", json!("Tokyo"))
///     .activity_scheduled(1, "say_goodbye", json!("Tokyo"))
///     .build();
/// assert!(matches!(replay(&registry, "greet-1", other), Verdict::NonDeterministic(_)));
/// ```
pub fn replay(
    registry: &Registry,
    instance_id: &str,
    history: Vec<proto::HistoryEvent>,
) -> Verdict {
    let request = durabletask_abi::replay::request(instance_id, history);
    let response = registry.run_orchestrator(&request);
    durabletask_abi::replay::judge(&request.past_events, &response)
}

/// Replays a history saved with `durabletask-host client history <ID>`: the JSON text it
/// prints (an object with `instance_id` and `events`, or the `events` array alone). Use
/// it to keep a production instance's history as a regression test of the code.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::testing::{Verdict, replay_saved};
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn process_order(ctx: OrchestrationContext, id: u64) -> Result<(), Error> {
///     ctx.call_activity::<_, ()>("charge", id).await?;
///     Ok(())
/// }
/// let mut registry = Registry::new();
/// registry.orchestrator("process_order", process_order);
///
/// // In a real test: include_str!("histories/order-1.json").
/// let saved = r#"{
///   "instance_id": "order-1",
///   "events": [
///     {"event_id": -1, "timestamp": "2026-01-01T00:00:00Z", "kind": "orchestratorStarted"},
///     {"event_id": -1, "timestamp": "2026-01-01T00:00:00Z", "kind": "executionStarted",
///      "name": "process_order", "version": null, "input": 7,
///      "instanceId": "order-1", "executionId": "e1", "parentInstance": null,
///      "scheduledStartTimestamp": null, "tags": {}},
///     {"event_id": 1, "timestamp": "2026-01-01T00:00:00Z", "kind": "taskScheduled",
///      "name": "charge", "version": null, "input": 7, "tags": {}}
///   ]
/// }"#;
/// assert_eq!(replay_saved(&registry, saved)?, Verdict::Deterministic);
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
pub fn replay_saved(registry: &Registry, saved: &str) -> Result<Verdict, TestError> {
    let value: serde_json::Value =
        serde_json::from_str(saved).map_err(|e| TestError::SavedHistory(e.to_string()))?;
    let history = durabletask_json::history_from_json(&value)
        .map_err(|e| TestError::SavedHistory(e.to_string()))?;
    let instance_id = value
        .get("instance_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("replayed-instance");
    Ok(replay(registry, instance_id, history))
}
