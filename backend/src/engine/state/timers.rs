//! Timers: orchestration timers, delayed entity signals and scheduled starts.
//!
//! Each is a record with a due time; a min-heap orders them. Heap entries are not removed
//! when a timer is: a popped entry whose record is gone (or has another due time) is
//! skipped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use prost::Message;

use crate::engine::events::Nanos;
use crate::records::{Kind, TimerRecord, TimerTarget, numeric_key};
use crate::store::{Op, Store, StoreError};

pub struct TimerTable {
    hub: String,
    timers: HashMap<u64, TimerRecord>,
    heap: BinaryHeap<Reverse<(Nanos, u64)>>,
    next_id: u64,
    dirty: HashSet<u64>,
}

impl TimerTable {
    pub fn new(hub: &str) -> TimerTable {
        TimerTable {
            hub: hub.to_owned(),
            timers: HashMap::new(),
            heap: BinaryHeap::new(),
            next_id: 1,
            dirty: HashSet::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub fn add(&mut self, due: Nanos, target: TimerTarget) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.timers.insert(
            id,
            TimerRecord {
                due,
                target: Some(target),
            },
        );
        self.heap.push(Reverse((due, id)));
        self.dirty.insert(id);
        id
    }

    pub fn remove(&mut self, id: u64) {
        if self.timers.remove(&id).is_some() {
            self.dirty.insert(id);
        }
    }

    pub fn get(&self, id: u64) -> Option<&TimerRecord> {
        self.timers.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &TimerRecord)> {
        self.timers.iter().map(|(id, timer)| (*id, timer))
    }

    /// The earliest due time of a live timer.
    pub fn next_due(&mut self) -> Option<Nanos> {
        while let Some(&Reverse((due, id))) = self.heap.peek() {
            if self.timers.get(&id).is_some_and(|timer| timer.due == due) {
                return Some(due);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Nanos) -> Option<(u64, TimerRecord)> {
        let due = self.next_due()?;
        if due > now {
            return None;
        }
        let Reverse((_, id)) = self.heap.pop()?;
        let timer = self.timers.remove(&id)?;
        self.dirty.insert(id);
        Some((id, timer))
    }

    pub fn collect_ops(&self, ops: &mut Vec<Op>) {
        for &id in &self.dirty {
            let value = self.timers.get(&id).map(Message::encode_to_vec);
            ops.push(Op::save(&self.hub, Kind::Timer, numeric_key(id), value));
        }
    }

    pub fn mark_flushed(&mut self) {
        self.dirty.clear();
    }

    /// Takes one stored timer into memory; returns the generation it mentions.
    pub fn load(&mut self, id: u64, record: TimerRecord) -> u64 {
        self.next_id = self.next_id.max(id + 1);
        let generation = match &record.target {
            Some(TimerTarget::Orchestration(target)) => target.generation,
            Some(TimerTarget::ScheduledStart(target)) => target.generation,
            _ => 0,
        };
        self.dirty.remove(&id);
        self.heap.push(Reverse((record.due, id)));
        self.timers.insert(id, record);
        generation
    }

    /// A failed commit: every changed timer goes back to what the store has. Returns the
    /// ids reloaded or dropped.
    pub fn reload_dirty(&mut self, store: &Store) -> Result<Vec<u64>, StoreError> {
        let dirty: Vec<u64> = self.dirty.drain().collect();
        for &id in &dirty {
            self.timers.remove(&id);
            if let Some(bytes) = store.load_record(&self.hub, Kind::Timer, &numeric_key(id))? {
                self.load(id, TimerRecord::decode(bytes.as_slice())?);
            }
        }
        Ok(dirty)
    }
}

/// The instance a timer belongs to, if any.
pub fn instance_of(timer: &TimerRecord) -> Option<&str> {
    match &timer.target {
        Some(TimerTarget::Orchestration(target)) => Some(&target.instance_id),
        Some(TimerTarget::ScheduledStart(target)) => Some(&target.instance_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::records::ScheduledStart;

    fn start(id: &str) -> TimerTarget {
        TimerTarget::ScheduledStart(ScheduledStart {
            instance_id: id.into(),
            generation: 1,
        })
    }

    #[test]
    fn timers_fire_in_due_order_and_removed_ones_never() {
        let mut timers = TimerTable::new("h");
        let late = timers.add(30, start("late"));
        let removed = timers.add(10, start("removed"));
        let early = timers.add(20, start("early"));
        timers.remove(removed);
        assert_eq!(timers.next_due(), Some(20));
        assert!(timers.pop_due(19).is_none());
        assert_eq!(timers.pop_due(100).map(|(id, _)| id), Some(early));
        assert_eq!(timers.pop_due(100).map(|(id, _)| id), Some(late));
        assert!(timers.pop_due(100).is_none());
        assert!(timers.is_empty());
    }

    #[test]
    fn a_failed_commit_brings_back_a_timer_that_fired_and_drops_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mut timers = TimerTable::new("h");
        let saved = timers.add(5, start("a"));
        let mut ops = Vec::new();
        timers.collect_ops(&mut ops);
        store.apply(&ops).unwrap();
        timers.mark_flushed();

        assert!(timers.pop_due(10).is_some());
        let added = timers.add(7, start("b"));
        timers.reload_dirty(&store).unwrap();
        assert!(timers.get(added).is_none());
        assert_eq!(instance_of(timers.get(saved).unwrap()), Some("a"));
        assert_eq!(timers.pop_due(10).map(|(id, _)| id), Some(saved));
    }
}
