//! Orchestration instances: the live ones in full, the finished ones as a few facts.
//!
//! A running instance (or one whose change is not saved yet) is an [`Instance`]: its
//! record, pending events, history and the work it waits for. Once a finished instance is
//! saved, memory keeps only a [`Finished`] summary (status, times, run, parent link):
//! enough to filter and sort listings, follow sub-orchestration links and refuse what a
//! finished instance cannot take. Its record and history are read from the store when a
//! caller asks for them ([`InstanceTable::stored_record`]), and taken back into memory
//! when something changes it ([`InstanceTable::hydrate`]: rewind, a new parent link).
//!
//! Listings walk two ordered indexes, by creation time and by completion time, from the
//! caller's cursor: a page costs its own size, not the size of the hub.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use durabletask_proto::history_event::EventType;
use durabletask_proto::*;
use prost::Message;

use crate::engine::events::{self, Nanos};
use crate::records::{InstanceRecord, Kind};
use crate::store::{Op, Store, StoreError};

/// An orchestration instance in memory.
pub struct Instance {
    /// Metadata and pending events (the events not handed out).
    pub record: InstanceRecord,
    /// The work item handed out, if any: at most one per instance.
    pub in_flight: Option<InFlight>,
    pub released: Option<Released>,
    /// The history, or `None` when only the store has it (loaded when needed).
    pub history: Option<Vec<HistoryEvent>>,
    /// How many history events the store has (kept while the history is unloaded).
    pub persisted_len: usize,
    /// The stored history must be deleted before the new one is written.
    pub history_replaced: bool,
    /// Outstanding activities of the current generation, by task id.
    pub activities: HashMap<i32, u64>,
    /// Timers of this instance (durable timers and its scheduled start).
    pub timers: HashSet<u64>,
}

/// A work item whose stream ended before it was completed: its events are pending again,
/// but until it is handed out anew, a completion with its token is still accepted (a
/// worker that drains its work after closing the stream, protocol.md §1.9).
pub struct Released {
    pub token: String,
    /// How many events at the front of `pending` it had.
    pub count: usize,
}

pub struct InFlight {
    pub token: String,
    /// The events handed out as `newEvents`; they join the history on completion.
    pub events: Vec<HistoryEvent>,
}

impl Instance {
    pub fn new(record: InstanceRecord) -> Instance {
        Instance {
            record,
            in_flight: None,
            released: None,
            history: Some(Vec::new()),
            persisted_len: 0,
            history_replaced: true,
            activities: HashMap::new(),
            timers: HashSet::new(),
        }
    }

    /// An instance as the store has it: its history stays in the store until needed.
    fn stored(record: InstanceRecord) -> Instance {
        Instance {
            history: None,
            history_replaced: false,
            ..Instance::new(record)
        }
    }

    pub fn status(&self) -> i32 {
        self.record.status
    }

    pub fn is_terminal(&self) -> bool {
        events::is_terminal(self.record.status)
    }

    pub fn is_suspended(&self) -> bool {
        self.record.status == OrchestrationStatus::Suspended as i32
    }

    /// Whether a worker should get this instance now.
    pub fn dispatchable(&self, now: Nanos) -> bool {
        if self.in_flight.is_some() || self.record.pending.is_empty() || self.is_terminal() {
            return false;
        }
        let terminating = self.record.pending.iter().any(events::is_terminated);
        if !terminating && self.record.not_before.is_some_and(|at| at > now) {
            return false;
        }
        // A suspended instance only needs a worker for what changes its state; the rest
        // waits for the resume (the worker would only buffer it).
        !self.is_suspended()
            || self.record.pending.iter().any(|event| {
                matches!(
                    event.event_type,
                    Some(
                        EventType::ExecutionResumed(_)
                            | EventType::ExecutionTerminated(_)
                            | EventType::ExecutionRewound(_)
                    )
                )
            })
    }

    /// Whether the instance is (or is about to be) suspended, counting suspend and resume
    /// events a worker has not processed yet.
    pub fn effectively_suspended(&self) -> bool {
        let mut suspended = self.is_suspended();
        let in_flight = self
            .in_flight
            .iter()
            .flat_map(|flight| flight.events.iter());
        for event in in_flight.chain(self.record.pending.iter()) {
            match event.event_type {
                Some(EventType::ExecutionSuspended(_)) => suspended = true,
                Some(EventType::ExecutionResumed(_)) => suspended = false,
                _ => {}
            }
        }
        suspended
    }

    /// The history's length plus the events handed out with the current work item (they
    /// join the history when it completes): what a history limit counts.
    pub fn recorded_and_handed_out_events(&self) -> usize {
        let history = self.history.as_ref().map_or(self.persisted_len, Vec::len);
        let in_flight = self
            .in_flight
            .as_ref()
            .map_or(0, |flight| flight.events.len());
        history + in_flight
    }

    pub fn history_mut(&mut self) -> &mut Vec<HistoryEvent> {
        self.history.get_or_insert_with(Vec::new)
    }

    /// Replaces the whole history (continue-as-new, rewind).
    pub fn replace_history(&mut self, history: Vec<HistoryEvent>) {
        self.history = Some(history);
        self.history_replaced = true;
        self.persisted_len = 0;
    }

    /// Whether its history may be left to the store until needed: loaded and saved (the
    /// caller checks that it is not dirty), and no worker holds (or may still complete) a
    /// work item of it, the only way its history grows. Handing out a work item loads it
    /// again (`Hub::take_orchestration`).
    fn history_unloadable(&self) -> bool {
        self.history.is_some()
            && !self.history_replaced
            && self.in_flight.is_none()
            && self.released.is_none()
    }

    /// Whether memory may keep only a summary of it: finished, saved, and no worker
    /// holds (or may still complete) a work item of it.
    fn evictable(&self) -> bool {
        self.is_terminal() && self.in_flight.is_none() && self.released.is_none()
    }

    /// Its record as saved: events handed out are stored as pending, first, so that they
    /// are redelivered after a restart.
    fn encode(&mut self) -> Vec<u8> {
        match &self.in_flight {
            None => self.record.encode_to_vec(),
            Some(flight) => {
                let pending = std::mem::take(&mut self.record.pending);
                self.record.pending = flight
                    .events
                    .iter()
                    .chain(pending.iter())
                    .cloned()
                    .collect();
                let bytes = self.record.encode_to_vec();
                self.record.pending = pending;
                bytes
            }
        }
    }
}

/// What memory keeps of a finished, saved instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    status: i32,
    created_at: Nanos,
    completed_at: Nanos,
    generation: u64,
    /// Boxed: most instances have no parent, and this is kept for every finished one.
    parent: Option<Box<(String, u64)>>,
}

/// The facts every instance has, live or finished.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary<'a> {
    pub status: i32,
    pub created_at: Nanos,
    pub completed_at: Option<Nanos>,
    /// The run (see `InstanceRecord::generation`).
    pub generation: u64,
    /// The parent's id and run, for a sub-orchestration.
    pub parent: Option<(&'a str, u64)>,
}

impl Summary<'_> {
    pub fn is_terminal(&self) -> bool {
        events::is_terminal(self.status)
    }
}

/// The most idle running instances whose histories memory keeps; the histories of
/// others stay in the store until a work item needs them. An idle instance waits for an
/// activity, a timer, an event or a worker: with many of them (a backlog, or long waits)
/// their histories would otherwise fill memory (embedded_bench, 50,000 orchestrations
/// started faster than a worker ran them: about 20 KB an instance in flight, 390 MB).
/// The ones unloaded first are those idle longest (least recently idle): with fewer idle
/// instances than this, the common case of a next step within milliseconds never reads
/// a history back.
pub const MAX_IDLE_HISTORIES: usize = 2048;

/// Ids in the order they were last touched, oldest first: an id touched again moves to
/// the back. Each touch appends an entry; entries superseded by a later touch are
/// skipped when popped, and dropped all at once when they outnumber the live ones.
#[derive(Default)]
struct IdleQueue {
    order: VecDeque<(String, u64)>,
    /// Each queued id and the number of its latest touch.
    latest: HashMap<String, u64>,
    touches: u64,
}

impl IdleQueue {
    /// `id` became idle now: it goes to the back.
    fn touch(&mut self, id: &str) {
        self.touches += 1;
        self.latest.insert(id.to_owned(), self.touches);
        self.order.push_back((id.to_owned(), self.touches));
        if self.order.len() > 2 * self.latest.len() + 1024 {
            let latest = &self.latest;
            self.order
                .retain(|(id, touch)| latest.get(id).is_some_and(|last| last == touch));
        }
    }

    /// `id` is no longer a candidate (it left memory).
    fn forget(&mut self, id: &str) {
        self.latest.remove(id);
    }

    /// How many ids are queued.
    fn len(&self) -> usize {
        self.latest.len()
    }

    /// The id touched longest ago, taken off the queue.
    fn pop_oldest(&mut self) -> Option<String> {
        while let Some((id, touch)) = self.order.pop_front() {
            if self.latest.get(&id) == Some(&touch) {
                self.latest.remove(&id);
                return Some(id);
            }
        }
        None
    }
}

/// A position in a listing: the sort key of the last item returned.
pub type Cursor<'a> = (Nanos, &'a str);

/// Every instance of one task hub.
pub struct InstanceTable {
    hub: String,
    live: HashMap<String, Instance>,
    finished: HashMap<Arc<str>, Finished>,
    /// Every instance, live or finished, by creation time then id.
    by_created: BTreeSet<(Nanos, Arc<str>)>,
    /// Finished instances by completion time then id (live ones finish in memory only
    /// until their batch is saved: [`InstanceTable::completed_after`] adds those).
    by_completed: BTreeSet<(Nanos, Arc<str>)>,
    /// Sub-orchestrations by parent id (entries may be stale: check the child's link).
    children: HashMap<String, BTreeSet<String>>,
    /// Ids changed since the last commit.
    dirty: HashSet<String>,
    /// Idle instances with a loaded history, least recently idle first (an entry may be
    /// stale: the instance may be in flight or unloaded by now).
    idle: IdleQueue,
    /// The next run generation (see [`InstanceTable::new_generation`]).
    next_generation: u64,
}

impl InstanceTable {
    pub fn new(hub: &str) -> InstanceTable {
        InstanceTable {
            hub: hub.to_owned(),
            live: HashMap::new(),
            finished: HashMap::new(),
            by_created: BTreeSet::new(),
            by_completed: BTreeSet::new(),
            children: HashMap::new(),
            dirty: HashSet::new(),
            idle: IdleQueue::default(),
            next_generation: 1,
        }
    }

    /// A generation for a new run (a created instance or a continue-as-new): unique in
    /// the hub, so a run never shares one with an earlier run of the same id, even one
    /// that was purged. Not stored by itself: at load it resumes after the highest
    /// generation any stored record mentions (see [`InstanceTable::saw_generation`]).
    pub fn new_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }

    /// A stored record (of any kind) mentions `generation`: never hand it out again.
    pub fn saw_generation(&mut self, generation: u64) {
        self.next_generation = self.next_generation.max(generation.saturating_add(1));
    }

    pub fn next_generation(&self) -> u64 {
        self.next_generation
    }

    /// How many instances have each status (an `OrchestrationStatus` value).
    pub fn count_by_status(&self) -> BTreeMap<i32, u64> {
        let mut counts = BTreeMap::new();
        let statuses = self
            .live
            .values()
            .map(Instance::status)
            .chain(self.finished.values().map(|finished| finished.status));
        for status in statuses {
            *counts.entry(status).or_insert(0) += 1;
        }
        counts
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.finished.is_empty()
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.live.contains_key(id) || self.finished.contains_key(id)
    }

    /// A live instance (running, or finished in a batch not saved yet).
    pub fn get(&self, id: &str) -> Option<&Instance> {
        self.live.get(id)
    }

    /// A live instance, marked as changed (saved with this batch).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Instance> {
        let instance = self.live.get_mut(id)?;
        if !self.dirty.contains(id) {
            self.dirty.insert(id.to_owned());
        }
        Some(instance)
    }

    /// A live instance, for changes that leave its saved form as it is: handing out and
    /// taking back a work item (handed-out events are saved as pending anyway), its
    /// links to activities and timers (rebuilt at load).
    pub fn get_mut_unsaved(&mut self, id: &str) -> Option<&mut Instance> {
        self.live.get_mut(id)
    }

    pub fn live_ids(&self) -> Vec<String> {
        self.live.keys().cloned().collect()
    }

    /// What every instance has, live or finished.
    pub fn summary(&self, id: &str) -> Option<Summary<'_>> {
        if let Some(instance) = self.live.get(id) {
            let record = &instance.record;
            return Some(Summary {
                status: record.status,
                created_at: record.created_at,
                completed_at: record.completed_at,
                generation: record.generation,
                parent: record
                    .parent
                    .as_ref()
                    .map(|link| (link.instance_id.as_str(), link.generation)),
            });
        }
        let finished = self.finished.get(id)?;
        Some(Summary {
            status: finished.status,
            created_at: finished.created_at,
            completed_at: Some(finished.completed_at),
            generation: finished.generation,
            parent: finished
                .parent
                .as_deref()
                .map(|(parent, generation)| (parent.as_str(), *generation)),
        })
    }

    pub fn status(&self, id: &str) -> Option<i32> {
        self.summary(id).map(|summary| summary.status)
    }

    /// The record of `id`: from memory, or read from the store for a finished one.
    /// `Ok(None)` if there is no such instance.
    pub fn stored_record<'a>(
        &'a self,
        id: &str,
        store: &Store,
    ) -> Result<Option<std::borrow::Cow<'a, InstanceRecord>>, StoreError> {
        if let Some(instance) = self.live.get(id) {
            return Ok(Some(std::borrow::Cow::Borrowed(&instance.record)));
        }
        if !self.finished.contains_key(id) {
            return Ok(None);
        }
        let Some(bytes) = store.load_record(&self.hub, Kind::Instance, id)? else {
            return Ok(None);
        };
        let record = InstanceRecord::decode(bytes.as_slice())?;
        Ok(Some(std::borrow::Cow::Owned(record)))
    }

    /// The records of `ids` (see [`InstanceTable::stored_record`]), those of finished
    /// instances read from the store together (one round trip on PostgreSQL: a page of a
    /// listing). `None` for an id with no such instance.
    pub fn stored_records<'a>(
        &'a self,
        ids: &[&str],
        store: &Store,
    ) -> Result<Vec<Option<std::borrow::Cow<'a, InstanceRecord>>>, StoreError> {
        let finished: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !self.live.contains_key(*id) && self.finished.contains_key(*id))
            .collect();
        let mut read: HashMap<String, Vec<u8>> = store
            .load_records_by_key(&self.hub, Kind::Instance, &finished)?
            .into_iter()
            .collect();
        ids.iter()
            .map(|id| {
                if let Some(instance) = self.live.get(*id) {
                    return Ok(Some(std::borrow::Cow::Borrowed(&instance.record)));
                }
                match read.remove(*id) {
                    Some(bytes) => Ok(Some(std::borrow::Cow::Owned(InstanceRecord::decode(
                        bytes.as_slice(),
                    )?))),
                    None => Ok(None),
                }
            })
            .collect()
    }

    /// Takes a finished instance back into memory, to change it. `false` if it is not
    /// there (unknown, or its record cannot be read).
    pub fn hydrate(&mut self, id: &str, store: &Store) -> bool {
        if self.live.contains_key(id) {
            return true;
        }
        let Some(finished) = self.finished.get(id) else {
            return false;
        };
        let completed = (finished.completed_at, Arc::<str>::from(id));
        let record = match self.stored_record(id, store) {
            Ok(Some(record)) => record.into_owned(),
            Ok(None) => return false,
            Err(error) => {
                tracing::error!(hub = %self.hub, instance_id = id, %error, "could not read a finished instance");
                return false;
            }
        };
        self.finished.remove(id);
        self.by_completed.remove(&completed);
        self.live.insert(id.to_owned(), Instance::stored(record));
        // Whatever changes it next may append to its history: it must be the stored one.
        self.ensure_history(id, store);
        true
    }

    /// Adds a new instance (the caller has removed any earlier one of that id).
    pub fn insert(&mut self, instance: Instance) {
        let id = instance.record.instance_id.clone();
        self.index(&instance.record);
        self.by_created
            .insert((instance.record.created_at, Arc::from(id.as_str())));
        self.dirty.insert(id.clone());
        self.live.insert(id, instance);
    }

    /// Forgets an instance (purge, replacement). Returns it if it was live; a finished
    /// one has no work item or link to end.
    pub fn remove(&mut self, id: &str) -> Option<Instance> {
        self.idle.forget(id);
        let key = Arc::<str>::from(id);
        let (created_at, parent, live) = if let Some(instance) = self.live.remove(id) {
            let parent = instance
                .record
                .parent
                .as_ref()
                .map(|link| link.instance_id.clone());
            (instance.record.created_at, parent, Some(instance))
        } else if let Some(finished) = self.finished.remove(id) {
            self.by_completed
                .remove(&(finished.completed_at, key.clone()));
            let parent = finished.parent.map(|parent| parent.0);
            (finished.created_at, parent, None)
        } else {
            return None;
        };
        self.by_created.remove(&(created_at, key));
        if let Some(parent) = parent
            && let Some(siblings) = self.children.get_mut(&parent)
        {
            siblings.remove(id);
            if siblings.is_empty() {
                self.children.remove(&parent);
            }
        }
        self.dirty.insert(id.to_owned());
        live
    }

    /// Records that `child`'s parent is `parent` (a rewind re-links a child).
    pub fn link_child(&mut self, parent: &str, child: &str) {
        self.children
            .entry(parent.to_owned())
            .or_default()
            .insert(child.to_owned());
    }

    /// Instances whose parent is the current run of `id` (children of an earlier run
    /// under the same id are not its children).
    pub fn children_of(&self, id: &str) -> Vec<String> {
        let Some(children) = self.children.get(id) else {
            return Vec::new();
        };
        let Some(generation) = self.summary(id).map(|summary| summary.generation) else {
            return Vec::new();
        };
        children
            .iter()
            .filter(|child| {
                self.summary(child)
                    .and_then(|summary| summary.parent)
                    .is_some_and(|link| link == (id, generation))
            })
            .cloned()
            .collect()
    }

    /// Ids in listing order (creation time, then id), from `start`.
    pub fn created_from(&self, start: Bound<Cursor<'_>>) -> impl Iterator<Item = (Nanos, &str)> {
        let start = start.map(|(at, id)| (at, Arc::<str>::from(id)));
        self.by_created
            .range((start, Bound::Unbounded))
            .map(|(at, id)| (*at, &**id))
    }

    /// Finished instances in completion order (time, then id), after `after`: the saved
    /// ones from the index, merged with those that finished in this batch.
    pub fn completed_after(&self, after: Option<Cursor<'_>>) -> Vec<(Nanos, &str)> {
        let start = match after {
            Some((at, id)) => Bound::Excluded((at, Arc::<str>::from(id))),
            None => Bound::Unbounded,
        };
        let mut unsaved: Vec<(Nanos, &str)> = self
            .dirty
            .iter()
            .filter_map(|id| {
                let (key, instance) = self.live.get_key_value(id)?;
                let at = instance
                    .record
                    .completed_at
                    .filter(|_| instance.is_terminal())?;
                let wanted = after
                    .is_none_or(|(after_at, after_id)| (at, key.as_str()) > (after_at, after_id));
                wanted.then_some((at, key.as_str()))
            })
            .collect();
        // Live instances that finished earlier but are still held by a work item.
        unsaved.extend(self.live.iter().filter_map(|(key, instance)| {
            if self.dirty.contains(key) || !instance.is_terminal() {
                return None;
            }
            let at = instance.record.completed_at?;
            after
                .is_none_or(|(after_at, after_id)| (at, key.as_str()) > (after_at, after_id))
                .then_some((at, key.as_str()))
        }));
        let mut merged: Vec<(Nanos, &str)> = self
            .by_completed
            .range((start, Bound::Unbounded))
            .map(|(at, id)| (*at, &**id))
            .collect();
        if !unsaved.is_empty() {
            merged.extend(unsaved);
            merged.sort_unstable();
        }
        merged
    }

    fn index(&mut self, record: &InstanceRecord) {
        if let Some(link) = &record.parent {
            self.link_child(&link.instance_id, &record.instance_id);
        }
    }

    /// The store operations that save this batch's changes.
    pub fn collect_ops(&mut self, ops: &mut Vec<Op>) {
        let hub = &self.hub;
        for id in &self.dirty {
            let Some(instance) = self.live.get_mut(id) else {
                if !self.finished.contains_key(id.as_str()) {
                    ops.push(Op::Delete {
                        hub: hub.clone(),
                        kind: Kind::Instance,
                        key: id.clone(),
                    });
                    ops.push(Op::DeleteHistory {
                        hub: hub.clone(),
                        instance_id: id.clone(),
                    });
                }
                continue;
            };
            ops.push(Op::Put {
                hub: hub.clone(),
                kind: Kind::Instance,
                key: id.clone(),
                value: instance.encode(),
            });
            if let Some(history) = &instance.history {
                let start = if instance.history_replaced {
                    ops.push(Op::DeleteHistory {
                        hub: hub.clone(),
                        instance_id: id.clone(),
                    });
                    0
                } else {
                    instance.persisted_len
                };
                for (seq, event) in history.iter().enumerate().skip(start) {
                    ops.push(Op::AppendHistory {
                        hub: hub.clone(),
                        instance_id: id.clone(),
                        seq: seq as u64,
                        event: event.encode_to_vec(),
                    });
                }
            }
        }
    }

    /// The batch was committed: forget the dirty ids; finished instances that no work
    /// item holds leave memory but for their summary (the store has the rest).
    pub fn mark_flushed(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            let Some(instance) = self.live.get_mut(&id) else {
                continue;
            };
            if let Some(history) = &instance.history {
                instance.persisted_len = history.len();
            }
            instance.history_replaced = false;
            if instance.evictable() {
                self.evict(&id);
            } else if instance.history_unloadable() {
                self.idle.touch(&id);
            }
        }
        self.unload_idle_histories(MAX_IDLE_HISTORIES);
    }

    /// After a load: the histories just read count against [`MAX_IDLE_HISTORIES`] too.
    pub fn bound_loaded_histories(&mut self) {
        for (id, instance) in &self.live {
            if instance.history_unloadable() {
                self.idle.touch(id);
            }
        }
        self.unload_idle_histories(MAX_IDLE_HISTORIES);
    }

    /// Leaves the histories of the instances idle longest to the store until at most
    /// `keep` are queued.
    fn unload_idle_histories(&mut self, keep: usize) {
        while self.idle.len() > keep {
            let Some(id) = self.idle.pop_oldest() else {
                break;
            };
            if self.dirty.contains(&id) {
                continue;
            }
            if let Some(instance) = self.live.get_mut(&id)
                && instance.history_unloadable()
            {
                // `persisted_len` stays: it is the number of events the store has.
                instance.history = None;
            }
        }
    }

    /// Keeps only the summary of a finished, saved instance.
    fn evict(&mut self, id: &str) {
        let Some(instance) = self.live.remove(id) else {
            return;
        };
        self.idle.forget(id);
        let record = instance.record;
        let key = Arc::<str>::from(id);
        let completed_at = record.completed_at.unwrap_or(record.last_updated_at);
        // One allocation of the id, shared by the map and both indexes.
        if self.by_created.remove(&(record.created_at, key.clone())) {
            self.by_created.insert((record.created_at, key.clone()));
        }
        self.by_completed.insert((completed_at, key.clone()));
        self.finished.insert(
            key,
            Finished {
                status: record.status,
                created_at: record.created_at,
                completed_at,
                generation: record.generation,
                parent: record
                    .parent
                    .map(|link| Box::new((link.instance_id, link.generation))),
            },
        );
    }

    /// Takes one stored record back into memory (at start, or after a failed commit):
    /// a finished instance as its summary, a live one with its history left in the
    /// store. Returns the generations it mentions.
    pub fn load(&mut self, record: InstanceRecord) -> [u64; 2] {
        let generations = [
            record.generation,
            record.parent.as_ref().map_or(0, |link| link.generation),
        ];
        let id = record.instance_id.clone();
        self.remove(&id);
        self.dirty.remove(&id);
        self.index(&record);
        self.by_created
            .insert((record.created_at, Arc::from(id.as_str())));
        let instance = Instance::stored(record);
        let finished = instance.evictable();
        self.live.insert(id.clone(), instance);
        if finished {
            self.evict(&id);
        }
        generations
    }

    /// Forgets what memory has of `id` without saving anything (a failed commit: the
    /// store's version is loaded next, if it has one).
    pub fn forget(&mut self, id: &str) -> Option<Instance> {
        let removed = self.remove(id);
        self.dirty.remove(id);
        removed
    }

    /// A failed commit: every changed instance goes back to what the store has (a live
    /// one with its history). Returns the ids reloaded or dropped, with what memory had
    /// of them (their work items and links, which the caller ends).
    pub fn reload_dirty(
        &mut self,
        store: &Store,
    ) -> Result<Vec<(String, Option<Instance>)>, StoreError> {
        let dirty: Vec<String> = self.dirty.iter().cloned().collect();
        let mut reloaded = Vec::with_capacity(dirty.len());
        for id in dirty {
            let before = self.forget(&id);
            if let Some(bytes) = store.load_record(&self.hub, Kind::Instance, &id)? {
                self.load(InstanceRecord::decode(bytes.as_slice())?);
                self.ensure_history(&id, store);
            }
            reloaded.push((id, before));
        }
        self.dirty.clear();
        Ok(reloaded)
    }

    /// Loads the history of a live instance from the store if only the store has it;
    /// whether it is loaded now. A history that cannot be read whole (a store error, an
    /// event that does not decode) is logged and left unloaded: the instance must not be
    /// handed out then, since the events its work item adds would be written over the
    /// stored ones (they are numbered by their place in the history).
    pub fn ensure_history(&mut self, id: &str, store: &Store) -> bool {
        let Some(instance) = self.live.get_mut(id) else {
            return false;
        };
        if instance.history.is_some() {
            return true;
        }
        match read_history(store, &self.hub, id) {
            Ok(history) => {
                instance.persisted_len = history.len();
                instance.history = Some(history);
                true
            }
            Err(error) => {
                tracing::error!(hub = %self.hub, instance_id = id, %error, "cannot read the history of an instance; it is not handed to a worker until it can be read");
                false
            }
        }
    }

    /// The whole history of `id`, from memory or the store; `Ok(None)` if unknown.
    pub fn history(
        &self,
        id: &str,
        store: &Store,
    ) -> Result<Option<Vec<HistoryEvent>>, StoreError> {
        if let Some(history) = self.live.get(id).and_then(|i| i.history.as_ref()) {
            return Ok(Some(history.clone()));
        }
        if !self.contains(id) {
            return Ok(None);
        }
        let encoded = store.load_history(&self.hub, id)?;
        let mut history = Vec::with_capacity(encoded.len());
        for bytes in encoded {
            history.push(HistoryEvent::decode(bytes.as_slice())?);
        }
        Ok(Some(history))
    }

    /// Ids of finished instances matching a purge filter, in id order.
    pub fn finished_matching(
        &self,
        statuses: &[i32],
        from: Option<Nanos>,
        to: Option<Nanos>,
    ) -> Vec<String> {
        let from_bound = match from {
            Some(from) => Bound::Included((from, Arc::<str>::from(""))),
            None => Bound::Unbounded,
        };
        let mut ids: Vec<String> = self
            .by_created
            .range((from_bound, Bound::Unbounded))
            .take_while(|(at, _)| to.is_none_or(|to| *at < to))
            .filter(|(_, id)| {
                self.summary(id).is_some_and(|summary| {
                    summary.is_terminal()
                        && (statuses.is_empty() || statuses.contains(&summary.status))
                })
            })
            .map(|(_, id)| id.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// How many instances memory holds in full, and as summaries.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, usize) {
        (self.live.len(), self.finished.len())
    }
}

/// Reads a whole history from the store.
fn read_history(store: &Store, hub: &str, id: &str) -> Result<Vec<HistoryEvent>, String> {
    let encoded = store
        .load_history(hub, id)
        .map_err(|error| error.to_string())?;
    encoded
        .iter()
        .enumerate()
        .map(|(seq, bytes)| {
            HistoryEvent::decode(bytes.as_slice())
                .map_err(|error| format!("history event {seq} does not decode: {error}"))
        })
        .collect()
}

/// Children by parent, for tests of the index.
#[cfg(test)]
impl InstanceTable {
    fn children(&self) -> &HashMap<String, BTreeSet<String>> {
        &self.children
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::records::ParentLink;

    fn record(id: &str, created_at: Nanos, status: OrchestrationStatus) -> InstanceRecord {
        InstanceRecord {
            instance_id: id.into(),
            name: "o".into(),
            status: status as i32,
            created_at,
            completed_at: events::is_terminal(status as i32).then_some(created_at + 100),
            input: Some("\"a large input\"".into()),
            generation: 1,
            ..Default::default()
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        (dir, store)
    }

    fn save(table: &mut InstanceTable, store: &mut Store) {
        let mut ops = Vec::new();
        table.collect_ops(&mut ops);
        store.apply(&ops).unwrap();
        table.mark_flushed();
    }

    #[test]
    fn finished_instances_leave_memory_once_saved_and_are_read_back_from_the_store() {
        let (_dir, mut store) = store();
        let mut table = InstanceTable::new("h");
        table.insert(Instance::new(record(
            "done",
            1,
            OrchestrationStatus::Completed,
        )));
        table.insert(Instance::new(record(
            "running",
            2,
            OrchestrationStatus::Running,
        )));
        assert_eq!(
            table.counts(),
            (2, 0),
            "nothing leaves memory before it is saved"
        );
        save(&mut table, &mut store);
        assert_eq!(table.counts(), (1, 1));
        assert!(table.get("done").is_none());
        let summary = table.summary("done").unwrap();
        assert_eq!(summary.status, OrchestrationStatus::Completed as i32);
        assert_eq!(summary.completed_at, Some(101));
        let stored = table.stored_record("done", &store).unwrap().unwrap();
        assert_eq!(stored.input.as_deref(), Some("\"a large input\""));
        assert!(table.stored_record("nobody", &store).unwrap().is_none());

        assert!(table.hydrate("done", &store));
        assert_eq!(table.counts(), (2, 0));
        let instance = table.get_mut("done").unwrap();
        instance.record.status = OrchestrationStatus::Running as i32;
        instance.record.completed_at = None;
        save(&mut table, &mut store);
        assert_eq!(table.counts(), (2, 0), "running again: it stays in memory");
        assert!(table.completed_after(None).is_empty());
    }

    #[test]
    fn listings_follow_creation_and_completion_order_from_a_cursor() {
        let (_dir, mut store) = store();
        let mut table = InstanceTable::new("h");
        for (id, at) in [("c", 3), ("a", 1), ("b", 1), ("d", 4)] {
            table.insert(Instance::new(record(
                id,
                at,
                OrchestrationStatus::Completed,
            )));
        }
        table.insert(Instance::new(record("r", 2, OrchestrationStatus::Running)));
        save(&mut table, &mut store);
        let all: Vec<&str> = table
            .created_from(Bound::Unbounded)
            .map(|(_, id)| id)
            .collect();
        assert_eq!(all, ["a", "b", "r", "c", "d"]);
        let rest: Vec<&str> = table
            .created_from(Bound::Excluded((1, "b")))
            .map(|(_, id)| id)
            .collect();
        assert_eq!(rest, ["r", "c", "d"]);
        let from: Vec<&str> = table
            .created_from(Bound::Included((2, "")))
            .map(|(_, id)| id)
            .collect();
        assert_eq!(from, ["r", "c", "d"]);

        // One finishes in a batch not saved yet: listed already, in its place.
        let running = table.get_mut("r").unwrap();
        running.record.status = OrchestrationStatus::Failed as i32;
        running.record.completed_at = Some(102);
        let done: Vec<&str> = table
            .completed_after(None)
            .iter()
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(done, ["a", "b", "r", "c", "d"]);
        let after: Vec<&str> = table
            .completed_after(Some((101, "b")))
            .iter()
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(after, ["r", "c", "d"]);
        assert_eq!(
            table.finished_matching(&[OrchestrationStatus::Completed as i32], Some(1), Some(4)),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn removal_drops_every_index_and_is_saved_as_a_delete() {
        let (_dir, mut store) = store();
        let mut table = InstanceTable::new("h");
        let mut child = record("child", 2, OrchestrationStatus::Completed);
        child.parent = Some(ParentLink {
            instance_id: "parent".into(),
            generation: 1,
            ..Default::default()
        });
        table.insert(Instance::new(record(
            "parent",
            1,
            OrchestrationStatus::Completed,
        )));
        table.insert(Instance::new(child));
        save(&mut table, &mut store);
        assert_eq!(table.children_of("parent"), ["child"]);
        table.remove("child");
        assert!(table.children().is_empty());
        save(&mut table, &mut store);
        assert!(!table.contains("child"));
        assert_eq!(table.created_from(Bound::Unbounded).count(), 1);
        assert_eq!(table.completed_after(None).len(), 1);
        assert!(
            store
                .load_record("h", Kind::Instance, "child")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn idle_histories_past_the_bound_are_left_to_the_store_and_read_back() {
        let (_dir, mut store) = store();
        let mut table = InstanceTable::new("h");
        for i in 0..5 {
            let id = format!("i{i}");
            let mut instance = Instance::new(record(&id, i, OrchestrationStatus::Running));
            instance.history_mut().push(events::orchestrator_started(i));
            instance
                .history_mut()
                .push(events::orchestrator_completed());
            table.insert(instance);
            // One batch each: they became idle in this order.
            save(&mut table, &mut store);
        }
        // The default bound keeps them all; a bound of 2 leaves the oldest three.
        assert!(table.live.values().all(|i| i.history.is_some()));
        table.unload_idle_histories(2);
        let loaded: Vec<bool> = (0..5)
            .map(|i| table.get(&format!("i{i}")).unwrap().history.is_some())
            .collect();
        assert_eq!(loaded, [false, false, false, true, true]);
        let unloaded = table.get("i0").unwrap();
        assert_eq!(unloaded.recorded_and_handed_out_events(), 2);
        assert_eq!(table.history("i0", &store).unwrap().unwrap().len(), 2);
        // Needed again (a work item is handed out): read back whole, and appended to
        // after what the store has.
        table.ensure_history("i0", &store);
        table
            .get_mut("i0")
            .unwrap()
            .history_mut()
            .push(events::orchestrator_started(9));
        save(&mut table, &mut store);
        assert_eq!(table.history("i0", &store).unwrap().unwrap().len(), 3);
        assert_eq!(store.load_history("h", "i0").unwrap().len(), 3);
    }

    #[test]
    fn the_idle_queue_pops_the_least_recently_touched_first() {
        let mut queue = IdleQueue::default();
        for id in ["a", "b", "c"] {
            queue.touch(id);
        }
        queue.touch("a");
        queue.forget("b");
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop_oldest().as_deref(), Some("c"));
        assert_eq!(queue.pop_oldest().as_deref(), Some("a"));
        assert_eq!(queue.pop_oldest(), None);
    }

    #[test]
    fn touching_the_same_ids_again_and_again_keeps_the_queue_small() {
        let mut queue = IdleQueue::default();
        for round in 0..10_000 {
            queue.touch(["x", "y"][round % 2]);
        }
        assert!(
            queue.order.len() <= 2 * 2 + 1024 + 1,
            "{}",
            queue.order.len()
        );
        assert_eq!(queue.pop_oldest().as_deref(), Some("x"));
        assert_eq!(queue.pop_oldest().as_deref(), Some("y"));
    }

    #[test]
    fn a_history_that_does_not_decode_stays_unloaded() {
        let (_dir, mut store) = store();
        let mut table = InstanceTable::new("h");
        table.load(record("broken", 1, OrchestrationStatus::Running));
        store
            .apply(&[Op::AppendHistory {
                hub: "h".into(),
                instance_id: "broken".into(),
                seq: 0,
                event: vec![0xff, 0xff, 0xff],
            }])
            .unwrap();
        assert!(!table.ensure_history("broken", &store));
        assert!(table.get("broken").unwrap().history.is_none());
    }

    #[test]
    fn an_instance_in_flight_keeps_its_history() {
        let (_dir, mut store) = store();
        let mut table = InstanceTable::new("h");
        let mut instance = Instance::new(record("busy", 1, OrchestrationStatus::Running));
        instance.history_mut().push(events::orchestrator_started(1));
        table.insert(instance);
        save(&mut table, &mut store);
        table.get_mut_unsaved("busy").unwrap().in_flight = Some(InFlight {
            token: "t".into(),
            events: Vec::new(),
        });
        table.unload_idle_histories(0);
        assert!(table.get("busy").unwrap().history.is_some());
    }

    #[test]
    fn loading_a_record_keeps_finished_ones_as_summaries_and_notes_generations() {
        let mut table = InstanceTable::new("h");
        let mut done = record("done", 1, OrchestrationStatus::Terminated);
        done.generation = 7;
        done.parent = Some(ParentLink {
            instance_id: "p".into(),
            generation: 9,
            ..Default::default()
        });
        assert_eq!(table.load(done), [7, 9]);
        table.load(record("live", 2, OrchestrationStatus::Running));
        assert_eq!(table.counts(), (1, 1));
        assert!(!table.is_dirty(), "loading changes nothing to save");
        assert!(table.get("live").unwrap().history.is_none());
        // Loading the same id again (a reload) replaces it.
        table.load(record("live", 2, OrchestrationStatus::Completed));
        assert_eq!(table.counts(), (0, 2));
        assert_eq!(table.created_from(Bound::Unbounded).count(), 2);
    }
}
