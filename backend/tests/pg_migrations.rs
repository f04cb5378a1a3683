//! The PostgreSQL schema's migrations against a real PostgreSQL (Debian's, on the test
//! cluster `scripts/lib/postgres.sh` starts; `DURABLETASK_TEST_POSTGRES` names it, and
//! without it the test runs the script itself). Each test gets a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::postgres;

use durabletask_backend::pg::migrations::{self, MigrationError};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[tokio::test]
async fn a_fresh_database_is_migrated_once_and_a_rerun_changes_nothing() {
    let url = postgres::fresh_database("rerun");
    let mut client = connect(&url).await;
    assert_eq!(migrations::migrate(&mut client).await.unwrap(), [1]);
    assert!(migrations::migrate(&mut client).await.unwrap().is_empty());
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'durabletask'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // dt_schema_migrations, dt_meta, dt_records, dt_history, dt_leader.
    assert_eq!(tables, 5);
}

#[tokio::test]
async fn hosts_starting_together_apply_each_migration_exactly_once() {
    let url = postgres::fresh_database("concurrent");
    let migrators: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut client = connect(&url).await;
                migrations::migrate(&mut client).await.unwrap()
            })
        })
        .collect();
    let mut applied = Vec::new();
    for migrator in migrators {
        applied.extend(migrator.await.unwrap());
    }
    assert_eq!(
        applied,
        [1],
        "each migration applied by exactly one migrator"
    );
}

#[tokio::test]
async fn a_schema_newer_than_the_build_or_rewritten_is_refused() {
    let url = postgres::fresh_database("newer");
    let mut client = connect(&url).await;
    migrations::migrate(&mut client).await.unwrap();
    client
        .execute(
            "INSERT INTO durabletask.dt_schema_migrations (version, name, checksum) VALUES (99, 'future', '\\x00')",
            &[],
        )
        .await
        .unwrap();
    let error = migrations::migrate(&mut client).await.unwrap_err();
    assert!(
        matches!(error, MigrationError::Newer { found: 99, known } if known == migrations::latest_version()),
        "{error}"
    );

    client
        .batch_execute(
            "DELETE FROM durabletask.dt_schema_migrations WHERE version = 99;
             UPDATE durabletask.dt_schema_migrations SET checksum = '\\x01' WHERE version = 1;",
        )
        .await
        .unwrap();
    let error = migrations::migrate(&mut client).await.unwrap_err();
    assert!(
        matches!(error, MigrationError::Changed { version: 1, .. }),
        "{error}"
    );
}
