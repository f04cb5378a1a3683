//! Entities: queued operations, batches handed to workers, results routed back to
//! calling orchestrations, and the lock manager for critical sections.
//!
//! Ordering: operations and lock requests share one arrival counter (`seq`). A lock is
//! granted once every entity of its set is idle, unlocked and has no operation that
//! arrived before the request; no earlier waiting request may share an entity (FIFO).
//! While locked, an entity takes operations only from the orchestration holding the lock;
//! everyone else's wait for the unlock (stricter than the reference backend).

use std::collections::HashSet;

use durabletask_proto::history_event::EventType;
use durabletask_proto::operation_action::OperationActionType;
use durabletask_proto::operation_result::ResultType;
use durabletask_proto::send_entity_message_action::EntityMessageType;
use durabletask_proto::work_item::Request as WorkRequest;
use durabletask_proto::*;
use tonic::Status;

use super::events::{self, now, to_timestamp};
use super::hub::Hub;
use super::instances::{NewInstance, new_instance_id};
use super::state::dispatch::LeaseTarget;
use super::state::entities::{Entity, EntityFlight};
use crate::records::{DelayedSignal, LockRequestRecord, QueuedOperation, TimerTarget};

/// The lowercase entity name of `@name@key`, or `None` if `id` is not of that form.
pub fn entity_name(id: &str) -> Option<String> {
    let rest = id.strip_prefix('@')?;
    let (name, key) = rest.split_once('@')?;
    if name.is_empty() || key.is_empty() {
        return None;
    }
    Some(name.to_lowercase())
}

/// The orchestration that sent an operation, if it is a call.
fn caller(event: &HistoryEvent) -> Option<&str> {
    match &event.event_type {
        Some(EventType::EntityOperationCalled(called)) => called.parent_instance_id.as_deref(),
        _ => None,
    }
}

impl Hub {
    /// Queues an operation (`entityOperationSignaled` / `entityOperationCalled`) on an
    /// entity, creating the entity if needed.
    pub(super) fn queue_operation(&mut self, entity_id: &str, event: HistoryEvent) {
        let seq = self.entities.next_seq();
        let entity = self.entities.get_or_create(entity_id);
        entity.record.operations.push(QueuedOperation {
            seq,
            event: Some(event),
        });
        self.wake_entity(entity_id);
    }

    /// The arrival number of the oldest waiting lock request on `entity_id`.
    fn first_waiting_lock(&self, entity_id: &str) -> Option<u64> {
        self.entities
            .lock_requests()
            .map(|(_, request)| request)
            .find(|request| request.lock_set.iter().any(|id| id == entity_id))
            .map(|request| request.seq)
    }

    /// Indices (in `operations`) of the operations the entity may run now.
    fn runnable_operations(&self, entity: &Entity) -> Vec<usize> {
        let record = &entity.record;
        match (&record.locked_by, &record.lock_owner) {
            (Some(_), owner) => record
                .operations
                .iter()
                .enumerate()
                .filter(|(_, operation)| {
                    operation
                        .event
                        .as_ref()
                        .and_then(caller)
                        .is_some_and(|caller| Some(caller) == owner.as_deref())
                })
                .map(|(index, _)| index)
                .collect(),
            (None, _) => {
                let limit = self
                    .first_waiting_lock(&record.instance_id)
                    .unwrap_or(u64::MAX);
                record
                    .operations
                    .iter()
                    .enumerate()
                    .take_while(|(_, operation)| operation.seq < limit)
                    .map(|(index, _)| index)
                    .collect()
            }
        }
    }

    /// Queues the entity for a worker if it has operations it may run now.
    pub(super) fn wake_entity(&mut self, id: &str) {
        let Some(entity) = self.entities.get(id) else {
            return;
        };
        if entity.in_flight.is_some() || entity.record.operations.is_empty() {
            return;
        }
        if self.runnable_operations(entity).is_empty() {
            return;
        }
        let name = entity_name(id).unwrap_or_default();
        self.dispatch.ready.entities.push(id.to_owned(), &name, "");
    }

    /// Hands the entity's runnable operations out as one batch.
    pub(super) fn take_entity(&mut self, id: &str, token: &str) -> Option<WorkRequest> {
        let entity = self.entities.get(id)?;
        if entity.in_flight.is_some() {
            return None;
        }
        let runnable = self.runnable_operations(entity);
        if runnable.is_empty() {
            return None;
        }
        let entity = self.entities.get_mut_unsaved(id)?;
        if let Some((token, _)) = entity.released.take() {
            self.dispatch.forget_released(&token);
        }
        let all = std::mem::take(&mut entity.record.operations);
        let mut batch = Vec::with_capacity(runnable.len());
        let mut runnable = runnable.into_iter().peekable();
        for (index, operation) in all.into_iter().enumerate() {
            if runnable.peek() == Some(&index) {
                runnable.next();
                batch.push(operation);
            } else {
                entity.record.operations.push(operation);
            }
        }
        let request = EntityRequest {
            instance_id: id.to_owned(),
            execution_id: String::new(),
            entity_state: entity.record.state.clone(),
            operation_requests: batch
                .iter()
                .filter_map(|operation| operation.event.clone())
                .collect(),
        };
        entity.in_flight = Some(EntityFlight {
            token: token.to_owned(),
            operations: batch,
        });
        Some(WorkRequest::EntityRequestV2(request))
    }

    /// An orchestration's `sendEntityMessage` action.
    pub(super) fn entity_message(
        &mut self,
        instance_id: &str,
        action_id: i32,
        message: SendEntityMessageAction,
    ) {
        let Some(message) = message.entity_message_type else {
            return;
        };
        let (confirmation, work) = match message {
            EntityMessageType::EntityOperationSignaled(signal) => (
                EventType::EntityOperationSignaled(signal.clone()),
                Some(EventType::EntityOperationSignaled(signal)),
            ),
            EntityMessageType::EntityOperationCalled(call) => (
                EventType::EntityOperationCalled(call.clone()),
                Some(EventType::EntityOperationCalled(call)),
            ),
            EntityMessageType::EntityLockRequested(lock) => {
                let parent = lock
                    .parent_instance_id
                    .clone()
                    .unwrap_or_else(|| instance_id.to_owned());
                let seq = self.entities.next_seq();
                self.entities.add_lock_request(LockRequestRecord {
                    seq,
                    critical_section_id: lock.critical_section_id.clone(),
                    parent_instance_id: parent,
                    lock_set: lock.lock_set.clone(),
                });
                (EventType::EntityLockRequested(lock), None)
            }
            EntityMessageType::EntityUnlockSent(unlock) => {
                if let Some(target) = unlock.target_instance_id.clone() {
                    self.unlock(&target, &unlock.critical_section_id);
                }
                (EventType::EntityUnlockSent(unlock), None)
            }
        };
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance
                .history_mut()
                .push(events::event(action_id, confirmation));
        }
        match work {
            Some(EventType::EntityOperationSignaled(signal)) => {
                let Some(target) = signal.target_instance_id.clone() else {
                    return;
                };
                let due = signal.scheduled_time.as_ref().map(events::from_timestamp);
                let event = events::event(-1, EventType::EntityOperationSignaled(signal));
                self.signal_at(&target, event, due);
            }
            Some(EventType::EntityOperationCalled(call)) => {
                let Some(target) = call.target_instance_id.clone() else {
                    return;
                };
                self.queue_operation(
                    &target,
                    events::event(-1, EventType::EntityOperationCalled(call)),
                );
            }
            _ => {}
        }
        self.try_grant_locks();
    }

    /// Queues a signal now, or at `due` if that is in the future.
    fn signal_at(&mut self, entity_id: &str, event: HistoryEvent, due: Option<i64>) {
        match due {
            Some(due) if due > now() => {
                self.timers.add(
                    due,
                    TimerTarget::EntitySignal(DelayedSignal {
                        entity_id: entity_id.to_owned(),
                        event: Some(event),
                    }),
                );
            }
            _ => self.queue_operation(entity_id, event),
        }
    }

    fn unlock(&mut self, entity_id: &str, critical_section_id: &str) {
        let holds = self
            .entities
            .get(entity_id)
            .is_some_and(|entity| entity.record.locked_by.as_deref() == Some(critical_section_id));
        if holds {
            self.entities.set_lock(entity_id, None);
            self.try_grant_locks();
            self.wake_entity(entity_id);
        }
    }

    /// Frees every lock an orchestration holds and drops its waiting requests (it
    /// finished; a worker normally unlocks first, this covers the rest).
    pub(super) fn release_locks_of(&mut self, instance_id: &str) {
        let held: Vec<String> = self
            .entities
            .locked()
            .filter(|id| {
                self.entities
                    .get(id)
                    .is_some_and(|entity| entity.record.lock_owner.as_deref() == Some(instance_id))
            })
            .cloned()
            .collect();
        let waiting: Vec<u64> = self
            .entities
            .lock_requests()
            .map(|(_, request)| request)
            .filter(|request| request.parent_instance_id == instance_id)
            .map(|request| request.seq)
            .collect();
        if held.is_empty() && waiting.is_empty() {
            return;
        }
        for id in &held {
            self.entities.set_lock(id, None);
        }
        for seq in waiting {
            self.entities.remove_lock_request(seq);
        }
        self.try_grant_locks();
        for id in held {
            self.wake_entity(&id);
        }
    }

    /// Whether `entity_id` can be locked by a request that arrived as `seq`.
    fn lockable(&self, entity_id: &str, seq: u64) -> bool {
        match self.entities.get(entity_id) {
            None => true,
            Some(entity) => {
                entity.record.locked_by.is_none()
                    && entity.in_flight.is_none()
                    && entity
                        .record
                        .operations
                        .first()
                        .is_none_or(|operation| operation.seq > seq)
            }
        }
    }

    /// Grants every waiting lock request that can be granted, in arrival order.
    pub(super) fn try_grant_locks(&mut self) {
        if !self.entities.has_lock_requests() {
            return;
        }
        let mut blocked: HashSet<&str> = HashSet::new();
        let mut grant = Vec::new();
        let mut drop = Vec::new();
        for (&seq, request) in self.entities.lock_requests() {
            let parent_alive = self
                .instances
                .get(&request.parent_instance_id)
                .is_some_and(|parent| !parent.is_terminal());
            if !parent_alive {
                drop.push(seq);
                continue;
            }
            let free = request
                .lock_set
                .iter()
                .all(|id| !blocked.contains(id.as_str()) && self.lockable(id, seq));
            if free {
                grant.push(seq);
            }
            blocked.extend(request.lock_set.iter().map(String::as_str));
        }
        for seq in drop {
            self.entities.remove_lock_request(seq);
        }
        for seq in grant {
            let Some(request) = self.entities.remove_lock_request(seq) else {
                continue;
            };
            for id in &request.lock_set {
                let lock = (
                    request.critical_section_id.clone(),
                    request.parent_instance_id.clone(),
                );
                self.entities.set_lock(id, Some(lock));
            }
            let granted = events::event(
                -1,
                EventType::EntityLockGranted(EntityLockGrantedEvent {
                    critical_section_id: request.critical_section_id,
                }),
            );
            self.push_event(&request.parent_instance_id, granted);
        }
    }

    /// `CompleteEntityTask`: the new state, the callers' results, the batch's signals
    /// and orchestration starts.
    pub fn complete_entity(&mut self, result: EntityBatchResult) {
        let token = result.completion_token.as_str();
        let Some((entity_id, operations)) = self.take_completed_batch(token) else {
            tracing::debug!(hub = %self.name, token, "ignoring a stale entity completion");
            return;
        };
        let Some(entity) = self.entities.get_mut(&entity_id) else {
            return;
        };
        let flight = EntityFlight {
            token: token.to_owned(),
            operations,
        };
        // `failureDetails` means the batch failed as a whole (the worker could not run
        // it, or its result was refused): nothing of it is applied, the state stays as
        // it was, and each operation without a result fails with those details.
        let failed_as_a_whole = result.failure_details.is_some();
        if !failed_as_a_whole {
            entity.record.state = result.entity_state.filter(|state| !state.is_empty());
            entity.record.last_modified_at = now();
        }

        // Where each result goes: `operationInfos` (v2 workers), else the callers
        // recorded in the operations themselves.
        let destinations: Vec<Option<String>> = if result.operation_infos.is_empty() {
            flight
                .operations
                .iter()
                .map(|operation| operation.event.as_ref().and_then(caller).map(str::to_owned))
                .collect()
        } else {
            result
                .operation_infos
                .iter()
                .map(|info| {
                    info.response_destination
                        .as_ref()
                        .map(|destination| destination.instance_id.clone())
                        .filter(|id| !id.is_empty())
                })
                .collect()
        };
        let request_ids: Vec<String> = if result.operation_infos.is_empty() {
            flight
                .operations
                .iter()
                .map(|operation| {
                    match operation.event.as_ref().and_then(|e| e.event_type.as_ref()) {
                        Some(EventType::EntityOperationCalled(called)) => called.request_id.clone(),
                        Some(EventType::EntityOperationSignaled(signal)) => {
                            signal.request_id.clone()
                        }
                        _ => String::new(),
                    }
                })
                .collect()
        } else {
            result
                .operation_infos
                .iter()
                .map(|info| info.request_id.clone())
                .collect()
        };
        for (index, destination) in destinations.into_iter().enumerate() {
            let Some(parent) = destination else {
                continue;
            };
            let request_id = request_ids.get(index).cloned().unwrap_or_default();
            let event_type = match result
                .results
                .get(index)
                .and_then(|r| r.result_type.as_ref())
            {
                Some(ResultType::Success(success)) => {
                    EventType::EntityOperationCompleted(EntityOperationCompletedEvent {
                        request_id,
                        output: success.result.clone(),
                    })
                }
                Some(ResultType::Failure(failure)) => {
                    EventType::EntityOperationFailed(EntityOperationFailedEvent {
                        request_id,
                        failure_details: failure.failure_details.clone(),
                    })
                }
                None => EventType::EntityOperationFailed(EntityOperationFailedEvent {
                    request_id,
                    failure_details: Some(result.failure_details.clone().unwrap_or_else(|| {
                        events::failure(
                            "EntityBatchFailed",
                            format!("entity '{entity_id}' returned no result for the operation"),
                        )
                    })),
                }),
            };
            self.push_event_if_running(&parent, events::event(-1, event_type));
        }

        let actions = if failed_as_a_whole {
            Vec::new()
        } else {
            result.actions
        };
        for action in actions {
            match action.operation_action_type {
                Some(OperationActionType::SendSignal(signal)) => {
                    let due = signal.scheduled_time.as_ref().map(events::from_timestamp);
                    let event = events::event(
                        -1,
                        EventType::EntityOperationSignaled(EntityOperationSignaledEvent {
                            request_id: uuid::Uuid::new_v4().to_string(),
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
                        new_instance_id()
                    } else {
                        start.instance_id
                    };
                    if self.instances.get(&id).is_some_and(|i| !i.is_terminal()) {
                        tracing::warn!(hub = %self.name, entity_id = %entity_id, instance_id = %id, "an entity started an orchestration that already exists; ignored");
                        continue;
                    }
                    self.create_instance(NewInstance {
                        id,
                        name: start.name,
                        version: start.version,
                        input: start.input,
                        tags: Default::default(),
                        scheduled_start: start.scheduled_time.as_ref().map(events::from_timestamp),
                        parent: None,
                        trace_context: start.parent_trace_context,
                    });
                }
                None => {}
            }
        }
        self.try_grant_locks();
        self.wake_entity(&entity_id);
    }

    /// The batch a completion token stands for: leased, or released but not handed out
    /// again.
    fn take_completed_batch(&mut self, token: &str) -> Option<(String, Vec<QueuedOperation>)> {
        if let Some(LeaseTarget::Entity(id)) = self.dispatch.lease_target(token) {
            let id = id.clone();
            self.dispatch.end_lease(token);
            let flight = self.entities.get_mut_unsaved(&id)?.in_flight.take()?;
            return Some((id, flight.operations));
        }
        let Some(LeaseTarget::Entity(id)) = self.dispatch.forget_released(token) else {
            return None;
        };
        let entity = self.entities.get_mut_unsaved(&id)?;
        if entity.in_flight.is_some() {
            return None;
        }
        let (_, seqs) = entity.released.take()?;
        let (batch, rest): (Vec<QueuedOperation>, Vec<QueuedOperation>) =
            std::mem::take(&mut entity.record.operations)
                .into_iter()
                .partition(|operation| seqs.contains(&operation.seq));
        entity.record.operations = rest;
        self.dispatch.ready.entities.remove(&id);
        Some((id, batch))
    }

    /// `AbandonTaskEntityWorkItem`: the batch's operations go back, first in line.
    pub fn abandon_entity(&mut self, token: &str) {
        if matches!(
            self.dispatch.lease_target(token),
            Some(LeaseTarget::Entity(_))
        ) {
            self.release(token, false);
        } else {
            tracing::debug!(hub = %self.name, token, "abandon of an unknown entity lease ignored");
        }
    }

    /// `SignalEntity` from a client.
    pub fn signal_entity(
        &mut self,
        request: SignalEntityRequest,
    ) -> Result<SignalEntityResponse, Status> {
        if entity_name(&request.instance_id).is_none() {
            return Err(Status::invalid_argument(format!(
                "'{}' is not an entity id (expected '@name@key')",
                request.instance_id
            )));
        }
        if request.name.is_empty() {
            return Err(Status::invalid_argument("an operation name is required"));
        }
        // The entity exists from its first signal on, even a delayed one.
        self.entities.get_or_create(&request.instance_id);
        let request_id = if request.request_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            request.request_id
        };
        let due = request.scheduled_time.as_ref().map(events::from_timestamp);
        let event = events::event(
            -1,
            EventType::EntityOperationSignaled(EntityOperationSignaledEvent {
                request_id,
                operation: request.name,
                scheduled_time: request.scheduled_time,
                input: request.input,
                target_instance_id: Some(request.instance_id.clone()),
            }),
        );
        self.signal_at(&request.instance_id, event, due);
        Ok(SignalEntityResponse {})
    }

    fn entity_metadata(entity: &Entity, include_state: bool) -> EntityMetadata {
        let record = &entity.record;
        let backlog = record.operations.len()
            + entity
                .in_flight
                .as_ref()
                .map_or(0, |flight| flight.operations.len());
        EntityMetadata {
            instance_id: record.instance_id.clone(),
            last_modified_time: Some(to_timestamp(record.last_modified_at)),
            backlog_queue_size: i32::try_from(backlog).unwrap_or(i32::MAX),
            locked_by: record.locked_by.clone(),
            serialized_state: record.state.clone().filter(|_| include_state),
        }
    }

    /// `GetEntity`.
    pub fn get_entity(&self, request: &GetEntityRequest) -> GetEntityResponse {
        match self.entities.get(&request.instance_id) {
            Some(entity) => GetEntityResponse {
                exists: true,
                entity: Some(Self::entity_metadata(entity, request.include_state)),
            },
            None => GetEntityResponse {
                exists: false,
                entity: None,
            },
        }
    }

    /// `QueryEntities`, ordered by id; the continuation token is the last id returned.
    pub fn query_entities(&self, request: &QueryEntitiesRequest) -> QueryEntitiesResponse {
        let query = request.query.clone().unwrap_or_default();
        let prefix = query.instance_id_starts_with.unwrap_or_default();
        let from = query
            .last_modified_from
            .as_ref()
            .map(events::from_timestamp);
        let to = query.last_modified_to.as_ref().map(events::from_timestamp);
        let after = query.continuation_token.filter(|token| !token.is_empty());
        let mut matching: Vec<&Entity> = self
            .entities
            .iter()
            .map(|(_, entity)| entity)
            .filter(|entity| {
                let record = &entity.record;
                record.instance_id.starts_with(&prefix)
                    && from.is_none_or(|from| record.last_modified_at >= from)
                    && to.is_none_or(|to| record.last_modified_at < to)
                    && (query.include_transient
                        || (record.operations.is_empty() && entity.in_flight.is_none()))
                    && after
                        .as_ref()
                        .is_none_or(|after| record.instance_id.as_str() > after.as_str())
            })
            .collect();
        matching.sort_by(|a, b| a.record.instance_id.cmp(&b.record.instance_id));
        let page_size = query
            .page_size
            .and_then(|size| usize::try_from(size).ok())
            .filter(|&size| size > 0)
            .unwrap_or(usize::MAX);
        // Paged by count and by bytes (see `queries::PAGE_BYTES`): a few large states
        // cannot make a listing too big to send.
        let mut entities = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        let mut last = None;
        for entity in matching {
            if entities.len() == page_size {
                more = true;
                break;
            }
            let metadata = Self::entity_metadata(entity, query.include_state);
            let size = prost::Message::encoded_len(&metadata);
            if !entities.is_empty() && bytes + size > super::queries::PAGE_BYTES {
                more = true;
                break;
            }
            bytes += size;
            last = Some(entity.record.instance_id.clone());
            entities.push(metadata);
        }
        QueryEntitiesResponse {
            entities,
            continuation_token: if more { last } else { None },
        }
    }

    /// `CleanEntityStorage`: removes entities with no state and nothing to do, and
    /// releases locks whose owner is gone or finished.
    pub fn clean_entity_storage(
        &mut self,
        request: &CleanEntityStorageRequest,
    ) -> CleanEntityStorageResponse {
        let mut released = 0;
        if request.release_orphaned_locks {
            let orphaned: Vec<String> = self
                .entities
                .locked()
                .filter(|id| {
                    self.entities
                        .get(id)
                        .and_then(|entity| entity.record.lock_owner.as_ref())
                        .and_then(|owner| self.instances.get(owner))
                        .is_none_or(|owner| owner.is_terminal())
                })
                .cloned()
                .collect();
            for id in &orphaned {
                self.entities.set_lock(id, None);
                released += 1;
            }
            self.try_grant_locks();
            for id in &orphaned {
                self.wake_entity(id);
            }
        }
        let mut removed = 0;
        if request.remove_empty_entities {
            let waiting: HashSet<&String> = self
                .entities
                .lock_requests()
                .flat_map(|(_, request)| request.lock_set.iter())
                .collect();
            let empty: Vec<String> = self
                .entities
                .iter()
                .filter(|(id, entity)| {
                    let record = &entity.record;
                    record.state.is_none()
                        && record.operations.is_empty()
                        && record.locked_by.is_none()
                        && entity.in_flight.is_none()
                        && !waiting.contains(id)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in empty {
                self.entities.remove(&id);
                self.dispatch.ready.entities.remove(&id);
                removed += 1;
            }
        }
        CleanEntityStorageResponse {
            continuation_token: None,
            empty_entities_removed: removed,
            orphaned_locks_released: released,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_names_are_parsed_and_lowercased() {
        assert_eq!(entity_name("@Counter@Key").as_deref(), Some("counter"));
        assert_eq!(entity_name("@a@b@c").as_deref(), Some("a"));
        for bad in ["", "x", "@", "@@", "@a@", "@@b", "a@b@c"] {
            assert_eq!(entity_name(bad), None, "{bad}");
        }
    }
}
