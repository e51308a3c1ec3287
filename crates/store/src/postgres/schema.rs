//! The PostgreSQL schema and its migrations, applied on connect.
//!
//! Owns every table's definition. Tables live in the connection's current schema (the first of
//! its `search_path`), all named `switchyard_*`, so that one database can hold several
//! deployments (or test runs) side by side.
//!
//! Invariants: migrations are numbered from 1, append-only (a released migration never changes)
//! and each runs in the same transaction as the version row that records it, under an advisory
//! lock, so nodes starting at once apply each migration exactly once. A database newer than this
//! binary is refused rather than written with an older idea of the schema. Must not: edit a
//! released migration; a change is a new one.

use tokio_postgres::Client;

use crate::StoreError;

/// Migration `n` is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE switchyard_meta (
    key text PRIMARY KEY,
    value bigint NOT NULL
);
-- The next event sequence history collection looks at; everything below it was looked at.
INSERT INTO switchyard_meta (key, value) VALUES ('gc_cursor', 0);

CREATE TABLE switchyard_buses (
    name text PRIMARY KEY,
    spec text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL
);

-- Ids come from a sequence and are never reused.
CREATE TABLE switchyard_subscriptions (
    id bigserial PRIMARY KEY,
    bus text NOT NULL REFERENCES switchyard_buses (name),
    name text NOT NULL,
    spec text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    UNIQUE (bus, name)
);

-- One row per live subscription, updated in the transactions that change what it counts.
CREATE TABLE switchyard_counters (
    subscription_id bigint PRIMARY KEY,
    accepted bigint NOT NULL DEFAULT 0,
    delivered bigint NOT NULL DEFAULT 0,
    dead bigint NOT NULL DEFAULT 0,
    pending bigint NOT NULL DEFAULT 0,
    purged bigint NOT NULL DEFAULT 0,
    failed_attempts bigint NOT NULL DEFAULT 0
);

CREATE TABLE switchyard_documents (
    kind text NOT NULL,
    name text NOT NULL,
    body text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE SEQUENCE switchyard_event_seq;
CREATE SEQUENCE switchyard_delivery_id;

-- subscriptions: those the event got a delivery for (the event trail's rows).
CREATE TABLE switchyard_events (
    seq bigint PRIMARY KEY,
    bus text NOT NULL,
    event_id text NOT NULL,
    envelope text NOT NULL,
    ingested_ms bigint NOT NULL,
    hops bigint NOT NULL,
    traceparent text NOT NULL,
    tracestate text,
    ordering_key text,
    subscriptions bigint[] NOT NULL
);
CREATE INDEX switchyard_events_by_id ON switchyard_events (bus, event_id, seq);

CREATE TABLE switchyard_pending (
    subscription_id bigint NOT NULL,
    id bigint NOT NULL,
    event_seq bigint NOT NULL,
    attempts bigint NOT NULL,
    due_ms bigint NOT NULL,
    ingested_ms bigint NOT NULL,
    pending_since_ms bigint NOT NULL,
    PRIMARY KEY (subscription_id, id)
);
CREATE INDEX switchyard_pending_due ON switchyard_pending (subscription_id, due_ms, id);
CREATE INDEX switchyard_pending_by_event ON switchyard_pending (event_seq);

CREATE TABLE switchyard_dead_letters (
    subscription_id bigint NOT NULL,
    id bigint NOT NULL,
    event_seq bigint NOT NULL,
    bus text NOT NULL,
    event_id text NOT NULL,
    envelope text NOT NULL,
    hops bigint NOT NULL,
    ordering_key text,
    traceparent text NOT NULL,
    tracestate text,
    attempts bigint NOT NULL,
    last_status integer,
    last_error text,
    reason text NOT NULL,
    ingested_ms bigint NOT NULL,
    dead_ms bigint NOT NULL,
    PRIMARY KEY (subscription_id, id)
);
CREATE INDEX switchyard_dead_letters_by_event ON switchyard_dead_letters (event_seq);

CREATE TABLE switchyard_attempts (
    subscription_id bigint NOT NULL,
    started_ms bigint NOT NULL,
    delivery bigint NOT NULL,
    attempt bigint NOT NULL,
    event_seq bigint NOT NULL,
    event_id text NOT NULL,
    duration_ms bigint NOT NULL,
    class text NOT NULL,
    status integer,
    error text,
    outcome text NOT NULL,
    reason text,
    PRIMARY KEY (subscription_id, started_ms, delivery, attempt)
);
CREATE INDEX switchyard_attempts_by_event ON switchyard_attempts (event_seq);

CREATE TABLE switchyard_dedup (
    bus text NOT NULL,
    event_id text NOT NULL,
    accepted_ms bigint NOT NULL,
    PRIMARY KEY (bus, event_id)
);
CREATE INDEX switchyard_dedup_expiry ON switchyard_dedup (accepted_ms);

-- Leases and heartbeats are in the database's clock, so nodes with skewed clocks agree.
CREATE TABLE switchyard_nodes (
    node text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);
CREATE TABLE switchyard_leases (
    subscription_id bigint PRIMARY KEY
        REFERENCES switchyard_subscriptions (id) ON DELETE CASCADE,
    node text NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Given up above the node's fair share, still renewed while its lane drains: nobody else
    -- takes it until the node hands it over (or dies and it expires).
    leaving boolean NOT NULL DEFAULT false
);
CREATE INDEX switchyard_leases_by_node ON switchyard_leases (node);

-- events and bytes: what the archive holds, moved in the transactions that add or remove copies.
CREATE TABLE switchyard_archives (
    id bigserial PRIMARY KEY,
    bus text NOT NULL REFERENCES switchyard_buses (name),
    name text NOT NULL,
    spec text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    events bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0,
    UNIQUE (bus, name)
);

-- An archive's copies of events, in the order a replay reads them.
CREATE TABLE switchyard_archived (
    archive_id bigint NOT NULL,
    ingested_ms bigint NOT NULL,
    seq bigint NOT NULL,
    event_id text NOT NULL,
    envelope text NOT NULL,
    hops bigint NOT NULL,
    traceparent text NOT NULL,
    tracestate text,
    ordering_key text,
    PRIMARY KEY (archive_id, ingested_ms, seq)
);

-- Deleted archives whose copies upkeep is still removing.
CREATE TABLE switchyard_deleted_archives (id bigint PRIMARY KEY);
",
    r"
-- The scheduled ticks appended, one row each, written with their event: a tick becomes at most
-- one event however many nodes fire it. Collected 7 days after the tick.
CREATE TABLE switchyard_schedule_ticks (
    key text NOT NULL,
    tick_ms bigint NOT NULL,
    PRIMARY KEY (key, tick_ms)
);
CREATE INDEX switchyard_schedule_ticks_by_tick ON switchyard_schedule_ticks (tick_ms);
",
];

/// Serializes migrations of one schema; the key is per schema so that unrelated deployments in
/// one database do not wait for each other.
const LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('switchyard migrate ' || current_schema()))";
const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS switchyard_schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";
const CURRENT_VERSION: &str = "SELECT coalesce(max(version), 0) FROM switchyard_schema_version";
const RECORD_VERSION: &str = "INSERT INTO switchyard_schema_version (version) VALUES ($1)";

/// Brings the schema up to date, waiting for another node that is doing the same.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute(LOCK, &[]).await?;
    tx.batch_execute(VERSION_TABLE).await?;
    let current: i32 = tx.query_one(CURRENT_VERSION, &[]).await?.try_get(0)?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(current)
        .ok()
        .filter(|applied| *applied <= known)
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "the database has schema version {current}; this switchyard knows versions up to {known}"
            ))
        })?;
    for (version, sql) in (1i32..).zip(MIGRATIONS).skip(applied) {
        tx.batch_execute(sql).await?;
        tx.execute(RECORD_VERSION, &[&version]).await?;
        tracing::info!(version, "store: applied PostgreSQL schema migration");
    }
    tx.commit().await?;
    Ok(())
}

/// The NOTIFY channel of this schema's deployment. Channels are database-wide, so the name
/// carries the schema (hashed, since a channel name is at most 63 bytes).
pub(super) async fn channel(client: &Client) -> Result<String, StoreError> {
    let row = client
        .query_one(
            "SELECT 'switchyard_' || left(md5(current_schema()), 16)",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}
