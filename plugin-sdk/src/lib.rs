//! # durabletask-sdk
//!
//! Write Durable Task orchestrators and activities in Rust, build them as a `cdylib`,
//! and let `durabletask-host` run them.
//!
//! ```ignore
//! use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
//!
//! async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
//!     Ok(format!("Hello {city}!"))
//! }
//!
//! async fn hello_cities(ctx: OrchestrationContext, _input: ()) -> Result<Vec<String>, Error> {
//!     let mut greetings = Vec::new();
//!     for city in ["Tokyo", "Seattle", "London"] {
//!         greetings.push(ctx.call_activity::<_, String>("say_hello", city).await?);
//!     }
//!     Ok(greetings)
//! }
//!
//! durabletask_sdk::export_plugin! {
//!     name: "hello",
//!     version: env!("CARGO_PKG_VERSION"),
//!     orchestrators: [hello_cities],
//!     activities: [say_hello],
//! }
//! ```
//!
//! The crate has two halves:
//! - the programming model: [`OrchestrationContext`], [`ActivityContext`], [`Error`],
//!   the [`Registry`] and the replay engine that runs orchestrators deterministically;
//! - the plugin ABI ([`abi`]) and the [`export_plugin!`] macro that exposes a registry
//!   to the host.

pub mod abi;
mod activity;
mod error;
#[doc(hidden)]
pub mod export;
mod host_log;
pub mod orchestration;
mod registry;

pub use activity::ActivityContext;
pub use error::{Error, FailureDetails, TaskFailedError, error_types};
pub use orchestration::OrchestrationContext;
pub use registry::Registry;

/// The protocol messages, for tests and advanced use.
pub use durabletask_proto as proto;
