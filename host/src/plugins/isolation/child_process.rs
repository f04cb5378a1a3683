//! One running child process of a plugin, seen from the host: it is spawned with one end
//! of a socket pair as its standard input, frames go to it through an [`Outbox`] (sent
//! at once when the socket takes them, else queued for a writer thread, so the event
//! loop never blocks on a child that stopped reading), a reader thread
//! resolves the calls it answers, and a waiter thread reaps it the moment it exits and
//! then shuts the socket, so a death is seen even if something else (a process the
//! plugin forked) still holds the child's end. When the socket ends, every call still
//! inside the child learns how it died and whether it is a suspect (see
//! [`ChildProcess::call`]). Kills go to the child's whole process group, by pid, never
//! while a lock is held across a blocking call.

use std::collections::{HashMap, HashSet};
use std::net::Shutdown;
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use super::child_main;
use super::frame::{self, Body, Call, CallKind, Frame, Log, LogField};
use super::limits::Limits;
use super::outbox::Outbox;
use crate::logging;
use crate::plugins::callbacks;
use crate::plugins::error::LoadError;
use crate::plugins::loaded_plugin::Registrations;

/// How long a child that closed its socket may take to exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// How long a killed child may take to be reaped before its calls are told anyway.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How the host starts a child.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The host's own binary.
    pub(crate) program: std::path::PathBuf,
    /// The private copy of the library.
    pub(crate) library: std::path::PathBuf,
    pub(crate) limits: Limits,
}

/// What ended a child, as calls inside it learn it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Death {
    pub(crate) pid: u32,
    /// `None` if it could not be reaped.
    pub(crate) status: Option<ExitStatus>,
    /// Why the host killed it, if it did.
    pub(crate) killed: Option<KillReason>,
}

/// Why the host killed a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KillReason {
    /// Call `call` (a step or batch) ran past `[plugins] step_limit`.
    StepLimit { call: u64, limit: Duration },
    /// An activity the host gave up on (timed out) was still running in it.
    Recycle,
    /// The generation was taken out of service, or the host stops.
    Shutdown,
}

impl std::fmt::Display for Death {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pid = self.pid;
        match &self.killed {
            Some(KillReason::StepLimit { limit, .. }) => {
                return write!(
                    f,
                    "its process (pid {pid}) was killed because the call ran past [plugins] step_limit = {}",
                    humantime_secs(*limit)
                );
            }
            Some(KillReason::Recycle) => {
                return write!(
                    f,
                    "its process (pid {pid}) was recycled: an activity that timed out did not finish"
                );
            }
            Some(KillReason::Shutdown) => {
                return write!(f, "its process (pid {pid}) was stopped by the host");
            }
            None => {}
        }
        match self.status {
            Some(status) => match (status.code(), status.signal()) {
                (Some(code), _) => write!(f, "its process (pid {pid}) exited with code {code}"),
                (None, Some(signal)) => write!(
                    f,
                    "its process (pid {pid}) was killed by signal {signal} ({})",
                    signal_name(signal)
                ),
                (None, None) => write!(f, "its process (pid {pid}) ended ({status})"),
            },
            None => write!(
                f,
                "its process (pid {pid}) closed its connection to the host"
            ),
        }
    }
}

fn humantime_secs(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

/// The usual names of the signals a crashing process dies of.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGTRAP => "SIGTRAP",
        _ => "signal",
    }
}

/// What a call inside a child ends with.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The child's encoded response.
    Reply(Bytes),
    /// The child died first. `suspect`: the call was inside the plugin's code in a way
    /// that makes it a candidate for what killed it (see [`ChildProcess::call`]);
    /// `alone`: it was the only suspect, so it is the culprit.
    Died {
        death: Death,
        suspect: bool,
        alone: bool,
    },
}

struct PendingCall {
    kind: CallKind,
    /// Which work item, for the log line when the child dies.
    what: String,
    /// Where the call is in the child (the child says so in `Began` and `Started`).
    phase: Phase,
    reply: tokio::sync::oneshot::Sender<Outcome>,
}

/// Where a call is in the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Sent, or queued in the child: no plugin code of it has run.
    Queued,
    /// Inside a call into the plugin: a step or batch, or an activity's first poll.
    Inside,
    /// An activity running on the plugin's runtime after its first poll.
    Running,
}

#[derive(Default)]
struct State {
    calls: HashMap<u64, PendingCall>,
    death: Option<Death>,
    killed: Option<KillReason>,
    /// Activities the host stopped waiting for that the child still runs.
    abandoned: HashSet<u64>,
    /// Set by the waiter once the child is reaped: its pid may then be reused, so
    /// nothing is signalled any more.
    exit: Option<Option<ExitStatus>>,
}

struct Shared {
    label: String,
    pid: u32,
    state: Mutex<State>,
    /// Notified when the waiter has reaped the child.
    reaped: Condvar,
}

/// A running (or dead) child process of a plugin generation.
pub(crate) struct ChildProcess {
    pid: u32,
    started: Instant,
    outbox: Outbox,
    shared: Arc<Shared>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for ChildProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildProcess")
            .field("pid", &self.pid)
            .field("label", &self.shared.label)
            .finish_non_exhaustive()
    }
}

impl ChildProcess {
    /// Starts a child for `launch`. `label` names it in log lines until it says what it
    /// is; `loaded` is called once, from the reader thread, with what the plugin
    /// registered or why it did not load.
    pub(crate) fn spawn(
        launch: &Launch,
        label: &str,
        loaded: impl FnOnce(Result<Registrations, LoadError>) + Send + 'static,
    ) -> std::io::Result<Arc<ChildProcess>> {
        let (host_end, child_end) = UnixStream::pair()?;
        // The child's own output (a plugin's println!, Rust's abort messages) goes where
        // the host's standard error goes.
        let stdout = std::io::stderr().as_fd().try_clone_to_owned()?;
        let mut command = Command::new(&launch.program);
        command
            .arg("plugin-child")
            .arg("--library")
            .arg(&launch.library)
            .arg("--max-level")
            .arg((callbacks::max_level() as u8).to_string())
            .args(launch.limits.to_args())
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(child_end)))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::inherit())
            // A group of its own: Ctrl-C in the host's terminal (or `timeout`) signals
            // the host, which drains and then stops its children, not the children
            // first.
            .process_group(0);
        let mut child = command.spawn()?;
        let pid = child.id();
        let (outbox, write_queued) = Outbox::new(host_end.try_clone()?)?;
        let shared = Arc::new(Shared {
            label: label.to_owned(),
            pid,
            state: Mutex::new(State::default()),
            reaped: Condvar::new(),
        });
        let process = Arc::new(ChildProcess {
            pid,
            started: Instant::now(),
            outbox,
            shared: Arc::clone(&shared),
            next_id: AtomicU64::new(1),
        });
        // From here on, a failure drops `process`, which kills the child; the waiter
        // (started first) reaps it.
        let socket = host_end.try_clone()?;
        let waiter = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("plugin-waiter-{pid}"))
            .spawn(move || {
                let status = child.wait().ok();
                waiter.lock_state().exit = Some(status);
                waiter.reaped.notify_all();
                // The reader sees the end of the stream now, whoever else holds the
                // child's end of the socket.
                let _ = socket.shutdown(Shutdown::Both);
            })?;
        let reader = host_end;
        // A socket that fails ends it; the reader sees the end of the socket and reports
        // the death.
        std::thread::Builder::new()
            .name(format!("plugin-writer-{pid}"))
            .spawn(write_queued)?;
        std::thread::Builder::new()
            .name(format!("plugin-reader-{pid}"))
            .spawn(move || read_until_death(reader, pid, &shared, loaded))?;
        Ok(process)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// How long ago it was started.
    pub(crate) fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether it has died (its calls then fail at once).
    pub(crate) fn death(&self) -> Option<Death> {
        self.shared.lock_state().death.clone()
    }

    /// Sends a call; the receiver ends with its outcome. A call is a *suspect* if the
    /// child dies while it is inside the plugin's code in a call of the host's: the
    /// oldest step or batch (the child runs them in order), and activities still in
    /// their first poll. Only when no such call was inside are the activities that were
    /// running on the plugin's runtime the suspects, all of them. (The crash journal
    /// judges a host that died with in-process plugins the same way.)
    pub(crate) fn call(
        &self,
        kind: CallKind,
        shape: u8,
        request: &Bytes,
        what: &str,
    ) -> Result<(u64, tokio::sync::oneshot::Receiver<Outcome>), Death> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut state = self.shared.lock_state();
        if let Some(death) = &state.death {
            return Err(death.clone());
        }
        state.calls.insert(
            id,
            PendingCall {
                kind,
                what: what.to_owned(),
                phase: Phase::Queued,
                reply,
            },
        );
        drop(state);
        let frame = Frame::new(Body::Call(Call {
            id,
            kind: kind as i32,
            shape: u32::from(shape),
            request: request.clone(),
        }));
        // Dropped only if the socket broke: the reader then reports the death to this
        // call too.
        self.outbox.send(frame.to_bytes());
        Ok((id, outcome))
    }

    /// Whether call `id` is inside the plugin's code now (a step or batch the child
    /// runs, not one queued behind it).
    pub(crate) fn is_inside(&self, id: u64) -> bool {
        self.shared
            .lock_state()
            .calls
            .get(&id)
            .is_some_and(|call| call.phase == Phase::Inside)
    }

    /// The host stopped waiting for call `id`. Returns whether an activity of it still
    /// runs in the child (the child should then be recycled if it does not finish).
    pub(crate) fn abandon(&self, id: u64) -> bool {
        let mut state = self.shared.lock_state();
        match state.calls.remove(&id) {
            Some(call) if call.kind == CallKind::Activity && state.death.is_none() => {
                state.abandoned.insert(id);
                true
            }
            _ => false,
        }
    }

    /// Whether the abandoned activity `id` still runs.
    pub(crate) fn still_running_abandoned(&self, id: u64) -> bool {
        let state = self.shared.lock_state();
        state.death.is_none() && state.abandoned.contains(&id)
    }

    /// Kills the child and its process group (SIGKILL); its calls learn `reason`.
    pub(crate) fn kill(&self, reason: KillReason) {
        {
            let mut state = self.shared.lock_state();
            if state.death.is_some() || state.exit.is_some() {
                return;
            }
            state.killed.get_or_insert(reason);
        }
        self.shared.kill_group();
    }

    /// Asks the child to stop its plugin's runtime and exit; kills it if it is still
    /// there after `grace`.
    pub(crate) fn stop(self: &Arc<Self>, grace: Duration) {
        self.shared
            .lock_state()
            .killed
            .get_or_insert(KillReason::Shutdown);
        self.outbox
            .send(Frame::new(Body::Shutdown(frame::Shutdown {})).to_bytes());
        let process = Arc::clone(self);
        let _ = std::thread::Builder::new()
            .name(format!("plugin-stop-{}", self.pid))
            .spawn(move || {
                if !process.shared.wait_reaped(grace) {
                    process.kill(KillReason::Shutdown);
                }
            });
    }

    /// Waits until the child is reaped, at most `timeout`; whether it was.
    pub(crate) fn wait_reaped(&self, timeout: Duration) -> bool {
        self.shared.wait_reaped(timeout)
    }
}

impl Drop for ChildProcess {
    /// Nobody can call it any more: a child still running would be an orphan.
    fn drop(&mut self) {
        let state = self.shared.lock_state();
        if state.exit.is_none() && state.death.is_none() {
            drop(state);
            self.shared.kill_group();
        }
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Every change is one insert or remove: nothing is half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// SIGKILL to the child's process group (it leads one: `process_group(0)`), which
    /// takes anything it forked along; to the child alone if the group is gone. Only
    /// while the child is not reaped, so a reused pid is never signalled (the waiter
    /// sets `exit` under the same lock it is checked under, just before).
    fn kill_group(&self) {
        if self.lock_state().exit.is_some() {
            return;
        }
        let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) else {
            return;
        };
        if kill_process_group(pid, Signal::KILL).is_err() {
            let _ = kill_process(pid, Signal::KILL);
        }
    }

    /// Waits until the waiter has reaped the child, at most `timeout`; whether it has.
    fn wait_reaped(&self, timeout: Duration) -> bool {
        let state = self.lock_state();
        let (state, _) = self
            .reaped
            .wait_timeout_while(state, timeout, |state| state.exit.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        state.exit.is_some()
    }

    /// The child's exit status once its socket has ended: it exits on its own within
    /// [`EXIT_GRACE`], or is killed (with what it forked) and then reaped.
    fn exit_status(&self) -> Option<ExitStatus> {
        if !self.wait_reaped(EXIT_GRACE) {
            self.kill_group();
            // SIGKILL cannot be caught; a process stuck in the kernel may still take a
            // while, but the reader must not wait forever for it.
            self.wait_reaped(KILL_GRACE);
        }
        self.lock_state().exit.flatten()
    }
}

/// The reader thread: the first frame says whether the plugin loaded; then replies,
/// start notices and log records until the socket ends, then the death.
fn read_until_death(
    socket: UnixStream,
    pid: u32,
    shared: &Shared,
    loaded: impl FnOnce(Result<Registrations, LoadError>),
) {
    let mut loaded = Some(loaded);
    let mut socket = std::io::BufReader::with_capacity(frame::READ_BUFFER_BYTES, socket);
    let mut identity = (shared.label.clone(), String::new());
    let ended = loop {
        let frame = match frame::read(&mut socket, frame::MAX_RESPONSE_FRAME_BYTES) {
            Ok(Some(frame)) => frame,
            Ok(None) => break None,
            Err(error) => break Some(error.to_string()),
        };
        match frame.body {
            Some(Body::Loaded(registrations)) => {
                if let Some(loaded) = loaded.take() {
                    identity = (registrations.name.clone(), registrations.version.clone());
                    loaded(Ok(registrations));
                }
            }
            Some(Body::LoadFailed(failed)) => {
                if let Some(loaded) = loaded.take() {
                    loaded(Err(child_main::load_error(failed)));
                }
            }
            Some(Body::Reply(reply)) => {
                let mut state = shared.lock_state();
                if let Some(call) = state.calls.remove(&reply.id) {
                    drop(state);
                    let _ = call.reply.send(Outcome::Reply(reply.response));
                } else if state.abandoned.remove(&reply.id) {
                    // The host stopped waiting: the activity timed out, or its work
                    // item was dropped at shutdown. Neither is news by now.
                    tracing::debug!(
                        plugin = %identity.0,
                        pid,
                        "a plugin completed an activity nobody is waiting for any more (it timed out, or the host is shutting down); its result is ignored"
                    );
                }
            }
            Some(Body::Began(began)) => {
                if let Some(call) = shared.lock_state().calls.get_mut(&began.id) {
                    call.phase = Phase::Inside;
                }
            }
            Some(Body::Started(started)) => {
                if let Some(call) = shared.lock_state().calls.get_mut(&started.id) {
                    call.phase = Phase::Running;
                }
            }
            Some(Body::Log(Log {
                level,
                target,
                message,
                fields,
            })) => {
                let level = child_main::level_from_u8(u8::try_from(level).unwrap_or(u8::MAX));
                // Sizes are cut by `PluginFields` as the fields are copied.
                let fields: Vec<_> = fields
                    .iter()
                    .take(logging::MAX_PLUGIN_FIELDS)
                    .filter_map(LogField::to_abi)
                    .collect();
                callbacks::forward_log(
                    &identity.0,
                    &identity.1,
                    level,
                    logging::truncated(&target, MAX_LOG_TARGET),
                    logging::truncated(&message, MAX_LOG_MESSAGE),
                    &fields,
                );
            }
            // Frames only the host sends: a confused or hostile child. Ignored.
            Some(Body::Call(_) | Body::Shutdown(_)) | None => {}
        }
    };
    if let Some(error) = &ended {
        tracing::warn!(
            plugin = %identity.0,
            plugin_version = %identity.1,
            pid,
            "the connection to a plugin's process broke ({error}); the process is killed"
        );
        shared.kill_group();
    }
    let status = shared.exit_status();
    let mut state = shared.lock_state();
    let death = Death {
        pid,
        status,
        killed: state.killed.clone(),
    };
    state.death = Some(death.clone());
    let calls = std::mem::take(&mut state.calls);
    drop(state);
    if let Some(loaded) = loaded.take() {
        loaded(Err(LoadError::InitFailed(format!(
            "{death} before it finished loading the library"
        ))));
        return;
    }
    let suspects = suspects(&calls, death.killed.as_ref(), death.status);
    let inside: Vec<&str> = calls
        .iter()
        .filter(|(id, _)| suspects.contains(id))
        .map(|(_, call)| call.what.as_str())
        .collect();
    let retried = calls.len() - inside.len();
    if death.killed.is_none() && !crashed(death.status) {
        tracing::warn!(
            plugin = %identity.0,
            plugin_version = %identity.1,
            pid,
            "plugin {} {}: {death}, sent from outside the host (a service manager stopping the whole group?); the {retried} work item(s) inside it run again in a new process",
            identity.0,
            identity.1,
        );
    } else if death.killed != Some(KillReason::Shutdown) {
        tracing::error!(
            plugin = %identity.0,
            plugin_version = %identity.1,
            pid,
            inside = %inside.join("; "),
            retried,
            "plugin {} {}: {death}; the {retried} work item(s) that were not inside the plugin's code run again in a new process",
            identity.0,
            identity.1,
        );
    }
    let alone = suspects.len() == 1;
    for (id, call) in calls {
        let suspect = suspects.contains(&id);
        let _ = call.reply.send(Outcome::Died {
            death: death.clone(),
            suspect,
            alone,
        });
    }
}

/// At most this much of a plugin's log record is written to the host's log: a child
/// must not make the host write (or keep) megabytes per line.
const MAX_LOG_MESSAGE: usize = 16 * 1024;
const MAX_LOG_TARGET: usize = 256;

/// `text` cut to at most `max` bytes, on a character boundary.
/// Whether a process that ended with `status` crashed: an exit code or a signal of its
/// own failing (abort, a bad access, the CPU limit, SIGKILL from the kernel's OOM
/// killer). SIGTERM, SIGINT, SIGHUP and SIGQUIT come from outside (a service manager
/// stopping the whole group, say): the work inside did not crash it.
pub(crate) fn crashed(status: Option<ExitStatus>) -> bool {
    let Some(status) = status else { return true };
    !matches!(
        status.signal(),
        Some(libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGQUIT)
    )
}

/// The calls that count a crash when the child dies (see [`ChildProcess::call`]).
fn suspects(
    calls: &HashMap<u64, PendingCall>,
    killed: Option<&KillReason>,
    status: Option<ExitStatus>,
) -> HashSet<u64> {
    match killed {
        Some(KillReason::StepLimit { call, .. }) => return HashSet::from([*call]),
        Some(KillReason::Recycle | KillReason::Shutdown) => return HashSet::new(),
        None if !crashed(status) => return HashSet::new(),
        None => {}
    }
    let inside: HashSet<u64> = calls
        .iter()
        .filter(|(_, call)| call.phase == Phase::Inside)
        .map(|(id, _)| *id)
        .collect();
    if !inside.is_empty() {
        return inside;
    }
    let running: HashSet<u64> = calls
        .iter()
        .filter(|(_, call)| call.phase == Phase::Running)
        .map(|(id, _)| *id)
        .collect();
    if !running.is_empty() {
        return running;
    }
    // Nothing had begun (the child died between calls, or of something outside any
    // call): no work item ran into it.
    HashSet::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(kind: CallKind, phase: Phase) -> PendingCall {
        let (reply, _) = tokio::sync::oneshot::channel();
        PendingCall {
            kind,
            what: String::new(),
            phase,
            reply,
        }
    }

    #[test]
    fn the_calls_inside_the_plugins_code_are_the_suspects() {
        let calls = HashMap::from([
            (3, pending(CallKind::Orchestration, Phase::Inside)),
            // Queued behind it: never ran.
            (5, pending(CallKind::EntityBatch, Phase::Queued)),
            (4, pending(CallKind::Activity, Phase::Inside)),
            (1, pending(CallKind::Activity, Phase::Running)),
            (6, pending(CallKind::Activity, Phase::Queued)),
        ]);
        assert_eq!(suspects(&calls, None, None), HashSet::from([3, 4]));
    }

    #[test]
    fn with_no_call_inside_every_running_activity_is_a_suspect_and_queued_ones_never() {
        let calls = HashMap::from([
            (1, pending(CallKind::Activity, Phase::Running)),
            (2, pending(CallKind::Activity, Phase::Running)),
            (3, pending(CallKind::Orchestration, Phase::Queued)),
        ]);
        assert_eq!(suspects(&calls, None, None), HashSet::from([1, 2]));
        let term = Some(ExitStatus::from_raw(libc::SIGTERM));
        assert!(suspects(&calls, None, term).is_empty());
        let queued = HashMap::from([(3, pending(CallKind::Orchestration, Phase::Queued))]);
        assert!(suspects(&queued, None, None).is_empty());
    }

    #[test]
    fn a_kill_by_the_host_names_its_own_suspect() {
        let calls = HashMap::from([
            (1, pending(CallKind::Activity, Phase::Inside)),
            (2, pending(CallKind::Orchestration, Phase::Inside)),
        ]);
        let limit = KillReason::StepLimit {
            call: 2,
            limit: Duration::from_secs(1),
        };
        assert_eq!(suspects(&calls, Some(&limit), None), HashSet::from([2]));
        assert!(suspects(&calls, Some(&KillReason::Recycle), None).is_empty());
    }

    #[test]
    fn a_death_says_how_the_process_ended() {
        let death = |status: ExitStatus, killed| Death {
            pid: 42,
            status: Some(status),
            killed,
        };
        assert_eq!(
            death(ExitStatus::from_raw(3 << 8), None).to_string(),
            "its process (pid 42) exited with code 3"
        );
        assert_eq!(
            death(ExitStatus::from_raw(libc::SIGABRT), None).to_string(),
            "its process (pid 42) was killed by signal 6 (SIGABRT)"
        );
        let limit = KillReason::StepLimit {
            call: 1,
            limit: Duration::from_millis(2500),
        };
        assert_eq!(
            death(ExitStatus::from_raw(libc::SIGKILL), Some(limit)).to_string(),
            "its process (pid 42) was killed because the call ran past [plugins] step_limit = 2.5s"
        );
    }
}
