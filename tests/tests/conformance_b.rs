//! Conformance scenarios 13-23 and 72-79 of `shared/spec/protocol.md` §8: orchestrators
//! written with our SDK (the `conformance_b` test plugin) run by the host against the
//! reference backend, checked the way a user checks them, through the client.
//!
//! Payloads are compared as JSON values. Executions are counted from the log lines the
//! plugin writes (each with a `cb-` marker and the instance id), which the host forwards
//! to its own log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use durabletask_e2e::{Error, Fixture, Result, WAIT, exit_codes, instance_id, poll_until};
use serde_json::{Value, json};

const PLUGIN: &str = "conformance_b";

/// The failure message of the always-failing activity.
const BOOM: &str = "Kah-BOOOOM!!!";

fn start() -> Result<Fixture> {
    Fixture::start(&[PLUGIN])
}

/// The `error_type` of a state's failure details (empty if there are none).
fn error_type(state: &Value) -> &str {
    state["failure_details"]["error_type"]
        .as_str()
        .unwrap_or_default()
}

/// The `message` of a state's failure details (empty if there are none).
fn error_message(state: &Value) -> &str {
    state["failure_details"]["message"]
        .as_str()
        .unwrap_or_default()
}

/// Raises event `name` on `id`, with `data` (none: no payload).
fn raise(fixture: &Fixture, id: &str, name: &str, data: Option<&Value>) -> Result<()> {
    let data = data.map(Value::to_string);
    let mut args = vec!["raise-event", id, name];
    if let Some(data) = &data {
        args.extend(["--data", data]);
    }
    fixture.client.run(&args)?.ok().map(drop)
}

/// How many host log lines contain every one of `texts`, once at least `expected` do
/// (log lines are written asynchronously, so wait for them, bounded); fewer after the
/// wait is a failure with the log.
fn count_lines(fixture: &Fixture, texts: &[&str], expected: usize) -> Result<usize> {
    let found = poll_until(WAIT, || {
        let count = fixture.host.log_lines_with(texts).len();
        Ok((count >= expected).then_some(count))
    })?;
    found.ok_or_else(|| {
        Error::new(format!(
            "fewer than {expected} log lines with {texts:?}: {}\n{}",
            fixture.host.log_lines_with(texts).len(),
            fixture.host.log_tail()
        ))
    })
}

/// The history events of `kind`.
fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["kind"] == kind)
        .collect()
}

/// A canonical UUID: 8-4-4-4-12 lowercase hex digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|group| {
            group
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

// ---------------------------------------------------------------------------------------
// test_orchestration_e2e.py

/// Scenario 13: restart_with_new_instance_id.
#[test]
fn s13_restart_with_new_instance_id() -> Result<()> {
    let fixture = start()?;
    let state = fixture.run("hello_world", Some(json!("World")))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    let old = instance_id(&state)?;

    let new = fixture.client.restart(&old, true)?;
    assert_ne!(new, old);
    let state = fixture.client.wait(&new, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["name"], "hello_world", "{state:#}");
    assert_eq!(state["input"], json!("World"), "{state:#}");
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    assert!(state["failure_details"].is_null(), "{state:#}");
    Ok(())
}

/// Scenario 14: continue_as_new: 5 events raised at once, one consumed per execution, the rest
/// carried over in order.
#[test]
fn s14_continue_as_new_carries_unprocessed_events_over() -> Result<()> {
    let fixture = start()?;
    let id = fixture.client.start("collect_events", Some(&json!(0)))?;
    for value in 1..=5 {
        raise(&fixture, &id, "my_event", Some(&json!(value)))?;
    }

    let state = fixture.client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!([1, 2, 3, 4, 5]), "{state:#}");
    assert_eq!(state["input"], json!(4), "{state:#}");
    assert!(state["failure_details"].is_null(), "{state:#}");
    Ok(())
}

/// Scenario 15: retry_policies: parent → child → always-failing activity, 3 attempts at each
/// level: 9 activity runs, 3 child executions under the same child id.
#[test]
fn s15_retry_policies_retry_the_child_and_its_activity() -> Result<()> {
    let fixture = start()?;
    let state = fixture.run("retry_parent", None)?;
    let id = instance_id(&state)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "TaskFailed", "{state:#}");
    let message = error_message(&state);
    assert!(
        message.starts_with("Sub-orchestration task #1 failed:"),
        "{state:#}"
    );
    assert!(
        message.ends_with(&format!("Activity task #1 failed: {BOOM}")),
        "{state:#}"
    );
    // As with the reference, the failure carries a stack trace: where the orchestrator
    // propagated the failed task, the location of its `?`.
    assert!(propagated_in_the_plugin(&state), "{state:#}");
    // The inner failure is the child's, as the backend reports it (it keeps the message).
    let inner = &state["failure_details"]["inner_failure"];
    assert!(
        inner["message"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("Activity task #1 failed: {BOOM}")),
        "{state:#}"
    );

    // Every attempt of the child ran under the default child id; its last run failed with
    // our TaskFailed around the activity's own failure.
    let child_id = format!("{id}:0001");
    let child = fixture.client.status(&child_id)?;
    assert_eq!(child["status"], "FAILED", "{child:#}");
    assert_eq!(error_type(&child), "TaskFailed", "{child:#}");
    assert_eq!(
        error_message(&child),
        format!("{child_id}: Activity task #1 failed: {BOOM}"),
        "{child:#}"
    );
    assert_eq!(
        child["failure_details"]["inner_failure"]["error_type"], "KahBoom",
        "{child:#}"
    );

    let activity_runs = count_lines(&fixture, &["cb-kah-boom call", &child_id], 9)?;
    assert_eq!(activity_runs, 9, "{}", fixture.host.log_tail());
    let child_runs = count_lines(&fixture, &["cb-retry-child run", &child_id], 3)?;
    assert_eq!(child_runs, 3, "{}", fixture.host.log_tail());
    Ok(())
}

/// Scenario 16: retry_timeout: delays 1, 2, 4 s; the 8 s one would end past the 14 s budget, so
/// there are 4 attempts (our decision: orchestration clock, stop when the next delay passes
/// the budget).
#[test]
fn s16_retry_timeout_stops_when_the_next_delay_passes_the_budget() -> Result<()> {
    let fixture = start()?;
    let state = fixture.run("retry_with_timeout", None)?;
    let id = instance_id(&state)?;

    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "TaskFailed", "{state:#}");
    assert!(
        error_message(&state).ends_with(&format!("Activity task #1 failed: {BOOM}")),
        "{state:#}"
    );
    assert!(propagated_in_the_plugin(&state), "{state:#}");
    let inner = &state["failure_details"]["inner_failure"];
    assert_eq!(inner["error_type"], "KahBoom", "{state:#}");
    assert_eq!(inner["message"], BOOM, "{state:#}");

    let runs = count_lines(&fixture, &["cb-kah-boom call", &id], 4)?;
    assert_eq!(runs, 4, "{}", fixture.host.log_tail());

    // Every attempt kept the call's id; one retry timer between attempts.
    let events = fixture.client.history(&id)?;
    let dump = format!("{:#}", Value::Array(events.clone()));
    let scheduled = of_kind(&events, "taskScheduled");
    assert_eq!(scheduled.len(), 4, "{dump}");
    assert!(scheduled.iter().all(|e| e["event_id"] == 1), "{dump}");
    assert_eq!(of_kind(&events, "timerCreated").len(), 3, "{dump}");
    Ok(())
}

/// Scenario 17: custom_status.
#[test]
fn s17_custom_status() -> Result<()> {
    let fixture = start()?;
    let state = fixture.run("custom_status_only", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["custom_status"], json!("foobaz"), "{state:#}");
    assert!(state["input"].is_null(), "{state:#}");
    assert!(state["output"].is_null(), "{state:#}");
    assert!(state["failure_details"].is_null(), "{state:#}");
    Ok(())
}

/// Scenario 18: new_uuid: three valid, distinct UUIDs, the same on replay.
#[test]
fn s18_new_uuid() -> Result<()> {
    let fixture = start()?;
    let state = fixture.run("three_uuids", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    let uuids: Vec<&str> = state["output"]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(uuids.len(), 3, "{state:#}");
    for uuid in &uuids {
        assert!(is_uuid(uuid), "not a UUID: {uuid} in {state:#}");
        // Name-based (v5), RFC 4122 variant.
        assert_eq!(uuid.as_bytes()[14], b'5', "{uuid}");
        assert!(b"89ab".contains(&uuid.as_bytes()[19]), "{uuid}");
    }
    assert!(
        uuids[0] != uuids[1] && uuids[1] != uuids[2] && uuids[0] != uuids[2],
        "{state:#}"
    );

    // The first UUID went to the activity in the first step; the output was made by a
    // replay in the last step: they agree.
    let events = fixture.client.history(&instance_id(&state)?)?;
    let scheduled = of_kind(&events, "taskScheduled");
    assert_eq!(scheduled.len(), 1, "{events:#?}");
    assert_eq!(scheduled[0]["input"], json!(uuids[0]), "{events:#?}");
    Ok(())
}

/// Scenario 19: when_any_cancels_timer_when_event_wins[True].
#[test]
fn s19_when_any_cancels_the_timer_when_the_event_wins() -> Result<()> {
    let fixture = start()?;
    let id = fixture.client.start("approval_or_timeout", None)?;
    // Raise the event once the timer is in place, so the cancel meets a timer the backend
    // already has.
    let timer = poll_until(WAIT, || {
        let events = fixture.client.history(&id)?;
        Ok(of_kind(&events, "timerCreated")
            .first()
            .map(|e| (*e).clone()))
    })?;
    assert!(timer.is_some(), "{}", fixture.host.log_tail());
    raise(&fixture, &id, "Approval", None)?;
    let state = fixture.client.wait(&id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("approved"), "{state:#}");
    assert!(state["failure_details"].is_null(), "{state:#}");
    Ok(())
}

/// Scenario 19: when_any_cancels_timer_when_event_wins[False].
#[test]
fn s19_when_any_times_out_without_the_event() -> Result<()> {
    let fixture = start()?;
    let state = fixture.run("approval_or_timeout", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("timed out"), "{state:#}");
    assert!(state["failure_details"].is_null(), "{state:#}");
    Ok(())
}

/// Scenario 20: orchestration_sends_event_to_another_orchestration: delivered once, even though
/// the sender is replayed after sending.
#[test]
fn s20_orchestration_sends_an_event_to_another_orchestration() -> Result<()> {
    let fixture = start()?;
    let receiver = fixture.client.start("collect_two_approvals", None)?;
    let sender = fixture
        .client
        .start("send_approval", Some(&json!(receiver)))?;

    let state = fixture.client.wait(&sender, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("sent"), "{state:#}");

    raise(&fixture, &receiver, "Approval", Some(&json!("client")))?;
    let state = fixture.client.wait(&receiver, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(
        state["output"],
        json!([{"approved": true, "approver": "Ada"}, "client"]),
        "{state:#}"
    );

    let events = fixture.client.history(&receiver)?;
    assert_eq!(of_kind(&events, "eventRaised").len(), 2, "{events:#?}");
    let events = fixture.client.history(&sender)?;
    let sent = of_kind(&events, "eventSent");
    assert_eq!(sent.len(), 1, "{events:#?}");
    assert_eq!(sent[0]["instanceId"], json!(receiver), "{events:#?}");
    Ok(())
}

/// Scenario 21: orchestration_send_event_drops_undeliverable_events: to a completed instance, to a
/// missing one and to itself; nothing is re-run.
#[test]
fn s21_send_event_drops_undeliverable_events() -> Result<()> {
    let fixture = start()?;
    let receiver = fixture.run("finish_at_once", None)?;
    assert_eq!(
        receiver["status"],
        "COMPLETED",
        "{}",
        fixture.explain(&receiver)
    );
    let receiver_id = instance_id(&receiver)?;

    let sender = fixture.run("send_to_nowhere", Some(json!(receiver_id)))?;
    assert_eq!(
        sender["status"],
        "COMPLETED",
        "{}",
        fixture.explain(&sender)
    );
    assert!(sender["output"].is_null(), "{sender:#}");
    let sender_id = instance_id(&sender)?;

    assert_eq!(
        count_lines(&fixture, &["cb-receiver-invoked", &receiver_id], 1)?,
        1
    );
    assert_eq!(
        count_lines(&fixture, &["cb-sender-invoked", &sender_id], 1)?,
        1
    );
    // A delivered event would run an orchestrator again: give it a moment to show.
    let rerun = poll_until(Duration::from_secs(2), || {
        let receiver_runs = fixture
            .host
            .log_lines_with(&["cb-receiver-invoked", &receiver_id])
            .len();
        let sender_runs = fixture
            .host
            .log_lines_with(&["cb-sender-invoked", &sender_id])
            .len();
        Ok((receiver_runs > 1 || sender_runs > 1).then_some(()))
    })?;
    assert!(rerun.is_none(), "{}", fixture.host.log_tail());

    let state = fixture.client.status(&receiver_id)?;
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    assert_eq!(state["output"], json!("receiver done"), "{state:#}");
    let run = fixture.client.run(&["status", "missing-instance"])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

/// Scenario 22: when_any_cancels_competing_external_event[Approve] and [Reject].
#[test]
fn s22_when_any_cancels_the_competing_event_wait() -> Result<()> {
    let fixture = start()?;
    for (event, expected) in [("Approve", "approved"), ("Reject", "rejected")] {
        let id = fixture.client.start("approve_or_reject", None)?;
        raise(&fixture, &id, event, Some(&json!(true)))?;
        let state = fixture.client.wait(&id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
        assert_eq!(state["output"], json!(expected), "{state:#}");
        assert!(state["failure_details"].is_null(), "{state:#}");
    }
    Ok(())
}

/// Scenario 23: long_timer_chunking: with `maximum_timer_interval = "2s"`, a 5 s timer is three
/// timers (+2 s, +4 s, +5 s), and the orchestrator runs at least 4 times.
#[test]
fn s23_long_timers_are_split_into_chunks() -> Result<()> {
    let fixture = Fixture::start_with(&[PLUGIN], |config| config.maximum_timer_interval("2s"))?;

    let state = fixture.run("long_timer", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("done"), "{state:#}");
    let id = instance_id(&state)?;

    let steps = count_lines(&fixture, &["cb-long-timer step", &id], 4)?;
    assert!(steps >= 4, "{steps} steps\n{}", fixture.host.log_tail());
    let events = fixture.client.history(&id)?;
    let dump = format!("{:#}", Value::Array(events.clone()));
    let fire_at: Vec<f64> = of_kind(&events, "timerCreated")
        .iter()
        .map(|timer| seconds_of_day(timer["fireAt"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(fire_at.len(), 3, "{dump}");
    assert_eq!(of_kind(&events, "timerFired").len(), 3, "{dump}");
    // Each chunk starts where the last one fired: +2 s, +2 s, then the remaining 1 s.
    let gap = |later: f64, earlier: f64| (later - earlier).rem_euclid(86_400.0);
    assert!((gap(fire_at[1], fire_at[0]) - 2.0).abs() < 1e-3, "{dump}");
    assert!((gap(fire_at[2], fire_at[1]) - 1.0).abs() < 1e-3, "{dump}");
    Ok(())
}

/// The time of day of an RFC 3339 UTC timestamp (`…THH:MM:SS[.frac]Z`), in seconds.
fn seconds_of_day(timestamp: &str) -> f64 {
    let time = timestamp
        .rsplit('T')
        .next()
        .unwrap_or_default()
        .trim_end_matches('Z');
    time.split(':')
        .map(|part| part.parse::<f64>().unwrap_or(f64::NAN))
        .fold(0.0, |total, part| total * 60.0 + part)
}

// ---------------------------------------------------------------------------------------
// test_rewind_e2e.py

/// Starts `name` under `id` and waits for it to finish.
fn run_with_id(fixture: &Fixture, name: &str, id: &str, input: &Value) -> Result<Value> {
    fixture.client.start_with_id(name, id, Some(input))?;
    fixture.client.wait(id, WAIT)
}

/// Asserts the instance FAILED because an activity failed with the simulated failure.
fn assert_failed_by_the_flaky_activity(fixture: &Fixture, state: &Value) {
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(state));
    assert_eq!(error_type(state), "TaskFailed", "{state:#}");
    assert!(
        error_message(state).contains("Simulated failure"),
        "{state:#}"
    );
}

/// Scenario 72: rewind_failed_activity.
#[test]
fn s72_rewind_failed_activity() -> Result<()> {
    let fixture = start()?;
    let id = "rewind-72";
    let input = json!({"input": "World", "failures": 1});
    let state = run_with_id(&fixture, "rewind_hello", id, &input)?;
    assert_failed_by_the_flaky_activity(&fixture, &state);
    assert_eq!(
        state["failure_details"]["inner_failure"]["error_type"], "SimulatedFailure",
        "{state:#}"
    );

    fixture.client.rewind(id, Some("retry after fix"))?;
    let state = fixture.client.wait(id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    assert!(state["failure_details"].is_null(), "{state:#}");
    let calls = count_lines(&fixture, &["cb-flaky-call flaky_say_hello", id], 2)?;
    assert_eq!(calls, 2, "{}", fixture.host.log_tail());

    let events = fixture.client.history(id)?;
    let rewound = of_kind(&events, "executionRewound");
    assert_eq!(rewound.len(), 1, "{events:#?}");
    assert_eq!(rewound[0]["reason"], "retry after fix", "{events:#?}");
    Ok(())
}

/// Scenario 73: rewind_preserves_successful_results: the activity that succeeded is not run again.
#[test]
fn s73_rewind_preserves_successful_results() -> Result<()> {
    let fixture = start()?;
    let id = "rewind-73";
    let state = run_with_id(&fixture, "rewind_two_steps", id, &json!("test"))?;
    assert_failed_by_the_flaky_activity(&fixture, &state);

    fixture.client.rewind(id, Some("retry after fix"))?;
    let state = fixture.client.wait(id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(
        state["output"],
        json!(["first:test", "second:test"]),
        "{state:#}"
    );
    let second = count_lines(&fixture, &["cb-flaky-call flaky_second_step", id], 2)?;
    assert!(second >= 2, "{}", fixture.host.log_tail());
    let first = count_lines(&fixture, &["cb-flaky-call first_step", id], 1)?;
    assert_eq!(first, 1, "{}", fixture.host.log_tail());
    Ok(())
}

/// Scenario 74: rewind_not_found.
#[test]
fn s74_rewind_not_found() -> Result<()> {
    let fixture = start()?;
    let run = fixture.client.run(&["rewind", "no-such-instance"])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    Ok(())
}

/// Scenario 75: rewind_non_failed_instance.
#[test]
fn s75_rewind_non_failed_instance() -> Result<()> {
    let fixture = start()?;
    let state = fixture.run("hello_world", Some(json!("World")))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    let id = instance_id(&state)?;

    let run = fixture
        .client
        .run(&["rewind", &id, "--reason", "why not"])?;
    assert_eq!(run.exit_code, Some(exit_codes::ERROR), "{run:#?}");
    assert!(run.json["error"].is_string(), "{run:#?}");

    let state = fixture.client.status(&id)?;
    assert_eq!(state["status"], "COMPLETED", "{state:#}");
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    Ok(())
}

/// Scenario 76: rewind_with_sub_orchestration: rewinding the parent rewinds the failed child.
#[test]
fn s76_rewind_with_sub_orchestration() -> Result<()> {
    let fixture = start()?;
    let id = "rewind-76";
    let child_id = "rewind-76:0001";
    let state = run_with_id(&fixture, "rewind_parent", id, &json!({"data": "data"}))?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    assert_eq!(error_type(&state), "TaskFailed", "{state:#}");
    assert!(
        error_message(&state).starts_with("Sub-orchestration task #1 failed:"),
        "{state:#}"
    );
    let child = fixture.client.status(child_id)?;
    assert_failed_by_the_flaky_activity(&fixture, &child);

    fixture.client.rewind(id, Some("retry after fix"))?;
    let state = fixture.client.wait(id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("parent:child:data"), "{state:#}");
    let child = fixture.client.status(child_id)?;
    assert_eq!(child["status"], "COMPLETED", "{child:#}");
    assert_eq!(child["output"], json!("child:data"), "{child:#}");
    let calls = count_lines(&fixture, &["cb-flaky-call flaky_child_step", child_id], 2)?;
    assert_eq!(calls, 2, "{}", fixture.host.log_tail());
    Ok(())
}

/// Scenario 77: rewind_without_reason.
#[test]
fn s77_rewind_without_reason() -> Result<()> {
    let fixture = start()?;
    let id = "rewind-77";
    let state = run_with_id(&fixture, "rewind_ok", id, &Value::Null)?;
    assert_failed_by_the_flaky_activity(&fixture, &state);

    fixture.client.rewind(id, None)?;
    let state = fixture.client.wait(id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("ok"), "{state:#}");
    assert!(state["failure_details"].is_null(), "{state:#}");
    Ok(())
}

/// Scenario 78: rewind_purged_sub_orchestration: the backend re-creates the purged child.
#[test]
fn s78_rewind_purged_sub_orchestration() -> Result<()> {
    let fixture = start()?;
    let id = "rewind-78";
    let child_id = "sub-orch-to-purge";
    let input = json!({"data": "data", "child_id": child_id});
    let state = run_with_id(&fixture, "rewind_parent", id, &input)?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    let child = fixture.client.status(child_id)?;
    assert_failed_by_the_flaky_activity(&fixture, &child);

    fixture.client.purge(child_id)?;
    let run = fixture.client.run(&["status", child_id])?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");

    fixture.client.rewind(id, Some("retry after fix"))?;
    let state = fixture.client.wait(id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("parent:child:data"), "{state:#}");
    let child = fixture.client.status(child_id)?;
    assert_eq!(child["status"], "COMPLETED", "{child:#}");
    let calls = count_lines(&fixture, &["cb-flaky-call flaky_child_step", child_id], 2)?;
    assert_eq!(calls, 2, "{}", fixture.host.log_tail());
    Ok(())
}

/// Scenario 79: rewind_twice: fail, rewind, fail again, rewind again.
#[test]
fn s79_rewind_twice() -> Result<()> {
    let fixture = start()?;
    let id = "rewind-79";
    let input = json!({"input": "World", "failures": 2});
    let state = run_with_id(&fixture, "rewind_hello", id, &input)?;
    assert_failed_by_the_flaky_activity(&fixture, &state);

    fixture.client.rewind(id, Some("first try"))?;
    let state = fixture.client.wait(id, WAIT)?;
    assert_failed_by_the_flaky_activity(&fixture, &state);

    fixture.client.rewind(id, Some("second try"))?;
    let state = fixture.client.wait(id, WAIT)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!("Hello, World!"), "{state:#}");
    let calls = count_lines(&fixture, &["cb-flaky-call flaky_say_hello", id], 3)?;
    assert_eq!(calls, 3, "{}", fixture.host.log_tail());
    Ok(())
}

/// Whether the failure's stack trace starts at a `?` in this scenario's plugin (`at
/// <file>:<line>:<column>`; a backtrace follows only when RUST_BACKTRACE asks for one).
fn propagated_in_the_plugin(state: &Value) -> bool {
    state["failure_details"]["stack_trace"]
        .as_str()
        .is_some_and(|trace| trace.starts_with("at tests/plugins/conformance-b/src/lib.rs:"))
}
