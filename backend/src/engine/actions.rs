//! `CompleteOrchestratorTask`: the worker's actions applied to the instance, in order
//! (protocol.md §7.3), each confirmed by a history event carrying the action's id.

use std::collections::{BTreeMap, HashSet};

use durabletask_proto::history_event::EventType;
use durabletask_proto::orchestrator_action::OrchestratorActionType as Action;
use durabletask_proto::*;

use super::events::{self, now};
use super::hub::Hub;
use super::instances::{NewInstance, new_instance_id};
use super::state::dispatch::LeaseTarget;
use super::state::instances::InFlight;
use crate::records::{OrchestrationTimer, ParentLink, TimerTarget};
use crate::store::Store;

impl Hub {
    /// `CompleteOrchestratorTask`. A stale token (the work item was given to another
    /// worker, or the instance changed since) is ignored: that worker's result is void.
    pub fn complete_orchestration(&mut self, response: OrchestratorResponse, store: &Store) {
        let token = response.completion_token.as_str();
        let id = response.instance_id.clone();
        let Some(events) = self.take_completed_flight(&id, token) else {
            tracing::debug!(hub = %self.name, instance_id = %id, token, "ignoring a stale orchestration completion");
            return;
        };
        let flight = InFlight {
            token: token.to_owned(),
            events,
        };
        let Some(instance) = self.instances.get_mut(&id) else {
            return;
        };
        let record = &mut instance.record;
        if record.status == OrchestrationStatus::Pending as i32 {
            record.status = OrchestrationStatus::Running as i32;
        }
        for event in &flight.events {
            match event.event_type {
                Some(EventType::ExecutionSuspended(_)) => {
                    record.status = OrchestrationStatus::Suspended as i32;
                }
                Some(EventType::ExecutionResumed(_)) => {
                    record.status = OrchestrationStatus::Running as i32;
                }
                _ => {}
            }
        }
        // Overwritten on every completion: workers send it each time (protocol.md §4.10).
        record.custom_status = response.custom_status;
        record.last_updated_at = now();
        instance.history_mut().extend(flight.events);

        let mut continue_as_new = None;
        for action in response.actions {
            match self.apply_action(&id, action, store) {
                Ok(Some(next)) => continue_as_new = Some(next),
                Ok(None) => {}
                Err(message) => {
                    tracing::warn!(hub = %self.name, instance_id = %id, %message, "failing the orchestration: an action could not be applied");
                    if let Some(instance) = self.instances.get_mut(&id)
                        && !instance.is_terminal()
                    {
                        instance.record.status = OrchestrationStatus::Failed as i32;
                        instance.record.failure_details = Some(TaskFailureDetails {
                            is_non_retriable: true,
                            ..events::failure("InvalidAction", message)
                        });
                    }
                    break;
                }
            }
        }

        if let Some(action) = continue_as_new {
            self.continue_as_new(&id, action);
        } else if let Some(instance) = self.instances.get_mut(&id) {
            instance
                .history_mut()
                .push(events::orchestrator_completed());
            if instance.is_terminal() {
                let record = &instance.record;
                let completed = events::event(
                    -1,
                    EventType::ExecutionCompleted(ExecutionCompletedEvent {
                        orchestration_status: record.status,
                        result: record.output.clone(),
                        failure_details: record.failure_details.clone(),
                    }),
                );
                instance.history_mut().push(completed);
                // Events that came in meanwhile can no longer be processed.
                instance.record.pending.clear();
                self.on_finished(&id);
            }
        }
        self.waiters.changed(&id);
        self.wake(&id);
    }

    /// A completion, unless it would take the history past `max_history_events`: then
    /// none of its actions is applied, the orchestration fails with `HistoryTooLarge`
    /// (so it is not handed out again and again), and the call is refused with
    /// `RESOURCE_EXHAUSTED`, as the reference backend refuses it.
    pub fn complete_orchestration_within_limits(
        &mut self,
        mut response: OrchestratorResponse,
        store: &Store,
    ) -> Result<CompleteTaskResponse, tonic::Status> {
        let limit = self.limits.max_history_events;
        // Each action adds one event, the step adds orchestratorCompleted.
        let projected = self
            .instances
            .get(&response.instance_id)
            .map(|instance| instance.recorded_and_handed_out_events() + response.actions.len() + 1);
        let Some(projected) = projected.filter(|&projected| projected > limit) else {
            self.complete_orchestration(response, store);
            return Ok(CompleteTaskResponse {});
        };
        let message = format!(
            "orchestration '{}' would have {projected} history events; this backend keeps at most {limit} (max_history_events). Use continue-as-new to start a fresh history",
            response.instance_id
        );
        crate::limits::replace_with_failure(
            &mut response,
            crate::HISTORY_TOO_LARGE,
            message.clone(),
        );
        self.complete_orchestration(response, store);
        Err(tonic::Status::resource_exhausted(message))
    }

    /// The events a completion token stands for: leased, or released but not handed out
    /// again.
    fn take_completed_flight(&mut self, id: &str, token: &str) -> Option<Vec<HistoryEvent>> {
        let leased = matches!(
            self.dispatch.lease_target(token),
            Some(LeaseTarget::Orchestration(target)) if target == id
        );
        if leased {
            self.dispatch.end_lease(token);
            return Some(self.instances.get_mut_unsaved(id)?.in_flight.take()?.events);
        }
        match self.dispatch.released_target(token) {
            Some(LeaseTarget::Orchestration(target)) if target == id => {}
            _ => return None,
        }
        self.dispatch.forget_released(token);
        let instance = self.instances.get_mut_unsaved(id)?;
        if instance.in_flight.is_some() {
            return None;
        }
        let released = instance.released.take()?;
        let count = released.count.min(instance.record.pending.len());
        Some(instance.record.pending.drain(..count).collect())
    }

    /// `AbandonTaskOrchestratorWorkItem`: the events go back, to be redelivered.
    pub fn abandon_orchestration(&mut self, token: &str) {
        if matches!(
            self.dispatch.lease_target(token),
            Some(LeaseTarget::Orchestration(_))
        ) {
            self.release(token, false);
        } else {
            tracing::debug!(hub = %self.name, token, "abandon of an unknown orchestration lease ignored");
        }
    }

    fn append_history(&mut self, id: &str, event: HistoryEvent) {
        if let Some(instance) = self.instances.get_mut(id) {
            instance.history_mut().push(event);
        }
    }

    /// Applies one action. Continue-as-new is returned rather than applied: it resets the
    /// instance, so it happens after every other action of the response.
    fn apply_action(
        &mut self,
        id: &str,
        action: OrchestratorAction,
        store: &Store,
    ) -> Result<Option<CompleteOrchestrationAction>, String> {
        let action_id = action.id;
        let Some(kind) = action.orchestrator_action_type else {
            tracing::warn!(hub = %self.name, instance_id = id, action_id, "ignoring an action without a type");
            return Ok(None);
        };
        match kind {
            Action::ScheduleTask(task) => {
                self.append_history(
                    id,
                    events::event(
                        action_id,
                        EventType::TaskScheduled(TaskScheduledEvent {
                            name: task.name.clone(),
                            version: task.version.clone(),
                            input: task.input.clone(),
                            parent_trace_context: task.parent_trace_context.clone(),
                            tags: task.tags.clone(),
                        }),
                    ),
                );
                self.schedule_activity(id, action_id, task);
            }
            Action::CreateTimer(timer) => {
                let fire_at = timer.fire_at.unwrap_or_default();
                self.append_history(
                    id,
                    events::event(
                        action_id,
                        EventType::TimerCreated(TimerCreatedEvent {
                            fire_at: Some(fire_at),
                        }),
                    ),
                );
                self.create_orchestration_timer(id, action_id, fire_at);
            }
            Action::CreateSubOrchestration(sub) => {
                let child_id = if sub.instance_id.is_empty() {
                    new_instance_id()
                } else {
                    sub.instance_id.clone()
                };
                self.append_history(
                    id,
                    events::event(
                        action_id,
                        EventType::SubOrchestrationInstanceCreated(
                            SubOrchestrationInstanceCreatedEvent {
                                instance_id: child_id.clone(),
                                name: sub.name.clone(),
                                version: sub.version.clone(),
                                input: sub.input.clone(),
                                parent_trace_context: sub.parent_trace_context.clone(),
                                tags: sub.tags.clone(),
                            },
                        ),
                    ),
                );
                self.create_sub_orchestration(id, action_id, child_id, sub);
            }
            Action::SendEvent(send) => {
                let target = send
                    .instance
                    .as_ref()
                    .map(|instance| instance.instance_id.clone())
                    .unwrap_or_default();
                self.append_history(
                    id,
                    events::event(
                        action_id,
                        EventType::EventSent(EventSentEvent {
                            instance_id: target.clone(),
                            name: send.name.clone(),
                            input: send.data.clone(),
                        }),
                    ),
                );
                // Undeliverable events (unknown or finished target) are dropped.
                self.push_event_if_running(&target, events::event_raised(send.name, send.data));
            }
            Action::CompleteOrchestration(complete) => {
                if complete.orchestration_status == OrchestrationStatus::ContinuedAsNew as i32 {
                    return Ok(Some(complete));
                }
                if let Some(instance) = self.instances.get_mut(id) {
                    let record = &mut instance.record;
                    record.status = complete.orchestration_status;
                    record.output = complete.result;
                    record.failure_details = complete.failure_details;
                }
            }
            Action::TerminateOrchestration(terminate) => {
                self.terminate_instance(
                    &terminate.instance_id,
                    terminate.reason,
                    terminate.recurse,
                );
            }
            Action::SendEntityMessage(message) => {
                self.entity_message(id, action_id, message);
            }
            Action::RewindOrchestration(rewind) => {
                self.apply_rewind(id, rewind, store);
            }
        }
        Ok(None)
    }

    fn create_orchestration_timer(
        &mut self,
        id: &str,
        timer_id: i32,
        fire_at: prost_types::Timestamp,
    ) {
        let Some(instance) = self.instances.get(id) else {
            return;
        };
        let target = TimerTarget::Orchestration(OrchestrationTimer {
            instance_id: id.to_owned(),
            generation: instance.record.generation,
            timer_id,
            fire_at: Some(fire_at),
        });
        let timer = self.timers.add(events::from_timestamp(&fire_at), target);
        if let Some(instance) = self.instances.get_mut_unsaved(id) {
            instance.timers.insert(timer);
        }
    }

    /// Creates a sub-orchestration, linked to its parent, which hears how it ends.
    fn create_sub_orchestration(
        &mut self,
        parent_id: &str,
        task_id: i32,
        child_id: String,
        sub: CreateSubOrchestrationAction,
    ) {
        if self
            .instances
            .get(&child_id)
            .is_some_and(|child| !child.is_terminal())
        {
            let failed = events::event(
                -1,
                EventType::SubOrchestrationInstanceFailed(SubOrchestrationInstanceFailedEvent {
                    task_scheduled_id: task_id,
                    failure_details: Some(events::failure(
                        "OrchestrationAlreadyExists",
                        format!("orchestration instance '{child_id}' already exists"),
                    )),
                }),
            );
            self.push_event(parent_id, failed);
            return;
        }
        let Some(link) = self.parent_link(parent_id, task_id) else {
            return;
        };
        self.create_instance(NewInstance {
            id: child_id,
            name: sub.name,
            version: sub.version,
            input: sub.input,
            tags: sub.tags,
            scheduled_start: None,
            parent: Some(link),
            trace_context: sub.parent_trace_context,
        });
    }

    fn parent_link(&self, parent_id: &str, task_id: i32) -> Option<ParentLink> {
        let parent = self.instances.get(parent_id)?;
        let record = &parent.record;
        Some(ParentLink {
            instance_id: parent_id.to_owned(),
            task_scheduled_id: task_id,
            generation: record.generation,
            info: Some(ParentInstanceInfo {
                task_scheduled_id: task_id,
                name: Some(record.name.clone()),
                version: record.version.clone(),
                orchestration_instance: Some(OrchestrationInstance {
                    instance_id: parent_id.to_owned(),
                    execution_id: Some(record.execution_id.clone()),
                }),
            }),
        })
    }

    /// Starts the next execution: a new history beginning with `executionStarted`
    /// (the new input), the carried-over events, then whatever arrived meanwhile.
    fn continue_as_new(&mut self, id: &str, action: CompleteOrchestrationAction) {
        self.cancel_work(id);
        let generation = self.instances.new_generation();
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        let record = &mut instance.record;
        record.generation = generation;
        record.execution_id = new_instance_id();
        record.input = action.result;
        if action.new_version.is_some() {
            record.version = action.new_version;
        }
        if !action.tags.is_empty() {
            record.tags = action.tags;
        }
        record.output = None;
        record.failure_details = None;
        record.completed_at = None;
        record.status = OrchestrationStatus::Pending as i32;
        let now = now();
        record.last_updated_at = now;
        let started = events::event(
            -1,
            EventType::ExecutionStarted(ExecutionStartedEvent {
                name: record.name.clone(),
                version: record.version.clone(),
                input: record.input.clone(),
                orchestration_instance: Some(OrchestrationInstance {
                    instance_id: id.to_owned(),
                    execution_id: Some(record.execution_id.clone()),
                }),
                parent_instance: record.parent.as_ref().and_then(|link| link.info.clone()),
                tags: record.tags.clone(),
                ..Default::default()
            }),
        );
        let arrivals = std::mem::take(&mut record.pending);
        let mut pending = Vec::with_capacity(2 + action.carryover_events.len() + arrivals.len());
        pending.push(events::orchestrator_started(now));
        pending.push(started);
        pending.extend(action.carryover_events);
        pending.extend(arrivals);
        record.pending = pending;
        instance.replace_history(Vec::new());
    }

    /// The worker's rewritten history for a rewind (protocol.md §4.14): it replaces the
    /// history; failed sub-orchestrations are rewound too (re-created if purged), and
    /// work the history still waits for (activities, timers) is scheduled again.
    fn apply_rewind(&mut self, id: &str, rewind: RewindOrchestrationAction, store: &Store) {
        let history = rewind.new_history;
        let mut reason = None;
        let mut execution_id = None;
        let mut created = BTreeMap::new();
        let mut finished_children = HashSet::new();
        let mut scheduled = BTreeMap::new();
        let mut finished_tasks = HashSet::new();
        let mut timers = BTreeMap::new();
        let mut fired = HashSet::new();
        for event in &history {
            match &event.event_type {
                Some(EventType::SubOrchestrationInstanceCreated(sub)) => {
                    created.insert(event.event_id, sub.clone());
                }
                Some(EventType::SubOrchestrationInstanceCompleted(done)) => {
                    finished_children.insert(done.task_scheduled_id);
                }
                Some(EventType::SubOrchestrationInstanceFailed(failed)) => {
                    finished_children.insert(failed.task_scheduled_id);
                }
                Some(EventType::TaskScheduled(task)) => {
                    scheduled.insert(event.event_id, task.clone());
                }
                Some(EventType::TaskCompleted(done)) => {
                    finished_tasks.insert(done.task_scheduled_id);
                }
                Some(EventType::TaskFailed(failed)) => {
                    finished_tasks.insert(failed.task_scheduled_id);
                }
                Some(EventType::TimerCreated(timer)) => {
                    timers.insert(event.event_id, timer.fire_at.unwrap_or_default());
                }
                Some(EventType::TimerFired(timer)) => {
                    fired.insert(timer.timer_id);
                }
                Some(EventType::ExecutionRewound(rewound)) => {
                    reason = rewound.reason.clone();
                }
                Some(EventType::ExecutionStarted(started)) => {
                    // The worker gives the rewound execution a new id.
                    execution_id = started
                        .orchestration_instance
                        .as_ref()
                        .and_then(|instance| instance.execution_id.clone());
                }
                _ => {}
            }
        }
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        instance.replace_history(history);
        let record = &mut instance.record;
        if let Some(execution_id) = execution_id.filter(|id| !id.is_empty()) {
            record.execution_id = execution_id;
        }
        record.status = OrchestrationStatus::Running as i32;
        record.output = None;
        record.failure_details = None;
        record.completed_at = None;
        let now = now();
        record.last_updated_at = now;
        let mut pending = vec![events::orchestrator_started(now)];
        pending.extend(
            std::mem::take(&mut record.pending)
                .into_iter()
                .filter(|event| !events::is_rewound(event)),
        );
        record.pending = pending;
        let outstanding_activities = instance.activities.clone();

        for (task_id, task) in scheduled {
            if !finished_tasks.contains(&task_id) && !outstanding_activities.contains_key(&task_id)
            {
                let action = ScheduleTaskAction {
                    name: task.name,
                    version: task.version,
                    input: task.input,
                    tags: task.tags,
                    parent_trace_context: task.parent_trace_context,
                };
                self.schedule_activity(id, task_id, action);
            }
        }
        for (timer_id, fire_at) in timers {
            let live = self.instances.get(id).is_some_and(|instance| {
                instance.timers.iter().any(|timer| {
                    matches!(
                        self.timers.get(*timer).and_then(|t| t.target.as_ref()),
                        Some(TimerTarget::Orchestration(t)) if t.timer_id == timer_id
                    )
                })
            });
            if !fired.contains(&timer_id) && !live {
                self.create_orchestration_timer(id, timer_id, fire_at);
            }
        }
        for (task_id, sub) in created {
            if finished_children.contains(&task_id) {
                continue;
            }
            let Some(link) = self.parent_link(id, task_id) else {
                continue;
            };
            let child_id = sub.instance_id.clone();
            // A finished child may be out of memory: take it back to change its link. One
            // that is there but cannot be read is left alone (never re-created over).
            if self.instances.contains(&child_id) && !self.instances.hydrate(&child_id, store) {
                tracing::error!(hub = %self.name, instance_id = id, child_id, "a rewind could not read its sub-orchestration; that child is left as it is");
                continue;
            }
            let Some(child) = self.instances.get_mut(&child_id) else {
                // Purged: run it again from the start.
                self.create_instance(NewInstance {
                    id: child_id,
                    name: sub.name,
                    version: sub.version,
                    input: sub.input,
                    tags: sub.tags,
                    scheduled_start: None,
                    parent: Some(link),
                    trace_context: sub.parent_trace_context,
                });
                continue;
            };
            child.record.parent = Some(link.clone());
            let status = child.status();
            self.instances.link_child(id, &child_id);
            if status == OrchestrationStatus::Failed as i32 {
                self.prepare_rewind(&child_id, reason.clone());
            } else if events::is_terminal(status) {
                self.notify_parent(&child_id, &link);
            }
        }
    }
}
