//! Entities (state, lock, queued operations) and the lock requests that wait for them.
//!
//! Operations and lock requests share one arrival counter (`seq`): it decides who goes
//! first (see the engine's `entities` module for the rules).

use std::collections::{BTreeMap, HashMap, HashSet};

use prost::Message;

use crate::engine::events;
use crate::records::{EntityRecord, Kind, LockRequestRecord, QueuedOperation, numeric_key};
use crate::store::{Op, Store, StoreError};

pub struct Entity {
    pub record: EntityRecord,
    pub in_flight: Option<EntityFlight>,
    /// A batch whose stream ended, by token and operation numbers (see
    /// `state::instances::Released`).
    pub released: Option<(String, Vec<u64>)>,
}

pub struct EntityFlight {
    pub token: String,
    pub operations: Vec<QueuedOperation>,
}

impl Entity {
    pub fn new(instance_id: String) -> Entity {
        Entity {
            record: EntityRecord {
                instance_id,
                last_modified_at: events::now(),
                ..Default::default()
            },
            in_flight: None,
            released: None,
        }
    }

    fn stored(record: EntityRecord) -> Entity {
        Entity {
            record,
            in_flight: None,
            released: None,
        }
    }

    /// Its record as saved: operations handed out are saved with the rest, in arrival
    /// order, so that they are redelivered after a restart.
    fn encode(&self) -> Vec<u8> {
        match &self.in_flight {
            None => self.record.encode_to_vec(),
            Some(flight) => {
                let mut record = self.record.clone();
                record.operations.extend(flight.operations.iter().cloned());
                record.operations.sort_by_key(|operation| operation.seq);
                record.encode_to_vec()
            }
        }
    }
}

pub struct EntityTable {
    hub: String,
    entities: HashMap<String, Entity>,
    /// Entities currently locked (few at any time), so finishing orchestrations need not
    /// scan every entity for locks to free.
    locked: HashSet<String>,
    /// Lock requests waiting for their entities, by arrival order.
    lock_requests: BTreeMap<u64, LockRequestRecord>,
    next_seq: u64,
    dirty_entities: HashSet<String>,
    dirty_locks: HashSet<u64>,
}

impl EntityTable {
    pub fn new(hub: &str) -> EntityTable {
        EntityTable {
            hub: hub.to_owned(),
            entities: HashMap::new(),
            locked: HashSet::new(),
            lock_requests: BTreeMap::new(),
            next_seq: 1,
            dirty_entities: HashSet::new(),
            dirty_locks: HashSet::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.lock_requests.is_empty()
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty_entities.is_empty() || !self.dirty_locks.is_empty()
    }

    /// The next arrival number.
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub fn get(&self, id: &str) -> Option<&Entity> {
        self.entities.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entity)> {
        self.entities.iter()
    }

    pub fn ids(&self) -> Vec<String> {
        self.entities.keys().cloned().collect()
    }

    /// The entity, marked as changed.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entity> {
        let entity = self.entities.get_mut(id)?;
        if !self.dirty_entities.contains(id) {
            self.dirty_entities.insert(id.to_owned());
        }
        Some(entity)
    }

    /// For handing out and taking back a batch, which leaves the saved form as it is.
    pub fn get_mut_unsaved(&mut self, id: &str) -> Option<&mut Entity> {
        self.entities.get_mut(id)
    }

    /// The entity, created (empty) if it does not exist yet; marked as changed.
    pub fn get_or_create(&mut self, id: &str) -> &mut Entity {
        if !self.dirty_entities.contains(id) {
            self.dirty_entities.insert(id.to_owned());
        }
        self.entities
            .entry(id.to_owned())
            .or_insert_with(|| Entity::new(id.to_owned()))
    }

    pub fn remove(&mut self, id: &str) -> Option<Entity> {
        let entity = self.entities.remove(id)?;
        self.locked.remove(id);
        self.dirty_entities.insert(id.to_owned());
        Some(entity)
    }

    /// Locks `id` for critical section `section` of orchestration `owner` (creating the
    /// entity), or unlocks it (`None`).
    pub fn set_lock(&mut self, id: &str, lock: Option<(String, String)>) {
        let locked = lock.is_some();
        let entity = self.get_or_create(id);
        let (section, owner) = lock.unzip();
        entity.record.locked_by = section;
        entity.record.lock_owner = owner;
        if locked {
            self.locked.insert(id.to_owned());
        } else {
            self.locked.remove(id);
        }
    }

    /// The locked entities.
    pub fn locked(&self) -> impl Iterator<Item = &String> {
        self.locked.iter()
    }

    pub fn lock_requests(&self) -> impl Iterator<Item = (&u64, &LockRequestRecord)> {
        self.lock_requests.iter()
    }

    pub fn has_lock_requests(&self) -> bool {
        !self.lock_requests.is_empty()
    }

    pub fn add_lock_request(&mut self, request: LockRequestRecord) {
        self.dirty_locks.insert(request.seq);
        self.lock_requests.insert(request.seq, request);
    }

    pub fn remove_lock_request(&mut self, seq: u64) -> Option<LockRequestRecord> {
        let request = self.lock_requests.remove(&seq)?;
        self.dirty_locks.insert(seq);
        Some(request)
    }

    pub fn collect_ops(&self, ops: &mut Vec<Op>) {
        for id in &self.dirty_entities {
            let value = self.entities.get(id).map(Entity::encode);
            ops.push(Op::save(&self.hub, Kind::Entity, id.clone(), value));
        }
        for &seq in &self.dirty_locks {
            let value = self.lock_requests.get(&seq).map(Message::encode_to_vec);
            ops.push(Op::save(
                &self.hub,
                Kind::LockRequest,
                numeric_key(seq),
                value,
            ));
        }
    }

    pub fn mark_flushed(&mut self) {
        self.dirty_entities.clear();
        self.dirty_locks.clear();
    }

    /// Takes one stored entity into memory.
    pub fn load_entity(&mut self, id: &str, record: EntityRecord) {
        for operation in &record.operations {
            self.next_seq = self.next_seq.max(operation.seq + 1);
        }
        if record.locked_by.is_some() {
            self.locked.insert(id.to_owned());
        } else {
            self.locked.remove(id);
        }
        self.dirty_entities.remove(id);
        self.entities.insert(id.to_owned(), Entity::stored(record));
    }

    /// Takes one stored lock request into memory.
    pub fn load_lock_request(&mut self, record: LockRequestRecord) {
        self.next_seq = self.next_seq.max(record.seq + 1);
        self.dirty_locks.remove(&record.seq);
        self.lock_requests.insert(record.seq, record);
    }

    /// A failed commit: every changed entity and lock request goes back to what the
    /// store has. Returns the entity ids reloaded or dropped.
    pub fn reload_dirty(&mut self, store: &Store) -> Result<Vec<String>, StoreError> {
        for seq in std::mem::take(&mut self.dirty_locks) {
            self.lock_requests.remove(&seq);
            if let Some(bytes) =
                store.load_record(&self.hub, Kind::LockRequest, &numeric_key(seq))?
            {
                self.load_lock_request(LockRequestRecord::decode(bytes.as_slice())?);
            }
        }
        let dirty: Vec<String> = self.dirty_entities.drain().collect();
        for id in &dirty {
            self.entities.remove(id);
            self.locked.remove(id);
            if let Some(bytes) = store.load_record(&self.hub, Kind::Entity, id)? {
                self.load_entity(id, EntityRecord::decode(bytes.as_slice())?);
            }
        }
        Ok(dirty)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn save(table: &mut EntityTable, store: &mut Store) {
        let mut ops = Vec::new();
        table.collect_ops(&mut ops);
        store.apply(&ops).unwrap();
        table.mark_flushed();
    }

    #[test]
    fn locks_are_indexed_and_survive_a_save_and_a_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mut table = EntityTable::new("h");
        table.set_lock("@a@1", Some(("cs".into(), "orch".into())));
        table.get_or_create("@b@1");
        let seq = table.next_seq();
        table.add_lock_request(LockRequestRecord {
            seq,
            critical_section_id: "cs2".into(),
            parent_instance_id: "other".into(),
            lock_set: vec!["@a@1".into()],
        });
        save(&mut table, &mut store);

        let mut loaded = EntityTable::new("h");
        for record in store.load_records().unwrap() {
            match record.kind {
                Kind::Entity => loaded.load_entity(
                    &record.key,
                    EntityRecord::decode(record.value.as_slice()).unwrap(),
                ),
                Kind::LockRequest => loaded
                    .load_lock_request(LockRequestRecord::decode(record.value.as_slice()).unwrap()),
                _ => {}
            }
        }
        assert_eq!(loaded.locked().collect::<Vec<_>>(), ["@a@1"]);
        assert_eq!(loaded.lock_requests().count(), 1);
        assert!(
            loaded.next_seq() > seq,
            "arrival numbers go on after a load"
        );
        assert!(!loaded.is_dirty());
    }

    #[test]
    fn a_failed_commit_restores_state_and_locks_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mut table = EntityTable::new("h");
        table.get_or_create("@a@1").record.state = Some("1".into());
        save(&mut table, &mut store);

        table.get_mut("@a@1").unwrap().record.state = Some("2".into());
        table.set_lock("@a@1", Some(("cs".into(), "o".into())));
        table.get_or_create("@new@1");
        let reloaded = table.reload_dirty(&store).unwrap();
        assert_eq!(reloaded.len(), 2);
        assert_eq!(
            table.get("@a@1").unwrap().record.state.as_deref(),
            Some("1")
        );
        assert_eq!(table.locked().count(), 0);
        assert!(table.get("@new@1").is_none());
    }
}
