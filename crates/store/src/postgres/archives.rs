//! Archives on PostgreSQL: their records, the copies of events they keep (written by the
//! append's own transaction, see [`keep`]), and the removal of copies past their retention or of
//! deleted archives.
//!
//! Invariant: an archive row's `events` and `bytes` equal what `switchyard_archived` holds for it,
//! moved in the same transaction as the copies. An append locks the archive rows it counts into
//! in id order before writing copies, so it cannot deadlock with another append, and an archive
//! deleted meanwhile either waits for it or gets no copies. Upkeep removes copies one statement
//! (and so one short transaction) per archive and chunk, taking rows with `SKIP LOCKED`: nodes
//! running it at once neither wait for nor double-count each other, and publishing waits for it
//! at most one chunk. Must not: match
//! events, or keep a copy of a replayed event (callers pass no archives for those).

use std::collections::BTreeMap;
use std::sync::Arc;

use switchyard_model::ArchiveSpec;
use tokio_postgres::{GenericClient, Row};

use super::catalog::{OnBus, put_on_bus};
use super::conn::{Pool, Session, col, int, unsigned};
use super::deliveries::{self, GC_CHUNK};
use super::history::event_from_row;
use crate::records::{from_json, to_json};
use crate::{ArchiveCursor, ArchiveRecord, ArchiveStats, ArchivedEvent, NewEvent, StoreError};

const INSERT: &str = "INSERT INTO switchyard_archives (bus, name, spec, created_ms, updated_ms)
    VALUES ($1, $2, $3, $4, $4) ON CONFLICT (bus, name) DO NOTHING
    RETURNING id, bus, name, spec, created_ms, updated_ms";
const UPDATE: &str = "UPDATE switchyard_archives SET spec = $3, updated_ms = $4
    WHERE bus = $1 AND name = $2 RETURNING id, bus, name, spec, created_ms, updated_ms";
const GET: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_archives WHERE bus = $1 AND name = $2";
const LIST: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_archives ORDER BY bus, name";
const LIST_OF: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_archives WHERE bus = $1 ORDER BY name";
const DELETE: &str = "DELETE FROM switchyard_archives WHERE bus = $1 AND name = $2
    RETURNING id, bus, name, spec, created_ms, updated_ms";
const DELETE_OF_BUS: &str = "DELETE FROM switchyard_archives WHERE bus = $1
    RETURNING id, bus, name, spec, created_ms, updated_ms";
const FORGET: &str =
    "INSERT INTO switchyard_deleted_archives (id) VALUES ($1) ON CONFLICT DO NOTHING";
const STATS: &str = "SELECT events, bytes,
        (SELECT min(ingested_ms) FROM switchyard_archived WHERE archive_id = $1)
    FROM switchyard_archives WHERE id = $1";
const READ: &str = "SELECT seq, event_id, envelope, ingested_ms, hops, traceparent, tracestate,
        ordering_key
    FROM switchyard_archived
    WHERE archive_id = $1 AND (ingested_ms, seq) > ($2, $3) AND ingested_ms < $4
    ORDER BY ingested_ms, seq LIMIT $5";
const COUNT: &str = "SELECT count(*) FROM switchyard_archived
    WHERE archive_id = $1 AND ingested_ms >= $2 AND ingested_ms < $3";
/// Live archives among those an append keeps copies in, locked in id order until its commit.
const LOCK_ARCHIVES: &str = "SELECT id FROM switchyard_archives WHERE id = ANY($1)
    ORDER BY id FOR NO KEY UPDATE";
/// Copies for archives deleted since matching are dropped by the join.
const KEEP: &str = "INSERT INTO switchyard_archived
        (archive_id, ingested_ms, seq, event_id, envelope, hops, traceparent, tracestate,
         ordering_key)
    SELECT c.* FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[],
            $6::int8[], $7::text[], $8::text[], $9::text[])
        AS c(archive_id, ingested_ms, seq, event_id, envelope, hops, traceparent, tracestate,
             ordering_key)
    JOIN switchyard_archives a ON a.id = c.archive_id";
const COUNT_KEPT: &str = "UPDATE switchyard_archives a SET events = a.events + d.events,
        bytes = a.bytes + d.bytes
    FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS d(id, events, bytes)
    WHERE a.id = d.id";
const RETAINED: &str = "SELECT id, spec FROM switchyard_archives ORDER BY id";
const EXPIRE: &str = "WITH doomed AS (
        SELECT ingested_ms, seq FROM switchyard_archived
        WHERE archive_id = $1 AND ingested_ms < $2
        ORDER BY ingested_ms, seq LIMIT $3 FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM switchyard_archived a USING doomed d
        WHERE a.archive_id = $1 AND a.ingested_ms = d.ingested_ms AND a.seq = d.seq
        RETURNING octet_length(a.envelope) AS bytes
    ), counted AS (
        UPDATE switchyard_archives SET events = events - (SELECT count(*) FROM gone),
            bytes = bytes - (SELECT coalesce(sum(bytes), 0) FROM gone)
        WHERE id = $1 AND EXISTS (SELECT 1 FROM gone)
    )
    SELECT count(*) FROM gone";
const DELETED: &str = "SELECT id FROM switchyard_deleted_archives ORDER BY id";
const DROP_COPIES: &str = "DELETE FROM switchyard_archived a USING (
        SELECT ingested_ms, seq FROM switchyard_archived WHERE archive_id = $1
        LIMIT $2 FOR UPDATE SKIP LOCKED
    ) d
    WHERE a.archive_id = $1 AND a.ingested_ms = d.ingested_ms AND a.seq = d.seq";
/// Without `SKIP LOCKED`: copies another node is removing right now still count as there.
const DONE: &str = "DELETE FROM switchyard_deleted_archives d WHERE d.id = $1
    AND NOT EXISTS (SELECT 1 FROM switchyard_archived WHERE archive_id = $1)";

fn record_from_row(row: &Row) -> Result<ArchiveRecord, StoreError> {
    Ok(ArchiveRecord {
        id: unsigned(row, 0)?,
        bus: col(row, 1)?,
        name: col(row, 2)?,
        spec: from_json("switchyard_archives", col(row, 3)?)?,
        created_ms: unsigned(row, 4)?,
        updated_ms: unsigned(row, 5)?,
    })
}

pub(super) async fn put(
    pool: &Pool,
    channel: &str,
    bus: &str,
    name: &str,
    spec: ArchiveSpec,
) -> Result<(ArchiveRecord, bool), StoreError> {
    let how = OnBus {
        insert: INSERT,
        update: UPDATE,
        on_create: None,
        decode: record_from_row,
    };
    put_on_bus(pool, channel, bus, name, to_json(&spec)?, how).await
}

pub(super) async fn get<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    bus: &str,
    name: &str,
) -> Result<ArchiveRecord, StoreError> {
    let row = db
        .query_opt(GET, &[&bus, &name])
        .await?
        .ok_or_else(|| StoreError::no_archive(bus, name))?;
    record_from_row(&row)
}

pub(super) async fn list<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    bus: Option<&str>,
) -> Result<Vec<ArchiveRecord>, StoreError> {
    let rows = match bus {
        Some(bus) => db.query(LIST_OF, &[&bus]).await?,
        None => db.query(LIST, &[]).await?,
    };
    rows.iter().map(record_from_row).collect()
}

pub(super) async fn delete(
    pool: &Pool,
    channel: &str,
    bus: &str,
    name: &str,
) -> Result<ArchiveRecord, StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    let row = db
        .query_opt(DELETE, &[&bus, &name])
        .await?
        .ok_or_else(|| StoreError::no_archive(bus, name))?;
    let record = record_from_row(&row)?;
    db.execute(FORGET, &[&int(record.id)]).await?;
    deliveries::notify_catalog(&mut db, channel).await?;
    tx.commit().await?;
    Ok(record)
}

/// Deletes the archives of a bus being deleted, in its transaction; their copies are collected
/// later.
pub(super) async fn delete_of_bus<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    bus: &str,
) -> Result<(), StoreError> {
    for row in db.query(DELETE_OF_BUS, &[&bus]).await? {
        let record = record_from_row(&row)?;
        db.execute(FORGET, &[&int(record.id)]).await?;
    }
    Ok(())
}

pub(super) async fn stats<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    archive: u64,
) -> Result<ArchiveStats, StoreError> {
    let row = db
        .query_opt(STATS, &[&int(archive)])
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("archive {archive} does not exist")))?;
    Ok(ArchiveStats {
        events: unsigned(&row, 0)?,
        bytes: unsigned(&row, 1)?,
        oldest_ms: col::<Option<i64>>(&row, 2)?.map(i64::unsigned_abs),
    })
}

pub(super) async fn read<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    archive: u64,
    from_ms: u64,
    to_ms: u64,
    after: Option<ArchiveCursor>,
    limit: usize,
) -> Result<Vec<ArchivedEvent>, StoreError> {
    let (at, seq) = match after {
        Some(c) if c.ingested_ms >= from_ms => (int(c.ingested_ms), int(c.seq)),
        _ => (int(from_ms), -1),
    };
    let rows = db
        .query(
            READ,
            &[&int(archive), &at, &seq, &int(to_ms), &(limit as i64)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let event = event_from_row(row, 0)?;
            Ok(ArchivedEvent {
                cursor: ArchiveCursor {
                    ingested_ms: event.ingested_ms,
                    seq: unsigned(row, 0)?,
                },
                event: Arc::new(event),
            })
        })
        .collect()
}

pub(super) async fn count<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    archive: u64,
    from_ms: u64,
    to_ms: u64,
) -> Result<u64, StoreError> {
    let row = db
        .query_one(COUNT, &[&int(archive), &int(from_ms), &int(to_ms)])
        .await?;
    unsigned(&row, 0)
}

/// Writes the copies of an append's archived events (`(event, its seq)`), in the append's
/// transaction.
pub(super) async fn keep<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    kept: &[(&NewEvent, i64)],
) -> Result<(), StoreError> {
    let mut c = Copies::default();
    let mut counts: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (new, seq) in kept {
        for &archive in &new.archives {
            c.push(int(archive), *seq, new);
            let entry = counts.entry(int(archive)).or_default();
            entry.0 += 1;
            entry.1 += new.event.envelope.len() as i64;
        }
    }
    if counts.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = counts.keys().copied().collect();
    db.query(LOCK_ARCHIVES, &[&ids]).await?;
    db.execute(KEEP, &c.params()).await?;
    let events: Vec<i64> = counts.values().map(|c| c.0).collect();
    let bytes: Vec<i64> = counts.values().map(|c| c.1).collect();
    db.execute(COUNT_KEPT, &[&ids, &events, &bytes]).await?;
    Ok(())
}

#[derive(Default)]
struct Copies<'a> {
    archive: Vec<i64>,
    ingested_ms: Vec<i64>,
    seq: Vec<i64>,
    event_id: Vec<&'a str>,
    envelope: Vec<&'a str>,
    hops: Vec<i64>,
    traceparent: Vec<String>,
    tracestate: Vec<Option<&'a str>>,
    ordering_key: Vec<Option<&'a str>>,
}

impl<'a> Copies<'a> {
    fn push(&mut self, archive: i64, seq: i64, new: &'a NewEvent) {
        self.archive.push(archive);
        self.ingested_ms.push(int(new.event.ingested_ms));
        self.seq.push(seq);
        self.event_id.push(&new.event.id);
        self.envelope.push(&new.event.envelope);
        self.hops.push(i64::from(new.event.hops));
        self.traceparent.push(new.event.trace.traceparent());
        self.tracestate.push(new.event.trace.tracestate.as_deref());
        self.ordering_key.push(new.event.ordering_key.as_deref());
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 9] {
        [
            &self.archive,
            &self.ingested_ms,
            &self.seq,
            &self.event_id,
            &self.envelope,
            &self.hops,
            &self.traceparent,
            &self.tracestate,
            &self.ordering_key,
        ]
    }
}

/// Removes up to [`GC_CHUNK`] copies: first of deleted archives, then those past their
/// archive's retention. Returns how many; fewer than a chunk means nothing is left to do now.
/// Runs outside a transaction: each statement commits on its own.
pub(super) async fn collect<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    now: u64,
) -> Result<usize, StoreError> {
    let mut budget = GC_CHUNK;
    for row in db.query(DELETED, &[]).await? {
        let archive: i64 = col(&row, 0)?;
        let removed = db
            .execute(DROP_COPIES, &[&archive, &(budget as i64)])
            .await? as usize;
        if removed == 0 {
            db.execute(DONE, &[&archive]).await?;
        }
        budget = budget.saturating_sub(removed);
        if budget == 0 {
            return Ok(GC_CHUNK);
        }
    }
    for row in db.query(RETAINED, &[]).await? {
        let spec: ArchiveSpec = from_json("switchyard_archives", col(&row, 1)?)?;
        let Some(retention_ms) = spec.retention_ms() else {
            continue;
        };
        let archive: i64 = col(&row, 0)?;
        let cutoff = int(now.saturating_sub(retention_ms));
        let removed: i64 = col(
            &db.query_one(EXPIRE, &[&archive, &cutoff, &(budget as i64)])
                .await?,
            0,
        )?;
        budget = budget.saturating_sub(removed.unsigned_abs() as usize);
        if budget == 0 {
            return Ok(GC_CHUNK);
        }
    }
    Ok(GC_CHUNK - budget)
}
