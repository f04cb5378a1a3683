-- The task hub's state in PostgreSQL. One host at a time (the leader, see dt_leader) runs
-- the engine over it; the records are the same encoded structs as in the SQLite file
-- (records.rs), so the engine and its semantics are the same on both.

CREATE TABLE durabletask.dt_meta (
    key text PRIMARY KEY,
    value bytea NOT NULL
);

-- Every piece of state except histories: instances, activities, timers, entities and
-- lock requests, each under its kind (records::Kind) and key.
CREATE TABLE durabletask.dt_records (
    hub text NOT NULL,
    kind smallint NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (hub, kind, key)
);

-- Orchestration histories, append-only: a step writes only its new events.
CREATE TABLE durabletask.dt_history (
    hub text NOT NULL,
    instance_id text NOT NULL,
    seq bigint NOT NULL,
    event bytea NOT NULL,
    PRIMARY KEY (hub, instance_id, seq)
);

-- The lease on the engine: one row. The host named in it runs the engine until
-- expires_at (the database's clock); every transaction that writes state first checks,
-- under a share lock of this row, that its host still holds the lease at the epoch it
-- took it with, so a host that lost the lease (paused, partitioned) cannot commit. A new
-- leader takes it only once it expired, and increments the epoch.
CREATE TABLE durabletask.dt_leader (
    id smallint PRIMARY KEY CHECK (id = 1),
    host_id text,
    host_name text,
    -- Where the holder runs: a host restarted on the same machine takes the lease of its
    -- dead predecessor at once instead of waiting for it to expire.
    machine text,
    pid integer,
    address text,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
INSERT INTO durabletask.dt_leader (id, epoch, expires_at) VALUES (1, 0, '-infinity');
