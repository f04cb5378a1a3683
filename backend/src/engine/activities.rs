//! Activities: scheduled by orchestrations, run by workers, their results delivered back
//! as `taskCompleted` / `taskFailed`.

use durabletask_proto::history_event::EventType;
use durabletask_proto::*;

use super::events;
use super::hub::Hub;
use super::state::activities::Activity;
use super::state::dispatch::LeaseTarget;
use crate::records::ActivityRecord;

impl Hub {
    /// Queues an activity for `instance_id` (action `task_id`).
    pub(super) fn schedule_activity(
        &mut self,
        instance_id: &str,
        task_id: i32,
        task: ScheduleTaskAction,
    ) {
        let Some(instance) = self.instances.get(instance_id) else {
            return;
        };
        let record = ActivityRecord {
            instance_id: instance_id.to_owned(),
            generation: instance.record.generation,
            task_id,
            name: task.name,
            version: task.version,
            input: task.input,
            tags: task.tags,
            trace_context: task.parent_trace_context,
            execution_id: instance.record.execution_id.clone(),
        };
        let id = self.activities.insert(record);
        let previous = self
            .instances
            .get_mut_unsaved(instance_id)
            .and_then(|instance| instance.activities.insert(task_id, id));
        if let Some(previous) = previous {
            // The same task id scheduled again (a retry reuses it): the new one wins.
            self.remove_activity(previous);
        }
        self.queue_activity(id);
    }

    /// Forgets an activity (ending its lease, if a worker has it).
    pub(super) fn remove_activity(&mut self, id: u64) -> Option<Activity> {
        let activity = self.activities.remove(id)?;
        self.dispatch.ready.activities.remove(&id);
        if let Some(token) = &activity.lease {
            self.dispatch.end_lease(token);
        }
        Some(activity)
    }

    /// `CompleteActivityTask`. The activity is found by its token's live lease, or else
    /// (the lease is gone: the stream closed, or the backend restarted) by instance and
    /// task id, but only if the token names the instance's current execution and the
    /// activity outstanding under that task id belongs to it: task ids start again with
    /// every execution, so a late result from an earlier one must not be taken for the
    /// new one's. A result for an activity that is no longer outstanding (a duplicate, or
    /// from an execution that has ended) is ignored.
    pub fn complete_activity(&mut self, response: ActivityResponse) {
        let by_token = match self.dispatch.lease_target(&response.completion_token) {
            Some(LeaseTarget::Activity(id)) => Some(*id),
            _ => None,
        };
        let id = by_token.or_else(|| self.activity_of_current_execution(&response));
        let Some(activity) = id.and_then(|id| self.remove_activity(id)) else {
            tracing::debug!(
                hub = %self.name,
                instance_id = %response.instance_id,
                task_id = response.task_id,
                "ignoring the result of an activity that is not outstanding"
            );
            return;
        };
        let record = activity.record;
        let Some(instance) = self.instances.get_mut_unsaved(&record.instance_id) else {
            return;
        };
        if instance.record.generation != record.generation || instance.is_terminal() {
            return;
        }
        if instance.activities.get(&record.task_id) == id.as_ref() {
            instance.activities.remove(&record.task_id);
        }
        // A failure is a failure whenever details are present, even with an empty
        // message (the reference backend records those as successes).
        let event_type = match response.failure_details {
            Some(details) => EventType::TaskFailed(TaskFailedEvent {
                task_scheduled_id: record.task_id,
                failure_details: Some(details),
            }),
            None => EventType::TaskCompleted(TaskCompletedEvent {
                task_scheduled_id: record.task_id,
                result: response.result,
            }),
        };
        self.push_event(&record.instance_id, events::event(-1, event_type));
    }

    /// The outstanding activity `(instanceId, taskId)` of `response`, if the execution
    /// its token names is the instance's current one.
    fn activity_of_current_execution(&self, response: &ActivityResponse) -> Option<u64> {
        let named = self.dispatch.mint().activity_execution(
            &self.name,
            &response.completion_token,
            &response.instance_id,
            response.task_id,
        );
        let Some(named) = named else {
            tracing::debug!(
                hub = %self.name,
                instance_id = %response.instance_id,
                task_id = response.task_id,
                "dropping an activity result whose token is not a lease nor one this backend made for that activity"
            );
            return None;
        };
        let instance = self.instances.get(&response.instance_id)?;
        if instance.record.execution_id != named {
            tracing::debug!(
                hub = %self.name,
                instance_id = %response.instance_id,
                task_id = response.task_id,
                execution_id = named,
                current_execution_id = %instance.record.execution_id,
                "dropping a late activity result from an earlier execution"
            );
            return None;
        }
        let id = *instance.activities.get(&response.task_id)?;
        let activity = self.activities.get(id)?;
        // Handed out again: the result belongs to the worker that has it now.
        if activity.lease.is_some() {
            return None;
        }
        (activity.record.execution_id == named
            && activity.record.generation == instance.record.generation)
            .then_some(id)
    }

    /// `AbandonTaskActivityWorkItem`: the activity is redelivered.
    pub fn abandon_activity(&mut self, token: &str) {
        if matches!(
            self.dispatch.lease_target(token),
            Some(LeaseTarget::Activity(_))
        ) {
            self.release(token, false);
        } else {
            tracing::debug!(hub = %self.name, token, "abandon of an unknown activity lease ignored");
        }
    }
}
