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
//! Build it with `crate-type = ["cdylib", "rlib"]` (the host loads the cdylib; the rlib
//! lets the crate's own integration tests link it) and keep the default
//! `panic = "unwind"`: the host refuses plugins built with `panic = "abort"`.
//! `durabletask-host new plugin NAME` writes such a crate, tests included.
//!
//! ## Concepts
//!
//! - An **orchestration** is a durable function: it calls activities, sub-orchestrations
//!   and entities, waits on timers and external events, and survives crashes and
//!   restarts, because every step it takes is recorded in its **history** by the backend.
//!   When something it waits for happens, the host **replays** the orchestrator from the
//!   start against the history: calls that already completed return their recorded
//!   results at once, and the orchestrator runs on to the next thing it waits for.
//! - An **activity** does the work (I/O, computation). It runs once per call, or more if
//!   a worker dies mid-way: keep it idempotent.
//! - An **entity** is a small piece of durable state with operations (a counter, an
//!   account), addressed by `@name@key`, running one operation at a time. Orchestrations
//!   call and signal entities, and can lock several at once (critical sections).
//! - A **plugin** is a `cdylib` that registers these by name ([`export_plugin!`]). The
//!   host loads it (in a child process of its own by default), gets work items from the
//!   backend and hands each to the plugin as an encoded protocol message: the protocol is
//!   the ABI, and the replay engine runs inside the plugin, in this crate.
//!
//! ## The determinism rules
//!
//! An orchestrator is replayed many times, so every replay must make the same calls, in
//! the same order, as the history recorded; a mismatch fails the orchestration with
//! [`error_types::NON_DETERMINISM`], naming both sides. In an orchestrator:
//! - take the time from [`OrchestrationContext::current_utc_datetime`], not the clock;
//!   ids from [`OrchestrationContext::new_uuid`], not a random generator;
//! - wait with durable timers ([`OrchestrationContext::create_timer_after`]), never tokio's
//!   sleep, channels or other futures the host does not know;
//! - do I/O, read files, configuration or the environment in activities, never here;
//! - log through [`OrchestrationContext::logger`], which stays quiet during replays;
//! - branch only on inputs, results of durable calls and [`OrchestrationContext::version`].
//!
//! Changing an orchestrator that has running instances must keep these rules across the
//! change: add calls only after what running histories recorded, or branch on the
//! version the orchestration started with.
//!
//! ## Versions and hot swap
//!
//! `export_plugin!`'s `version` names a build. A new build needs a new version: the host
//! serves several versions of one plugin side by side, runs each orchestration on the
//! generation of its own version (started with `client start --version`, or the host's
//! `[versioning] default_version`), else on the one that started it, and remembers which
//! build served each version across restarts. Code that must continue orchestrations
//! started by an older version reads [`OrchestrationContext::version`] and takes the old
//! path for them. Before a deploy, `durabletask-host replay-check --plugin NEW.so
//! HISTORY...` replays saved histories against the new build, and the host itself replays
//! running orchestrations against a build dropped into its plugins folder before it puts
//! the build in service (`[plugins] verify_replay`).
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
//! for several durable tasks of one type at once, [`orchestration::join`] and
//! [`orchestration::race`] for tasks of different types (a tuple); timers and event waits
//! can be cancelled. `return ctx.continue_as_new(input)` starts afresh;
//! [`orchestration::CriticalSection::into_guard`] holds locked entities until the end of
//! a scope.
//!
//! ## Entities
//!
//! A function entity is a `fn(&mut EntityContext, I) -> Result<O, Error>` that tells its
//! operations apart by [`EntityContext::operation`]; a class entity is a type
//! implementing [`DurableEntity`], one method per operation. Both keep their state as
//! JSON ([`EntityContext::get_state`], [`EntityContext::set_state`]). Register them with
//! `export_plugin!`'s `entities` and `entity_classes`; see [`entity`].
//! [`EntityContext::dispatch`] gives a function entity typed operations.
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
