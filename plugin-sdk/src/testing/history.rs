//! [`HistoryBuilder`]: hand-written histories for [`replay`](super::replay), in the shape
//! a backend records.

use std::time::SystemTime;

use durabletask_proto as proto;
use proto::history_event::EventType;
use serde_json::Value;

use super::clock::{self, start_time};

/// Builds a history event by event, oldest first, each stamped with the builder's time
/// ([`start_time`] until [`at`](Self::at) moves it). Payloads are JSON values; `null` is
/// an absent payload. Event ids are the orchestrator's action ids where the event
/// confirms an action (`taskScheduled`, `timerCreated`, …), and -1 otherwise, as a
/// backend writes them; the SDK numbers its actions 1, 2, 3, … in the order the code
/// makes them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::testing::{HistoryBuilder, Verdict, replay, start_time};
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
/// use serde_json::json;
///
/// async fn later(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
///     ctx.create_timer_after(Duration::from_secs(3600)).await;
///     Ok(ctx.call_activity("ping", ()).await?)
/// }
/// let mut registry = Registry::new();
/// registry.orchestrator("later", later);
///
/// let fire_at = start_time() + Duration::from_secs(3600);
/// let history = HistoryBuilder::start("later", json!(null))
///     .timer_created(1, fire_at)
///     .next_step_at(fire_at)
///     .timer_fired(1, fire_at)
///     .activity_scheduled(2, "ping", json!(null))
///     .build();
/// assert_eq!(history.len(), 7);
/// assert_eq!(replay(&registry, "later-1", history), Verdict::Deterministic);
/// ```
#[derive(Debug, Clone)]
pub struct HistoryBuilder {
    events: Vec<proto::HistoryEvent>,
    at: SystemTime,
}

/// A payload from a JSON value: `null` is absent.
fn payload(value: &Value) -> Option<String> {
    (!value.is_null()).then(|| value.to_string())
}

impl HistoryBuilder {
    /// A history that starts the orchestrator `name` with `input`: `orchestratorStarted`,
    /// then `executionStarted`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::HistoryBuilder;
    ///
    /// let history = HistoryBuilder::start("greet", serde_json::json!("Tokyo")).build();
    /// assert_eq!(history.len(), 2);
    /// ```
    pub fn start(name: &str, input: Value) -> Self {
        Self {
            events: Vec::new(),
            at: start_time(),
        }
        .push(
            -1,
            EventType::OrchestratorStarted(proto::OrchestratorStartedEvent {}),
        )
        .push(
            -1,
            EventType::ExecutionStarted(proto::ExecutionStartedEvent {
                name: name.to_owned(),
                input: payload(&input),
                ..Default::default()
            }),
        )
    }

    /// Sets the orchestration version recorded in `executionStarted`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::proto::history_event::EventType;
    /// use durabletask_sdk::testing::HistoryBuilder;
    ///
    /// let history = HistoryBuilder::start("greet", serde_json::json!(null))
    ///     .version("1.0.0")
    ///     .build();
    /// let Some(EventType::ExecutionStarted(started)) = &history[1].event_type else { panic!() };
    /// assert_eq!(started.version.as_deref(), Some("1.0.0"));
    /// ```
    pub fn version(mut self, version: &str) -> Self {
        for event in &mut self.events {
            if let Some(EventType::ExecutionStarted(started)) = &mut event.event_type {
                started.version = Some(version.to_owned());
            }
        }
        self
    }

    /// Stamps the events added from now on with `at`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::testing::{HistoryBuilder, start_time};
    ///
    /// let later = start_time() + Duration::from_secs(5);
    /// let history = HistoryBuilder::start("x", serde_json::json!(null))
    ///     .at(later)
    ///     .event_raised("go", serde_json::json!(null))
    ///     .build();
    /// assert_eq!(history[2].timestamp.unwrap().seconds, 1_767_225_605);
    /// ```
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = at;
        self
    }

    /// Ends a step and starts the next at `at`: `orchestratorCompleted`, then
    /// `orchestratorStarted` (whose time is what the orchestration's clock reads).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::{HistoryBuilder, start_time};
    ///
    /// let history = HistoryBuilder::start("x", serde_json::json!(null))
    ///     .next_step_at(start_time())
    ///     .build();
    /// assert_eq!(history.len(), 4);
    /// ```
    pub fn next_step_at(self, at: SystemTime) -> Self {
        self.push(
            -1,
            EventType::OrchestratorCompleted(proto::OrchestratorCompletedEvent {}),
        )
        .at(at)
        .push(
            -1,
            EventType::OrchestratorStarted(proto::OrchestratorStartedEvent {}),
        )
    }

    /// `taskScheduled`: action `id` called the activity `name` with `input`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::HistoryBuilder;
    /// use serde_json::json;
    ///
    /// let history = HistoryBuilder::start("x", json!(null))
    ///     .activity_scheduled(1, "charge", json!(42))
    ///     .build();
    /// assert_eq!(history[2].event_id, 1);
    /// ```
    pub fn activity_scheduled(self, id: i32, name: &str, input: Value) -> Self {
        self.push(
            id,
            EventType::TaskScheduled(proto::TaskScheduledEvent {
                name: name.to_owned(),
                input: payload(&input),
                ..Default::default()
            }),
        )
    }

    /// `taskCompleted`: the activity of action `id` returned `output`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::HistoryBuilder;
    /// use serde_json::json;
    ///
    /// let history = HistoryBuilder::start("x", json!(null))
    ///     .activity_scheduled(1, "charge", json!(42))
    ///     .activity_completed(1, json!("receipt-42"))
    ///     .build();
    /// assert_eq!(history.len(), 4);
    /// ```
    pub fn activity_completed(self, id: i32, output: Value) -> Self {
        self.push(
            -1,
            EventType::TaskCompleted(proto::TaskCompletedEvent {
                task_scheduled_id: id,
                result: payload(&output),
            }),
        )
    }

    /// `taskFailed`: the activity of action `id` failed with `error_type` and `message`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::HistoryBuilder;
    /// use serde_json::json;
    ///
    /// let history = HistoryBuilder::start("x", json!(null))
    ///     .activity_scheduled(1, "charge", json!(42))
    ///     .activity_failed(1, "CardDeclined", "no funds")
    ///     .build();
    /// assert_eq!(history.len(), 4);
    /// ```
    pub fn activity_failed(self, id: i32, error_type: &str, message: &str) -> Self {
        self.push(
            -1,
            EventType::TaskFailed(proto::TaskFailedEvent {
                task_scheduled_id: id,
                failure_details: Some(proto::TaskFailureDetails {
                    error_type: error_type.to_owned(),
                    error_message: message.to_owned(),
                    ..Default::default()
                }),
            }),
        )
    }

    /// `timerCreated`: action `id` created a timer due at `fire_at`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::{HistoryBuilder, start_time};
    ///
    /// let history = HistoryBuilder::start("x", serde_json::json!(null))
    ///     .timer_created(1, start_time())
    ///     .build();
    /// assert_eq!(history[2].event_id, 1);
    /// ```
    pub fn timer_created(self, id: i32, fire_at: SystemTime) -> Self {
        self.push(
            id,
            EventType::TimerCreated(proto::TimerCreatedEvent {
                fire_at: Some(clock::to_timestamp(fire_at)),
            }),
        )
    }

    /// `timerFired`: the timer of action `id`, due at `fire_at`, fired.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::{HistoryBuilder, start_time};
    ///
    /// let history = HistoryBuilder::start("x", serde_json::json!(null))
    ///     .timer_created(1, start_time())
    ///     .timer_fired(1, start_time())
    ///     .build();
    /// assert_eq!(history.len(), 4);
    /// ```
    pub fn timer_fired(self, id: i32, fire_at: SystemTime) -> Self {
        self.push(
            -1,
            EventType::TimerFired(proto::TimerFiredEvent {
                fire_at: Some(clock::to_timestamp(fire_at)),
                timer_id: id,
            }),
        )
    }

    /// `eventRaised`: the event `name` arrived with `data`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::HistoryBuilder;
    /// use serde_json::json;
    ///
    /// let history = HistoryBuilder::start("x", json!(null))
    ///     .event_raised("approved", json!(true))
    ///     .build();
    /// assert_eq!(history.len(), 3);
    /// ```
    pub fn event_raised(self, name: &str, data: Value) -> Self {
        self.push(
            -1,
            EventType::EventRaised(proto::EventRaisedEvent {
                name: name.to_owned(),
                input: payload(&data),
            }),
        )
    }

    /// Any other event, with the id given, stamped with the builder's time.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::proto::{self, history_event::EventType};
    /// use durabletask_sdk::testing::HistoryBuilder;
    ///
    /// let history = HistoryBuilder::start("x", serde_json::json!(null))
    ///     .push(-1, EventType::ExecutionSuspended(proto::ExecutionSuspendedEvent::default()))
    ///     .build();
    /// assert_eq!(history.len(), 3);
    /// ```
    pub fn push(mut self, event_id: i32, kind: EventType) -> Self {
        self.events.push(proto::HistoryEvent {
            event_id,
            timestamp: Some(clock::to_timestamp(self.at)),
            event_type: Some(kind),
        });
        self
    }

    /// The events.
    ///
    /// # Examples
    ///
    /// ```
    /// let history = durabletask_sdk::testing::HistoryBuilder::start("x", serde_json::json!(1)).build();
    /// assert_eq!(history[1].event_id, -1);
    /// ```
    pub fn build(self) -> Vec<proto::HistoryEvent> {
        self.events
    }
}
