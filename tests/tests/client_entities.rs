//! The client's entity verbs against the reference backend: `signal-entity`, `get-entity`
//! and `list-entities`, with the faulty plugin's `counter` entity (`add` adds its input,
//! default 1) run by the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use durabletask_e2e::{Client, Context, Fixture, Result, WAIT, exit_codes, poll_until};
use serde_json::{Value, json};

/// The state of each listed entity, by id.
fn states(listing: &Value) -> BTreeMap<String, Value> {
    listing["entities"]
        .as_array()
        .unwrap_or_else(|| panic!("no entities in {listing:#}"))
        .iter()
        .map(|entity| {
            let id = entity["entity_id"].as_str().unwrap().to_owned();
            (id, entity["state"].clone())
        })
        .collect()
}

#[test]
fn signals_add_up_and_get_entity_shows_the_state_under_the_canonical_id() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    let sent = fixture
        .client
        .signal_entity("@Counter@c1", "add", Some(&json!(5)), None)?;
    assert_eq!(
        sent,
        json!({
            "entity_id": "@counter@c1",
            "operation": "add",
            "signalled": true,
            "scheduled_time": null,
        })
    );
    fixture
        .client
        .signal_entity("@counter@c1", "add", Some(&json!(2)), None)?;

    let entity = fixture
        .client
        .wait_for_entity("@COUNTER@c1", WAIT, |entity| entity["state"] == 7)
        .with_context(|| fixture.host.log_tail())?;
    assert_eq!(entity["entity_id"], "@counter@c1", "{entity:#}");
    assert_eq!(entity["exists"], true, "{entity:#}");
    assert!(entity["last_modified_time"].is_string(), "{entity:#}");
    assert!(entity["backlog_queue_size"].is_i64(), "{entity:#}");
    assert!(entity.get("locked_by").is_some(), "{entity:#}");

    // The key is case-sensitive: another key is another entity.
    let other = fixture.client.get_entity("@counter@C1")?;
    assert_eq!(other.exit_code, Some(exit_codes::NOT_FOUND), "{other:#?}");

    // --no-state: the metadata without the state.
    let run = fixture
        .client
        .run(&["get-entity", "@counter@c1", "--no-state"])?;
    let bare = run.ok()?;
    assert_eq!(bare["exists"], true, "{bare:#}");
    assert_eq!(bare["state"], Value::Null, "{bare:#}");
    Ok(())
}

#[test]
fn get_entity_of_an_entity_never_signalled_exits_4() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    let run = fixture.client.get_entity("@Counter@untouched")?;
    assert_eq!(run.exit_code, Some(exit_codes::NOT_FOUND), "{run:#?}");
    assert_eq!(
        run.json,
        json!({"entity_id": "@counter@untouched", "exists": false}),
        "{run:#?}"
    );
    assert!(
        run.stderr
            .contains("entity '@counter@untouched' does not exist"),
        "{run:#?}"
    );
    Ok(())
}

#[test]
fn a_delayed_signal_runs_when_it_is_due_and_not_before() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    let id = "@counter@later";
    fixture.client.signal_entity(id, "add", None, None)?;
    fixture
        .client
        .wait_for_entity(id, WAIT, |entity| entity["state"] == 1)
        .with_context(|| fixture.host.log_tail())?;

    let sent = Instant::now();
    let answer = fixture
        .client
        .signal_entity(id, "add", Some(&json!(10)), Some("+2s"))?;
    assert_eq!(answer["signalled"], true, "{answer:#}");
    assert!(
        answer["scheduled_time"]
            .as_str()
            .is_some_and(|time| time.ends_with('Z')),
        "{answer:#}"
    );

    // The scenario is about time: look once, half a second after sending.
    std::thread::sleep(Duration::from_millis(500).saturating_sub(sent.elapsed()));
    let early = fixture.client.get_entity(id)?.ok()?;
    let looked_after = sent.elapsed();
    // Only conclusive while the look happened well before the signal was due (a busy
    // machine may make the client call itself slow).
    if looked_after < Duration::from_millis(1_500) {
        assert_eq!(
            early["state"], 1,
            "applied after {looked_after:?}: {early:#}"
        );
    }

    let applied = fixture
        .client
        .wait_for_entity(id, WAIT, |entity| entity["state"] == 11)?;
    let after = sent.elapsed();
    assert!(
        after >= Duration::from_millis(1_500),
        "the signal due in 2 s was applied after {after:?}: {applied:#}"
    );
    Ok(())
}

#[test]
fn list_entities_filters_by_prefix_and_follows_pages() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    for (key, amount) in [("list-a", 1), ("list-b", 2), ("list-c", 3), ("other", 4)] {
        fixture.client.signal_entity(
            &format!("@Counter@{key}"),
            "add",
            Some(&json!(amount)),
            None,
        )?;
    }
    let expected: BTreeMap<String, Value> = [
        ("@counter@list-a", json!(1)),
        ("@counter@list-b", json!(2)),
        ("@counter@list-c", json!(3)),
    ]
    .into_iter()
    .map(|(id, state)| (id.to_owned(), state))
    .collect();

    // Entities with queued operations are not listed (includeTransient is false), so poll
    // until all three have run their signal.
    let mut last = Value::Null;
    let listed = poll_until(WAIT, || {
        last = fixture.client.list_entities(Some("@counter@list-"), &[])?;
        Ok((states(&last) == expected).then(|| last.clone()))
    })?;
    let listed = listed.unwrap_or_else(|| {
        panic!(
            "never listed {expected:?}; last: {last:#}\n{}",
            fixture.host.log_tail()
        )
    });
    assert_eq!(listed["continuation_token"], Value::Null, "{listed:#}");
    for entity in listed["entities"].as_array().unwrap() {
        assert_eq!(entity["exists"], true, "{entity:#}");
        // The same object as get-entity prints.
        let alone = fixture
            .client
            .get_entity(entity["entity_id"].as_str().unwrap())?
            .ok()?;
        assert_eq!(entity, &alone, "{listed:#}");
    }

    // One entity per request: the client follows the backend's tokens to the end (the
    // reference backend pages: its token is the index of the next match).
    let paged = fixture
        .client
        .list_entities(Some("@counter@list-"), &["--page-size", "1"])?;
    assert_eq!(states(&paged), expected, "{paged:#}");
    assert_eq!(paged["continuation_token"], Value::Null, "{paged:#}");

    // A limit stops early and hands back the token to go on from.
    let first = fixture
        .client
        .list_entities(Some("@counter@list-"), &["--limit", "2"])?;
    assert_eq!(first["entities"].as_array().unwrap().len(), 2, "{first:#}");
    let token = first["continuation_token"].as_str().unwrap().to_owned();
    let rest = fixture.client.list_entities(
        Some("@counter@list-"),
        &["--page-size", "1", "--continuation-token", &token],
    )?;
    let mut joined = states(&first);
    joined.extend(states(&rest));
    assert_eq!(joined, expected, "{first:#}\n{rest:#}");
    assert_eq!(rest["continuation_token"], Value::Null, "{rest:#}");

    // --no-state: the same entities, states left out.
    let bare = fixture
        .client
        .list_entities(Some("@counter@list-"), &["--no-state"])?;
    let bare = states(&bare);
    assert_eq!(bare.len(), 3, "{bare:?}");
    assert!(bare.values().all(Value::is_null), "{bare:?}");
    Ok(())
}

#[test]
fn a_malformed_entity_id_is_a_usage_error_naming_it() -> Result<()> {
    // Nothing listens on port 1: the id is refused before any connection is tried.
    let client = Client::new("http://127.0.0.1:1")?;
    for args in [
        &["signal-entity", "counter@c1", "add"][..],
        &["get-entity", "@counter@c1@x"][..],
    ] {
        let run = client.run(args)?;
        assert_eq!(run.exit_code, Some(exit_codes::ERROR), "{run:#?}");
        let error = run.json["error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("'{}'", args[1])), "{run:#?}");
        assert!(error.contains("@name@key"), "{run:#?}");
        assert!(!error.contains("127.0.0.1"), "{run:#?}");
    }
    Ok(())
}
