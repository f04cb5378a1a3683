//! The PostgreSQL schema's migrations against a real PostgreSQL (Debian's, on the test
//! cluster `scripts/lib/postgres.sh` starts; `DURABLETASK_TEST_POSTGRES` names it, and
//! without it the test runs the script itself). Each test gets a database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_backend::pg::migrations::{self, MigrationError};
use tokio_postgres::{Client, NoTls};

/// The test cluster's URL (the role may create databases). Found (or the cluster set up)
/// once per test binary: tests run in parallel, and two set-ups at once would race.
fn cluster_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(set_up_cluster).clone()
}

fn set_up_cluster() -> String {
    if let Ok(url) = std::env::var("DURABLETASK_TEST_POSTGRES") {
        return url;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = std::process::Command::new("bash")
        .current_dir(root)
        .args([
            "-c",
            "set -euo pipefail; source scripts/lib/common.sh; source scripts/lib/postgres.sh; ensure_postgres",
        ])
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "cannot start the test PostgreSQL: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A fresh database for one test, and its URL.
async fn fresh_database(name: &str) -> String {
    let url = cluster_url();
    let admin = connect(&url).await;
    // Databases of test runs that are gone (named after their process) are dropped.
    for row in admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'dt\\_test\\_%'",
            &[],
        )
        .await
        .unwrap()
    {
        let old: String = row.get(0);
        let pid = old.rsplit('_').next().unwrap_or_default();
        if !std::path::Path::new("/proc").join(pid).exists() {
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)"))
                .await
                .unwrap();
        }
    }
    let database = format!("dt_test_{name}_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    url.rsplit_once('/')
        .map(|(base, _)| format!("{base}/{database}"))
        .unwrap()
}

#[tokio::test]
async fn a_fresh_database_is_migrated_once_and_a_rerun_changes_nothing() {
    let url = fresh_database("rerun").await;
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
    // dt_schema_migrations, dt_meta, dt_hosts, dt_instances, dt_history, dt_activities,
    // dt_timers, dt_entities, dt_lock_requests.
    assert_eq!(tables, 9);
}

#[tokio::test]
async fn hosts_starting_together_apply_each_migration_exactly_once() {
    let url = fresh_database("concurrent").await;
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
    let url = fresh_database("newer").await;
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
