//! durabletask-client: the command-line client of a Durable Task backend (start, inspect
//! and control orchestrations; signal and read entities) and the gRPC connection code the
//! host's worker shares with it.
//!
//! A program of its own, apart from the daemon: it needs the protocol, the connection and
//! what the host's configuration file says about the backend, which the host hands to
//! [`cli::run`] as [`cli::ConfigDefaults`]. The host depends on this crate, never the other
//! way round.
//!
//! Every operation of [`Client`] returns the one JSON object the CLI prints, so tests can
//! drive the backend through the same code path as a user. [`cli`] is the clap layer.

#![deny(unsafe_code)]

pub mod cli;
pub mod connection;
mod endpoint;
mod error;
mod operations;
mod options;
mod paging;
mod schedule;
mod values;

pub use endpoint::Endpoint;
pub use error::ClientError;
pub use operations::Client;
pub use options::{
    ClientOptions, DEFAULT_LIST_LIMIT, DEFAULT_PAGE_SIZE, EntityListOptions, ListOptions,
    NamedPage, Paging, SignalOptions, StartOptions,
};
pub use schedule::signal_time;
// The JSON shapes printed, from the crate the SDK's test kit reads histories back with.
pub use durabletask_json::{
    entity_to_json, event_to_json, failure_to_json, kind_name, payload, state_to_json, status_name,
};
pub use values::{JsonText, TraceParent, entity_id, parse_status};
