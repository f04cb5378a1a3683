//! The web dashboard as its users see it: a real host (the sample plugins hello,
//! entities and orders, on its embedded backend, or on Microsoft's reference backend)
//! and Debian's Chromium driven by Playwright
//! (`tests/browser/dashboard.test.mjs`, run with Node's test runner; `scripts/test`
//! installs Chromium and `npm ci`s playwright-core). This file seeds the task hub the
//! browser tests read (500 finished instances to filter and page through, an account)
//! and checks from outside the browser what a browser cannot show: who the API answers.
//!
//! `DASHBOARD_SCREENSHOTS=<folder>` saves the screenshots the README shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use durabletask_e2e::{
    Backend, Client, Host, HostConfig, PluginFile, Result, WAIT, http_get, poll_until,
};
use serde_json::{Value, json};

/// The instances the paging test walks through: `bulk-0000` ... `bulk-0499`.
const BULK: usize = 500;

fn browser_tests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// A host with the sample plugins and its dashboard on the admin listener.
fn sample_host(extra: HostConfig) -> Result<Host> {
    Host::start(
        &extra
            .plugin(PluginFile::built("hello")?)
            .plugin(PluginFile::built("entities")?)
            .plugin(PluginFile::built("orders_v1")?),
    )
}

/// Starts `bulk-0000` ... from four threads and waits until all have completed.
fn seed_bulk(client: &Client) -> Result<()> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                scope.spawn(move || -> Result<()> {
                    for index in (worker..BULK).step_by(4) {
                        client.start_with_id(
                            "fan_out_fan_in",
                            &format!("bulk-{index:04}"),
                            Some(&json!(3)),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().expect("a seeding thread panicked"))
    })?;
    let done = poll_until(WAIT * 4, || {
        let completed = client
            .list(&["COMPLETED"], Some("bulk-"), Some(2 * BULK))?
            .len();
        Ok((completed == BULK).then_some(()))
    })?;
    assert!(
        done.is_some(),
        "the {BULK} seeded instances did not all complete"
    );
    Ok(())
}

#[test]
fn the_dashboard_in_a_real_browser() -> Result<()> {
    browser_suite(HostConfig::embedded(), None)
}

/// The same pages against Microsoft's reference backend: the dashboard is a client of
/// whatever backend the host uses (its counts then come from listings, not the engine).
#[test]
fn the_dashboard_in_a_real_browser_on_a_remote_backend() -> Result<()> {
    let backend = Backend::start()?;
    browser_suite(
        HostConfig::new(backend.endpoint()),
        Some(backend.endpoint()),
    )
}

/// Seeds a host of `config` (through `remote`, or its embedded backend) and runs
/// `tests/browser/dashboard.test.mjs` against its dashboard.
fn browser_suite(config: HostConfig, remote: Option<String>) -> Result<()> {
    let mut host = sample_host(config)?;
    let admin = host.admin_url()?;
    let embedded = remote.is_none();
    let endpoint = match remote {
        Some(endpoint) => endpoint,
        None => host.embedded_endpoint()?,
    };
    let client = Client::new(endpoint)?;
    seed_bulk(&client)?;
    // Bob's account is made by the browser test's transfer (an account opens with money).
    let opened = client.start_and_wait(
        "open_accounts",
        Some(&json!([{"key": "alice", "amount": 100}])),
        WAIT,
    )?;
    assert_eq!(opened["status"], "COMPLETED", "{opened}");
    // The README's screenshots are of the embedded backend's dashboard.
    run_browser_tests("dashboard.test.mjs", &admin, &[], embedded)
}

#[test]
fn with_a_backend_token_the_api_needs_it_and_the_page_asks_for_it() -> Result<()> {
    let secrets = tempfile::tempdir()?;
    let tokens = secrets.path().join("embedded.tokens");
    std::fs::write(&tokens, "dashboard-secret\n")?;
    let mut host = Host::start_with_config_text(
        &format!(
            "[embedded]\nlisten = \"127.0.0.1:0\"\ndatabase = \"state.sqlite\"\ntoken_file = {:?}\n\n[plugins]\ndir = \"plugins\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            tokens.display().to_string()
        ),
        &[PluginFile::built("hello")?, PluginFile::built("orders_v1")?],
    )?;
    let admin = host.admin_url()?;

    // The page holds no data and loads without a token; the API refuses and says why.
    let page = http_get(&format!("{admin}/instances?status=RUNNING"), None)?;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/app.js"), "{}", page.body);
    let refused = http_get(&format!("{admin}/api/overview"), None)?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let refused: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(refused["token_required"], true);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("[embedded] token_file"),
        "{refused}"
    );
    let wrong = http_get(&format!("{admin}/api/overview"), Some("guess"))?;
    assert_eq!(wrong.status, 401);

    // With the backend's token it answers, calling the backend with that same token.
    let overview = http_get(&format!("{admin}/api/overview"), Some("dashboard-secret"))?;
    assert_eq!(overview.status, 200, "{}", overview.body);
    let overview: Value = serde_json::from_str(&overview.body).unwrap();
    assert_eq!(overview["counts_exact"], true);
    assert!(
        overview["orchestrators"]
            .as_array()
            .unwrap()
            .contains(&json!("approve_order")),
        "{overview}"
    );

    // In the browser: the page asks for the token, refuses a wrong one, takes the right
    // one (typed, or from a `#token=` link) and then works.
    run_browser_tests(
        "token.test.mjs",
        &admin,
        &[("DASHBOARD_TOKEN", "dashboard-secret")],
        false,
    )
}

/// Runs `tests/browser/<file>` with Node's test runner against the dashboard at `url`
/// (saving screenshots to `DASHBOARD_SCREENSHOTS` if set and `screenshots`); fails with
/// the runner's report unless every test passed.
fn run_browser_tests(file: &str, url: &str, env: &[(&str, &str)], screenshots: bool) -> Result<()> {
    let kit = browser_tests().join("node_modules").join("playwright-core");
    assert!(
        kit.exists(),
        "{} is missing: scripts/test installs it (npm ci in tests/browser)",
        kit.display()
    );
    let mut node = Command::new("node");
    node.arg("--test")
        .arg("--test-reporter=spec")
        .arg(browser_tests().join(file))
        .env("DASHBOARD_URL", url)
        .envs(env.iter().copied());
    if let Some(folder) = std::env::var_os("DASHBOARD_SCREENSHOTS").filter(|_| screenshots) {
        node.env("SCREENSHOTS_DIR", folder);
    }
    let run = node.output()?;
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{report}");
    assert!(
        run.status.success(),
        "the browser tests of {file} failed:\n{report}"
    );
    // They ran: Node's summary counts passes, and no failure.
    assert!(report.contains("fail 0"), "{report}");
    assert!(!report.contains("pass 0"), "{report}");
    Ok(())
}

#[test]
fn on_a_listener_other_machines_reach_it_needs_a_dashboard_token() -> Result<()> {
    let mut host = Host::start_with_config_text(
        "[embedded]\nlisten = \"127.0.0.1:0\"\ndatabase = \"state.sqlite\"\n\n[plugins]\ndir = \"plugins\"\n\n[admin]\nlisten = \"0.0.0.0:0\"\ninsecure = true\n",
        &[PluginFile::built("hello")?],
    )?;
    let port = host.admin_url()?.rsplit(':').next().unwrap().to_owned();
    let refused = http_get(&format!("http://127.0.0.1:{port}/api/overview"), None)?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("dashboard_token_file"),
        "{}",
        refused.body
    );
    // Metrics and probes are as they were.
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{port}/livez"), None)?.status,
        200
    );
    Ok(())
}

#[test]
fn the_dashboard_can_be_turned_off() -> Result<()> {
    let mut host = sample_host(HostConfig::embedded().admin_setting("dashboard = false"))?;
    let admin = host.admin_url()?;
    assert_eq!(http_get(&format!("{admin}/"), None)?.status, 404);
    assert_eq!(
        http_get(&format!("{admin}/api/overview"), None)?.status,
        404
    );
    // The rest of the listener is unchanged.
    assert_eq!(http_get(&format!("{admin}/livez"), None)?.status, 200);
    Ok(())
}
