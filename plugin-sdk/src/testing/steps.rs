//! Orchestration steps and their actions, applied as the embedded backend applies them
//! (backend/src/engine/actions.rs, instances.rs): each action confirmed by a history
//! event carrying its id, then `orchestratorCompleted`, and `executionCompleted` when the
//! orchestration ended.

use durabletask_proto as proto;
use proto::OrchestrationStatus;
use proto::history_event::EventType;
use proto::orchestrator_action::OrchestratorActionType as Action;

use super::activities::ActivityWork;
use super::clock::{self, TimerTarget};
use super::instances::{Instance, NewInstance, ParentLink, is_terminated};
use super::runtime::TestRuntime;

impl TestRuntime {
    /// One step: the whole history as past events, the pending events (led by
    /// `orchestratorStarted` at the test clock's time) as new ones, one
    /// `run_orchestrator` call, then its actions.
    pub(super) fn step(&mut self, instance_id: &str) {
        let now = self.clock.now();
        let orchestrator_started = self.event(
            -1,
            EventType::OrchestratorStarted(proto::OrchestratorStartedEvent {}),
        );
        let Some(instance) = self.instances.get_mut(instance_id) else {
            return;
        };
        if !instance.dispatchable(now) {
            return;
        }
        let mut new_events = std::mem::take(&mut instance.pending);
        if !new_events
            .first()
            .is_some_and(|e| matches!(e.event_type, Some(EventType::OrchestratorStarted(_))))
        {
            new_events.insert(0, orchestrator_started);
        }
        let request = proto::OrchestratorRequest {
            instance_id: instance_id.to_owned(),
            execution_id: Some(instance.execution_id.clone()),
            past_events: instance.history.clone(),
            new_events: new_events.clone(),
            ..Default::default()
        };
        let response = self.registry.run_orchestrator(&request);
        self.complete_step(instance_id, new_events, response);
    }

    fn complete_step(
        &mut self,
        instance_id: &str,
        new_events: Vec<proto::HistoryEvent>,
        response: proto::OrchestratorResponse,
    ) {
        let Some(instance) = self.instances.get_mut(instance_id) else {
            return;
        };
        if instance.status == OrchestrationStatus::Pending {
            instance.status = OrchestrationStatus::Running;
        }
        for event in &new_events {
            match event.event_type {
                Some(EventType::ExecutionSuspended(_)) => {
                    instance.status = OrchestrationStatus::Suspended;
                }
                Some(EventType::ExecutionResumed(_)) => {
                    instance.status = OrchestrationStatus::Running;
                }
                _ => {}
            }
        }
        // Workers send it with every step; a step without one clears it.
        instance.custom_status = response.custom_status;
        instance.history.extend(new_events);

        let mut continue_as_new = None;
        for action in response.actions {
            match self.apply_action(instance_id, action) {
                Ok(Some(next)) => continue_as_new = Some(next),
                Ok(None) => {}
                Err(message) => {
                    if let Some(instance) = self.instances.get_mut(instance_id)
                        && !instance.is_terminal()
                    {
                        instance.status = OrchestrationStatus::Failed;
                        instance.failure = Some(proto::TaskFailureDetails {
                            error_type: "InvalidAction".to_owned(),
                            error_message: message,
                            is_non_retriable: true,
                            ..Default::default()
                        });
                    }
                    break;
                }
            }
        }

        if let Some(action) = continue_as_new {
            self.continue_as_new(instance_id, action);
        } else {
            let completed = self.event(
                -1,
                EventType::OrchestratorCompleted(proto::OrchestratorCompletedEvent {}),
            );
            let finished = self.event(
                -1,
                EventType::ExecutionCompleted(proto::ExecutionCompletedEvent::default()),
            );
            let Some(instance) = self.instances.get_mut(instance_id) else {
                return;
            };
            instance.history.push(completed);
            if instance.is_terminal() {
                let mut finished = finished;
                finished.event_type = Some(EventType::ExecutionCompleted(
                    proto::ExecutionCompletedEvent {
                        orchestration_status: instance.status as i32,
                        result: instance.output.clone(),
                        failure_details: instance.failure.clone(),
                    },
                ));
                instance.history.push(finished);
                // Events that came in meanwhile can no longer be processed.
                instance.pending.clear();
                self.on_finished(instance_id);
            }
        }
        self.wake(instance_id);
    }

    /// Applies one action. Continue-as-new is returned rather than applied: it resets the
    /// instance, so it happens after every other action of the step.
    fn apply_action(
        &mut self,
        instance_id: &str,
        action: proto::OrchestratorAction,
    ) -> Result<Option<proto::CompleteOrchestrationAction>, String> {
        let action_id = action.id;
        let Some(kind) = action.orchestrator_action_type else {
            return Ok(None);
        };
        match kind {
            Action::ScheduleTask(task) => {
                let scheduled = EventType::TaskScheduled(proto::TaskScheduledEvent {
                    name: task.name.clone(),
                    version: task.version.clone(),
                    input: task.input.clone(),
                    parent_trace_context: task.parent_trace_context.clone(),
                    tags: task.tags.clone(),
                });
                self.append_history(instance_id, action_id, scheduled);
                self.schedule_activity(instance_id, action_id, task);
            }
            Action::CreateTimer(timer) => {
                let fire_at = timer.fire_at.unwrap_or_default();
                let created = EventType::TimerCreated(proto::TimerCreatedEvent {
                    fire_at: Some(fire_at),
                });
                self.append_history(instance_id, action_id, created);
                if let Some(instance) = self.instances.get(instance_id) {
                    let target = TimerTarget::Orchestration {
                        instance_id: instance_id.to_owned(),
                        generation: instance.generation,
                        timer_id: action_id,
                        fire_at,
                    };
                    self.clock.add(clock::from_timestamp(&fire_at), target);
                }
            }
            Action::CreateSubOrchestration(sub) => {
                let child_id = if sub.instance_id.is_empty() {
                    // The SDK always names its children; a default keeps ids stable anyway.
                    format!("{instance_id}:{action_id:04x}")
                } else {
                    sub.instance_id.clone()
                };
                let created = EventType::SubOrchestrationInstanceCreated(
                    proto::SubOrchestrationInstanceCreatedEvent {
                        instance_id: child_id.clone(),
                        name: sub.name.clone(),
                        version: sub.version.clone(),
                        input: sub.input.clone(),
                        parent_trace_context: sub.parent_trace_context.clone(),
                        tags: sub.tags.clone(),
                    },
                );
                self.append_history(instance_id, action_id, created);
                self.create_sub_orchestration(instance_id, action_id, child_id, sub);
            }
            Action::SendEvent(send) => {
                let target = send
                    .instance
                    .as_ref()
                    .map(|instance| instance.instance_id.clone())
                    .unwrap_or_default();
                let sent = EventType::EventSent(proto::EventSentEvent {
                    instance_id: target.clone(),
                    name: send.name.clone(),
                    input: send.data.clone(),
                });
                self.append_history(instance_id, action_id, sent);
                // Undeliverable events (unknown or finished target) are dropped.
                let raised = self.event(
                    -1,
                    EventType::EventRaised(proto::EventRaisedEvent {
                        name: send.name,
                        input: send.data,
                    }),
                );
                self.push_event_if_running(&target, raised);
            }
            Action::CompleteOrchestration(complete) => {
                if complete.orchestration_status == OrchestrationStatus::ContinuedAsNew as i32 {
                    return Ok(Some(complete));
                }
                if let Some(instance) = self.instances.get_mut(instance_id) {
                    instance.status = OrchestrationStatus::try_from(complete.orchestration_status)
                        .map_err(|_| {
                            format!(
                                "the orchestration completed with an unknown status {}",
                                complete.orchestration_status
                            )
                        })?;
                    instance.output = complete.result;
                    instance.failure = complete.failure_details;
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
                self.entity_message(instance_id, action_id, message);
            }
            Action::RewindOrchestration(_) => {
                return Err(
                    "the test kit does not rewind orchestrations (it never asks for a rewind)"
                        .to_owned(),
                );
            }
        }
        Ok(None)
    }

    fn append_history(&mut self, instance_id: &str, event_id: i32, kind: EventType) {
        let event = self.event(event_id, kind);
        if let Some(instance) = self.instances.get_mut(instance_id) {
            instance.history.push(event);
        }
    }

    fn schedule_activity(
        &mut self,
        instance_id: &str,
        task_id: i32,
        task: proto::ScheduleTaskAction,
    ) {
        let Some(instance) = self.instances.get(instance_id) else {
            return;
        };
        let request = proto::ActivityRequest {
            name: task.name,
            version: task.version,
            input: task.input,
            orchestration_instance: Some(proto::OrchestrationInstance {
                instance_id: instance_id.to_owned(),
                execution_id: Some(instance.execution_id.clone()),
            }),
            task_id,
            parent_trace_context: task.parent_trace_context,
            tags: task.tags,
        };
        let work = ActivityWork {
            instance_id: instance_id.to_owned(),
            generation: instance.generation,
            request,
        };
        self.queue_activity(work);
    }

    /// Creates a sub-orchestration linked to its parent, which hears how it ends; a
    /// child id still running fails the call with `OrchestrationAlreadyExists`.
    fn create_sub_orchestration(
        &mut self,
        parent_id: &str,
        task_id: i32,
        child_id: String,
        sub: proto::CreateSubOrchestrationAction,
    ) {
        if self
            .instances
            .get(&child_id)
            .is_some_and(|child| !child.is_terminal())
        {
            let failed = self.event(
                -1,
                EventType::SubOrchestrationInstanceFailed(
                    proto::SubOrchestrationInstanceFailedEvent {
                        task_scheduled_id: task_id,
                        failure_details: Some(proto::TaskFailureDetails {
                            error_type: "OrchestrationAlreadyExists".to_owned(),
                            error_message: format!(
                                "orchestration instance '{child_id}' already exists"
                            ),
                            ..Default::default()
                        }),
                    },
                ),
            );
            self.push_event(parent_id, failed);
            return;
        }
        let Some(parent) = self.instances.get(parent_id) else {
            return;
        };
        let link = ParentLink {
            instance_id: parent_id.to_owned(),
            task_scheduled_id: task_id,
            generation: parent.generation,
            info: proto::ParentInstanceInfo {
                task_scheduled_id: task_id,
                name: Some(parent.name.clone()),
                version: parent.version.clone(),
                orchestration_instance: Some(proto::OrchestrationInstance {
                    instance_id: parent_id.to_owned(),
                    execution_id: Some(parent.execution_id.clone()),
                }),
            },
        };
        self.create_instance(NewInstance {
            id: child_id,
            name: sub.name,
            version: sub.version,
            input: sub.input,
            tags: sub.tags,
            scheduled_start: None,
            parent: Some(link),
        });
    }

    /// Creates an instance (replacing a finished one of that id) and queues its first
    /// step, or holds it until its scheduled start.
    pub(super) fn create_instance(&mut self, new: NewInstance) {
        self.clock.cancel_instance(&new.id);
        self.next_generation += 1;
        let generation = self.next_generation;
        let execution_id = format!("execution-{generation}");
        let now = self.clock.now();
        let future_start = new.scheduled_start.filter(|at| *at > now);
        let mut orchestrator_started = self.event(
            -1,
            EventType::OrchestratorStarted(proto::OrchestratorStartedEvent {}),
        );
        if let Some(at) = new.scheduled_start {
            orchestrator_started.timestamp = Some(clock::to_timestamp(at.max(now)));
        }
        let started = self.event(
            -1,
            EventType::ExecutionStarted(proto::ExecutionStartedEvent {
                name: new.name.clone(),
                version: new.version.clone(),
                input: new.input,
                orchestration_instance: Some(proto::OrchestrationInstance {
                    instance_id: new.id.clone(),
                    execution_id: Some(execution_id.clone()),
                }),
                parent_instance: new.parent.as_ref().map(|link| link.info.clone()),
                scheduled_start_timestamp: new.scheduled_start.map(clock::to_timestamp),
                tags: new.tags.clone(),
                ..Default::default()
            }),
        );
        let instance = Instance {
            name: new.name,
            version: new.version,
            tags: new.tags,
            status: OrchestrationStatus::Pending,
            output: None,
            failure: None,
            custom_status: None,
            history: Vec::new(),
            pending: vec![orchestrator_started, started],
            generation,
            execution_id,
            parent: new.parent,
            not_before: future_start,
        };
        self.instances.insert(new.id.clone(), instance);
        if let Some(at) = future_start {
            let target = TimerTarget::ScheduledStart {
                instance_id: new.id.clone(),
                generation,
            };
            self.clock.add(at, target);
        }
        self.wake(&new.id);
    }

    /// Starts the next execution: a new history beginning with `executionStarted` (the
    /// new input), the carried-over events, then whatever arrived meanwhile.
    fn continue_as_new(&mut self, instance_id: &str, action: proto::CompleteOrchestrationAction) {
        self.clock.cancel_instance(instance_id);
        self.next_generation += 1;
        let generation = self.next_generation;
        let orchestrator_started = self.event(
            -1,
            EventType::OrchestratorStarted(proto::OrchestratorStartedEvent {}),
        );
        let mut started = self.event(-1, EventType::ExecutionStarted(Default::default()));
        let Some(instance) = self.instances.get_mut(instance_id) else {
            return;
        };
        instance.generation = generation;
        instance.execution_id = format!("execution-{generation}");
        if action.new_version.is_some() {
            instance.version = action.new_version;
        }
        if !action.tags.is_empty() {
            instance.tags = action.tags;
        }
        instance.output = None;
        instance.failure = None;
        instance.status = OrchestrationStatus::Pending;
        started.event_type = Some(EventType::ExecutionStarted(proto::ExecutionStartedEvent {
            name: instance.name.clone(),
            version: instance.version.clone(),
            input: action.result,
            orchestration_instance: Some(proto::OrchestrationInstance {
                instance_id: instance_id.to_owned(),
                execution_id: Some(instance.execution_id.clone()),
            }),
            parent_instance: instance.parent.as_ref().map(|link| link.info.clone()),
            tags: instance.tags.clone(),
            ..Default::default()
        }));
        let arrivals = std::mem::take(&mut instance.pending);
        let mut pending = Vec::with_capacity(2 + action.carryover_events.len() + arrivals.len());
        pending.push(orchestrator_started);
        pending.push(started);
        pending.extend(action.carryover_events);
        pending.extend(arrivals);
        instance.pending = pending;
        instance.history = Vec::new();
    }

    /// An instance just finished: its timers go, its locks are freed, its parent hears.
    fn on_finished(&mut self, instance_id: &str) {
        self.clock.cancel_instance(instance_id);
        self.release_locks_of(instance_id);
        let parent = self
            .instances
            .get(instance_id)
            .and_then(|instance| instance.parent.clone());
        if let Some(link) = parent {
            self.notify_parent(instance_id, &link);
        }
    }

    /// Tells a sub-orchestration's parent how it ended, if that execution still waits.
    fn notify_parent(&mut self, child_id: &str, link: &ParentLink) {
        let Some(child) = self.instances.get(child_id) else {
            return;
        };
        let kind = if child.status == OrchestrationStatus::Completed {
            EventType::SubOrchestrationInstanceCompleted(
                proto::SubOrchestrationInstanceCompletedEvent {
                    task_scheduled_id: link.task_scheduled_id,
                    result: child.output.clone(),
                },
            )
        } else {
            let details = child.failure.clone().unwrap_or_else(|| {
                let (error_type, message) = if child.status == OrchestrationStatus::Failed {
                    (
                        "OrchestrationFailed",
                        format!("sub-orchestration '{child_id}' failed"),
                    )
                } else {
                    let reason = child
                        .output
                        .as_deref()
                        .filter(|output| !output.is_empty())
                        .map(|output| format!(": {output}"))
                        .unwrap_or_default();
                    (
                        "OrchestrationTerminated",
                        format!("sub-orchestration '{child_id}' was terminated{reason}"),
                    )
                };
                proto::TaskFailureDetails {
                    error_type: error_type.to_owned(),
                    error_message: message,
                    ..Default::default()
                }
            });
            EventType::SubOrchestrationInstanceFailed(proto::SubOrchestrationInstanceFailedEvent {
                task_scheduled_id: link.task_scheduled_id,
                failure_details: Some(details),
            })
        };
        if self.is_current(&link.instance_id, link.generation) {
            let event = self.event(-1, kind);
            self.push_event(&link.instance_id, event);
        }
    }

    /// Asks `instance_id` (and, if `recursive`, its running sub-orchestrations) to
    /// terminate: an `executionTerminated` for its next step, unless one is queued.
    pub(super) fn terminate_instance(
        &mut self,
        instance_id: &str,
        output: Option<String>,
        recursive: bool,
    ) {
        let mut visited = std::collections::HashSet::new();
        let mut stack = vec![instance_id.to_owned()];
        while let Some(id) = stack.pop() {
            if !visited.insert(id.clone()) {
                continue;
            }
            let Some(instance) = self.instances.get(&id) else {
                continue;
            };
            if instance.is_terminal() {
                continue;
            }
            if !instance.pending.iter().any(is_terminated) {
                let terminated = self.event(
                    -1,
                    EventType::ExecutionTerminated(proto::ExecutionTerminatedEvent {
                        input: output.clone(),
                        recurse: recursive,
                    }),
                );
                self.push_event(&id, terminated);
            }
            if recursive {
                let children = self.instances.iter().filter(|(child, instance)| {
                    instance
                        .parent
                        .as_ref()
                        .is_some_and(|link| link.instance_id == id)
                        && !visited.contains(*child)
                });
                stack.extend(children.map(|(child, _)| child.clone()).collect::<Vec<_>>());
            }
        }
    }
}
