//! Keeps one plugin generation's child process serving: starts it again with backoff
//! after it dies, runs each call in it, counts the crashes of the work items that
//! crashed it (durably, in the crash journal) and fails a work item with
//! `PluginCrashed` once it has crashed `[worker] max_crashes` processes; the other calls
//! that were inside run again in the new process.
//!
//! A crash is counted only against a certain culprit. When several work items were
//! inside the plugin's code as it died (a step and an activity's first poll, say), none
//! is counted yet: each runs again *alone*, in a process of its own started for it, so
//! that the next crash names the culprit. A work item that crashed a process stays alone
//! for its remaining attempts, away from the others. A step or batch past `[plugins] step_limit` has
//! its process killed, and an activity the host gave up on (it timed out) has its
//! process recycled if it has not finished a few seconds later.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use durabletask_abi::{error_types, failure};
use durabletask_proto as proto;

use super::child_process::{ChildProcess, Death, KillReason, Launch, Outcome};
use super::frame::CallKind;
use crate::plugins::crash_journal::{self, CrashJournal, Key};
use crate::plugins::error::LoadError;
use crate::plugins::loaded_plugin::Registrations;
use crate::plugins::watchdog;

/// How long a child may take to load its library and say what it registered.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The first pause before starting a child again after it died; it doubles with each
/// death in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A child that lived this long before it died starts the backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Starts that fail in a row (the library no longer loads) before calls give up.
const MAX_FAILED_STARTS: u32 = 5;
/// How long an activity the host stopped waiting for may keep running in the child
/// before the child is recycled.
const RECYCLE_GRACE: Duration = Duration::from_secs(5);
/// How long a child asked to stop may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// One work item for the child.
#[derive(Debug)]
pub(crate) struct Work<'a> {
    pub(crate) kind: CallKind,
    /// For an entity batch, the ABI's request shape.
    pub(crate) shape: u8,
    /// The encoded request (shared by every attempt).
    pub(crate) request: Bytes,
    /// What it is, for log lines and failure messages.
    pub(crate) what: &'a str,
    /// Its key in the crash journal, and the journal, if there is one.
    pub(crate) journal: Option<(&'a Arc<CrashJournal>, Key)>,
    /// Fail at the first crash it is found to cause, instead of running it again: for
    /// checks (a replay of a history against a new build), whose verdict a crash is.
    pub(crate) once: bool,
}

/// The supervisor of one plugin generation's child process.
pub(crate) struct Supervisor {
    launch: Launch,
    /// `name version`.
    label: String,
    step_limit: Duration,
    slot: Mutex<Slot>,
    /// One start at a time; calls that find the child dead wait here for the new one.
    restart: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Slot {
    running: Option<Arc<ChildProcess>>,
    /// Deaths (or failed starts) in a row, for the backoff.
    failures: u32,
    /// Not before this may the next child start.
    restart_at: Option<Instant>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// Starts a child for `launch` and waits (blocking the calling thread) until it has
    /// loaded the library: what the plugin registered, and its supervisor.
    pub(crate) fn load(
        launch: Launch,
        file_label: &str,
        step_limit: Duration,
    ) -> Result<(Registrations, Arc<Supervisor>), LoadError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let process = ChildProcess::spawn(&launch, file_label, move |loaded| {
            let _ = sender.send(loaded);
        })
        .map_err(|error| cannot_start(&launch, &error))?;
        let registrations = match receiver.recv_timeout(LOAD_TIMEOUT) {
            Ok(loaded) => loaded?,
            Err(_) => {
                process.kill(KillReason::Shutdown);
                return Err(LoadError::InitFailed(format!(
                    "its process (pid {}) did not finish loading it within {} s",
                    process.pid(),
                    LOAD_TIMEOUT.as_secs()
                )));
            }
        };
        tracing::debug!(
            plugin = %registrations.name,
            pid = process.pid(),
            "plugin loaded in a process of its own"
        );
        let supervisor = Supervisor {
            launch,
            label: format!("{} {}", registrations.name, registrations.version),
            step_limit,
            slot: Mutex::new(Slot {
                running: Some(process),
                ..Slot::default()
            }),
            restart: tokio::sync::Mutex::new(()),
        };
        Ok((registrations, Arc::new(supervisor)))
    }

    /// Runs one orchestration step in the child ([`call`](Self::call)): the plugin's
    /// response, or a step that fails the orchestration with the failure that stands for
    /// it.
    ///
    /// `once`: a check's step, which fails at the first crash it causes (see [`Work`]).
    pub(crate) async fn orchestrator_step(
        &self,
        request: &proto::OrchestratorRequest,
        what: &str,
        journal: Option<(&Arc<CrashJournal>, Key)>,
        once: bool,
    ) -> proto::OrchestratorResponse {
        use prost::Message as _;
        let outcome = self
            .call(Work {
                kind: CallKind::Orchestration,
                shape: 0,
                request: request.encode_to_vec().into(),
                what,
                journal,
                once,
            })
            .await;
        match outcome {
            Ok(response) => {
                crate::plugins::calls::decode_orchestrator_response(&response, &request.instance_id)
            }
            Err(details) => failure::orchestration(
                request.instance_id.clone(),
                failure::FIRST_ACTION_ID,
                details,
            ),
        }
    }

    /// Runs `work` in the child, starting a new one first if it died. The encoded
    /// response, or the failure that stands for it: `PluginCrashed` once the work item
    /// has been inside `max_crashes` dying processes, or when no process can be started.
    pub(crate) async fn call(&self, work: Work<'_>) -> Result<Bytes, proto::TaskFailureDetails> {
        // Whether it runs in a process of its own (see the module's documentation), and
        // how many crashes it has to its name here.
        let mut alone = false;
        let mut crashes = 0;
        loop {
            let process = if alone {
                self.start_alone(crashes).await?
            } else {
                self.process().await?
            };
            let Ok((id, outcome)) = process.call(work.kind, work.shape, &work.request, work.what)
            else {
                // It died between its start and this call: the restart (with its
                // backoff) or the next dedicated start deals with it.
                continue;
            };
            let mut guard = CallGuard {
                process: Arc::clone(&process),
                id,
                done: false,
                dedicated: alone,
            };
            let outcome = self.wait(&process, id, &work, outcome).await;
            guard.done = true;
            drop(guard);
            match outcome {
                Outcome::Reply(response) => {
                    if crashes > 0
                        && let Some((journal, key)) = work.journal
                    {
                        // It ran to the end: what it crashed before is not held against
                        // it any more ("max_crashes in a row").
                        journal.forget_crashes(key);
                    }
                    return Ok(response);
                }
                Outcome::Died { suspect: false, .. } => {}
                Outcome::Died {
                    death,
                    suspect: true,
                    alone: false,
                } => {
                    tracing::warn!(
                        plugin = %self.label,
                        "{} was one of several work items inside plugin {} when {death}: it runs again in a process of its own, so that the next crash names the culprit",
                        work.what,
                        self.label
                    );
                    alone = true;
                }
                Outcome::Died {
                    death,
                    suspect: true,
                    alone: true,
                } => {
                    crashes += 1;
                    alone = true;
                    if work.once {
                        return Err(self.crashed(&work, crashes, 1, &death));
                    }
                    let Some((journal, key)) = work.journal else {
                        // No journal ([worker] max_crashes = 0): run it however often it
                        // crashes, as configured.
                        continue;
                    };
                    let counted = journal.count_crash(key);
                    if counted >= journal.max_crashes() {
                        return Err(self.crashed(&work, counted, journal.max_crashes(), &death));
                    }
                }
            }
        }
    }

    /// A process started for one call alone, after the backoff of its `crashes`; a start
    /// that fails is tried again with the backoff, [`MAX_FAILED_STARTS`] times.
    async fn start_alone(
        &self,
        crashes: u32,
    ) -> Result<Arc<ChildProcess>, proto::TaskFailureDetails> {
        let mut failures = 0;
        loop {
            tokio::time::sleep(backoff(crashes.max(1) + failures)).await;
            match self.start().await {
                Ok(process) => return Ok(process),
                Err(error) => {
                    failures += 1;
                    tracing::error!(
                        plugin = %self.label,
                        "cannot start a process for plugin {}: {error}",
                        self.label
                    );
                    if failures >= MAX_FAILED_STARTS {
                        return Err(self.unavailable(&error));
                    }
                }
            }
        }
    }

    /// Waits for call `id`'s outcome. A step or batch still running after the
    /// watchdog's threshold is logged, and past `step_limit` its process is killed.
    async fn wait(
        &self,
        process: &ChildProcess,
        id: u64,
        work: &Work<'_>,
        mut outcome: tokio::sync::oneshot::Receiver<Outcome>,
    ) -> Outcome {
        let dead = |_| Outcome::Died {
            death: process.death().unwrap_or(Death {
                pid: process.pid(),
                status: None,
                killed: None,
            }),
            suspect: false,
            alone: false,
        };
        if work.kind == CallKind::Activity {
            // Activities may take as long as they take ([worker] activity_timeout and
            // long_activity_threshold watch them).
            return outcome.await.unwrap_or_else(dead);
        }
        // The child runs steps one at a time, in order: a step's time counts from when
        // the child said it began (not from when it was queued behind another). Steps
        // answer in microseconds, so the timer rarely fires.
        let check_every = watchdog::STILL_RUNNING.min(self.step_limit) / 4;
        let mut running_since: Option<Instant> = None;
        let mut warned = false;
        loop {
            if let Ok(result) = tokio::time::timeout(check_every, &mut outcome).await {
                return result.unwrap_or_else(dead);
            }
            if !process.is_inside(id) {
                running_since = None;
                continue;
            }
            let elapsed = running_since.get_or_insert_with(Instant::now).elapsed() + check_every;
            if !warned && elapsed >= watchdog::STILL_RUNNING.min(self.step_limit) {
                warned = true;
                tracing::warn!(
                    plugin = %self.label,
                    pid = process.pid(),
                    elapsed_ms = elapsed.as_millis(),
                    "{} is still running in plugin {} and holds up that plugin's other steps; orchestrator and entity code must not block (its process is killed at [plugins] step_limit = {}s)",
                    work.what,
                    self.label,
                    self.step_limit.as_secs_f64()
                );
            }
            if elapsed >= self.step_limit {
                tracing::error!(
                    plugin = %self.label,
                    pid = process.pid(),
                    "{} ran past [plugins] step_limit = {}s: killing its process",
                    work.what,
                    self.step_limit.as_secs_f64()
                );
                process.kill(KillReason::StepLimit {
                    call: id,
                    limit: self.step_limit,
                });
                return outcome.await.unwrap_or_else(dead);
            }
        }
    }

    /// A live child: the running one, or a new one once the backoff allows.
    async fn process(&self) -> Result<Arc<ChildProcess>, proto::TaskFailureDetails> {
        if let Some(process) = self.live() {
            return Ok(process);
        }
        let _gate = self.restart.lock().await;
        loop {
            if let Some(process) = self.live() {
                return Ok(process);
            }
            let restart_at = self.retire_dead();
            tokio::time::sleep_until(restart_at.into()).await;
            match self.start().await {
                Ok(process) => {
                    tracing::info!(
                        plugin = %self.label,
                        pid = process.pid(),
                        "started a new process for plugin {}",
                        self.label
                    );
                    let mut slot = self.lock_slot();
                    slot.running = Some(process.clone());
                    slot.restart_at = None;
                    return Ok(process);
                }
                Err(error) => {
                    let failures = {
                        let mut slot = self.lock_slot();
                        slot.failures += 1;
                        slot.restart_at = Some(Instant::now() + backoff(slot.failures));
                        slot.failures
                    };
                    tracing::error!(
                        plugin = %self.label,
                        "cannot start a new process for plugin {}: {error}",
                        self.label
                    );
                    if failures >= MAX_FAILED_STARTS {
                        return Err(self.unavailable(&error));
                    }
                }
            }
        }
    }

    /// The failure of a call when no process could be started for it.
    fn unavailable(&self, error: &LoadError) -> proto::TaskFailureDetails {
        let mut details = failure::details(
            error_types::PLUGIN_CRASHED,
            format!(
                "plugin {} has no process: starting one failed with: {error}",
                self.label
            ),
        );
        details.is_non_retriable = true;
        details
    }

    /// The process id of its child, while one runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.live().map(|process| process.pid())
    }

    fn live(&self) -> Option<Arc<ChildProcess>> {
        let slot = self.lock_slot();
        slot.running
            .as_ref()
            .filter(|process| process.death().is_none())
            .cloned()
    }

    /// Forgets a dead child, counting its death for the backoff; when the next may start.
    fn retire_dead(&self) -> Instant {
        let mut slot = self.lock_slot();
        if let Some(dead) = slot.running.take() {
            slot.failures = if dead.age() >= STABLE_AFTER {
                1
            } else {
                slot.failures + 1
            };
            let at = Instant::now() + backoff(slot.failures);
            slot.restart_at = Some(at);
        }
        slot.restart_at.unwrap_or_else(Instant::now)
    }

    async fn start(&self) -> Result<Arc<ChildProcess>, LoadError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let process = ChildProcess::spawn(&self.launch, &self.label, move |loaded| {
            let _ = sender.send(loaded);
        })
        .map_err(|error| cannot_start(&self.launch, &error))?;
        let loaded = match tokio::time::timeout(LOAD_TIMEOUT, receiver).await {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(_)) | Err(_) => {
                process.kill(KillReason::Shutdown);
                return Err(LoadError::InitFailed(format!(
                    "its process (pid {}) did not finish loading it within {} s",
                    process.pid(),
                    LOAD_TIMEOUT.as_secs()
                )));
            }
        };
        let registrations = loaded?;
        let label = format!("{} {}", registrations.name, registrations.version);
        if label != self.label {
            process.kill(KillReason::Shutdown);
            return Err(LoadError::InitFailed(format!(
                "the library now says it is {label}, not {}",
                self.label
            )));
        }
        Ok(process)
    }

    /// Stops the child (the generation left service, or the host stops); what is
    /// returned waits for it, if the caller must. A call that comes later starts a new
    /// one at once.
    pub(crate) fn shutdown(&self) -> Option<Stopping> {
        let mut slot = self.lock_slot();
        slot.restart_at = None;
        slot.failures = 0;
        let process = slot.running.take()?;
        process.stop(STOP_GRACE);
        Some(Stopping(process))
    }

    /// The failure of a work item that crashed `crashes` processes, the last as `death`.
    fn crashed(
        &self,
        work: &Work<'_>,
        crashes: u32,
        max_crashes: u32,
        death: &Death,
    ) -> proto::TaskFailureDetails {
        let limits = self
            .launch
            .limits
            .describe()
            .map(|limits| format!(" (it runs with {limits})"))
            .unwrap_or_default();
        let message = format!(
            "{} crashed the process of plugin {} {crashes} times ([worker] max_crashes = {max_crashes}); it is not run again. The last time, {death}{limits}",
            work.what, self.label
        );
        crash_journal::plugin_crashed(&self.label, crashes, message)
    }

    fn lock_slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A child asked to stop ([`Supervisor::shutdown`]).
pub(crate) struct Stopping(Arc<ChildProcess>);

impl Stopping {
    /// Waits until it is gone, at most until `deadline`; then kills it, so the host never
    /// leaves a plugin process behind.
    pub(crate) fn wait(self, deadline: Instant) {
        let process = self.0;
        if !process.wait_reaped(deadline.saturating_duration_since(Instant::now())) {
            process.kill(KillReason::Shutdown);
            process.wait_reaped(STOP_GRACE);
        }
    }
}

/// The pause before the `failures`-th start in a row.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn cannot_start(launch: &Launch, error: &std::io::Error) -> LoadError {
    LoadError::InitFailed(format!(
        "cannot start a process for it ({}): {error}",
        launch.program.display()
    ))
}

/// A call in flight; if its work item is dropped before the answer (the activity timed
/// out, the host stops), the child is told nothing, but an activity that still runs
/// there has its process recycled unless it finishes within [`RECYCLE_GRACE`]. A process
/// started for this call alone is stopped when the call ends, however it ends.
struct CallGuard {
    process: Arc<ChildProcess>,
    id: u64,
    done: bool,
    dedicated: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.dedicated {
            self.process.stop(STOP_GRACE);
            return;
        }
        if self.done || !self.process.abandon(self.id) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let process = Arc::clone(&self.process);
        let id = self.id;
        runtime.spawn(async move {
            tokio::time::sleep(RECYCLE_GRACE).await;
            if process.still_running_abandoned(id) {
                tracing::warn!(
                    pid = process.pid(),
                    "an activity the host stopped waiting for is still running {} s later: recycling its plugin's process (the activities running beside it run again in the new one)",
                    RECYCLE_GRACE.as_secs()
                );
                process.kill(KillReason::Recycle);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_a_tenth_of_a_second_up_to_ten() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(8), Duration::from_secs(10));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(10));
    }
}
