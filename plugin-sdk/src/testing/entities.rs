//! Entities: their states and queued operations, batches run through
//! [`Registry::run_entity_batch`](crate::Registry::run_entity_batch), results routed back
//! to calling orchestrations, and the lock manager for critical sections, by the embedded
//! backend's rules (backend/src/engine/entities.rs):
//!
//! Operations and lock requests share one arrival counter. A lock is granted once every
//! entity of its set is unlocked and has no operation that arrived before the request,
//! and no earlier waiting request shares an entity (first come, first served). While
//! locked, an entity runs only the operations of the orchestration holding the lock;
//! everyone else's (signals from the test included) wait for the unlock.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use durabletask_proto as proto;
use proto::history_event::EventType;
use proto::operation_action::OperationActionType;
use proto::operation_result::ResultType;
use proto::send_entity_message_action::EntityMessageType;

use super::clock::{self, TimerTarget};
use super::instances::NewInstance;
use super::runtime::TestRuntime;
use crate::entity::EntityWorkItem;

/// An operation waiting for its entity, with its arrival number.
#[derive(Debug)]
struct Queued {
    seq: u64,
    event: proto::HistoryEvent,
}

/// One entity.
#[derive(Debug, Default)]
struct Entity {
    state: Option<String>,
    operations: Vec<Queued>,
    /// The critical section holding the entity, and the orchestration it belongs to.
    locked_by: Option<(String, String)>,
}

/// A critical section's request to lock a set of entities.
#[derive(Debug)]
struct LockRequest {
    critical_section_id: String,
    parent_instance_id: String,
    lock_set: Vec<String>,
}

/// Every entity, and the lock requests waiting, by arrival number.
#[derive(Debug, Default)]
pub(super) struct EntityStore {
    entities: BTreeMap<String, Entity>,
    lock_requests: BTreeMap<u64, LockRequest>,
    next_seq: u64,
}

/// The orchestration that sent an operation, if it is a call.
fn caller(event: &proto::HistoryEvent) -> Option<&str> {
    match &event.event_type {
        Some(EventType::EntityOperationCalled(called)) => called.parent_instance_id.as_deref(),
        _ => None,
    }
}

impl EntityStore {
    pub(super) fn state(&self, entity_id: &str) -> Option<&str> {
        self.entities
            .get(entity_id)
            .and_then(|entity| entity.state.as_deref())
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The arrival number of the oldest waiting lock request on `entity_id`.
    fn first_waiting_lock(&self, entity_id: &str) -> Option<u64> {
        self.lock_requests
            .iter()
            .find(|(_, request)| request.lock_set.iter().any(|id| id == entity_id))
            .map(|(seq, _)| *seq)
    }

    /// Indices (in its queue) of the operations the entity may run now.
    fn runnable(&self, entity_id: &str) -> Vec<usize> {
        let Some(entity) = self.entities.get(entity_id) else {
            return Vec::new();
        };
        match &entity.locked_by {
            Some((_, owner)) => entity
                .operations
                .iter()
                .enumerate()
                .filter(|(_, queued)| caller(&queued.event) == Some(owner.as_str()))
                .map(|(index, _)| index)
                .collect(),
            None => {
                let limit = self.first_waiting_lock(entity_id).unwrap_or(u64::MAX);
                entity
                    .operations
                    .iter()
                    .enumerate()
                    .take_while(|(_, queued)| queued.seq < limit)
                    .map(|(index, _)| index)
                    .collect()
            }
        }
    }

    pub(super) fn has_runnable(&self, entity_id: &str) -> bool {
        !self.runnable(entity_id).is_empty()
    }

    /// Whether `entity_id` can be locked by a request that arrived as `seq`.
    fn lockable(&self, entity_id: &str, seq: u64) -> bool {
        self.entities.get(entity_id).is_none_or(|entity| {
            entity.locked_by.is_none()
                && entity
                    .operations
                    .first()
                    .is_none_or(|queued| queued.seq > seq)
        })
    }
}

impl TestRuntime {
    /// Queues an operation (`entityOperationSignaled` / `entityOperationCalled`) on an
    /// entity, creating the entity if needed.
    pub(super) fn queue_operation(&mut self, entity_id: &str, event: proto::HistoryEvent) {
        let seq = self.entities.next_seq();
        self.entities
            .entities
            .entry(entity_id.to_owned())
            .or_default()
            .operations
            .push(Queued { seq, event });
        self.wake_entity(entity_id);
    }

    /// Queues a signal now, or holds it on the clock until `due` if that is later.
    fn signal_at(&mut self, entity_id: &str, event: proto::HistoryEvent, due: Option<SystemTime>) {
        match due {
            Some(due) if due > self.clock.now() => {
                let target = TimerTarget::EntitySignal {
                    entity_id: entity_id.to_owned(),
                    event: Box::new(event),
                };
                self.clock.add(due, target);
            }
            _ => self.queue_operation(entity_id, event),
        }
    }

    /// An orchestration's `sendEntityMessage` action: confirmed in its history, then
    /// queued (operations) or handed to the lock manager (lock requests, unlocks).
    pub(super) fn entity_message(
        &mut self,
        instance_id: &str,
        action_id: i32,
        message: proto::SendEntityMessageAction,
    ) {
        let Some(message) = message.entity_message_type else {
            return;
        };
        let confirmation = match &message {
            EntityMessageType::EntityOperationSignaled(signal) => {
                EventType::EntityOperationSignaled(signal.clone())
            }
            EntityMessageType::EntityOperationCalled(call) => {
                EventType::EntityOperationCalled(call.clone())
            }
            EntityMessageType::EntityLockRequested(lock) => {
                EventType::EntityLockRequested(lock.clone())
            }
            EntityMessageType::EntityUnlockSent(unlock) => {
                EventType::EntityUnlockSent(unlock.clone())
            }
        };
        let confirmation = self.event(action_id, confirmation);
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance.history.push(confirmation);
        }
        match message {
            EntityMessageType::EntityOperationSignaled(signal) => {
                if let Some(target) = signal.target_instance_id.clone() {
                    let due = signal.scheduled_time.as_ref().map(clock::from_timestamp);
                    let event = self.event(-1, EventType::EntityOperationSignaled(signal));
                    self.signal_at(&target, event, due);
                }
            }
            EntityMessageType::EntityOperationCalled(call) => {
                if let Some(target) = call.target_instance_id.clone() {
                    let event = self.event(-1, EventType::EntityOperationCalled(call));
                    self.queue_operation(&target, event);
                }
            }
            EntityMessageType::EntityLockRequested(lock) => {
                let seq = self.entities.next_seq();
                let request = LockRequest {
                    critical_section_id: lock.critical_section_id,
                    parent_instance_id: lock
                        .parent_instance_id
                        .unwrap_or_else(|| instance_id.to_owned()),
                    lock_set: lock.lock_set,
                };
                self.entities.lock_requests.insert(seq, request);
            }
            EntityMessageType::EntityUnlockSent(unlock) => {
                if let Some(target) = unlock.target_instance_id {
                    self.unlock(&target, &unlock.critical_section_id);
                }
            }
        }
        self.try_grant_locks();
    }

    fn unlock(&mut self, entity_id: &str, critical_section_id: &str) {
        let Some(entity) = self.entities.entities.get_mut(entity_id) else {
            return;
        };
        if entity
            .locked_by
            .as_ref()
            .is_some_and(|(section, _)| section == critical_section_id)
        {
            entity.locked_by = None;
            self.try_grant_locks();
            self.wake_entity(entity_id);
        }
    }

    /// Frees every lock a finished orchestration holds and drops its waiting requests (a
    /// worker normally unlocks first; this covers the rest).
    pub(super) fn release_locks_of(&mut self, instance_id: &str) {
        let mut freed = Vec::new();
        for (id, entity) in &mut self.entities.entities {
            if entity
                .locked_by
                .as_ref()
                .is_some_and(|(_, owner)| owner == instance_id)
            {
                entity.locked_by = None;
                freed.push(id.clone());
            }
        }
        self.entities
            .lock_requests
            .retain(|_, request| request.parent_instance_id != instance_id);
        self.try_grant_locks();
        for id in freed {
            self.wake_entity(&id);
        }
    }

    /// Grants every waiting lock request that can be granted, in arrival order.
    fn try_grant_locks(&mut self) {
        let mut blocked: HashSet<String> = HashSet::new();
        let mut grant = Vec::new();
        let mut dropped = Vec::new();
        for (&seq, request) in &self.entities.lock_requests {
            let parent_alive = self
                .instances
                .get(&request.parent_instance_id)
                .is_some_and(|parent| !parent.is_terminal());
            if !parent_alive {
                dropped.push(seq);
                continue;
            }
            let free = request
                .lock_set
                .iter()
                .all(|id| !blocked.contains(id) && self.entities.lockable(id, seq));
            if free {
                grant.push(seq);
            }
            blocked.extend(request.lock_set.iter().cloned());
        }
        for seq in dropped {
            self.entities.lock_requests.remove(&seq);
        }
        for seq in grant {
            let Some(request) = self.entities.lock_requests.remove(&seq) else {
                continue;
            };
            for id in &request.lock_set {
                self.entities
                    .entities
                    .entry(id.clone())
                    .or_default()
                    .locked_by = Some((
                    request.critical_section_id.clone(),
                    request.parent_instance_id.clone(),
                ));
            }
            let granted = self.event(
                -1,
                EventType::EntityLockGranted(proto::EntityLockGrantedEvent {
                    critical_section_id: request.critical_section_id,
                }),
            );
            self.push_event(&request.parent_instance_id, granted);
        }
    }

    /// Runs the entity's runnable operations as one batch, then applies the result: the
    /// new state, the callers' results, the batch's signals and orchestration starts.
    pub(super) fn run_entity_batch(&mut self, entity_id: &str) {
        let runnable = self.entities.runnable(entity_id);
        let Some(entity) = self.entities.entities.get_mut(entity_id) else {
            return;
        };
        if runnable.is_empty() {
            return;
        }
        let mut batch = Vec::with_capacity(runnable.len());
        let mut runnable = runnable.into_iter().peekable();
        for (index, queued) in std::mem::take(&mut entity.operations)
            .into_iter()
            .enumerate()
        {
            if runnable.peek() == Some(&index) {
                runnable.next();
                batch.push(queued.event);
            } else {
                entity.operations.push(queued);
            }
        }
        let request = proto::EntityRequest {
            instance_id: entity_id.to_owned(),
            execution_id: String::new(),
            entity_state: entity.state.clone(),
            operation_requests: batch,
        };
        let result = self.registry.run_entity_batch(EntityWorkItem::V2(request));
        self.complete_entity_batch(entity_id, result);
    }

    fn complete_entity_batch(&mut self, entity_id: &str, result: proto::EntityBatchResult) {
        // A batch that failed as a whole changes nothing; its operations fail.
        let failed_as_a_whole = result.failure_details.is_some();
        if !failed_as_a_whole && let Some(entity) = self.entities.entities.get_mut(entity_id) {
            entity.state = result.entity_state.filter(|state| !state.is_empty());
        }
        for (index, info) in result.operation_infos.iter().enumerate() {
            let Some(parent) = info
                .response_destination
                .as_ref()
                .map(|destination| destination.instance_id.clone())
                .filter(|id| !id.is_empty())
            else {
                continue;
            };
            let request_id = info.request_id.clone();
            let kind = match result
                .results
                .get(index)
                .and_then(|r| r.result_type.as_ref())
            {
                Some(ResultType::Success(success)) => {
                    EventType::EntityOperationCompleted(proto::EntityOperationCompletedEvent {
                        request_id,
                        output: success.result.clone(),
                    })
                }
                Some(ResultType::Failure(failure)) => {
                    EventType::EntityOperationFailed(proto::EntityOperationFailedEvent {
                        request_id,
                        failure_details: failure.failure_details.clone(),
                    })
                }
                None => EventType::EntityOperationFailed(proto::EntityOperationFailedEvent {
                    request_id,
                    failure_details: Some(result.failure_details.clone().unwrap_or_else(|| {
                        proto::TaskFailureDetails {
                            error_type: "EntityBatchFailed".to_owned(),
                            error_message: format!(
                                "entity '{entity_id}' returned no result for the operation"
                            ),
                            ..Default::default()
                        }
                    })),
                }),
            };
            let event = self.event(-1, kind);
            self.push_event_if_running(&parent, event);
        }

        let actions = if failed_as_a_whole {
            Vec::new()
        } else {
            result.actions
        };
        for action in actions {
            match action.operation_action_type {
                Some(OperationActionType::SendSignal(signal)) => {
                    let due = signal.scheduled_time.as_ref().map(clock::from_timestamp);
                    let request_id = self.new_request_id();
                    let event = self.event(
                        -1,
                        EventType::EntityOperationSignaled(proto::EntityOperationSignaledEvent {
                            request_id,
                            operation: signal.name,
                            scheduled_time: signal.scheduled_time,
                            input: signal.input,
                            target_instance_id: Some(signal.instance_id.clone()),
                        }),
                    );
                    self.signal_at(&signal.instance_id, event, due);
                }
                Some(OperationActionType::StartNewOrchestration(start)) => {
                    let id = if start.instance_id.is_empty() {
                        self.new_request_id()
                    } else {
                        start.instance_id
                    };
                    // As the backend: an instance still running is left alone.
                    if self.instances.get(&id).is_some_and(|i| !i.is_terminal()) {
                        continue;
                    }
                    self.create_instance(NewInstance {
                        id,
                        name: start.name,
                        version: start.version,
                        input: start.input,
                        tags: Default::default(),
                        scheduled_start: start.scheduled_time.as_ref().map(clock::from_timestamp),
                        parent: None,
                    });
                }
                None => {}
            }
        }
        self.try_grant_locks();
        self.wake_entity(entity_id);
    }
}
