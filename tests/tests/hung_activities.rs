//! Activities that never finish: they hold only their own plugin's permits, and (with an
//! activity timeout) they fail with `ActivityTimeout` and give their permit back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{
    Backend, Client, Context, Error, Fixture, Host, HostConfig, PluginFile, Result, WAIT,
    assert_hello_cities_completed, instance_id, poll_until,
};
use serde_json::{Value, json};

/// Waits until the host has logged `text` at least `count` times; returns how often.
fn wait_for_log_count(host: &mut Host, text: &str, count: usize) -> Result<usize> {
    let seen = poll_until(WAIT, || {
        if !host.is_running()? {
            return Err(Error::new(format!("the host exited\n{}", host.log_tail())));
        }
        let seen = host.logs().matches(text).count();
        Ok((seen >= count).then_some(seen))
    })?;
    seen.ok_or_else(|| {
        Error::new(format!(
            "the host did not log {text:?} {count} times within {WAIT:?}\n{}",
            host.log_tail()
        ))
    })
}

/// Starts `hung` activities of the faulty plugin that never finish, on a host with four
/// activity permits of which one plugin may hold two, and checks that the hello plugin's
/// activities still run.
fn a_hung_plugin_starves_only_itself(
    config: HostConfig,
    client: impl FnOnce(&mut Host) -> Result<Client>,
    hung: u32,
) -> Result<()> {
    let config = config
        .plugin(PluginFile::built("faulty")?)
        .plugin(PluginFile::built("hello")?)
        .max_concurrent_activities(4)
        .max_concurrent_activities_per_plugin(2);
    let mut host = Host::start(&config)?;
    let client = client(&mut host)?;
    let fan_out = client.start("fan_out_hang", Some(&json!(hung)))?;
    wait_for_log_count(&mut host, "hang_forever started", 2)?;
    host.wait_for_log(
        "plugin faulty 1.0.0 has all its activity permits taken",
        WAIT,
    )?;

    let state = client
        .start_and_wait("hello_cities", None, WAIT)
        .with_context(|| host.log_tail())?;
    assert_hello_cities_completed(&state, &host);

    // The faulty plugin never ran more than its two.
    assert_eq!(
        host.logs().matches("hang_forever started").count(),
        2,
        "{}",
        host.log_tail()
    );
    let state = client.status(&fan_out)?;
    assert_eq!(state["status"], "RUNNING", "{state:#}\n{}", host.log_tail());
    Ok(())
}

#[test]
fn a_hung_plugin_with_all_its_permits_taken_does_not_stop_another_plugins_activities() -> Result<()>
{
    // The reference backend sends every activity at once, ignoring the host's limit of
    // four: five hung ones would take every host permit; two run, three wait.
    let backend = Backend::start()?;
    a_hung_plugin_starves_only_itself(
        HostConfig::new(backend.endpoint()),
        |_| Client::new(backend.endpoint()),
        5,
    )
}

#[test]
fn a_hung_plugin_does_not_keep_the_embedded_backends_activities_from_other_plugins() -> Result<()> {
    // The embedded backend hands out at most four activities at a time, and those that
    // wait count: the host hands back those that wait on the stalled plugin, so that the
    // hello plugin's get their turn however many of the faulty plugin's are queued.
    a_hung_plugin_starves_only_itself(
        HostConfig::embedded(),
        |host| Client::new(host.embedded_endpoint()?),
        8,
    )
}

#[test]
fn activities_hold_their_own_plugins_permits_only_while_they_run() -> Result<()> {
    // Each plugin may run one activity at a time: a plugin's activities in sequence still
    // go through, one after the other.
    let fixture = Fixture::start_with(&["faulty", "hello"], |config| {
        config
            .max_concurrent_activities(2)
            .max_concurrent_activities_per_plugin(1)
    })?;
    let state = fixture.run("fan_out_sleep", Some(json!({"n": 4, "ms": 10})))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(4));
    let state = fixture.run("hello_cities", None)?;
    assert_hello_cities_completed(&state, &fixture.host);
    Ok(())
}

/// The failure details of the activity whose failure failed the orchestration.
fn inner_failure(state: &Value) -> &Value {
    &state["failure_details"]["inner_failure"]
}

#[test]
fn an_activity_past_the_timeout_fails_with_activity_timeout_and_gives_its_permit_back() -> Result<()>
{
    // One activity permit in all: the activities after the hung one run only if the
    // timeout gave it back.
    let fixture = Fixture::start_with(&["faulty"], |config| {
        config.max_concurrent_activities(1).activity_timeout("1s")
    })?;

    let state = fixture.run("call_hanging_activity", None)?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(
        state["failure_details"]["error_type"], "TaskFailed",
        "{state:#}"
    );
    let instance_id = instance_id(&state)?;
    let inner = inner_failure(&state);
    assert_eq!(inner["error_type"], "ActivityTimeout", "{state:#}");
    assert_eq!(
        inner["message"],
        format!(
            "activity 'hang_forever' (instance '{instance_id}', task 1) did not complete within its timeout of 1s"
        ),
        "{state:#}"
    );
    assert!(
        fixture
            .host
            .log_contains("activity timed out: failing it with ActivityTimeout"),
        "{}",
        fixture.host.log_tail()
    );

    let state = fixture.run("slow_sequence", Some(json!(2)))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(2));
    Ok(())
}

#[test]
fn a_timed_out_activity_is_retried_by_its_retry_policy() -> Result<()> {
    let mut fixture = Fixture::start_with(&["faulty"], |config| config.activity_timeout("500ms"))?;

    let state = fixture.run("call_hanging_activity_with_retries", Some(json!(2)))?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(
        inner_failure(&state)["error_type"],
        "ActivityTimeout",
        "{state:#}"
    );
    // Two attempts, each timed out.
    assert_eq!(
        wait_for_log_count(&mut fixture.host, "hang_forever started", 2)?,
        2,
        "{}",
        fixture.host.log_tail()
    );
    Ok(())
}

#[test]
fn the_late_result_of_a_timed_out_activity_is_ignored() -> Result<()> {
    // slow_sequence's activity sleeps 300 ms, then returns.
    let mut fixture = Fixture::start_with(&["faulty"], |config| {
        config
            .activity_timeout("100ms")
            .log_level("info,durabletask_host=debug")
    })?;

    let state = fixture.run("slow_sequence", Some(json!(1)))?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(
        inner_failure(&state)["error_type"],
        "ActivityTimeout",
        "{state:#}"
    );
    fixture.host.wait_for_log("sleep_ms finished", WAIT)?;
    fixture
        .host
        .wait_for_log("completed an activity nobody is waiting for any more", WAIT)?;

    let state = fixture.client.status(&instance_id(&state)?)?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert!(fixture.host.is_running()?, "{}", fixture.host.log_tail());
    Ok(())
}

#[test]
fn a_long_running_activity_is_reported_while_it_runs() -> Result<()> {
    let mut fixture = Fixture::start_with(&["faulty"], |config| {
        config.long_activity_threshold("300ms")
    })?;
    let id = fixture.client.start("call_hanging_activity", None)?;

    let first = fixture
        .host
        .wait_for_log_line(&["activity still running after", "hang_forever", &id], WAIT)?;
    for field in [
        "plugin=faulty 1.0.0",
        "task_id=1",
        "next report after 600ms",
    ] {
        assert!(first.contains(field), "{field:?} missing from: {first}");
    }
    // Reported again once its running time has doubled.
    fixture.host.wait_for_log_line(
        &["activity still running after", "next report after 1.2s"],
        WAIT,
    )?;
    let state = fixture.client.status(&id)?;
    assert_eq!(state["status"], "RUNNING", "{}", fixture.explain(&state));
    Ok(())
}

#[test]
fn an_activity_with_a_timeout_of_its_own_fails_past_it_on_the_embedded_backend() -> Result<()> {
    // The host has no activity timeout; the orchestration gives the activity 500 ms
    // (ActivityOptions::timeout, carried in the scheduled task's tags, which the embedded
    // backend passes on to the work item).
    let mut host = Host::start(&HostConfig::embedded().plugin(PluginFile::built("faulty")?))?;
    let client = Client::new(host.embedded_endpoint()?)?;

    let state = client
        .start_and_wait(
            "call_hanging_activity_with_timeout",
            Some(&json!(500)),
            WAIT,
        )
        .with_context(|| host.log_tail())?;
    assert_eq!(state["status"], "FAILED", "{state:#}\n{}", host.log_tail());
    let inner = inner_failure(&state);
    assert_eq!(inner["error_type"], "ActivityTimeout", "{state:#}");
    assert_eq!(
        inner["message"],
        format!(
            "activity 'hang_forever' (instance '{}', task 1) did not complete within its timeout of 500ms",
            instance_id(&state)?
        ),
        "{state:#}"
    );
    Ok(())
}
