//! Which generation ran each orchestration that no generation of its own version serves
//! (most often: orchestrations started without a version).
//!
//! Such an orchestration would otherwise replay on whatever generation is newest, so a
//! new version dropped in mid-run would take over orchestrations that started on the old
//! code. Remembering the generation that ran an orchestration keeps it on that code until
//! it completes or continues as new (a new execution starts on the newest code, which is
//! how eternal orchestrations upgrade).
//!
//! The memory is this process's: after a restart such orchestrations replay on the newest
//! generation. Orchestrations started with a version do not need it (they go to the
//! generation of their version), which is why deployments that must survive restarts
//! mid-upgrade should start orchestrations with a version (`[versioning]
//! default_version`, or the client's `--version`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How many orchestrations are remembered at most; beyond it the entries unused longest
/// go first (an orchestration purged or terminated elsewhere never reports its end here).
const CAPACITY: usize = 200_000;

/// Instance id → the build (content hash) of the generation that ran it.
#[derive(Debug, Default)]
pub(crate) struct StickyRoutes {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Instance id → (build, when it was remembered).
    builds: HashMap<String, (String, u64)>,
    /// Instance ids in the order they were remembered, for eviction. Entries of
    /// forgotten instances stay until compaction: forgetting is then O(1).
    order: VecDeque<(String, u64)>,
    next: u64,
}

impl Inner {
    fn is_live(&self, (instance_id, seq): &(String, u64)) -> bool {
        self.builds
            .get(instance_id)
            .is_some_and(|(_, at)| at == seq)
    }

    /// Drops stale entries from `order` once they outnumber the live ones, and the
    /// oldest live ones beyond [`CAPACITY`].
    fn trim(&mut self) {
        if self.order.len() > 2 * self.builds.len() + 1024 {
            let order = std::mem::take(&mut self.order);
            self.order = order
                .into_iter()
                .filter(|entry| self.is_live(entry))
                .collect();
        }
        while self.builds.len() > CAPACITY {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.is_live(&oldest) {
                self.builds.remove(&oldest.0);
            }
        }
    }
}

impl StickyRoutes {
    /// The build that ran `instance_id` before, if remembered.
    pub(crate) fn get(&self, instance_id: &str) -> Option<String> {
        self.lock()
            .builds
            .get(instance_id)
            .map(|(build, _)| build.clone())
    }

    /// Remembers that `build` runs `instance_id`, as its most recent use: the entries
    /// evicted first (beyond [`CAPACITY`]) are those unused longest, not the orchestrations
    /// still replaying.
    pub(crate) fn remember(&self, instance_id: &str, build: &str) {
        let mut inner = self.lock();
        let seq = inner.next;
        inner.next += 1;
        match inner.builds.get_mut(instance_id) {
            Some((current, at)) => {
                if current != build {
                    build.clone_into(current);
                }
                // The old place in `order` goes stale; compaction drops it.
                *at = seq;
            }
            None => {
                inner
                    .builds
                    .insert(instance_id.to_owned(), (build.to_owned(), seq));
            }
        }
        inner.order.push_back((instance_id.to_owned(), seq));
        inner.trim();
    }

    /// Forgets `instance_id`: it completed, failed or continued as new.
    pub(crate) fn forget(&self, instance_id: &str) {
        let mut inner = self.lock();
        if inner.builds.remove(instance_id).is_some() {
            inner.trim();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent whatever panicked while holding it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_forgotten() {
        let routes = StickyRoutes::default();
        assert_eq!(routes.get("a"), None);
        routes.remember("a", "build1");
        routes.remember("a", "build2");
        assert_eq!(routes.get("a").as_deref(), Some("build2"));
        routes.forget("a");
        assert_eq!(routes.get("a"), None);
    }

    #[test]
    fn forgotten_entries_are_compacted_and_capacity_is_kept() {
        let routes = StickyRoutes::default();
        for i in 0..10_000 {
            let id = format!("i{i}");
            routes.remember(&id, "b");
            routes.forget(&id);
        }
        assert!(routes.lock().order.len() <= 1024 + 1);
        for i in 0..CAPACITY + 10 {
            routes.remember(&format!("j{i}"), "b");
        }
        let inner = routes.lock();
        assert_eq!(inner.builds.len(), CAPACITY);
        assert!(!inner.builds.contains_key("j0"));
        assert!(inner.builds.contains_key(&format!("j{}", CAPACITY + 9)));
    }
}

#[cfg(test)]
mod eviction_tests {
    use super::*;

    /// Eviction is by first-remembered, not by last use: `remember` of an instance already
    /// known returns without moving it, so the longest-running orchestration, still
    /// replaying, is the first forgotten once CAPACITY entries accumulate (instances
    /// finished on another worker or purged never report their end here). Its next replay
    /// then goes to the newest generation, not the code it started on.
    #[test]
    fn an_orchestration_still_running_is_not_the_first_forgotten() {
        let routes = StickyRoutes::default();
        routes.remember("long-running", "v1-build");
        for i in 0..CAPACITY {
            routes.remember(&format!("other-{i}"), "v1-build");
            if i % 1000 == 0 {
                // Each of its steps remembers it again.
                routes.remember("long-running", "v1-build");
            }
        }
        assert_eq!(routes.get("long-running").as_deref(), Some("v1-build"));
    }
}
