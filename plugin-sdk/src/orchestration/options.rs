//! The optional settings of durable calls, as builders so new settings can be added
//! without breaking callers.

use std::collections::BTreeMap;

use super::retry::RetryPolicy;

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
