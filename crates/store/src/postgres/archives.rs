//! Archives on PostgreSQL: the copies of events they keep, written by the append's own
//! transaction ([`keep`]), and read back for replays.
//!
//! Invariant: an archive row's `events` and `bytes` equal what `switchyard_archived` holds for it,
//! moved in the same transaction as the copies. An append locks the archive rows it counts into
//! in id order before writing copies, so it cannot deadlock with another append, and an archive
//! deleted meanwhile either waits for it or gets no copies. The archives' records are the
//! catalog's ([`super::catalog`]); removing copies is collection's ([`super::collect`]).
//!
//! Must not: match events, or keep a copy of a replayed event (callers pass no archives for
//! those).

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::columns::{Columns, columns};
use super::conn::{Session, col, int, unsigned};
use super::history::event_from_row;
use crate::{ArchiveCursor, ArchiveStats, ArchivedEvent, NewEvent, StoreError};

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
pub(super) async fn stats<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    archive: u64,
) -> Result<ArchiveStats, StoreError> {
    let row = db
        .query_opt(STATS, &[&int(archive)])
        .await?
        .ok_or_else(|| StoreError::no_archive_id(archive))?;
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
            c.push(
                int(archive),
                int(new.event.ingested_ms),
                *seq,
                &new.event.id,
                &new.event.envelope,
                i64::from(new.event.hops),
                new.event.trace.traceparent(),
                new.event.trace.tracestate.as_deref(),
                new.event.ordering_key.as_deref(),
            );
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
    let mut kept = Kept::default();
    for (archive, (events, bytes)) in counts {
        kept.push(archive, events, bytes);
    }
    db.execute(COUNT_KEPT, &kept.params()).await?;
    Ok(())
}

columns! {
    /// Rows of [`KEEP`].
    struct Copies<'a> {
        archive: i64,
        ingested_ms: i64,
        seq: i64,
        event_id: &'a str,
        envelope: &'a str,
        hops: i64,
        traceparent: String,
        tracestate: Option<&'a str>,
        ordering_key: Option<&'a str>,
    }
}

columns! {
    /// Rows of [`COUNT_KEPT`]: what one append adds to each archive.
    struct Kept {
        archive: i64,
        events: i64,
        bytes: i64,
    }
}
