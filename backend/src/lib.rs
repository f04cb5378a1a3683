//! An embedded, durable Durable Task backend: Microsoft's `TaskHubSidecarService` served
//! from a SQLite file, so one process (the host) runs everything on a fresh machine.
//!
//! (Skeleton: the modules arrive with the engine.)
