//! Dead letters on PostgreSQL: listing, redriving and purging them.
//!
//! A dead letter is written by the outcome that gave up on its delivery
//! ([`super::deliveries::record_outcomes`]) and keeps a copy of its event, which may be gone from
//! `switchyard_events` by the time it is redriven. Every write runs inside a transaction its
//! caller opened, locks the subscription's counters first (the store's lock order) and moves
//! them with the rows: a redrive turns `dead` back into `pending`, a purge into `purged`.
//!
//! Must not: redrive all of a long list in one transaction (it goes in chunks of
//! [`REDRIVE_CHUNK`]).

use std::collections::HashSet;

use switchyard_model::now_ms;
use tokio_postgres::{Client, GenericClient, Row};

use super::columns::Columns;
use super::conn::{Pool, Session, col, int, unsigned};
use super::deliveries::{
    self, Deltas, EventColumns, INSERT_EVENTS, INSERT_PENDING, PendingColumns,
};
use super::history::dead_reason;
use super::notify;
use crate::{DeadLetter, StoreError};

/// Dead letters redriven per transaction when redriving all of them.
const REDRIVE_CHUNK: usize = 5_000;

const LIST: &str = "SELECT id, subscription_id, event_id, envelope, hops, ordering_key,
        traceparent, tracestate, attempts, last_status, last_error, reason, ingested_ms, dead_ms,
        bus, event_seq
    FROM switchyard_dead_letters WHERE subscription_id = $1 AND id > $2 ORDER BY id LIMIT $3";
const TAKE_LISTED: &str = "DELETE FROM switchyard_dead_letters
    WHERE subscription_id = $1 AND id = ANY($2)
    RETURNING id, event_seq, bus, event_id, envelope, hops, ordering_key, traceparent, tracestate,
        ingested_ms";
const TAKE_FIRST: &str = "DELETE FROM switchyard_dead_letters
    WHERE subscription_id = $1 AND id IN (
        SELECT id FROM switchyard_dead_letters WHERE subscription_id = $1 ORDER BY id LIMIT $2)
    RETURNING id, event_seq, bus, event_id, envelope, hops, ordering_key, traceparent, tracestate,
        ingested_ms";
/// Keeps collection off the events a redrive puts deliveries back on.
const SHARE_EVENTS: &str =
    "SELECT seq FROM switchyard_events WHERE seq = ANY($1) ORDER BY seq FOR SHARE";
const ADD_SUBSCRIBER: &str = "UPDATE switchyard_events
    SET subscriptions = subscriptions || $2::int8
    WHERE seq = ANY($1) AND NOT ($2::int8 = ANY(subscriptions))";
const DELETE_ALL: &str = "DELETE FROM switchyard_dead_letters WHERE subscription_id = $1";
const DELETE_SOME: &str =
    "DELETE FROM switchyard_dead_letters WHERE subscription_id = $1 AND id = ANY($2)";

/// Dead letters of a subscription in id order, after the `after` cursor.
pub(super) async fn list(
    db: &mut Session<'_, Client>,
    subscription: u64,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let after = after.map_or(-1, int);
    let rows = db
        .query(LIST, &[&int(subscription), &after, &int(limit as u64)])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DeadLetter {
                id: unsigned(row, 0)?,
                subscription: unsigned(row, 1)?,
                event_id: col(row, 2)?,
                envelope: col(row, 3)?,
                hops: unsigned(row, 4)?,
                ordering_key: col(row, 5)?,
                traceparent: col(row, 6)?,
                tracestate: col(row, 7)?,
                attempts: unsigned(row, 8)?,
                last_status: col::<Option<i32>>(row, 9)?.and_then(|s| u16::try_from(s).ok()),
                last_error: col(row, 10)?,
                reason: dead_reason("switchyard_dead_letters", col(row, 11)?)?.ok_or_else(
                    || StoreError::Corrupt {
                        table: "switchyard_dead_letters",
                        detail: "a dead letter without a reason".into(),
                    },
                )?,
                ingested_ms: unsigned(row, 12)?,
                dead_ms: unsigned(row, 13)?,
                bus: col(row, 14)?,
                event_seq: unsigned(row, 15)?,
            })
        })
        .collect()
}

/// Redrives the dead letters listed, or all of them; returns how many were redriven.
pub(super) async fn redrive(
    pool: &Pool,
    channel: &str,
    subscription: u64,
    ids: Option<&[u64]>,
) -> Result<u64, StoreError> {
    let mut total = 0;
    // "All" goes in chunks, so that a huge dead-letter list never becomes one huge commit.
    loop {
        let mut conn = pool.get().await?;
        let (client, statements) = conn.parts();
        let tx = client.transaction().await?;
        let mut db = Session::new(&tx, statements);
        let count = redrive_chunk(&mut db, channel, subscription, ids).await?;
        tx.commit().await?;
        total += count;
        if ids.is_some() || count < REDRIVE_CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// Turns dead letters back into pending deliveries: those listed, or the first
/// [`REDRIVE_CHUNK`]. Each gets a fresh delivery id and retry window; its event goes back to its
/// place in history.
async fn redrive_chunk<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    channel: &str,
    subscription: u64,
    ids: Option<&[u64]>,
) -> Result<u64, StoreError> {
    if deliveries::lock_counters(db, [subscription])
        .await?
        .is_empty()
    {
        return Err(StoreError::no_subscription_id(subscription));
    }
    let sub = int(subscription);
    let taken = match ids {
        Some(ids) => {
            let ids: Vec<i64> = ids.iter().copied().map(int).collect();
            db.query(TAKE_LISTED, &[&sub, &ids]).await?
        }
        None => {
            db.query(TAKE_FIRST, &[&sub, &(REDRIVE_CHUNK as i64)])
                .await?
        }
    };
    if taken.is_empty() {
        return Ok(0);
    }
    // In dead-letter order, so that the new delivery ids keep it.
    let mut letters = taken
        .into_iter()
        .map(|row| Ok((col::<i64>(&row, 0)?, row)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    letters.sort_by_key(|(id, _)| *id);
    let letters: Vec<Row> = letters.into_iter().map(|(_, row)| row).collect();
    let seqs = letters
        .iter()
        .map(|row| col(row, 1))
        .collect::<Result<Vec<i64>, _>>()?;
    let present: HashSet<i64> = db
        .query(SHARE_EVENTS, &[&seqs])
        .await?
        .iter()
        .map(|row| col(row, 0))
        .collect::<Result<_, _>>()?;
    db.execute(ADD_SUBSCRIBER, &[&seqs, &sub]).await?;

    let (_, new_ids) = deliveries::allocate(db, 0, letters.len()).await?;
    let now = int(now_ms());
    let mut restored = EventColumns::default();
    let mut pending = PendingColumns::default();
    for (letter, id) in letters.iter().zip(new_ids) {
        let seq: i64 = col(letter, 1)?;
        let ingested: i64 = col(letter, 9)?;
        if !present.contains(&seq) {
            // The event is put back from the dead letter's copy, with this one delivery.
            restored.push(
                seq,
                col(letter, 2)?,
                col(letter, 3)?,
                col(letter, 4)?,
                ingested,
                col(letter, 5)?,
                col(letter, 7)?,
                col(letter, 8)?,
                col(letter, 6)?,
                format!("{{{subscription}}}"),
            );
        }
        pending.push(sub, id, seq, now, ingested, now);
    }
    if !restored.is_empty() {
        db.execute(INSERT_EVENTS, &restored.params()).await?;
    }
    db.execute(INSERT_PENDING, &pending.params()).await?;
    let count = pending.len() as u64;
    let mut deltas = Deltas::default();
    let delta = deltas.of(subscription);
    delta.dead -= count as i64;
    delta.pending += count as i64;
    deltas.write(db).await?;
    notify::pending(db, channel, [subscription]).await?;
    Ok(count)
}

/// Removes every dead letter of a subscription and counts them as purged. Returns how many.
pub(super) async fn purge(
    pool: &Pool,
    subscription: u64,
    ids: Option<&[u64]>,
) -> Result<u64, StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    if deliveries::lock_counters(&mut db, [subscription])
        .await?
        .is_empty()
    {
        return Err(StoreError::no_subscription_id(subscription));
    }
    let count = match ids {
        None => delete_all(&mut db, subscription).await?,
        Some(ids) => {
            let ids: Vec<i64> = ids.iter().map(|&id| int(id)).collect();
            db.execute(DELETE_SOME, &[&int(subscription), &ids]).await?
        }
    };
    let mut deltas = Deltas::default();
    let delta = deltas.of(subscription);
    delta.dead -= count as i64;
    delta.purged += count as i64;
    deltas.write(&mut db).await?;
    tx.commit().await?;
    Ok(count)
}

/// Removes every dead letter of a subscription, without counting them: for a purge, or for a
/// subscription being deleted with its counters. Returns how many.
pub(super) async fn delete_all<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    subscription: u64,
) -> Result<u64, StoreError> {
    db.execute(DELETE_ALL, &[&int(subscription)]).await
}
