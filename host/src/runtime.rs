//! The host's async runtime: one event-loop thread, parking at once when the worker's
//! backend is in process, with wake-up coalescing when it is across a socket.
//!
//! The worker is I/O-bound. Each work item is a message in and a call out, and over a
//! socket the kernel's share of that (a wake-up per message, a write per completion,
//! loopback delivery) outweighs everything the host does in user space.
//!
//! - One thread: a multi-thread runtime also paid for waking its other workers on every
//!   message (peer benchmark: 6.9 ms of CPU per orchestration, 4.5 ms on one thread).
//!   The embedded backend's engine has a thread of its own, so host and backend use both
//!   cores.
//! - [`Parking::Immediate`] for the embedded backend, whose engine the worker calls in
//!   process (`durabletask_backend::InProcessClient`): there is no socket to batch
//!   reads and writes for, and the engine batches by itself (it commits whatever arrived
//!   while it was committing the last batch). A pause would only add its length to every
//!   step: `embedded_bench`, one orchestration of 11 work items at a time, p50 1.3-1.4
//!   ms without it, 23.5 ms with it; under load 37-41k work items/s without, 32-37k with,
//!   at 10% less CPU per orchestration.
//! - [`Parking::CoalesceWhenBusy`] for a backend over gRPC: while work is streaming in,
//!   the loop waits a moment before it parks, so the messages that arrive meanwhile are
//!   handled in one wake-up and the completions they produce leave in one write. The
//!   backend is woken less often too, and gets faster. Peer benchmark (bench_seq_fan
//!   N=1000 K=5 F=10 against Microsoft's reference backend, `bench/peer_bench.py`): 1.1-1.2
//!   ms of host CPU per orchestration with the pause, 3.1-3.3 ms without.
//! - It pauses only when the pause can batch something: while at least
//!   [`MIN_WORK_IN_FLIGHT_TO_PAUSE`] work items are in flight ([`WorkInFlight`]). An idle
//!   host parks at once, so the first message after a quiet spell is not delayed, and so
//!   does a host running one sequential orchestration at a time (it has at most two work
//!   items in flight: a step whose completion is being acknowledged and the work item
//!   that step caused; a fan-out, or slow activities alongside, count as several). Same benchmark, one orchestration of 11 work items at a time: p50 6.2-6.8
//!   ms with this rule, 24 ms when any busy loop paused, at the same CPU (1.2-1.4 ms per
//!   orchestration), and the same CPU as before under load. The rule replaced an
//!   exception for calls into plugin processes (no pause while one was in flight, since
//!   its answer comes within microseconds): under load some call nearly always is, so
//!   isolated plugins lost the batching (3.7 ms of CPU per orchestration with the
//!   exception, 3.0 without; latency one at a time the same).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the loop waits before parking while busy. Also the most latency it adds to
/// a message that arrives while it waits.
const COALESCE_PAUSE: Duration = Duration::from_millis(2);

/// The loop counts as busy when it last woke up less than this after it parked: work is
/// arriving back to back. After a longer quiet spell it parks without waiting.
const BUSY_GAP: Duration = Duration::from_millis(20);

/// How the daemon's event loop parks once it has nothing left to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parking {
    /// At once (the worker's backend is in process; see the module's documentation).
    Immediate,
    /// After a short pause while work is streaming in (the backend is over gRPC).
    CoalesceWhenBusy,
}

/// The daemon's runtime: one thread, parking as `parking` says.
pub fn for_daemon(parking: Parking) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if parking == Parking::CoalesceWhenBusy {
        builder
            .on_thread_park(before_park)
            .on_thread_unpark(after_unpark);
    }
    builder.build()
}

/// The client's runtime: a handful of RPCs, answered as soon as they arrive.
pub fn for_client() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Nanoseconds since [`epoch`] of the last park and of the last wake-up after it.
static LAST_PARK: AtomicU64 = AtomicU64::new(0);
static LAST_UNPARK: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_nanos() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Work items the worker has accepted and not finished.
static WORK_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The loop pauses only with at least this many work items in flight: one sequential
/// orchestration running alone never has more than two (see the module's documentation).
pub const MIN_WORK_IN_FLIGHT_TO_PAUSE: usize = 3;

/// One work item in flight, while it lives (see [`before_park`]). Dropped from any thread.
#[derive(Debug)]
pub struct WorkInFlight(());

impl WorkInFlight {
    pub fn new() -> Self {
        WORK_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Default for WorkInFlight {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for WorkInFlight {
    fn drop(&mut self) {
        WORK_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

fn before_park() {
    let pause = should_pause(
        LAST_PARK.load(Ordering::Relaxed),
        LAST_UNPARK.load(Ordering::Relaxed),
        WORK_IN_FLIGHT.load(Ordering::Relaxed),
    );
    if pause {
        std::thread::sleep(COALESCE_PAUSE);
    }
    LAST_PARK.store(now_nanos(), Ordering::Relaxed);
}

/// Whether to pause before parking: busy, with enough work in flight for messages to
/// arrive together.
fn should_pause(last_park: u64, last_unpark: u64, work_in_flight: usize) -> bool {
    is_busy(last_park, last_unpark) && work_in_flight >= MIN_WORK_IN_FLIGHT_TO_PAUSE
}

fn after_unpark() {
    LAST_UNPARK.store(now_nanos(), Ordering::Relaxed);
}

/// Busy: the loop has parked before, and the wake-up that followed came soon after.
fn is_busy(last_park: u64, last_unpark: u64) -> bool {
    let gap = u128::from(last_unpark.saturating_sub(last_park));
    last_park != 0 && last_unpark >= last_park && gap < BUSY_GAP.as_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_wake_up_soon_after_parking_is_busy() {
        assert!(is_busy(100 * MS, 105 * MS));
    }

    #[test]
    fn a_wake_up_after_a_quiet_spell_is_not_busy() {
        assert!(!is_busy(100 * MS, 100 * MS + 21 * MS));
    }

    #[test]
    fn a_busy_loop_pauses_only_with_several_work_items_in_flight() {
        let (parked, woke) = (100 * MS, 105 * MS);
        assert!(should_pause(parked, woke, MIN_WORK_IN_FLIGHT_TO_PAUSE));
        assert!(should_pause(parked, woke, 500));
        // One orchestration alone: nothing to batch its messages with.
        assert!(!should_pause(parked, woke, 2));
        // Idle: the first message after a quiet spell is not delayed.
        assert!(!should_pause(100 * MS, 100 * MS + 21 * MS, 500));
    }

    #[test]
    fn the_first_park_is_not_busy() {
        assert!(!is_busy(0, 5 * MS));
    }
}
