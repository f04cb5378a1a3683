//! The sample plugins' orchestrations run to completion with the results a user expects.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Fixture, Result, WAIT, instance_id};
use serde_json::json;

#[test]
fn hello_cities_greets_three_cities_in_order() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;

    let state = fixture.run("hello_cities", None)?;

    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(
        state["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
    assert_eq!(state["name"], "hello_cities");
    assert!(state["failure_details"].is_null(), "{state:#}");
    Ok(())
}

#[test]
fn plugin_log_events_appear_in_the_host_log_tagged_with_the_plugin() -> Result<()> {
    let mut fixture = Fixture::start(&["hello"])?;

    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));

    // `say_hello` logs "saying hello" with the city; the host tags the event with the
    // plugin's name and version.
    let line = fixture
        .host
        .wait_for_log_line(&["saying hello", "London"], WAIT)?;
    assert!(
        line.contains("hello") && line.contains("1.0.0"),
        "the plugin's log line is not tagged with its name and version: {line}"
    );
    Ok(())
}

#[test]
fn fan_out_fan_in_sums_the_squares() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;

    let state = fixture.run("fan_out_fan_in", Some(json!(10)))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(385));

    // No work at all is a valid fan-out: when_all of nothing completes at once.
    let state = fixture.run("fan_out_fan_in", Some(json!(0)))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(0));
    Ok(())
}

#[test]
fn bench_workload_matches_the_benchmark_contract() -> Result<()> {
    // Two plugins in one host: each orchestration goes to the plugin that has it.
    let fixture = Fixture::start(&["hello", "bench"])?;

    let state = fixture.run("bench_seq_fan", Some(json!({"x": 1, "k": 5, "f": 10})))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    // seq = x + k; fan_sum = f*(x+k) + f*(f+1)/2
    assert_eq!(state["output"], json!({"seq": 6, "fan_sum": 115}));

    let state = fixture.run("bench_empty", Some(json!(42)))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(42));

    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    Ok(())
}

#[test]
fn many_orchestrations_in_flight_at_once_all_complete() -> Result<()> {
    const INSTANCES: i64 = 20;
    let fixture = Fixture::start(&["bench"])?;

    // Schedule them all before waiting for any, so they really overlap in the host.
    let ids = (0..INSTANCES)
        .map(|x| {
            fixture
                .client
                .start("bench_seq_fan", Some(&json!({"x": x, "k": 3, "f": 4})))
        })
        .collect::<Result<Vec<_>>>()?;

    for (x, id) in (0..INSTANCES).zip(&ids) {
        let state = fixture.client.wait(id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
        assert_eq!(instance_id(&state)?, *id);
        let seq = x + 3;
        assert_eq!(
            state["output"],
            json!({"seq": seq, "fan_sum": 4 * seq + 10})
        );
    }
    Ok(())
}
