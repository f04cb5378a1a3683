//! The plugin's side of process isolation: `durabletask-host plugin-child`, a process of
//! the host's own binary that loads one plugin library and serves the host's calls on
//! the socket it was given as its standard input.
//!
//! It sets its resource limits first, then loads the library with the same checks as the
//! host (`loader::open_and_init`) and reports what the plugin registered (or why it
//! could not load) as its first frame. Then:
//! - the main thread reads frames and runs orchestration steps and entity batches
//!   itself, in order (they are synchronous replays, microseconds each: handing them to
//!   another thread cost a futex wake and a context switch per step, more than most
//!   steps take); activities go to a small pool of start threads, because an
//!   activity's first poll runs in the calling thread and may block before its first
//!   `.await`. A step that never ends holds up the frames behind it until the host's
//!   step limit kills the process, which is what happens to it anyway;
//! - replies, the "began" and "activity started" notices, activity completions (from the plugin's
//!   own runtime, through the completion callback) and log records are written as
//!   frames by whichever thread has them, one whole frame at a time;
//! - at the end of the stream (the host closed it, or died) the process exits; a
//!   `Shutdown` frame stops the plugin's runtime first.
//!
//! Nothing here trusts the plugin: it shares this process, so the host treats every
//! frame from it as untrusted.

use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use abi_stable::std_types::RVec;
use durabletask_abi::{
    FieldedLogFn, FieldedLogRecord, HostCallbacks, LogLevel, LogRecord, PluginModuleRef,
};

use super::frame::{self, Body, Call, CallKind, Frame, LoadFailed, Log, LogField, Reply, Started};
use super::limits::Limits;
use crate::plugins::error::LoadError;
use crate::plugins::loaded_plugin::Registrations;
use crate::plugins::{calls, loader};

/// Threads that start activities: an activity that blocks before its first `.await`
/// holds one of them, the others keep starting.
const START_THREADS: usize = 8;

/// How the child was started (its command-line arguments).
#[derive(Debug, Clone)]
pub struct ChildArgs {
    /// The host's private copy of the library.
    pub library: std::path::PathBuf,
    /// The most verbose level the host prints.
    pub max_level: u8,
    /// `RLIMIT_DATA` in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// `RLIMIT_CPU` in seconds.
    pub cpu_limit_seconds: Option<u64>,
}

/// The socket to the host, for every thread that writes a frame.
static SOCKET: OnceLock<Mutex<UnixStream>> = OnceLock::new();

/// Runs the child until the host closes the socket. Returns only on a failure to
/// start: every other end is `std::process::exit`.
pub fn run(args: &ChildArgs) -> ExitCode {
    if let Err(error) = super::child_signals::ignore_stop_signals() {
        eprintln!("durabletask-host plugin-child: cannot ignore the stop signals: {error}");
        return ExitCode::from(2);
    }
    let socket = match take_socket() {
        Ok(socket) => socket,
        Err(error) => {
            eprintln!("durabletask-host plugin-child: {error}");
            return ExitCode::from(2);
        }
    };
    let Ok(writer) = socket.try_clone() else {
        return ExitCode::from(2);
    };
    let _ = SOCKET.set(Mutex::new(writer));

    let limits = Limits {
        memory_bytes: args.memory_limit_bytes,
        cpu_seconds: args.cpu_limit_seconds,
    };
    let loaded = limits
        .apply()
        .map_err(|error| LoadError::InitFailed(format!("cannot set its resource limits: {error}")))
        .and_then(|()| load(&args.library, args.max_level));
    let module = match loaded {
        Ok((module, loaded)) => {
            send(&Frame::new(Body::Loaded(loaded)));
            module
        }
        Err(error) => {
            send(&Frame::new(Body::LoadFailed(LoadFailed {
                kind: load_error_kind(&error),
                message: load_error_message(error),
            })));
            return ExitCode::SUCCESS;
        }
    };
    serve(socket, module)
}

/// The socket the host passed as standard input; standard input itself becomes
/// `/dev/null`, so plugin code that reads it cannot take the host's frames.
fn take_socket() -> std::io::Result<UnixStream> {
    let socket = std::io::stdin().as_fd().try_clone_to_owned()?;
    let null = std::fs::File::open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    Ok(UnixStream::from(socket))
}

fn load(library: &Path, max_level: u8) -> Result<(PluginModuleRef, Registrations), LoadError> {
    let callbacks = HostCallbacks {
        plugin_id: 0,
        max_level: level_from_u8(max_level),
        log: log_to_host,
        activity_completed,
    };
    let fielded_log = FieldedLogFn {
        log: fielded_log_to_host,
    };
    loader::open_and_init(library, callbacks, fielded_log)
}

fn serve(socket: UnixStream, module: PluginModuleRef) -> ExitCode {
    let (starts, start_queue) = mpsc::channel::<Call>();
    let start_queue = Arc::new(Mutex::new(start_queue));
    for index in 0..START_THREADS {
        let queue = Arc::clone(&start_queue);
        spawn(&format!("plugin-start-{index}"), move || {
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .recv();
                let Ok(call) = next else { return };
                send(&Frame::new(Body::Began(Started { id: call.id })));
                // The activity completes through `activity_completed` with the call's id
                // as its token, maybe before this returns.
                calls::start_activity_bytes(module, &call.request, call.id);
                send(&Frame::new(Body::Started(Started { id: call.id })));
            }
        });
    }
    // Frames often arrive several at a time: one read system call takes them all.
    let mut socket = std::io::BufReader::with_capacity(frame::READ_BUFFER_BYTES, socket);
    loop {
        match frame::read(&mut socket, frame::MAX_REQUEST_FRAME_BYTES) {
            Ok(Some(Frame {
                body: Some(Body::Call(call)),
            })) => match CallKind::try_from(call.kind) {
                Ok(CallKind::Activity) => {
                    let _ = starts.send(call);
                }
                _ => run_step(module, &call),
            },
            Ok(Some(Frame {
                body: Some(Body::Shutdown(_)),
            })) => {
                calls::shutdown(module);
                std::process::exit(0);
            }
            // Anything else from the host is a bug of the host's; nothing to answer.
            Ok(Some(_)) => {}
            // The host closed the socket or died: nobody wants the results any more.
            Ok(None) => std::process::exit(0),
            Err(error) => {
                eprintln!("durabletask-host plugin-child: cannot read from the host: {error}");
                std::process::exit(1);
            }
        }
    }
}

/// Runs an orchestration step or an entity batch and sends its reply. The host learns
/// first that it began: from then on a crash may be the step's doing.
fn run_step(module: PluginModuleRef, call: &Call) {
    send(&Frame::new(Body::Began(Started { id: call.id })));
    let response = match CallKind::try_from(call.kind) {
        Ok(CallKind::EntityBatch) => {
            let shape = u8::try_from(call.shape).unwrap_or(0);
            calls::run_entity_batch_bytes(module, shape, &call.request)
        }
        _ => calls::run_orchestrator_bytes(module, &call.request),
    };
    send(&Frame::new(Body::Reply(Reply {
        id: call.id,
        response: response.into(),
    })));
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    if let Err(error) = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(work)
    {
        eprintln!("durabletask-host plugin-child: cannot start a thread: {error}");
        std::process::exit(1);
    }
}

/// Writes one frame to the host. A host that is gone wants nothing more: exit.
fn send(frame: &Frame) {
    let Some(socket) = SOCKET.get() else {
        std::process::exit(1)
    };
    let bytes = frame.to_bytes();
    let mut socket = socket
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if socket.write_all(&bytes).is_err() {
        std::process::exit(0);
    }
}

extern "C" fn activity_completed(_plugin_id: u64, token: u64, response: RVec<u8>) {
    // Never unwind into the plugin.
    let _ = std::panic::catch_unwind(|| {
        send(&Frame::new(Body::Reply(Reply {
            id: token,
            response: response.into_vec().into(),
        })));
    });
}

extern "C" fn log_to_host(_plugin_id: u64, record: &LogRecord<'_>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        send(&Frame::new(Body::Log(Log {
            level: record.level as u32,
            target: record.target.as_str().to_owned(),
            message: record.message.as_str().to_owned(),
            fields: Vec::new(),
        })));
    }));
}

extern "C" fn fielded_log_to_host(_plugin_id: u64, record: &FieldedLogRecord<'_>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        send(&Frame::new(Body::Log(Log {
            level: record.level as u32,
            target: record.target.as_str().to_owned(),
            message: record.message.as_str().to_owned(),
            fields: record.fields.iter().map(LogField::from_abi).collect(),
        })));
    }));
}

/// The ABI's log level from its number (anything unknown is `Error`, the least noisy).
pub(crate) fn level_from_u8(level: u8) -> LogLevel {
    match level {
        0 => LogLevel::Trace,
        1 => LogLevel::Debug,
        2 => LogLevel::Info,
        3 => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

/// [`LoadError`]s as numbers on the wire; the child only meets those of loading itself.
fn load_error_kind(error: &LoadError) -> u32 {
    match error {
        LoadError::NotALibrary(_) => 1,
        LoadError::NotAPlugin => 2,
        LoadError::Incompatible(_) => 3,
        LoadError::PanicAbort => 4,
        _ => 5,
    }
}

/// The part of a [`LoadError`] its kind does not say.
fn load_error_message(error: LoadError) -> String {
    match error {
        LoadError::NotALibrary(message)
        | LoadError::Incompatible(message)
        | LoadError::InitFailed(message)
        | LoadError::Unreadable(message)
        | LoadError::Untrusted(message)
        // Never from a child (conflicts are judged by the manager), but not lost if it were.
        | LoadError::NameConflict(message)
        | LoadError::ReplayRefused(message)
        | LoadError::VersionTaken(message) => message,
        LoadError::NotAPlugin | LoadError::PanicAbort => String::new(),
    }
}

/// The [`LoadError`] a child reported.
pub(crate) fn load_error(failed: LoadFailed) -> LoadError {
    match failed.kind {
        1 => LoadError::NotALibrary(failed.message),
        2 => LoadError::NotAPlugin,
        3 => LoadError::Incompatible(failed.message),
        4 => LoadError::PanicAbort,
        _ => LoadError::InitFailed(failed.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_cross_the_socket_unchanged() {
        for error in [
            LoadError::NotALibrary("bad ELF".to_owned()),
            LoadError::NotAPlugin,
            LoadError::Incompatible("ABI 2".to_owned()),
            LoadError::PanicAbort,
            LoadError::InitFailed("registration panicked".to_owned()),
        ] {
            let before = error.to_string();
            let failed = LoadFailed {
                kind: load_error_kind(&error),
                message: load_error_message(error),
            };
            assert_eq!(load_error(failed).to_string(), before);
        }
    }

    #[test]
    fn log_levels_round_trip_and_unknown_is_error() {
        for level in [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ] {
            assert_eq!(level_from_u8(level as u8), level);
        }
        assert_eq!(level_from_u8(200), LogLevel::Error);
    }
}
