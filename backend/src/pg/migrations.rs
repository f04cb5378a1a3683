//! The PostgreSQL schema's migrations: versioned, checksummed, applied in order in one
//! transaction, behind an advisory lock so that hosts starting together (or a host and
//! `durabletask-host migrate`) apply each exactly once.
//!
//! A database whose schema is newer than this build is refused: a host must not write
//! into a schema it does not know. A migration already applied whose text changed
//! (checksum) is refused too: the database and the build disagree about its history.

use sha2::{Digest as _, Sha256};
use tokio_postgres::Client;

/// The migrations of this build, in order: (version, name, SQL).
const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "schema", include_str!("migrations/0001_schema.sql"))];

/// Held for the migrating transaction: any other migrator waits for it. An arbitrary
/// constant of this project ("dt" + "migr" in ASCII).
const ADVISORY_LOCK: i64 = 0x6474_6d69_6772;

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the database's durabletask schema is at version {found}, newer than this build knows ({known}): upgrade the host, or use another database"
    )]
    Newer { found: i32, known: i32 },
    #[error(
        "migration {version} ({name}) was applied with other contents than this build has: the database and the build disagree about the schema's history"
    )]
    Changed { version: i32, name: String },
    #[error("cannot migrate the durabletask schema: {}", super::describe(.0))]
    Database(#[from] tokio_postgres::Error),
}

/// Brings the `durabletask` schema of the connected database up to this build's version;
/// answers the versions it applied (none when it was up to date).
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, MigrationError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&ADVISORY_LOCK])
        .await?;
    transaction
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS durabletask;
             CREATE TABLE IF NOT EXISTS durabletask.dt_schema_migrations (
                 version integer PRIMARY KEY,
                 name text NOT NULL,
                 checksum bytea NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await?;
    let applied: Vec<(i32, Vec<u8>)> = transaction
        .query(
            "SELECT version, checksum FROM durabletask.dt_schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if let Some(&(found, _)) = applied.iter().find(|(version, _)| *version > known) {
        return Err(MigrationError::Newer { found, known });
    }
    let mut newly = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let checksum = Sha256::digest(sql.as_bytes()).to_vec();
        match applied.iter().find(|(applied, _)| applied == version) {
            Some((_, recorded)) if *recorded == checksum => continue,
            Some(_) => {
                return Err(MigrationError::Changed {
                    version: *version,
                    name: (*name).to_owned(),
                });
            }
            None => {}
        }
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO durabletask.dt_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                &[version, name, &checksum],
            )
            .await?;
        newly.push(*version);
    }
    transaction.commit().await?;
    Ok(newly)
}

/// The newest version applied to the connected database's schema, read without changing
/// anything; `None` when it has no durabletask schema yet.
pub async fn applied_version(client: &Client) -> Result<Option<i32>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('durabletask.dt_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    client
        .query_one(
            "SELECT max(version) FROM durabletask.dt_schema_migrations",
            &[],
        )
        .await
        .map(|row| row.get(0))
}

/// The newest schema version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}
