//! Handing work to workers: ready queues, `GetWorkItems` streams, filters, leases.
//!
//! Work that can run sits in a [`ReadyQueue`] per category. After every batch the engine
//! calls [`Hub::pump`], which gives ready items to streams round-robin, within each
//! stream's `maxConcurrent*` limits and work-item filters (protocol.md §1.4). A handed
//! out item is *leased* under a fresh completion token; leases live in memory only, so a
//! restart (or the end of the stream) makes the item ready again and it is redelivered.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use durabletask_proto::work_item::Request as WorkRequest;
use durabletask_proto::*;
use tokio::sync::mpsc::UnboundedSender;
use tonic::Status;

use super::events;
use super::hub::{Hub, InFlight, Released};
use crate::store::Store;

/// The three kinds of work, indexing per-stream limits and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Orchestration = 0,
    Activity = 1,
    Entity = 2,
}

/// What a lease is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseTarget {
    Orchestration(String),
    Activity(u64),
    Entity(String),
}

impl LeaseTarget {
    fn category(&self) -> Category {
        match self {
            LeaseTarget::Orchestration(_) => Category::Orchestration,
            LeaseTarget::Activity(_) => Category::Activity,
            LeaseTarget::Entity(_) => Category::Entity,
        }
    }
}

#[derive(Debug)]
pub struct Lease {
    pub stream: u64,
    pub target: LeaseTarget,
}

/// Accepted names, each with its accepted versions (an empty set: any version).
#[derive(Debug, Default, Clone)]
pub struct NameFilter {
    names: HashMap<String, HashSet<String>>,
}

impl NameFilter {
    fn add(&mut self, name: String, versions: &[String]) {
        let accepted = self.names.entry(name).or_default();
        accepted.extend(versions.iter().cloned());
    }
}

/// A stream's filters. When present, every category is filtered, and a category with
/// no entries matches nothing.
#[derive(Debug, Clone)]
pub struct Filters {
    orchestrations: NameFilter,
    activities: NameFilter,
    entities: NameFilter,
}

impl Filters {
    pub fn from_request(filters: &WorkItemFilters) -> Filters {
        let mut result = Filters {
            orchestrations: NameFilter::default(),
            activities: NameFilter::default(),
            entities: NameFilter::default(),
        };
        for filter in &filters.orchestrations {
            result
                .orchestrations
                .add(filter.name.clone(), &filter.versions);
        }
        for filter in &filters.activities {
            result.activities.add(filter.name.clone(), &filter.versions);
        }
        for filter in &filters.entities {
            // Entity names are case-insensitive (stored lowercase).
            result.entities.add(filter.name.to_lowercase(), &[]);
        }
        result
    }

    fn for_category(&self, category: Category) -> &NameFilter {
        match category {
            Category::Orchestration => &self.orchestrations,
            Category::Activity => &self.activities,
            Category::Entity => &self.entities,
        }
    }
}

/// One `GetWorkItems` stream.
pub struct Stream {
    pub sender: UnboundedSender<Result<WorkItem, Status>>,
    pub filters: Option<Filters>,
    /// Per category; 0 means unlimited.
    pub limits: [usize; 3],
    pub leased: [usize; 3],
}

impl Stream {
    pub fn new(
        request: &GetWorkItemsRequest,
        sender: UnboundedSender<Result<WorkItem, Status>>,
    ) -> Stream {
        let limit = |value: i32| usize::try_from(value).unwrap_or(0);
        Stream {
            sender,
            filters: request
                .work_item_filters
                .as_ref()
                .map(Filters::from_request),
            limits: [
                limit(request.max_concurrent_orchestration_work_items),
                limit(request.max_concurrent_activity_work_items),
                limit(request.max_concurrent_entity_work_items),
            ],
            leased: [0; 3],
        }
    }

    fn has_capacity(&self, category: Category) -> bool {
        let index = category as usize;
        self.limits[index] == 0 || self.leased[index] < self.limits[index]
    }

    fn filter(&self, category: Category) -> Option<&NameFilter> {
        self.filters
            .as_ref()
            .map(|filters| filters.for_category(category))
    }
}

struct Entry<K> {
    key: K,
    name: String,
    version: String,
}

/// Ready work of one category, in FIFO order, indexed by name so that a filtered stream
/// finds its items without scanning the others.
pub struct ReadyQueue<K> {
    next: u64,
    order: BTreeMap<u64, Entry<K>>,
    by_name: HashMap<String, BTreeSet<u64>>,
    queued: HashMap<K, u64>,
}

impl<K: Clone + Eq + Hash> Default for ReadyQueue<K> {
    fn default() -> Self {
        ReadyQueue {
            next: 0,
            order: BTreeMap::new(),
            by_name: HashMap::new(),
            queued: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> ReadyQueue<K> {
    /// Queues `key` (no-op if already queued).
    pub fn push(&mut self, key: K, name: &str, version: &str) {
        if self.queued.contains_key(&key) {
            return;
        }
        let seq = self.next;
        self.next += 1;
        self.queued.insert(key.clone(), seq);
        self.by_name.entry(name.to_owned()).or_default().insert(seq);
        self.order.insert(
            seq,
            Entry {
                key,
                name: name.to_owned(),
                version: version.to_owned(),
            },
        );
    }

    pub fn remove(&mut self, key: &K) {
        if let Some(seq) = self.queued.remove(key) {
            self.take(seq);
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    fn take(&mut self, seq: u64) -> Option<K> {
        let entry = self.order.remove(&seq)?;
        if let Some(seqs) = self.by_name.get_mut(&entry.name) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.by_name.remove(&entry.name);
            }
        }
        self.queued.remove(&entry.key);
        Some(entry.key)
    }

    /// The oldest item that `filter` accepts (any item without a filter).
    pub fn pop(&mut self, filter: Option<&NameFilter>) -> Option<K> {
        let seq = match filter {
            None => *self.order.keys().next()?,
            Some(filter) => {
                let mut best: Option<u64> = None;
                for (name, versions) in &filter.names {
                    let Some(seqs) = self.by_name.get(name) else {
                        continue;
                    };
                    let found = seqs.iter().copied().find(|seq| {
                        versions.is_empty()
                            || self
                                .order
                                .get(seq)
                                .is_some_and(|entry| versions.contains(&entry.version))
                    });
                    if let Some(seq) = found {
                        best = Some(best.map_or(seq, |current| current.min(seq)));
                    }
                }
                best?
            }
        };
        self.take(seq)
    }
}

impl Hub {
    /// A new token, unique across restarts (the prefix is per engine run).
    pub(super) fn new_token(&mut self) -> String {
        self.next_token += 1;
        self.mint.mint(&self.name, self.next_token)
    }

    /// A token for handing out activity `id`: a new token that also names the execution
    /// the activity belongs to, so that a result arriving after its lease is gone (the
    /// stream closed, the backend restarted) can be matched with the right execution
    /// (see [`Hub::complete_activity`]).
    fn new_activity_token(&mut self, id: u64) -> String {
        let Some(activity) = self.activities.get(&id) else {
            return self.new_token();
        };
        self.next_token += 1;
        let binding = super::tokens::ActivityBinding {
            instance_id: &activity.record.instance_id,
            task_id: activity.record.task_id,
            execution_id: &activity.record.execution_id,
        };
        self.mint
            .mint_activity(&self.name, self.next_token, &binding)
    }

    pub fn open_stream(&mut self, id: u64, stream: Stream) {
        self.streams.insert(id, stream);
    }

    /// A stream ended: everything leased to it is ready again, at once.
    pub fn close_stream(&mut self, id: u64) {
        if self.streams.remove(&id).is_none() {
            return;
        }
        let tokens: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, lease)| lease.stream == id)
            .map(|(token, _)| token.clone())
            .collect();
        if !tokens.is_empty() {
            tracing::debug!(
                hub = %self.name,
                stream = id,
                leases = tokens.len(),
                "work-item stream ended; releasing its leases"
            );
        }
        for token in tokens {
            self.release(&token, true);
        }
    }

    /// Ends a lease (the work item was completed or abandoned); returns its target.
    pub(super) fn end_lease(&mut self, token: &str) -> Option<LeaseTarget> {
        let lease = self.leases.remove(token)?;
        if let Some(stream) = self.streams.get_mut(&lease.stream) {
            let index = lease.target.category() as usize;
            stream.leased[index] = stream.leased[index].saturating_sub(1);
        }
        Some(lease.target)
    }

    /// Puts a leased item back: it becomes ready and is redelivered. With `keep_token`
    /// (the stream ended, the worker may still deliver), a completion with the token is
    /// accepted until the item is handed out again.
    pub(super) fn release(&mut self, token: &str, keep_token: bool) -> bool {
        let Some(target) = self.end_lease(token) else {
            return false;
        };
        match target {
            LeaseTarget::Orchestration(instance_id) => {
                if let Some(instance) = self.instances.get_mut(&instance_id)
                    && instance
                        .in_flight
                        .as_ref()
                        .is_some_and(|flight| flight.token == token)
                    && let Some(flight) = instance.in_flight.take()
                {
                    let count = flight.events.len();
                    let mut events = flight.events;
                    events.append(&mut instance.record.pending);
                    instance.record.pending = events;
                    if keep_token {
                        instance.released = Some(Released {
                            token: token.to_owned(),
                            count,
                        });
                        self.released.insert(
                            token.to_owned(),
                            LeaseTarget::Orchestration(instance_id.clone()),
                        );
                    }
                }
                self.wake(&instance_id);
            }
            LeaseTarget::Activity(id) => {
                if let Some(activity) = self.activities.get_mut(&id) {
                    activity.lease = None;
                    self.ready_activities.push(
                        id,
                        &activity.record.name,
                        version_of(&activity.record.version),
                    );
                }
            }
            LeaseTarget::Entity(entity_id) => {
                if let Some(entity) = self.entities.get_mut(&entity_id)
                    && entity
                        .in_flight
                        .as_ref()
                        .is_some_and(|flight| flight.token == token)
                    && let Some(flight) = entity.in_flight.take()
                {
                    let seqs = flight.operations.iter().map(|o| o.seq).collect();
                    entity.record.operations.extend(flight.operations);
                    entity
                        .record
                        .operations
                        .sort_by_key(|operation| operation.seq);
                    if keep_token {
                        entity.released = Some((token.to_owned(), seqs));
                        self.released
                            .insert(token.to_owned(), LeaseTarget::Entity(entity_id.clone()));
                    }
                }
                self.try_grant_locks();
                self.wake_entity(&entity_id);
            }
        }
        true
    }

    /// Hands ready work to streams with room for it, round-robin.
    ///
    /// Terminates: every round either takes an item off a ready queue for good (leased to
    /// a live stream, or dropped as no longer runnable) or removes a dead stream, and a
    /// round that does neither ends the loop.
    pub fn pump(&mut self, store: &Store) {
        if self.streams.is_empty() {
            return;
        }
        let mut ids: Vec<u64> = self.streams.keys().copied().collect();
        self.rotation = self.rotation.wrapping_add(1);
        let shift = self.rotation % ids.len();
        ids.rotate_left(shift);
        for category in [
            Category::Orchestration,
            Category::Activity,
            Category::Entity,
        ] {
            loop {
                if self.ready_len(category) == 0 {
                    break;
                }
                let mut progressed = false;
                for &id in &ids {
                    let Some(stream) = self.streams.get(&id) else {
                        continue;
                    };
                    if !stream.has_capacity(category) {
                        continue;
                    }
                    let filter = stream.filter(category);
                    let popped = match category {
                        Category::Orchestration => self
                            .ready_orchestrations
                            .pop(filter)
                            .map(LeaseTarget::Orchestration),
                        Category::Activity => {
                            self.ready_activities.pop(filter).map(LeaseTarget::Activity)
                        }
                        Category::Entity => {
                            self.ready_entities.pop(filter).map(LeaseTarget::Entity)
                        }
                    };
                    let Some(target) = popped else {
                        continue;
                    };
                    progressed = true;
                    self.lease_to(id, target, store);
                }
                if !progressed {
                    break;
                }
            }
        }
    }

    fn ready_len(&self, category: Category) -> usize {
        match category {
            Category::Orchestration => self.ready_orchestrations.len(),
            Category::Activity => self.ready_activities.len(),
            Category::Entity => self.ready_entities.len(),
        }
    }

    /// Leases `target` to stream `stream_id` and sends it; a target that is no longer
    /// runnable (it changed since it was queued) is dropped.
    fn lease_to(&mut self, stream_id: u64, target: LeaseTarget, store: &Store) {
        let token = match &target {
            LeaseTarget::Activity(id) => self.new_activity_token(*id),
            _ => self.new_token(),
        };
        let request = match &target {
            LeaseTarget::Orchestration(id) => self.take_orchestration(id, &token, store),
            LeaseTarget::Activity(id) => self.take_activity(*id, &token),
            LeaseTarget::Entity(id) => self.take_entity(id, &token),
        };
        let Some(request) = request else {
            return;
        };
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        stream.leased[target.category() as usize] += 1;
        let item = WorkItem {
            request: Some(request),
            completion_token: token.clone(),
        };
        let sent = stream.sender.send(Ok(item)).is_ok();
        self.leases.insert(
            token.clone(),
            Lease {
                stream: stream_id,
                target,
            },
        );
        if !sent {
            // The worker is gone (its receiver was dropped before our `CloseStream`
            // arrived). Treat the stream as closed now: put this item back and release
            // everything else it holds, so that `pump` does not hand the same item to the
            // same dead stream again and again. The later `CloseStream` is a no-op.
            self.release(&token, false);
            tracing::debug!(
                hub = %self.name,
                stream = stream_id,
                "work-item stream is gone; closing it"
            );
            self.close_stream(stream_id);
        }
    }

    fn take_orchestration(&mut self, id: &str, token: &str, store: &Store) -> Option<WorkRequest> {
        if !self
            .instances
            .get(id)
            .is_some_and(|i| i.dispatchable(events::now()))
        {
            return None;
        }
        self.ensure_history(id, store);
        let instance = self.instances.get_mut(id)?;
        // Handed out anew: a completion for the released item is now stale.
        if let Some(released) = instance.released.take() {
            self.released.remove(&released.token);
        }
        let pending = &mut instance.record.pending;
        // A rewind must reach the worker as exactly [orchestratorStarted, executionRewound]
        // (protocol.md §4.14): later events wait for the next work item.
        let cut = pending
            .iter()
            .position(events::is_rewound)
            .map_or(pending.len(), |position| position + 1);
        let rest = pending.split_off(cut);
        let mut new_events = std::mem::replace(pending, rest);
        if !new_events
            .first()
            .is_some_and(events::is_orchestrator_started)
        {
            new_events.insert(0, events::orchestrator_started(events::now()));
        }
        let history = instance.history.as_deref().unwrap_or_default();
        let history_bytes: usize = history.iter().map(prost::Message::encoded_len).sum();
        // Too large for one message (or for the configured bound): the worker streams it.
        let streamed = history_bytes > self.limits.history_streaming_bytes;
        let request = OrchestratorRequest {
            instance_id: id.to_owned(),
            execution_id: Some(instance.record.execution_id.clone()),
            past_events: if streamed {
                Vec::new()
            } else {
                history.to_vec()
            },
            new_events: new_events.clone(),
            requires_history_streaming: streamed,
            ..Default::default()
        };
        instance.in_flight = Some(InFlight {
            token: token.to_owned(),
            events: new_events,
        });
        Some(WorkRequest::OrchestratorRequest(request))
    }

    fn take_activity(&mut self, id: u64, token: &str) -> Option<WorkRequest> {
        let activity = self.activities.get_mut(&id)?;
        if activity.lease.is_some() {
            return None;
        }
        activity.lease = Some(token.to_owned());
        let record = &activity.record;
        Some(WorkRequest::ActivityRequest(ActivityRequest {
            name: record.name.clone(),
            version: record.version.clone(),
            input: record.input.clone(),
            orchestration_instance: Some(OrchestrationInstance {
                instance_id: record.instance_id.clone(),
                execution_id: Some(record.execution_id.clone()),
            }),
            task_id: record.task_id,
            parent_trace_context: record.trace_context.clone(),
            tags: record.tags.clone(),
        }))
    }

    /// Orchestrations become ready when they have new events to process and may run.
    pub(super) fn wake(&mut self, id: &str) {
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        if instance.dispatchable(events::now()) {
            self.ready_orchestrations.push(
                id.to_owned(),
                &instance.record.name,
                version_of(&instance.record.version),
            );
        }
    }
}

/// The version a filter compares with: absent counts as "".
pub fn version_of(version: &Option<String>) -> &str {
    version.as_deref().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(entries: &[(&str, &[&str])]) -> NameFilter {
        let mut filter = NameFilter::default();
        for (name, versions) in entries {
            let versions: Vec<String> = versions.iter().map(|v| (*v).to_owned()).collect();
            filter.add((*name).to_owned(), &versions);
        }
        filter
    }

    #[test]
    fn unfiltered_pops_in_fifo_order() {
        let mut queue = ReadyQueue::default();
        queue.push("a", "x", "");
        queue.push("b", "y", "");
        queue.push("a", "x", "");
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.pop(None), Some("a"));
        assert_eq!(queue.pop(None), Some("b"));
        assert_eq!(queue.pop(None), None);
    }

    #[test]
    fn filtered_pops_honour_names_and_versions() {
        let mut queue = ReadyQueue::default();
        queue.push(1, "orch", "1.0");
        queue.push(2, "other", "");
        queue.push(3, "orch", "2.0");
        queue.push(4, "orch", "");
        let v2 = filter(&[("orch", &["2.0"])]);
        assert_eq!(queue.pop(Some(&v2)), Some(3));
        assert_eq!(queue.pop(Some(&v2)), None);
        let any = filter(&[("orch", &[]), ("other", &[])]);
        assert_eq!(queue.pop(Some(&any)), Some(1));
        assert_eq!(queue.pop(Some(&any)), Some(2));
        let nothing = NameFilter::default();
        assert_eq!(queue.pop(Some(&nothing)), None);
        let unversioned = filter(&[("orch", &[""])]);
        assert_eq!(queue.pop(Some(&unversioned)), Some(4));
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn removed_items_are_not_popped() {
        let mut queue = ReadyQueue::default();
        queue.push("a", "x", "");
        queue.push("b", "x", "");
        queue.remove(&"a");
        assert_eq!(queue.pop(Some(&filter(&[("x", &[])]))), Some("b"));
        assert_eq!(queue.len(), 0);
    }
}
