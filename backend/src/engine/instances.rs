//! Orchestration instances: creation, the client's management RPCs (raise, terminate,
//! suspend, resume, purge, restart, rewind), waiting, and what happens when an instance
//! finishes (its parent hears of it, its leftover work is cancelled, its locks are freed).

use std::collections::{HashMap, HashSet};

use durabletask_proto::history_event::EventType;
use durabletask_proto::purge_instances_request::Request as PurgeRequest;
use durabletask_proto::*;
use tonic::Status;

use super::events::{self, Nanos, now, to_timestamp};
use super::hub::Hub;
use super::state::instances::Instance;
use super::state::waiters::{WaitReply, WaitUntil, Waiter};
use crate::records::{InstanceRecord, ParentLink, ScheduledStart, TimerTarget};
use crate::store::Store;

/// What a new instance starts with.
pub struct NewInstance {
    pub id: String,
    pub name: String,
    pub version: Option<String>,
    pub input: Option<String>,
    pub tags: HashMap<String, String>,
    pub scheduled_start: Option<Nanos>,
    pub parent: Option<ParentLink>,
    pub trace_context: Option<TraceContext>,
}

pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn not_found(id: &str) -> Status {
    Status::not_found(format!("orchestration instance '{id}' not found"))
}

impl Hub {
    /// `StartInstance`.
    pub fn start_instance(
        &mut self,
        request: CreateInstanceRequest,
    ) -> Result<CreateInstanceResponse, Status> {
        if request.name.is_empty() {
            return Err(Status::invalid_argument(
                "an orchestration name is required",
            ));
        }
        let id = if request.instance_id.is_empty() {
            new_instance_id()
        } else {
            request.instance_id.clone()
        };
        if let Some(existing) = self.instances.status(&id) {
            let replaceable = request
                .orchestration_id_reuse_policy
                .as_ref()
                .is_some_and(|policy| policy.replaceable_status.contains(&existing));
            if !replaceable {
                let status = OrchestrationStatus::try_from(existing)
                    .map_or("unknown", |status| status.as_str_name());
                return Err(Status::already_exists(format!(
                    "orchestration instance '{id}' already exists (status {status})"
                )));
            }
            tracing::debug!(hub = %self.name, instance_id = %id, "replacing an existing instance");
            self.remove_instance(&id);
        }
        self.create_instance(NewInstance {
            id: id.clone(),
            name: request.name,
            version: request.version,
            input: request.input,
            tags: request.tags,
            scheduled_start: request
                .scheduled_start_timestamp
                .as_ref()
                .map(events::from_timestamp),
            parent: None,
            trace_context: request.parent_trace_context,
        });
        Ok(CreateInstanceResponse { instance_id: id })
    }

    /// Creates an instance (replacing any instance of that id) and makes it ready, or
    /// schedules it for its start time.
    pub fn create_instance(&mut self, new: NewInstance) {
        if self.instances.contains(&new.id) {
            self.remove_instance(&new.id);
        }
        let now = now();
        let execution_id = new_instance_id();
        // A run of its own: links, activities and timers of an earlier run under this id
        // (replaced, restarted, purged) never match it.
        let generation = self.instances.new_generation();
        let future_start = new.scheduled_start.filter(|&at| at > now);
        let started = events::event(
            -1,
            EventType::ExecutionStarted(ExecutionStartedEvent {
                name: new.name.clone(),
                version: new.version.clone(),
                input: new.input.clone(),
                orchestration_instance: Some(OrchestrationInstance {
                    instance_id: new.id.clone(),
                    execution_id: Some(execution_id.clone()),
                }),
                parent_instance: new.parent.as_ref().and_then(|link| link.info.clone()),
                scheduled_start_timestamp: new.scheduled_start.map(to_timestamp),
                parent_trace_context: new.trace_context,
                orchestration_span_id: None,
                tags: new.tags.clone(),
            }),
        );
        let record = InstanceRecord {
            instance_id: new.id.clone(),
            name: new.name,
            version: new.version,
            status: OrchestrationStatus::Pending as i32,
            input: new.input,
            created_at: now,
            last_updated_at: now,
            scheduled_start: new.scheduled_start,
            not_before: future_start,
            tags: new.tags,
            parent: new.parent,
            generation,
            execution_id,
            pending: vec![
                events::orchestrator_started(new.scheduled_start.unwrap_or(now)),
                started,
            ],
            ..Default::default()
        };
        let id = new.id;
        self.instances.insert(Instance::new(record));
        self.waiters.changed(&id);
        if let Some(at) = future_start {
            let timer = self.timers.add(
                at,
                TimerTarget::ScheduledStart(ScheduledStart {
                    instance_id: id.clone(),
                    generation,
                }),
            );
            if let Some(instance) = self.instances.get_mut_unsaved(&id) {
                instance.timers.insert(timer);
            }
        }
        self.wake(&id);
    }

    /// Deletes an instance with everything that belongs to it (purge, replacement).
    pub(super) fn remove_instance(&mut self, id: &str) {
        self.cancel_work(id);
        if !self.instances.contains(id) {
            return;
        }
        // A finished instance out of memory has no work item or lease to end.
        if let Some(instance) = self.instances.remove(id) {
            if let Some(flight) = instance.in_flight {
                // The worker's completion will find no lease and be ignored.
                self.dispatch.end_lease(&flight.token);
            }
            if let Some(released) = instance.released {
                self.dispatch.forget_released(&released.token);
            }
        }
        self.dispatch.ready.orchestrations.remove(&id.to_owned());
        self.waiters.changed(id);
    }

    /// Cancels an instance's outstanding activities and timers (it finished, continued
    /// as new, or is being removed): they would only produce results nobody reads.
    pub(super) fn cancel_work(&mut self, id: &str) {
        let Some(instance) = self.instances.get_mut_unsaved(id) else {
            return;
        };
        let activities: Vec<u64> = instance.activities.drain().map(|(_, id)| id).collect();
        let timers: Vec<u64> = instance.timers.drain().collect();
        for activity_id in activities {
            self.remove_activity(activity_id);
        }
        for timer_id in timers {
            self.timers.remove(timer_id);
        }
    }

    /// Appends an event to an instance's pending events and wakes it.
    pub(super) fn push_event(&mut self, id: &str, event: HistoryEvent) -> bool {
        let Some(instance) = self.instances.get_mut(id) else {
            return false;
        };
        instance.record.pending.push(event);
        instance.record.last_updated_at = now();
        self.wake(id);
        true
    }

    /// Like [`Hub::push_event`], for events that a finished instance can no longer use.
    pub(super) fn push_event_if_running(&mut self, id: &str, event: HistoryEvent) -> bool {
        if self.instances.get(id).is_none_or(Instance::is_terminal) {
            return false;
        }
        self.push_event(id, event)
    }

    /// An instance just reached a terminal status.
    pub(super) fn on_finished(&mut self, id: &str) {
        self.cancel_work(id);
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        instance.record.completed_at = Some(now());
        instance.record.not_before = None;
        let parent = instance.record.parent.clone();
        self.release_locks_of(id);
        if let Some(link) = parent {
            self.notify_parent(id, &link);
        }
    }

    /// Tells a sub-orchestration's parent how it ended, if the parent still waits.
    pub(super) fn notify_parent(&mut self, child_id: &str, link: &ParentLink) {
        let Some(child) = self.instances.get(child_id) else {
            return;
        };
        let status = child.status();
        let event_type = if status == OrchestrationStatus::Completed as i32 {
            EventType::SubOrchestrationInstanceCompleted(SubOrchestrationInstanceCompletedEvent {
                task_scheduled_id: link.task_scheduled_id,
                result: child.record.output.clone(),
            })
        } else {
            // The child's real failure, not a rebuilt one (unlike the reference).
            let details = child.record.failure_details.clone().unwrap_or_else(|| {
                if status == OrchestrationStatus::Failed as i32 {
                    events::failure(
                        "OrchestrationFailed",
                        format!("sub-orchestration '{child_id}' failed"),
                    )
                } else {
                    let reason = child
                        .record
                        .output
                        .as_deref()
                        .filter(|output| !output.is_empty())
                        .map(|output| format!(": {output}"))
                        .unwrap_or_default();
                    events::failure(
                        "OrchestrationTerminated",
                        format!("sub-orchestration '{child_id}' was terminated{reason}"),
                    )
                }
            });
            EventType::SubOrchestrationInstanceFailed(SubOrchestrationInstanceFailedEvent {
                task_scheduled_id: link.task_scheduled_id,
                failure_details: Some(details),
            })
        };
        let parent_waits = self.instances.get(&link.instance_id).is_some_and(|parent| {
            !parent.is_terminal() && parent.record.generation == link.generation
        });
        if parent_waits {
            self.push_event(&link.instance_id, events::event(-1, event_type));
        }
    }

    /// The `GetInstanceResponse` for `id` (`exists: false` if unknown); a finished
    /// instance's record is read from the store.
    pub fn instance_response(
        &self,
        id: &str,
        include_payloads: bool,
        store: &Store,
    ) -> Result<GetInstanceResponse, Status> {
        let record = self.instances.stored_record(id, store).map_err(|error| {
            Status::internal(format!("could not read instance '{id}': {error}"))
        })?;
        Ok(GetInstanceResponse {
            exists: record.is_some(),
            orchestration_state: record
                .map(|record| orchestration_state(&record, include_payloads)),
        })
    }

    /// `WaitForInstanceStart` / `WaitForInstanceCompletion`: answers at once if the
    /// instance is already there, or keeps the caller until it is (see
    /// [`Hub::notify_waiters`]).
    pub fn wait(
        &mut self,
        request: GetInstanceRequest,
        until: WaitUntil,
        reply: WaitReply,
        store: &Store,
    ) -> Option<(WaitReply, Result<GetInstanceResponse, Status>)> {
        let id = request.instance_id;
        if let Some(status) = self.instances.status(&id)
            && until.satisfied_by(status)
        {
            let response = self.instance_response(&id, request.get_inputs_and_outputs, store);
            return Some((reply, response));
        }
        self.waiters.add(
            id,
            Waiter {
                until,
                include_payloads: request.get_inputs_and_outputs,
                reply,
            },
        );
        None
    }

    /// `RaiseEvent`. Events for finished instances are dropped.
    pub fn raise_event(
        &mut self,
        request: RaiseEventRequest,
    ) -> Result<RaiseEventResponse, Status> {
        if self
            .instances
            .summary(&request.instance_id)
            .is_some_and(|summary| summary.is_terminal())
        {
            tracing::debug!(hub = %self.name, instance_id = %request.instance_id, name = %request.name, "dropping an event raised on a finished instance");
            return Ok(RaiseEventResponse {});
        }
        let Some(instance) = self.instances.get(&request.instance_id) else {
            return Err(not_found(&request.instance_id));
        };
        let projected =
            instance.recorded_and_handed_out_events() + instance.record.pending.len() + 1;
        let limit = self.limits.max_history_events;
        if projected > limit {
            return Err(Status::resource_exhausted(format!(
                "instance '{}' would have {projected} history events; this backend keeps at most {limit} (max_history_events)",
                request.instance_id
            )));
        }
        self.push_event(
            &request.instance_id,
            events::event_raised(request.name, request.input),
        );
        Ok(RaiseEventResponse {})
    }

    /// `TerminateInstance`.
    pub fn terminate(&mut self, request: TerminateRequest) -> Result<TerminateResponse, Status> {
        if !self.instances.contains(&request.instance_id) {
            return Err(not_found(&request.instance_id));
        }
        self.terminate_instance(&request.instance_id, request.output, request.recursive);
        Ok(TerminateResponse {})
    }

    /// Asks a worker to terminate `id` (and, if `recursive`, its running children).
    ///
    /// Iterative, with a visited set: parent links can form a cycle (a child may re-create
    /// its finished parent's id as its own sub-orchestration), and a deep tree must not
    /// exhaust the engine thread's stack. Finished instances are skipped together with
    /// their subtrees, as before.
    pub(super) fn terminate_instance(&mut self, id: &str, output: Option<String>, recursive: bool) {
        let mut visited: HashSet<String> = HashSet::new();
        let mut stack = vec![id.to_owned()];
        while let Some(id) = stack.pop() {
            if !visited.insert(id.clone()) {
                continue;
            }
            if !self.request_termination(&id, output.clone(), recursive) {
                continue;
            }
            if recursive {
                stack.extend(
                    self.instances
                        .children_of(&id)
                        .into_iter()
                        .filter(|child| !visited.contains(child)),
                );
            }
        }
    }

    /// Queues `executionTerminated` for `id` unless one is already queued or in flight;
    /// `false` if the instance is unknown or finished.
    fn request_termination(&mut self, id: &str, output: Option<String>, recursive: bool) -> bool {
        let Some(instance) = self.instances.get(id) else {
            return false;
        };
        if instance.is_terminal() {
            return false;
        }
        let already = instance
            .in_flight
            .iter()
            .flat_map(|flight| flight.events.iter())
            .chain(instance.record.pending.iter())
            .any(events::is_terminated);
        if !already {
            self.push_event(
                id,
                events::event(
                    -1,
                    EventType::ExecutionTerminated(ExecutionTerminatedEvent {
                        input: output,
                        recurse: recursive,
                    }),
                ),
            );
        }
        true
    }

    /// `SuspendInstance`: a no-op if already suspended or finished.
    pub fn suspend(&mut self, request: SuspendRequest) -> Result<SuspendResponse, Status> {
        if !self.instances.contains(&request.instance_id) {
            return Err(not_found(&request.instance_id));
        }
        // A finished instance (in memory or not) is left as it is.
        let Some(instance) = self.instances.get(&request.instance_id) else {
            return Ok(SuspendResponse {});
        };
        if instance.is_terminal() || instance.effectively_suspended() {
            return Ok(SuspendResponse {});
        }
        self.push_event(
            &request.instance_id,
            events::event(
                -1,
                EventType::ExecutionSuspended(ExecutionSuspendedEvent {
                    input: request.reason,
                }),
            ),
        );
        Ok(SuspendResponse {})
    }

    /// `ResumeInstance`: a no-op unless suspended (a stray resume would fail the
    /// orchestration on some workers).
    pub fn resume(&mut self, request: ResumeRequest) -> Result<ResumeResponse, Status> {
        if !self.instances.contains(&request.instance_id) {
            return Err(not_found(&request.instance_id));
        }
        let Some(instance) = self.instances.get(&request.instance_id) else {
            return Ok(ResumeResponse {});
        };
        if instance.is_terminal() || !instance.effectively_suspended() {
            return Ok(ResumeResponse {});
        }
        self.push_event(
            &request.instance_id,
            events::event(
                -1,
                EventType::ExecutionResumed(ExecutionResumedEvent {
                    input: request.reason,
                }),
            ),
        );
        Ok(ResumeResponse {})
    }

    /// `PurgeInstances`: deletes finished instances (by id, by filter or by list), and
    /// with `recursive` their finished sub-orchestrations too.
    pub fn purge(
        &mut self,
        request: PurgeInstancesRequest,
    ) -> Result<PurgeInstancesResponse, Status> {
        let recursive = request.recursive;
        let targets: Vec<String> = match request.request {
            Some(PurgeRequest::InstanceId(id)) => vec![id],
            Some(PurgeRequest::InstanceBatch(batch)) => batch.instance_ids,
            Some(PurgeRequest::PurgeInstanceFilter(filter)) => {
                let from = filter
                    .created_time_from
                    .as_ref()
                    .map(events::from_timestamp);
                let to = filter.created_time_to.as_ref().map(events::from_timestamp);
                self.instances
                    .finished_matching(&filter.runtime_status, from, to)
            }
            None => {
                return Err(Status::invalid_argument(
                    "a purge needs an instance id, a filter or a list of ids",
                ));
            }
        };
        let mut deleted = 0;
        for id in targets {
            deleted += self.purge_instance(&id, recursive);
        }
        Ok(PurgeInstancesResponse {
            deleted_instance_count: deleted,
            is_complete: Some(true),
        })
    }

    fn purge_instance(&mut self, id: &str, recursive: bool) -> i32 {
        if !self
            .instances
            .summary(id)
            .is_some_and(|summary| summary.is_terminal())
        {
            return 0;
        }
        let children = if recursive {
            self.instances.children_of(id)
        } else {
            Vec::new()
        };
        self.remove_instance(id);
        let mut deleted = 1;
        for child in children {
            deleted += self.purge_instance(&child, true);
        }
        deleted
    }

    /// `RestartInstance`: runs a finished instance again (same name, input, version and
    /// tags), under the same id or a new one.
    pub fn restart(
        &mut self,
        request: RestartInstanceRequest,
        store: &Store,
    ) -> Result<RestartInstanceResponse, Status> {
        let record = self
            .instances
            .stored_record(&request.instance_id, store)
            .map_err(|error| Status::internal(format!("could not read the instance: {error}")))?
            .ok_or_else(|| not_found(&request.instance_id))?;
        if !events::is_terminal(record.status) {
            return Err(Status::failed_precondition(format!(
                "orchestration instance '{}' is not in a terminal state",
                request.instance_id
            )));
        }
        let id = if request.restart_with_new_instance_id {
            new_instance_id()
        } else {
            request.instance_id.clone()
        };
        let new = NewInstance {
            id: id.clone(),
            name: record.name.clone(),
            version: record.version.clone(),
            input: record.input.clone(),
            tags: record.tags.clone(),
            scheduled_start: None,
            parent: None,
            trace_context: None,
        };
        self.create_instance(new);
        Ok(RestartInstanceResponse { instance_id: id })
    }

    /// `RewindInstance`: only a FAILED instance can be rewound.
    pub fn rewind(
        &mut self,
        request: RewindInstanceRequest,
        store: &Store,
    ) -> Result<RewindInstanceResponse, Status> {
        let Some(status) = self.instances.status(&request.instance_id) else {
            return Err(not_found(&request.instance_id));
        };
        if status != OrchestrationStatus::Failed as i32 {
            return Err(Status::failed_precondition(format!(
                "orchestration instance '{}' is not in a failed state",
                request.instance_id
            )));
        }
        if !self.instances.hydrate(&request.instance_id, store) {
            return Err(Status::internal(format!(
                "could not read orchestration instance '{}'",
                request.instance_id
            )));
        }
        self.prepare_rewind(&request.instance_id, request.reason);
        Ok(RewindInstanceResponse {})
    }

    /// Sends a failed instance back to a worker with an `executionRewound` event; the
    /// worker answers with the rewritten history (see `apply_rewind`).
    pub(super) fn prepare_rewind(&mut self, id: &str, reason: Option<String>) {
        let token = self
            .instances
            .get(id)
            .and_then(|instance| instance.in_flight.as_ref())
            .map(|flight| flight.token.clone());
        if let Some(token) = token {
            self.dispatch.end_lease(&token);
        }
        if let Some(released) = self
            .instances
            .get_mut_unsaved(id)
            .and_then(|i| i.released.take())
        {
            self.dispatch.forget_released(&released.token);
        }
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        let record = &mut instance.record;
        record.status = OrchestrationStatus::Running as i32;
        record.output = None;
        record.failure_details = None;
        record.completed_at = None;
        let now = now();
        record.last_updated_at = now;
        instance.in_flight = None;
        instance.record.pending.push(HistoryEvent {
            event_id: -1,
            timestamp: Some(to_timestamp(now)),
            event_type: Some(EventType::ExecutionRewound(ExecutionRewoundEvent {
                reason,
                ..Default::default()
            })),
        });
        self.waiters.changed(id);
        self.wake(id);
    }
}

/// The state a client reads of an instance.
pub fn orchestration_state(record: &InstanceRecord, include_payloads: bool) -> OrchestrationState {
    let payload = |value: &Option<String>| {
        value
            .clone()
            .filter(|value| include_payloads && !value.is_empty())
    };
    OrchestrationState {
        instance_id: record.instance_id.clone(),
        name: record.name.clone(),
        version: record.version.clone(),
        orchestration_status: record.status,
        scheduled_start_timestamp: record.scheduled_start.map(to_timestamp),
        created_timestamp: Some(to_timestamp(record.created_at)),
        last_updated_timestamp: Some(to_timestamp(record.last_updated_at)),
        input: payload(&record.input),
        output: payload(&record.output),
        custom_status: record.custom_status.clone().filter(|s| !s.is_empty()),
        failure_details: record.failure_details.clone(),
        execution_id: Some(record.execution_id.clone()),
        completed_timestamp: record.completed_at.map(to_timestamp),
        parent_instance_id: record.parent.as_ref().map(|link| link.instance_id.clone()),
        tags: record.tags.clone(),
    }
}
