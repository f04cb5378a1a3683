//! The catalog: which generation serves which orchestrator, activity and entity name.
//!
//! A catalog is immutable; the plugin manager builds a new one whenever the set of
//! generations in service changes, and work items look names up in whichever catalog was
//! current when they arrived.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use super::generation::Generation;
use crate::versioning;

/// The generations in service and the name tables built from them.
#[derive(Debug, Default)]
pub struct Catalog {
    generations: Vec<Arc<Generation>>,
    /// Every generation that registers the orchestrator, oldest version first.
    orchestrators: HashMap<String, Vec<Arc<Generation>>>,
    /// The newest generation that registers the activity.
    activities: HashMap<String, Arc<Generation>>,
    /// The newest generation that registers the entity, by lowercase name.
    entities: HashMap<String, Arc<Generation>>,
}

/// Orders generations by plugin version, as versions compare (`1.10` after `1.9`).
fn by_version(a: &Arc<Generation>, b: &Arc<Generation>) -> Ordering {
    versioning::compare(Some(&a.plugin().version), Some(&b.plugin().version))
}

impl Catalog {
    /// The tables for `generations`, given in the order they were put in service.
    ///
    /// A name registered by two different plugins (not two versions of one plugin)
    /// belongs to the plugin that was in service first; the clash is logged. (The
    /// manager refuses such a library before it is put in service, so this is a guard,
    /// for generations given by other means.)
    pub(crate) fn new(generations: Vec<Arc<Generation>>) -> Self {
        let mut owners: HashMap<(&'static str, String), String> = HashMap::new();
        let mut catalog = Catalog::default();
        for generation in &generations {
            let plugin = generation.plugin();
            let mut owns = |kind: &'static str, name: &str| -> bool {
                let owner = owners
                    .entry((kind, name.to_owned()))
                    .or_insert_with(|| plugin.name.clone());
                if *owner != plugin.name {
                    tracing::warn!(
                        "{kind} '{name}' is registered by both plugin '{owner}' and plugin '{}'; '{owner}' keeps it",
                        plugin.name
                    );
                    return false;
                }
                true
            };
            for name in &plugin.orchestrators {
                if owns("orchestrator", name) {
                    catalog
                        .orchestrators
                        .entry(name.clone())
                        .or_default()
                        .push(Arc::clone(generation));
                }
            }
            for name in &plugin.activities {
                if owns("activity", name) {
                    keep_newest(&mut catalog.activities, name.clone(), generation);
                }
            }
            for name in &plugin.entities {
                let name = name.to_lowercase();
                if owns("entity", &name) {
                    keep_newest(&mut catalog.entities, name, generation);
                }
            }
        }
        for versions in catalog.orchestrators.values_mut() {
            // Stable: of two generations at equal versions, the one in service first
            // comes first.
            versions.sort_by(by_version);
        }
        catalog.generations = generations;
        catalog
    }

    /// The generations in service, in the order they were put in service.
    pub fn generations(&self) -> &[Arc<Generation>] {
        &self.generations
    }

    /// The generations that run orchestrator `name`, oldest version first (empty if
    /// none does).
    pub(crate) fn orchestrator(&self, name: &str) -> &[Arc<Generation>] {
        self.orchestrators.get(name).map_or(&[], Vec::as_slice)
    }

    /// The generation that runs activity `name`.
    pub(crate) fn activity(&self, name: &str) -> Option<&Arc<Generation>> {
        self.activities.get(name)
    }

    /// The generation that runs entity `name` (lowercase).
    pub(crate) fn entity(&self, name: &str) -> Option<&Arc<Generation>> {
        self.entities.get(name)
    }

    /// Every registered orchestrator name with the versions that serve it, every
    /// activity name and every entity name: what work-item filters are made of.
    pub fn registrations(&self) -> Registrations<'_> {
        Registrations {
            orchestrators: self
                .orchestrators
                .iter()
                .map(|(name, generations)| {
                    let versions = generations
                        .iter()
                        .map(|g| g.plugin().version.as_str())
                        .collect();
                    (name.as_str(), versions)
                })
                .collect(),
            activities: self.activities.keys().map(String::as_str).collect(),
            entities: self.entities.keys().map(String::as_str).collect(),
        }
    }
}

/// The names a catalog serves; see [`Catalog::registrations`].
#[derive(Debug)]
pub struct Registrations<'a> {
    /// Orchestrator name → the plugin versions that serve it, oldest first.
    pub orchestrators: Vec<(&'a str, Vec<&'a str>)>,
    pub activities: Vec<&'a str>,
    pub entities: Vec<&'a str>,
}

/// Activities and entities run on the newest generation that registers them (the one in
/// service last, among equal versions).
fn keep_newest(
    table: &mut HashMap<String, Arc<Generation>>,
    name: String,
    generation: &Arc<Generation>,
) {
    match table.get(&name) {
        Some(current) if by_version(generation, current) == Ordering::Less => {}
        _ => {
            table.insert(name, Arc::clone(generation));
        }
    }
}
