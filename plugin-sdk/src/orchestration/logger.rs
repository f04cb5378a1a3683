//! Replay-safe logging: an orchestrator is re-run from the start on every step, so a plain
//! log line would be repeated once per step. This logger writes only while the code runs
//! for the first time (not replaying), through `tracing` like the rest of the plugin.

use std::cell::RefCell;
use std::fmt::Display;
use std::rc::Rc;

use tracing::Level;

use super::context::OrchestrationContext;
use super::state::State;

/// The `tracing` target of replay-safe log lines, for filtering.
const TARGET: &str = "durabletask::orchestration";

/// Logs from orchestrator code exactly once: lines logged while the orchestrator replays
/// history are dropped. Each line carries the instance id and orchestrator name as fields
/// and has the target `durabletask::orchestration`.
///
/// Get one from [`OrchestrationContext::logger`]; it checks
/// [`is_replaying`](OrchestrationContext::is_replaying) at each call, so one logger made
/// at the start serves the whole orchestrator.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn ship(ctx: OrchestrationContext, order: String) -> Result<(), Error> {
///     let log = ctx.logger();
///     log.info(format_args!("shipping {order}"));
///     let tracking: String = ctx.call_activity("ship", &order).await?;
///     // Written once, when the activity's result arrives, not on later replays.
///     log.info(format_args!("{order} shipped as {tracking}"));
///     Ok(())
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("ship", ship);
/// ```
#[derive(Clone)]
pub struct ReplaySafeLogger {
    state: Rc<RefCell<State>>,
}

impl OrchestrationContext {
    /// A logger that stays quiet while the orchestrator replays (see [`ReplaySafeLogger`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn audit(ctx: OrchestrationContext, user: String) -> Result<(), Error> {
    ///     ctx.logger().warn(format_args!("deleting {user}"));
    ///     ctx.call_activity::<_, ()>("delete_user", user).await?;
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("audit", audit);
    /// ```
    pub fn logger(&self) -> ReplaySafeLogger {
        ReplaySafeLogger {
            state: Rc::clone(&self.state),
        }
    }
}

impl ReplaySafeLogger {
    /// Logs at `TRACE` level, unless replaying.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn restock(ctx: OrchestrationContext, skus: Vec<String>) -> Result<(), Error> {
    ///     let log = ctx.logger();
    ///     for sku in &skus {
    ///         // Fine-grained progress, usually filtered out by the host's `[logging]`.
    ///         log.trace(format_args!("restocking {sku}"));
    ///         ctx.call_activity::<_, ()>("restock", sku).await?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("restock", restock);
    /// ```
    pub fn trace(&self, message: impl Display) {
        self.log(Level::TRACE, message);
    }

    /// Logs at `DEBUG` level, unless replaying.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn quote(ctx: OrchestrationContext, sku: String) -> Result<u64, Error> {
    ///     let cents: u64 = ctx.call_activity("fetch_price", &sku).await?;
    ///     // Logged once, in the step the price arrived, not again on each later replay.
    ///     ctx.logger().debug(format_args!("{sku} costs {cents} cents"));
    ///     Ok(cents * 2)
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("quote", quote);
    /// ```
    pub fn debug(&self, message: impl Display) {
        self.log(Level::DEBUG, message);
    }

    /// Logs at `INFO` level, unless replaying.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn onboard(ctx: OrchestrationContext, user: String) -> Result<(), Error> {
    ///     let log = ctx.logger();
    ///     log.info(format_args!("onboarding {user}"));
    ///     ctx.call_activity::<_, ()>("create_account", &user).await?;
    ///     ctx.call_activity::<_, ()>("send_welcome", &user).await?;
    ///     log.info(format_args!("{user} onboarded"));
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("onboard", onboard);
    /// ```
    pub fn info(&self, message: impl Display) {
        self.log(Level::INFO, message);
    }

    /// Logs at `WARN` level, unless replaying.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn geocode(ctx: OrchestrationContext, address: String) -> Result<String, Error> {
    ///     match ctx.call_activity::<_, String>("geocode_primary", &address).await {
    ///         Ok(place) => Ok(place),
    ///         Err(failure) => {
    ///             let log = ctx.logger();
    ///             log.warn(format_args!("primary geocoder failed, trying the backup: {failure}"));
    ///             Ok(ctx.call_activity("geocode_backup", &address).await?)
    ///         }
    ///     }
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("geocode", geocode);
    /// ```
    pub fn warn(&self, message: impl Display) {
        self.log(Level::WARN, message);
    }

    /// Logs at `ERROR` level, unless replaying.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn refund(ctx: OrchestrationContext, order: String) -> Result<(), Error> {
    ///     if let Err(failure) = ctx.call_activity::<_, ()>("refund_card", &order).await {
    ///         ctx.logger().error(format_args!("refund of {order} failed: {failure}"));
    ///         return Err(failure.into());
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("refund", refund);
    /// ```
    pub fn error(&self, message: impl Display) {
        self.log(Level::ERROR, message);
    }

    /// Whether a line logged now would be written (`false` while replaying).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, OrchestrationContext};
    ///
    /// async fn report(ctx: OrchestrationContext, rows: Vec<u64>) -> Result<(), Error> {
    ///     let log = ctx.logger();
    ///     // Skip building an expensive message that would be dropped anyway.
    ///     if log.is_enabled() {
    ///         log.debug(format_args!("sum = {}", rows.iter().sum::<u64>()));
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = durabletask_sdk::Registry::new().orchestrator("report", report);
    /// ```
    pub fn is_enabled(&self) -> bool {
        self.state
            .try_borrow()
            .is_ok_and(|state| !state.is_replaying)
    }

    fn log(&self, level: Level, message: impl Display) {
        // Read, then release the state before formatting: `Display` is user code.
        let (instance_id, name) = {
            let Ok(state) = self.state.try_borrow() else {
                return;
            };
            if state.is_replaying {
                return;
            }
            (state.instance_id.to_string(), state.name.clone())
        };
        // `tracing` levels are static per call site, hence one call per level.
        match level {
            Level::TRACE => {
                tracing::trace!(target: TARGET, instance_id, orchestrator = name, "{message}")
            }
            Level::DEBUG => {
                tracing::debug!(target: TARGET, instance_id, orchestrator = name, "{message}")
            }
            Level::INFO => {
                tracing::info!(target: TARGET, instance_id, orchestrator = name, "{message}")
            }
            Level::WARN => {
                tracing::warn!(target: TARGET, instance_id, orchestrator = name, "{message}")
            }
            Level::ERROR => {
                tracing::error!(target: TARGET, instance_id, orchestrator = name, "{message}")
            }
        }
    }
}
