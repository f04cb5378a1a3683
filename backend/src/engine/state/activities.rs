//! Activities scheduled by orchestrations and not yet completed.

use std::collections::{HashMap, HashSet};

use prost::Message;

use crate::records::{ActivityRecord, Kind, numeric_key};
use crate::store::{Op, Store, StoreError};

pub struct Activity {
    pub record: ActivityRecord,
    /// The completion token while a worker has it (in memory only: a restart makes the
    /// activity ready again).
    pub lease: Option<String>,
}

/// Every outstanding activity of one task hub, by id (ids grow, never reused).
pub struct ActivityTable {
    hub: String,
    activities: HashMap<u64, Activity>,
    next_id: u64,
    dirty: HashSet<u64>,
}

impl ActivityTable {
    pub fn new(hub: &str) -> ActivityTable {
        ActivityTable {
            hub: hub.to_owned(),
            activities: HashMap::new(),
            next_id: 1,
            dirty: HashSet::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.activities.is_empty()
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Adds an activity; returns its id.
    pub fn insert(&mut self, record: ActivityRecord) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.activities.insert(
            id,
            Activity {
                record,
                lease: None,
            },
        );
        self.dirty.insert(id);
        id
    }

    pub fn remove(&mut self, id: u64) -> Option<Activity> {
        let activity = self.activities.remove(&id)?;
        self.dirty.insert(id);
        Some(activity)
    }

    pub fn get(&self, id: u64) -> Option<&Activity> {
        self.activities.get(&id)
    }

    /// For the lease, which is not saved.
    pub fn get_mut_unsaved(&mut self, id: u64) -> Option<&mut Activity> {
        self.activities.get_mut(&id)
    }

    /// Every activity, oldest first (the order they are made ready in at load).
    pub fn ids_in_order(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.activities.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Activity)> {
        self.activities.iter().map(|(id, activity)| (*id, activity))
    }

    pub fn collect_ops(&self, ops: &mut Vec<Op>) {
        for &id in &self.dirty {
            let value = self.activities.get(&id).map(|a| a.record.encode_to_vec());
            ops.push(Op::save(&self.hub, Kind::Activity, numeric_key(id), value));
        }
    }

    pub fn mark_flushed(&mut self) {
        self.dirty.clear();
    }

    /// Takes one stored activity into memory (at start, or after a failed commit);
    /// returns the generation it mentions.
    pub fn load(&mut self, id: u64, record: ActivityRecord) -> u64 {
        self.next_id = self.next_id.max(id + 1);
        let generation = record.generation;
        self.dirty.remove(&id);
        self.activities.insert(
            id,
            Activity {
                record,
                lease: None,
            },
        );
        generation
    }

    /// A failed commit: every changed activity goes back to what the store has.
    /// Returns the ids reloaded or dropped.
    pub fn reload_dirty(&mut self, store: &Store) -> Result<Vec<u64>, StoreError> {
        let dirty: Vec<u64> = self.dirty.drain().collect();
        for &id in &dirty {
            self.activities.remove(&id);
            if let Some(bytes) = store.load_record(&self.hub, Kind::Activity, &numeric_key(id))? {
                self.load(id, ActivityRecord::decode(bytes.as_slice())?);
            }
        }
        Ok(dirty)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn record(task_id: i32) -> ActivityRecord {
        ActivityRecord {
            instance_id: "i".into(),
            generation: 3,
            task_id,
            name: "a".into(),
            ..Default::default()
        }
    }

    #[test]
    fn changes_are_saved_and_a_failed_commit_goes_back_to_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mut table = ActivityTable::new("h");
        let kept = table.insert(record(1));
        let mut ops = Vec::new();
        table.collect_ops(&mut ops);
        store.apply(&ops).unwrap();
        table.mark_flushed();
        assert!(!table.is_dirty());

        // A batch that removes one and adds another, then cannot be saved.
        table.remove(kept);
        let added = table.insert(record(2));
        assert!(added > kept, "ids are never reused");
        let reloaded = table.reload_dirty(&store).unwrap();
        assert_eq!(reloaded.len(), 2);
        assert_eq!(table.get(kept).unwrap().record.task_id, 1);
        assert!(table.get(added).is_none());
        assert_eq!(table.ids_in_order(), [kept]);
        assert!(table.insert(record(3)) > added, "ids go on after a reload");
    }

    #[test]
    fn loading_resumes_ids_after_the_highest() {
        let mut table = ActivityTable::new("h");
        assert_eq!(table.load(41, record(1)), 3);
        assert_eq!(table.insert(record(2)), 42);
    }
}
