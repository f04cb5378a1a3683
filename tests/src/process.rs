//! Child processes with bounded waits: run-to-completion with a deadline, signals, and
//! making children die with the test that started them.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How often bounded waits re-check their condition. Short, since every check is cheap
/// (a `try_wait`, reading a small log file).
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Asks the kernel to SIGKILL the child if the thread that spawned it dies, so a test
/// process killed mid-run (Ctrl-C, a CI timeout) leaves no backend or host behind.
/// Normal teardown is `Drop`, which kills and reaps the child first.
///
/// The signal fires when the spawning *thread* exits; the harness spawns on the test's
/// own thread, which outlives every process it starts.
pub fn die_with_parent(command: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the forked child before exec and only calls `prctl`,
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Runs `command` to completion, capturing stdout and stderr, and kills it if it takes
/// longer than `timeout`.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Result<Output> {
    let description = format!("{command:?}");
    let mut child = die_with_parent(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| Error::new(format!("cannot run {description}: {error}")))?;
    // Read both pipes on threads so a chatty child never blocks on a full pipe.
    let stdout = child.stdout.take().map(read_to_end_on_thread);
    let stderr = child.stderr.take().map(read_to_end_on_thread);
    let status = wait_with_timeout(&mut child, timeout)?;
    let collect = |reader: Option<thread::JoinHandle<Vec<u8>>>| reader.and_then(|r| r.join().ok());
    let stdout = collect(stdout).unwrap_or_default();
    let stderr = collect(stderr).unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(Error::new(format!(
            "{description} did not finish within {timeout:?}; killed it.\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ))),
    }
}

fn read_to_end_on_thread(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error just ends the capture; the exit status tells the real story.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits up to `timeout` for `child` to exit. `Ok(None)` means it is still running, in
/// which case it has been killed and reaped (so it never outlives a failed wait).
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let status = wait_for_exit(child, timeout)?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(status)
}

/// Waits up to `timeout` for `child` to exit, leaving it running if it does not.
pub fn wait_for_exit(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    poll_until(timeout, || {
        child
            .try_wait()
            .map_err(|error| Error::new(format!("cannot wait for pid {}: {error}", child.id())))
    })
}

/// Calls `check` until it returns `Some` or an error, or `timeout` passes (`Ok(None)`).
pub fn poll_until<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Sends `signal` (e.g. `libc::SIGTERM`) to a running child.
pub fn send_signal(child: &Child, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| Error::new(format!("pid {} does not fit in pid_t", child.id())))?;
    // SAFETY: `kill` has no memory-safety preconditions. The pid is our own child, not
    // yet reaped (we hold its `Child` and reap only through it), so it cannot have been
    // reused by another process.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(Error::new(format!(
            "cannot send signal {signal} to pid {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Kills and reaps a child, ignoring errors (it may have exited already).
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
