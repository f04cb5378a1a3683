//! [`OrchestrationContext`]: the only door from orchestrator code to the outside world.
//! Every call records its action at call time (spec §3.2), so ids follow call order.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cancel::CancelHandle;
use super::options::ActivityOptions;
use super::payload;
use super::state::{Outcome, State, TaskCell, TimerThen, fold_event_name};
use super::tasks::{ActivityTask, EventTask, TimerTask};
use super::timers;
use crate::error::{FailureDetails, error_types};

/// The orchestrator's handle on its instance: durable calls, the replay-safe clock,
/// custom status. Cheap to clone; all clones share one state.
///
/// Orchestrator code must be deterministic: the same history must lead to the same calls
/// in the same order. Await only what this context returns (or combinations of them, e.g.
/// [`when_all`](super::when_all), [`join`](super::join) or [`race`](super::race)): never
/// tokio timers, channels or I/O.
///
/// Every call that starts durable work ([`call_activity`](Self::call_activity),
/// [`call_sub_orchestrator`](Self::call_sub_orchestrator),
/// [`create_timer`](Self::create_timer), [`send_event`](Self::send_event),
/// [`call_entity`](Self::call_entity), [`signal_entity`](Self::signal_entity),
/// [`lock_entities`](Self::lock_entities)) is recorded
/// when it is made and gets the next action id (1, 2, 3…), whether or not its task is ever
/// awaited. [`wait_for_external_event`](Self::wait_for_external_event) takes no id. On replay the engine
/// checks these calls against the history and fails the orchestration with
/// [`NonDeterminism`](crate::error_types::NON_DETERMINISM) if they differ.
///
/// The context is not `Send` (orchestrators run on the replay engine's thread), so do not
/// move it to another thread or spawn with it.
///
/// # Examples
///
/// An order workflow: reserve stock, wait for payment (at most a day), then ship or
/// release the reservation.
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::{Winner2, race};
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn process_order(ctx: OrchestrationContext, order_id: String) -> Result<String, Error> {
///     ctx.set_custom_status("reserving");
///     let reservation: String = ctx.call_activity("reserve_stock", &order_id).await?;
///
///     ctx.set_custom_status("awaiting payment");
///     let paid = ctx.wait_for_external_event::<bool>("payment_received");
///     let deadline = ctx.create_timer_after(Duration::from_secs(24 * 60 * 60));
///     let paid = match race((paid, deadline)).await {
///         Winner2::First(paid) => paid.unwrap_or(false),
///         Winner2::Second(()) => false,
///     };
///
///     if paid {
///         Ok(ctx.call_activity("ship", &order_id).await?)
///     } else {
///         ctx.call_activity::<_, ()>("release_stock", reservation).await?;
///         Err(Error::new("PaymentTimeout", format!("order {order_id} was not paid in time")))
///     }
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("process_order", process_order);
/// ```
#[derive(Clone)]
pub struct OrchestrationContext {
    // Shared with the other modules that add methods (calls, messaging, …).
    pub(super) state: Rc<RefCell<State>>,
    /// Who this orchestration is: fixed once it started, so kept out of the `RefCell`
    /// and lent out as `&str` by the borrowed accessors.
    identity: Rc<Identity>,
}

/// The orchestration's identity, copied from the state once per step.
struct Identity {
    instance_id: Rc<str>,
    name: String,
    version: Option<String>,
    parent_instance_id: Option<String>,
}

impl OrchestrationContext {
    /// A context for the orchestration `state` describes. Its identity is read now: the
    /// engine creates the context once `executionStarted` set it.
    pub(crate) fn new(state: Rc<RefCell<State>>) -> Self {
        let identity = {
            let state = state.borrow();
            Identity {
                instance_id: Rc::clone(&state.instance_id),
                name: state.name.clone(),
                version: state.version.clone(),
                parent_instance_id: state.parent_instance_id.clone(),
            }
        };
        Self {
            state,
            identity: Rc::new(identity),
        }
    }

    /// The orchestration's instance id.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn invoice(ctx: OrchestrationContext, cents: u64) -> Result<(), Error> {
    ///     // The instance id is stable across replays and retries: a good idempotency key.
    ///     ctx.call_activity::<_, ()>("send_invoice", (ctx.instance_id(), cents)).await?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("invoice", invoice);
    /// ```
    pub fn instance_id(&self) -> String {
        self.identity.instance_id.to_string()
    }

    /// [`instance_id`](Self::instance_id), borrowed: no allocation per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn invoice(ctx: OrchestrationContext, cents: u64) -> Result<(), Error> {
    ///     tracing::info!(instance_id = ctx.instance_id_str(), cents, "invoicing");
    ///     ctx.call_activity::<_, ()>("send_invoice", (ctx.instance_id_str(), cents)).await?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("invoice", invoice);
    /// ```
    pub fn instance_id_str(&self) -> &str {
        &self.identity.instance_id
    }

    /// The orchestrator's name, as registered (and as the client asked for it).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn describe(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ///     Ok(format!("{} ({})", ctx.name(), ctx.instance_id()))
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("describe", describe);
    /// ```
    pub fn name(&self) -> String {
        self.identity.name.clone()
    }

    /// [`name`](Self::name), borrowed: no allocation per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn describe(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ///     Ok(format!("{} ({})", ctx.name_str(), ctx.instance_id_str()))
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("describe", describe);
    /// ```
    pub fn name_str(&self) -> &str {
        &self.identity.name
    }

    /// The version the orchestration was started with, if any.
    ///
    /// Use it to change an orchestrator's calls without breaking instances that are
    /// already running: they must keep replaying the calls they made.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn onboard(ctx: OrchestrationContext, user: String) -> Result<(), Error> {
    ///     ctx.call_activity::<_, ()>("create_account", &user).await?;
    ///     // Version 2 added a welcome e-mail; older instances never made that call.
    ///     if ctx.version().as_deref() == Some("2") {
    ///         ctx.call_activity::<_, ()>("send_welcome_email", &user).await?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("onboard", onboard);
    /// ```
    pub fn version(&self) -> Option<String> {
        self.identity.version.clone()
    }

    /// [`version`](Self::version), borrowed: no allocation per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn onboard(ctx: OrchestrationContext, user: String) -> Result<(), Error> {
    ///     ctx.call_activity::<_, ()>("create_account", &user).await?;
    ///     if ctx.version_str() == Some("2") {
    ///         ctx.call_activity::<_, ()>("send_welcome_email", &user).await?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("onboard", onboard);
    /// ```
    pub fn version_str(&self) -> Option<&str> {
        self.identity.version.as_deref()
    }

    /// The parent's instance id when this runs as a sub-orchestration (started by another
    /// orchestration), `None` when a client started it.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn child(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    ///     Ok(match ctx.parent_instance_id() {
    ///         Some(parent) => format!("started by {parent}"),
    ///         None => "started by a client".to_owned(),
    ///     })
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("child", child);
    /// ```
    pub fn parent_instance_id(&self) -> Option<String> {
        self.identity.parent_instance_id.clone()
    }

    /// [`parent_instance_id`](Self::parent_instance_id), borrowed: no allocation per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn child(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     if let Some(parent) = ctx.parent_instance_id_str() {
    ///         ctx.send_event(parent, "child_started", ctx.instance_id_str())?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("child", child);
    /// ```
    pub fn parent_instance_id_str(&self) -> Option<&str> {
        self.identity.parent_instance_id.as_deref()
    }

    /// `true` while the code runs from history that was already processed before: use it
    /// to avoid repeating side effects such as logging.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn greet(ctx: OrchestrationContext, city: String) -> Result<String, Error> {
    ///     if !ctx.is_replaying() {
    ///         // Logged once, not on every replay.
    ///         tracing::info!(instance_id = %ctx.instance_id(), %city, "greeting");
    ///     }
    ///     Ok(ctx.call_activity("say_hello", city).await?)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("greet", greet);
    /// ```
    pub fn is_replaying(&self) -> bool {
        self.state.borrow().is_replaying
    }

    /// The orchestration's deterministic "now": the time of the latest processed
    /// `orchestratorStarted` event (the epoch before the first one).
    ///
    /// It is the same on every replay, unlike [`SystemTime::now`], which orchestrators must
    /// not use.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn stamp(ctx: OrchestrationContext, _input: ()) -> Result<u64, Error> {
    ///     let now = ctx.current_utc_datetime();
    ///     Ok(now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("stamp", stamp);
    /// ```
    pub fn current_utc_datetime(&self) -> SystemTime {
        self.state.borrow().clock
    }

    /// Schedules an activity. The call is recorded now, even if the task is never awaited.
    /// A result that does not deserialize into `O` fails the task with `InvalidInput`.
    ///
    /// `input` is serialized to JSON right away; one that cannot be serialized fails the
    /// task at once with `InvalidInput`. Awaiting the task gives the activity's output, or
    /// a [`TaskFailedError`](crate::TaskFailedError) if it failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn total_price(ctx: OrchestrationContext, skus: Vec<String>) -> Result<u64, Error> {
    ///     let mut total = 0;
    ///     for sku in &skus {
    ///         // The output type comes from the annotation (or a turbofish: `::<_, u64>`).
    ///         let price: u64 = ctx.call_activity("price_of", sku).await?;
    ///         total += price;
    ///     }
    ///     Ok(total)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("total_price", total_price);
    /// ```
    ///
    /// To run calls in parallel, make them all first and await them together with
    /// [`when_all`](super::when_all).
    pub fn call_activity<I: Serialize, O: DeserializeOwned>(
        &self,
        name: &str,
        input: I,
    ) -> ActivityTask<O> {
        self.call_activity_with(name, input, ActivityOptions::new())
    }

    /// Creates a durable timer that fires at `fire_at` (UTC). Await the returned task to
    /// wait for it: the orchestration is unloaded meanwhile, and survives host restarts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn on_the_hour(ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    ///     let now = ctx.current_utc_datetime().duration_since(UNIX_EPOCH).unwrap_or_default();
    ///     let next_hour = UNIX_EPOCH + Duration::from_secs((now.as_secs() / 3600 + 1) * 3600);
    ///     ctx.create_timer(next_hour).await;
    ///     ctx.call_activity::<_, ()>("hourly_report", ()).await?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("on_the_hour", on_the_hour);
    /// ```
    pub fn create_timer(&self, fire_at: SystemTime) -> TimerTask {
        let mut state = self.state.borrow_mut();
        let cell = TaskCell::new(&state.awaited);
        let current_id =
            timers::schedule(&mut state, fire_at, TimerThen::Complete(Rc::clone(&cell)));
        let cancel = CancelHandle::timer(&self.state, &cell, Rc::clone(&current_id));
        TimerTask::new(cell, current_id.get(), cancel)
    }

    /// Creates a durable timer that fires `delay` after [`Self::current_utc_datetime`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn remind(ctx: OrchestrationContext, user: String) -> Result<(), Error> {
    ///     for day in 1..=3 {
    ///         ctx.create_timer_after(Duration::from_secs(24 * 60 * 60)).await;
    ///         ctx.call_activity::<_, ()>("send_reminder", (&user, day)).await?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("remind", remind);
    /// ```
    pub fn create_timer_after(&self, delay: Duration) -> TimerTask {
        let now = self.current_utc_datetime();
        // An absurd delay saturates to ~136 years rather than overflowing.
        let fire_at = now
            .checked_add(delay)
            .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
            .unwrap_or(now);
        self.create_timer(fire_at)
    }

    /// Waits for an external event raised to this instance under `name`
    /// (case-insensitive). Events raised before anyone waits are kept, oldest first. Takes
    /// no action id.
    ///
    /// Clients raise events with the event's name and JSON data. Data that does not fit `T`
    /// fails the task with `InvalidInput`. To wait with a deadline, race the event against a
    /// timer with [`race`](super::race) (see the [type-level example](Self)).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn approve_expense(ctx: OrchestrationContext, amount: u64) -> Result<String, Error> {
    ///     if amount > 1_000 {
    ///         let approver: String = ctx.wait_for_external_event("approved_by").await?;
    ///         return Ok(format!("{amount} approved by {approver}"));
    ///     }
    ///     Ok(format!("{amount} approved automatically"))
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("approve_expense", approve_expense);
    /// ```
    pub fn wait_for_external_event<T: DeserializeOwned>(&self, name: &str) -> EventTask<T> {
        let mut state = self.state.borrow_mut();
        let key = fold_event_name(name);
        let cell = TaskCell::new(&state.awaited);
        match state.buffered_events.pop(&key) {
            Some(raw) => TaskCell::complete(&cell, Outcome::Value(raw.as_deref().map(Rc::from))),
            None => match state.event_waiters.get_mut(&key) {
                Some(waiters) => waiters.push_back(Rc::clone(&cell)),
                None => {
                    let waiters = VecDeque::from([Rc::clone(&cell)]);
                    state.event_waiters.insert(key.clone(), waiters);
                }
            },
        }
        let name = state.shared_name(name);
        let cancel = CancelHandle::event(&self.state, &cell, key);
        EventTask::new(cell, name, cancel)
    }

    /// Sets the custom status, sent with every response from now on (spec §4.10).
    /// A value that serializes to `null` clears it. Clients see it when they query the
    /// instance; use it to report progress. A value that fails to serialize fails the
    /// orchestration with `OutputNotSerializable`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// #[derive(serde::Serialize)]
    /// struct Progress {
    ///     done: usize,
    ///     total: usize,
    /// }
    ///
    /// async fn import(ctx: OrchestrationContext, files: Vec<String>) -> Result<(), Error> {
    ///     for (done, file) in files.iter().enumerate() {
    ///         ctx.set_custom_status(Progress { done, total: files.len() });
    ///         ctx.call_activity::<_, ()>("import_file", file).await?;
    ///     }
    ///     ctx.set_custom_status(()); // `()` is `null`: clears the status
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("import", import);
    /// ```
    pub fn set_custom_status<T: Serialize>(&self, status: T) {
        let status = payload::encode(&status);
        let mut state = self.state.borrow_mut();
        match status {
            Ok(status) => state.custom_status = status,
            Err(e) => {
                state.deferred_failure.get_or_insert_with(|| {
                    FailureDetails::new(
                        error_types::OUTPUT_NOT_SERIALIZABLE,
                        format!("the custom status could not be serialized: {e}"),
                    )
                });
            }
        }
    }

    /// A deterministic UUID (v5), the same on every replay and the same as the reference
    /// SDK's `new_uuid` for the same instance, clock and call count (spec §4.11).
    ///
    /// Use it instead of a random UUID, which would differ on every replay.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn create_user(ctx: OrchestrationContext, email: String) -> Result<String, Error> {
    ///     let user_id = ctx.new_uuid();
    ///     ctx.call_activity::<_, ()>("insert_user", (&user_id, email)).await?;
    ///     Ok(user_id)
    /// }
    /// # use durabletask_sdk::proto::{self, history_event::EventType};
    /// # use durabletask_sdk::proto::orchestrator_action::OrchestratorActionType as Action;
    /// # let mut registry = durabletask_sdk::Registry::new();
    /// # registry.orchestrator("create_user", create_user);
    /// # let event = |kind| proto::HistoryEvent {
    /// #     event_id: -1,
    /// #     timestamp: None,
    /// #     event_type: Some(kind),
    /// # };
    /// # let request = proto::OrchestratorRequest {
    /// #     instance_id: "user-1".into(),
    /// #     new_events: vec![
    /// #         event(EventType::OrchestratorStarted(Default::default())),
    /// #         event(EventType::ExecutionStarted(proto::ExecutionStartedEvent {
    /// #             name: "create_user".into(),
    /// #             input: Some(r#""ada@example.com""#.into()),
    /// #             ..Default::default()
    /// #         })),
    /// #     ],
    /// #     ..Default::default()
    /// # };
    /// # let input_of = |response: proto::OrchestratorResponse| {
    /// #     match &response.actions[0].orchestrator_action_type {
    /// #         Some(Action::ScheduleTask(task)) => task.input.clone(),
    /// #         other => panic!("expected an activity call, got {other:?}"),
    /// #     }
    /// # };
    /// // Running the same step twice makes the same call, with the same id.
    /// let first = input_of(registry.run_orchestrator(&request));
    /// assert_eq!(first, input_of(registry.run_orchestrator(&request)));
    /// ```
    pub fn new_uuid(&self) -> String {
        self.state.borrow_mut().new_uuid()
    }
}
