//! The optional settings of durable calls, as builders so new settings can be added
//! without breaking callers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::retry::RetryPolicy;

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
    pub fn new() -> Self {
        Self::default()
    }

    /// Retries failed attempts by this policy.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// Adds a tag (`ScheduleTaskAction.tags`), kept on retries.
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
    pub fn new() -> Self {
        Self::default()
    }

    /// The child's instance id, instead of `<parent id>:<action id in hex>`. An empty id
    /// counts as none.
    pub fn instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = Some(instance_id.into()).filter(|id| !id.is_empty());
        self
    }

    /// The version to start the child with, instead of the worker's default version
    /// ([`DEFAULT_VERSION_PROPERTY`](super::DEFAULT_VERSION_PROPERTY)). It is not
    /// inherited from the parent. An empty version counts as none, so the child gets the
    /// default version, as the reference SDK does: there is no way to start a child
    /// without a version when the worker has a default one.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into()).filter(|v| !v.is_empty());
        self
    }

    /// Retries a failed child by this policy, under the same instance id.
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
