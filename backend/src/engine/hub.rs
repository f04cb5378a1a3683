//! One task hub's state, in memory, and how it is saved and loaded.
//!
//! Every piece of state is owned by the engine task, so nothing here locks. Changes are
//! tracked as dirty keys; after each batch [`Hub::collect_ops`] turns them into store
//! operations (one transaction for the whole batch) and [`Hub::mark_flushed`] forgets
//! them once committed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};

use durabletask_proto::history_event::EventType;
use durabletask_proto::*;
use prost::Message;
use tokio::sync::oneshot;
use tonic::Status;

use super::dispatch::{Lease, ReadyQueue, Stream};
use super::events::{self, Nanos};
use super::tokens::TokenMint;
use crate::records::*;
use crate::store::{Op, Record, Store};

/// An orchestration instance in memory.
pub struct Instance {
    /// Metadata and pending events (the events not handed out).
    pub record: InstanceRecord,
    /// The work item handed out, if any: at most one per instance.
    pub in_flight: Option<InFlight>,
    pub released: Option<Released>,
    /// The history, or `None` when only the store has it (finished instances are
    /// evicted from memory once saved; they are loaded again when needed).
    pub history: Option<Vec<HistoryEvent>>,
    /// How many history events the store has (valid while `history` is loaded).
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
}

pub struct Activity {
    pub record: ActivityRecord,
    /// The completion token while a worker has it.
    pub lease: Option<String>,
}

pub struct Entity {
    pub record: EntityRecord,
    pub in_flight: Option<EntityFlight>,
    /// A batch whose stream ended, by token and operation numbers (see [`Released`]).
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
}

/// What a waiter waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitUntil {
    /// Any status but PENDING.
    Started,
    /// A terminal status.
    Completed,
}

impl WaitUntil {
    pub fn satisfied_by(self, status: i32) -> bool {
        match self {
            WaitUntil::Started => status != OrchestrationStatus::Pending as i32,
            WaitUntil::Completed => events::is_terminal(status),
        }
    }
}

pub struct Waiter {
    pub until: WaitUntil,
    pub include_payloads: bool,
    pub reply: oneshot::Sender<Result<GetInstanceResponse, Status>>,
}

/// Keys changed since the last commit.
#[derive(Default)]
pub struct Dirty {
    pub instances: HashSet<String>,
    pub activities: HashSet<u64>,
    pub timers: HashSet<u64>,
    pub entities: HashSet<String>,
    pub locks: HashSet<u64>,
    pub deleted: bool,
}

/// Bounds on one instance's history.
#[derive(Clone, Copy, Debug)]
pub struct HubLimits {
    /// Past events larger than this (encoded bytes) are not sent in a work item: the
    /// worker streams them (`requiresHistoryStreaming`).
    pub history_streaming_bytes: usize,
    /// The most events a history may grow to: a step or an event that would take it
    /// past this is refused with `RESOURCE_EXHAUSTED` (as the reference backend does).
    pub max_history_events: usize,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            history_streaming_bytes: usize::MAX,
            max_history_events: usize::MAX,
        }
    }
}

/// One task hub.
pub struct Hub {
    pub name: String,
    pub instances: HashMap<String, Instance>,
    pub activities: HashMap<u64, Activity>,
    pub timers: HashMap<u64, TimerRecord>,
    pub timer_heap: BinaryHeap<Reverse<(Nanos, u64)>>,
    pub entities: HashMap<String, Entity>,
    /// Lock requests waiting for their entities, by arrival order.
    pub lock_requests: BTreeMap<u64, LockRequestRecord>,
    pub next_activity_id: u64,
    pub next_timer_id: u64,
    /// Arrival order of entity operations and lock requests.
    pub next_seq: u64,
    /// The next run generation (see [`Hub::new_generation`]).
    pub next_generation: u64,
    pub next_token: u64,
    pub mint: TokenMint,
    pub limits: HubLimits,

    pub streams: BTreeMap<u64, Stream>,
    pub rotation: usize,
    pub leases: HashMap<String, Lease>,
    /// Tokens of released work items that may still be completed (see [`Released`]).
    pub released: HashMap<String, super::dispatch::LeaseTarget>,
    pub ready_orchestrations: ReadyQueue<String>,
    pub ready_activities: ReadyQueue<u64>,
    pub ready_entities: ReadyQueue<String>,

    /// Sub-orchestrations by parent id (entries may be stale: check the child's link).
    pub children: HashMap<String, BTreeSet<String>>,
    /// Entities currently locked (few at any time), so finishing orchestrations need not
    /// scan every entity for locks to free.
    pub locked: HashSet<String>,

    pub waiters: HashMap<String, Vec<Waiter>>,
    /// Instances whose status may have changed in this batch (for the waiters).
    pub changed: HashSet<String>,
    pub dirty: Dirty,
}

impl Hub {
    pub fn new(name: String, mint: TokenMint) -> Hub {
        Hub {
            name,
            instances: HashMap::new(),
            activities: HashMap::new(),
            timers: HashMap::new(),
            timer_heap: BinaryHeap::new(),
            entities: HashMap::new(),
            lock_requests: BTreeMap::new(),
            next_activity_id: 1,
            next_timer_id: 1,
            next_seq: 1,
            next_generation: 1,
            next_token: 0,
            mint,
            limits: HubLimits::default(),
            streams: BTreeMap::new(),
            rotation: 0,
            leases: HashMap::new(),
            released: HashMap::new(),
            ready_orchestrations: ReadyQueue::default(),
            ready_activities: ReadyQueue::default(),
            ready_entities: ReadyQueue::default(),
            children: HashMap::new(),
            locked: HashSet::new(),
            waiters: HashMap::new(),
            changed: HashSet::new(),
            dirty: Dirty::default(),
        }
    }

    /// A generation for a new run (a created instance or a continue-as-new): unique in
    /// the hub, so a run never shares one with an earlier run of the same id, even one
    /// that was purged. Not stored by itself: at load it resumes after the highest
    /// generation any stored record mentions (instances, parent links, activities,
    /// timers), which covers every generation something could still be compared with.
    pub fn new_generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }

    fn saw_generation(&mut self, generation: u64) {
        self.next_generation = self.next_generation.max(generation.saturating_add(1));
    }

    /// The instance, marked as changed (to be saved with this batch).
    pub fn instance_mut(&mut self, id: &str) -> Option<&mut Instance> {
        let instance = self.instances.get_mut(id)?;
        if !self.dirty.instances.contains(id) {
            self.dirty.instances.insert(id.to_owned());
        }
        Some(instance)
    }

    pub fn entity_mut(&mut self, id: &str) -> Option<&mut Entity> {
        let entity = self.entities.get_mut(id)?;
        if !self.dirty.entities.contains(id) {
            self.dirty.entities.insert(id.to_owned());
        }
        Some(entity)
    }

    /// The entity, created (empty) if it does not exist yet.
    pub fn entity_or_create(&mut self, id: &str) -> &mut Entity {
        if !self.dirty.entities.contains(id) {
            self.dirty.entities.insert(id.to_owned());
        }
        self.entities
            .entry(id.to_owned())
            .or_insert_with(|| Entity::new(id.to_owned()))
    }

    /// Loads the history of `id` from the store if it was evicted.
    pub fn ensure_history(&mut self, id: &str, store: &Store) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if instance.history.is_some() {
            return;
        }
        let history = load_history(store, &self.name, id);
        instance.persisted_len = history.len();
        instance.history = Some(history);
    }

    /// The store operations that save this batch's changes.
    pub fn collect_ops(&mut self, ops: &mut Vec<Op>) {
        let hub = &self.name;
        if self.dirty.deleted {
            ops.push(Op::DeleteHub { hub: hub.clone() });
        }
        for id in &self.dirty.instances {
            let Some(instance) = self.instances.get_mut(id) else {
                ops.push(Op::Delete {
                    hub: hub.clone(),
                    kind: Kind::Instance,
                    key: id.clone(),
                });
                ops.push(Op::DeleteHistory {
                    hub: hub.clone(),
                    instance_id: id.clone(),
                });
                continue;
            };
            ops.push(Op::Put {
                hub: hub.clone(),
                kind: Kind::Instance,
                key: id.clone(),
                value: encode_instance(instance),
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
        for &id in &self.dirty.activities {
            let key = numeric_key(id);
            match self.activities.get(&id) {
                Some(activity) => ops.push(Op::Put {
                    hub: hub.clone(),
                    kind: Kind::Activity,
                    key,
                    value: activity.record.encode_to_vec(),
                }),
                None => ops.push(Op::Delete {
                    hub: hub.clone(),
                    kind: Kind::Activity,
                    key,
                }),
            }
        }
        for &id in &self.dirty.timers {
            let key = numeric_key(id);
            match self.timers.get(&id) {
                Some(timer) => ops.push(Op::Put {
                    hub: hub.clone(),
                    kind: Kind::Timer,
                    key,
                    value: timer.encode_to_vec(),
                }),
                None => ops.push(Op::Delete {
                    hub: hub.clone(),
                    kind: Kind::Timer,
                    key,
                }),
            }
        }
        for id in &self.dirty.entities {
            match self.entities.get(id) {
                Some(entity) => ops.push(Op::Put {
                    hub: hub.clone(),
                    kind: Kind::Entity,
                    key: id.clone(),
                    value: encode_entity(entity),
                }),
                None => ops.push(Op::Delete {
                    hub: hub.clone(),
                    kind: Kind::Entity,
                    key: id.clone(),
                }),
            }
        }
        for &seq in &self.dirty.locks {
            let key = numeric_key(seq);
            match self.lock_requests.get(&seq) {
                Some(request) => ops.push(Op::Put {
                    hub: hub.clone(),
                    kind: Kind::LockRequest,
                    key,
                    value: request.encode_to_vec(),
                }),
                None => ops.push(Op::Delete {
                    hub: hub.clone(),
                    kind: Kind::LockRequest,
                    key,
                }),
            }
        }
    }

    /// The batch was committed: forget the dirty keys; finished instances' histories
    /// leave memory (the store has them).
    pub fn mark_flushed(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for id in dirty.instances {
            if let Some(instance) = self.instances.get_mut(&id) {
                if let Some(history) = &instance.history {
                    instance.persisted_len = history.len();
                }
                instance.history_replaced = false;
                if instance.is_terminal() && instance.in_flight.is_none() {
                    instance.history = None;
                }
            }
        }
    }

    pub fn is_dirty(&self) -> bool {
        let dirty = &self.dirty;
        dirty.deleted
            || !dirty.instances.is_empty()
            || !dirty.activities.is_empty()
            || !dirty.timers.is_empty()
            || !dirty.entities.is_empty()
            || !dirty.locks.is_empty()
    }

    /// Takes one stored record back into memory (at start).
    pub fn load_record(&mut self, record: Record) {
        let Record {
            kind, key, value, ..
        } = record;
        let decoded = match kind {
            Kind::Instance => InstanceRecord::decode(value.as_slice()).map(|record| {
                self.saw_generation(record.generation);
                if let Some(link) = &record.parent {
                    self.saw_generation(link.generation);
                }
                let mut instance = Instance::new(record);
                instance.history = None;
                instance.history_replaced = false;
                self.instances.insert(key.clone(), instance);
            }),
            Kind::Activity => ActivityRecord::decode(value.as_slice()).map(|record| {
                let id = key.parse().unwrap_or(0);
                self.next_activity_id = self.next_activity_id.max(id + 1);
                self.saw_generation(record.generation);
                self.activities.insert(
                    id,
                    Activity {
                        record,
                        lease: None,
                    },
                );
            }),
            Kind::Timer => TimerRecord::decode(value.as_slice()).map(|record| {
                let id = key.parse().unwrap_or(0);
                self.next_timer_id = self.next_timer_id.max(id + 1);
                match &record.target {
                    Some(TimerTarget::Orchestration(target)) => {
                        self.saw_generation(target.generation);
                    }
                    Some(TimerTarget::ScheduledStart(target)) => {
                        self.saw_generation(target.generation);
                    }
                    _ => {}
                }
                self.timer_heap.push(Reverse((record.due, id)));
                self.timers.insert(id, record);
            }),
            Kind::Entity => EntityRecord::decode(value.as_slice()).map(|record| {
                for operation in &record.operations {
                    self.next_seq = self.next_seq.max(operation.seq + 1);
                }
                self.entities.insert(
                    key.clone(),
                    Entity {
                        record,
                        in_flight: None,
                        released: None,
                    },
                );
            }),
            Kind::LockRequest => LockRequestRecord::decode(value.as_slice()).map(|record| {
                self.next_seq = self.next_seq.max(record.seq + 1);
                self.lock_requests.insert(record.seq, record);
            }),
        };
        if let Err(error) = decoded {
            tracing::error!(hub = %self.name, ?kind, key, %error, "skipping a record that does not decode");
        }
    }

    /// After every record is loaded: rebuild the indexes and the ready queues, and load
    /// the histories of unfinished instances.
    pub fn finish_load(&mut self, store: &Store) {
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        for id in &ids {
            let terminal = self.instances.get(id).is_some_and(Instance::is_terminal);
            if !terminal {
                self.ensure_history(id, store);
            }
        }
        for (id, instance) in &self.instances {
            if let Some(link) = &instance.record.parent {
                self.children
                    .entry(link.instance_id.clone())
                    .or_default()
                    .insert(id.clone());
            }
        }
        for (id, entity) in &self.entities {
            if entity.record.locked_by.is_some() {
                self.locked.insert(id.clone());
            }
        }
        for (&activity_id, activity) in &self.activities {
            if let Some(instance) = self.instances.get_mut(&activity.record.instance_id)
                && instance.record.generation == activity.record.generation
            {
                instance
                    .activities
                    .insert(activity.record.task_id, activity_id);
            }
        }
        let mut ready_activities: Vec<u64> = self.activities.keys().copied().collect();
        ready_activities.sort_unstable();
        for id in ready_activities {
            if let Some(activity) = self.activities.get(&id) {
                self.ready_activities.push(
                    id,
                    &activity.record.name,
                    super::dispatch::version_of(&activity.record.version),
                );
            }
        }
        for (&timer_id, timer) in &self.timers {
            let instance_id = match &timer.target {
                Some(TimerTarget::Orchestration(target)) => &target.instance_id,
                Some(TimerTarget::ScheduledStart(target)) => &target.instance_id,
                _ => continue,
            };
            if let Some(instance) = self.instances.get_mut(instance_id) {
                instance.timers.insert(timer_id);
            }
        }
        for id in &ids {
            self.wake(id);
        }
        let entity_ids: Vec<String> = self.entities.keys().cloned().collect();
        self.try_grant_locks();
        for id in &entity_ids {
            self.wake_entity(id);
        }
    }

    /// Sends the waiters of changed instances the state they waited for.
    pub fn notify_waiters(&mut self) {
        let changed = std::mem::take(&mut self.changed);
        for id in changed {
            let Some(waiters) = self.waiters.remove(&id) else {
                continue;
            };
            let mut remaining = Vec::new();
            for waiter in waiters {
                if waiter.reply.is_closed() {
                    continue;
                }
                let status = self.instances.get(&id).map(Instance::status);
                match status {
                    Some(status) if waiter.until.satisfied_by(status) => {
                        let response = self.instance_response(&id, waiter.include_payloads);
                        let _ = waiter.reply.send(Ok(response));
                    }
                    _ => remaining.push(waiter),
                }
            }
            if !remaining.is_empty() {
                self.waiters.insert(id, remaining);
            }
        }
    }

    /// Drops waiters whose callers have gone (deadline passed, client disconnected).
    pub fn sweep_waiters(&mut self) {
        self.waiters.retain(|_, waiters| {
            waiters.retain(|waiter| !waiter.reply.is_closed());
            !waiters.is_empty()
        });
    }
}

fn load_history(store: &Store, hub: &str, id: &str) -> Vec<HistoryEvent> {
    let encoded = match store.load_history(hub, id) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::error!(hub, instance_id = id, %error, "could not load a history");
            return Vec::new();
        }
    };
    let mut history = Vec::with_capacity(encoded.len());
    for bytes in encoded {
        match HistoryEvent::decode(bytes.as_slice()) {
            Ok(event) => history.push(event),
            Err(error) => {
                tracing::error!(hub, instance_id = id, %error, "skipping a history event that does not decode");
            }
        }
    }
    history
}

/// Encodes an instance; events handed out are stored as pending, first, so that they are
/// redelivered after a restart.
fn encode_instance(instance: &mut Instance) -> Vec<u8> {
    match &instance.in_flight {
        None => instance.record.encode_to_vec(),
        Some(flight) => {
            let pending = std::mem::take(&mut instance.record.pending);
            instance.record.pending = flight
                .events
                .iter()
                .chain(pending.iter())
                .cloned()
                .collect();
            let bytes = instance.record.encode_to_vec();
            instance.record.pending = pending;
            bytes
        }
    }
}

fn encode_entity(entity: &Entity) -> Vec<u8> {
    match &entity.in_flight {
        None => entity.record.encode_to_vec(),
        Some(flight) => {
            let mut record = entity.record.clone();
            record.operations.extend(flight.operations.iter().cloned());
            record.operations.sort_by_key(|operation| operation.seq);
            record.encode_to_vec()
        }
    }
}
