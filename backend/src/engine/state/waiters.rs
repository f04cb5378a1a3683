//! Callers of `WaitForInstanceStart` / `WaitForInstanceCompletion` held until their
//! instance gets there, and the instances whose status may have changed in this batch.

use std::collections::{HashMap, HashSet};

use durabletask_proto::*;
use tokio::sync::oneshot;
use tonic::Status;

use crate::engine::events;

/// What a waiter waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitUntil {
    /// Any status but PENDING.
    Started,
    /// A terminal status.
    Completed,
}

impl WaitUntil {
    pub fn satisfied_by(self, status: i32) -> bool {
        match self {
            WaitUntil::Started => status != OrchestrationStatus::Pending as i32,
            WaitUntil::Completed => events::is_terminal(status),
        }
    }
}

pub type WaitReply = oneshot::Sender<Result<GetInstanceResponse, Status>>;

pub struct Waiter {
    pub until: WaitUntil,
    pub include_payloads: bool,
    pub reply: WaitReply,
}

#[derive(Default)]
pub struct Waiters {
    waiting: HashMap<String, Vec<Waiter>>,
    /// Instances whose status may have changed since the waiters were last answered.
    changed: HashSet<String>,
}

impl Waiters {
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.changed.is_empty()
    }

    pub fn add(&mut self, id: String, waiter: Waiter) {
        self.waiting.entry(id).or_default().push(waiter);
    }

    /// `id`'s status may have changed: its waiters are checked after the batch is saved.
    pub fn changed(&mut self, id: &str) {
        if !self.changed.contains(id) {
            self.changed.insert(id.to_owned());
        }
    }

    /// Every waited-for instance is checked again (after a reload).
    pub fn recheck_all(&mut self) {
        let ids: Vec<String> = self.waiting.keys().cloned().collect();
        self.changed.extend(ids);
    }

    /// The changed instances that have waiters, with their waiters (taken: the caller
    /// answers them or gives them back with [`Waiters::restore`]).
    pub fn take_changed(&mut self) -> Vec<(String, Vec<Waiter>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|id| {
                let waiters = self.waiting.remove(&id)?;
                Some((id, waiters))
            })
            .collect()
    }

    /// Gives back the waiters still waiting.
    pub fn restore(&mut self, id: String, waiters: Vec<Waiter>) {
        if !waiters.is_empty() {
            self.waiting.entry(id).or_default().extend(waiters);
        }
    }

    /// Drops waiters whose callers have gone (deadline passed, client disconnected).
    pub fn sweep(&mut self) {
        self.waiting.retain(|_, waiters| {
            waiters.retain(|waiter| !waiter.reply.is_closed());
            !waiters.is_empty()
        });
    }

    /// Answers every waiter with `status` (the backend stops, the hub was deleted).
    pub fn fail_all(&mut self, status: &Status) {
        for (_, waiters) in self.waiting.drain() {
            for waiter in waiters {
                let _ = waiter.reply.send(Err(status.clone()));
            }
        }
        self.changed.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn waiter(
        until: WaitUntil,
    ) -> (
        Waiter,
        oneshot::Receiver<Result<GetInstanceResponse, Status>>,
    ) {
        let (reply, receiver) = oneshot::channel();
        (
            Waiter {
                until,
                include_payloads: false,
                reply,
            },
            receiver,
        )
    }

    #[test]
    fn only_changed_instances_with_waiters_are_handed_back() {
        let mut waiters = Waiters::default();
        let (first, _keep) = waiter(WaitUntil::Completed);
        waiters.add("a".into(), first);
        waiters.changed("a");
        waiters.changed("b");
        let taken = waiters.take_changed();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, "a");
        assert!(waiters.take_changed().is_empty(), "changes are taken once");
        for (id, list) in taken {
            waiters.restore(id, list);
        }
        waiters.recheck_all();
        assert_eq!(waiters.take_changed().len(), 1);
    }

    #[test]
    fn callers_that_went_away_are_swept_and_the_rest_told_on_shutdown() {
        let mut waiters = Waiters::default();
        let (gone, receiver) = waiter(WaitUntil::Started);
        drop(receiver);
        let (kept, mut kept_receiver) = waiter(WaitUntil::Started);
        waiters.add("a".into(), gone);
        waiters.add("b".into(), kept);
        waiters.sweep();
        assert!(!waiters.is_empty());
        waiters.fail_all(&Status::unavailable("stopping"));
        assert!(waiters.is_empty());
        assert_eq!(
            kept_receiver.try_recv().unwrap().unwrap_err().code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn started_and_completed_mean_what_clients_expect() {
        assert!(!WaitUntil::Started.satisfied_by(OrchestrationStatus::Pending as i32));
        assert!(WaitUntil::Started.satisfied_by(OrchestrationStatus::Running as i32));
        assert!(!WaitUntil::Completed.satisfied_by(OrchestrationStatus::Running as i32));
        assert!(WaitUntil::Completed.satisfied_by(OrchestrationStatus::Terminated as i32));
    }
}
