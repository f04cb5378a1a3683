//! The lease on a PostgreSQL task hub's engine: which host runs it, until when, at which
//! epoch (the row `durabletask.dt_leader`).
//!
//! One host at a time holds the lease and runs the engine over the database; the others
//! forward their callers to it (see `crate::cluster`). A host takes the lease only once it
//! expired, by the database's clock, and each taking increments the epoch. The holder
//! renews it well before it expires; every transaction the holder commits checks, under
//! a share lock of the row, that it still holds it at its epoch ([`FENCE`]), so a holder
//! that was paused or cut off past the expiry cannot commit anything once another host
//! took over (the taker's `UPDATE` waits for that share lock, so no commit of the old
//! holder can land after the new one started loading).
//!
//! Besides that, the holder keeps its own, conservative idea of when its lease ends
//! ([`LeaseClock`]): the moment it *sent* its last successful renewal plus the lease time
//! (minus a margin), by its monotonic clock. The engine answers nothing, not even reads
//! from memory, once that moment passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, GenericClient};

/// Checks, inside a writing transaction, that this host still holds the lease: one row,
/// key-share-locked until the commit, or none. `FOR KEY SHARE` does not block the
/// holder's own renewal (an `UPDATE` of non-key columns), so a long batch cannot cost the
/// lease; it does block a taker's `SELECT ... FOR UPDATE` (see [`try_acquire`]), so no
/// commit of the holder lands once another host took the lease.
pub const FENCE: &str = "SELECT 1 FROM durabletask.dt_leader \
     WHERE id = 1 AND host_id = $1 AND epoch = $2 AND expires_at > now() FOR KEY SHARE";

/// Who holds the lease, as read from the database.
#[derive(Clone, Debug, PartialEq)]
pub struct Leader {
    pub host_id: String,
    pub host_name: String,
    pub machine: String,
    pub pid: i32,
    /// Where the leader serves `TaskHubSidecarService` (a URL).
    pub address: String,
    pub epoch: i64,
}

/// This host's identity in the lease row.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Unique per start of a host.
    pub host_id: String,
    /// For people: the machine's name and the process.
    pub host_name: String,
    /// Where `pid` is meaningful (the machine's name, its boot and the PID namespace) and
    /// this process's id: a host restarted there recognizes the lease of its dead
    /// predecessor (see [`take_from_dead`]).
    pub machine: String,
    pub pid: i32,
    /// The URL other hosts forward callers to.
    pub address: String,
}

/// Takes the lease if it expired (or was released): the new epoch, or `None` if another
/// host holds it.
pub async fn try_acquire(
    client: &mut Client,
    candidate: &Candidate,
    lease_time: Duration,
) -> Result<Option<i64>, tokio_postgres::Error> {
    take(client, candidate, lease_time, None).await
}

/// Takes the lease still held, at `epoch`, by a process of this machine that is gone
/// (this host's predecessor, killed and restarted): waiting for it to expire would only
/// delay the restart. `None` if the lease changed hands meanwhile.
pub async fn take_from_dead(
    client: &mut Client,
    candidate: &Candidate,
    lease_time: Duration,
    epoch: i64,
) -> Result<Option<i64>, tokio_postgres::Error> {
    take(client, candidate, lease_time, Some(epoch)).await
}

/// Takes the lease if it expired, or if it is still at `dead_epoch`. The row is locked
/// `FOR UPDATE` first: that waits for every transaction of the holder that passed its
/// fence (they hold `FOR KEY SHARE`), so they commit before the lease changes hands and
/// the new holder loads what they wrote.
async fn take(
    client: &mut Client,
    candidate: &Candidate,
    lease_time: Duration,
    dead_epoch: Option<i64>,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute(
            "SELECT 1 FROM durabletask.dt_leader WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await?;
    let row = transaction
        .query_opt(
            "UPDATE durabletask.dt_leader \
             SET host_id = $1, host_name = $2, machine = $3, pid = $4, address = $5, \
                 epoch = epoch + 1, expires_at = now() + $6::float8 * interval '1 millisecond' \
             WHERE id = 1 AND (expires_at <= now() OR epoch = $7) RETURNING epoch",
            &[
                &candidate.host_id,
                &candidate.host_name,
                &candidate.machine,
                &candidate.pid,
                &candidate.address,
                &millis(lease_time),
                &dead_epoch,
            ],
        )
        .await?;
    transaction.commit().await?;
    Ok(row.map(|row| row.get(0)))
}

/// Extends the lease held at `epoch`; `false` if this host no longer holds it (taken
/// over, or expired: then it must step back and take it again like anyone else).
pub async fn renew(
    client: &impl GenericClient,
    host_id: &str,
    epoch: i64,
    lease_time: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let renewed = client
        .execute(
            "UPDATE durabletask.dt_leader \
             SET expires_at = now() + $3::float8 * interval '1 millisecond' \
             WHERE id = 1 AND host_id = $1 AND epoch = $2 AND expires_at > now()",
            &[&host_id, &epoch, &millis(lease_time)],
        )
        .await?;
    Ok(renewed == 1)
}

/// Gives the lease up at once (a clean stop), so that another host takes over without
/// waiting for it to expire. Nothing happens if this host no longer holds it.
pub async fn release(
    client: &impl GenericClient,
    host_id: &str,
    epoch: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE durabletask.dt_leader SET expires_at = '-infinity' \
             WHERE id = 1 AND host_id = $1 AND epoch = $2",
            &[&host_id, &epoch],
        )
        .await?;
    Ok(())
}

/// The host holding an unexpired lease, if any.
pub async fn leader(client: &impl GenericClient) -> Result<Option<Leader>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT host_id, host_name, machine, pid, address, epoch FROM durabletask.dt_leader \
             WHERE id = 1 AND expires_at > now() AND host_id IS NOT NULL",
            &[],
        )
        .await?;
    Ok(row.map(|row| Leader {
        host_id: row.get(0),
        host_name: row.get(1),
        machine: row.get(2),
        pid: row.get(3),
        address: row.get(4),
        epoch: row.get(5),
    }))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// This host's own bound on its lease, by its monotonic clock (see the module's
/// documentation). Shared by the task that renews the lease and the engine.
#[derive(Debug)]
pub struct LeaseClock {
    origin: Instant,
    /// Nanoseconds after `origin` until which the lease is surely held; 0: not held.
    valid_until: AtomicU64,
}

impl LeaseClock {
    /// A clock of a lease not held yet.
    pub fn new() -> Arc<LeaseClock> {
        Arc::new(LeaseClock {
            origin: Instant::now(),
            valid_until: AtomicU64::new(0),
        })
    }

    /// Records a successful taking or renewal whose request was sent at `sent`: the
    /// database set the expiry to its `now()` plus `lease_time`, and its `now()` was no
    /// earlier than `sent`. A tenth of the lease time is kept as a margin for clocks
    /// that run at slightly different rates.
    pub fn extend(&self, sent: Instant, lease_time: Duration) {
        let until = sent.saturating_duration_since(self.origin) + lease_time - lease_time / 10;
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.valid_until.fetch_max(nanos, Ordering::SeqCst);
    }

    /// The lease is not held any more (lost, released, or the engine stopped).
    pub fn revoke(&self) {
        self.valid_until.store(0, Ordering::SeqCst);
    }

    /// Whether the lease is surely still held now.
    pub fn is_valid(&self) -> bool {
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now < self.valid_until.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_clock_is_valid_from_a_renewal_until_its_margin_and_not_after_revoking() {
        let clock = LeaseClock::new();
        assert!(!clock.is_valid(), "not held before it was taken");
        clock.extend(Instant::now(), Duration::from_secs(60));
        assert!(clock.is_valid());
        clock.revoke();
        assert!(!clock.is_valid());
        // A renewal sent long ago (the process was paused since) is already over.
        let long_ago = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        clock.extend(long_ago, Duration::from_millis(20));
        assert!(!clock.is_valid());
    }
}
