//! Names plugin code that holds up the event loop *while* it does so.
//!
//! Orchestration steps, entity batches and an activity's first poll run on the event loop
//! (see `executor`). One that blocks stops every other work item, and the loop cannot say
//! so itself until the call returns, which may be never. So each such call is announced
//! here, and a thread of its own logs a call still running past [`STILL_RUNNING`] (plugin,
//! what it runs, instance, elapsed), then again each time the elapsed time doubles.
//!
//! Cheap on the hot path: announcing a call stores it under an uncontended lock; the
//! thread is only woken when it was asleep, and it sleeps (no timer, no CPU) once a check
//! finds no call started since the last one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A call on the loop running longer than this is reported while it runs.
pub const STILL_RUNNING: Duration = Duration::from_secs(1);

/// How often the thread looks while calls are being made.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// What is running.
#[derive(Clone, Debug)]
pub struct Call {
    /// `<plugin> <version>`.
    pub plugin: String,
    /// "orchestration step", "entity batch", "activity (first poll)".
    pub kind: &'static str,
    /// The orchestrator, entity or activity name.
    pub name: String,
    pub instance_id: String,
}

struct Running {
    call: Call,
    started: Instant,
    /// Which call this is, so a report is not repeated for a later one.
    serial: u64,
}

#[derive(Default)]
struct Shared {
    running: Mutex<Option<Running>>,
    /// Calls announced so far.
    serial: AtomicU64,
    /// The thread waits for a call (no timeout): the next announcement must wake it.
    asleep: AtomicBool,
    wake: Condvar,
    /// Set when the watchdog is dropped: the thread ends.
    stop: AtomicBool,
}

/// The watchdog; dropping it ends its thread.
pub struct Watchdog {
    shared: Arc<Shared>,
}

impl Watchdog {
    /// Starts the thread (named `plugin-watchdog`). If it cannot start, calls are not
    /// watched, which is logged once.
    pub fn start(threshold: Duration) -> Watchdog {
        let shared = Arc::new(Shared::default());
        let watched = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name("plugin-watchdog".into())
            .spawn(move || watch(&watched, threshold, report));
        if let Err(error) = started {
            tracing::warn!(%error, "could not start the plugin watchdog; calls that block the event loop are reported only when they end");
        }
        Watchdog { shared }
    }

    /// Announces a call about to run on the loop; it is over when the guard is dropped.
    pub fn enter(&self, call: Call) -> CallGuard<'_> {
        let serial = self.shared.serial.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&self.shared.running) = Some(Running {
            call,
            started: Instant::now(),
            serial,
        });
        if self.shared.asleep.swap(false, Ordering::AcqRel) {
            self.shared.wake.notify_one();
        }
        CallGuard {
            watchdog: self,
            serial,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Under the lock, so the thread is either waiting (and is woken) or will see
        // `stop` before it waits.
        let _running = lock(&self.shared.running);
        self.shared.wake.notify_one();
    }
}

/// Marks the end of a call announced with [`Watchdog::enter`].
pub struct CallGuard<'a> {
    watchdog: &'a Watchdog,
    serial: u64,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.watchdog.shared.running);
        if running.as_ref().is_some_and(|r| r.serial == self.serial) {
            *running = None;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is one Option, consistent whatever panicked while holding it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The watchdog thread: looks every [`CHECK_INTERVAL`] while calls are made, reports a
/// call running past `threshold` and again at each doubling, and sleeps without a timer
/// once a look finds nothing new.
fn watch(shared: &Shared, threshold: Duration, report: impl Fn(&Call, Duration)) {
    // The call reported last, and when it is next due a report.
    let mut reported: Option<(u64, Duration)> = None;
    let mut seen_serial = 0;
    let mut running = lock(&shared.running);
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let serial = shared.serial.load(Ordering::Relaxed);
        let busy = running.is_some();
        if let Some(current) = running.as_ref() {
            let elapsed = current.started.elapsed();
            let due = match reported {
                Some((serial, next)) if serial == current.serial => next,
                _ => threshold,
            };
            if elapsed >= due {
                report(&current.call, elapsed);
                reported = Some((current.serial, due.saturating_mul(2)));
            }
        }
        if !busy && serial == seen_serial {
            // Nothing ran since the last look: sleep until a call is announced.
            shared.asleep.store(true, Ordering::Release);
            running = shared
                .wake
                .wait_while(running, |_| {
                    shared.asleep.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire)
                })
                .unwrap_or_else(PoisonError::into_inner);
        } else {
            seen_serial = serial;
            running = match shared.wake.wait_timeout(running, CHECK_INTERVAL) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

fn report(call: &Call, elapsed: Duration) {
    tracing::warn!(
        plugin = call.plugin,
        instance_id = call.instance_id,
        elapsed_ms = elapsed.as_millis() as u64,
        "{} '{}' has been running for {:.1?} and holds up the worker loop: every other work item waits for it (plugin code that runs on the loop must not block)",
        call.kind,
        call.name,
        elapsed
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::mpsc;

    fn call(name: &str) -> Call {
        Call {
            plugin: "p 1.0.0".into(),
            kind: "orchestration step",
            name: name.into(),
            instance_id: "i".into(),
        }
    }

    /// A watchdog whose reports go to a channel instead of the log.
    fn watched(threshold: Duration) -> (Watchdog, mpsc::Receiver<(String, Duration)>) {
        let shared = Arc::new(Shared::default());
        let (sender, reports) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            watch(&thread_shared, threshold, |call, elapsed| {
                let _ = sender.send((call.name.clone(), elapsed));
            })
        });
        (Watchdog { shared }, reports)
    }

    #[test]
    fn a_call_is_reported_while_it_still_runs_and_again_as_it_goes_on() {
        let (watchdog, reports) = watched(Duration::from_millis(50));
        let guard = watchdog.enter(call("blocks"));
        let (name, elapsed) = reports.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(name, "blocks");
        assert!(elapsed >= Duration::from_millis(50));
        // Still running: reported again once the elapsed time has doubled.
        let (_, again) = reports.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(again >= Duration::from_millis(100), "{again:?}");
        drop(guard);
    }

    #[test]
    fn quick_calls_are_never_reported() {
        let (watchdog, reports) = watched(Duration::from_millis(200));
        for _ in 0..1000 {
            drop(watchdog.enter(call("quick")));
        }
        // Longer than a check interval and the threshold together.
        assert!(reports.recv_timeout(Duration::from_millis(600)).is_err());
        // And the thread goes back to sleep, then wakes for the next slow call.
        std::thread::sleep(CHECK_INTERVAL * 2);
        assert!(watchdog.shared.asleep.load(Ordering::Acquire));
        let _slow = watchdog.enter(call("slow"));
        let (name, _) = reports.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(name, "slow");
    }
}
