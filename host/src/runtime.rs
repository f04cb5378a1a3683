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
//!   backend is woken less often too, and gets faster. An idle host parks at once, so
//!   the first message after a quiet spell is not delayed. Peer benchmark (bench_seq_fan
//!   N=1000 K=5 F=10, `bench/compare-python`): about 3.8 ms of host CPU per orchestration
//!   without coalescing; 2.5 ms with a 1 ms pause, 2.4 ms with 2 ms, 2.2 ms with 3 ms on a
//!   quiet machine. (Completions have no window of their own: those of one turn leave in
//!   one write.) Without it, the host used 2.5 times the CPU against the reference
//!   backend (issue 12's notes).
//! - Either way, no pause while an answer is known to be coming within microseconds: a
//!   call into a plugin's process ([`ReplyExpected`]). The pause could batch nothing
//!   more than that answer, and would add 2 ms to every step of an isolated plugin.

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

/// Answers known to be coming soon (calls into plugin processes in flight).
static REPLIES_EXPECTED: AtomicUsize = AtomicUsize::new(0);

/// While it lives, the loop parks without pausing: an answer is coming within
/// microseconds (see the module's documentation). Dropped from any thread.
#[derive(Debug)]
pub struct ReplyExpected(());

impl ReplyExpected {
    pub fn new() -> Self {
        REPLIES_EXPECTED.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Default for ReplyExpected {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ReplyExpected {
    fn drop(&mut self) {
        REPLIES_EXPECTED.fetch_sub(1, Ordering::Relaxed);
    }
}

fn before_park() {
    let parked = LAST_PARK.load(Ordering::Relaxed);
    let woke = LAST_UNPARK.load(Ordering::Relaxed);
    if is_busy(parked, woke) && REPLIES_EXPECTED.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(COALESCE_PAUSE);
    }
    LAST_PARK.store(now_nanos(), Ordering::Relaxed);
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
    fn replies_expected_are_counted_while_their_guards_live() {
        let before = REPLIES_EXPECTED.load(Ordering::Relaxed);
        let first = ReplyExpected::new();
        let second = ReplyExpected::new();
        assert!(REPLIES_EXPECTED.load(Ordering::Relaxed) >= before + 2);
        drop(first);
        drop(second);
        // Other tests of this binary may hold guards of their own meanwhile.
        assert!(REPLIES_EXPECTED.load(Ordering::Relaxed) < before + 2);
    }

    #[test]
    fn the_first_park_is_not_busy() {
        assert!(!is_busy(0, 5 * MS));
    }
}
