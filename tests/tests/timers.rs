//! Durable timers as the host runs them: `[worker] maximum_timer_interval` splits a long
//! timer into chunks (protocol.md §4.2), and the orchestration still sees one timer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Fixture, Result};
use serde_json::{Value, json};

#[test]
fn a_long_timer_is_created_in_chunks_of_the_maximum_timer_interval() -> Result<()> {
    let fixture = Fixture::start_with(&["faulty"], |config| config.maximum_timer_interval("2s"))?;

    // A 5 s timer with 2 s chunks: fire times +2 s, +4 s, then the real one at +5 s.
    let state = fixture.run("wait_timer", Some(json!(5)))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(5));

    let id = state["instance_id"].as_str().unwrap();
    let history = fixture.client.history(id)?;
    let started = history
        .iter()
        .find(|event| event["kind"] == "orchestratorStarted")
        .map(|event| nanos(&event["timestamp"]))
        .expect("the history has an orchestratorStarted event");
    let created: Vec<i64> = events_of(&history, "timerCreated")
        .map(|event| nanos(&event["fireAt"]))
        .collect();
    let fired: Vec<i64> = events_of(&history, "timerFired")
        .map(|event| nanos(&event["fireAt"]))
        .collect();
    assert_eq!(
        created.len(),
        3,
        "expected 3 timerCreated events: {history:#?}"
    );
    assert_eq!(fired, created, "every chunk fires once, in order");

    // The first chunk is the orchestration's clock plus the interval; the others follow
    // from the previous chunk's fire time, the last one capped at the final fire time.
    let relative: Vec<i64> = created.iter().map(|at| at - created[0]).collect();
    assert_eq!(
        relative,
        [0, 2 * SECOND, 3 * SECOND],
        "fire times: {history:#?}"
    );
    assert_eq!(
        created[0] - started,
        2 * SECOND,
        "the first chunk fires 2 s after the orchestration's clock: {history:#?}"
    );
    Ok(())
}

#[test]
fn without_a_maximum_timer_interval_a_timer_is_created_whole() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;

    let state = fixture.run("wait_timer", Some(json!(1)))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));

    let id = state["instance_id"].as_str().unwrap();
    let history = fixture.client.history(id)?;
    assert_eq!(
        events_of(&history, "timerCreated").count(),
        1,
        "{history:#?}"
    );
    Ok(())
}

fn events_of<'a>(history: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    history.iter().filter(move |event| event["kind"] == kind)
}

const SECOND: i64 = 1_000_000_000;

/// Nanoseconds since the Unix epoch of an RFC 3339 UTC timestamp as the client prints it
/// (`2026-11-28T20:52:44.123456Z`).
fn nanos(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let parse = |part: &str| -> i64 {
        part.parse()
            .unwrap_or_else(|_| panic!("bad timestamp {text}"))
    };
    let (date, time) = text
        .trim_end_matches('Z')
        .split_once('T')
        .unwrap_or_else(|| panic!("bad timestamp {text}"));
    let date: Vec<i64> = date.split('-').map(parse).collect();
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let clock: Vec<i64> = clock.split(':').map(parse).collect();
    // Up to nine digits of fraction, padded to nanoseconds.
    let fraction = parse(&format!("{fraction:0<9}"));
    let days = days_from_civil(date[0], date[1], date[2]);
    (days * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2]) * SECOND + fraction
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
