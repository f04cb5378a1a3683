//! What an activity knows about the call that started it.

/// Passed to every activity: which orchestration called it, and as which task.
#[derive(Debug, Clone)]
pub struct ActivityContext {
    instance_id: String,
    task_id: i32,
    name: String,
}

impl ActivityContext {
    pub(crate) fn new(instance_id: String, task_id: i32, name: String) -> Self {
        Self {
            instance_id,
            task_id,
            name,
        }
    }

    /// The instance id of the orchestration that scheduled this activity.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The task id (the orchestrator's action id) of this activity call.
    pub fn task_id(&self) -> i32 {
        self.task_id
    }

    /// The activity's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
