//! A task hub's state in PostgreSQL, shared by several hosts: the schema and its
//! migrations, the store the engine writes through, and the lease that decides which
//! host runs the engine (see `crate::cluster` for how the hosts divide the work).

pub mod connect;
pub mod lease;
pub mod migrations;
pub mod store;

pub use connect::{ConnectError, Connector};
pub use migrations::MigrationError;

/// A PostgreSQL error with its causes (tokio-postgres's own message stops at "error
/// performing TLS handshake"; the cause says which certificate was refused and why).
pub fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Connects and brings the schema up to date (`durabletask-host migrate`, and each host
/// as it starts); answers the versions applied.
pub async fn migrate_database(connector: &Connector) -> Result<Vec<i32>, MigrationError> {
    let (mut client, connection) = connector.connect().await?;
    let applied = migrations::migrate(&mut client).await;
    // The connection's task ends once the client is gone.
    drop(client);
    let _ = connection.await;
    applied
}
