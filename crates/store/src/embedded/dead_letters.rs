//! Dead letters in the embedded store: listing, redriving and purging them.
//!
//! A dead letter is written by the outcome that gave up on its delivery
//! ([`super::deliveries::record_outcomes`]) and keeps a copy of its event, which may be gone from
//! `EVENTS` by the time it is redriven. Every write runs inside one group commit and moves the
//! subscription's counters with the rows: a redrive turns `dead` back into `pending`, a purge
//! turns it into `purged`.
//!
//! Must not: redrive all of a long list in one commit (it goes in chunks of [`REDRIVE_CHUNK`]).

use redb::{ReadTransaction, ReadableTable};
use switchyard_model::{Event, TraceContext, now_ms};

use super::codec::*;
use super::writer::Writer;
use crate::records::from_json;
use crate::{DeadLetter, StoreError};

/// Dead letters redriven per write job when redriving all of them.
const REDRIVE_CHUNK: usize = 5_000;

/// Dead letters of a subscription in id order, after the `after` cursor.
pub(super) fn list(
    txn: &ReadTransaction,
    subscription: u64,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let dead = txn.open_table(DEAD)?;
    let start = after.map_or(0, |a| a.saturating_add(1));
    let mut out = Vec::new();
    for row in dead
        .range((subscription, start)..=(subscription, u64::MAX))?
        .take(limit)
    {
        out.push(from_json("dead_letters", row?.1.value())?);
    }
    Ok(out)
}

/// Redrives the dead letters listed, or all of them; returns how many were redriven.
pub(super) async fn redrive(
    writer: &Writer,
    subscription: u64,
    ids: Option<Vec<u64>>,
) -> Result<u64, StoreError> {
    if let Some(ids) = ids {
        return writer
            .write(move |t| redrive_chunk(t, subscription, Some(ids)))
            .await;
    }
    // "All" goes in chunks, so that a huge dead-letter list never becomes one huge commit.
    let mut total = 0;
    loop {
        let count = writer
            .write(move |t| redrive_chunk(t, subscription, None))
            .await?;
        total += count;
        if count < REDRIVE_CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// Turns dead letters back into pending deliveries: those listed, or the first [`REDRIVE_CHUNK`].
/// Each gets a fresh delivery id and retry window; its event goes back to its place in history.
fn redrive_chunk(t: &mut Tables<'_>, sub: u64, ids: Option<Vec<u64>>) -> Result<u64, StoreError> {
    let Some(mut c) = load_counters(&t.counters, sub)? else {
        return Err(StoreError::no_subscription_id(sub));
    };
    let wanted: Vec<u64> = match ids {
        Some(ids) => ids,
        None => {
            let mut first = Vec::with_capacity(REDRIVE_CHUNK);
            for row in t
                .dead
                .range((sub, 0)..=(sub, u64::MAX))?
                .take(REDRIVE_CHUNK)
            {
                first.push(row?.0.value().1);
            }
            first
        }
    };
    let mut delivery_id = meta_get(&t.meta, NEXT_DELIVERY_ID)?;
    let now = now_ms();
    let mut count = 0;
    for id in wanted {
        let Some(letter) = t
            .dead
            .remove((sub, id))?
            .map(|v| from_json::<DeadLetter>("dead_letters", v.value()))
            .transpose()?
        else {
            continue;
        };
        let refs = t.refs.get(letter.event_seq)?.map_or(0, |v| v.value());
        let stored = t
            .events
            .get(letter.event_seq)?
            .map(|v| decode_event(v.value()))
            .transpose()?;
        if let Some(mut row) = stored {
            // The event now reaches this subscription through the new delivery.
            row.deliveries.retain(|(s, _)| *s != sub);
            row.deliveries.push((sub, delivery_id));
            t.events.insert(
                letter.event_seq,
                encode_event(&row.event, &row.bus, &row.deliveries).as_slice(),
            )?;
        } else {
            let trace = TraceContext::parse(&letter.traceparent, letter.tracestate.as_deref())
                .ok_or_else(|| StoreError::Corrupt {
                    table: "dead_letters",
                    detail: format!("dead letter {id} has an invalid traceparent"),
                })?;
            let event = Event {
                id: letter.event_id.clone(),
                envelope: letter.envelope,
                ingested_ms: letter.ingested_ms,
                hops: letter.hops,
                trace,
                ordering_key: letter.ordering_key.clone(),
                explicit_id: false,
            };
            t.events.insert(
                letter.event_seq,
                encode_event(&event, &letter.bus, &[(sub, delivery_id)]).as_slice(),
            )?;
            // A newer event may have taken the publisher's id meanwhile; it keeps it.
            let id_key = (letter.bus.as_str(), letter.event_id.as_str());
            if t.event_ids.get(id_key)?.is_none() {
                t.event_ids.insert(id_key, letter.event_seq)?;
            }
        }
        t.refs.insert(letter.event_seq, refs + 1)?;
        let row = DeliveryRow {
            event_seq: letter.event_seq,
            attempts: 0,
            due_ms: now,
            ingested_ms: letter.ingested_ms,
            pending_since_ms: now,
            last_status: 0,
            last_error: String::new(),
        };
        t.deliveries
            .insert((sub, delivery_id), row.encode().as_slice())?;
        t.due.insert((sub, now, delivery_id), ())?;
        delivery_id += 1;
        count += 1;
    }
    c.dead = c.dead.saturating_sub(count);
    c.pending += count;
    t.counters.insert(sub, c.encode().as_slice())?;
    t.meta.insert(NEXT_DELIVERY_ID, delivery_id)?;
    Ok(count)
}

pub(super) fn purge(
    t: &mut Tables<'_>,
    sub: u64,
    ids: Option<Vec<u64>>,
) -> Result<u64, StoreError> {
    let Some(mut c) = load_counters(&t.counters, sub)? else {
        return Err(StoreError::no_subscription_id(sub));
    };
    let mut count = 0u64;
    match ids {
        None => t.dead.retain_in((sub, 0)..=(sub, u64::MAX), |_, _| {
            count += 1;
            false
        })?,
        Some(ids) => {
            for id in ids {
                if t.dead.remove((sub, id))?.is_some() {
                    count += 1;
                }
            }
        }
    }
    c.dead = c.dead.saturating_sub(count);
    c.purged += count;
    t.counters.insert(sub, c.encode().as_slice())?;
    Ok(count)
}
