//! Hot swap: plugin libraries dropped into, replaced in or removed from a running host's
//! plugins folder (`[plugins] watch = true`), with no restart and no lost or failed work.
//! The `orders` sample at 1.0.0 and 2.0.0 tells which code ran each order: `code` (the
//! code that finished it) and `started_on` (the code that started it, from history).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::thread;

use durabletask_e2e::{Client, Error, Fixture, PluginFile, Result, WAIT, poll_until};
use serde_json::{Value, json};

/// What a host logs when it puts a generation in service.
const V1_IN_SERVICE: &str = "loaded plugin orders 1.0.0: in service";
const V2_IN_SERVICE: &str = "loaded plugin orders 2.0.0: in service";

fn watched(plugins: &[&str]) -> Result<Fixture> {
    Fixture::start_with(plugins, |config| config.watch_plugins())
}

/// Starts order `id` without waiting, pausing `pause_ms` between its steps, at
/// `version` (none: no `--version`).
fn start_order(client: &Client, id: &str, pause_ms: u64, version: Option<&str>) -> Result<()> {
    let input = json!({ "id": id, "pause_ms": pause_ms }).to_string();
    let mut args = vec!["start", "process_order", "--id", id, "--input", &input];
    if let Some(version) = version {
        args.extend(["--version", version]);
    }
    client.run(&args)?.ok().map(drop)
}

/// Starts the orders `ids` from four threads (each start is a client process).
fn start_orders(
    client: &Client,
    ids: &[String],
    pause_ms: u64,
    version: impl Fn(usize) -> Option<&'static str> + Sync,
) -> Result<()> {
    let chunks: Vec<Vec<(usize, &String)>> = {
        let mut chunks = vec![Vec::new(); 4];
        for (index, id) in ids.iter().enumerate() {
            chunks[index % 4].push((index, id));
        }
        chunks
    };
    thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let version = &version;
                scope.spawn(move || -> Result<()> {
                    for (index, id) in chunk {
                        start_order(client, id, pause_ms, version(*index))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|handle| {
            handle
                .join()
                .map_err(|_| Error::new("a start thread panicked"))?
        })
    })
}

/// The states of every instance whose id starts with `prefix`, once `count` of them have
/// `status` (waits, bounded).
fn states_once(
    fixture: &Fixture,
    prefix: &str,
    status: &str,
    count: usize,
) -> Result<BTreeMap<String, Value>> {
    let mut last = 0;
    let states = poll_until(WAIT * 2, || {
        let listed = fixture.client.list(&[status], Some(prefix), Some(10_000))?;
        last = listed.len();
        Ok((listed.len() >= count).then_some(listed))
    })?
    .ok_or_else(|| {
        Error::new(format!(
            "only {last} of {count} '{prefix}' orders reached {status}\n{}",
            fixture.host.log_tail()
        ))
    })?;
    Ok(states
        .into_iter()
        .map(|state| {
            (
                state["instance_id"].as_str().unwrap_or_default().to_owned(),
                state,
            )
        })
        .collect())
}

/// Asserts a completed order ran start to end on `code`.
fn assert_ran_on(state: &Value, code: &str) {
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    assert_eq!(state["output"]["started_on"], code, "{state:#}");
    assert_eq!(state["output"]["code"], code, "{state:#}");
    let steps = state["output"]["steps"].as_array().map_or(0, Vec::len);
    assert_eq!(steps, if code == "1.0.0" { 2 } else { 3 }, "{state:#}");
}

#[test]
fn a_new_version_dropped_in_under_load_takes_new_orders_while_running_ones_finish_on_their_code()
-> Result<()> {
    let mut fixture = watched(&["orders_v1"])?;
    fixture.host.wait_for_log(V1_IN_SERVICE, WAIT)?;

    // 500 orders in flight on 1.0.0, paused between their steps: half started with a
    // version, half without (those the host keeps on the code they started on).
    const IN_FLIGHT: usize = 500;
    let before: Vec<String> = (0..IN_FLIGHT).map(|n| format!("before-{n:03}")).collect();
    start_orders(&fixture.client, &before, 15_000, |n| {
        (n % 2 == 0).then_some("1.0.0")
    })?;
    states_once(&fixture, "before-", "RUNNING", IN_FLIGHT)?;

    // Deploy 2.0.0 beside 1.0.0: written under a temporary name, then renamed.
    fixture.host.deploy(&PluginFile::built("orders_v2")?)?;
    fixture.host.wait_for_log(V2_IN_SERVICE, WAIT)?;

    // New orders start on 2.0.0, unless they ask for 1.0.0 by version.
    let after: Vec<String> = (0..40).map(|n| format!("after-{n:02}")).collect();
    start_orders(&fixture.client, &after, 0, |n| {
        (n % 4 == 0).then_some("1.0.0")
    })?;

    let finished = states_once(&fixture, "before-", "COMPLETED", IN_FLIGHT)?;
    for id in &before {
        assert_ran_on(&finished[id], "1.0.0");
    }
    let finished = states_once(&fixture, "after-", "COMPLETED", after.len())?;
    for (n, id) in after.iter().enumerate() {
        assert_ran_on(&finished[id], if n % 4 == 0 { "1.0.0" } else { "2.0.0" });
    }
    // None failed.
    assert!(fixture.client.list(&["FAILED"], None, None)?.is_empty());
    Ok(())
}

#[test]
fn a_library_overwritten_in_place_is_safe_and_keeps_its_old_build_for_running_orders() -> Result<()>
{
    let v1 = PluginFile::built("orders_v1")?.named("liborders.so");
    let mut fixture = Fixture::start_with(&[], |config| config.plugin(v1).watch_plugins())?;
    fixture.host.wait_for_log(V1_IN_SERVICE, WAIT)?;
    start_order(&fixture.client, "running", 5_000, None)?;
    states_once(&fixture, "running", "RUNNING", 1)?;

    // `cp new.so old.so`: the host never loaded the file itself (it loads private
    // copies), so overwriting it cannot crash it.
    fixture
        .host
        .overwrite_plugin("liborders.so", &PluginFile::built("orders_v2")?)?;
    fixture.host.wait_for_log(V2_IN_SERVICE, WAIT)?;
    start_order(&fixture.client, "new", 0, None)?;
    assert_ran_on(&fixture.client.wait("new", WAIT)?, "2.0.0");
    assert_ran_on(&fixture.client.wait("running", WAIT)?, "1.0.0");
    Ok(())
}

#[test]
fn a_broken_library_changes_nothing_a_duplicate_version_is_ignored_and_a_removed_one_retires()
-> Result<()> {
    let mut fixture = watched(&["orders_v1", "hello"])?;
    fixture.host.wait_for_log(V1_IN_SERVICE, WAIT)?;
    let plugins = fixture.host.plugins_dir();

    // Not a library: refused with one line naming it; everything else keeps serving.
    std::fs::write(plugins.join(".broken.tmp"), b"not an ELF file")?;
    std::fs::rename(plugins.join(".broken.tmp"), plugins.join("libbroken.so"))?;
    fixture
        .host
        .wait_for_log_line(&["refused plugin", "libbroken.so"], WAIT)?;
    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));

    // Another build of orders 1.0.0 (same code, one byte appended, so a different
    // file): ignored, with the reason.
    let mut copy = std::fs::read(PluginFile::built("orders_v1")?.source())?;
    copy.push(0);
    std::fs::write(plugins.join(".copy.tmp"), copy)?;
    std::fs::rename(plugins.join(".copy.tmp"), plugins.join("liborders_copy.so"))?;
    fixture.host.wait_for_log_line(
        &[
            "ignored plugin",
            "liborders_copy.so",
            "orders 1.0.0 is already in service",
        ],
        WAIT,
    )?;

    // Removed: retired, so its orchestrators are no longer served.
    fixture.host.remove_plugin("libhello.so")?;
    fixture
        .host
        .wait_for_log_line(&["retired plugin hello 1.0.0"], WAIT)?;
    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(
        state["failure_details"]["error_type"],
        "OrchestratorNotRegistered"
    );
    // The rest still serves.
    start_order(&fixture.client, "still-served", 0, None)?;
    assert_ran_on(&fixture.client.wait("still-served", WAIT)?, "1.0.0");
    Ok(())
}

#[test]
fn the_plugins_command_lists_what_a_host_would_load() -> Result<()> {
    let fixture =
        Fixture::start_with(&["orders_v1", "orders_v2", "incompatible"], |config| config)?;
    let output = std::process::Command::new(durabletask_e2e::paths::host_binary()?)
        .args(["plugins", "--json", "--config"])
        .arg(fixture.host.config_path())
        .output()?;
    // A library would be refused: exit 1.
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let plugins: Vec<(&str, &str)> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["version"].as_str().unwrap()))
        .collect();
    assert_eq!(
        plugins,
        [("orders", "1.0.0"), ("orders", "2.0.0")],
        "{listed:#}"
    );
    assert_eq!(
        listed["plugins"][1]["activities"],
        json!(["charge_payment", "reserve_stock", "send_confirmation"])
    );
    let refused = &listed["refused"][0];
    assert!(
        refused["file"]
            .as_str()
            .unwrap()
            .ends_with("libincompatible.so"),
        "{listed:#}"
    );
    assert!(
        refused["reason"].as_str().unwrap().contains("incompatible"),
        "{listed:#}"
    );
    Ok(())
}

#[test]
fn work_item_filters_follow_the_plugins_in_service() -> Result<()> {
    // With filters on, the backend only hands the host work its plugins register: an
    // order waits until a plugin serving it is dropped in and the filters are renewed.
    let mut fixture = Fixture::start_with(&["hello"], |config| {
        config.watch_plugins().work_item_filters(true)
    })?;
    start_order(&fixture.client, "waiting", 0, None)?;
    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(fixture.client.status("waiting")?["status"], "PENDING");

    fixture.host.deploy(&PluginFile::built("orders_v1")?)?;
    fixture
        .host
        .wait_for_log_line(&["work-item filters on", "process_order"], WAIT)?;
    assert_ran_on(&fixture.client.wait("waiting", WAIT)?, "1.0.0");
    Ok(())
}

#[test]
fn a_library_still_being_copied_is_never_loaded_half_way_and_is_loaded_once_complete() -> Result<()>
{
    let mut fixture = watched(&["hello"])?;
    let plugins = fixture.host.plugins_dir();
    let library = std::fs::read(PluginFile::built("orders_v1")?.source())?;
    let target = plugins.join("liborders_v1.so");

    // A copy under the final name that stalls after 64 KiB (a slow scp, curl -o): the
    // host must neither load it nor crash on it (dlopen of a cut library faults).
    std::fs::write(&target, &library[..64 * 1024])?;
    fixture
        .host
        .wait_for_log_line(&["refused plugin", "liborders_v1.so", "incomplete"], WAIT)?;
    assert!(fixture.host.is_running()?, "{}", fixture.host.log_tail());

    // The copy finishes: the library is read again and put in service.
    std::fs::write(&target, &library)?;
    fixture.host.wait_for_log(V1_IN_SERVICE, WAIT)?;
    start_order(&fixture.client, "after-copy", 0, None)?;
    assert_ran_on(&fixture.client.wait("after-copy", WAIT)?, "1.0.0");
    Ok(())
}

#[test]
fn the_plugins_command_refuses_a_library_cut_short_instead_of_crashing() -> Result<()> {
    let fixture = Fixture::start_with(&["hello"], |config| config)?;
    let library = std::fs::read(PluginFile::built("orders_v1")?.source())?;
    for cut in [4 * 1024, library.len() / 2, library.len() - 100] {
        std::fs::write(
            fixture.host.plugins_dir().join("libcut.so"),
            &library[..cut],
        )?;
        let output = std::process::Command::new(durabletask_e2e::paths::host_binary()?)
            .args(["plugins", "--json", "--config"])
            .arg(fixture.host.config_path())
            .output()?;
        // Exit 1 (a library refused), not a signal.
        assert_eq!(output.status.code(), Some(1), "cut at {cut}: {output:?}");
        let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
        let reason = listed["refused"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("incomplete"), "cut at {cut}: {listed:#}");
    }
    Ok(())
}
