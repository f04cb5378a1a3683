//! `durabletask-host replay-check --plugin FILE HISTORY...`: before a build is deployed,
//! replay histories saved with `durabletask-host client history` against it and say, for
//! each, whether the build would carry the orchestration on or fail it (see
//! [`super::replay`] for what a replay proves).

use std::path::{Path, PathBuf};

use durabletask_proto as proto;
use proto::history_event::EventType;
use serde_json::{Value, json};

use super::isolation::IsolationSettings;
use super::replay::{self, Verdict};

/// A history read from a file, ready to replay.
#[derive(Debug, Clone)]
pub struct SavedHistory {
    pub file: PathBuf,
    pub instance_id: String,
    pub orchestrator: String,
    pub events: Vec<proto::HistoryEvent>,
}

impl SavedHistory {
    /// Reads what `client history` printed (or its `events` array) from `file`.
    pub fn read(file: &Path) -> Result<SavedHistory, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read {}: {error}", file.display()))?;
        let value: Value = serde_json::from_str(&text).map_err(|error| {
            format!(
                "{} is not JSON ({error}); save a history with `durabletask-host client history ID > FILE`",
                file.display()
            )
        })?;
        let events = durabletask_json::history_from_json(&value)
            .map_err(|error| format!("{}: {error}", file.display()))?;
        let started = events.iter().find_map(|event| match &event.event_type {
            Some(EventType::ExecutionStarted(started)) => Some(started),
            _ => None,
        });
        let Some(started) = started else {
            return Err(format!(
                "{}: the history has no executionStarted event, so there is nothing to replay",
                file.display()
            ));
        };
        let instance_id = value
            .get("instance_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                started
                    .orchestration_instance
                    .as_ref()
                    .map(|instance| instance.instance_id.clone())
            })
            .unwrap_or_default();
        let orchestrator = started.name.clone();
        Ok(SavedHistory {
            file: file.to_path_buf(),
            instance_id,
            orchestrator,
            events,
        })
    }
}

/// The outcome of a check: the build and a verdict per history.
#[derive(Debug)]
pub struct ReplayCheck {
    /// `plugin-name version` of the build.
    pub plugin: String,
    pub results: Vec<(SavedHistory, Verdict)>,
}

impl ReplayCheck {
    /// Whether the build replays every history.
    pub fn all_ok(&self) -> bool {
        self.results
            .iter()
            .all(|(_, verdict)| verdict.is_deterministic())
    }

    /// One line per history.
    pub fn to_text(&self) -> String {
        let mut text = format!("replaying against {}\n", self.plugin);
        for (history, verdict) in &self.results {
            text.push_str(&format!(
                "{}: {} (instance {}, orchestration {})\n",
                history.file.display(),
                verdict.describe(),
                history.instance_id,
                history.orchestrator
            ));
        }
        let failed = self
            .results
            .iter()
            .filter(|(_, verdict)| !verdict.is_deterministic())
            .count();
        text.push_str(&match failed {
            0 => format!("all {} histories replay\n", self.results.len()),
            _ => format!(
                "{failed} of {} histories would fail on this build\n",
                self.results.len()
            ),
        });
        text
    }

    /// `{"plugin", "results": [{"file", "instance_id", "orchestrator", "verdict", "detail"}]}`;
    /// `verdict` is `ok`, `non-deterministic` or `fails`.
    pub fn to_json(&self) -> Value {
        let results: Vec<Value> = self
            .results
            .iter()
            .map(|(history, verdict)| {
                let (name, detail) = match verdict {
                    Verdict::Deterministic => ("ok", Value::Null),
                    Verdict::NonDeterministic(message) => {
                        ("non-deterministic", Value::from(message.as_str()))
                    }
                    Verdict::Fails {
                        error_type,
                        message,
                    } => ("fails", Value::from(format!("{error_type}: {message}"))),
                };
                json!({
                    "file": history.file.display().to_string(),
                    "instance_id": history.instance_id,
                    "orchestrator": history.orchestrator,
                    "verdict": name,
                    "detail": detail,
                })
            })
            .collect();
        json!({ "plugin": self.plugin, "results": results })
    }
}

/// Loads `plugin_file` as the host would (its checks, in a child process unless
/// `isolation` says otherwise) and replays every history against it. Errors are usage
/// errors: a history that cannot be read, a library that would be refused.
/// `properties` are the worker settings the host adds to every step (see
/// `plugins::worker_properties`): a replay needs the same.
pub async fn replay_check(
    plugin_file: &Path,
    history_files: &[PathBuf],
    isolation: IsolationSettings,
    properties: &[(String, prost_types::Value)],
) -> Result<ReplayCheck, String> {
    let histories = history_files
        .iter()
        .map(|file| SavedHistory::read(file))
        .collect::<Result<Vec<_>, _>>()?;
    // The named file is the one to check, wherever it lies: a copy in a private folder
    // passes the folder checks a plugins folder is held to, and nothing else is in it.
    let folder = tempfile::Builder::new()
        .prefix("durabletask-replay-check")
        .tempdir()
        .map_err(|error| format!("cannot create a private folder: {error}"))?;
    let file_name = plugin_file
        .file_name()
        .ok_or_else(|| format!("{} is not a file", plugin_file.display()))?;
    // 0600 whatever the source's mode (cargo's output follows the umask, often 0775),
    // so the strict folder and file checks judge the copy, which only this user can write.
    let copy = || -> std::io::Result<u64> {
        let mut source = std::fs::File::open(plugin_file)?;
        let mut copy = super::private_dir::create_file(&folder.path().join(file_name))?;
        std::io::copy(&mut source, &mut copy)
    };
    copy().map_err(|error| format!("cannot read {}: {error}", plugin_file.display()))?;
    let inventory = super::inventory(folder.path(), true, isolation, None)
        .map_err(|error| format!("cannot load {}: {error}", plugin_file.display()))?;
    if let Some((_, reason)) = inventory.refused.first() {
        return Err(format!(
            "{} would be refused: {reason}",
            plugin_file.display()
        ));
    }
    let Some(generation) = inventory.generations.first() else {
        return Err(format!("{} is not a plugin", plugin_file.display()));
    };
    let mut results = Vec::with_capacity(histories.len());
    for history in histories {
        let verdict = replay::replay(
            generation,
            &history.instance_id,
            history.events.clone(),
            properties,
        )
        .await;
        results.push((history, verdict));
    }
    Ok(ReplayCheck {
        plugin: generation.label(),
        results,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_saved_history_is_read_with_its_instance_and_orchestrator() {
        let folder = tempfile::tempdir().unwrap();
        let file = folder.path().join("order.json");
        std::fs::write(
            &file,
            r#"{"instance_id": "order-7", "events": [
                {"event_id": -1, "timestamp": null, "kind": "orchestratorStarted"},
                {"event_id": -1, "timestamp": null, "kind": "executionStarted",
                 "name": "process_order", "input": {"id": 7}}]}"#,
        )
        .unwrap();
        let history = SavedHistory::read(&file).unwrap();
        assert_eq!(history.instance_id, "order-7");
        assert_eq!(history.orchestrator, "process_order");
        assert_eq!(history.events.len(), 2);
    }

    #[test]
    fn what_cannot_be_replayed_is_named() {
        let folder = tempfile::tempdir().unwrap();
        let missing = folder.path().join("missing.json");
        assert!(
            SavedHistory::read(&missing)
                .unwrap_err()
                .contains("cannot read")
        );

        let not_json = folder.path().join("not.json");
        std::fs::write(&not_json, "orchestratorStarted").unwrap();
        assert!(
            SavedHistory::read(&not_json)
                .unwrap_err()
                .contains("client history")
        );

        let no_start = folder.path().join("no-start.json");
        std::fs::write(
            &no_start,
            r#"[{"event_id": -1, "timestamp": null, "kind": "orchestratorStarted"}]"#,
        )
        .unwrap();
        assert!(
            SavedHistory::read(&no_start)
                .unwrap_err()
                .contains("no executionStarted")
        );
    }
}
