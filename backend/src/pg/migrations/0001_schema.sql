-- The task hub's state in PostgreSQL (issue 15, design B: stateless dispatch in SQL).
-- Records are the same encoded structs as on SQLite; the typed columns beside them are
-- derived from the records by the backend, for dispatch, queries and leases.

CREATE TABLE durabletask.dt_meta (
    key text PRIMARY KEY,
    value bytea NOT NULL
);

-- One row per host serving the task hub; a row whose lease expired is a dead host, and
-- the work it leased may be claimed by others.
CREATE TABLE durabletask.dt_hosts (
    host_id uuid PRIMARY KEY,
    name text NOT NULL,
    listen text,
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE TABLE durabletask.dt_instances (
    hub text NOT NULL,
    instance_id text NOT NULL,
    record bytea NOT NULL,
    generation bigint NOT NULL,
    execution_id text NOT NULL,
    name text NOT NULL,
    version text,
    status smallint NOT NULL,
    created_at bigint NOT NULL,
    completed_at bigint,
    parent_instance_id text,
    ready_at bigint,
    lease_host uuid,
    lease_token uuid,
    handed_out integer,
    released_token uuid,
    released_count integer,
    PRIMARY KEY (hub, instance_id)
);
CREATE INDEX dt_instances_ready ON durabletask.dt_instances (hub, ready_at)
    WHERE ready_at IS NOT NULL;
CREATE INDEX dt_instances_created ON durabletask.dt_instances (hub, created_at, instance_id);
CREATE INDEX dt_instances_completed ON durabletask.dt_instances (hub, completed_at, instance_id)
    WHERE completed_at IS NOT NULL;
CREATE INDEX dt_instances_parent ON durabletask.dt_instances (hub, parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
CREATE INDEX dt_instances_lease ON durabletask.dt_instances (lease_host)
    WHERE lease_host IS NOT NULL;

CREATE TABLE durabletask.dt_history (
    hub text NOT NULL,
    instance_id text NOT NULL,
    seq integer NOT NULL,
    event bytea NOT NULL,
    PRIMARY KEY (hub, instance_id, seq)
);

CREATE TABLE durabletask.dt_activities (
    hub text NOT NULL,
    id bigint NOT NULL,
    instance_id text NOT NULL,
    generation bigint NOT NULL,
    name text NOT NULL,
    version text,
    record bytea NOT NULL,
    ready_at bigint,
    lease_host uuid,
    lease_token uuid,
    PRIMARY KEY (hub, id)
);
CREATE INDEX dt_activities_ready ON durabletask.dt_activities (hub, ready_at, id)
    WHERE ready_at IS NOT NULL;
CREATE INDEX dt_activities_instance ON durabletask.dt_activities (hub, instance_id);

CREATE TABLE durabletask.dt_timers (
    hub text NOT NULL,
    id bigint NOT NULL,
    due bigint NOT NULL,
    instance_id text,
    record bytea NOT NULL,
    PRIMARY KEY (hub, id)
);
CREATE INDEX dt_timers_due ON durabletask.dt_timers (due);

CREATE TABLE durabletask.dt_entities (
    hub text NOT NULL,
    entity_id text NOT NULL,
    name text NOT NULL,
    record bytea NOT NULL,
    locked_by text,
    last_modified bigint,
    ready_at bigint,
    lease_host uuid,
    lease_token uuid,
    PRIMARY KEY (hub, entity_id)
);
CREATE INDEX dt_entities_ready ON durabletask.dt_entities (hub, ready_at)
    WHERE ready_at IS NOT NULL;
CREATE INDEX dt_entities_name ON durabletask.dt_entities (hub, name, entity_id);

CREATE TABLE durabletask.dt_lock_requests (
    hub text NOT NULL,
    seq bigint NOT NULL,
    parent_instance_id text NOT NULL,
    lock_set text[] NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (hub, seq)
);
CREATE INDEX dt_lock_requests_set ON durabletask.dt_lock_requests USING gin (lock_set);

-- Activity, timer and generation ids: unique, in no particular order.
CREATE SEQUENCE durabletask.dt_ids;
-- Entity operations and lock requests: the order they arrived in (first come, first served).
CREATE SEQUENCE durabletask.dt_arrival;
