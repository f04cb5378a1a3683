//! Microsoft's in-memory Durable Task backend, run by `tests/reference_backend.py`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::paths;
use crate::process::{die_with_parent, kill_and_reap, send_signal, wait_with_timeout};
use crate::python::reference_python;

/// How long the backend may take to print READY: Python start-up plus gRPC, on a busy
/// two-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Free ports are picked by the OS, then released and handed to Python: another process
/// can grab one in between. The launcher refuses a busy port, so a few attempts suffice.
const PORT_ATTEMPTS: usize = 5;

/// A running reference backend. All its state is in memory: killing it loses every
/// orchestration. Dropping it kills it.
pub struct Backend {
    child: Option<Child>,
    port: u16,
    stderr_path: PathBuf,
    // Holds the backend's stderr file; removed with the backend.
    _scratch: TempDir,
}

impl Backend {
    /// Starts a backend on a free port and waits until it answers.
    pub fn start() -> Result<Self> {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::start_on(free_port()?) {
                Ok(backend) => return Ok(backend),
                Err(error) => failures.push(error.to_string()),
            }
        }
        Err(Error::new(format!(
            "the reference backend did not start in {PORT_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        )))
    }

    /// Starts a backend on `port` (e.g. the port of one that was killed, to test
    /// reconnection) and waits until it answers.
    pub fn start_on(port: u16) -> Result<Self> {
        let python = reference_python()?;
        let script = paths::workspace_root()
            .join("tests")
            .join("reference_backend.py");
        let scratch = tempfile::Builder::new()
            .prefix("durabletask-backend-")
            .tempdir()
            .map_err(|error| Error::new(format!("cannot create a scratch dir: {error}")))?;
        let stderr_path = scratch.path().join("backend.stderr");
        let stderr = File::create(&stderr_path).map_err(|error| {
            Error::new(format!("cannot create {}: {error}", stderr_path.display()))
        })?;
        let mut child = die_with_parent(
            Command::new(&python)
                .arg(&script)
                .args(["--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr),
        )
        .spawn()
        .map_err(|error| Error::new(format!("cannot run {}: {error}", python.display())))?;

        let mut backend = Self {
            child: None,
            port,
            stderr_path,
            _scratch: scratch,
        };
        let ready = match child.stdout.take() {
            Some(stdout) => wait_for_ready(stdout),
            None => Err(Error::new("the backend's stdout was not captured")),
        };
        backend.child = Some(child);
        match ready {
            Ok(()) => Ok(backend),
            Err(error) => {
                backend.kill_now();
                Err(Error::new(format!(
                    "the reference backend on port {port} did not become ready: {error}\nits stderr:\n{}",
                    backend.stderr()
                )))
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address as the host and client want it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it wrote to stderr so far (Python warnings, tracebacks).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Kills it with SIGKILL (no goodbye to connected workers, like a crash) and waits
    /// until it is gone, so its port is free again.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        child
            .kill()
            .map_err(|error| Error::new(format!("cannot kill the backend: {error}")))?;
        match wait_with_timeout(&mut child, READY_TIMEOUT)? {
            Some(_) => Ok(()),
            None => Err(Error::new("the backend did not die after SIGKILL")),
        }
    }

    /// Freezes it with SIGSTOP: its connections stay open but nothing answers, like a
    /// hung server or a dead peer behind a half-open TCP connection.
    pub fn pause(&self) -> Result<()> {
        self.signal(libc::SIGSTOP)
    }

    /// Thaws a [`Backend::pause`]d backend with SIGCONT.
    pub fn resume(&self) -> Result<()> {
        self.signal(libc::SIGCONT)
    }

    fn signal(&self, signal: libc::c_int) -> Result<()> {
        match &self.child {
            Some(child) => send_signal(child, signal),
            None => Err(Error::new("the backend is not running")),
        }
    }

    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Reads the launcher's stdout until its READY line. A thread does the blocking reads
/// (and keeps draining stdout afterwards); this side waits on a channel with a deadline.
pub(crate) fn wait_for_ready(stdout: std::process::ChildStdout) -> Result<()> {
    let (lines_tx, lines_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The receiver is gone once READY was seen; keep draining regardless.
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) if line.starts_with("READY") => return Ok(()),
            Ok(_) => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(Error::new(format!(
                    "no READY line within {READY_TIMEOUT:?}"
                )));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::new("it exited before printing READY"));
            }
        }
    }
}

/// A port nothing listens on right now (for a host whose restarts must reuse its port).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| Error::new(format!("cannot find a free port: {error}")))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| Error::new(format!("cannot find a free port: {error}")))
}
