//! What dispatch keeps: `GetWorkItems` streams, ready queues, leases and completion
//! tokens. In memory only: a restart (or the end of a stream) makes leased work ready
//! again, and it is redelivered.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use durabletask_proto::*;
use tokio::sync::mpsc::UnboundedSender;
use tonic::Status;

use crate::engine::tokens::{ActivityBinding, TokenMint};

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
    pub fn category(&self) -> Category {
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

    pub fn has_capacity(&self, category: Category) -> bool {
        let index = category as usize;
        self.limits[index] == 0 || self.leased[index] < self.limits[index]
    }

    pub fn filter(&self, category: Category) -> Option<&NameFilter> {
        self.filters
            .as_ref()
            .map(|filters| filters.for_category(category))
    }
}

struct Entry<K> {
    key: K,
    name: String,
    version: String,
    /// When it became ready (the age of the backlog's oldest item).
    since: std::time::Instant,
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
                since: std::time::Instant::now(),
            },
        );
    }

    /// How many items are ready, by name.
    pub fn backlog(&self) -> std::collections::BTreeMap<String, u64> {
        self.by_name
            .iter()
            .map(|(name, seqs)| (name.clone(), seqs.len() as u64))
            .collect()
    }

    /// How long the oldest ready item has waited.
    pub fn oldest_wait(&self) -> Option<std::time::Duration> {
        self.order
            .values()
            .next()
            .map(|entry| entry.since.elapsed())
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

/// The version a filter compares with: absent counts as "".
pub fn version_of(version: &Option<String>) -> &str {
    version.as_deref().unwrap_or("")
}

/// Ready work, one queue per category.
#[derive(Default)]
pub struct ReadyQueues {
    pub orchestrations: ReadyQueue<String>,
    pub activities: ReadyQueue<u64>,
    pub entities: ReadyQueue<String>,
}

impl ReadyQueues {
    pub fn len(&self, category: Category) -> usize {
        match category {
            Category::Orchestration => self.orchestrations.len(),
            Category::Activity => self.activities.len(),
            Category::Entity => self.entities.len(),
        }
    }
}

/// Streams, leases and ready work of one task hub.
pub struct Dispatch {
    hub: String,
    mint: TokenMint,
    next_token: u64,
    streams: BTreeMap<u64, Stream>,
    /// Advances with every pump, so that streams take turns at being first.
    rotation: usize,
    leases: HashMap<String, Lease>,
    /// Tokens of released work items that may still be completed (see
    /// `state::instances::Released`).
    released: HashMap<String, LeaseTarget>,
    pub ready: ReadyQueues,
}

impl Dispatch {
    /// `token_floor`: where the token counter starts (past every counter a dropped hub
    /// of the same name used, so that no token is handed out twice).
    pub fn new(hub: &str, mint: TokenMint, token_floor: u64) -> Dispatch {
        Dispatch {
            hub: hub.to_owned(),
            mint,
            next_token: token_floor,
            streams: BTreeMap::new(),
            rotation: 0,
            leases: HashMap::new(),
            released: HashMap::new(),
            ready: ReadyQueues::default(),
        }
    }

    pub fn mint(&self) -> &TokenMint {
        &self.mint
    }

    /// The token counter (for the floor of a hub made again).
    pub fn token_counter(&self) -> u64 {
        self.next_token
    }

    /// A new token, unique across restarts (the prefix is per engine run).
    pub fn new_token(&mut self) -> String {
        self.next_token += 1;
        self.mint.mint(&self.hub, self.next_token)
    }

    /// A token that also names the activity's execution, so that a result arriving after
    /// its lease is gone can be matched with the right execution.
    pub fn new_activity_token(&mut self, binding: &ActivityBinding<'_>) -> String {
        self.next_token += 1;
        self.mint.mint_activity(&self.hub, self.next_token, binding)
    }

    /// Whether dispatch holds nothing: no stream, lease or released token.
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.leases.is_empty() && self.released.is_empty()
    }

    pub fn open_stream(&mut self, id: u64, stream: Stream) {
        self.streams.insert(id, stream);
    }

    /// Forgets a stream; returns the tokens of what was leased to it (still leased: the
    /// caller releases them), or `None` if there was no such stream.
    pub fn remove_stream(&mut self, id: u64) -> Option<Vec<String>> {
        self.streams.remove(&id)?;
        Some(
            self.leases
                .iter()
                .filter(|(_, lease)| lease.stream == id)
                .map(|(token, _)| token.clone())
                .collect(),
        )
    }

    /// Takes every stream away (a deleted hub hands them to its successor, a reload ends
    /// them).
    pub fn take_streams(&mut self) -> BTreeMap<u64, Stream> {
        std::mem::take(&mut self.streams)
    }

    pub fn stream_ids(&self) -> Vec<u64> {
        self.streams.keys().copied().collect()
    }

    pub fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    /// The stream order for the next pump: rotated by one each time.
    pub fn rotated_stream_ids(&mut self) -> Vec<u64> {
        let mut ids = self.stream_ids();
        if ids.is_empty() {
            return ids;
        }
        self.rotation = self.rotation.wrapping_add(1);
        let shift = self.rotation % ids.len();
        ids.rotate_left(shift);
        ids
    }

    /// The oldest ready item of `category` that stream `stream_id` may take now (it has
    /// room for one, and its filters accept it), taken off its queue.
    pub fn pop_for(&mut self, stream_id: u64, category: Category) -> Option<LeaseTarget> {
        let stream = self.streams.get(&stream_id)?;
        if !stream.has_capacity(category) {
            return None;
        }
        let filter = stream.filter(category);
        match category {
            Category::Orchestration => self
                .ready
                .orchestrations
                .pop(filter)
                .map(LeaseTarget::Orchestration),
            Category::Activity => self.ready.activities.pop(filter).map(LeaseTarget::Activity),
            Category::Entity => self.ready.entities.pop(filter).map(LeaseTarget::Entity),
        }
    }

    /// Sends `item` to stream `stream_id` and records the lease; `false` if the stream
    /// is gone (the lease is recorded anyway, for the caller to release).
    pub fn lease(&mut self, stream_id: u64, target: LeaseTarget, item: WorkItem) -> bool {
        let token = item.completion_token.clone();
        let category = target.category() as usize;
        let sent = match self.streams.get_mut(&stream_id) {
            Some(stream) => {
                stream.leased[category] += 1;
                stream.sender.send(Ok(item)).is_ok()
            }
            None => false,
        };
        self.leases.insert(
            token,
            Lease {
                stream: stream_id,
                target,
            },
        );
        sent
    }

    pub fn lease_target(&self, token: &str) -> Option<&LeaseTarget> {
        self.leases.get(token).map(|lease| &lease.target)
    }

    /// Every token leased now.
    pub fn lease_tokens(&self) -> Vec<String> {
        self.leases.keys().cloned().collect()
    }

    /// Ends a lease (the work item was completed or abandoned); returns its target.
    pub fn end_lease(&mut self, token: &str) -> Option<LeaseTarget> {
        let lease = self.leases.remove(token)?;
        if let Some(stream) = self.streams.get_mut(&lease.stream) {
            let index = lease.target.category() as usize;
            stream.leased[index] = stream.leased[index].saturating_sub(1);
        }
        Some(lease.target)
    }

    /// Remembers the token of a released work item, still accepted for completion.
    pub fn keep_released(&mut self, token: &str, target: LeaseTarget) {
        self.released.insert(token.to_owned(), target);
    }

    pub fn released_target(&self, token: &str) -> Option<&LeaseTarget> {
        self.released.get(token)
    }

    pub fn forget_released(&mut self, token: &str) -> Option<LeaseTarget> {
        self.released.remove(token)
    }

    /// Forgets every released token (a reload: the work items are stale).
    pub fn forget_all_released(&mut self) {
        self.released.clear();
    }

    /// Empties every ready queue (a reload queues what is ready again).
    pub fn clear_ready(&mut self) {
        self.ready = ReadyQueues::default();
    }
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
