//! The lighter forms of the API (issue 14), run whole with the test kit: races and joins
//! of tasks of different types, continue-as-new as a return, typed operations of function
//! entities, critical sections left at the end of their scope, borrowed accessors. Every
//! finished history is replayed against the code again, which must accept it.
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use durabletask_sdk::entity::{OperationInput, OperationOutput, UNKNOWN_ENTITY_OPERATION};
use durabletask_sdk::orchestration::{Winner2, Winner3, join, race};
use durabletask_sdk::proto::OrchestrationStatus;
use durabletask_sdk::testing::{TestRuntime, Verdict, replay};
use durabletask_sdk::{
    EntityContext, EntityInstanceId, Error, OrchestrationContext, Registry, error_types,
};

const HOUR: Duration = Duration::from_secs(60 * 60);

// ---- orchestrators and entities ----

/// The README's race: an approval against a one-hour deadline.
async fn approval(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    let approved = ctx.wait_for_external_event::<bool>("approval");
    let deadline = ctx.create_timer_after(HOUR);
    Ok(match race((approved, deadline)).await {
        Winner2::First(approved) => format!("approved: {}", approved?),
        Winner2::Second(()) => "timed out".to_owned(),
    })
}

/// Three racers of three types, one of them an async block (not `Unpin`); what runs
/// next depends on the winner, so replay must pick the same one.
async fn three_way(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    let count = ctx.wait_for_external_event::<u32>("count");
    let text = ctx.wait_for_external_event::<String>("text");
    let timer = ctx.create_timer_after(HOUR);
    let late = async move {
        timer.await;
        "late"
    };
    let winner = race((count, text, late)).await;
    let index = winner.index();
    let text = match winner {
        Winner3::First(count) => format!("count {}", count?),
        Winner3::Second(text) => text?,
        Winner3::Third(late) => late.to_owned(),
    };
    Ok(ctx.call_activity("echo", format!("{index}:{text}")).await?)
}

/// The README's join: an activity, a sub-orchestration and an entity call.
async fn profile(ctx: OrchestrationContext, user: String) -> Result<(String, u64, i64), Error> {
    let visits = EntityInstanceId::new("counter", &user)?;
    let (name, orders, count) = join((
        ctx.call_activity::<_, String>("load_name", &user),
        ctx.call_sub_orchestrator::<_, u64>("count_orders", &user),
        ctx.call_entity::<_, i64>(&visits, "get", ()),
    ))
    .await?;
    Ok((name, orders, count))
}

async fn count_orders(_ctx: OrchestrationContext, user: String) -> Result<u64, Error> {
    Ok(user.len() as u64)
}

/// A join whose second task fails: the failure reaches `?` like `when_all`'s.
async fn failing_join(ctx: OrchestrationContext, _: ()) -> Result<(String, String), Error> {
    Ok(join((
        ctx.call_activity::<_, String>("load_name", "ada"),
        ctx.call_activity::<_, String>("explode", ()),
    ))
    .await?)
}

/// Counts to 3 over three executions, continuing as new with a plain `return`.
async fn count_up(ctx: OrchestrationContext, n: u32) -> Result<u32, Error> {
    ctx.create_timer_after(Duration::from_secs(1)).await;
    if n < 3 {
        return ctx.continue_as_new(n + 1);
    }
    Ok(n)
}

/// The typed counter: `add` takes an `i64`, `get` nothing, `describe` returns text.
fn counter(ctx: &mut EntityContext, input: OperationInput) -> Result<OperationOutput, Error> {
    ctx.dispatch(input)
        .on("add", |ctx, amount: i64| {
            let value = ctx.get_state::<i64>()?.unwrap_or(0) + amount;
            ctx.set_state(value)?;
            Ok(value)
        })
        .on("get", |ctx, (): ()| {
            Ok(ctx.get_state::<i64>()?.unwrap_or(0))
        })
        .on("describe", |ctx, prefix: String| {
            Ok(format!("{prefix}{}", ctx.get_state::<i64>()?.unwrap_or(0)))
        })
        .finish()
}

/// Calls one counter operation with a JSON input and returns its result as JSON.
async fn call_counter(
    ctx: OrchestrationContext,
    (operation, input): (String, serde_json::Value),
) -> Result<serde_json::Value, Error> {
    let counter = EntityInstanceId::new("counter", "c")?;
    Ok(ctx.call_entity(&counter, &operation, input).await?)
}

/// Adds 1 to the counter inside a scoped section, then waits for `finish` outside it.
async fn scoped_then_wait(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
    let counter = EntityInstanceId::new("counter", "c")?;
    let value = {
        let _locks = ctx
            .lock_entities(std::slice::from_ref(&counter))
            .await?
            .into_guard();
        ctx.call_entity::<_, i64>(&counter, "add", 1).await?
    };
    // Outside the section: a signal to the counter is allowed again.
    ctx.signal_entity(&counter, "add", 100)?;
    ctx.wait_for_external_event::<()>("finish").await?;
    Ok(value)
}

/// Holds a scoped section across a wait: the end of each step must not leave it.
async fn hold_then_release(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    let counter = EntityInstanceId::new("counter", "c")?;
    let _locks = ctx
        .lock_entities(std::slice::from_ref(&counter))
        .await?
        .into_guard();
    ctx.call_entity::<_, i64>(&counter, "add", 1).await?;
    ctx.wait_for_external_event::<()>("release").await?;
    ctx.call_entity::<_, i64>(&counter, "add", 10).await?;
    Ok(())
}

/// Leaves the section through an early `return`.
async fn early_return(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
    let counter = EntityInstanceId::new("counter", "c")?;
    let _locks = ctx
        .lock_entities(std::slice::from_ref(&counter))
        .await?
        .into_guard();
    let value: i64 = ctx.call_entity(&counter, "get", ()).await?;
    if value >= 0 {
        return Ok(value);
    }
    ctx.call_entity::<_, i64>(&counter, "add", 1).await?;
    Ok(value)
}

/// Locks the counter and reads it: completes only once nobody else holds it.
async fn lock_and_read(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
    let counter = EntityInstanceId::new("counter", "c")?;
    let locks = ctx.lock_entities(std::slice::from_ref(&counter)).await?;
    let value = ctx.call_entity(&counter, "get", ()).await?;
    locks.release();
    Ok(value)
}

/// Every borrowed accessor next to its owned twin.
async fn who(ctx: OrchestrationContext, _: ()) -> Result<Vec<Option<String>>, Error> {
    assert_eq!(ctx.instance_id_str(), ctx.instance_id());
    assert_eq!(ctx.name_str(), ctx.name());
    assert_eq!(ctx.version_str(), ctx.version().as_deref());
    assert_eq!(
        ctx.parent_instance_id_str(),
        ctx.parent_instance_id().as_deref()
    );
    Ok(vec![
        Some(ctx.instance_id_str().to_owned()),
        Some(ctx.name_str().to_owned()),
        ctx.version_str().map(str::to_owned),
        ctx.parent_instance_id_str().map(str::to_owned),
    ])
}

async fn who_parent(ctx: OrchestrationContext, _: ()) -> Result<Vec<Option<String>>, Error> {
    Ok(ctx.call_sub_orchestrator("who", ()).await?)
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .orchestrator("approval", approval)
        .orchestrator("three_way", three_way)
        .orchestrator("profile", profile)
        .orchestrator("count_orders", count_orders)
        .orchestrator("failing_join", failing_join)
        .orchestrator("count_up", count_up)
        .orchestrator("call_counter", call_counter)
        .orchestrator("scoped_then_wait", scoped_then_wait)
        .orchestrator("hold_then_release", hold_then_release)
        .orchestrator("early_return", early_return)
        .orchestrator("lock_and_read", lock_and_read)
        .orchestrator("who", who)
        .orchestrator("who_parent", who_parent)
        .entity("counter", counter);
    registry
}

fn runtime() -> TestRuntime {
    let mut runtime = TestRuntime::new(registry());
    runtime
        .mock_activity("load_name", |user: String| Ok(format!("name of {user}")))
        .mock_activity("echo", |text: String| Ok(text))
        .mock_activity("explode", |(): ()| -> Result<String, Error> {
            Err(Error::new("Boom", "exploded"))
        });
    runtime
}

/// The instance's whole history replays on the same code without a complaint.
fn assert_replays(runtime: &TestRuntime, id: &str) {
    let history = runtime.history(id).unwrap().to_vec();
    assert_eq!(replay(&registry(), id, history), Verdict::Deterministic);
}

// ---- races ----

#[test]
fn the_event_wins_the_race_when_it_comes_before_the_deadline() {
    let mut runtime = runtime();
    let id = runtime.start("approval", ()).unwrap();
    runtime.advance(HOUR / 2).unwrap();
    runtime.raise_event(&id, "approval", true).unwrap();
    assert_eq!(runtime.output::<String>(&id).unwrap(), "approved: true");
    // The timer fires later, into a finished orchestration: nothing changes.
    runtime.advance(HOUR).unwrap();
    assert_eq!(runtime.output::<String>(&id).unwrap(), "approved: true");
    assert_replays(&runtime, &id);
}

#[test]
fn the_timer_wins_the_race_when_the_event_is_late() {
    let mut runtime = runtime();
    let id = runtime.start("approval", ()).unwrap();
    runtime.advance(HOUR).unwrap();
    assert_eq!(runtime.output::<String>(&id).unwrap(), "timed out");
    runtime.raise_event(&id, "approval", true).unwrap();
    assert_eq!(runtime.output::<String>(&id).unwrap(), "timed out");
    assert_replays(&runtime, &id);
}

#[test]
fn a_bad_event_payload_wins_the_race_as_a_failure() {
    let mut runtime = runtime();
    let id = runtime.start("approval", ()).unwrap();
    runtime.raise_event(&id, "approval", "yes").unwrap();
    let failure = runtime.failure(&id).unwrap();
    assert_eq!(failure.error_type, error_types::TASK_FAILED);
    assert_replays(&runtime, &id);
}

#[test]
fn a_race_of_three_types_is_won_by_the_first_completion_in_history() {
    let mut runtime = runtime();
    let by_text = runtime.start("three_way", ()).unwrap();
    runtime.raise_event(&by_text, "text", "hello").unwrap();
    runtime.raise_event(&by_text, "count", 3).unwrap();
    assert_eq!(runtime.output::<String>(&by_text).unwrap(), "1:hello");
    assert_replays(&runtime, &by_text);

    let by_timer = runtime.start("three_way", ()).unwrap();
    runtime.advance(HOUR).unwrap();
    runtime.raise_event(&by_timer, "count", 3).unwrap();
    assert_eq!(runtime.output::<String>(&by_timer).unwrap(), "2:late");
    assert_replays(&runtime, &by_timer);

    let by_count = runtime.start("three_way", ()).unwrap();
    runtime.raise_event(&by_count, "count", 3).unwrap();
    assert_eq!(runtime.output::<String>(&by_count).unwrap(), "0:count 3");
    assert_replays(&runtime, &by_count);
}

// ---- joins ----

#[test]
fn a_join_of_three_types_gives_every_output_in_tuple_order() {
    let mut runtime = runtime();
    let visits = EntityInstanceId::new("counter", "ada").unwrap();
    runtime.signal_entity(&visits, "add", 7).unwrap();
    let id = runtime.start("profile", "ada").unwrap();
    assert_eq!(
        runtime.output::<(String, u64, i64)>(&id).unwrap(),
        ("name of ada".to_owned(), 3, 7)
    );
    assert_replays(&runtime, &id);
}

#[test]
fn a_join_fails_with_the_failure_of_its_failed_task() {
    let mut runtime = runtime();
    let id = runtime.start("failing_join", ()).unwrap();
    let failure = runtime.failure(&id).unwrap();
    assert_eq!(failure.error_type, error_types::TASK_FAILED);
    let inner = failure.inner.unwrap();
    assert_eq!(inner.error_type, "Boom");
    assert_replays(&runtime, &id);
}

// ---- continue-as-new ----

#[test]
fn continue_as_new_reads_as_a_return() {
    let mut runtime = runtime();
    let id = runtime.start("count_up", 0).unwrap();
    runtime.advance(Duration::from_secs(10)).unwrap();
    assert_eq!(runtime.output::<u32>(&id).unwrap(), 3);
    assert_replays(&runtime, &id);
}

#[test]
fn continue_as_new_reads_as_a_return_in_a_closure_too() {
    let mut registry = Registry::new();
    registry.orchestrator("halve", |ctx: OrchestrationContext, n: u64| async move {
        if n > 1 {
            return ctx.continue_as_new(n / 2);
        }
        Ok(n)
    });
    let mut runtime = TestRuntime::new(registry);
    let id = runtime.start("halve", 40).unwrap();
    assert_eq!(runtime.output::<u64>(&id).unwrap(), 1);
}

// ---- typed entity operations ----

#[test]
fn typed_entity_operations_take_and_return_their_own_types() {
    let mut runtime = runtime();
    let add = runtime
        .start("call_counter", ("add", serde_json::json!(5)))
        .unwrap();
    assert_eq!(runtime.output::<i64>(&add).unwrap(), 5);
    let get = runtime
        .start("call_counter", ("get", serde_json::Value::Null))
        .unwrap();
    assert_eq!(runtime.output::<i64>(&get).unwrap(), 5);
    let describe = runtime
        .start("call_counter", ("describe", serde_json::json!("n=")))
        .unwrap();
    assert_eq!(runtime.output::<String>(&describe).unwrap(), "n=5");
    for id in [add, get, describe] {
        assert_replays(&runtime, &id);
    }
}

#[test]
fn a_wrong_input_type_fails_only_that_operation() {
    let mut runtime = runtime();
    let counter_id = EntityInstanceId::new("counter", "c").unwrap();
    runtime.signal_entity(&counter_id, "add", 2).unwrap();
    let id = runtime
        .start("call_counter", ("add", serde_json::json!("three")))
        .unwrap();
    let inner = runtime.failure(&id).unwrap().inner.unwrap();
    assert_eq!(inner.error_type, error_types::INVALID_INPUT);
    assert!(
        inner.message.contains("does not fit its input type i64"),
        "{}",
        inner.message
    );
    // `get` takes no input: one is refused too.
    let id = runtime
        .start("call_counter", ("get", serde_json::json!(1)))
        .unwrap();
    let inner = runtime.failure(&id).unwrap().inner.unwrap();
    assert_eq!(inner.error_type, error_types::INVALID_INPUT);
    assert_eq!(runtime.entity_state::<i64>(&counter_id).unwrap(), Some(2));
}

#[test]
fn an_operation_without_a_handler_is_unknown() {
    let mut runtime = runtime();
    let id = runtime
        .start("call_counter", ("multiply", serde_json::json!(2)))
        .unwrap();
    let inner = runtime.failure(&id).unwrap().inner.unwrap();
    assert_eq!(inner.error_type, UNKNOWN_ENTITY_OPERATION);
    assert_eq!(
        inner.message,
        "Entity '@counter@c' has no operation 'multiply'"
    );
}

// ---- scoped critical sections ----

#[test]
fn a_scoped_section_is_left_at_the_end_of_its_scope() {
    let mut runtime = runtime();
    let holder = runtime.start("scoped_then_wait", ()).unwrap();
    // Still running (waiting for `finish`), but out of its section: another
    // orchestration can lock the counter.
    assert_eq!(runtime.status(&holder), Some(OrchestrationStatus::Running));
    let reader = runtime.start("lock_and_read", ()).unwrap();
    assert_eq!(runtime.output::<i64>(&reader).unwrap(), 101);
    runtime.raise_event(&holder, "finish", ()).unwrap();
    assert_eq!(runtime.output::<i64>(&holder).unwrap(), 1);
    assert_replays(&runtime, &holder);
    assert_replays(&runtime, &reader);
}

#[test]
fn a_scoped_section_is_held_across_steps_until_its_scope_ends() {
    let mut runtime = runtime();
    let holder = runtime.start("hold_then_release", ()).unwrap();
    let reader = runtime.start("lock_and_read", ()).unwrap();
    // The holder's steps ended while it held the guard: the locks stay.
    assert_eq!(runtime.status(&reader), Some(OrchestrationStatus::Running));
    runtime.raise_event(&holder, "release", ()).unwrap();
    assert_eq!(
        runtime.status(&holder),
        Some(OrchestrationStatus::Completed)
    );
    assert_eq!(runtime.output::<i64>(&reader).unwrap(), 11);
    assert_replays(&runtime, &holder);
    assert_replays(&runtime, &reader);
}

#[test]
fn an_early_return_leaves_the_scoped_section_as_the_manual_release_would() {
    let mut runtime = runtime();
    let id = runtime.start("early_return", ()).unwrap();
    assert_eq!(runtime.output::<i64>(&id).unwrap(), 0);
    let reader = runtime.start("lock_and_read", ()).unwrap();
    assert_eq!(runtime.output::<i64>(&reader).unwrap(), 0);
    assert_replays(&runtime, &id);
}

// ---- borrowed accessors ----

#[test]
fn borrowed_accessors_match_the_owned_ones() {
    let mut runtime = runtime();
    runtime
        .start_versioned("who-1", "who", Some("2.0"), ())
        .unwrap();
    assert_eq!(
        runtime.output::<Vec<Option<String>>>("who-1").unwrap(),
        [
            Some("who-1".into()),
            Some("who".into()),
            Some("2.0".into()),
            None
        ]
    );
    let parent = runtime.start("who_parent", ()).unwrap();
    let child = runtime.output::<Vec<Option<String>>>(&parent).unwrap();
    assert_eq!(child.get(3), Some(&Some(parent.clone())));
}

#[test]
fn a_guard_sends_exactly_what_the_manual_release_sends() {
    async fn manual(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
        let counter = EntityInstanceId::new("counter", "c")?;
        let locks = ctx.lock_entities(std::slice::from_ref(&counter)).await?;
        let value = ctx.call_entity(&counter, "add", 1).await?;
        locks.release();
        ctx.signal_entity(&counter, "add", 1)?;
        Ok(value)
    }
    async fn scoped(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
        let counter = EntityInstanceId::new("counter", "c")?;
        let value = {
            let _locks = ctx
                .lock_entities(std::slice::from_ref(&counter))
                .await?
                .into_guard();
            ctx.call_entity(&counter, "add", 1).await?
        };
        ctx.signal_entity(&counter, "add", 1)?;
        Ok(value)
    }
    let history_of = |registry: Registry| {
        let mut runtime = TestRuntime::new(registry);
        let id = runtime.start("transfer", ()).unwrap();
        assert_eq!(runtime.output::<i64>(&id).unwrap(), 1);
        runtime.history(&id).unwrap().to_vec()
    };
    let mut by_hand = Registry::new();
    by_hand
        .orchestrator("transfer", manual)
        .entity("counter", counter);
    let mut by_scope = Registry::new();
    by_scope
        .orchestrator("transfer", scoped)
        .entity("counter", counter);
    assert_eq!(history_of(by_hand), history_of(by_scope));
}
