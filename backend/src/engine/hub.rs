//! One task hub: its state's parts (see [`super::state`]), how they are saved together,
//! loaded together, and brought back to the last saved state after a failed commit.
//!
//! Every piece of state is owned by the engine task, so nothing here locks. Each part
//! tracks its own changes; after each batch [`Hub::collect_ops`] gathers their store
//! operations (one transaction for the whole batch) and [`Hub::mark_flushed`] tells them
//! it was committed.

use std::collections::HashSet;

use durabletask_proto::*;
use prost::Message;
use tonic::Status;

use super::state::activities::ActivityTable;
use super::state::dispatch::{Dispatch, version_of};
use super::state::entities::EntityTable;
use super::state::instances::InstanceTable;
use super::state::timers::{self, TimerTable};
use super::state::waiters::Waiters;
use super::tokens::TokenMint;
use crate::records::*;
use crate::store::{Op, Record, Store, StoreError};

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
    pub limits: HubLimits,
    pub instances: InstanceTable,
    pub activities: ActivityTable,
    pub timers: TimerTable,
    pub entities: EntityTable,
    pub dispatch: Dispatch,
    pub waiters: Waiters,
    /// `DeleteTaskHub` in this batch: the store drops the whole hub before the parts'
    /// changes are written.
    deleted: bool,
}

impl Hub {
    pub fn new(name: &str, mint: TokenMint, token_floor: u64, limits: HubLimits) -> Hub {
        Hub {
            name: name.to_owned(),
            limits,
            instances: InstanceTable::new(name),
            activities: ActivityTable::new(name),
            timers: TimerTable::new(name),
            entities: EntityTable::new(name),
            dispatch: Dispatch::new(name, mint, token_floor),
            waiters: Waiters::default(),
            deleted: false,
        }
    }

    /// An empty hub that replaces this one (`DeleteTaskHub`): its streams stay open
    /// (workers keep their connection to the now empty hub) but their leases went with
    /// the old state; run generations and tokens go on, so nothing is handed out twice.
    pub fn emptied(&mut self) -> Hub {
        let mut fresh = Hub::new(
            &self.name,
            self.dispatch.mint().clone(),
            self.dispatch.token_counter(),
            self.limits,
        );
        fresh.deleted = true;
        fresh
            .instances
            .saw_generation(self.instances.next_generation().saturating_sub(1));
        for (id, mut stream) in self.dispatch.take_streams() {
            stream.leased = [0; 3];
            fresh.dispatch.open_stream(id, stream);
        }
        self.waiters
            .fail_all(&Status::not_found("the task hub was deleted"));
        fresh
    }

    pub fn is_dirty(&self) -> bool {
        self.deleted
            || self.instances.is_dirty()
            || self.activities.is_dirty()
            || self.timers.is_dirty()
            || self.entities.is_dirty()
    }

    /// The store operations that save this batch's changes.
    pub fn collect_ops(&mut self, ops: &mut Vec<Op>) {
        if self.deleted {
            ops.push(Op::DeleteHub {
                hub: self.name.clone(),
            });
        }
        self.instances.collect_ops(ops);
        self.activities.collect_ops(ops);
        self.timers.collect_ops(ops);
        self.entities.collect_ops(ops);
    }

    /// The batch was committed.
    pub fn mark_flushed(&mut self) {
        self.deleted = false;
        self.instances.mark_flushed();
        self.activities.mark_flushed();
        self.timers.mark_flushed();
        self.entities.mark_flushed();
    }

    /// Takes one stored record back into memory (at start).
    pub fn load_record(&mut self, record: Record) {
        let Record {
            kind, key, value, ..
        } = record;
        let decoded = match kind {
            Kind::Instance => InstanceRecord::decode(value.as_slice()).map(|record| {
                for generation in self.instances.load(record) {
                    self.instances.saw_generation(generation);
                }
            }),
            Kind::Activity => ActivityRecord::decode(value.as_slice()).map(|record| {
                let generation = self.activities.load(parse_numeric_key(&key), record);
                self.instances.saw_generation(generation);
            }),
            Kind::Timer => TimerRecord::decode(value.as_slice()).map(|record| {
                let generation = self.timers.load(parse_numeric_key(&key), record);
                self.instances.saw_generation(generation);
            }),
            Kind::Entity => EntityRecord::decode(value.as_slice())
                .map(|record| self.entities.load_entity(&key, record)),
            Kind::LockRequest => LockRequestRecord::decode(value.as_slice())
                .map(|record| self.entities.load_lock_request(record)),
        };
        if let Err(error) = decoded {
            tracing::error!(hub = %self.name, ?kind, key, %error, "skipping a record that does not decode");
        }
    }

    /// After every record is loaded: load the histories of unfinished instances (memory
    /// keeps at most `MAX_IDLE_HISTORIES` of them, the rest stay in the store), link
    /// them with their activities and timers, and queue what is ready.
    pub fn finish_load(&mut self, store: &Store) {
        let live = self.instances.live_ids();
        for id in &live {
            self.instances.ensure_history(id, store);
        }
        self.instances.bound_loaded_histories();
        self.link_work(None);
        for id in self.activities.ids_in_order() {
            self.queue_activity(id);
        }
        for id in &live {
            self.wake(id);
        }
        self.try_grant_locks();
        for id in self.entities.ids() {
            self.wake_entity(&id);
        }
    }

    /// Links activities and timers with the instances they belong to (of those in
    /// `only`, or all): these links are not saved, they are rebuilt from the records.
    fn link_work(&mut self, only: Option<&HashSet<String>>) {
        let wanted = |id: &str| only.is_none_or(|only| only.contains(id));
        let activities: Vec<(u64, String, u64, i32)> = self
            .activities
            .iter()
            .filter(|(_, activity)| wanted(&activity.record.instance_id))
            .map(|(id, activity)| {
                let record = &activity.record;
                (
                    id,
                    record.instance_id.clone(),
                    record.generation,
                    record.task_id,
                )
            })
            .collect();
        for (activity_id, instance_id, generation, task_id) in activities {
            if let Some(instance) = self.instances.get_mut_unsaved(&instance_id)
                && instance.record.generation == generation
            {
                instance.activities.insert(task_id, activity_id);
            }
        }
        let timers: Vec<(u64, String)> = self
            .timers
            .iter()
            .filter_map(|(id, timer)| {
                let instance_id = timers::instance_of(timer)?;
                wanted(instance_id).then(|| (id, instance_id.to_owned()))
            })
            .collect();
        for (timer_id, instance_id) in timers {
            if let Some(instance) = self.instances.get_mut_unsaved(&instance_id) {
                instance.timers.insert(timer_id);
            }
        }
    }

    /// Makes an activity ready for a worker.
    pub(super) fn queue_activity(&mut self, id: u64) {
        if let Some(activity) = self.activities.get(id) {
            self.dispatch.ready.activities.push(
                id,
                &activity.record.name,
                version_of(&activity.record.version),
            );
        }
    }

    /// After a failed commit: brings every part back to the last saved state by reading
    /// back only what the failed batch changed (not the whole hub), as a restart would
    /// find it. Every work-item stream ends (with `UNAVAILABLE`; workers reconnect), so
    /// handed-out work is ready again and tokens handed out before are stale; waiters
    /// stay and are checked against the restored state.
    ///
    /// Returns how many changed records it read back (or found gone).
    pub fn recover(&mut self, store: &Store) -> Result<usize, StoreError> {
        let ended = Status::unavailable(
            "the backend could not save its state and went back to the last saved state; reconnect",
        );
        let streams = self.dispatch.take_streams();
        for token in self.dispatch.lease_tokens() {
            self.release(&token, false);
        }
        for stream in streams.into_values() {
            let _ = stream.sender.send(Err(ended.clone()));
        }
        if self.deleted {
            return self.reload_all(store);
        }
        // Released work items of the lost batch cannot be completed any more.
        self.dispatch.forget_all_released();
        let live = self.instances.live_ids();
        for id in &live {
            if let Some(instance) = self.instances.get_mut_unsaved(id) {
                instance.released = None;
            }
        }
        for id in self.entities.ids() {
            if let Some(entity) = self.entities.get_mut_unsaved(&id) {
                entity.released = None;
            }
        }

        let instances = self.instances.reload_dirty(store)?;
        let activities = self.activities.reload_dirty(store)?;
        let timers = self.timers.reload_dirty(store)?;
        let entities = self.entities.reload_dirty(store)?;
        let read_back = instances.len() + activities.len() + timers.len() + entities.len();

        // Links of the instances read back, and of the activities and timers read back
        // (whose instances may not have changed).
        let mut relink: HashSet<String> = instances.iter().map(|(id, _)| id.clone()).collect();
        for id in activities {
            if let Some(activity) = self.activities.get(id) {
                relink.insert(activity.record.instance_id.clone());
            }
        }
        for id in timers {
            if let Some(instance_id) = self.timers.get(id).and_then(timers::instance_of) {
                relink.insert(instance_id.to_owned());
            }
        }
        for id in &relink {
            if let Some(instance) = self.instances.get_mut_unsaved(id) {
                instance.activities.clear();
                instance.timers.clear();
            }
        }
        self.link_work(Some(&relink));

        self.dispatch.clear_ready();
        for id in self.activities.ids_in_order() {
            self.queue_activity(id);
        }
        for id in self.instances.live_ids() {
            self.wake(&id);
        }
        self.try_grant_locks();
        for id in self.entities.ids() {
            self.wake_entity(&id);
        }
        self.waiters.recheck_all();
        Ok(read_back)
    }

    /// A failed `DeleteTaskHub`: the whole hub is read back from the store.
    fn reload_all(&mut self, store: &Store) -> Result<usize, StoreError> {
        let mut fresh = Hub::new(
            &self.name,
            self.dispatch.mint().clone(),
            self.dispatch.token_counter(),
            self.limits,
        );
        fresh
            .instances
            .saw_generation(self.instances.next_generation().saturating_sub(1));
        let records = store.load_hub_records(&self.name)?;
        let read_back = records.len();
        for record in records {
            fresh.load_record(record);
        }
        fresh.finish_load(store);
        fresh.waiters = std::mem::take(&mut self.waiters);
        fresh.waiters.recheck_all();
        *self = fresh;
        Ok(read_back)
    }

    /// Sends the waiters of changed instances the state they waited for.
    pub fn notify_waiters(&mut self, store: &Store) {
        for (id, waiters) in self.waiters.take_changed() {
            let mut remaining = Vec::new();
            for waiter in waiters {
                if waiter.reply.is_closed() {
                    continue;
                }
                match self.instances.status(&id) {
                    Some(status) if waiter.until.satisfied_by(status) => {
                        let response = self.instance_response(&id, waiter.include_payloads, store);
                        let _ = waiter.reply.send(response);
                    }
                    _ => remaining.push(waiter),
                }
            }
            self.waiters.restore(id, remaining);
        }
    }

    /// Whether the hub holds nothing worth keeping in memory: no instance, activity,
    /// timer, entity or lock request, no worker stream or lease, no waiter, no unsaved
    /// change.
    pub fn is_vacant(&self) -> bool {
        self.instances.is_empty()
            && self.activities.is_empty()
            && self.timers.is_empty()
            && self.entities.is_empty()
            && self.dispatch.is_idle()
            && self.waiters.is_empty()
            && !self.is_dirty()
    }

    /// Instances by status and the ready backlog, for the metrics (the database's size
    /// is the engine's to add).
    pub fn stats(&self) -> crate::metrics::HubStats {
        let mut stats = crate::metrics::HubStats::default();
        for (status, count) in self.instances.count_by_status() {
            let name = OrchestrationStatus::try_from(status).map_or("UNKNOWN", |status| {
                status
                    .as_str_name()
                    .trim_start_matches("ORCHESTRATION_STATUS_")
            });
            *stats.instances.entry(name).or_insert(0) += count;
        }
        let ready = &self.dispatch.ready;
        for (kind, backlog, oldest) in [
            (
                "orchestration",
                ready.orchestrations.backlog(),
                ready.orchestrations.oldest_wait(),
            ),
            (
                "activity",
                ready.activities.backlog(),
                ready.activities.oldest_wait(),
            ),
            (
                "entity",
                ready.entities.backlog(),
                ready.entities.oldest_wait(),
            ),
        ] {
            stats.ready.insert(kind, backlog);
            if let Some(oldest) = oldest {
                stats.oldest_ready.insert(kind, oldest);
            }
        }
        stats
    }

    /// Ends every stream (their leases are released) and answers every waiter.
    pub fn quiesce(&mut self) {
        for id in self.dispatch.stream_ids() {
            self.close_stream(id);
        }
        self.waiters
            .fail_all(&Status::unavailable("the backend is shutting down"));
    }
}

/// Numeric record keys are written by `numeric_key`; one that does not parse (a damaged
/// row) is loaded under id 0, which no live record uses.
fn parse_numeric_key(key: &str) -> u64 {
    key.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::engine::state::instances::Instance;

    fn save(hub: &mut Hub, store: &mut Store) {
        let mut ops = Vec::new();
        hub.collect_ops(&mut ops);
        store.apply(&ops).unwrap();
        hub.mark_flushed();
    }

    fn instance(id: &str, status: OrchestrationStatus) -> Instance {
        Instance::new(InstanceRecord {
            instance_id: id.into(),
            name: "o".into(),
            status: status as i32,
            completed_at: crate::engine::events::is_terminal(status as i32).then_some(2),
            created_at: 1,
            generation: 1,
            ..Default::default()
        })
    }

    #[test]
    fn a_failed_commit_reads_back_only_what_the_batch_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mut hub = Hub::new("h", TokenMint::new([1; 32]), 0, HubLimits::default());
        for i in 0..500 {
            hub.instances.insert(instance(
                &format!("done-{i}"),
                OrchestrationStatus::Completed,
            ));
        }
        hub.instances
            .insert(instance("running", OrchestrationStatus::Running));
        save(&mut hub, &mut store);

        // A batch that starts an instance and raises an event, then is not saved.
        hub.start_instance(CreateInstanceRequest {
            instance_id: "new".into(),
            name: "o".into(),
            ..Default::default()
        })
        .unwrap();
        hub.raise_event(RaiseEventRequest {
            instance_id: "running".into(),
            name: "e".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            hub.recover(&store).unwrap(),
            2,
            "only the two changed records"
        );

        assert!(!hub.instances.contains("new"), "the unsaved start is gone");
        let running = hub.instances.get("running").unwrap();
        assert!(
            running.record.pending.is_empty(),
            "the unsaved event is gone"
        );
        assert_eq!(
            hub.instances.status("done-499"),
            Some(OrchestrationStatus::Completed as i32)
        );
        assert!(!hub.is_dirty());
        // And it goes on: the same start succeeds and is saved.
        hub.start_instance(CreateInstanceRequest {
            instance_id: "new".into(),
            name: "o".into(),
            ..Default::default()
        })
        .unwrap();
        save(&mut hub, &mut store);
        assert!(
            store
                .load_record("h", Kind::Instance, "new")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_failed_delete_of_the_hub_reads_the_hub_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let mut hub = Hub::new("h", TokenMint::new([1; 32]), 0, HubLimits::default());
        hub.instances
            .insert(instance("kept", OrchestrationStatus::Completed));
        save(&mut hub, &mut store);
        let mut emptied = hub.emptied();
        assert!(!emptied.instances.contains("kept"));
        assert_eq!(emptied.recover(&store).unwrap(), 1);
        assert!(emptied.instances.contains("kept"));
    }
}
