//! SQLite persistence (the default): one connection, owned by the engine.
//!
//! Two tables keep the schema generic:
//! - `records(hub, kind, key, value)`: every piece of state except histories, each value a
//!   prost-encoded record of [`crate::records`];
//! - `history(hub, instance_id, seq, event)`: orchestration histories, append-only, so a
//!   step writes only its new events.
//!
//! The engine groups the changes of many requests into one [`Store::apply`] call (one
//! transaction). WAL mode with `synchronous=NORMAL` makes each commit durable against a
//! crash of the process (kill -9) without an fsync per commit.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Op, Record, StoreError};
use crate::lock::DatabaseLock;
use crate::records::Kind;

/// One record's value, by its primary key.
const RECORD_BY_KEY: &str = "SELECT value FROM records WHERE hub = ?1 AND kind = ?2 AND key = ?3";

/// The schema version written in `meta`; a database of another version is refused.
const SCHEMA_VERSION: i64 = 1;

pub struct SqliteStore {
    conn: Connection,
    /// Released when the store is dropped (after the connection: fields drop in order).
    _lock: DatabaseLock,
}

impl SqliteStore {
    /// The database's size on disk: its file and its write-ahead log.
    pub fn size_bytes(&self) -> u64 {
        let Some(path) = self.conn.path().filter(|path| !path.is_empty()) else {
            return 0;
        };
        let size = |path: &str| std::fs::metadata(path).map_or(0, |meta| meta.len());
        size(path) + size(&format!("{path}-wal"))
    }

    /// Opens (creating if needed) the database at `path`.
    ///
    /// The file is created private to this user (SQLite gives its `-wal` and `-shm` files
    /// the same mode), and locked: a second backend on it is refused (see `lock`).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        crate::lock::open_private(path).map_err(|source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let lock = DatabaseLock::acquire(path)?;
        let conn = Connection::open(path)?;
        // journal_mode answers with a row, so it is read rather than executed.
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL;
             PRAGMA foreign_keys=OFF;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-16000;
             CREATE TABLE IF NOT EXISTS meta(
                 key TEXT PRIMARY KEY NOT NULL,
                 value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS records(
                 hub TEXT NOT NULL,
                 kind INTEGER NOT NULL,
                 key TEXT NOT NULL,
                 value BLOB NOT NULL,
                 PRIMARY KEY(hub, kind, key)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS history(
                 hub TEXT NOT NULL,
                 instance_id TEXT NOT NULL,
                 seq INTEGER NOT NULL,
                 event BLOB NOT NULL,
                 PRIMARY KEY(hub, instance_id, seq)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS secrets(
                 name TEXT PRIMARY KEY NOT NULL,
                 value BLOB NOT NULL);",
        )?;
        let version: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES('schema_version', ?1)",
                    params![SCHEMA_VERSION],
                )?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(found) => {
                return Err(StoreError::SchemaVersion {
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        }
        Ok(SqliteStore { conn, _lock: lock })
    }

    /// The key completion tokens are signed with (see `engine::tokens`), made on first
    /// use and kept: tokens handed out before a restart can still be checked after it.
    pub fn token_key(&self) -> Result<[u8; 32], StoreError> {
        let stored: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT value FROM secrets WHERE name = 'token_key'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(key) = stored.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        self.conn.execute(
            "INSERT OR REPLACE INTO secrets(name, value) VALUES('token_key', ?1)",
            params![key.as_slice()],
        )?;
        Ok(key)
    }

    /// Every record of every hub. Records of kinds this build does not know are skipped.
    pub fn load_records(&self) -> Result<Vec<Record>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT hub, kind, key, value FROM records ORDER BY hub, kind, key")?;
        collect_records(statement.query_map([], record_row)?)
    }

    /// Every record of one hub.
    pub fn load_hub_records(&self, hub: &str) -> Result<Vec<Record>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT hub, kind, key, value FROM records WHERE hub = ?1 ORDER BY kind, key",
        )?;
        collect_records(statement.query_map(params![hub], record_row)?)
    }

    /// One record's value, if stored (a primary-key look-up).
    pub fn load_record(
        &self,
        hub: &str,
        kind: Kind,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut statement = self.conn.prepare_cached(RECORD_BY_KEY)?;
        Ok(statement
            .query_row(params![hub, kind as i64, key], |row| row.get(0))
            .optional()?)
    }

    /// The values stored under `keys` (those found, in `keys`' order), read in one read
    /// transaction: SQLite then takes its shared lock on the database once, not once per
    /// key (two `fcntl` calls each, most of a listing's time before).
    pub fn load_records_by_key(
        &self,
        hub: &str,
        kind: Kind,
        keys: &[&str],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        // Deferred and read-only: it never blocks a writer for longer than the reads.
        let transaction = self.conn.unchecked_transaction()?;
        let mut found = Vec::with_capacity(keys.len());
        {
            let mut statement = transaction.prepare_cached(RECORD_BY_KEY)?;
            for key in keys {
                let value: Option<Vec<u8>> = statement
                    .query_row(params![hub, kind as i64, key], |row| row.get(0))
                    .optional()?;
                if let Some(value) = value {
                    found.push(((*key).to_owned(), value));
                }
            }
        }
        transaction.commit()?;
        Ok(found)
    }

    /// An instance's history events, encoded, in order.
    pub fn load_history(&self, hub: &str, instance_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT event FROM history WHERE hub = ?1 AND instance_id = ?2 ORDER BY seq",
        )?;
        let rows = statement.query_map(params![hub, instance_id], |row| row.get(0))?;
        let mut events = Vec::new();
        for row in rows {
            events.push(row?);
        }
        Ok(events)
    }

    /// Applies `ops` in one transaction: all of them, or none.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO records(hub, kind, key, value) VALUES(?1, ?2, ?3, ?4)",
            )?;
            let mut delete =
                tx.prepare_cached("DELETE FROM records WHERE hub = ?1 AND kind = ?2 AND key = ?3")?;
            let mut delete_history =
                tx.prepare_cached("DELETE FROM history WHERE hub = ?1 AND instance_id = ?2")?;
            let mut append = tx.prepare_cached(
                "INSERT OR REPLACE INTO history(hub, instance_id, seq, event) VALUES(?1, ?2, ?3, ?4)",
            )?;
            for op in ops {
                match op {
                    Op::Put {
                        hub,
                        kind,
                        key,
                        value,
                    } => {
                        put.execute(params![hub, *kind as i64, key, value])?;
                    }
                    Op::Delete { hub, kind, key } => {
                        delete.execute(params![hub, *kind as i64, key])?;
                    }
                    Op::DeleteHistory { hub, instance_id } => {
                        delete_history.execute(params![hub, instance_id])?;
                    }
                    Op::AppendHistory {
                        hub,
                        instance_id,
                        seq,
                        event,
                    } => {
                        let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
                        append.execute(params![hub, instance_id, seq, event])?;
                    }
                    Op::DeleteHub { hub } => {
                        tx.execute("DELETE FROM records WHERE hub = ?1", params![hub])?;
                        tx.execute("DELETE FROM history WHERE hub = ?1", params![hub])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

type RecordRow = (String, i64, String, Vec<u8>);

fn record_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn collect_records(
    rows: impl Iterator<Item = rusqlite::Result<RecordRow>>,
) -> Result<Vec<Record>, StoreError> {
    let mut records = Vec::new();
    for row in rows {
        let (hub, kind, key, value) = row?;
        match Kind::from_i64(kind) {
            Some(kind) => records.push(Record {
                hub,
                kind,
                key,
                value,
            }),
            None => tracing::warn!(hub, kind, key, "skipping a record of unknown kind"),
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn put(hub: &str, kind: Kind, key: &str, value: &[u8]) -> Op {
        Op::Put {
            hub: hub.into(),
            kind,
            key: key.into(),
            value: value.to_vec(),
        }
    }

    fn append(hub: &str, instance_id: &str, seq: u64, event: &[u8]) -> Op {
        Op::AppendHistory {
            hub: hub.into(),
            instance_id: instance_id.into(),
            seq,
            event: event.to_vec(),
        }
    }

    #[test]
    fn records_and_history_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let mut store = SqliteStore::open(&path).unwrap();
        store
            .apply(&[
                put("a", Kind::Instance, "i1", b"one"),
                put("b", Kind::Instance, "i1", b"other hub"),
                put("a", Kind::Activity, "x", b"act"),
                append("a", "i1", 0, b"e0"),
                append("a", "i1", 1, b"e1"),
            ])
            .unwrap();
        store
            .apply(&[
                Op::Delete {
                    hub: "a".into(),
                    kind: Kind::Activity,
                    key: "x".into(),
                },
                put("a", Kind::Instance, "i1", b"two"),
                append("a", "i1", 2, b"e2"),
            ])
            .unwrap();
        let records = store.load_records().unwrap();
        let summary: Vec<(String, Kind, String, Vec<u8>)> = records
            .into_iter()
            .map(|r| (r.hub, r.kind, r.key, r.value))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), Kind::Instance, "i1".into(), b"two".to_vec()),
                (
                    "b".into(),
                    Kind::Instance,
                    "i1".into(),
                    b"other hub".to_vec()
                ),
            ]
        );
        assert_eq!(
            store.load_history("a", "i1").unwrap(),
            vec![b"e0".to_vec(), b"e1".to_vec(), b"e2".to_vec()]
        );
        assert!(store.load_history("b", "i1").unwrap().is_empty());
        assert_eq!(
            store.load_record("a", Kind::Instance, "i1").unwrap(),
            Some(b"two".to_vec())
        );
        assert_eq!(store.load_record("a", Kind::Activity, "x").unwrap(), None);
        let hub_b = store.load_hub_records("b").unwrap();
        assert_eq!(hub_b.len(), 1);
        assert_eq!(hub_b[0].value, b"other hub".to_vec());
    }

    #[test]
    fn records_by_key_are_those_found_and_a_write_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
        store
            .apply(&[
                put("a", Kind::Instance, "i1", b"one"),
                put("a", Kind::Instance, "i3", b"three"),
                put("b", Kind::Instance, "i2", b"other hub"),
            ])
            .unwrap();
        let found = store
            .load_records_by_key("a", Kind::Instance, &["i3", "i2", "i1"])
            .unwrap();
        assert_eq!(
            found,
            [
                ("i3".to_owned(), b"three".to_vec()),
                ("i1".to_owned(), b"one".to_vec())
            ]
        );
        // The read transaction is over: the store still writes.
        store
            .apply(&[put("a", Kind::Instance, "i2", b"two")])
            .unwrap();
        let found = store
            .load_records_by_key("a", Kind::Instance, &["i2"])
            .unwrap();
        assert_eq!(found, [("i2".to_owned(), b"two".to_vec())]);
    }

    #[test]
    fn reopening_recovers_committed_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let mut store = SqliteStore::open(&path).unwrap();
            store
                .apply(&[
                    put("h", Kind::Entity, "@e@k", b"s"),
                    append("h", "i", 0, b"e"),
                ])
                .unwrap();
            // Dropped without any explicit close.
        }
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.load_records().unwrap().len(), 1);
        assert_eq!(store.load_history("h", "i").unwrap(), vec![b"e".to_vec()]);
        store
            .apply(&[
                Op::DeleteHistory {
                    hub: "h".into(),
                    instance_id: "i".into(),
                },
                append("h", "i", 0, b"new"),
            ])
            .unwrap();
        assert_eq!(store.load_history("h", "i").unwrap(), vec![b"new".to_vec()]);
        store.apply(&[Op::DeleteHub { hub: "h".into() }]).unwrap();
        assert!(store.load_records().unwrap().is_empty());
        assert!(store.load_history("h", "i").unwrap().is_empty());
    }
}
