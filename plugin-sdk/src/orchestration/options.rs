//! The optional settings of durable calls, as builders so new settings can be added
//! without breaking callers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::retry::RetryPolicy;

/// The tag that carries an activity call's own timeout, in seconds: what
/// [`ActivityOptions::timeout`] sets.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::{ACTIVITY_TIMEOUT_TAG, ActivityOptions};
/// use durabletask_sdk::proto::history_event::EventType;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn quote(ctx: OrchestrationContext, sku: String) -> Result<u64, Error> {
///     let options = ActivityOptions::new().timeout(Duration::from_millis(2500));
///     Ok(ctx.call_activity_with("fetch_price", sku, options).await?)
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("quote", quote);
/// let mut runtime = TestRuntime::new(registry);
/// runtime.mock_activity("fetch_price", |_sku: String| Ok(120));
/// let id = runtime.start("quote", "pen")?;
/// let tags = runtime.history(&id).unwrap().iter().find_map(|event| match &event.event_type {
///     Some(EventType::TaskScheduled(scheduled)) => Some(scheduled.tags.clone()),
///     _ => None,
/// });
/// assert_eq!(tags.unwrap()[ACTIVITY_TIMEOUT_TAG], "2.5");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
pub use durabletask_abi::properties::ACTIVITY_TIMEOUT_TAG;

/// Optional settings of an activity call, for
/// [`call_activity_with`](super::OrchestrationContext::call_activity_with).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::orchestration::{ActivityOptions, RetryPolicy};
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn bill(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
///     let options = ActivityOptions::new()
///         .retry_policy(RetryPolicy::new(Duration::from_secs(2), 3)?)
///         .tag("team", "billing");
///     Ok(ctx.call_activity_with("charge", cents, options).await?)
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("bill", bill);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ActivityOptions {
    pub(crate) retry_policy: Option<RetryPolicy>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl ActivityOptions {
    /// No retries, no tags: the same as [`call_activity`](super::OrchestrationContext::call_activity).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{ActivityOptions, RetryPolicy};
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn charge(
    ///     ctx: OrchestrationContext,
    ///     (cents, retry): (u64, bool),
    /// ) -> Result<String, Error> {
    ///     let mut options = ActivityOptions::new();
    ///     if retry {
    ///         options = options.retry_policy(RetryPolicy::new(Duration::from_secs(5), 3)?);
    ///     }
    ///     Ok(ctx.call_activity_with("charge_card", cents, options).await?)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("charge", charge);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.mock_activity("charge_card", |cents: u64| Ok(format!("charged {cents}")));
    /// let id = runtime.start("charge", (250, false))?;
    /// assert_eq!(runtime.output::<String>(&id)?, "charged 250");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Retries failed attempts by this policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{ActivityOptions, RetryPolicy};
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn bill(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    ///     // Three attempts in all, two seconds apart.
    ///     let policy = RetryPolicy::new(Duration::from_secs(2), 3)?;
    ///     let options = ActivityOptions::new().retry_policy(policy);
    ///     Ok(ctx.call_activity_with("charge_card", cents, options).await?)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("bill", bill);
    /// let mut runtime = TestRuntime::new(registry);
    /// // A payment service that fails twice before it answers.
    /// let attempts = Rc::new(Cell::new(0));
    /// let counter = Rc::clone(&attempts);
    /// runtime.mock_activity("charge_card", move |cents: u64| {
    ///     counter.set(counter.get() + 1);
    ///     if counter.get() < 3 {
    ///         return Err(Error::new("Unavailable", "try again later"));
    ///     }
    ///     Ok(format!("charged {cents}"))
    /// });
    /// let id = runtime.start("bill", 500)?;
    /// runtime.advance(Duration::from_secs(4))?;
    /// assert_eq!(runtime.output::<String>(&id)?, "charged 500");
    /// assert_eq!(attempts.get(), 3);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// Adds a tag (`ScheduleTaskAction.tags`), kept on retries.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::ActivityOptions;
    /// use durabletask_sdk::proto::history_event::EventType;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn bill(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    ///     let options = ActivityOptions::new().tag("team", "billing").tag("cost_center", "42");
    ///     Ok(ctx.call_activity_with("charge_card", cents, options).await?)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("bill", bill);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.mock_activity("charge_card", |cents: u64| Ok(format!("charged {cents}")));
    /// let id = runtime.start("bill", 500)?;
    /// // The tags travel with the scheduled call, where the backend sees them.
    /// let tags = runtime.history(&id).unwrap().iter().find_map(|event| match &event.event_type {
    ///     Some(EventType::TaskScheduled(scheduled)) => Some(scheduled.tags.clone()),
    ///     _ => None,
    /// });
    /// assert_eq!(tags.unwrap()["team"], "billing");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Fails each attempt that has not completed `timeout` after it started running with
    /// errorType `ActivityTimeout` (retriable: a retry policy tries again), instead of
    /// durabletask-host's `[worker] activity_timeout`; `Duration::ZERO` lets the activity
    /// run as long as it takes whatever that setting says. The host cannot stop the
    /// activity's code: it frees the activity's permit and ignores its late result.
    ///
    /// It travels as the tag [`ACTIVITY_TIMEOUT_TAG`], so it takes a backend that passes
    /// a scheduled activity's tags on to its work item: the host's embedded backend does;
    /// Microsoft's in-memory test backend does not, and there the host's setting applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{ActivityOptions, RetryPolicy};
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn quote(ctx: OrchestrationContext, sku: String) -> Result<u64, Error> {
    ///     // A price service that answers within seconds or not at all: 3 tries of 10 s.
    ///     let options = ActivityOptions::new()
    ///         .timeout(Duration::from_secs(10))
    ///         .retry_policy(RetryPolicy::new(Duration::from_secs(1), 3)?);
    ///     Ok(ctx.call_activity_with("fetch_price", sku, options).await?)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("quote", quote);
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.tag(ACTIVITY_TIMEOUT_TAG, timeout.as_secs_f64().to_string())
    }
}

/// Optional settings of a sub-orchestration call, for
/// [`call_sub_orchestrator_with`](super::OrchestrationContext::call_sub_orchestrator_with).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::orchestration::SubOrchestrationOptions;
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn parent(ctx: OrchestrationContext, order: String) -> Result<(), Error> {
///     let options = SubOrchestrationOptions::new()
///         .instance_id(format!("shipping-{order}"))
///         .version("2");
///     ctx.call_sub_orchestrator_with::<_, ()>("ship", &order, options).await?;
///     Ok(())
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("parent", parent);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SubOrchestrationOptions {
    pub(crate) instance_id: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) retry_policy: Option<RetryPolicy>,
}

impl SubOrchestrationOptions {
    /// Default id, the worker's default version, no retries: the same as
    /// [`call_sub_orchestrator`](super::OrchestrationContext::call_sub_orchestrator).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::SubOrchestrationOptions;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn ship(_ctx: OrchestrationContext, order: String) -> Result<String, Error> {
    ///     Ok(format!("{order} shipped"))
    /// }
    ///
    /// async fn fulfil(
    ///     ctx: OrchestrationContext,
    ///     (order, express): (String, bool),
    /// ) -> Result<String, Error> {
    ///     let mut options = SubOrchestrationOptions::new();
    ///     if express {
    ///         options = options.version("express");
    ///     }
    ///     let child = ctx.call_sub_orchestrator_with::<_, String>("ship", &order, options);
    ///     let child_id = child.instance_id().to_owned();
    ///     Ok(format!("{child_id}: {}", child.await?))
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("fulfil", fulfil).orchestrator("ship", ship);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("fulfil", ("A-7", false))?;
    /// // Default options: the child's id is derived from the parent's.
    /// assert_eq!(runtime.output::<String>(&id)?, "instance-1:0001: A-7 shipped");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The child's instance id, instead of `<parent id>:<action id in hex>`. An empty id
    /// counts as none.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::SubOrchestrationOptions;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn ship(_ctx: OrchestrationContext, order: String) -> Result<String, Error> {
    ///     Ok(format!("{order} shipped"))
    /// }
    ///
    /// async fn fulfil(ctx: OrchestrationContext, orders: Vec<String>) -> Result<(), Error> {
    ///     for order in &orders {
    ///         // One child per order, under an id a client can look it up by.
    ///         let options = SubOrchestrationOptions::new().instance_id(format!("ship-{order}"));
    ///         ctx.call_sub_orchestrator_with::<_, String>("ship", order, options).await?;
    ///     }
    ///     Ok(())
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("fulfil", fulfil).orchestrator("ship", ship);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.start("fulfil", ["A-7", "B-2"])?;
    /// assert_eq!(runtime.output::<String>("ship-B-2")?, "B-2 shipped");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = Some(instance_id.into()).filter(|id| !id.is_empty());
        self
    }

    /// The version to start the child with, instead of the worker's default version
    /// ([`DEFAULT_VERSION_PROPERTY`](super::DEFAULT_VERSION_PROPERTY)). It is not
    /// inherited from the parent. An empty version counts as none, so the child gets the
    /// default version, as the reference SDK does: there is no way to start a child
    /// without a version when the worker has a default one.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::orchestration::SubOrchestrationOptions;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn ship(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
    ///     Ok(match ctx.version_str() {
    ///         Some("2") => format!("{order} shipped by drone"),
    ///         _ => format!("{order} shipped by van"),
    ///     })
    /// }
    ///
    /// async fn fulfil(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
    ///     // Start the child on its new code path, whatever version the parent runs.
    ///     let options = SubOrchestrationOptions::new().version("2");
    ///     Ok(ctx.call_sub_orchestrator_with("ship", &order, options).await?)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("fulfil", fulfil).orchestrator("ship", ship);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("fulfil", "A-7")?;
    /// assert_eq!(runtime.output::<String>(&id)?, "A-7 shipped by drone");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into()).filter(|v| !v.is_empty());
        self
    }

    /// Retries a failed child by this policy, under the same instance id.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use durabletask_sdk::orchestration::{RetryPolicy, SubOrchestrationOptions};
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn ship(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
    ///     Ok(ctx.call_activity("book_carrier", &order).await?)
    /// }
    ///
    /// async fn fulfil(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
    ///     let policy = RetryPolicy::new(Duration::from_secs(60), 3)?;
    ///     let options = SubOrchestrationOptions::new().retry_policy(policy);
    ///     Ok(ctx.call_sub_orchestrator_with("ship", &order, options).await?)
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("fulfil", fulfil).orchestrator("ship", ship);
    /// let mut runtime = TestRuntime::new(registry);
    /// // No carrier the first time: the first child fails, a minute later the retry succeeds.
    /// let busy = Rc::new(Cell::new(true));
    /// runtime.mock_activity("book_carrier", move |order: String| {
    ///     if busy.replace(false) {
    ///         return Err(Error::new("NoCarrier", "all carriers busy"));
    ///     }
    ///     Ok(format!("{order} booked"))
    /// });
    /// let id = runtime.start("fulfil", "A-7")?;
    /// runtime.advance(Duration::from_secs(60))?;
    /// assert_eq!(runtime.output::<String>(&id)?, "A-7 booked");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_travels_as_a_tag_in_seconds() {
        let tag = |timeout| {
            ActivityOptions::new()
                .timeout(timeout)
                .tags
                .get(ACTIVITY_TIMEOUT_TAG)
                .cloned()
        };
        assert_eq!(tag(Duration::from_millis(2500)).as_deref(), Some("2.5"));
        assert_eq!(tag(Duration::from_secs(600)).as_deref(), Some("600"));
        assert_eq!(tag(Duration::ZERO).as_deref(), Some("0"));
    }
}
