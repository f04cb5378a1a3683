//! Activity permits: how many activities run at once, host-wide and per plugin
//! generation.
//!
//! An activity that never finishes keeps its permit for as long as it hangs. With only a
//! host-wide limit, `max_concurrent_activities` hung activities of one plugin would stop
//! every activity of every plugin. So each plugin generation also has a limit of its own,
//! below the host's (`max_concurrent_activities_per_plugin`): an activity first waits for
//! a permit of its plugin and only then for one of the host, so an activity waiting on a
//! saturated plugin holds nothing the other plugins need. It waits in its own task, and
//! the session only waits for a free host permit before reading on, so the stream is not
//! held up either.
//!
//! Activities waiting for their plugin are bounded as well: at most
//! `max_concurrent_activities` wait at once (the waiting room), and the session does not
//! read the next work item while the room is full. A backend that honours our
//! `maxConcurrentActivityWorkItems` never sends that many; one that ignores it (the
//! reference backend) is then held back by HTTP/2 flow control, as it is when every host
//! permit is taken, instead of filling our memory with the work items of a plugin that
//! hangs.
//!
//! A backend that honours that limit counts waiting activities against it too, so a
//! plugin that hangs with a backlog would still take every activity the backend hands
//! out. An activity may therefore be told to wait with *patience*: when its plugin's
//! permits stayed all taken, none given back, for that long, the plugin is stalled and the
//! caller gets [`NoPermit::Stalled`], to hand the work item back to the backend for later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::executor::ActivityOwner;

/// The activity permits of one worker.
pub struct ActivityPermits {
    inner: Arc<Inner>,
}

struct Inner {
    /// Running activities, all plugins together.
    host: Arc<Semaphore>,
    /// Places for activities waiting for a permit of their plugin.
    waiting: Arc<Semaphore>,
    /// Each plugin generation's limit.
    per_plugin: usize,
    /// By [`ActivityOwner::key`]; an entry lives while an activity holds or waits for one
    /// of its permits, so generations long retired leave nothing behind.
    plugins: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    permits: Arc<Semaphore>,
    /// Whether the generation's permits were all taken when an activity last asked, so
    /// that a saturated generation is logged once, not once per activity.
    saturated: Arc<AtomicBool>,
    /// How many of its permits were given back so far: a waiting activity that sees no
    /// change for its whole patience knows the generation is stalled.
    released: Arc<AtomicU64>,
    /// Activities holding or waiting for one of its permits.
    users: usize,
}

/// Why [`ActivityPermits::acquire`] gave no permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPermit {
    /// The plugin's permits stayed all taken, none given back, for the whole patience.
    Stalled,
    /// The permits were closed (never happens: nothing closes them).
    Closed,
}

/// Permission to run one activity; dropping it gives the permits back.
#[derive(Debug)]
pub struct ActivityPermit {
    _host: OwnedSemaphorePermit,
    _plugin: Option<PluginPermit>,
}

impl ActivityPermits {
    /// `total` activities at once, at most `per_plugin` of them of one plugin generation.
    pub fn new(total: u32, per_plugin: u32) -> Self {
        let count = |limit: u32| usize::try_from(limit).unwrap_or(usize::MAX);
        Self {
            inner: Arc::new(Inner {
                host: Arc::new(Semaphore::new(count(total))),
                waiting: Arc::new(Semaphore::new(count(total))),
                per_plugin: count(per_plugin),
                plugins: Mutex::default(),
            }),
        }
    }

    /// Waits until one more activity could be taken without growing the host's memory
    /// past its bound: a host permit is free and there is room to wait for a plugin's
    /// permit. The session calls it after dispatching an activity, before reading the next
    /// work item.
    pub async fn wait_for_capacity(&self) {
        // Both semaphores are fair: this waits behind every activity already queued, and
        // gives each place straight back.
        drop(self.inner.host.acquire().await);
        drop(self.inner.waiting.acquire().await);
    }

    /// Waits for the permits to run one activity: one of its plugin generation (`None`:
    /// no plugin serves it, and the host answers it itself), then one of the host. With
    /// `patience`, gives up when the plugin is stalled (see the module's comment); time
    /// spent waiting for a host permit never counts, as the host being busy says nothing
    /// about the plugin.
    pub async fn acquire(
        &self,
        owner: Option<&ActivityOwner>,
        patience: Option<Duration>,
    ) -> Result<ActivityPermit, NoPermit> {
        let plugin = match owner {
            Some(owner) => Some(self.plugin_permit(owner, patience).await?),
            None => None,
        };
        let host = Arc::clone(&self.inner.host)
            .acquire_owned()
            .await
            .map_err(|_| NoPermit::Closed)?;
        Ok(ActivityPermit {
            _host: host,
            _plugin: plugin,
        })
    }

    async fn plugin_permit(
        &self,
        owner: &ActivityOwner,
        patience: Option<Duration>,
    ) -> Result<PluginPermit, NoPermit> {
        let user = self.inner.user(&owner.key);
        match Arc::clone(&user.permits).try_acquire_owned() {
            Ok(permit) => {
                user.saturated.store(false, Ordering::Relaxed);
                return Ok(PluginPermit {
                    permit: Some(permit),
                    user,
                });
            }
            Err(TryAcquireError::Closed) => return Err(NoPermit::Closed),
            Err(TryAcquireError::NoPermits) => {}
        }
        if !user.saturated.swap(true, Ordering::Relaxed) {
            tracing::info!(
                plugin = %owner.label,
                permits = self.inner.per_plugin,
                "plugin {} has all its activity permits taken ([worker] max_concurrent_activities_per_plugin = {}); its further activities wait, other plugins' activities do not",
                owner.label,
                self.inner.per_plugin
            );
        }
        let place = Arc::clone(&self.inner.waiting)
            .acquire_owned()
            .await
            .map_err(|_| NoPermit::Closed)?;
        // One acquire for the whole wait, so the activity keeps its place in the queue.
        let acquire = Arc::clone(&user.permits).acquire_owned();
        tokio::pin!(acquire);
        let permit = loop {
            let Some(patience) = patience else {
                break acquire.await;
            };
            let released = user.released.load(Ordering::Relaxed);
            tokio::select! {
                permit = &mut acquire => break permit,
                () = tokio::time::sleep(patience) => {
                    if user.released.load(Ordering::Relaxed) == released {
                        return Err(NoPermit::Stalled);
                    }
                }
            }
        }
        .map_err(|_| NoPermit::Closed)?;
        drop(place);
        Ok(PluginPermit {
            permit: Some(permit),
            user,
        })
    }

    /// How many plugin generations have activities holding or waiting for a permit.
    #[cfg(test)]
    fn tracked_plugins(&self) -> usize {
        self.inner.lock().len()
    }
}

impl Inner {
    /// Registers one more activity of the generation `key`.
    fn user(self: &Arc<Self>, key: &str) -> PluginUser {
        let mut plugins = self.lock();
        let entry = plugins.entry(key.to_owned()).or_insert_with(|| Entry {
            permits: Arc::new(Semaphore::new(self.per_plugin)),
            saturated: Arc::default(),
            released: Arc::default(),
            users: 0,
        });
        entry.users += 1;
        PluginUser {
            inner: Arc::clone(self),
            key: key.to_owned(),
            permits: Arc::clone(&entry.permits),
            saturated: Arc::clone(&entry.saturated),
            released: Arc::clone(&entry.released),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Every change to the map is a single insert, count or remove: a panic elsewhere
        // cannot leave it half-done.
        self.plugins.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One activity's hold on its generation's entry, from its first wait to its end.
struct PluginUser {
    inner: Arc<Inner>,
    key: String,
    permits: Arc<Semaphore>,
    saturated: Arc<AtomicBool>,
    released: Arc<AtomicU64>,
}

impl Drop for PluginUser {
    fn drop(&mut self) {
        let mut plugins = self.inner.lock();
        if let Some(entry) = plugins.get_mut(&self.key) {
            entry.users = entry.users.saturating_sub(1);
            if entry.users == 0 {
                plugins.remove(&self.key);
            }
        }
    }
}

impl std::fmt::Debug for PluginUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PluginUser").field(&self.key).finish()
    }
}

/// A permit of one plugin generation.
#[derive(Debug)]
struct PluginPermit {
    /// Always `Some` until dropped.
    permit: Option<OwnedSemaphorePermit>,
    user: PluginUser,
}

impl Drop for PluginPermit {
    fn drop(&mut self) {
        // Counted before the permit is free, so a waiter that wakes for it sees progress.
        self.user.released.fetch_add(1, Ordering::Relaxed);
        drop(self.permit.take());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;

    fn owner(key: &str) -> ActivityOwner {
        ActivityOwner {
            key: key.to_owned(),
            label: format!("{key} 1.0.0"),
        }
    }

    /// Whether `future` is still pending after everything runnable has run.
    async fn pending<F: std::future::Future>(future: F) -> bool {
        tokio::time::timeout(Duration::from_millis(20), future)
            .await
            .is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn a_saturated_plugin_does_not_hold_up_another() {
        let permits = ActivityPermits::new(4, 2);
        let hung = [
            permits.acquire(Some(&owner("a")), None).await.unwrap(),
            permits.acquire(Some(&owner("a")), None).await.unwrap(),
        ];
        assert!(pending(permits.acquire(Some(&owner("a")), None)).await);
        // Two host permits are left, and they are for the others.
        let b = permits.acquire(Some(&owner("b")), None).await.unwrap();
        let unregistered = permits.acquire(None, None).await.unwrap();
        assert!(pending(permits.acquire(Some(&owner("c")), None)).await);
        drop((b, unregistered));
        permits.acquire(Some(&owner("c")), None).await.unwrap();
        drop(hung);
    }

    #[tokio::test(start_paused = true)]
    async fn the_host_limit_bounds_every_plugin_together() {
        let permits = ActivityPermits::new(3, 2);
        let _held = [
            permits.acquire(Some(&owner("a")), None).await.unwrap(),
            permits.acquire(Some(&owner("b")), None).await.unwrap(),
            permits.acquire(Some(&owner("c")), None).await.unwrap(),
        ];
        assert!(pending(permits.acquire(Some(&owner("d")), None)).await);
        assert!(pending(permits.acquire(None, None)).await);
        assert!(pending(permits.wait_for_capacity()).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_plugin_permit_goes_to_the_next_activity_of_that_plugin() {
        let permits = Arc::new(ActivityPermits::new(4, 1));
        let first = permits.acquire(Some(&owner("a")), None).await.unwrap();
        let waiter = {
            let permits = Arc::clone(&permits);
            tokio::spawn(async move { permits.acquire(Some(&owner("a")), None).await.is_ok() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_waiting_room_is_bounded_and_holding_no_host_permit() {
        let permits = Arc::new(ActivityPermits::new(2, 1));
        let _hung = permits.acquire(Some(&owner("a")), None).await.unwrap();
        // The session may read on: a host permit is free and the room is empty.
        assert!(!pending(permits.wait_for_capacity()).await);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let permits = Arc::clone(&permits);
                tokio::spawn(async move { drop(permits.acquire(Some(&owner("a")), None).await) })
            })
            .collect();
        tokio::task::yield_now().await;
        // Both places of the room are taken: the session must not read on...
        assert!(pending(permits.wait_for_capacity()).await);
        // ...yet the waiters hold no host permit: another plugin still runs.
        drop(permits.acquire(Some(&owner("b")), None).await.unwrap());
        for waiter in waiters {
            waiter.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_generation_is_forgotten_once_nothing_holds_or_waits_for_its_permits() {
        let permits = Arc::new(ActivityPermits::new(4, 1));
        let held = permits.acquire(Some(&owner("a")), None).await.unwrap();
        let waiter = {
            let permits = Arc::clone(&permits);
            tokio::spawn(async move { drop(permits.acquire(Some(&owner("a")), None).await) })
        };
        tokio::task::yield_now().await;
        assert_eq!(permits.tracked_plugins(), 1);
        drop(held);
        waiter.await.unwrap();
        assert_eq!(permits.tracked_plugins(), 0);

        // A waiter given up (its task aborted) lets go too.
        let held = permits.acquire(Some(&owner("b")), None).await.unwrap();
        let waiter = {
            let permits = Arc::clone(&permits);
            tokio::spawn(async move { drop(permits.acquire(Some(&owner("b")), None).await) })
        };
        tokio::task::yield_now().await;
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert_eq!(permits.tracked_plugins(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_activity_with_patience_gives_up_on_a_stalled_plugin_only() {
        let permits = Arc::new(ActivityPermits::new(4, 1));
        let held = permits.acquire(Some(&owner("a")), None).await.unwrap();
        let patient = Some(Duration::from_secs(1));
        let started = tokio::time::Instant::now();
        let first = {
            let permits = Arc::clone(&permits);
            tokio::spawn(async move { permits.acquire(Some(&owner("a")), None).await })
        };
        tokio::task::yield_now().await;
        let second = {
            let permits = Arc::clone(&permits);
            tokio::spawn(async move { permits.acquire(Some(&owner("a")), patient).await.map(drop) })
        };
        // A permit given back within the patience is progress: the second waits on...
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(held);
        let first = first.await.unwrap().unwrap();
        // ...until a whole second passes with nothing given back.
        assert_eq!(second.await.unwrap(), Err(NoPermit::Stalled));
        assert!(started.elapsed() >= Duration::from_secs(2));
        drop(first);
        // Busy is not stalled: with the plugin's permit free, patience never runs out.
        let _held = permits.acquire(Some(&owner("a")), patient).await.unwrap();
        assert_eq!(permits.tracked_plugins(), 1);
    }
}
