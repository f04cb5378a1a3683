//! `durabletask-host plugins`: what a plugins folder holds, loaded the way the host
//! would load it, shown as text for people or JSON for scripts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::build_memory::BuildMemory;
use super::error::PluginError;
use super::generation::Generation;
use super::isolation::IsolationSettings;
use super::manager::Manager;

/// The outcome of loading a plugins folder.
#[derive(Debug)]
pub struct Inventory {
    /// The folder.
    pub dir: PathBuf,
    /// What would be put in service, in loading order.
    pub generations: Vec<Arc<Generation>>,
    /// Libraries that would be ignored (a version already in service), and why.
    pub ignored: Vec<(PathBuf, String)>,
    /// Libraries that would be refused, and why.
    pub refused: Vec<(PathBuf, String)>,
    /// Libraries that would be loaded although their permissions are unsafe
    /// (`strict_permissions = false`), and why.
    pub untrusted: Vec<(PathBuf, String)>,
}

/// Loads every library in `dir` from private copies, as the host does at start, with
/// `[plugins] strict_permissions`, each plugin where `isolation` says it runs (a
/// library meant for a child process runs no code in this one).
///
/// `build_memory` is the host's memory of which build serves each plugin version
/// (`Config::build_memory`): read, so that the inventory says what the host would do,
/// and never written.
pub fn inventory(
    dir: &Path,
    strict_permissions: bool,
    isolation: IsolationSettings,
    build_memory: Option<&Path>,
) -> Result<Inventory, PluginError> {
    let builds = match build_memory {
        Some(file) => {
            BuildMemory::open(file, false).map_err(|source| PluginError::BuildMemory {
                file: file.to_path_buf(),
                source,
            })?
        }
        None => BuildMemory::default(),
    };
    let (_manager, change) = Manager::first_scan(dir, strict_permissions, isolation, builds)?;
    Ok(Inventory {
        dir: dir.to_path_buf(),
        generations: change.added,
        ignored: change.ignored,
        refused: change
            .refused
            .into_iter()
            .map(|(file, error)| (file, error.to_string()))
            .collect(),
        untrusted: change.untrusted,
    })
}

impl Inventory {
    /// Whether every library in the folder would load.
    pub fn all_loaded(&self) -> bool {
        self.refused.is_empty()
    }

    /// One JSON object: `{"dir", "plugins": [...], "ignored": [...], "refused": [...],
    /// "untrusted": [...]}`; each plugin says where it would run (`"isolation"`:
    /// `"process"` or `"in-process"`).
    pub fn to_json(&self) -> Value {
        let skipped = |list: &[(PathBuf, String)]| -> Vec<Value> {
            list.iter()
                .map(|(file, reason)| json!({ "file": file.display().to_string(), "reason": reason }))
                .collect()
        };
        json!({
            "dir": self.dir.display().to_string(),
            "plugins": self.generations.iter().map(|generation| {
                let plugin = generation.plugin();
                json!({
                    "name": plugin.name,
                    "version": plugin.version,
                    "file": plugin.source.display().to_string(),
                    "build": plugin.content_hash,
                    "sdk_version": plugin.sdk_version,
                    "isolation": isolation(plugin),
                    "orchestrators": plugin.orchestrators,
                    "activities": plugin.activities,
                    "entities": plugin.entities,
                })
            }).collect::<Vec<_>>(),
            "ignored": skipped(&self.ignored),
            "refused": skipped(&self.refused),
            "untrusted": skipped(&self.untrusted),
        })
    }

    /// A report for people: each plugin with its registrations, then what was skipped.
    pub fn to_text(&self) -> String {
        let list = |names: &[String]| {
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(", ")
            }
        };
        let mut text = format!("plugins folder: {}\n", self.dir.display());
        if self.generations.is_empty() {
            text.push_str("no plugin would be loaded\n");
        }
        for generation in &self.generations {
            let plugin = generation.plugin();
            text.push_str(&format!(
                "\n{} {}\n  file:          {} (build {}, sdk {})\n  runs:          {}\n  orchestrators: {}\n  activities:    {}\n  entities:      {}\n",
                plugin.name,
                plugin.version,
                plugin.source.display(),
                plugin.content_hash,
                plugin.sdk_version,
                isolation(plugin),
                list(&plugin.orchestrators),
                list(&plugin.activities),
                list(&plugin.entities),
            ));
        }
        for (heading, skipped) in [
            ("ignored", &self.ignored),
            ("refused", &self.refused),
            (
                "loaded although unsafe (strict_permissions = false)",
                &self.untrusted,
            ),
        ] {
            if !skipped.is_empty() {
                text.push_str(&format!("\n{heading}:\n"));
                for (file, reason) in skipped {
                    text.push_str(&format!("  {}: {reason}\n", file.display()));
                }
            }
        }
        text
    }
}

/// `[plugins] isolation`'s value for where `plugin` runs.
fn isolation(plugin: &super::LoadedPlugin) -> &'static str {
    if plugin.isolated() {
        "process"
    } else {
        "in-process"
    }
}
