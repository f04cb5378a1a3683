//! [`TestRuntime`]: the driver. It owns the instances, entities, clock and work queue,
//! and runs work until none is left after each call of the test.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use durabletask_proto as proto;
use proto::OrchestrationStatus;
use proto::history_event::EventType;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::activities::{Activities, ActivityWork};
use super::clock::{self, Clock, TimerTarget};
use super::entities::EntityStore;
use super::error::TestError;
use super::instances::{Instance, NewInstance};
use crate::entity::EntityInstanceId;
use crate::error::{Error, FailureDetails};
use crate::orchestration::payload;
use crate::registry::Registry;

/// How many work items one call may run before the runtime gives up on ever running out
/// of work ([`TestError::Runaway`]).
const MAX_WORK_PER_CALL: usize = 100_000;

/// One piece of work waiting in the queue, first in, first out.
#[derive(Debug)]
pub(super) enum Work {
    /// An orchestration step for the instance's pending events.
    Orchestration(String),
    /// An activity to run.
    Activity(Box<ActivityWork>),
    /// An entity batch for the entity's runnable operations.
    Entity(String),
}

/// Runs a [`Registry`]'s orchestrations, activities and entities in process, with the
/// real replay engine and a clock that moves only when the test says so: no backend, no
/// plugin library, no network.
///
/// It behaves as the project's embedded backend does, with one worker:
///
/// - Each orchestration step is one [`Registry::run_orchestrator`] call whose past events
///   are the whole history so far and whose new events start with `orchestratorStarted`
///   stamped with the test clock. Every step replays everything, as in production, so a
///   non-deterministic orchestrator fails here with errorType `NonDeterminism`.
/// - The step's actions are applied the way the embedded backend applies them (the same
///   history events with the same ids), and the work they make is queued: activities,
///   sub-orchestrations (instances of this runtime), events to other instances, entity
///   operations and lock requests, terminations.
/// - Every call that changes something (`start`, `raise_event`, `advance`, …) then runs
///   the queue, first in first out, until nothing is left to do; timers are the only
///   thing that waits, for [`advance`](Self::advance).
/// - Activities run for real (their futures on a tokio current-thread runtime of the test
///   kit's own) unless replaced with [`mock_activity`](Self::mock_activity).
///
/// The clock starts at [`start_time`](super::start_time) (2026-01-01T00:00:00Z). New
/// instances without an explicit id are named `instance-1`, `instance-2`, … in order.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use durabletask_sdk::proto::OrchestrationStatus;
/// use durabletask_sdk::testing::TestRuntime;
/// use durabletask_sdk::{Error, OrchestrationContext, Registry};
///
/// async fn remind(ctx: OrchestrationContext, days: u64) -> Result<String, Error> {
///     ctx.create_timer_after(Duration::from_secs(days * 86_400)).await;
///     Ok(ctx.call_activity("send_reminder", ()).await?)
/// }
///
/// let mut registry = Registry::new();
/// registry.orchestrator("remind", remind);
/// let mut runtime = TestRuntime::new(registry);
/// runtime.mock_activity("send_reminder", |_: ()| Ok("sent"));
///
/// let id = runtime.start("remind", 30)?;
/// assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Running));
/// runtime.advance(Duration::from_secs(30 * 86_400))?; // microseconds, not a month
/// assert_eq!(runtime.output::<String>(&id)?, "sent");
/// # Ok::<(), durabletask_sdk::testing::TestError>(())
/// ```
pub struct TestRuntime {
    pub(super) registry: Registry,
    pub(super) clock: Clock,
    pub(super) instances: BTreeMap<String, Instance>,
    pub(super) entities: EntityStore,
    pub(super) activities: Activities,
    ready: VecDeque<Work>,
    /// Instances and entities already in `ready`: one queued step or batch takes all.
    queued_orchestrations: HashSet<String>,
    queued_entities: HashSet<String>,
    next_instance: u64,
    pub(super) next_generation: u64,
    pub(super) next_request: u64,
}

impl std::fmt::Debug for TestRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRuntime")
            .field("now", &self.clock.now())
            .field("instances", &self.instances.keys().collect::<Vec<_>>())
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Starting, signalling and changing instances.
impl TestRuntime {
    /// A runtime for the functions of `registry`, with nothing running, its clock at
    /// [`start_time`](super::start_time).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::Registry;
    /// use durabletask_sdk::testing::{TestRuntime, start_time};
    ///
    /// let runtime = TestRuntime::new(Registry::new());
    /// assert_eq!(runtime.now(), start_time());
    /// ```
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            clock: Clock::new(),
            instances: BTreeMap::new(),
            entities: EntityStore::default(),
            activities: Activities::default(),
            ready: VecDeque::new(),
            queued_orchestrations: HashSet::new(),
            queued_entities: HashSet::new(),
            next_instance: 0,
            next_generation: 0,
            next_request: 0,
        }
    }

    /// Runs everything from now on with `registry`'s code instead, and returns the
    /// registry used so far. Instances keep their histories: their next steps replay
    /// those histories with the new code, as a redeploy would, so a change that breaks
    /// replay fails them with errorType `NonDeterminism`.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::proto::OrchestrationStatus;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry, error_types};
    ///
    /// async fn v1(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     ctx.call_activity::<_, ()>("reserve", ()).await?;
    ///     ctx.wait_for_external_event::<()>("go").await?;
    ///     Ok(())
    /// }
    /// // The changed code makes another call where the history has `reserve`.
    /// async fn v2(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     ctx.call_activity::<_, ()>("charge", ()).await?;
    ///     ctx.wait_for_external_event::<()>("go").await?;
    ///     Ok(())
    /// }
    ///
    /// let mut old = Registry::new();
    /// old.orchestrator("flow", v1);
    /// let mut runtime = TestRuntime::new(old);
    /// runtime.mock_activity("reserve", |_: ()| Ok(()));
    /// let id = runtime.start("flow", ())?;
    ///
    /// let mut new = Registry::new();
    /// new.orchestrator("flow", v2);
    /// runtime.replace_registry(new);
    /// runtime.raise_event(&id, "go", ())?;
    /// assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Failed));
    /// let failure = runtime.failure(&id).unwrap();
    /// assert_eq!(failure.error_type, error_types::NON_DETERMINISM);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn replace_registry(&mut self, registry: Registry) -> Registry {
        std::mem::replace(&mut self.registry, registry)
    }

    /// Replaces the activity `name` with `f` for every later call: `f` gets the call's
    /// input (deserialized as `I`) and returns its result or failure. The activity need
    /// not be registered. An input that does not fit `I` fails the call with errorType
    /// `InvalidInput`, as a registered activity's would.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn checkout(ctx: OrchestrationContext, cents: u64) -> Result<String, Error> {
    ///     match ctx.call_activity::<_, String>("charge", cents).await {
    ///         Ok(receipt) => Ok(receipt),
    ///         Err(failed) => Ok(format!("declined: {}", failed.details.message)),
    ///     }
    /// }
    ///
    /// let mut registry = Registry::new();
    /// registry.orchestrator("checkout", checkout);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.mock_activity("charge", |cents: u64| {
    ///     if cents > 10_000 {
    ///         Err(Error::new("Declined", "over the limit"))
    ///     } else {
    ///         Ok(format!("charged {cents}"))
    ///     }
    /// });
    /// let small = runtime.start("checkout", 500)?;
    /// let large = runtime.start("checkout", 50_000)?;
    /// assert_eq!(runtime.output::<String>(&small)?, "charged 500");
    /// assert_eq!(runtime.output::<String>(&large)?, "declined: over the limit");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn mock_activity<F, I, O>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(I) -> Result<O, Error> + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
    {
        self.activities.mock(name.into(), f);
        self
    }

    /// Starts the orchestrator `name` with `input` under a new id (`instance-1`,
    /// `instance-2`, …), runs until nothing is left to do, and returns the id.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn double(_ctx: OrchestrationContext, n: i64) -> Result<i64, Error> {
    ///     Ok(n * 2)
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("double", double);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("double", 21)?;
    /// assert_eq!(id, "instance-1");
    /// assert_eq!(runtime.output::<i64>(&id)?, 42);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn start(&mut self, name: &str, input: impl Serialize) -> Result<String, TestError> {
        let id = loop {
            self.next_instance += 1;
            let id = format!("instance-{}", self.next_instance);
            if !self.instances.contains_key(&id) {
                break id;
            }
        };
        self.start_versioned(&id, name, None, input)?;
        Ok(id)
    }

    /// [`start`](Self::start) under the id `instance_id`; fails with
    /// [`TestError::AlreadyExists`] if that instance exists (finished or not).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::{TestError, TestRuntime};
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn noop(_ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     Ok(())
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("noop", noop);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.start_with_id("order-7", "noop", ())?;
    /// let again = runtime.start_with_id("order-7", "noop", ());
    /// assert!(matches!(again, Err(TestError::AlreadyExists(_))));
    /// # Ok::<(), TestError>(())
    /// ```
    pub fn start_with_id(
        &mut self,
        instance_id: &str,
        name: &str,
        input: impl Serialize,
    ) -> Result<(), TestError> {
        self.start_versioned(instance_id, name, None, input)
    }

    /// [`start_with_id`](Self::start_with_id) with an orchestration version (what
    /// [`OrchestrationContext::version`](crate::OrchestrationContext::version) returns), as
    /// a client's `start --version` would.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn which(ctx: OrchestrationContext, _: ()) -> Result<Option<String>, Error> {
    ///     Ok(ctx.version())
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("which", which);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.start_versioned("o-1", "which", Some("1.0.0"), ())?;
    /// assert_eq!(runtime.output::<Option<String>>("o-1")?.as_deref(), Some("1.0.0"));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn start_versioned(
        &mut self,
        instance_id: &str,
        name: &str,
        version: Option<&str>,
        input: impl Serialize,
    ) -> Result<(), TestError> {
        if self.instances.contains_key(instance_id) {
            return Err(TestError::AlreadyExists(instance_id.to_owned()));
        }
        let input = encode(&input, "orchestration input")?;
        self.create_instance(NewInstance {
            id: instance_id.to_owned(),
            name: name.to_owned(),
            version: version.map(str::to_owned),
            input,
            tags: Default::default(),
            scheduled_start: None,
            parent: None,
        });
        self.run_until_idle()
    }

    /// Raises the event `name` with `data` on an instance and runs until nothing is left
    /// to do. An event for a finished instance is dropped, as a backend drops it.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn approval(ctx: OrchestrationContext, _: ()) -> Result<bool, Error> {
    ///     Ok(ctx.wait_for_external_event::<bool>("approved").await?)
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("approval", approval);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("approval", ())?;
    /// runtime.raise_event(&id, "approved", true)?;
    /// assert!(runtime.output::<bool>(&id)?);
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn raise_event(
        &mut self,
        instance_id: &str,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), TestError> {
        let data = encode(&data, "event data")?;
        let instance = self.instance(instance_id)?;
        if !instance.is_terminal() {
            let raised = self.event(
                -1,
                EventType::EventRaised(proto::EventRaisedEvent {
                    name: name.to_owned(),
                    input: data,
                }),
            );
            self.push_event(instance_id, raised);
        }
        self.run_until_idle()
    }

    /// Suspends an instance (a no-op if it is finished or already suspended): events that
    /// arrive meanwhile wait until [`resume`](Self::resume).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::proto::OrchestrationStatus;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn waits(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     Ok(ctx.wait_for_external_event::<()>("go").await?)
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("waits", waits);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("waits", ())?;
    /// runtime.suspend(&id, "maintenance")?;
    /// runtime.raise_event(&id, "go", ())?;
    /// assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Suspended));
    /// runtime.resume(&id, "done")?;
    /// assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Completed));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn suspend(&mut self, instance_id: &str, reason: &str) -> Result<(), TestError> {
        let instance = self.instance(instance_id)?;
        if !instance.is_terminal() && !instance.effectively_suspended() {
            let suspended = self.event(
                -1,
                EventType::ExecutionSuspended(proto::ExecutionSuspendedEvent {
                    input: Some(reason.to_owned()),
                }),
            );
            self.push_event(instance_id, suspended);
        }
        self.run_until_idle()
    }

    /// Resumes a suspended instance (a no-op otherwise) and runs until nothing is left to
    /// do. See [`suspend`](Self::suspend).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn noop(_ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     Ok(())
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("noop", noop);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("noop", ())?;
    /// runtime.resume(&id, "not suspended: nothing happens")?;
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn resume(&mut self, instance_id: &str, reason: &str) -> Result<(), TestError> {
        let instance = self.instance(instance_id)?;
        if !instance.is_terminal() && instance.effectively_suspended() {
            let resumed = self.event(
                -1,
                EventType::ExecutionResumed(proto::ExecutionResumedEvent {
                    input: Some(reason.to_owned()),
                }),
            );
            self.push_event(instance_id, resumed);
        }
        self.run_until_idle()
    }

    /// Terminates an instance (not its sub-orchestrations) with `output` as its output,
    /// and runs until nothing is left to do. A finished instance is left as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::proto::OrchestrationStatus;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn waits(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     Ok(ctx.wait_for_external_event::<()>("go").await?)
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("waits", waits);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("waits", ())?;
    /// runtime.terminate(&id, "cancelled by the test")?;
    /// assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Terminated));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn terminate(
        &mut self,
        instance_id: &str,
        output: impl Serialize,
    ) -> Result<(), TestError> {
        let output = encode(&output, "termination output")?;
        self.instance(instance_id)?;
        self.terminate_instance(instance_id, output, false);
        self.run_until_idle()
    }

    /// Sends the operation `operation` with `input` to an entity, one-way, and runs until
    /// nothing is left to do.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{EntityContext, EntityInstanceId, Error, Registry};
    ///
    /// fn counter(ctx: &mut EntityContext, amount: i64) -> Result<(), Error> {
    ///     let value = ctx.get_state::<i64>()?.unwrap_or(0);
    ///     ctx.set_state(value + amount)
    /// }
    /// let mut registry = Registry::new();
    /// registry.entity("counter", counter);
    /// let mut runtime = TestRuntime::new(registry);
    /// let visits = EntityInstanceId::new("counter", "visits")?;
    /// runtime.signal_entity(&visits, "add", 2)?;
    /// runtime.signal_entity(&visits, "add", 3)?;
    /// assert_eq!(runtime.entity_state::<i64>(&visits)?, Some(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn signal_entity(
        &mut self,
        entity: &EntityInstanceId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), TestError> {
        let input = encode(&input, "operation input")?;
        let request_id = self.new_request_id();
        let target = entity.to_string();
        let signal = self.event(
            -1,
            EventType::EntityOperationSignaled(proto::EntityOperationSignaledEvent {
                request_id,
                operation: operation.to_owned(),
                scheduled_time: None,
                input,
                target_instance_id: Some(target.clone()),
            }),
        );
        self.queue_operation(&target, signal);
        self.run_until_idle()
    }

    /// Moves the clock forward by `by`, firing each durable timer when its time comes
    /// (a timer is due when its `fire_at <= now`), in order, each at its own time: the
    /// clock stops at each due time, the timer fires, and everything runs until nothing
    /// is left to do before the clock moves on. So the orchestrations see the time their
    /// timer was due, and timers created meanwhile fire within the same call if they
    /// are due by its end.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::testing::{TestRuntime, start_time};
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn ticks(ctx: OrchestrationContext, _: ()) -> Result<u64, Error> {
    ///     for _ in 0..3 {
    ///         ctx.create_timer_after(Duration::from_secs(86_400)).await;
    ///     }
    ///     let elapsed = ctx.current_utc_datetime().duration_since(start_time()).unwrap();
    ///     Ok(elapsed.as_secs() / 86_400)
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("ticks", ticks);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("ticks", ())?;
    /// runtime.advance(Duration::from_secs(10 * 86_400))?;
    /// // The last timer fired on day 3, and the orchestration saw day 3.
    /// assert_eq!(runtime.output::<u64>(&id)?, 3);
    /// assert_eq!(runtime.now(), start_time() + Duration::from_secs(10 * 86_400));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn advance(&mut self, by: Duration) -> Result<(), TestError> {
        let target = self
            .clock
            .now()
            .checked_add(by)
            .ok_or(TestError::ClockOverflow(by))?;
        while let Some(due) = self.clock.next_due().filter(|due| *due <= target) {
            self.clock.move_to(due);
            self.run_until_idle()?;
        }
        self.clock.move_to(target);
        self.run_until_idle()
    }
}

/// Reading what happened.
impl TestRuntime {
    /// The test clock's time: [`start_time`](super::start_time) plus every
    /// [`advance`](Self::advance) so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::Registry;
    /// use durabletask_sdk::testing::{TestRuntime, start_time};
    ///
    /// let mut runtime = TestRuntime::new(Registry::new());
    /// runtime.advance(Duration::from_secs(60))?;
    /// assert_eq!(runtime.now(), start_time() + Duration::from_secs(60));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// When the next durable timer (or delayed entity signal, or scheduled start) is due,
    /// if any waits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use durabletask_sdk::testing::{TestRuntime, start_time};
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn nap(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     ctx.create_timer_after(Duration::from_secs(90)).await;
    ///     Ok(())
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("nap", nap);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.start("nap", ())?;
    /// assert_eq!(runtime.next_timer_at(), Some(start_time() + Duration::from_secs(90)));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn next_timer_at(&self) -> Option<SystemTime> {
        self.clock.next_due()
    }

    /// The ids of every instance, sorted (sub-orchestrations and instances started by
    /// entities included).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::Registry;
    /// use durabletask_sdk::testing::TestRuntime;
    ///
    /// assert!(TestRuntime::new(Registry::new()).instance_ids().is_empty());
    /// ```
    pub fn instance_ids(&self) -> Vec<String> {
        self.instances.keys().cloned().collect()
    }

    /// The status of an instance, `None` if there is no such instance.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::Registry;
    /// use durabletask_sdk::testing::TestRuntime;
    ///
    /// assert_eq!(TestRuntime::new(Registry::new()).status("x"), None);
    /// ```
    pub fn status(&self, instance_id: &str) -> Option<OrchestrationStatus> {
        self.instances
            .get(instance_id)
            .map(|instance| instance.status)
    }

    /// The output of a completed instance, as `T`. Fails with
    /// [`TestError::NotCompleted`] (which carries the failure, if any) when the instance
    /// has not completed.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::{TestError, TestRuntime};
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn fails(_ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     Err(Error::new("Broken", "on purpose"))
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("fails", fails);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("fails", ())?;
    /// let error = runtime.output::<()>(&id).unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "orchestration instance 'instance-1' has no output: it is Failed: Broken: on purpose"
    /// );
    /// # Ok::<(), TestError>(())
    /// ```
    pub fn output<T: DeserializeOwned>(&self, instance_id: &str) -> Result<T, TestError> {
        let instance = self.instance(instance_id)?;
        if instance.status != OrchestrationStatus::Completed {
            let failure = instance
                .failure
                .as_ref()
                .map(|f| format!(": {}: {}", f.error_type, f.error_message))
                .unwrap_or_default();
            return Err(TestError::NotCompleted {
                instance_id: instance_id.to_owned(),
                status: instance.status,
                failure,
            });
        }
        decode(instance.output.as_deref(), || {
            format!("output of '{instance_id}'")
        })
    }

    /// The custom status an instance's last step set, as `T` (`None` when none is set).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn progress(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     ctx.set_custom_status("half way");
    ///     ctx.wait_for_external_event::<()>("go").await?;
    ///     Ok(())
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("progress", progress);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("progress", ())?;
    /// assert_eq!(runtime.custom_status::<String>(&id)?.as_deref(), Some("half way"));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn custom_status<T: DeserializeOwned>(
        &self,
        instance_id: &str,
    ) -> Result<Option<T>, TestError> {
        let instance = self.instance(instance_id)?;
        match instance.custom_status.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(text) => {
                decode(Some(text), || format!("custom status of '{instance_id}'")).map(Some)
            }
        }
    }

    /// The failure of a failed instance, with its chain of inner failures (`None` if the
    /// instance has not failed, or does not exist).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry, error_types};
    ///
    /// async fn charges(ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     ctx.call_activity::<_, ()>("charge", ()).await?;
    ///     Ok(())
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("charges", charges);
    /// let mut runtime = TestRuntime::new(registry);
    /// runtime.mock_activity("charge", |_: ()| -> Result<(), Error> {
    ///     Err(Error::new("CardDeclined", "no funds"))
    /// });
    /// let id = runtime.start("charges", ())?;
    /// let failure = runtime.failure(&id).unwrap();
    /// assert_eq!(failure.error_type, error_types::TASK_FAILED);
    /// assert_eq!(failure.inner.unwrap().error_type, "CardDeclined");
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn failure(&self, instance_id: &str) -> Option<FailureDetails> {
        let instance = self.instances.get(instance_id)?;
        instance
            .failure
            .as_ref()
            .filter(|_| instance.status == OrchestrationStatus::Failed)
            .map(FailureDetails::from_proto)
    }

    /// The history of an instance's current execution, oldest first, as a backend
    /// records it (`None` if there is no such instance).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::proto::history_event::EventType;
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{Error, OrchestrationContext, Registry};
    ///
    /// async fn noop(_ctx: OrchestrationContext, _: ()) -> Result<(), Error> {
    ///     Ok(())
    /// }
    /// let mut registry = Registry::new();
    /// registry.orchestrator("noop", noop);
    /// let mut runtime = TestRuntime::new(registry);
    /// let id = runtime.start("noop", ())?;
    /// let history = runtime.history(&id).unwrap();
    /// assert!(matches!(history[1].event_type, Some(EventType::ExecutionStarted(_))));
    /// assert!(matches!(history.last().unwrap().event_type, Some(EventType::ExecutionCompleted(_))));
    /// # Ok::<(), durabletask_sdk::testing::TestError>(())
    /// ```
    pub fn history(&self, instance_id: &str) -> Option<&[proto::HistoryEvent]> {
        self.instances
            .get(instance_id)
            .map(|instance| instance.history.as_slice())
    }

    /// An entity's state, as `T` (`None` if it has none).
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::testing::TestRuntime;
    /// use durabletask_sdk::{EntityInstanceId, Registry};
    ///
    /// let runtime = TestRuntime::new(Registry::new());
    /// let nobody = EntityInstanceId::new("counter", "nobody")?;
    /// assert_eq!(runtime.entity_state::<i64>(&nobody)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn entity_state<T: DeserializeOwned>(
        &self,
        entity: &EntityInstanceId,
    ) -> Result<Option<T>, TestError> {
        let id = entity.to_string();
        match self.entities.state(&id) {
            None => Ok(None),
            Some(text) => decode(Some(text), || format!("state of entity '{id}'")).map(Some),
        }
    }
}

/// The work loop and the helpers every part of the runtime uses.
impl TestRuntime {
    pub(super) fn instance(&self, instance_id: &str) -> Result<&Instance, TestError> {
        self.instances
            .get(instance_id)
            .ok_or_else(|| TestError::UnknownInstance(instance_id.to_owned()))
    }

    /// A history event stamped with the test clock.
    pub(super) fn event(&self, event_id: i32, kind: EventType) -> proto::HistoryEvent {
        proto::HistoryEvent {
            event_id,
            timestamp: Some(clock::to_timestamp(self.clock.now())),
            event_type: Some(kind),
        }
    }

    /// A request id for operations the runtime sends itself (client signals, entities'
    /// signals): unique and the same on every run.
    pub(super) fn new_request_id(&mut self) -> String {
        self.next_request += 1;
        format!("test-request-{}", self.next_request)
    }

    /// Appends an event to an instance's pending events and queues its step.
    pub(super) fn push_event(&mut self, instance_id: &str, event: proto::HistoryEvent) {
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance.pending.push(event);
            self.wake(instance_id);
        }
    }

    /// [`push_event`](Self::push_event), for events a finished (or unknown) instance
    /// can no longer use: they are dropped.
    pub(super) fn push_event_if_running(&mut self, instance_id: &str, event: proto::HistoryEvent) {
        if self
            .instances
            .get(instance_id)
            .is_some_and(|instance| !instance.is_terminal())
        {
            self.push_event(instance_id, event);
        }
    }

    /// Queues a step for the instance if it may run one now.
    pub(super) fn wake(&mut self, instance_id: &str) {
        let now = self.clock.now();
        let ready = self
            .instances
            .get(instance_id)
            .is_some_and(|instance| instance.dispatchable(now));
        if ready && self.queued_orchestrations.insert(instance_id.to_owned()) {
            self.ready
                .push_back(Work::Orchestration(instance_id.to_owned()));
        }
    }

    /// Queues a batch for the entity (the batch itself decides what may run).
    pub(super) fn wake_entity(&mut self, entity_id: &str) {
        if self.entities.has_runnable(entity_id)
            && self.queued_entities.insert(entity_id.to_owned())
        {
            self.ready.push_back(Work::Entity(entity_id.to_owned()));
        }
    }

    pub(super) fn queue_activity(&mut self, work: ActivityWork) {
        self.ready.push_back(Work::Activity(Box::new(work)));
    }

    /// Fires the due timers and runs the queue until it is empty (timers created with a
    /// time already past fire too).
    fn run_until_idle(&mut self) -> Result<(), TestError> {
        let mut done = 0usize;
        loop {
            self.fire_due();
            let Some(work) = self.ready.pop_front() else {
                return Ok(());
            };
            done += 1;
            if done > MAX_WORK_PER_CALL {
                return Err(TestError::Runaway(MAX_WORK_PER_CALL));
            }
            match work {
                Work::Orchestration(id) => {
                    self.queued_orchestrations.remove(&id);
                    self.step(&id);
                }
                Work::Activity(activity) => self.run_activity(*activity),
                Work::Entity(id) => {
                    self.queued_entities.remove(&id);
                    self.run_entity_batch(&id);
                }
            }
        }
    }

    /// Fires every timer due now.
    fn fire_due(&mut self) {
        while let Some(timer) = self.clock.pop_due() {
            match timer {
                TimerTarget::Orchestration {
                    instance_id,
                    generation,
                    timer_id,
                    fire_at,
                } => {
                    let current = self.instances.get(&instance_id).is_some_and(|instance| {
                        instance.generation == generation && !instance.is_terminal()
                    });
                    if current {
                        let fired = self.event(
                            -1,
                            EventType::TimerFired(proto::TimerFiredEvent {
                                fire_at: Some(fire_at),
                                timer_id,
                            }),
                        );
                        self.push_event(&instance_id, fired);
                    }
                }
                TimerTarget::EntitySignal { entity_id, event } => {
                    self.queue_operation(&entity_id, *event);
                }
                TimerTarget::ScheduledStart {
                    instance_id,
                    generation,
                } => {
                    if let Some(instance) = self.instances.get_mut(&instance_id)
                        && instance.generation == generation
                    {
                        instance.not_before = None;
                        self.wake(&instance_id);
                    }
                }
            }
        }
    }
}

/// A value as a payload; `null` is an absent payload.
pub(super) fn encode<T: Serialize + ?Sized>(
    value: &T,
    what: &str,
) -> Result<Option<String>, TestError> {
    payload::encode(value).map_err(|source| TestError::Serialize {
        what: what.to_owned(),
        source,
    })
}

/// A payload as `T`; absent or empty reads as `null`.
fn decode<T: DeserializeOwned>(
    raw: Option<&str>,
    what: impl FnOnce() -> String,
) -> Result<T, TestError> {
    payload::decode(raw).map_err(|source| TestError::Deserialize {
        what: what(),
        source,
    })
}
