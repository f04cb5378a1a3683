//! # durabletask-sdk
//!
//! Write Durable Task orchestrators and activities in Rust, build them as a `cdylib`,
//! and let `durabletask-host` run them.
//!
//! A plugin is a handful of `async fn`s and one [`export_plugin!`] invocation:
//!
//! ```rust,standalone_crate
//! use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
//!
//! /// An activity does the work. It may run more than once: keep it idempotent.
//! async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
//!     Ok(format!("Hello {city}!"))
//! }
//!
//! /// An orchestrator decides what runs. It is replayed, so it must be deterministic.
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
//! # fn main() {}
//! ```
//!
//! Build it with `crate-type = ["cdylib"]` and keep the default `panic = "unwind"`: the host
//! refuses plugins built with `panic = "abort"`.
//!
//! ## Activities
//!
//! An activity is an `async fn(ActivityContext, I) -> Result<O, Error>`, where the input
//! `I` is any [`serde::de::DeserializeOwned`] type and the output `O` any
//! [`serde::Serialize`] type (both travel as JSON). Activities run on the plugin's own
//! multi-threaded tokio runtime, so they may do I/O, sleep and spawn; their futures must be
//! `Send`. See [`ActivityContext`].
//!
//! ## Orchestrators
//!
//! An orchestrator is an `async fn(OrchestrationContext, I) -> Result<O, Error>`. It is
//! re-run from the start, against its recorded history, every time it makes progress, so it
//! must make the same durable calls in the same order every time: no clocks, random numbers,
//! I/O, tokio timers or channels. Everything it needs from the outside world comes from the
//! [`OrchestrationContext`]: activity calls and sub-orchestrations (optionally retried by an
//! [`orchestration::RetryPolicy`]), durable timers, external events (sent to other
//! instances with `send_event`), continue-as-new, a replay-safe clock, logger and
//! deterministic UUIDs. [`orchestration::when_all`] and [`orchestration::when_any`] wait
//! for several durable tasks at once; timers and event waits can be cancelled.
//!
//! ## Errors
//!
//! Both kinds of function return [`Error`]. Any [`std::error::Error`] converts into it with
//! `?`; [`Error::new`] gives a failure an explicit type name. A failed activity reaches the
//! orchestrator as a [`TaskFailedError`]: handle it, or let `?` fail the orchestration with
//! [`error_types::TASK_FAILED`]. The names the SDK itself reports are in [`error_types`].
//!
//! ## Logging
//!
//! Log with `tracing` as usual, from activities, entities and orchestrators (in an
//! orchestrator, through its replay-safe logger, so replays do not repeat lines). The host
//! writes each event in its own log, tagged with the plugin's name and version, at the
//! level its `[logging]` lets through (finer events are dropped inside the plugin, before
//! crossing to the host). The event's fields stay fields: in the host's JSON lines
//! `tracing::info!(count = 3, cities = ?cities, "sent")` gives `"count":3` and
//! `"cities":["Tokyo","London"]` (a `Debug` text that is JSON is written as JSON), in its
//! text lines `count=3 cities=["Tokyo", "London"]`.
//!
//! ## Testing
//!
//! With the `testing` feature (enable it in your dev-dependencies:
//! `durabletask-sdk = { version = "…", features = ["testing"] }`), the `testing` module
//! runs a [`Registry`]'s orchestrations, activities and entities in process with the real
//! replay engine: no host, backend or network. Its `TestRuntime` replays the whole
//! history at every step as a backend would (so non-determinism fails a unit test), puts
//! durable time under the test's control (a 30-day timer fires when the test advances the
//! clock, in microseconds), runs activities for real or mocks them per name, and reads
//! status, output, custom status, failures, histories and entity states. `replay` and
//! `replay_saved` check a hand-built history or one saved with `durabletask-host client
//! history` against the code: a production instance as a regression test.
//!
//! Without the feature, [`Registry::run_orchestrator`] runs one orchestration step from a
//! hand-built [`proto::OrchestratorRequest`], [`Registry::run_activity`] one activity and
//! [`Registry::run_entity_batch`] one entity batch: see [`Registry`] for examples.
//!
//! ## Crate layout
//!
//! The crate has two halves:
//! - the programming model: [`OrchestrationContext`], [`ActivityContext`], [`Error`],
//!   the [`Registry`] and the replay engine that runs orchestrators deterministically;
//! - the plugin ABI ([`abi`]) and the [`export_plugin!`] macro that exposes a registry
//!   to the host.

#![warn(missing_docs)]

pub mod abi;
mod activity;
pub mod entity;
mod error;
#[doc(hidden)]
pub mod export;
mod host_log;
pub mod orchestration;
mod panic_trace;
mod registry;
#[cfg(feature = "testing")]
pub mod testing;

pub use activity::ActivityContext;
pub use entity::{DurableEntity, EntityContext, EntityInstanceId, EntityWorkItem};
pub use error::{Error, FailureDetails, TaskFailedError, error_types};
pub use orchestration::OrchestrationContext;
pub use registry::Registry;

/// The Durable Task protocol messages (the `durabletask-proto` crate), for tests and
/// advanced use.
///
/// Plugin code rarely needs them; tests use them to drive [`Registry::run_orchestrator`]
/// and [`Registry::run_activity`] with hand-built requests. `proto::prost_types` is the
/// `prost-types` crate the messages use (e.g. for [`Timestamp`](proto::prost_types::Timestamp)).
pub use durabletask_proto as proto;
