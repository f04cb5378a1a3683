//! The task hub's state in PostgreSQL, shared by several hosts (issue 15, in progress:
//! so far the schema and its migrations; the engine does not use it yet).

pub mod migrations;
