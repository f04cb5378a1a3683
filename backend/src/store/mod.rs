//! Persistence of the engine's state: a SQLite file (the default, [`sqlite`]) or a
//! PostgreSQL database shared by several hosts ([`crate::pg::store`]).
//!
//! Both keep the same two generic collections, so the engine neither knows nor cares
//! which it writes to:
//! - records `(hub, kind, key) -> value`: every piece of state except histories, each
//!   value a prost-encoded record of [`crate::records`];
//! - histories `(hub, instance_id, seq) -> event`: append-only, so a step writes only
//!   its new events.
//!
//! The engine groups the changes of many requests into one [`Store::apply`] call (one
//! transaction).

pub mod sqlite;

use std::path::PathBuf;

use crate::lock::LockError;
use crate::pg::store::PgStore;
use crate::records::Kind;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", crate::pg::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("a stored record does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the database has schema version {found}, this build reads version {expected}")]
    SchemaVersion { found: i64, expected: i64 },
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// This host no longer holds the lease on the engine (another host took it over, or
    /// it could not renew it in time): nothing more may be committed or answered.
    #[error("this host no longer holds the lease on the task hub's engine")]
    LeaseLost,
    #[error("the database holds something this build cannot use: {0}")]
    Corrupt(String),
    #[error("cannot start the PostgreSQL connection's runtime: {0}")]
    Runtime(std::io::Error),
}

/// One change, applied in order within a transaction.
#[derive(Debug)]
pub enum Op {
    Put {
        hub: String,
        kind: Kind,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        hub: String,
        kind: Kind,
        key: String,
    },
    /// Deletes an instance's whole history.
    DeleteHistory { hub: String, instance_id: String },
    /// Writes one history event at position `seq`.
    AppendHistory {
        hub: String,
        instance_id: String,
        seq: u64,
        event: Vec<u8>,
    },
    /// Deletes every record and history of a hub.
    DeleteHub { hub: String },
}

impl Op {
    /// Saves a record's new value, or deletes it when it is gone (`None`).
    pub fn save(hub: &str, kind: Kind, key: String, value: Option<Vec<u8>>) -> Op {
        let hub = hub.to_owned();
        match value {
            Some(value) => Op::Put {
                hub,
                kind,
                key,
                value,
            },
            None => Op::Delete { hub, kind, key },
        }
    }
}

/// A stored record, as loaded at start.
#[derive(Debug)]
pub struct Record {
    pub hub: String,
    pub kind: Kind,
    pub key: String,
    pub value: Vec<u8>,
}

/// The engine's store: one of the two databases.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` (see [`SqliteStore::open`]).
    pub fn open(path: &std::path::Path) -> Result<Store, StoreError> {
        SqliteStore::open(path).map(Store::Sqlite)
    }

    /// The database's size on disk (0 where the host cannot see it cheaply).
    pub fn size_bytes(&self) -> u64 {
        match self {
            Store::Sqlite(store) => store.size_bytes(),
            Store::Postgres(store) => store.size_bytes(),
        }
    }

    /// The secret completion tokens are signed with, made on first use.
    pub fn token_key(&self) -> Result<[u8; 32], StoreError> {
        match self {
            Store::Sqlite(store) => store.token_key(),
            Store::Postgres(store) => store.token_key(),
        }
    }

    pub fn load_records(&self) -> Result<Vec<Record>, StoreError> {
        match self {
            Store::Sqlite(store) => store.load_records(),
            Store::Postgres(store) => store.load_records(None),
        }
    }

    pub fn load_hub_records(&self, hub: &str) -> Result<Vec<Record>, StoreError> {
        match self {
            Store::Sqlite(store) => store.load_hub_records(hub),
            Store::Postgres(store) => store.load_records(Some(hub)),
        }
    }

    pub fn load_record(
        &self,
        hub: &str,
        kind: Kind,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Sqlite(store) => store.load_record(hub, kind, key),
            Store::Postgres(store) => store.load_record(hub, kind, key),
        }
    }

    /// The records of `kind` under `keys` that exist, as (key, value), in no particular
    /// order: one round trip on PostgreSQL (a page of a listing), one read transaction on
    /// SQLite.
    pub fn load_records_by_key(
        &self,
        hub: &str,
        kind: Kind,
        keys: &[&str],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            Store::Sqlite(store) => store.load_records_by_key(hub, kind, keys),
            Store::Postgres(store) => store.load_records_by_key(hub, kind, keys),
        }
    }

    pub fn load_history(&self, hub: &str, instance_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        match self {
            Store::Sqlite(store) => store.load_history(hub, instance_id),
            Store::Postgres(store) => store.load_history(hub, instance_id),
        }
    }

    /// Whether this store's writer may still answer from memory: always on SQLite; on
    /// PostgreSQL while its lease surely lasts (a commit can land just before the lease
    /// ends; what follows it, handing out work and answering waiters, must not).
    pub fn holds_lease(&self) -> bool {
        match self {
            Store::Sqlite(_) => true,
            Store::Postgres(store) => store.holds_lease(),
        }
    }

    /// Applies `ops` in one transaction. On PostgreSQL this also proves the lease: a
    /// host that lost it gets [`StoreError::LeaseLost`], even for an empty batch (whose
    /// answers come from memory that may be stale).
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.apply(ops),
            Store::Postgres(store) => store.apply(ops),
        }
    }
}
