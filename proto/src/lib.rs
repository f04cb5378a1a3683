//! The Durable Task protocol: every message and the `TaskHubSidecarService` RPCs.
//!
//! The `.proto` has no `package` line (the method paths must be
//! `/TaskHubSidecarService/<Rpc>`), so prost writes its output to `_.rs`.
//!
//! Plugins depend on this crate without the `grpc` feature: they only encode and
//! decode messages. The host enables `grpc` for the client and server stubs.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/_.rs"));

#[cfg(feature = "grpc")]
pub mod codec;

pub use prost;
pub use prost_types;
