//! A client that calls the sidecar's `Hello` every 20 ms while a test attacks the host
//! (`tests/hello_probe.py`, on the reference venv's gRPC): how slow the backend's answer
//! got is what a user of the embedded backend would feel.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::paths;
use crate::process::die_with_parent;
use crate::python::reference_python;

/// A running probe.
pub struct HelloProbe {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl HelloProbe {
    /// Starts probing `endpoint` (`http://127.0.0.1:PORT` or `127.0.0.1:PORT`) and returns
    /// once the first `Hello` was answered.
    pub fn start(endpoint: &str) -> Result<Self> {
        let target = endpoint.trim_start_matches("http://");
        let script = paths::workspace_root().join("tests").join("hello_probe.py");
        let mut child = die_with_parent(
            Command::new(reference_python()?)
                .arg(&script)
                .arg(target)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )
        .spawn()
        .map_err(|error| Error::new(format!("cannot run {}: {error}", script.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::new("the probe's stdout was not captured"))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|error| Error::new(format!("the probe did not start: {error}")))?;
        if line.trim() != "ready" {
            return Err(Error::new(format!("the probe did not start: {line:?}")));
        }
        Ok(Self { child, stdout })
    }

    /// Stops probing; its report: `calls`, `failures`, `max_ms`, `p99_ms`, `slowest_at`.
    pub fn finish(mut self) -> Result<Value> {
        // Closing its stdin is the signal to stop.
        drop(self.child.stdin.take());
        let mut report = String::new();
        self.stdout
            .read_to_string(&mut report)
            .map_err(|error| Error::new(format!("cannot read the probe's report: {error}")))?;
        let _ = self.child.wait();
        serde_json::from_str(report.trim())
            .map_err(|error| Error::new(format!("the probe's report {report:?}: {error}")))
    }
}

impl Drop for HelloProbe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
