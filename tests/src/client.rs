//! The project's own client: `durabletask-host client --endpoint URL <verb> ...`, which
//! prints one JSON object per call.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::paths;
use crate::process::run_with_timeout;

/// How long a client call without its own `--timeout` may take (one gRPC round trip,
/// plus process start-up on a busy machine).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Extra time the harness allows beyond a call's own `--timeout` before it kills it.
const TIMEOUT_MARGIN: Duration = Duration::from_secs(30);

/// Client exit codes, as documented by `durabletask-host client --help`.
pub mod exit_codes {
    /// The call succeeded (also when the orchestration it reports FAILED).
    pub const OK: i32 = 0;
    /// A gRPC or usage error.
    pub const ERROR: i32 = 2;
    /// `wait` (or `start --wait`) timed out.
    pub const TIMEOUT: i32 = 3;
    /// No such instance (or entity).
    pub const NOT_FOUND: i32 = 4;
}

/// One client invocation's outcome.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// The exit code (`None` if killed by a signal).
    pub exit_code: Option<i32>,
    /// Its stdout parsed as JSON (`Value::Null` if it was not JSON).
    pub json: Value,
    /// Raw stdout.
    pub stdout: String,
    /// Raw stderr.
    pub stderr: String,
}

impl ClientRun {
    /// The JSON output if the call exited 0, else an error with everything it printed.
    pub fn ok(self) -> Result<Value> {
        if self.exit_code == Some(exit_codes::OK) {
            Ok(self.json)
        } else {
            Err(Error::new(format!(
                "the client exited with {:?}\nstdout: {}\nstderr: {}",
                self.exit_code, self.stdout, self.stderr
            )))
        }
    }
}

/// Runs client verbs against one backend.
#[derive(Debug, Clone)]
pub struct Client {
    binary: PathBuf,
    endpoint: String,
    taskhub: String,
    /// A bearer token the client sends (through `--token-env`).
    token: Option<String>,
}

impl Client {
    /// A client for the backend at `endpoint` (e.g. `Backend::endpoint()`), task hub
    /// `default`.
    pub fn new(endpoint: impl Into<String>) -> Result<Self> {
        Ok(Self {
            binary: paths::host_binary()?,
            endpoint: endpoint.into(),
            taskhub: "default".to_owned(),
            token: None,
        })
    }

    /// The same client, sending `token` as its bearer token.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Runs `durabletask-host client --endpoint .. --taskhub .. <args>`; any exit code is
    /// a successful run (check [`ClientRun::exit_code`]).
    pub fn run(&self, args: &[&str]) -> Result<ClientRun> {
        self.run_bounded(args, CALL_TIMEOUT)
    }

    fn run_bounded(&self, args: &[&str], timeout: Duration) -> Result<ClientRun> {
        /// The variable the token travels in, never on the command line.
        const TOKEN_ENV: &str = "DURABLETASK_E2E_CLIENT_TOKEN";
        let mut command = Command::new(&self.binary);
        command
            .args(["client", "--endpoint", &self.endpoint])
            .args(["--taskhub", &self.taskhub]);
        if let Some(token) = &self.token {
            command
                .args(["--token-env", TOKEN_ENV])
                .env(TOKEN_ENV, token);
        }
        let output = run_with_timeout(command.args(args).env("NO_COLOR", "1"), timeout)?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        Ok(ClientRun {
            exit_code: output.status.code(),
            json: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Schedules orchestration `name` and returns its instance id without waiting.
    pub fn start(&self, name: &str, input: Option<&Value>) -> Result<String> {
        let input = input.map(Value::to_string);
        let mut args = vec!["start", name];
        if let Some(input) = &input {
            args.extend(["--input", input]);
        }
        let state = self.run(&args)?.ok()?;
        instance_id(&state)
    }

    /// Schedules orchestration `name` and waits up to `timeout` for it to finish. Returns
    /// the final state, whatever the status; a timeout is an error.
    pub fn start_and_wait(
        &self,
        name: &str,
        input: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value> {
        let input = input.map(Value::to_string);
        let seconds = whole_seconds(timeout);
        let mut args = vec!["start", name, "--wait", "--timeout", &seconds];
        if let Some(input) = &input {
            args.extend(["--input", input]);
        }
        self.run_bounded(&args, timeout + TIMEOUT_MARGIN)?.ok()
    }

    /// Schedules orchestration `name` with instance tags (each sent as `--tag KEY=VALUE`),
    /// under `instance_id` if given. With `wait`, waits up to that long for it to finish
    /// (a timeout is an error). Returns the state `start` printed.
    pub fn start_tagged(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: Option<&Value>,
        tags: &[(&str, &str)],
        wait: Option<Duration>,
    ) -> Result<Value> {
        let input = input.map(Value::to_string);
        let tags: Vec<String> = tags
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let seconds = wait.map(whole_seconds);
        let mut args = vec!["start", name];
        if let Some(instance_id) = instance_id {
            args.extend(["--id", instance_id]);
        }
        if let Some(input) = &input {
            args.extend(["--input", input]);
        }
        for tag in &tags {
            args.extend(["--tag", tag]);
        }
        match (&seconds, wait) {
            (Some(seconds), Some(wait)) => {
                args.extend(["--wait", "--timeout", seconds]);
                self.run_bounded(&args, wait + TIMEOUT_MARGIN)?.ok()
            }
            _ => self.run(&args)?.ok(),
        }
    }

    /// The instance's current state.
    pub fn status(&self, instance_id: &str) -> Result<Value> {
        self.run(&["status", instance_id])?.ok()
    }

    /// Waits up to `timeout` for the instance to finish; a timeout is an error.
    pub fn wait(&self, instance_id: &str, timeout: Duration) -> Result<Value> {
        let seconds = whole_seconds(timeout);
        self.run_bounded(
            &["wait", instance_id, "--timeout", &seconds],
            timeout + TIMEOUT_MARGIN,
        )?
        .ok()
    }

    /// Waits (bounded) until the instance's history records an event of `kind`
    /// (`timerCreated`, ...), as `client history` names kinds; answers the history.
    pub fn wait_for_history_event(
        &self,
        instance_id: &str,
        kind: &str,
        timeout: Duration,
    ) -> Result<Value> {
        let history = crate::poll_until(timeout, || {
            let history = self.run(&["history", instance_id])?.ok()?;
            let recorded = history["events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|event| event["kind"] == kind));
            Ok(recorded.then_some(history))
        })?;
        history.ok_or_else(|| {
            Error::new(format!(
                "instance {instance_id} recorded no {kind} event within {timeout:?}"
            ))
        })
    }

    /// Polls the instance's status until it is one of `statuses` (bounded by `timeout`).
    pub fn wait_for_status(
        &self,
        instance_id: &str,
        statuses: &[&str],
        timeout: Duration,
    ) -> Result<Value> {
        let mut last = Value::Null;
        let found = crate::process::poll_until(timeout, || {
            last = self.status(instance_id)?;
            let status = last["status"].as_str().unwrap_or_default();
            Ok(statuses.contains(&status).then(|| last.clone()))
        })?;
        found.ok_or_else(|| {
            Error::new(format!(
                "instance {instance_id} did not reach {statuses:?} within {timeout:?}; last state: {last:#}"
            ))
        })
    }

    /// Terminates the instance, with an optional output.
    pub fn terminate(&self, instance_id: &str, output: Option<&Value>) -> Result<Value> {
        let output = output.map(Value::to_string);
        let mut args = vec!["terminate", instance_id];
        if let Some(output) = &output {
            args.extend(["--output", output]);
        }
        self.run(&args)?.ok()
    }

    /// Purges a finished instance.
    pub fn purge(&self, instance_id: &str) -> Result<Value> {
        self.run(&["purge", instance_id])?.ok()
    }

    /// Schedules orchestration `name` under the chosen `instance_id` without waiting.
    pub fn start_with_id(
        &self,
        name: &str,
        instance_id: &str,
        input: Option<&Value>,
    ) -> Result<()> {
        let input = input.map(Value::to_string);
        let mut args = vec!["start", name, "--id", instance_id];
        if let Some(input) = &input {
            args.extend(["--input", input]);
        }
        self.run(&args)?.ok().map(drop)
    }

    /// The instance's history events, oldest first (`history ID`'s `events`).
    pub fn history(&self, instance_id: &str) -> Result<Vec<Value>> {
        let value = self.run(&["history", instance_id])?.ok()?;
        value["events"]
            .as_array()
            .cloned()
            .ok_or_else(|| Error::new(format!("no events in the client's output: {value:#}")))
    }

    /// Rewinds a failed instance, with an optional reason.
    pub fn rewind(&self, instance_id: &str, reason: Option<&str>) -> Result<Value> {
        let mut args = vec!["rewind", instance_id];
        if let Some(reason) = reason {
            args.extend(["--reason", reason]);
        }
        self.run(&args)?.ok()
    }

    /// Restarts a finished instance (under a new id with `new_id`); returns the id it runs
    /// under now.
    pub fn restart(&self, instance_id: &str, new_id: bool) -> Result<String> {
        let mut args = vec!["restart", instance_id];
        if new_id {
            args.push("--new-id");
        }
        self::instance_id(&self.run(&args)?.ok()?)
    }

    /// The instances matching the filters (`list`'s `instances`): statuses by name, an id
    /// prefix, at most `limit` (the client's default when `None`).
    pub fn list(
        &self,
        statuses: &[&str],
        prefix: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Value>> {
        let limit = limit.map(|limit| limit.to_string());
        let mut args = vec!["list"];
        for status in statuses {
            args.extend(["--status", status]);
        }
        if let Some(prefix) = prefix {
            args.extend(["--prefix", prefix]);
        }
        if let Some(limit) = &limit {
            args.extend(["--limit", limit]);
        }
        let value = self.run(&args)?.ok()?;
        value["instances"]
            .as_array()
            .cloned()
            .ok_or_else(|| Error::new(format!("no instances in the client's output: {value:#}")))
    }

    /// Signals operation `operation` to entity `entity_id` (`@name@key`), with an optional
    /// JSON input and `--at` time; returns what `signal-entity` printed.
    pub fn signal_entity(
        &self,
        entity_id: &str,
        operation: &str,
        input: Option<&Value>,
        at: Option<&str>,
    ) -> Result<Value> {
        let input = input.map(Value::to_string);
        let mut args = vec!["signal-entity", entity_id, operation];
        if let Some(input) = &input {
            args.extend(["--input", input]);
        }
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        self.run(&args)?.ok()
    }

    /// Runs `get-entity`; an entity that does not exist exits with
    /// [`exit_codes::NOT_FOUND`], so the run is returned whatever its exit code.
    pub fn get_entity(&self, entity_id: &str) -> Result<ClientRun> {
        self.run(&["get-entity", entity_id])
    }

    /// Polls `get-entity` until `done` holds for what it printed (bounded by `timeout`);
    /// returns that output.
    pub fn wait_for_entity(
        &self,
        entity_id: &str,
        timeout: Duration,
        mut done: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let mut last = Value::Null;
        let found = crate::process::poll_until(timeout, || {
            last = self.get_entity(entity_id)?.json;
            Ok(done(&last).then(|| last.clone()))
        })?;
        found.ok_or_else(|| {
            Error::new(format!(
                "entity {entity_id} did not reach the expected state within {timeout:?}; \
                 last output: {last:#}"
            ))
        })
    }

    /// `list-entities` with an id prefix and any further flags (`--page-size 1`,
    /// `--continuation-token T`, ...); returns the whole output (`entities` and
    /// `continuation_token`).
    pub fn list_entities(&self, prefix: Option<&str>, flags: &[&str]) -> Result<Value> {
        let mut args = vec!["list-entities"];
        if let Some(prefix) = prefix {
            args.extend(["--prefix", prefix]);
        }
        args.extend(flags);
        self.run(&args)?.ok()
    }
}

/// The `instance_id` field of a client's JSON output.
pub fn instance_id(state: &Value) -> Result<String> {
    state["instance_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::new(format!("no instance_id in the client's output: {state:#}")))
}

/// `--timeout` takes whole seconds; round up so a timeout is never shortened to zero.
fn whole_seconds(timeout: Duration) -> String {
    timeout.as_secs_f64().ceil().max(1.0).to_string()
}
