//! A task hub's state in PostgreSQL, shared by several hosts: the schema and its
//! migrations, the store the engine writes through, and the lease that decides which
//! host runs the engine (see `crate::cluster` for how the hosts divide the work).

pub mod lease;
pub mod migrations;
pub mod store;

pub use migrations::MigrationError;

/// Connects to `url` and brings its schema up to date (`durabletask-host migrate`);
/// answers the versions applied.
pub async fn migrate_database(url: &str) -> Result<Vec<i32>, MigrationError> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    // The connection's I/O runs beside the calls; it ends when the client is dropped.
    let connection = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "the migration's PostgreSQL connection ended");
        }
    });
    let applied = migrations::migrate(&mut client).await;
    drop(client);
    let _ = connection.await;
    applied
}
