//! The client's inspection and recovery verbs against the reference backend: `history`,
//! `restart`, `list` and `rewind`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use durabletask_e2e::{Fixture, Result, WAIT, exit_codes};
use serde_json::{Value, json};

const CITIES: [&str; 3] = ["Tokyo", "Seattle", "London"];

fn greetings() -> Value {
    json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["kind"] == kind)
        .collect()
}

#[test]
fn history_of_a_completed_orchestration_shows_every_step() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;
    fixture
        .client
        .start_with_id("hello_cities", "history-1", None)?;
    let state = fixture.client.wait("history-1", WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));

    let events = fixture.client.history("history-1")?;
    let dump = format!("{:#}", Value::Array(events.clone()));
    for event in &events {
        assert!(event["event_id"].is_i64(), "{event:#}");
        assert!(event.get("timestamp").is_some(), "{event:#}");
        assert!(event["kind"].is_string(), "{event:#}");
    }

    let started = of_kind(&events, "executionStarted");
    assert_eq!(started.len(), 1, "{dump}");
    assert_eq!(started[0]["name"], "hello_cities", "{dump}");
    assert_eq!(started[0]["instanceId"], "history-1", "{dump}");

    let scheduled = of_kind(&events, "taskScheduled");
    assert_eq!(scheduled.len(), 3, "{dump}");
    for (event, city) in scheduled.iter().zip(CITIES) {
        assert_eq!(event["name"], "say_hello", "{dump}");
        assert_eq!(event["input"], city, "{dump}");
    }

    // Each completion names its schedule and carries the activity's result as a value.
    let completed = of_kind(&events, "taskCompleted");
    assert_eq!(completed.len(), 3, "{dump}");
    for (event, city) in completed.iter().zip(CITIES) {
        let schedule = scheduled
            .iter()
            .find(|scheduled| scheduled["event_id"] == event["taskScheduledId"])
            .unwrap_or_else(|| panic!("no taskScheduled for {event:#} in {dump}"));
        assert_eq!(schedule["input"], city, "{dump}");
        assert_eq!(event["result"], json!(format!("Hello {city}!")), "{dump}");
    }

    let finished = of_kind(&events, "executionCompleted");
    assert_eq!(finished.len(), 1, "{dump}");
    assert_eq!(finished[0]["orchestrationStatus"], "COMPLETED", "{dump}");
    assert_eq!(finished[0]["result"], greetings(), "{dump}");
    assert_eq!(finished[0]["failureDetails"], Value::Null, "{dump}");
    assert_eq!(
        events.last().unwrap()["kind"],
        "executionCompleted",
        "{dump}"
    );

    let run = fixture.client.run(&["history", "no-such-instance"])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

#[test]
fn restart_runs_a_completed_orchestration_again_under_the_same_or_a_new_id() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;
    fixture
        .client
        .start_with_id("hello_cities", "restart-1", None)?;
    let state = fixture.client.wait("restart-1", WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));

    let same = fixture.client.restart("restart-1", false)?;
    assert_eq!(same, "restart-1");
    let state = fixture.client.wait(&same, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], greetings(), "{state:#}");

    let new = fixture.client.restart("restart-1", true)?;
    assert_ne!(new, "restart-1");
    let state = fixture.client.wait(&new, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["name"], "hello_cities", "{state:#}");
    assert_eq!(state["output"], greetings(), "{state:#}");

    let run = fixture.client.run(&["restart", "no-such-instance"])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

#[test]
fn list_filters_by_status_and_prefix_and_follows_continuation_tokens() -> Result<()> {
    let fixture = Fixture::start(&["hello", "faulty"])?;
    let done = ["batch-a-1", "batch-a-2", "batch-a-3"];
    for id in done {
        fixture.client.start_with_id("hello_cities", id, None)?;
    }
    fixture
        .client
        .start_with_id("hello_cities", "batch-b-1", None)?;
    // Twenty 300 ms steps: still running while the lists below are taken.
    fixture
        .client
        .start_with_id("slow_sequence", "batch-a-slow", Some(&json!(20)))?;
    for id in done.iter().chain(&["batch-b-1"]) {
        let state = fixture.client.wait(id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    }
    let ids = |instances: &[Value]| -> BTreeSet<String> {
        instances
            .iter()
            .map(|state| state["instance_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected: BTreeSet<String> = done.iter().map(|id| (*id).to_owned()).collect();

    let completed = fixture
        .client
        .list(&["COMPLETED"], Some("batch-a-"), None)?;
    assert_eq!(ids(&completed), expected, "{completed:#?}");
    assert_eq!(completed.len(), 3, "{completed:#?}");
    for state in &completed {
        // The same shape as `status`, inputs and outputs included.
        assert_eq!(state["status"], "COMPLETED", "{state:#}");
        assert_eq!(state["name"], "hello_cities", "{state:#}");
        assert_eq!(state["output"], greetings(), "{state:#}");
        let status = fixture
            .client
            .status(state["instance_id"].as_str().unwrap())?;
        assert_eq!(state["output"], status["output"], "{state:#} vs {status:#}");
    }

    // Any status: the running one too; status names in any case.
    let all = fixture.client.list(&[], Some("batch-a-"), None)?;
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(ids(&all).contains("batch-a-slow"), "{all:#?}");
    let both = fixture
        .client
        .list(&["completed", "running"], Some("batch-"), None)?;
    assert_eq!(both.len(), 5, "{both:#?}");

    // A limit stops early and hands back where to go on; small pages are followed.
    let run = fixture.client.run(&[
        "list",
        "--status",
        "COMPLETED",
        "--prefix",
        "batch-a-",
        "--limit",
        "2",
    ])?;
    assert_eq!(run.exit_code, Some(exit_codes::OK), "{run:#?}");
    assert_eq!(
        run.json["instances"].as_array().unwrap().len(),
        2,
        "{run:#?}"
    );
    let token = run.json["continuation_token"].as_str().unwrap().to_owned();
    let rest = fixture.client.run(&[
        "list",
        "--status",
        "COMPLETED",
        "--prefix",
        "batch-a-",
        "--continuation-token",
        &token,
    ])?;
    let rest = rest.ok()?;
    assert_eq!(rest["instances"].as_array().unwrap().len(), 1, "{rest:#}");
    assert_eq!(rest["continuation_token"], Value::Null, "{rest:#}");

    let paged = fixture.client.run(&[
        "list",
        "--status",
        "COMPLETED",
        "--prefix",
        "batch-a-",
        "--page-size",
        "1",
    ])?;
    let paged = paged.ok()?;
    let paged_states = paged["instances"].as_array().unwrap();
    assert_eq!(ids(paged_states), expected, "{paged:#}");
    assert_eq!(paged["continuation_token"], Value::Null, "{paged:#}");

    // A bad status name is a usage error naming the flag and the accepted names.
    let run = fixture.client.run(&["list", "--status", "DONE"])?;
    assert_eq!(run.exit_code, Some(exit_codes::ERROR), "{run:#?}");
    let error = run.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("--status"), "{run:#?}");
    assert!(
        error.contains("COMPLETED") && error.contains("TERMINATED"),
        "{run:#?}"
    );

    fixture.client.terminate("batch-a-slow", None)?;
    Ok(())
}

#[test]
fn rewind_refuses_unknown_and_not_failed_instances() -> Result<()> {
    let fixture = Fixture::start(&["hello"])?;

    let run = fixture.client.run(&["rewind", "no-such-instance"])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    assert_eq!(run.json["instance_id"], "no-such-instance", "{run:#?}");

    fixture
        .client
        .start_with_id("hello_cities", "rewind-1", None)?;
    let state = fixture.client.wait("rewind-1", WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    let run = fixture
        .client
        .run(&["rewind", "rewind-1", "--reason", "try again"])?;
    assert_eq!(run.exit_code, Some(exit_codes::ERROR), "{run:#?}");
    assert_eq!(run.json["instance_id"], "rewind-1", "{run:#?}");
    let error = run.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("not FAILED"), "{run:#?}");

    // Nothing changed: it is still the same completed instance.
    let state = fixture.client.status("rewind-1")?;
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    assert_eq!(state["output"], greetings(), "{state:#}");
    Ok(())
}

/// What a newcomer tried: a purge of a running instance deleted nothing with exit 0, and an
/// event to or a termination of a finished instance answered "ok" without a word. Now the
/// purge says why (exit 2) and the others carry a note.
#[test]
fn calls_that_change_nothing_say_why() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    let client = &fixture.client;
    client.start_with_id("call_hanging_activity", "still-running", None)?;
    client.wait_for_status("still-running", &["RUNNING"], WAIT)?;
    let purge = client.run(&["purge", "still-running"])?;
    assert_eq!(purge.exit_code, Some(exit_codes::ERROR), "{purge:?}");
    let said = purge.json["error"].to_string();
    assert!(said.contains("is RUNNING"), "{purge:?}");
    assert!(said.contains("terminate it first"), "{purge:?}");

    let terminated = client.run(&["terminate", "still-running"])?;
    assert_eq!(terminated.exit_code, Some(exit_codes::OK), "{terminated:?}");
    assert!(terminated.json.get("note").is_none(), "{terminated:?}");
    client.wait("still-running", WAIT)?;

    let again = client.run(&["terminate", "still-running"])?;
    assert_eq!(again.exit_code, Some(exit_codes::OK), "{again:?}");
    assert!(
        again.json["note"]
            .as_str()
            .is_some_and(|note| note.contains("already finished (TERMINATED)")),
        "{again:?}"
    );
    let event = client.run(&["raise-event", "still-running", "approval"])?;
    assert_eq!(event.exit_code, Some(exit_codes::OK), "{event:?}");
    assert!(
        event.json["note"]
            .as_str()
            .is_some_and(|note| note.contains("nothing will receive the event")),
        "{event:?}"
    );
    let purged = client.run(&["purge", "still-running"])?;
    assert_eq!(purged.exit_code, Some(exit_codes::OK), "{purged:?}");
    assert_eq!(purged.json["deleted"], 1, "{purged:?}");
    Ok(())
}
