//! Microsoft's Python SDK worker, run by `tests/python_worker.py`, for interop tests: a
//! second worker on the same backend as the host, serving the `py_` names.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::backend::{Backend, wait_for_ready};
use crate::error::{Error, Result};
use crate::paths;
use crate::process::{die_with_parent, kill_and_reap, send_signal, wait_with_timeout};
use crate::python::reference_python;

/// A running `tests/python_worker.py` connected to a [`Backend`]. Dropping it kills it.
pub struct PythonWorker {
    child: Option<Child>,
    stderr_path: PathBuf,
    // Holds the worker's stderr file; removed with the worker.
    _scratch: TempDir,
}

impl PythonWorker {
    /// Starts the worker against `backend` and waits until it has started (its READY
    /// line). It connects its work-item stream right after, asynchronously.
    pub fn start(backend: &Backend) -> Result<Self> {
        let python = reference_python()?;
        let script = paths::workspace_root()
            .join("tests")
            .join("python_worker.py");
        let scratch = tempfile::Builder::new()
            .prefix("durabletask-python-worker-")
            .tempdir()
            .map_err(|error| Error::new(format!("cannot create a scratch dir: {error}")))?;
        let stderr_path = scratch.path().join("worker.stderr");
        let stderr = File::create(&stderr_path).map_err(|error| {
            Error::new(format!("cannot create {}: {error}", stderr_path.display()))
        })?;
        let mut child = die_with_parent(
            Command::new(&python)
                .arg(&script)
                .args(["--address", &format!("127.0.0.1:{}", backend.port())])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr),
        )
        .spawn()
        .map_err(|error| Error::new(format!("cannot run {}: {error}", python.display())))?;
        let ready = match child.stdout.take() {
            Some(stdout) => wait_for_ready(stdout),
            None => Err(Error::new("the Python worker's stdout was not captured")),
        };
        let mut worker = Self {
            child: Some(child),
            stderr_path,
            _scratch: scratch,
        };
        match ready {
            Ok(()) => Ok(worker),
            Err(error) => {
                worker.kill();
                Err(Error::new(format!(
                    "the Python worker did not start: {error}\nits stderr:\n{}",
                    worker.stderr()
                )))
            }
        }
    }

    /// What it wrote to stderr so far (its log, tracebacks).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Stops it with SIGTERM (the worker closes its stream and exits) and waits up to
    /// `timeout`; kills it if it is still running then.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(Error::new("the Python worker is not running"));
        };
        send_signal(&child, libc::SIGTERM)?;
        wait_with_timeout(&mut child, timeout)?.ok_or_else(|| {
            Error::new(format!(
                "the Python worker did not stop within {timeout:?}; killed it\nits stderr:\n{}",
                self.stderr()
            ))
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        self.kill();
    }
}
