//! The host's async runtime: one event-loop thread with wake-up coalescing.
//!
//! The worker is I/O-bound. Each work item is a message in and an RPC out, and on this
//! kind of machine the kernel's share of that (a wake-up per message, a write per
//! completion, loopback delivery) outweighs everything the host does in user space.
//!
//! - One thread: a multi-thread runtime also paid for waking its other workers on every
//!   message (peer benchmark: 6.9 ms of CPU per orchestration, 4.5 ms on one thread).
//! - Coalescing: while work is streaming in, the loop waits a moment before it parks, so
//!   the messages that arrive meanwhile are handled in one wake-up and the completions
//!   they produce leave in one write. The backend is woken less often too, and gets
//!   faster. An idle host parks at once, so the first message after a quiet spell is not
//!   delayed. Peer benchmark (bench_seq_fan N=1000 K=5 F=10, `bench/compare-python`):
//!   about 3.8 ms of host CPU per orchestration without coalescing; 2.5 ms with a 1 ms
//!   pause, 2.4 ms with 2 ms, 2.2 ms with 3 ms on a quiet machine. (Completions have no
//!   window of their own: those of one turn leave in one write.) Without it, the host
//!   used 2.5 times the CPU against the reference backend (issue 12's notes).
//! - No pause while an answer is known to be coming within microseconds: a call into a
//!   plugin's process ([`ReplyExpected`]). The pause could batch nothing more than that
//!   answer, and would add 2 ms to every step of an isolated plugin (`embedded_bench`, one
//!   isolated orchestration of 11 work items at a time: p50 26-28 ms with this exception,
//!   49 ms without, at the same CPU per orchestration under load).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the loop waits before parking while busy. Also the most latency it adds to
/// a message that arrives while it waits.
const COALESCE_PAUSE: Duration = Duration::from_millis(2);

/// The loop counts as busy when it last woke up less than this after it parked: work is
/// arriving back to back. After a longer quiet spell it parks without waiting.
const BUSY_GAP: Duration = Duration::from_millis(20);

/// The daemon's runtime: one thread, with wake-up coalescing.
pub fn for_daemon() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(before_park)
        .on_thread_unpark(after_unpark)
        .build()
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
