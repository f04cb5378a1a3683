//! The `entities` sample plugin, end to end: its counter and account entities and the
//! orchestrations that use them, run by the host against the reference backend. The last
//! test is the sample's proof: concurrent transfers in critical sections neither create
//! nor lose money.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use durabletask_e2e::{Fixture, Result, WAIT, exit_codes};
use serde_json::{Value, json};

/// Runs `name` with `input`, asserts it COMPLETED, and returns its output.
fn output_of(fixture: &Fixture, name: &str, input: Value) -> Result<Value> {
    let state = fixture.run(name, Some(input))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    Ok(state["output"].clone())
}

/// Runs `name` with `input`, asserts it FAILED, and returns its failure details.
fn failure_of(fixture: &Fixture, name: &str, input: Value) -> Result<Value> {
    let state = fixture.run(name, Some(input))?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    Ok(state["failure_details"].clone())
}

/// Runs `name` with `input`, asserts it FAILED because an entity operation it called
/// failed with `error_type` (`?` on a failed call: `TaskFailed`, with the entity's own
/// failure inside), and returns the failure details.
fn entity_failure_of(
    fixture: &Fixture,
    name: &str,
    input: Value,
    error_type: &str,
) -> Result<Value> {
    let failure = failure_of(fixture, name, input)?;
    assert_eq!(failure["error_type"], "TaskFailed", "{failure:#}");
    let inner = &failure["inner_failure"]["error_type"];
    assert_eq!(inner, error_type, "{failure:#}");
    Ok(failure)
}

/// The sum of the accounts' balances, from the plugin's `total_balance` orchestration.
fn total_balance(fixture: &Fixture, accounts: &[&str]) -> Result<Value> {
    output_of(fixture, "total_balance", json!(accounts))
}

/// What `client get-entity` says of the entity `id`: `{"exists": false}` when the backend
/// has no such entity (the client exits with "not found"), else `{"exists": true,
/// "state": ..}` and the rest of its metadata.
fn get_entity(fixture: &Fixture, id: &str) -> Result<Value> {
    let run = fixture.client.run(&["get-entity", id])?;
    if run.exit_code == Some(exit_codes::NOT_FOUND) {
        assert_eq!(run.json["exists"], false, "{:#}", run.json);
        return Ok(run.json);
    }
    let entity = run.ok()?;
    assert_eq!(entity["exists"], true, "{entity:#}");
    Ok(entity)
}

/// The message of a failure, for `contains` checks.
fn message(failure: &Value) -> &str {
    failure["message"].as_str().unwrap_or_default()
}

#[test]
fn the_counter_adds_gets_resets_and_deletes() -> Result<()> {
    let fixture = Fixture::start(&["entities"])?;
    let call = |operation: &str, amount: Option<i64>| {
        let input = json!({"key": "visits", "operation": operation, "amount": amount});
        output_of(&fixture, "call_counter", input)
    };

    // The backend has never heard of the counter.
    let visits = "@counter@visits";
    assert_eq!(
        get_entity(&fixture, visits)?,
        json!({"entity_id": visits, "exists": false})
    );
    // A counter that was never written reads as 0.
    assert_eq!(call("get", None)?, json!(0));
    assert_eq!(call("add", Some(5))?, json!(5));
    assert_eq!(call("add", Some(3))?, json!(8));
    assert_eq!(call("get", None)?, json!(8));
    assert_eq!(get_entity(&fixture, visits)?["state"], json!(8));
    // `reset` keeps the counter, holding 0. (An operation's call returns once the backend
    // has stored the entity's new state, so get-entity sees it at once.)
    assert_eq!(call("reset", None)?, json!(0));
    let entity = get_entity(&fixture, visits)?;
    assert_eq!(
        (&entity["exists"], &entity["state"]),
        (&json!(true), &json!(0)),
        "{entity:#}"
    );
    assert_eq!(call("get", None)?, json!(0));
    assert_eq!(call("add", Some(-2))?, json!(-2));
    // `delete` removes the state: the counter has none. The reference backend still lists
    // the entity (`exists: true`, `state: null`) until its storage is cleaned; other
    // backends may report `exists: false`. Either way there is no state.
    assert_eq!(call("delete", None)?, json!(0));
    let entity = get_entity(&fixture, visits)?;
    assert_eq!(
        (&entity["exists"], &entity["state"]),
        (&json!(true), &Value::Null),
        "{entity:#}"
    );
    // After delete the counter starts over from nothing; reading does not write.
    assert_eq!(call("get", None)?, json!(0));
    assert_eq!(get_entity(&fixture, visits)?["state"], Value::Null);
    assert_eq!(call("add", Some(1))?, json!(1));
    assert_eq!(get_entity(&fixture, visits)?["state"], json!(1));

    // Signals, then a call: the call runs after every signal sent before it.
    let count =
        |times: u32| output_of(&fixture, "count_to", json!({"key": "laps", "times": times}));
    assert_eq!(count(5)?, json!(5));
    assert_eq!(count(3)?, json!(8));
    let get_laps = json!({"key": "laps", "operation": "get"});
    assert_eq!(output_of(&fixture, "call_counter", get_laps)?, json!(8));

    // An unknown operation fails the call with a message naming it and the entity.
    let input = json!({"key": "visits", "operation": "multiply", "amount": 2});
    let failure = entity_failure_of(&fixture, "call_counter", input, "UnknownEntityOperation")?;
    assert!(
        message(&failure).contains("'multiply'") && message(&failure).contains("@counter@visits"),
        "{failure:#}"
    );
    // ... and changes nothing.
    let input = json!({"key": "visits", "operation": "get"});
    assert_eq!(output_of(&fixture, "call_counter", input)?, json!(1));

    // `add` without an amount is refused by the entity.
    let input = json!({"key": "visits", "operation": "add"});
    let failure = entity_failure_of(&fixture, "call_counter", input, "InvalidInput")?;
    assert!(message(&failure).contains("needs an amount"), "{failure:#}");

    // Too many signals for one history is refused before any is sent.
    let failure = failure_of(&fixture, "count_to", json!({"key": "laps", "times": 1001}))?;
    assert_eq!(failure["error_type"], "InvalidInput", "{failure:#}");
    assert!(message(&failure).contains("at most 1000"), "{failure:#}");
    Ok(())
}

#[test]
fn an_overdraft_is_refused_with_a_typed_error_and_changes_nothing() -> Result<()> {
    let fixture = Fixture::start(&["entities"])?;
    let openings = json!([{"key": "alice", "amount": 50}, {"key": "bob", "amount": 5}]);
    let opened = output_of(&fixture, "open_accounts", openings)?;
    assert_eq!(opened, json!({"alice": 50, "bob": 5}));

    // The entity refuses; the orchestration catches the typed failure and reports it.
    let overdraft = json!({"account": "alice", "amount": 80});
    let refused = output_of(&fixture, "withdraw", overdraft)?;
    assert_eq!(refused["withdrawn"], false, "{refused:#}");
    assert_eq!(refused["balance"], 50, "{refused:#}");
    assert_eq!(
        refused["reason"]["error_type"], "InsufficientFunds",
        "{refused:#}"
    );
    let text = message(&refused["reason"]);
    assert!(
        text.contains("'alice'") && text.contains("50") && text.contains("80"),
        "the refusal should name the account, the balance and the amount: {refused:#}"
    );

    // A transfer that cannot be covered moves nothing and completes, saying why.
    let transfer = json!({"from": "alice", "to": "bob", "amount": 80});
    let result = output_of(&fixture, "transfer", transfer)?;
    assert_eq!(result["transferred"], false, "{result:#}");
    assert_eq!(result["from_balance"], 50, "{result:#}");
    assert_eq!(result["to_balance"], 5, "{result:#}");
    assert_eq!(
        result["reason"]["error_type"], "InsufficientFunds",
        "{result:#}"
    );

    // Rolled back: both balances are as they were.
    assert_eq!(total_balance(&fixture, &["alice"])?, json!(50));
    assert_eq!(total_balance(&fixture, &["bob"])?, json!(5));

    // What the balance covers goes through.
    let withdrawal = json!({"account": "alice", "amount": 20});
    let withdrawn = output_of(&fixture, "withdraw", withdrawal)?;
    assert_eq!(withdrawn, json!({"withdrawn": true, "balance": 30}));
    let transfer = json!({"from": "alice", "to": "bob", "amount": 30});
    let result = output_of(&fixture, "transfer", transfer)?;
    assert_eq!(
        result,
        json!({"transferred": true, "from_balance": 0, "to_balance": 35})
    );
    // Each account counts once, however often it is listed; unknown accounts hold 0.
    let keys = ["alice", "bob", "bob", "nobody"];
    assert_eq!(total_balance(&fixture, &keys)?, json!(35));
    Ok(())
}

#[test]
fn invalid_requests_fail_clearly_before_anything_moves() -> Result<()> {
    let fixture = Fixture::start(&["entities"])?;
    let invalid = |name: &str, input: Value, expected: &str| -> Result<()> {
        let failure = failure_of(&fixture, name, input)?;
        assert_eq!(failure["error_type"], "InvalidInput", "{failure:#}");
        assert!(message(&failure).contains(expected), "{failure:#}");
        Ok(())
    };

    let to_itself = json!({"from": "alice", "to": "alice", "amount": 1});
    invalid("transfer", to_itself, "to itself")?;
    let nothing = json!({"from": "alice", "to": "bob", "amount": 0});
    invalid("transfer", nothing, "must be positive")?;
    let bad_key = json!({"from": "al@ice", "to": "bob", "amount": 1});
    // `?` on the SDK's id check: InvalidInput, and the message names the key.
    invalid("transfer", bad_key, "must not contain '@' (got 'al@ice')")?;
    let typo = json!({"from": "alice", "to": "bob", "amount": 1, "memo": "rent"});
    invalid("transfer", typo, "unknown field `memo`")?;

    // One bad line refuses the whole request: carol is not opened either.
    let openings = json!([{"key": "carol", "amount": 10}, {"key": "dave", "amount": -1}]);
    invalid("open_accounts", openings, "must be positive")?;
    let twice = json!([{"key": "carol", "amount": 10}, {"key": "carol", "amount": 10}]);
    invalid("open_accounts", twice, "listed twice")?;
    assert_eq!(total_balance(&fixture, &["carol"])?, json!(0));

    // The entity itself refuses a withdrawal of nothing; `withdraw` reports only
    // insufficient funds as a result, so this fails the orchestration.
    let withdrawal = json!({"account": "carol", "amount": 0});
    let failure = entity_failure_of(&fixture, "withdraw", withdrawal, "InvalidAmount")?;
    assert!(
        message(&failure).contains("must be positive"),
        "{failure:#}"
    );
    Ok(())
}

/// The accounts of the proof, each opened with [`OPENING_BALANCE`].
const ACCOUNTS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const OPENING_BALANCE: i64 = 100;
const TRANSFERS: usize = 40;
/// Every tenth transfer asks for more than all the money there is: always refused.
const TOO_MUCH: i64 = 1_000;

/// A deterministic pseudo-random sequence (xorshift64): every run plans the same
/// transfers, whatever order the backend then runs them in.
struct Xorshift(u64);

impl Xorshift {
    /// A number in `0..below`.
    fn below(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// The transfers to make: (source index, destination index, amount), in both directions
/// between every pair of accounts.
fn plan_transfers() -> Vec<(usize, usize, i64)> {
    let mut random = Xorshift(0x5eed_ba4c);
    let accounts = ACCOUNTS.len() as u64;
    (0..TRANSFERS)
        .map(|i| {
            let from = random.below(accounts);
            let to = (from + 1 + random.below(accounts - 1)) % accounts;
            // Up to 1.5 times an opening balance: often more than the source holds.
            let amount = if i % 10 == 9 {
                TOO_MUCH
            } else {
                1 + random.below(150) as i64
            };
            (from as usize, to as usize, amount)
        })
        .collect()
}

#[test]
fn concurrent_transfers_neither_create_nor_lose_money() -> Result<()> {
    let fixture = Fixture::start(&["entities"])?;
    let all_accounts = json!(ACCOUNTS);
    let openings: Vec<Value> = ACCOUNTS
        .iter()
        .map(|key| json!({"key": key, "amount": OPENING_BALANCE}))
        .collect();
    output_of(&fixture, "open_accounts", json!(openings))?;
    let initial_total = OPENING_BALANCE * ACCOUNTS.len() as i64;

    // Start everything before waiting for anything, so the transfers really contend for
    // the accounts; an audit every ten transfers sums all four accounts mid-flight.
    let plan = plan_transfers();
    let mut transfers = Vec::with_capacity(plan.len());
    let mut audits = Vec::new();
    for (i, &(from, to, amount)) in plan.iter().enumerate() {
        let input = json!({"from": ACCOUNTS[from], "to": ACCOUNTS[to], "amount": amount});
        transfers.push(fixture.client.start("transfer", Some(&input))?);
        if i % 10 == 5 {
            audits.push(fixture.client.start("total_balance", Some(&all_accounts))?);
        }
    }

    // Replay the transfers that went through on a ledger of our own.
    let mut ledger: BTreeMap<&str, i64> = ACCOUNTS.iter().map(|&k| (k, OPENING_BALANCE)).collect();
    let (mut moved, mut refused) = (0, 0);
    for (id, &(from, to, amount)) in transfers.iter().zip(&plan) {
        let state = fixture.client.wait(id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
        let result = &state["output"];
        let from_balance = result["from_balance"].as_i64().expect("from_balance");
        let to_balance = result["to_balance"].as_i64().expect("to_balance");
        assert!(from_balance >= 0 && to_balance >= 0, "{state:#}");
        if result["transferred"] == true {
            moved += 1;
            *ledger.get_mut(ACCOUNTS[from]).unwrap() -= amount;
            *ledger.get_mut(ACCOUNTS[to]).unwrap() += amount;
        } else {
            refused += 1;
            // Refused only for a reason: the source really held less than the amount.
            assert_eq!(
                result["reason"]["error_type"], "InsufficientFunds",
                "{state:#}"
            );
            assert!(from_balance < amount, "{state:#}");
        }
    }
    // Every tenth transfer asks for more than exists. And until one transfer goes
    // through, every account holds its opening balance, so the first transfer of at
    // most that much succeeds: both outcomes happen whatever the interleaving.
    assert!(refused >= TRANSFERS / 10, "{refused} refused");
    assert!(moved > 0, "no transfer went through");
    eprintln!("{moved} transfers went through, {refused} were refused; final balances: {ledger:?}");

    // Each audit locked all four accounts: no transfer was half-done in its snapshot.
    for id in &audits {
        let state = fixture.client.wait(id, WAIT)?;
        assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
        assert_eq!(state["output"], json!(initial_total), "{state:#}");
    }

    assert_eq!(total_balance(&fixture, &ACCOUNTS)?, json!(initial_total));
    for (account, expected) in &ledger {
        let balance = total_balance(&fixture, &[account])?;
        assert_eq!(
            balance,
            json!(expected),
            "{account}: opening balance + received - sent should be the final balance"
        );
        assert!(*expected >= 0, "{account} went negative: {expected}");
    }
    Ok(())
}
