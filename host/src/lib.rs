//! durabletask-host: runs Durable Task orchestrators and activities from cdylib plugins.
//!
//! The binary (`main.rs`) is a thin shell over this library. See ARCHITECTURE.md for the
//! flow of a work item through these modules.

// `unsafe` is allowed only where a module says why it must have it (plugins::ffi,
// plugins::isolation::child_signals).
#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod dashboard;
pub mod embedded;
pub mod logging;
pub mod plugins;
pub mod runtime;
pub mod signals;
pub mod status;
pub mod systemd;
pub mod telemetry;
pub mod template;
pub mod traces;
pub mod versioning;
pub mod worker;
