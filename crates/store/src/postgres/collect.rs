//! What leaves the PostgreSQL store, and when: events and their attempt log once their history
//! is over, publisher ids once their de-duplication window is, scheduled ticks' once-keys 7
//! days after their tick, archived copies past their archive's retention or of deleted archives.
//!
//! An event leaves when nothing pending needs it and it is older than the history retention:
//! when its last delivery finishes ([`release`], if already that old, or if collection already
//! passed it), or when collection reaches it. Both lock the event row and then look for pending
//! deliveries in a later statement, so that two transactions finishing an event's last two
//! deliveries at once cannot both miss the drop. Collection walks events once, in sequence
//! order, behind a cursor (`gc_cursor` in `switchyard_meta`).
//!
//! Invariants: collection (exclusive) and the writes that finish deliveries (shared) hold the
//! collection lock, so the cursor cannot move past an event while its last delivery finishes;
//! in the store's lock order it comes after the counters and before delivery and event rows.
//! Every collection transaction or statement looks at no more than [`GC_CHUNK`] rows, and
//! archived copies are taken with `SKIP LOCKED`, so nodes collecting at once neither wait for
//! nor double-count each other. Must not: drop an event a pending delivery refers to.

use switchyard_model::{ArchiveSpec, now_ms};
use tokio_postgres::GenericClient;

use super::conn::{Pool, Session, col, int};
use crate::records::{ONCE_RETENTION_MS, from_json};
use crate::{StoreError, StoreOptions};

/// Rows looked at per collection transaction, so that collection never holds locks for long.
const GC_CHUNK: usize = 2_000;

const GC_LOCK_SHARED: &str =
    "SELECT pg_advisory_xact_lock_shared(hashtext('switchyard gc ' || current_schema()))";
const GC_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('switchyard gc ' || current_schema()))";
/// A statement of its own, after the lock: it must see what the lock holder committed.
const GC_CURSOR: &str = "SELECT value FROM switchyard_meta WHERE key = 'gc_cursor'";
const SET_GC_CURSOR: &str = "UPDATE switchyard_meta SET value = $1 WHERE key = 'gc_cursor'";

/// Events whose history is over (old enough, or passed by collection), locked before the
/// statement that looks for their pending deliveries, so that it sees every commit before ours.
const LOCK_EXPIRED_EVENTS: &str = "SELECT seq FROM switchyard_events
    WHERE seq = ANY($1) AND (ingested_ms <= $2 OR seq < $3)
    ORDER BY seq FOR UPDATE";
const DROP_EVENTS: &str = "WITH gone AS (
        DELETE FROM switchyard_events e
        WHERE e.seq = ANY($1) AND (e.ingested_ms <= $2 OR e.seq < $3)
            AND NOT EXISTS (SELECT 1 FROM switchyard_pending p WHERE p.event_seq = e.seq)
        RETURNING e.seq
    )
    DELETE FROM switchyard_attempts a USING gone WHERE a.event_seq = gone.seq";
const SCAN_EVENTS: &str = "SELECT seq, ingested_ms FROM switchyard_events
    WHERE seq >= $1 ORDER BY seq LIMIT $2";
const COLLECT_DEDUP: &str = "DELETE FROM switchyard_dedup d
    USING (SELECT bus, event_id FROM switchyard_dedup WHERE accepted_ms < $1 LIMIT $2) old
    WHERE d.bus = old.bus AND d.event_id = old.event_id";
const COLLECT_TICKS: &str = "DELETE FROM switchyard_schedule_ticks t
    USING (SELECT key, tick_ms FROM switchyard_schedule_ticks WHERE tick_ms < $1 LIMIT $2) old
    WHERE t.key = old.key AND t.tick_ms = old.tick_ms";

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

/// Runs every kind of collection until each has nothing left to do now, a chunk per
/// transaction (or statement).
pub(super) async fn maintain(pool: &Pool, options: StoreOptions) -> Result<(), StoreError> {
    let retention_ms = options.history_retention_ms;
    let mut looked_at = 0;
    loop {
        let mut conn = pool.get().await?;
        let (client, statements) = conn.parts();
        let tx = client.transaction().await?;
        let chunk =
            collect_history(&mut Session::new(&tx, statements), now_ms(), retention_ms).await?;
        tx.commit().await?;
        looked_at += chunk;
        if chunk < GC_CHUNK {
            break;
        }
    }
    if looked_at > 0 {
        tracing::debug!(looked_at, "store: collected history past its retention");
    }
    let window_ms = options.dedup_window_ms;
    loop {
        let mut conn = pool.get().await?;
        let forgotten = collect_dedup(&mut conn.session(), now_ms(), window_ms).await?;
        if forgotten < GC_CHUNK {
            break;
        }
    }
    loop {
        let mut conn = pool.get().await?;
        let forgotten = collect_ticks(&mut conn.session(), now_ms()).await?;
        if forgotten < GC_CHUNK {
            break;
        }
    }
    loop {
        let mut conn = pool.get().await?;
        let removed = collect_archived(&mut conn.session(), now_ms()).await?;
        if removed < GC_CHUNK {
            return Ok(());
        }
    }
}

/// Takes the collection lock (shared) and returns the collection cursor: events below it were
/// passed by collection and are dropped as soon as nothing pending needs them.
pub(super) async fn gc_cursor_shared<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
) -> Result<i64, StoreError> {
    db.execute(GC_LOCK_SHARED, &[]).await?;
    col(&db.query_one(GC_CURSOR, &[]).await?, 0)
}

/// Deliveries of these events finished (or were deleted); drops those events that nothing
/// pending needs any more and whose history is over, with their attempt log.
pub(super) async fn release<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    mut seqs: Vec<i64>,
    now: i64,
    retention_ms: u64,
    gc_cursor: i64,
) -> Result<(), StoreError> {
    if seqs.is_empty() {
        return Ok(());
    }
    seqs.sort_unstable();
    seqs.dedup();
    let cutoff = now.saturating_sub(int(retention_ms));
    let lock = db.prepare(LOCK_EXPIRED_EVENTS).await?;
    let drop = db.prepare(DROP_EVENTS).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&seqs, &cutoff, &gc_cursor];
    let client = db.client();
    tokio::try_join!(
        client.execute(&lock, &params),
        client.execute(&drop, &params)
    )?;
    Ok(())
}

/// Looks at up to `GC_CHUNK` events past the collection cursor that are older than the
/// retention, drops those nothing pending needs (the others are dropped when their last
/// delivery finishes) and moves the cursor past them. Returns how many it looked at.
async fn collect_history<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    now: u64,
    retention_ms: u64,
) -> Result<usize, StoreError> {
    db.execute(GC_LOCK, &[]).await?;
    let cursor: i64 = col(&db.query_one(GC_CURSOR, &[]).await?, 0)?;
    let cutoff = int(now).saturating_sub(int(retention_ms));
    let mut expired = Vec::new();
    for row in db
        .query(SCAN_EVENTS, &[&cursor, &(GC_CHUNK as i64)])
        .await?
    {
        let (seq, ingested): (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
        if ingested > cutoff {
            break;
        }
        expired.push(seq);
    }
    let Some(&last) = expired.last() else {
        return Ok(0);
    };
    let next = last + 1;
    let count = expired.len();
    release(db, expired, int(now), retention_ms, next).await?;
    db.execute(SET_GC_CURSOR, &[&next]).await?;
    Ok(count)
}

/// Forgets up to `GC_CHUNK` publisher ids whose de-duplication window is over; returns how many.
async fn collect_dedup<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    now: u64,
    window_ms: u64,
) -> Result<usize, StoreError> {
    let cutoff = int(now).saturating_sub(int(window_ms));
    let count = db
        .execute(COLLECT_DEDUP, &[&cutoff, &(GC_CHUNK as i64)])
        .await?;
    Ok(count as usize)
}

/// Forgets up to `GC_CHUNK` once-keys of ticks older than [`ONCE_RETENTION_MS`]; returns how
/// many.
async fn collect_ticks<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    now: u64,
) -> Result<usize, StoreError> {
    let cutoff = int(now.saturating_sub(ONCE_RETENTION_MS));
    let count = db
        .execute(COLLECT_TICKS, &[&cutoff, &(GC_CHUNK as i64)])
        .await?;
    Ok(count as usize)
}

/// Removes up to [`GC_CHUNK`] archived copies: first of deleted archives, then those past their
/// archive's retention. Returns how many; fewer than a chunk means nothing is left to do now.
/// Runs outside a transaction: each statement commits on its own, and moves the archive's
/// counts with the copies it removes.
async fn collect_archived<C: GenericClient + Sync>(
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
