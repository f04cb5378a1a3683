//! What an activity knows about the call that started it.

/// Passed to every activity: which orchestration called it, and as which task.
///
/// An activity is an `async fn(ActivityContext, I) -> Result<O, Error>` registered with
/// [`export_plugin!`](crate::export_plugin!) or [`Registry::activity`](crate::Registry::activity).
/// Unlike an orchestrator it runs once per call (or more, if a worker dies mid-way: keep it
/// idempotent), on the plugin's multi-threaded runtime, and may do anything: I/O, sleeps,
/// clocks. The context identifies the call, e.g. for logging or as an idempotency key.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{ActivityContext, Error};
///
/// async fn charge_card(ctx: ActivityContext, cents: u64) -> Result<String, Error> {
///     // The same orchestration step always calls with the same instance and task id,
///     // so together they make a good idempotency key for the payment service.
///     let key = format!("{}#{}", ctx.instance_id(), ctx.task_id());
///     Ok(format!("{}: charged {cents} cents (key {key})", ctx.name()))
/// }
/// # let mut registry = durabletask_sdk::Registry::new();
/// # registry.activity("charge_card", charge_card);
/// ```
#[derive(Debug, Clone)]
pub struct ActivityContext {
    instance_id: String,
    task_id: i32,
    name: String,
}

impl ActivityContext {
    pub(crate) fn new(instance_id: String, task_id: i32, name: String) -> Self {
        Self {
            instance_id,
            task_id,
            name,
        }
    }

    /// The instance id of the orchestration that scheduled this activity.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{ActivityContext, Error};
    ///
    /// async fn audit(ctx: ActivityContext, action: String) -> Result<(), Error> {
    ///     tracing::info!(instance_id = ctx.instance_id(), %action, "audited");
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().activity("audit", audit);
    /// ```
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The task id (the orchestrator's action id) of this activity call: unique within the
    /// orchestration instance and the same every time the call is retried.
    pub fn task_id(&self) -> i32 {
        self.task_id
    }

    /// The activity's registered name: what the orchestrator passed to
    /// [`call_activity`](crate::OrchestrationContext::call_activity). Useful when one
    /// function is registered under several names.
    pub fn name(&self) -> &str {
        &self.name
    }
}
