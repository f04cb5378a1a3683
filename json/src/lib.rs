//! # durabletask-json
//!
//! The JSON shapes of the protocol's instance state, entities and history events, as
//! `durabletask-host client` prints them ([`state_to_json`], [`entity_to_json`],
//! [`event_to_json`]), and the way back for histories ([`history_from_json`]): a history
//! saved with `durabletask-host client history` can be replayed against a plugin build
//! (`durabletask-host replay-check`, the SDK's test kit).
//!
//! Payloads travel as JSON text inside the protocol; here they are JSON values, so that
//! scripts can read `output` directly instead of decoding a string twice.

mod history;
mod state;

pub use history::{HistoryJsonError, event_from_json, event_to_json, history_from_json, kind_name};
pub use state::{entity_to_json, failure_to_json, payload, state_to_json, status_name, timestamp};
