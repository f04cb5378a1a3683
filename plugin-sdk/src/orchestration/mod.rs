//! Orchestrations: the [`OrchestrationContext`] user code calls, the durable task futures
//! it awaits, and the replay engine that runs it deterministically from history.
//!
//! Module map:
//! - `context`: the user-facing API; records actions at call time.
//! - `tasks`: the futures for activities, timers and events.
//! - `combinators`: [`when_all`] and [`when_any`].
//! - `engine`: walks the history and polls the orchestrator (spec §3).
//! - `determinism`: checks replayed actions against history.
//! - `state`: the state shared by the above for one step.
//! - `payload`, `time`: wire conventions for JSON payloads and timestamps.

mod combinators;
mod context;
mod determinism;
pub(crate) mod engine;
pub(crate) mod payload;
mod state;
mod tasks;
mod time;

pub use combinators::{WhenAll, WhenAny, when_all, when_any};
pub use context::OrchestrationContext;
pub use tasks::{ActivityTask, EventTask, TimerTask};
