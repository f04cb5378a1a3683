//! Handing work to workers (protocol.md §1.4).
//!
//! Work that can run sits in a ready queue per category (`state::dispatch`). After
//! every batch the engine calls [`Hub::pump`], which gives ready items to streams
//! round-robin, within each stream's `maxConcurrent*` limits and work-item filters. A
//! handed out item is *leased* under a fresh completion token; leases live in memory
//! only, so a restart (or the end of the stream) makes the item ready again and it is
//! redelivered.

use durabletask_proto::work_item::Request as WorkRequest;
use durabletask_proto::*;

use super::events;
use super::hub::Hub;
use super::state::dispatch::{Category, LeaseTarget, version_of};
use super::state::instances::{InFlight, Released};
use super::tokens::ActivityBinding;
use crate::store::Store;

impl Hub {
    /// A token for handing out activity `id`: a new token that also names the execution
    /// the activity belongs to, so that a result arriving after its lease is gone (the
    /// stream closed, the backend restarted) can be matched with the right execution
    /// (see [`Hub::complete_activity`]).
    fn new_activity_token(&mut self, id: u64) -> String {
        let Some(activity) = self.activities.get(id) else {
            return self.dispatch.new_token();
        };
        let binding = ActivityBinding {
            instance_id: &activity.record.instance_id,
            task_id: activity.record.task_id,
            execution_id: &activity.record.execution_id,
        };
        self.dispatch.new_activity_token(&binding)
    }

    /// A stream ended: everything leased to it is ready again, at once.
    pub fn close_stream(&mut self, id: u64) {
        let Some(tokens) = self.dispatch.remove_stream(id) else {
            return;
        };
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

    /// Puts a leased item back: it becomes ready and is redelivered. With `keep_token`
    /// (the stream ended, the worker may still deliver), a completion with the token is
    /// accepted until the item is handed out again.
    pub(super) fn release(&mut self, token: &str, keep_token: bool) -> bool {
        let Some(target) = self.dispatch.end_lease(token) else {
            return false;
        };
        match target {
            LeaseTarget::Orchestration(instance_id) => {
                if let Some(instance) = self.instances.get_mut_unsaved(&instance_id)
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
                        self.dispatch
                            .keep_released(token, LeaseTarget::Orchestration(instance_id.clone()));
                    }
                }
                self.wake(&instance_id);
            }
            LeaseTarget::Activity(id) => {
                if let Some(activity) = self.activities.get_mut_unsaved(id) {
                    activity.lease = None;
                    self.queue_activity(id);
                }
            }
            LeaseTarget::Entity(entity_id) => {
                if let Some(entity) = self.entities.get_mut_unsaved(&entity_id)
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
                        self.dispatch
                            .keep_released(token, LeaseTarget::Entity(entity_id.clone()));
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
        if !self.dispatch.has_streams() {
            return;
        }
        let ids = self.dispatch.rotated_stream_ids();
        for category in [
            Category::Orchestration,
            Category::Activity,
            Category::Entity,
        ] {
            loop {
                if self.dispatch.ready.len(category) == 0 {
                    break;
                }
                let mut progressed = false;
                for &id in &ids {
                    let Some(target) = self.dispatch.pop_for(id, category) else {
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

    /// Leases `target` to stream `stream_id` and sends it; a target that is no longer
    /// runnable (it changed since it was queued) is dropped.
    fn lease_to(&mut self, stream_id: u64, target: LeaseTarget, store: &Store) {
        let token = match &target {
            LeaseTarget::Activity(id) => self.new_activity_token(*id),
            _ => self.dispatch.new_token(),
        };
        let request = match &target {
            LeaseTarget::Orchestration(id) => self.take_orchestration(id, &token, store),
            LeaseTarget::Activity(id) => self.take_activity(*id, &token),
            LeaseTarget::Entity(id) => self.take_entity(id, &token),
        };
        let Some(request) = request else {
            return;
        };
        let item = WorkItem {
            request: Some(request),
            completion_token: token.clone(),
        };
        if !self.dispatch.lease(stream_id, target, item) {
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
        // Not handed out with a history that could not be read (see `ensure_history`).
        if !self.instances.ensure_history(id, store) {
            return None;
        }
        let instance = self.instances.get_mut_unsaved(id)?;
        // Handed out anew: a completion for the released item is now stale.
        if let Some(released) = instance.released.take() {
            self.dispatch.forget_released(&released.token);
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
        let activity = self.activities.get_mut_unsaved(id)?;
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
            self.dispatch.ready.orchestrations.push(
                id.to_owned(),
                &instance.record.name,
                version_of(&instance.record.version),
            );
        }
    }
}
