//! PostgreSQL for the end-to-end tests: Debian's server on the test cluster
//! `scripts/lib/postgres.sh` sets up (and starts when it is down), a fresh database per
//! host configuration. `DURABLETASK_TEST_POSTGRES` names the cluster when the test script
//! already set it up; without it the harness runs the script itself (so a plain
//! `cargo test` works), and fails loudly if that fails: nothing is skipped.

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::paths;

/// The cluster's URL (its `postgres` database; the role may create databases).
pub fn cluster_url() -> Result<String> {
    static URL: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    URL.get_or_init(set_up).clone().map_err(Error::new)
}

fn set_up() -> std::result::Result<String, String> {
    if let Ok(url) = std::env::var("DURABLETASK_TEST_POSTGRES") {
        return Ok(url);
    }
    let output = Command::new("bash")
        .current_dir(paths::workspace_root())
        .args([
            "-c",
            "set -euo pipefail; source scripts/lib/common.sh; source scripts/lib/postgres.sh; ensure_postgres",
        ])
        .output()
        .map_err(|error| format!("cannot run scripts/lib/postgres.sh: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cannot start the test PostgreSQL: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `sql` on the database at `url` with psql; what it prints, unaligned.
pub fn psql(url: &str, sql: &str) -> Result<String> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .map_err(|error| Error::new(format!("cannot run psql: {error}")))?;
    if !output.status.success() {
        return Err(Error::new(format!(
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A new, empty database for one test, and its URL. Databases of test processes that
/// are gone (named after their process id) are dropped first.
pub fn fresh_database() -> Result<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SWEPT: OnceLock<()> = OnceLock::new();
    let url = cluster_url()?;
    if SWEPT.get().is_none() {
        let names = psql(
            &url,
            "SELECT datname FROM pg_database WHERE datname LIKE 'dt\\_e2e\\_%'",
        )?;
        for name in names.lines() {
            let pid = name.split('_').nth(2).unwrap_or_default();
            if !std::path::Path::new("/proc").join(pid).exists() {
                // Best effort: PostgreSQL's own workers (autovacuum) may be on it, and
                // this role may not end those; the next sweep tries again.
                let _ = psql(
                    &url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
            }
        }
        let _ = SWEPT.set(());
    }
    let name = format!(
        "dt_e2e_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    psql(&url, &format!("CREATE DATABASE {name}"))?;
    url.rsplit_once('/')
        .map(|(base, _)| format!("{base}/{name}"))
        .ok_or_else(|| Error::new(format!("the test cluster's URL {url} names no database")))
}
