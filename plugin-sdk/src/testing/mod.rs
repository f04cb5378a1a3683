//! The test kit: run a [`Registry`](crate::Registry)'s orchestrations, activities and
//! entities in process, with the real replay engine and no backend, plugin library or
//! network. Enable it in your plugin's dev-dependencies:
//!
//! ```toml
//! [dev-dependencies]
//! durabletask-sdk = { version = "…", features = ["testing"] }
//! ```
//!
//! - [`TestRuntime`] drives instances as a backend would: each step replays the whole
//!   history, so non-determinism fails the instance (errorType `NonDeterminism`) in a
//!   unit test, as it would in production. Durable time is under the test's control: the
//!   clock starts at [`start_time`] and moves only with [`TestRuntime::advance`], so a
//!   30-day timer takes microseconds. Activities run for real or are replaced per name
//!   ([`TestRuntime::mock_activity`]); events, suspend, resume, terminate and entity
//!   signals come from the test; status, output, custom status, failure, history and
//!   entity state can be read at any time. [`TestRuntime::replace_registry`] continues
//!   running instances on changed code.
//! - [`replay`] and [`replay_saved`] replay one history (hand-written with
//!   [`HistoryBuilder`], or saved with `durabletask-host client history <ID>`) against a
//!   registry, and say whether the code still makes the recorded calls ([`Verdict`]).
//! - [`plugin_registry!`](crate::plugin_registry!) gives, inside a plugin crate, the
//!   registry its `export_plugin!` registers.
//!
//! What differs from a real deployment: one worker, and work runs in arrival order,
//! first in first out (a step takes every event that arrived before it ran); activities
//! run one at a time, each to its end; nothing is retried or redelivered (a worker
//! never dies here); the host's worker settings (`maximum_timer_interval`,
//! `default_version`) are not set; rewinds, purges and restarts are not offered.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use durabletask_sdk::testing::TestRuntime;
//! use durabletask_sdk::{ActivityContext, Error, OrchestrationContext, Registry};
//!
//! async fn trial(ctx: OrchestrationContext, user: String) -> Result<String, Error> {
//!     ctx.call_activity::<_, ()>("send_welcome", &user).await?;
//!     ctx.create_timer_after(Duration::from_secs(14 * 86_400)).await;
//!     Ok(ctx.call_activity("end_trial", &user).await?)
//! }
//! async fn send_welcome(_ctx: ActivityContext, _user: String) -> Result<(), Error> {
//!     Ok(())
//! }
//!
//! let mut registry = Registry::new();
//! registry.orchestrator("trial", trial).activity("send_welcome", send_welcome);
//! let mut runtime = TestRuntime::new(registry);
//! // `end_trial` would call a billing service: the test replaces it.
//! runtime.mock_activity("end_trial", |user: String| Ok(format!("trial of {user} ended")));
//!
//! let id = runtime.start("trial", "ada")?;
//! runtime.advance(Duration::from_secs(13 * 86_400))?;
//! assert!(runtime.output::<String>(&id).is_err(), "still in its trial");
//! runtime.advance(Duration::from_secs(86_400))?;
//! assert_eq!(runtime.output::<String>(&id)?, "trial of ada ended");
//! # Ok::<(), durabletask_sdk::testing::TestError>(())
//! ```

mod activities;
mod clock;
mod entities;
mod error;
mod history;
mod instances;
mod replay;
mod runtime;
mod steps;

pub use clock::start_time;
pub use error::TestError;
pub use history::HistoryBuilder;
pub use replay::{Verdict, replay, replay_saved};
pub use runtime::TestRuntime;

/// The [`Registry`](crate::Registry) that the current crate's
/// [`export_plugin!`](crate::export_plugin!) registers, for its tests: the same functions
/// under the same names as the host would see. Use it inside the plugin crate, which
/// must invoke `export_plugin!` at its root (as plugins do).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn hello(_ctx: OrchestrationContext, name: String) -> Result<String, Error> {
///     Ok(format!("Hello {name}!"))
/// }
///
/// durabletask_sdk::export_plugin! {
///     name: "hello",
///     version: "1.0.0",
///     orchestrators: [hello],
///     activities: [],
/// }
///
/// # fn main() -> Result<(), durabletask_sdk::testing::TestError> {
/// let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
/// let id = runtime.start("hello", "Tokyo")?;
/// assert_eq!(runtime.output::<String>(&id)?, "Hello Tokyo!");
/// # Ok(())
/// # }
/// ```
// `crate` is meant: the plugin crate that expands the macro, where `export_plugin!`
// defined the definition static.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! plugin_registry {
    () => {{
        let mut registry = $crate::Registry::new();
        (crate::__DURABLETASK_PLUGIN_DEFINITION.register)(&mut registry);
        registry
    }};
}
