//! PostgreSQL for the backend's tests: the test cluster `scripts/lib/postgres.sh` sets up
//! (and starts when it is down; `DURABLETASK_TEST_POSTGRES` names it when the test script
//! already did), a fresh database per test. Fails loudly if PostgreSQL cannot be had:
//! nothing is skipped.

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Set to `postgres` to run the backend's tests on PostgreSQL (scripts/test does both).
pub const STORE_ENV: &str = "DURABLETASK_TEST_STORE";

pub fn selected() -> bool {
    std::env::var(STORE_ENV).is_ok_and(|value| value == "postgres")
}

/// The test cluster's URL (its `postgres` database; the role may create databases).
/// Found (or the cluster set up) once per test binary.
pub fn cluster_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DURABLETASK_TEST_POSTGRES") {
            return url;
        }
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let output = Command::new("bash")
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
    })
    .clone()
}

/// The CA that signed the test cluster's server certificate (scripts/lib/postgres.sh
/// makes it when it sets the cluster up).
pub fn ca_file() -> std::path::PathBuf {
    cluster_url();
    std::path::PathBuf::from("/var/lib/postgresql/durabletask-test-tls/ca.crt")
}

/// `url` with TLS asked for, by the name the test certificate carries (localhost).
pub fn with_tls(url: &str) -> String {
    format!(
        "{}?sslmode=require",
        url.replacen("@127.0.0.1:", "@localhost:", 1)
    )
}

pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A new, empty database named after `label` and this process, and its URL. Databases
/// of test processes that are gone are dropped first (once per process).
pub fn fresh_database(label: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SWEPT: OnceLock<()> = OnceLock::new();
    let url = cluster_url();
    SWEPT.get_or_init(|| {
        let names = psql(
            &url,
            "SELECT datname FROM pg_database WHERE datname LIKE 'dt\\_test\\_%'",
        );
        for name in names.lines() {
            let pid = name.rsplit('_').nth(1).unwrap_or_default();
            if !std::path::Path::new("/proc").join(pid).exists() {
                // Best effort: PostgreSQL's own workers (autovacuum) may be on it, and
                // this role may not end those; the next sweep tries again.
                let _ = Command::new("psql")
                    .args([
                        url.as_str(),
                        "-qAtc",
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ])
                    .output();
            }
        }
    });
    let name = format!(
        "dt_test_{label}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    psql(&url, &format!("CREATE DATABASE {name}"));
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}
