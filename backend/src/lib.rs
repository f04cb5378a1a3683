//! An embedded, durable Durable Task backend: Microsoft's `TaskHubSidecarService` served
//! from a SQLite file, so one process (the host) runs everything on a fresh machine.

#![forbid(unsafe_code)]

pub mod records;
pub mod store;
