//! The engine's store on PostgreSQL: the same records and histories as the SQLite file
//! (`crate::store`), in `durabletask.dt_records` and `durabletask.dt_history`, written by
//! the host holding the lease on the engine (see [`super::lease`]).
//!
//! The engine calls its store synchronously from its own thread (as with SQLite), so the
//! connection's I/O runs on a thread of its own ("durabletask-pg", a one-thread runtime)
//! and the engine waits on each call with a plain `block_on`: the client's futures only
//! talk to that thread through channels, so they need no runtime where they are awaited.
//! A batch's statements are pipelined (sent together, executed in order) inside one
//! transaction that starts with the lease's fence.

use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use tokio_postgres::{Client, Statement};

use super::connect::Connector;
use super::lease::{FENCE, LeaseClock};
use crate::records::Kind;
use crate::store::{Op, Record, StoreError};

/// What proves, in each transaction, that this host may still write.
#[derive(Clone, Debug)]
pub struct Fence {
    pub host_id: String,
    pub epoch: i64,
    pub clock: Arc<LeaseClock>,
}

/// How long a wait for a row lock, or a transaction left idle (its host paused
/// mid-transaction), may last before PostgreSQL ends it, releasing its locks.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    pub lock_timeout: Duration,
    pub idle_in_transaction: Duration,
}

struct Statements {
    fence: Statement,
    put: Statement,
    delete: Statement,
    delete_history: Statement,
    append: Statement,
    delete_hub: Statement,
    load_record: Statement,
    load_records_by_key: Statement,
    load_history: Statement,
}

pub struct PgStore {
    client: Client,
    statements: Statements,
    fence: Fence,
    /// Ends with the connection, once `client` is dropped.
    _io_thread: std::thread::JoinHandle<()>,
}

/// Waits on a client future from the engine's thread (see the module's documentation).
fn wait<T>(future: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(future)
}

impl PgStore {
    /// Connects to the (migrated) database at `url`, as the holder of the lease `fence`
    /// names.
    pub fn open(
        connector: Connector,
        fence: Fence,
        limits: SessionLimits,
    ) -> Result<PgStore, StoreError> {
        let (client, io_thread) = connect(connector)?;
        // No statement timeout: loading the state is one long SELECT, and a purge of a
        // large hub a long batch; a dead connection fails by the connector's timeouts.
        // A wait for the lease row's lock is bounded, and a transaction left open by a
        // frozen host ends after half a lease, releasing its locks.
        wait(client.batch_execute(&format!(
            "SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {};",
            limits.lock_timeout.as_millis().max(1),
            limits.idle_in_transaction.as_millis().max(1),
        )))?;
        let prepare = |sql: &str| wait(client.prepare(sql));
        let statements = Statements {
            fence: prepare(FENCE)?,
            put: prepare(
                "INSERT INTO durabletask.dt_records (hub, kind, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (hub, kind, key) DO UPDATE SET value = EXCLUDED.value",
            )?,
            delete: prepare(
                "DELETE FROM durabletask.dt_records WHERE hub = $1 AND kind = $2 AND key = $3",
            )?,
            delete_history: prepare(
                "DELETE FROM durabletask.dt_history WHERE hub = $1 AND instance_id = $2",
            )?,
            append: prepare(
                "INSERT INTO durabletask.dt_history (hub, instance_id, seq, event) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (hub, instance_id, seq) DO UPDATE SET event = EXCLUDED.event",
            )?,
            // One statement, so that it stays in order among the pipelined others.
            delete_hub: prepare(
                "WITH records AS (DELETE FROM durabletask.dt_records WHERE hub = $1) \
                 DELETE FROM durabletask.dt_history WHERE hub = $1",
            )?,
            load_record: prepare(
                "SELECT value FROM durabletask.dt_records WHERE hub = $1 AND kind = $2 AND key = $3",
            )?,
            load_records_by_key: prepare(
                "SELECT key, value FROM durabletask.dt_records \
                 WHERE hub = $1 AND kind = $2 AND key = ANY($3)",
            )?,
            load_history: prepare(
                "SELECT event FROM durabletask.dt_history WHERE hub = $1 AND instance_id = $2 ORDER BY seq",
            )?,
        };
        Ok(PgStore {
            client,
            statements,
            fence,
            _io_thread: io_thread,
        })
    }

    /// The database's size, as PostgreSQL reports it (0 if it cannot be read).
    pub fn size_bytes(&self) -> u64 {
        wait(
            self.client
                .query_one("SELECT pg_database_size(current_database())", &[]),
        )
        .ok()
        .and_then(|row| u64::try_from(row.get::<_, i64>(0)).ok())
        .unwrap_or(0)
    }

    /// The completion tokens' key: made by whichever host needs it first, then shared by
    /// all (a token a host handed out is checked by the next leader).
    pub fn token_key(&self) -> Result<[u8; 32], StoreError> {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        wait(self.client.execute(
            "INSERT INTO durabletask.dt_meta (key, value) VALUES ('token_key', $1) \
             ON CONFLICT (key) DO NOTHING",
            &[&key.as_slice()],
        ))?;
        let stored: Vec<u8> = wait(self.client.query_one(
            "SELECT value FROM durabletask.dt_meta WHERE key = 'token_key'",
            &[],
        ))?
        .get(0);
        <[u8; 32]>::try_from(stored).map_err(|stored| {
            StoreError::Corrupt(format!(
                "durabletask.dt_meta's token_key has {} bytes, not 32",
                stored.len()
            ))
        })
    }

    /// Every record, or those of one hub.
    pub fn load_records(&self, hub: Option<&str>) -> Result<Vec<Record>, StoreError> {
        let rows = match hub {
            None => wait(self.client.query(
                "SELECT hub, kind, key, value FROM durabletask.dt_records ORDER BY hub, kind, key",
                &[],
            ))?,
            Some(hub) => wait(self.client.query(
                "SELECT hub, kind, key, value FROM durabletask.dt_records WHERE hub = $1 ORDER BY kind, key",
                &[&hub],
            ))?,
        };
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let (hub, kind, key): (String, i16, String) = (row.get(0), row.get(1), row.get(2));
            match Kind::from_i64(i64::from(kind)) {
                Some(kind) => records.push(Record {
                    hub,
                    kind,
                    key,
                    value: row.get(3),
                }),
                None => tracing::warn!(hub, kind, key, "skipping a record of unknown kind"),
            }
        }
        Ok(records)
    }

    pub fn load_record(
        &self,
        hub: &str,
        kind: Kind,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = wait(
            self.client
                .query_opt(&self.statements.load_record, &[&hub, &(kind as i16), &key]),
        )?;
        Ok(row.map(|row| row.get(0)))
    }

    /// The records of `kind` under `keys` that exist, in one round trip.
    pub fn load_records_by_key(
        &self,
        hub: &str,
        kind: Kind,
        keys: &[&str],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = wait(self.client.query(
            &self.statements.load_records_by_key,
            &[&hub, &(kind as i16), &keys],
        ))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    pub fn load_history(&self, hub: &str, instance_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = wait(
            self.client
                .query(&self.statements.load_history, &[&hub, &instance_id]),
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Whether this host surely still holds the lease (its own clock's view).
    pub fn holds_lease(&self) -> bool {
        self.fence.clock.is_valid()
    }

    /// Applies `ops` in one transaction, fenced by the lease (see [`crate::store::Store::apply`]).
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        if !self.fence.clock.is_valid() {
            return Err(StoreError::LeaseLost);
        }
        if ops.is_empty() {
            return Ok(());
        }
        let Self {
            client,
            statements,
            fence,
            ..
        } = self;
        let statements = &*statements;
        wait(async {
            let transaction = client.transaction().await?;
            let fenced = transaction
                .query_opt(&statements.fence, &[&fence.host_id, &fence.epoch])
                .await?;
            if fenced.is_none() {
                fence.clock.revoke();
                // Dropping the transaction rolls it back.
                return Err(StoreError::LeaseLost);
            }
            let pipelined = &transaction;
            try_join_all(ops.iter().map(|op| async move {
                match op {
                    Op::Put {
                        hub,
                        kind,
                        key,
                        value,
                    } => {
                        pipelined
                            .execute(&statements.put, &[hub, &(*kind as i16), key, value])
                            .await
                    }
                    Op::Delete { hub, kind, key } => {
                        pipelined
                            .execute(&statements.delete, &[hub, &(*kind as i16), key])
                            .await
                    }
                    Op::DeleteHistory { hub, instance_id } => {
                        pipelined
                            .execute(&statements.delete_history, &[hub, instance_id])
                            .await
                    }
                    Op::AppendHistory {
                        hub,
                        instance_id,
                        seq,
                        event,
                    } => {
                        let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
                        pipelined
                            .execute(&statements.append, &[hub, instance_id, &seq, event])
                            .await
                    }
                    Op::DeleteHub { hub } => {
                        pipelined.execute(&statements.delete_hub, &[hub]).await
                    }
                }
            }))
            .await?;
            transaction.commit().await?;
            Ok(())
        })
    }
}

/// Connects with the connection's I/O on a thread of its own; the thread ends when the
/// returned client is dropped.
fn connect(connector: Connector) -> Result<(Client, std::thread::JoinHandle<()>), StoreError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let io_thread = std::thread::Builder::new()
        .name("durabletask-pg".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = sender.send(Err(StoreError::Runtime(error)));
                    return;
                }
            };
            runtime.block_on(async move {
                match connector.connect().await {
                    Ok((client, connection)) => {
                        let _ = sender.send(Ok(client));
                        let _ = connection.await;
                    }
                    Err(error) => {
                        let _ = sender.send(Err(StoreError::Postgres(error)));
                    }
                }
            });
        })
        .map_err(StoreError::Runtime)?;
    match receiver.recv() {
        Ok(connected) => connected.map(|client| (client, io_thread)),
        Err(_) => Err(StoreError::Runtime(std::io::Error::other(
            "the PostgreSQL connection's thread ended before connecting",
        ))),
    }
}
