//! durabletask-host: runs Durable Task orchestrators and activities from cdylib plugins.
//!
//! The binary (`main.rs`) is a thin shell over this library. See ARCHITECTURE.md for the
//! flow of a work item through these modules.

pub mod client;
pub mod config;
pub mod connection;
pub mod embedded;
pub mod logging;
pub mod plugins;
pub mod runtime;
pub mod signals;
pub mod status;
pub mod versioning;
pub mod worker;
