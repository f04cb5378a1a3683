//! The entities and orchestrators of conformance scenarios 35-60 (`shared/spec/protocol.md`
//! §8), written with our SDK. The end-to-end tests (`tests/tests/conformance_entities.rs`)
//! observe them the way a user would: through instance states and `get-entity`.
//!
//! Every entity keeps a run count as its state (the reference tests' `do_nothing` sets the
//! state to 1; counting also shows how often an operation ran), so "the entity ran" is
//! checked on the backend, not inside the plugin.

use std::time::Duration;

use durabletask_sdk::{EntityContext, EntityInstanceId, Error, OrchestrationContext, Registry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The failure every `fail` operation raises (the reference tests' message).
const SOMETHING_WENT_WRONG: &str = "Something went wrong!";

// ---- entities ----

/// A class entity counting its `do_nothing` runs; registered under several names
/// ("EntityNameCustom", "EmptyEntity", "FailingEntity") as the reference tests register
/// their classes.
#[derive(Default, Serialize, Deserialize)]
struct RunCounter(u64);

impl RunCounter {
    /// Takes any input, null included (scenario 35 sends none).
    fn do_nothing(&mut self, _input: Option<Value>) -> Result<(), Error> {
        self.0 += 1;
        Ok(())
    }

    fn fail(&mut self) -> Result<(), Error> {
        Err(Error::new("ValueError", SOMETHING_WENT_WRONG))
    }
}

durabletask_sdk::entity_operations!(RunCounter { do_nothing, fail });

/// A function entity: `do_nothing` counts runs; `signal_other` signals `do_nothing` to
/// `<its key>_otherEntity` of the same entity; `start_orchestration` starts
/// `empty_orchestrator` with the instance id `<its key>_started` and returns it; `fail`
/// fails.
fn function_entity(ctx: &mut EntityContext, _input: Option<Value>) -> Result<Value, Error> {
    match ctx.operation() {
        "do_nothing" => {
            let runs: u64 = ctx.get_state()?.unwrap_or(0);
            ctx.set_state(runs + 1)?;
            Ok(Value::Null)
        }
        "signal_other" => {
            let id = ctx.entity_id();
            let other = EntityInstanceId::new(id.name(), format!("{}_otherEntity", id.key()))?;
            ctx.signal_entity(&other, "do_nothing", ())?;
            Ok(Value::Null)
        }
        "start_orchestration" => {
            let instance = format!("{}_started", ctx.entity_id().key());
            let started =
                ctx.schedule_new_orchestration("empty_orchestrator", (), Some(instance))?;
            Ok(Value::String(started))
        }
        "fail" => Err(Error::new("ValueError", SOMETHING_WENT_WRONG)),
        other => Err(Error::new(
            "UnknownOperation",
            format!("{} has no operation '{other}'", ctx.entity_id()),
        )),
    }
}

// ---- orchestrators ----

/// Names an entity and an operation.
#[derive(Deserialize)]
struct Target {
    entity: String,
    #[serde(default = "do_nothing")]
    operation: String,
}

fn do_nothing() -> String {
    "do_nothing".to_owned()
}

impl Target {
    fn id(&self) -> Result<EntityInstanceId, Error> {
        Ok(EntityInstanceId::parse(&self.entity)?)
    }
}

/// Scenarios 37, 52: signals and returns at once.
async fn signal_entity(ctx: OrchestrationContext, target: Target) -> Result<(), Error> {
    ctx.signal_entity(&target.id()?, &target.operation, ())
}

/// Scenario 41: signals, to be delivered two seconds after this orchestration's clock.
async fn signal_entity_later(ctx: OrchestrationContext, target: Target) -> Result<(), Error> {
    let at = ctx.current_utc_datetime() + Duration::from_secs(2);
    ctx.signal_entity_at(&target.id()?, &target.operation, (), at)
}

/// Scenarios 38, 42, 43, 53, 55: calls and returns the result; a failed operation fails
/// the orchestration.
async fn call_entity(ctx: OrchestrationContext, target: Target) -> Result<Value, Error> {
    Ok(ctx
        .call_entity(&target.id()?, &target.operation, ())
        .await?)
}

/// Scenarios 44, 45: calls `fail`, catches the failure and returns its message.
async fn catch_entity_failure(ctx: OrchestrationContext, target: Target) -> Result<String, Error> {
    match ctx.call_entity::<_, Value>(&target.id()?, "fail", ()).await {
        Ok(value) => Err(Error::new("Unexpected", format!("fail returned {value}"))),
        Err(failure) => Ok(failure.message),
    }
}

/// Scenario 46: a failed call inside a critical section, then the same call after it;
/// returns how many failures were caught (2 when the lock was given back).
async fn failure_unlocks_entity(ctx: OrchestrationContext, target: Target) -> Result<u32, Error> {
    let id = target.id()?;
    let mut caught = 0;
    let section = ctx.lock_entities(std::slice::from_ref(&id)).await?;
    if ctx.call_entity::<_, ()>(&id, "fail", ()).await.is_err() {
        caught += 1;
    }
    section.release();
    if ctx.call_entity::<_, ()>(&id, "fail", ()).await.is_err() {
        caught += 1;
    }
    Ok(caught)
}

/// Scenario 54: a call inside a released critical section.
async fn call_entity_with_lock(ctx: OrchestrationContext, target: Target) -> Result<(), Error> {
    let id = target.id()?;
    let section = ctx.lock_entities(std::slice::from_ref(&id)).await?;
    ctx.call_entity::<_, ()>(&id, &target.operation, ()).await?;
    section.release();
    Ok(())
}

/// Scenario 57: inside the section, signalling the locked entity and a second call to it
/// while the first is outstanding are refused; the first call goes through. A rule that
/// is not enforced fails the orchestration.
async fn locking_behavior(ctx: OrchestrationContext, target: Target) -> Result<(), Error> {
    let id = target.id()?;
    let section = ctx.lock_entities(std::slice::from_ref(&id)).await?;
    if ctx.signal_entity(&id, "do_nothing", ()).is_ok() {
        return Err(Error::new(
            "RuleNotEnforced",
            "signalling a locked entity was allowed",
        ));
    }
    let first = ctx.call_entity::<_, ()>(&id, "do_nothing", ());
    if ctx
        .call_entity::<_, ()>(&id, "do_nothing", ())
        .await
        .is_ok()
    {
        return Err(Error::new(
            "RuleNotEnforced",
            "a second concurrent call was allowed",
        ));
    }
    first.await?;
    section.release();
    Ok(())
}

/// Scenario 58: the user code fails inside the critical section.
async fn lock_then_throw(ctx: OrchestrationContext, target: Target) -> Result<(), Error> {
    let id = target.id()?;
    let _section = ctx.lock_entities(std::slice::from_ref(&id)).await?;
    ctx.call_entity::<_, ()>(&id, "do_nothing", ()).await?;
    Err(Error::new(
        "UserError",
        "thrown inside the critical section",
    ))
}

/// Scenario 59: the section is never released by the user code.
async fn lock_without_release(ctx: OrchestrationContext, target: Target) -> Result<(), Error> {
    let id = target.id()?;
    let _section = ctx.lock_entities(std::slice::from_ref(&id)).await?;
    ctx.call_entity::<_, ()>(&id, "do_nothing", ()).await?;
    Ok(())
}

/// Scenario 56: the orchestration an entity starts.
async fn empty_orchestrator(_ctx: OrchestrationContext, _input: Value) -> Result<(), Error> {
    Ok(())
}

fn register(registry: &mut Registry) {
    registry
        .entity_class::<RunCounter>("EntityNameCustom")
        .entity_class::<RunCounter>("EmptyEntity")
        .entity_class::<RunCounter>("FailingEntity")
        .entity("FunctionNameCustom", function_entity)
        .entity("failing_entity", function_entity)
        .orchestrator("signal_entity", signal_entity)
        .orchestrator("signal_entity_later", signal_entity_later)
        .orchestrator("call_entity", call_entity)
        .orchestrator("catch_entity_failure", catch_entity_failure)
        .orchestrator("failure_unlocks_entity", failure_unlocks_entity)
        .orchestrator("call_entity_with_lock", call_entity_with_lock)
        .orchestrator("locking_behavior", locking_behavior)
        .orchestrator("lock_then_throw", lock_then_throw)
        .orchestrator("lock_without_release", lock_without_release)
        .orchestrator("empty_orchestrator", empty_orchestrator);
}

durabletask_sdk::export_plugin! {
    name: "conformance-entities",
    version: "1.0.0",
    register: register,
}
