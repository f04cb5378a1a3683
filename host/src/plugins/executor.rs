//! The plugin host as the worker's [`WorkItemExecutor`]: each work item goes to the
//! generation `routing` picks (or is answered on the plugins' behalf when none serves
//! it) and runs there: through `calls` in the host's process, or through the
//! generation's `isolation::Supervisor` in its child process.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use durabletask_abi::{PluginModuleRef, failure};
use durabletask_proto as proto;
use futures::future::BoxFuture;
use prost::Message as _;

use super::calls;
use super::crash_journal::{self, CrashJournal, Key};
use super::generation::Generation;
use super::generation_telemetry::WorkTelemetry;
use super::isolation::{CallKind, Work};
use super::loaded_plugin::Runner;
use super::plugin_host::PluginHost;
use super::routing::{self, Refusal};
use super::watchdog::{Call, Watchdog};
use crate::telemetry;
use crate::traces;
use crate::worker::in_flight::WorkKind;
use crate::worker::{ActivityOwner, EntityWork, OrchestratorOutcome, WorkItemExecutor};

/// A step slower than this is logged: it held up every other work item.
const SLOW_STEP: Duration = Duration::from_millis(100);

impl WorkItemExecutor for PluginHost {
    fn execute_entity(&self, work: EntityWork) -> BoxFuture<'static, proto::EntityBatchResult> {
        let generation = match routing::entity(&self.catalog(), &work) {
            Ok(generation) => generation,
            Err(result) => {
                telemetry::refused(WorkKind::Entity);
                return Box::pin(std::future::ready(*result));
            }
        };
        // Lowercase, as routing matched it: a client's `@Counter@k` must not make a new
        // label (metric series and span name) of every spelling.
        let name = entity_name(work.instance_id());
        let name: std::borrow::Cow<'_, str> = if name.chars().any(char::is_uppercase) {
            name.to_lowercase().into()
        } else {
            name.into()
        };
        let name = name.as_ref();
        let meter = Meter::new(
            WorkKind::Entity,
            name,
            &generation,
            work.instance_id(),
            None,
        );
        let operation_spans = traces::OperationSpans::before(&work, &meter.telemetry.span);
        let batch = self.run_entity(generation, work);
        let batch = async move {
            let result = batch.await;
            // Inside the batch's span (`Meter::wrap` makes it current).
            if let Some(spans) = operation_spans {
                spans.end(&result);
            }
            result
        };
        // The batch fails only as a whole; its operations' failures are on their spans.
        meter.wrap(batch, |result| result.failure_details.is_some())
    }

    fn execute_orchestrator(
        &self,
        request: proto::OrchestratorRequest,
    ) -> BoxFuture<'static, OrchestratorOutcome> {
        self.run_orchestrator(request)
    }

    fn activity_owner(&self, name: &str) -> Option<ActivityOwner> {
        self.catalog()
            .activity(name)
            .map(|generation| ActivityOwner {
                key: generation.plugin().content_hash.clone(),
                label: generation.label(),
            })
    }

    fn execute_activity(
        &self,
        request: proto::ActivityRequest,
    ) -> BoxFuture<'static, proto::ActivityResponse> {
        let generation = match routing::activity(&self.catalog(), &request) {
            Ok(generation) => generation,
            Err(response) => {
                telemetry::refused(WorkKind::Activity);
                return Box::pin(std::future::ready(*response));
            }
        };
        let meter = Meter::new(
            WorkKind::Activity,
            &request.name,
            &generation,
            durabletask_abi::activity::instance_id(&request),
            request.parent_trace_context.as_ref(),
        );
        meter.wrap(self.run_activity(generation, request), |response| {
            response.failure_details.is_some()
        })
    }
}

impl PluginHost {
    fn run_entity(
        &self,
        generation: Arc<Generation>,
        work: EntityWork,
    ) -> BoxFuture<'static, proto::EntityBatchResult> {
        let key = self.crash_journal.as_ref().map(|_| Key::entity(&work));
        let what = format!("the entity batch of {}", work.instance_id());
        if let Some(crashes) = self.poisoned(key) {
            let details = self.crashed(&generation, &what, crashes);
            return Box::pin(std::future::ready(failure::every_operation(work, details)));
        }
        match &generation.plugin().runner {
            Runner::InProcess(module) => {
                let entity_id = work.instance_id();
                let _journaled = self.journal_entry(key);
                let _watched =
                    self.watchdog
                        .enter(call(&generation, "entity batch", entity_id, entity_id));
                Box::pin(std::future::ready(calls::run_entity_batch(*module, work)))
            }
            Runner::Process(supervisor) => {
                let supervisor = Arc::clone(supervisor);
                let journal = self.crash_journal.clone();
                Box::pin(async move {
                    let (shape, request) = work.encode();
                    let outcome = supervisor
                        .call(Work {
                            kind: CallKind::EntityBatch,
                            shape,
                            request: request.into(),
                            what: &what,
                            journal: journal.as_ref().zip(key),
                            once: false,
                        })
                        .await;
                    // Held until the batch is done: a generation retired meanwhile
                    // finishes it.
                    drop(generation);
                    match outcome {
                        Ok(result) => calls::decode_entity_batch_result(&result, work),
                        Err(details) => failure::every_operation(work, details),
                    }
                })
            }
        }
    }

    fn run_orchestrator(
        &self,
        mut request: proto::OrchestratorRequest,
    ) -> BoxFuture<'static, OrchestratorOutcome> {
        let sticky = self.sticky.get(&request.instance_id);
        let catalog = self.catalog();
        let route = routing::orchestrator(
            &catalog,
            self.versioning.as_ref(),
            &request,
            sticky.as_deref(),
        );
        // Where to try the step if it fails as non-deterministic on the generation
        // chosen: only when that choice was a guess (no generation of the orchestration's
        // own version, and no memory of where it ran, as after a restart) about an
        // orchestration that has run before.
        let mut alternatives = Vec::new();
        let generation = match route {
            Ok(route) => {
                if !route.exact {
                    if sticky.is_none() && !request.past_events.is_empty() {
                        alternatives = routing::alternatives(
                            &catalog,
                            self.versioning.as_ref(),
                            &request,
                            &route.generation,
                        );
                    }
                    self.sticky.remember(
                        &request.instance_id,
                        &route.generation.plugin().content_hash,
                    );
                }
                route.generation
            }
            Err(Refusal::Fail(response)) => {
                telemetry::refused(WorkKind::Orchestration);
                return Box::pin(std::future::ready(OrchestratorOutcome::Completed(
                    *response,
                )));
            }
            Err(Refusal::Reject(reason)) => {
                telemetry::refused(WorkKind::Orchestration);
                return Box::pin(std::future::ready(OrchestratorOutcome::Rejected { reason }));
            }
        };
        let mut meter = Meter::new(
            WorkKind::Orchestration,
            orchestrator_name(&request),
            &generation,
            &request.instance_id,
            traces::orchestration_parent(&request),
        );
        let key = self
            .crash_journal
            .as_ref()
            .map(|_| Key::orchestration(&request));
        let what = format!(
            "the step of orchestration '{}' (instance {}, after {} history events)",
            orchestrator_name(&request),
            request.instance_id,
            request.past_events.len()
        );
        if let Some(crashes) = self.poisoned(key) {
            let details = self.crashed(&generation, &what, crashes);
            self.sticky.forget(&request.instance_id);
            meter.finished(true);
            return Box::pin(std::future::ready(OrchestratorOutcome::Completed(
                failure::orchestration(
                    request.instance_id.clone(),
                    failure::FIRST_ACTION_ID,
                    details,
                ),
            )));
        }
        // The host's settings win over anything the backend put under the same keys.
        request.properties.extend(self.properties.iter().cloned());
        // Only a step that may move to another generation needs to say where it ran.
        let ran_on = (!alternatives.is_empty()).then(|| meter.moved_to());
        let sticky_routes = Arc::clone(&self.sticky);
        let watchdog = Arc::clone(&self.watchdog);
        let journal = self.crash_journal.clone();
        meter.wrap(
            async move {
                // The generation is held until the step is done: a generation retired
                // meanwhile finishes it.
                let step = Step {
                    request: &request,
                    what: &what,
                    watchdog: &watchdog,
                    journal: journal.as_ref(),
                    key,
                };
                let mut response = step.run(&generation).await;
                if !alternatives.is_empty() && non_deterministic(&response) {
                    // The code it ran on before may still be in service: its history
                    // says which, as a replay would.
                    for other in &alternatives {
                        let replayed = step.run(other).await;
                        if !non_deterministic(&replayed) {
                            tracing::info!(
                                instance_id = %request.instance_id,
                                guessed = %generation.label(),
                                replays_on = %other.label(),
                                "an orchestration the host did not know the code of replays on another generation in service: it goes on there"
                            );
                            sticky_routes.remember(
                                &request.instance_id,
                                &other.plugin().content_hash,
                            );
                            // Counted, and traced, as the generation that ran it.
                            if let Some(ran_on) = &ran_on {
                                let _ = ran_on.set(other.telemetry(
                                WorkKind::Orchestration,
                                orchestrator_name(&request),
                            ));
                            }
                            traces::set_plugin(&other.label());
                            response = replayed;
                            break;
                        }
                    }
                }
                if completes(&response) {
                    sticky_routes.forget(&response.instance_id);
                }
                traces::stamp_scheduled_work(&mut response);
                OrchestratorOutcome::Completed(response)
            },
            |outcome| matches!(outcome, OrchestratorOutcome::Completed(response) if fails(response)),
        )
    }

    fn run_activity(
        &self,
        generation: Arc<Generation>,
        request: proto::ActivityRequest,
    ) -> BoxFuture<'static, proto::ActivityResponse> {
        let instance_id = durabletask_abi::activity::instance_id(&request).to_owned();
        let key = self.crash_journal.as_ref().map(|_| Key::activity(&request));
        if let Some(crashes) = self.poisoned(key) {
            let what = format!(
                "activity '{}' (instance {instance_id}, task {})",
                request.name, request.task_id
            );
            let details = self.crashed(&generation, &what, crashes);
            return Box::pin(std::future::ready(failure::activity(
                instance_id,
                request.task_id,
                details,
            )));
        }
        let module = match &generation.plugin().runner {
            Runner::InProcess(module) => *module,
            Runner::Process(supervisor) => {
                let supervisor = Arc::clone(supervisor);
                let journal = self.crash_journal.clone();
                return Box::pin(async move {
                    let what = format!(
                        "activity '{}' (instance {instance_id}, task {})",
                        request.name, request.task_id
                    );
                    let outcome = supervisor
                        .call(Work {
                            kind: CallKind::Activity,
                            shape: 0,
                            request: request.encode_to_vec().into(),
                            what: &what,
                            journal: journal.as_ref().zip(key),
                            once: false,
                        })
                        .await;
                    // Held until the activity is done: a generation retired meanwhile
                    // finishes it.
                    drop(generation);
                    match outcome {
                        Ok(response) => calls::decode_activity_response(
                            &response,
                            &instance_id,
                            request.task_id,
                        ),
                        Err(details) => failure::activity(instance_id, request.task_id, details),
                    }
                });
            }
        };
        let activity = calls::start_activity(module, &request);
        let watchdog = Arc::clone(&self.watchdog);
        let journal = self.crash_journal.clone();
        let name = request.name;
        Box::pin(async move {
            let mut activity = std::pin::pin!(activity);
            // Ends when the activity completes, or when its work item is dropped (timed
            // out, cut off by shutdown): then it is no longer the host's to answer for.
            let journaled = journal.zip(key).map(|(journal, key)| journal.enter(key));
            // The first poll starts the activity, which the plugin polls once in place:
            // plugin code on the loop, watched like a step.
            let first = {
                let _watched = watchdog.enter(call(
                    &generation,
                    "activity (first poll)",
                    &name,
                    &instance_id,
                ));
                futures::poll!(activity.as_mut())
            };
            // Held until the activity is done: a generation retired meanwhile finishes it.
            let _generation = generation;
            match first {
                std::task::Poll::Ready(response) => response,
                std::task::Poll::Pending => {
                    // Out of the host's call, on the plugin's runtime: a crash while a
                    // call is open is that call's, not this activity's.
                    if let Some(entry) = &journaled {
                        entry.waiting();
                    }
                    activity.await
                }
            }
        })
    }
}

/// Records a work item's outcome and duration (see [`crate::telemetry`]), and its span
/// (see [`crate::traces`]).
struct Meter {
    kind: WorkKind,
    telemetry: Arc<WorkTelemetry>,
    /// Set when the work ran on another generation than the one it was metered for (a
    /// step moved after a restart): its outcome is counted there.
    ran_on: Option<Arc<std::sync::OnceLock<Arc<WorkTelemetry>>>>,
    started: Instant,
    /// The work item's span, when traces are on.
    span: Option<opentelemetry::Context>,
}

impl Meter {
    fn new(
        kind: WorkKind,
        name: &str,
        generation: &Generation,
        instance_id: &str,
        parent: Option<&proto::TraceContext>,
    ) -> Meter {
        let telemetry = generation.telemetry(kind, name);
        let span = traces::start(&telemetry.span, instance_id, parent);
        Meter {
            kind,
            telemetry,
            ran_on: None,
            started: Instant::now(),
            span,
        }
    }

    /// Where the work can say it ran on another generation than the one it is metered
    /// for (made only for the steps that may move: no allocation for the others).
    fn moved_to(&mut self) -> Arc<std::sync::OnceLock<Arc<WorkTelemetry>>> {
        Arc::clone(self.ran_on.get_or_insert_with(Arc::default))
    }

    fn finished(&self, failed: bool) {
        if let Some(span) = self.span.as_ref().filter(|_| failed) {
            traces::fail(span, telemetry::kind_label(self.kind));
        }
        self.ran_on
            .as_ref()
            .and_then(|ran_on| ran_on.get())
            .unwrap_or(&self.telemetry)
            .metrics
            .record(failed, self.started.elapsed());
    }

    /// `work`, recording whether it failed (`failed`) when it ends.
    fn wrap<T: Send + 'static>(
        self,
        work: impl Future<Output = T> + Send + 'static,
        failed: fn(&T) -> bool,
    ) -> BoxFuture<'static, T> {
        use opentelemetry::trace::FutureExt as _;
        let span = self.span.clone();
        let metered = async move {
            let value = work.await;
            self.finished(failed(&value));
            value
        };
        match span {
            // The span is current while the work is polled, and ends with it.
            Some(span) => Box::pin(metered.with_context(span)),
            None => Box::pin(metered),
        }
    }
}

/// An entity's name: its instance id is `@name@key`.
fn entity_name(instance_id: &str) -> &str {
    instance_id
        .strip_prefix('@')
        .and_then(|rest| rest.split_once('@'))
        .map_or(instance_id, |(name, _)| name)
}

/// Whether the step fails the orchestration.
fn fails(response: &proto::OrchestratorResponse) -> bool {
    use proto::orchestrator_action::OrchestratorActionType;
    response.actions.iter().any(|action| {
        matches!(
            &action.orchestrator_action_type,
            Some(OrchestratorActionType::CompleteOrchestration(complete))
                if complete.orchestration_status == proto::OrchestrationStatus::Failed as i32
        )
    })
}

/// One orchestration step's request, ready to run on a generation.
struct Step<'a> {
    request: &'a proto::OrchestratorRequest,
    what: &'a str,
    watchdog: &'a Watchdog,
    journal: Option<&'a Arc<CrashJournal>>,
    key: Option<Key>,
}

impl Step<'_> {
    /// Runs the step on `generation`, in its child process or in this one.
    async fn run(&self, generation: &Generation) -> proto::OrchestratorResponse {
        match &generation.plugin().runner {
            Runner::InProcess(module) => run_step_in_process(
                *module,
                generation,
                self.request,
                self.watchdog,
                self.journal.cloned(),
                self.key,
            ),
            Runner::Process(supervisor) => {
                supervisor
                    .orchestrator_step(self.request, self.what, self.journal.zip(self.key), false)
                    .await
            }
        }
    }
}

/// Whether the step failed its orchestration as non-deterministic.
fn non_deterministic(response: &proto::OrchestratorResponse) -> bool {
    use proto::orchestrator_action::OrchestratorActionType;
    response.actions.iter().any(|action| {
        matches!(
            &action.orchestrator_action_type,
            Some(OrchestratorActionType::CompleteOrchestration(complete))
                if complete.failure_details.as_ref().is_some_and(|details| {
                    details.error_type == durabletask_abi::error_types::NON_DETERMINISM
                })
        )
    })
}

/// Runs an orchestration step in the host's process, on the event loop. A step is replay
/// of pure, deterministic code (no I/O, by the rules of orchestrations) and takes
/// microseconds; handing it to another thread cost more than the step itself. A step
/// that does block is reported while it runs (`watchdog`), so the offending
/// orchestrator is named, and it is on the crash journal's disk before the plugin runs:
/// if the step takes the host down, the next host counts it.
fn run_step_in_process(
    module: PluginModuleRef,
    generation: &Generation,
    request: &proto::OrchestratorRequest,
    watchdog: &Watchdog,
    journal: Option<Arc<CrashJournal>>,
    key: Option<Key>,
) -> proto::OrchestratorResponse {
    let started = Instant::now();
    let watched = watchdog.enter(call(
        generation,
        "orchestration step",
        orchestrator_name(request),
        &request.instance_id,
    ));
    let journaled = journal.zip(key).map(|(journal, key)| journal.enter(key));
    let response = calls::run_orchestrator(module, request);
    drop(journaled);
    drop(watched);
    let elapsed = started.elapsed();
    if elapsed > SLOW_STEP {
        tracing::warn!(
            instance_id = request.instance_id,
            elapsed_ms = elapsed.as_millis(),
            "an orchestration step took long and held up the worker loop; orchestrator code must not block (no I/O, no sleeps, no heavy computation: use activities)"
        );
    }
    response
}

impl PluginHost {
    /// How many times the work item `key` crashed the host, if it must not run again.
    /// (`key` is `None` when there is no journal: keys are only computed for one.)
    fn poisoned(&self, key: Option<Key>) -> Option<u32> {
        self.crash_journal.as_ref()?.poisoned(key?)
    }

    /// Records that the work item `key` goes into a plugin, until the guard is dropped.
    fn journal_entry(&self, key: Option<Key>) -> Option<crash_journal::Entry> {
        Some(self.crash_journal.as_ref()?.enter(key?))
    }

    /// The failure of a work item that crashed the host `crashes` times: logged, and
    /// not retriable, since running it again would crash again.
    fn crashed(
        &self,
        generation: &Generation,
        what: &str,
        crashes: u32,
    ) -> proto::TaskFailureDetails {
        let plugin = generation.plugin();
        let max_crashes = self
            .crash_journal
            .as_ref()
            .map_or(crashes, |journal| journal.max_crashes());
        let message = if plugin.isolated() {
            format!(
                "{what} crashed the process of plugin {} {} {crashes} times ([worker] max_crashes = {max_crashes}); it is not run again",
                plugin.name, plugin.version
            )
        } else {
            format!(
                "{what} was inside plugin {} {} when the host died, {crashes} times ([worker] max_crashes = {max_crashes}); it is not run again. The plugin runs in the host's process, so it took the host down with it: how it died (exit code or signal) is not known to the host that restarted (the service manager that restarted it has it)",
                plugin.name, plugin.version
            )
        };
        crash_journal::plugin_crashed(&generation.label(), crashes, message)
    }
}

/// What the watchdog says of a call into `generation`.
fn call(generation: &Generation, kind: &'static str, name: &str, instance_id: &str) -> Call {
    let plugin = generation.plugin();
    Call {
        plugin: format!("{} {}", plugin.name, plugin.version),
        kind,
        name: name.to_owned(),
        instance_id: instance_id.to_owned(),
    }
}

/// The orchestrator's name, from `executionStarted` in the new or past events.
fn orchestrator_name(request: &proto::OrchestratorRequest) -> &str {
    use proto::history_event::EventType;
    request
        .past_events
        .iter()
        .chain(request.new_events.iter())
        .find_map(|event| match &event.event_type {
            Some(EventType::ExecutionStarted(started)) => Some(started.name.as_str()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Whether the response ends this execution of the orchestration (completed, failed,
/// terminated or continued as new).
fn completes(response: &proto::OrchestratorResponse) -> bool {
    use proto::orchestrator_action::OrchestratorActionType;
    response.actions.iter().any(|action| {
        matches!(
            action.orchestrator_action_type,
            Some(OrchestratorActionType::CompleteOrchestration(_))
        )
    })
}
