//! The test kit (`durabletask_sdk::testing`) as plugin authors use it: whole
//! orchestrations, their histories as a backend records them, entities and critical
//! sections, and non-determinism caught on changed code or in a saved history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use durabletask_sdk::proto::OrchestrationStatus;
use durabletask_sdk::proto::history_event::EventType;
use durabletask_sdk::testing::{
    HistoryBuilder, TestRuntime, Verdict, replay, replay_saved, start_time,
};
use durabletask_sdk::{
    ActivityContext, EntityContext, EntityInstanceId, Error, OrchestrationContext, Registry,
    error_types,
};
use serde_json::json;

const DAY: Duration = Duration::from_secs(86_400);

async fn say_hello(_ctx: ActivityContext, city: String) -> Result<String, Error> {
    // A real activity may await tokio timers: the kit drives it on tokio.
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(format!("Hello {city}!"))
}

async fn greet_later(ctx: OrchestrationContext, city: String) -> Result<String, Error> {
    ctx.create_timer_after(30 * DAY).await;
    Ok(ctx.call_activity("say_hello", city).await?)
}

fn kinds(runtime: &TestRuntime, id: &str) -> Vec<(i32, &'static str)> {
    runtime
        .history(id)
        .unwrap()
        .iter()
        .map(|event| {
            let kind = match event.event_type.as_ref().unwrap() {
                EventType::OrchestratorStarted(_) => "orchestratorStarted",
                EventType::OrchestratorCompleted(_) => "orchestratorCompleted",
                EventType::ExecutionStarted(_) => "executionStarted",
                EventType::ExecutionCompleted(_) => "executionCompleted",
                EventType::TaskScheduled(_) => "taskScheduled",
                EventType::TaskCompleted(_) => "taskCompleted",
                EventType::TimerCreated(_) => "timerCreated",
                EventType::TimerFired(_) => "timerFired",
                EventType::EventRaised(_) => "eventRaised",
                EventType::SubOrchestrationInstanceCreated(_) => "subOrchestrationCreated",
                EventType::SubOrchestrationInstanceCompleted(_) => "subOrchestrationCompleted",
                EventType::ExecutionSuspended(_) => "executionSuspended",
                EventType::ExecutionResumed(_) => "executionResumed",
                _ => "other",
            };
            (event.event_id, kind)
        })
        .collect()
}

#[test]
fn a_thirty_day_timer_fires_when_the_clock_is_advanced_and_the_history_is_a_backends() {
    let mut registry = Registry::new();
    registry
        .orchestrator("greet_later", greet_later)
        .activity("say_hello", say_hello);
    let mut runtime = TestRuntime::new(registry);
    let began = Instant::now();

    let id = runtime.start("greet_later", "Tokyo").unwrap();
    assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Running));
    assert_eq!(runtime.next_timer_at(), Some(start_time() + 30 * DAY));
    runtime.advance(30 * DAY - Duration::from_secs(1)).unwrap();
    assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Running));
    runtime.advance(Duration::from_secs(1)).unwrap();

    assert_eq!(runtime.output::<String>(&id).unwrap(), "Hello Tokyo!");
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(
        kinds(&runtime, &id),
        [
            (-1, "orchestratorStarted"),
            (-1, "executionStarted"),
            (1, "timerCreated"),
            (-1, "orchestratorCompleted"),
            (-1, "orchestratorStarted"),
            (-1, "timerFired"),
            (2, "taskScheduled"),
            (-1, "orchestratorCompleted"),
            (-1, "orchestratorStarted"),
            (-1, "taskCompleted"),
            (-1, "orchestratorCompleted"),
            (-1, "executionCompleted"),
        ]
    );
    // The step after the timer ran at the timer's time.
    let fired_step = &runtime.history(&id).unwrap()[4];
    assert_eq!(
        fired_step.timestamp.unwrap().seconds,
        1_767_225_600 + 30 * 86_400
    );
}

#[test]
fn activities_can_be_mocked_and_failures_keep_their_inner_chain() {
    let mut registry = Registry::new();
    registry
        .orchestrator("greet_later", greet_later)
        .activity("say_hello", say_hello);
    let mut runtime = TestRuntime::new(registry);
    runtime.mock_activity("say_hello", |city: String| -> Result<String, Error> {
        Err(Error::new("Unreachable", format!("{city} is offline")))
    });
    let id = runtime.start("greet_later", "Tokyo").unwrap();
    runtime.advance(31 * DAY).unwrap();
    assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Failed));
    let failure = runtime.failure(&id).unwrap();
    assert_eq!(failure.error_type, error_types::TASK_FAILED);
    let inner = failure.inner.unwrap();
    assert_eq!(
        (inner.error_type.as_str(), inner.message.as_str()),
        ("Unreachable", "Tokyo is offline")
    );
    let error = runtime.output::<String>(&id).unwrap_err().to_string();
    assert!(error.contains("Failed: TaskFailed"), "{error}");
}

async fn parent(ctx: OrchestrationContext, n: u32) -> Result<Vec<u32>, Error> {
    let mut children = Vec::new();
    for i in 0..n {
        children.push(ctx.call_sub_orchestrator::<_, u32>("child", i));
    }
    Ok(durabletask_sdk::orchestration::when_all(children).await?)
}

async fn child(ctx: OrchestrationContext, i: u32) -> Result<u32, Error> {
    ctx.create_timer_after(DAY * (i + 1)).await;
    Ok(i * 10)
}

#[test]
fn sub_orchestrations_are_instances_of_the_runtime_and_report_to_their_parent() {
    let mut registry = Registry::new();
    registry
        .orchestrator("parent", parent)
        .orchestrator("child", child);
    let mut runtime = TestRuntime::new(registry);
    let id = runtime.start("parent", 3).unwrap();
    assert_eq!(runtime.instance_ids().len(), 4);
    runtime.advance(2 * DAY).unwrap();
    assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Running));
    runtime.advance(DAY).unwrap();
    assert_eq!(runtime.output::<Vec<u32>>(&id).unwrap(), [0, 10, 20]);
    for child in runtime.instance_ids().iter().filter(|c| **c != id) {
        assert_eq!(runtime.status(child), Some(OrchestrationStatus::Completed));
    }
}

async fn counter_loop(ctx: OrchestrationContext, count: u32) -> Result<u32, Error> {
    if count == 3 {
        return Ok(count);
    }
    ctx.set_custom_status(json!({ "count": count }));
    let step: u32 = ctx.wait_for_external_event("step").await?;
    ctx.continue_as_new_saving_events(count + step)
}

#[test]
fn continue_as_new_starts_a_new_history_and_carries_events_over() {
    let mut registry = Registry::new();
    registry.orchestrator("counter_loop", counter_loop);
    let mut runtime = TestRuntime::new(registry);
    let id = runtime.start("counter_loop", 0).unwrap();
    assert_eq!(
        runtime.custom_status::<serde_json::Value>(&id).unwrap(),
        Some(json!({"count": 0}))
    );
    runtime.raise_event(&id, "step", 1).unwrap();
    assert_eq!(
        runtime.custom_status::<serde_json::Value>(&id).unwrap(),
        Some(json!({"count": 1}))
    );
    runtime.raise_event(&id, "step", 2).unwrap();
    assert_eq!(runtime.output::<u32>(&id).unwrap(), 3);
    // Only the last execution's history is kept.
    assert_eq!(kinds(&runtime, &id)[1], (-1, "executionStarted"));
    assert!(
        !kinds(&runtime, &id)
            .iter()
            .any(|(_, kind)| *kind == "eventRaised")
    );
}

async fn waits_for_go(ctx: OrchestrationContext, _: ()) -> Result<String, Error> {
    Ok(ctx.wait_for_external_event("go").await?)
}

async fn sends_go(ctx: OrchestrationContext, target: String) -> Result<(), Error> {
    ctx.send_event(&target, "go", "from a friend")?;
    Ok(())
}

#[test]
fn events_reach_other_instances_and_wait_while_suspended() {
    let mut registry = Registry::new();
    registry
        .orchestrator("waits_for_go", waits_for_go)
        .orchestrator("sends_go", sends_go);
    let mut runtime = TestRuntime::new(registry);
    let waiter = runtime.start("waits_for_go", ()).unwrap();
    runtime.suspend(&waiter, "hold on").unwrap();
    assert_eq!(
        runtime.status(&waiter),
        Some(OrchestrationStatus::Suspended)
    );
    let sender = runtime.start("sends_go", &waiter).unwrap();
    assert_eq!(
        runtime.status(&sender),
        Some(OrchestrationStatus::Completed)
    );
    assert_eq!(
        runtime.status(&waiter),
        Some(OrchestrationStatus::Suspended)
    );
    runtime.resume(&waiter, "go on").unwrap();
    assert_eq!(runtime.output::<String>(&waiter).unwrap(), "from a friend");
}

#[test]
fn terminate_ends_an_instance_with_its_output_and_later_events_are_dropped() {
    let mut registry = Registry::new();
    registry.orchestrator("waits_for_go", waits_for_go);
    let mut runtime = TestRuntime::new(registry);
    let id = runtime.start("waits_for_go", ()).unwrap();
    runtime.terminate(&id, "enough").unwrap();
    assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Terminated));
    runtime.raise_event(&id, "go", "late").unwrap();
    assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Terminated));
    assert!(runtime.raise_event("nobody", "go", ()).is_err());
}

fn account(ctx: &mut EntityContext, amount: Option<i64>) -> Result<i64, Error> {
    let balance = ctx.get_state::<i64>()?.unwrap_or(0);
    let balance = match ctx.operation() {
        "deposit" => balance + amount.unwrap_or(0),
        "withdraw" if amount.unwrap_or(0) > balance => {
            return Err(Error::new(
                "InsufficientFunds",
                format!("balance {balance}"),
            ));
        }
        "withdraw" => balance - amount.unwrap_or(0),
        _ => balance,
    };
    ctx.set_state(balance)?;
    Ok(balance)
}

async fn transfer(ctx: OrchestrationContext, amount: i64) -> Result<(i64, i64), Error> {
    let from = EntityInstanceId::new("account", "a")?;
    let to = EntityInstanceId::new("account", "b")?;
    let _section = ctx.lock_entities(&[from.clone(), to.clone()]).await?;
    let left: i64 = ctx.call_entity(&from, "withdraw", amount).await?;
    // Hold the lock across a day, so the test can see others wait.
    ctx.create_timer_after(DAY).await;
    let right: i64 = ctx.call_entity(&to, "deposit", amount).await?;
    Ok((left, right))
}

#[test]
fn critical_sections_lock_entities_until_they_end() {
    let mut registry = Registry::new();
    registry
        .entity("account", account)
        .orchestrator("transfer", transfer);
    let mut runtime = TestRuntime::new(registry);
    let a = EntityInstanceId::new("account", "a").unwrap();
    let b = EntityInstanceId::new("account", "b").unwrap();
    runtime.signal_entity(&a, "deposit", 100).unwrap();

    let first = runtime.start("transfer", 30).unwrap();
    let second = runtime.start("transfer", 50).unwrap();
    // The first holds both accounts: the second's lock and a deposit from outside wait.
    runtime.signal_entity(&b, "deposit", 1).unwrap();
    assert_eq!(runtime.entity_state::<i64>(&a).unwrap(), Some(70));
    assert_eq!(runtime.entity_state::<i64>(&b).unwrap(), None);

    runtime.advance(DAY).unwrap();
    assert_eq!(runtime.output::<(i64, i64)>(&first).unwrap(), (70, 30));
    // The second got the locks next (its request came before the outside deposit, which
    // still waits), and holds them for its day.
    assert_eq!(runtime.status(&second), Some(OrchestrationStatus::Running));
    assert_eq!(runtime.entity_state::<i64>(&b).unwrap(), Some(30));
    runtime.advance(DAY).unwrap();
    assert_eq!(runtime.output::<(i64, i64)>(&second).unwrap(), (20, 80));
    assert_eq!(runtime.entity_state::<i64>(&b).unwrap(), Some(81));
}

async fn call_missing(ctx: OrchestrationContext, _: ()) -> Result<i64, Error> {
    let nobody = EntityInstanceId::new("nobody", "x")?;
    Ok(ctx.call_entity(&nobody, "get", ()).await?)
}

#[test]
fn an_entity_that_is_not_registered_fails_its_callers() {
    let mut registry = Registry::new();
    registry.orchestrator("call_missing", call_missing);
    let mut runtime = TestRuntime::new(registry);
    let id = runtime.start("call_missing", ()).unwrap();
    let failure = runtime.failure(&id).unwrap();
    assert_eq!(
        failure.inner.unwrap().error_type,
        error_types::ENTITY_NOT_REGISTERED
    );
}

async fn reserve_then_charge(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("reserve", ()).await?;
    ctx.create_timer_after(3 * DAY).await;
    ctx.call_activity::<_, ()>("charge", ()).await?;
    Ok(())
}

async fn charge_then_reserve(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ctx.call_activity::<_, ()>("charge", ()).await?;
    ctx.create_timer_after(3 * DAY).await;
    ctx.call_activity::<_, ()>("reserve", ()).await?;
    Ok(())
}

/// The `order` orchestrator: as written first, or deliberately changed (its calls swapped).
fn order_registry(changed: bool) -> Registry {
    let mut registry = Registry::new();
    if changed {
        registry.orchestrator("order", charge_then_reserve);
    } else {
        registry.orchestrator("order", reserve_then_charge);
    }
    registry
}

#[test]
fn changed_code_fails_a_running_instance_as_non_deterministic() {
    let mut runtime = TestRuntime::new(order_registry(false));
    runtime.mock_activity("reserve", |_: ()| Ok(()));
    runtime.mock_activity("charge", |_: ()| Ok(()));
    let id = runtime.start("order", ()).unwrap();
    runtime.replace_registry(order_registry(true));
    runtime.advance(3 * DAY).unwrap();
    let failure = runtime.failure(&id).unwrap();
    assert_eq!(
        failure.error_type,
        error_types::NON_DETERMINISM,
        "{failure:?}"
    );
}

#[test]
fn a_saved_history_replays_against_the_code_that_made_it_and_not_against_changed_code() {
    let mut runtime = TestRuntime::new(order_registry(false));
    runtime.mock_activity("reserve", |_: ()| Ok(()));
    runtime.mock_activity("charge", |_: ()| Ok(()));
    let id = runtime.start("order", ()).unwrap();
    runtime.advance(3 * DAY).unwrap();
    // What `durabletask-host client history` prints for it.
    let events: Vec<_> = runtime
        .history(&id)
        .unwrap()
        .iter()
        .map(durabletask_json::event_to_json)
        .collect();
    let saved = json!({ "instance_id": id, "events": events }).to_string();

    let same = order_registry(false);
    assert_eq!(replay_saved(&same, &saved).unwrap(), Verdict::Deterministic);
    let changed = order_registry(true);
    let verdict = replay_saved(&changed, &saved).unwrap();
    assert!(
        matches!(verdict, Verdict::NonDeterministic(_)),
        "{verdict:?}"
    );
    assert!(replay_saved(&same, "not json").is_err());
}

#[test]
fn a_hand_built_history_replays() {
    let registry = order_registry(false);
    let fire_at = start_time() + 3 * DAY;
    let history = HistoryBuilder::start("order", json!(null))
        .activity_scheduled(1, "reserve", json!(null))
        .next_step_at(start_time())
        .activity_completed(1, json!(null))
        .timer_created(2, fire_at)
        .build();
    assert_eq!(
        replay(&registry, "order-1", history),
        Verdict::Deterministic
    );
}

#[test]
fn a_panicking_activity_fails_with_plugin_panic() {
    let mut registry = Registry::new();
    registry.orchestrator("greet_later", greet_later);
    let mut runtime = TestRuntime::new(registry);
    runtime.mock_activity("say_hello", |_: String| -> Result<String, Error> {
        panic!("boom")
    });
    let id = runtime.start("greet_later", "Tokyo").unwrap();
    runtime.advance(30 * DAY).unwrap();
    let inner = runtime.failure(&id).unwrap().inner.unwrap();
    assert_eq!(
        (inner.error_type.as_str(), inner.message.as_str()),
        (error_types::PLUGIN_PANIC, "boom")
    );
}

#[tokio::test]
async fn real_activities_run_inside_a_tokio_test_too() {
    let mut registry = Registry::new();
    registry
        .orchestrator("greet_later", greet_later)
        .activity("say_hello", say_hello);
    let mut runtime = TestRuntime::new(registry);
    let id = runtime.start("greet_later", "Lima").unwrap();
    runtime.advance(30 * DAY).unwrap();
    assert_eq!(runtime.output::<String>(&id).unwrap(), "Hello Lima!");
}
