//! The parts of a task hub's state. Each owns its data behind its own methods, records
//! its own changes, writes its own store operations, takes its records back at load (and
//! after a failed commit) and keeps its own indexes; each is unit-tested on its own.
//! What crosses parts (a completion that touches an instance, its activities, timers and
//! entities) is the engine's behaviour, in the modules above, as methods of `Hub`.

pub mod activities;
pub mod dispatch;
pub mod entities;
pub mod instances;
pub mod timers;
pub mod waiters;
