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
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{ActivityContext, Error, OrchestrationContext, Registry};
    ///
    /// async fn send_email(ctx: ActivityContext, to: String) -> Result<String, Error> {
    ///     // Redelivered calls carry the same key, so the mail service can drop duplicates.
    ///     Ok(format!("{}-{}:{to}", ctx.instance_id(), ctx.task_id()))
    /// }
    ///
    /// async fn notify(ctx: OrchestrationContext, to: String) -> Result<Vec<String>, Error> {
    ///     let first: String = ctx.call_activity("send_email", &to).await?;
    ///     let second: String = ctx.call_activity("send_email", &to).await?;
    ///     Ok(vec![first, second])
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("notify", notify).activity("send_email", send_email);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("notify", "ada@example.com")?;
    /// assert_eq!(
    ///     runtime.output::<Vec<String>>(&id)?,
    ///     ["instance-1-1:ada@example.com", "instance-1-2:ada@example.com"]
    /// );
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn task_id(&self) -> i32 {
        self.task_id
    }

    /// The activity's registered name: what the orchestrator passed to
    /// [`call_activity`](crate::OrchestrationContext::call_activity). Useful when one
    /// function is registered under several names.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{ActivityContext, Error, OrchestrationContext, Registry};
    ///
    /// /// One function behind two activity names: the name picks the currency.
    /// async fn convert(ctx: ActivityContext, cents: u64) -> Result<String, Error> {
    ///     let currency = if ctx.name() == "to_eur" { "EUR" } else { "USD" };
    ///     Ok(format!("{}.{:02} {currency}", cents / 100, cents % 100))
    /// }
    ///
    /// async fn price(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    ///     Ok(ctx.call_activity("to_eur", cents).await?)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry
    ///     .orchestrator("price", price)
    ///     .activity("to_eur", convert)
    ///     .activity("to_usd", convert);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("price", 1250)?;
    /// assert_eq!(runtime.output::<String>(&id)?, "12.50 EUR");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}
