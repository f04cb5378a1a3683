//! Bookkeeping of accepted work items that have not finished yet.
//!
//! Every work item taken off the stream runs in its own task, registered here until the
//! task ends (completed, failed to complete, or aborted). On shutdown this is what the
//! drain waits on, and what it abandons or reports when the drain timeout passes: the
//! registry keeps each item's kind, instance id and completion token for that purpose.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::telemetry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkKind {
    Orchestration,
    Activity,
    Entity,
}

/// An accepted work item whose task has not ended.
#[derive(Debug)]
pub struct Unfinished {
    pub kind: WorkKind,
    pub instance_id: String,
    /// The activity's task id; `None` for other kinds.
    pub task_id: Option<i32>,
    /// The activity's name; `None` for other kinds.
    pub name: Option<String>,
    pub completion_token: String,
    received: Instant,
    abort: Option<AbortHandle>,
}

impl Unfinished {
    pub fn new(
        kind: WorkKind,
        instance_id: String,
        task_id: Option<i32>,
        completion_token: String,
    ) -> Self {
        Self {
            kind,
            instance_id,
            task_id,
            name: None,
            completion_token,
            received: Instant::now(),
            abort: None,
        }
    }

    /// Names the activity.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

/// What the status report says of one work item in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightItem {
    pub kind: WorkKind,
    pub instance_id: String,
    pub task_id: Option<i32>,
    pub name: Option<String>,
    /// Since the host received it (waiting for a permit included).
    pub age: Duration,
}

impl std::fmt::Display for InFlightItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = self.age.as_secs_f64();
        match (self.kind, &self.name, self.task_id) {
            (WorkKind::Activity, Some(name), Some(task_id)) => write!(
                f,
                "activity '{name}' (instance {}, task {task_id}), received {age:.1} s ago",
                self.instance_id
            ),
            (WorkKind::Entity, ..) => {
                write!(
                    f,
                    "entity batch of {}, received {age:.1} s ago",
                    self.instance_id
                )
            }
            _ => write!(
                f,
                "orchestration step of instance {}, received {age:.1} s ago",
                self.instance_id
            ),
        }
    }
}

#[derive(Default)]
pub struct InFlight {
    items: Mutex<HashMap<u64, Unfinished>>,
    next_id: AtomicU64,
    became_empty: Notify,
}

impl InFlight {
    /// Runs `work` in a new task, registered as `item` until the task ends.
    pub fn spawn<F>(self: &Arc<Self>, item: Unfinished, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let gauge = metrics::gauge!(
            telemetry::WORK_ITEMS_IN_FLIGHT,
            "kind" => telemetry::kind_label(item.kind)
        );
        gauge.increment(1.0);
        // Registered before the task exists, so a task that ends at once cannot leave a
        // stale entry behind (its deregistration always comes after this insert).
        self.lock().insert(id, item);
        let registration = Registration {
            registry: Arc::clone(self),
            id,
            gauge,
            _counted: crate::runtime::WorkInFlight::new(),
        };
        // Boxed once, here: a work item's future holds its request and the RPC that
        // completes it (kilobytes), and would otherwise be copied whole at each move on
        // its way into the task.
        let work = Box::pin(work);
        let task = tokio::spawn(async move {
            let _registration = registration;
            work.await;
        });
        if let Some(item) = self.lock().get_mut(&id) {
            item.abort = Some(task.abort_handle());
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every work item in flight now, the longest in flight first.
    pub fn snapshot(&self) -> Vec<InFlightItem> {
        let mut items: Vec<InFlightItem> = self
            .lock()
            .values()
            .map(|item| InFlightItem {
                kind: item.kind,
                instance_id: item.instance_id.clone(),
                task_id: item.task_id,
                name: item.name.clone(),
                age: item.received.elapsed(),
            })
            .collect();
        items.sort_by_key(|item| std::cmp::Reverse(item.age));
        items
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Resolves once no work item is in flight.
    pub async fn wait_until_empty(&self) {
        loop {
            let notified = self.became_empty.notified();
            tokio::pin!(notified);
            // Register interest before checking, so a wake-up between the check and the
            // await is not lost.
            notified.as_mut().enable();
            if self.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Aborts every remaining task and returns what they were working on.
    pub fn abort_all(&self) -> Vec<Unfinished> {
        let items: Vec<Unfinished> = self.lock().drain().map(|(_, item)| item).collect();
        for item in &items {
            if let Some(abort) = &item.abort {
                abort.abort();
            }
        }
        self.became_empty.notify_waiters();
        items
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Unfinished>> {
        // The map stays consistent even if a holder panicked: every operation on it is a
        // single insert or remove.
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes its item from the registry when the task ends, however it ends.
struct Registration {
    registry: Arc<InFlight>,
    id: u64,
    /// `durabletask_work_items_in_flight` of its kind, decremented when it ends.
    gauge: metrics::Gauge,
    /// Counted by the runtime, which batches wake-ups only while several items are in
    /// flight.
    _counted: crate::runtime::WorkInFlight,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
        let mut items = self.registry.lock();
        items.remove(&self.id);
        if items.is_empty() {
            drop(items);
            self.registry.became_empty.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item() -> Unfinished {
        Unfinished::new(WorkKind::Activity, "i".into(), Some(1), "t".into())
    }

    #[tokio::test]
    async fn finished_tasks_leave_the_registry() {
        let in_flight = Arc::new(InFlight::default());
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        in_flight.spawn(item(), async move {
            let _ = released.await;
        });
        in_flight.spawn(item(), async {});
        assert!(!in_flight.is_empty());
        let _ = release.send(());
        tokio::time::timeout(Duration::from_secs(5), in_flight.wait_until_empty())
            .await
            .unwrap_or_else(|_| panic!("registry never emptied"));
    }

    #[tokio::test]
    async fn the_snapshot_lists_what_is_in_flight_the_oldest_first() {
        let in_flight = Arc::new(InFlight::default());
        in_flight.spawn(item().named("hang_forever"), std::future::pending());
        in_flight.spawn(
            Unfinished::new(WorkKind::Entity, "@counter@k".into(), None, "t2".into()),
            std::future::pending(),
        );
        let snapshot = in_flight.snapshot();
        assert_eq!(snapshot.len(), 2);
        assert!(snapshot[0].age >= snapshot[1].age);
        let described: Vec<String> = snapshot.iter().map(ToString::to_string).collect();
        assert!(
            described[0].starts_with("activity 'hang_forever' (instance i, task 1), received "),
            "{described:?}"
        );
        assert!(
            described[1].starts_with("entity batch of @counter@k"),
            "{described:?}"
        );
        in_flight.abort_all();
    }

    #[tokio::test]
    async fn abort_all_returns_and_stops_stuck_items() {
        let in_flight = Arc::new(InFlight::default());
        in_flight.spawn(item(), std::future::pending());
        let unfinished = in_flight.abort_all();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].completion_token, "t");
        assert!(in_flight.is_empty());
    }
}
