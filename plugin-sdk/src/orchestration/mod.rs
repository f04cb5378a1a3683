//! Orchestrations: the [`OrchestrationContext`] user code calls, the durable task futures
//! it awaits, and the replay engine that runs it deterministically from history.
//!
//! Module map:
//! - `context`: the user-facing API; records actions at call time.
//! - `calls`: activities and sub-orchestrations, with `options` and `retry` policies.
//! - `timers`: timer creation, long-timer chunks, what `timerFired` does.
//! - `cancel`: cancelling timers and event waits.
//! - `continue_as_new`: restarting with a new input, carrying events over.
//! - `send_event`: raising an event on another instance.
//! - `entities`: signalling and calling entities, lock requests, and their responses.
//! - `critical_section`: the rules inside a critical section, and leaving it.
//! - `entity_tasks`: the futures of entity calls and lock requests.
//! - `rewind`: the answer to a rewind request (history minus its failures).
//! - `logger`: logging that stays quiet during replay.
//! - `tasks`: the futures for activities, sub-orchestrations, timers and events.
//! - `combinators`: [`when_all`] and [`when_any`].
//! - `tuple_combinators`: [`join`] and [`race`], the same for tuples of tasks of
//!   different types.
//! - `engine`: walks the history and polls the orchestrator (spec §3).
//! - `determinism`: checks replayed actions against history.
//! - `state`: the state shared by the above for one step.
//! - `id_map`: the by-id map `state` keeps pending actions and tasks in.
//! - `payload`, `time`: wire conventions for JSON payloads and timestamps.
//! - `casefold`: the case folding of event names.

mod calls;
mod cancel;
mod casefold;
mod combinators;
mod context;
mod continue_as_new;
mod critical_section;
mod determinism;
pub(crate) mod engine;
mod entities;
mod entity_tasks;
mod id_map;
mod logger;
mod options;
pub(crate) mod payload;
mod retry;
mod rewind;
mod send_event;
mod state;
mod tasks;
mod time;
mod timers;
mod tuple_combinators;

pub use calls::DEFAULT_VERSION_PROPERTY;
pub use cancel::CancelHandle;
pub use combinators::{WhenAll, WhenAny, when_all, when_any};
pub use context::OrchestrationContext;
pub use critical_section::{CriticalSection, CriticalSectionGuard};
pub use entity_tasks::{EntityCallTask, LockTask};
pub use logger::ReplaySafeLogger;
pub use options::{ACTIVITY_TIMEOUT_TAG, ActivityOptions, SubOrchestrationOptions};
pub use retry::{InvalidRetryPolicy, RetryPolicy};
pub use tasks::{ActivityTask, EventTask, SubOrchestrationTask, TimerTask};
pub use timers::MAXIMUM_TIMER_INTERVAL_PROPERTY;
pub use tuple_combinators::{
    Join, JoinTasks, Race, RaceTasks, Winner2, Winner3, Winner4, Winner5, Winner6, join, race,
};
