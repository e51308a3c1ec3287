//! Writes of the delivery path: appending events with their deliveries, recording outcomes,
//! redriving and purging dead letters, and the lifetime of stored events.
//!
//! Every function runs inside one group commit (it takes the open [`Tables`]) and keeps the
//! store's invariants within it: the accounting counters move with the rows they count, and an
//! event's reference count (`REFS`) always equals the number of pending deliveries that need it.
//!
//! An event leaves the store when nothing pending needs it and it is older than the history
//! retention: either at the moment its last delivery finishes (if already that old, or if
//! collection already walked past it), or later when [`collect_history`] reaches it. Collection walks events once, in sequence order, behind a
//! cursor, so its cost does not grow with a backlog of old pending events.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{ReadableTable, Table};
use switchyard_model::{Event, TraceContext, now_ms};

use super::codec::*;
use super::{archives, history, load_counters, meta_get};
use crate::records::{from_json, to_json as json};
use crate::{
    DeadLetter, NewEvent, Outcome, OutcomeKind, PendingDelivery, StoreError, StoreOptions,
};

/// Events looked at per collection job, so that collection never holds a commit for long.
pub(super) const GC_CHUNK: usize = 2_000;
/// Dead letters redriven per write job when redriving all of them.
pub(super) const REDRIVE_CHUNK: usize = 5_000;

fn missing_event(seq: u64, delivery: u64) -> StoreError {
    StoreError::Corrupt {
        table: "events",
        detail: format!("event {seq} of delivery {delivery} is missing"),
    }
}

/// Counters of the subscriptions one job touches, written back once at its end.
struct CounterCache(HashMap<u64, Option<Counters>>);

impl CounterCache {
    fn new() -> Self {
        CounterCache(HashMap::new())
    }

    /// `None` when the subscription no longer exists.
    fn get(
        &mut self,
        table: &Table<u64, &'static [u8]>,
        sub: u64,
    ) -> Result<Option<&mut Counters>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(e) = self.0.entry(sub) {
            e.insert(load_counters(table, sub)?);
        }
        Ok(self.0.get_mut(&sub).and_then(Option::as_mut))
    }

    fn write(self, table: &mut Table<u64, &'static [u8]>) -> Result<(), StoreError> {
        for (sub, counters) in self.0 {
            if let Some(c) = counters {
                table.insert(sub, c.encode().as_slice())?;
            }
        }
        Ok(())
    }
}

pub(super) fn append(
    t: &mut Tables<'_>,
    events: Vec<NewEvent>,
    options: StoreOptions,
) -> Result<Vec<Vec<PendingDelivery>>, StoreError> {
    let retention_ms = options.history_retention_ms;
    let mut counters = CounterCache::new();
    let mut keeper = archives::Keeper::new();
    let mut seq = meta_get(&t.meta, NEXT_EVENT_SEQ)?;
    let mut delivery_id = meta_get(&t.meta, NEXT_DELIVERY_ID)?;
    let mut created = Vec::with_capacity(events.len());
    for new in events {
        let at = new.event.ingested_ms;
        // A publisher's retry of an event already accepted: acknowledged, not delivered again.
        if new.event.explicit_id {
            let key = (new.bus.as_str(), new.event.id.as_str());
            let seen = t.dedup.get(key)?.map(|v| v.value());
            if seen.is_some_and(|seen| seen.saturating_add(options.dedup_window_ms) > at) {
                created.push(Vec::new());
                continue;
            }
            if let Some(seen) = seen {
                t.dedup_expiry.remove((seen, key.0, key.1))?;
            }
            t.dedup.insert(key, at)?;
            t.dedup_expiry.insert((at, key.0, key.1), ())?;
        }
        keeper.keep(t, &new.archives, &new.event, &new.bus, seq)?;
        let mut matched = Vec::with_capacity(new.subscriptions.len());
        let mut pending = Vec::with_capacity(new.subscriptions.len());
        for sub in new.subscriptions {
            let Some(c) = counters.get(&t.counters, sub)? else {
                continue;
            };
            c.accepted += 1;
            c.pending += 1;
            let row = DeliveryRow {
                event_seq: seq,
                attempts: 0,
                due_ms: at,
                ingested_ms: at,
                pending_since_ms: at,
                last_status: 0,
                last_error: String::new(),
            };
            t.deliveries
                .insert((sub, delivery_id), row.encode().as_slice())?;
            t.due.insert((sub, at, delivery_id), ())?;
            matched.push((sub, delivery_id));
            pending.push(PendingDelivery {
                id: delivery_id,
                subscription: sub,
                event: Arc::clone(&new.event),
                attempts: 0,
                due_ms: at,
                pending_since_ms: at,
            });
            delivery_id += 1;
        }
        // Without history, an event nothing subscribed to is acknowledged but not kept.
        if !matched.is_empty() || retention_ms > 0 {
            t.events
                .insert(seq, encode_event(&new.event, &new.bus, &matched).as_slice())?;
            t.event_ids
                .insert((new.bus.as_str(), new.event.id.as_str()), seq)?;
            if !matched.is_empty() {
                t.refs.insert(seq, matched.len() as u32)?;
            }
        }
        // Every event takes a sequence, kept or not: archived copies are keyed by it too.
        seq += 1;
        created.push(pending);
    }
    counters.write(&mut t.counters)?;
    keeper.write(t)?;
    t.meta.insert(NEXT_EVENT_SEQ, seq)?;
    t.meta.insert(NEXT_DELIVERY_ID, delivery_id)?;
    Ok(created)
}

pub(super) fn record_outcomes(
    t: &mut Tables<'_>,
    outcomes: Vec<Outcome>,
    retention_ms: u64,
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut counters = CounterCache::new();
    for outcome in outcomes {
        let key = (outcome.subscription, outcome.delivery);
        let Some(mut row) = t
            .deliveries
            .get(key)?
            .map(|v| DeliveryRow::decode(v.value()))
            .transpose()?
        else {
            continue;
        };
        let Some(c) = counters.get(&t.counters, outcome.subscription)? else {
            continue;
        };
        // A delivery whose event is gone cannot be recorded; skipping it (before writing
        // anything for it) keeps one corrupt row from failing every write it shares a commit with.
        let Some(event) = t
            .events
            .get(row.event_seq)?
            .map(|b| decode_event(b.value()))
            .transpose()?
        else {
            tracing::error!(error = %missing_event(row.event_seq, outcome.delivery), "store: outcome not recorded");
            continue;
        };
        t.due
            .remove((outcome.subscription, row.due_ms, outcome.delivery))?;
        row.attempts = outcome.attempts;
        row.last_status = outcome.status.unwrap_or(0);
        row.last_error = outcome.error.clone().unwrap_or_default();
        history::record_attempt(t, row.event_seq, &event.event.id, &outcome)?;
        match outcome.kind {
            OutcomeKind::Delivered => {
                t.deliveries.remove(key)?;
                c.delivered += 1;
                c.pending = c.pending.saturating_sub(1);
                release(t, row.event_seq, now, retention_ms)?;
            }
            OutcomeKind::Retry { due_ms } => {
                row.due_ms = due_ms;
                t.deliveries.insert(key, row.encode().as_slice())?;
                t.due
                    .insert((outcome.subscription, due_ms, outcome.delivery), ())?;
                c.failed_attempts += 1;
            }
            OutcomeKind::Dead { reason } => {
                t.deliveries.remove(key)?;
                let letter = DeadLetter {
                    id: outcome.delivery,
                    subscription: outcome.subscription,
                    event_id: event.event.id.clone(),
                    envelope: event.event.envelope.clone(),
                    hops: event.event.hops,
                    ordering_key: event.event.ordering_key.clone(),
                    traceparent: event.event.trace.traceparent(),
                    tracestate: event.event.trace.tracestate.clone(),
                    attempts: outcome.attempts,
                    last_status: outcome.status,
                    last_error: outcome.error,
                    reason,
                    ingested_ms: row.ingested_ms,
                    dead_ms: now,
                    bus: event.bus,
                    event_seq: row.event_seq,
                };
                t.dead.insert(key, json(&letter)?.as_str())?;
                c.failed_attempts += 1;
                c.dead += 1;
                c.pending = c.pending.saturating_sub(1);
                release(t, row.event_seq, now, retention_ms)?;
            }
        }
    }
    counters.write(&mut t.counters)
}

/// One pending delivery of event `seq` is finished; drops the event if that was the last one
/// and its history retention is already over.
fn release(t: &mut Tables<'_>, seq: u64, now: u64, retention_ms: u64) -> Result<(), StoreError> {
    let left = t.refs.get(seq)?.map_or(0, |v| v.value()).saturating_sub(1);
    if left > 0 {
        t.refs.insert(seq, left)?;
        return Ok(());
    }
    t.refs.remove(seq)?;
    // Collection never looks behind its cursor again, so an event it passed is dropped here.
    let passed = seq < t.meta.get(GC_CURSOR)?.map_or(0, |v| v.value());
    let expired = match t.events.get(seq)? {
        Some(bytes) => {
            passed || event_ingested_ms(bytes.value())?.saturating_add(retention_ms) <= now
        }
        None => false,
    };
    if expired {
        drop_event(t, seq)?;
    }
    Ok(())
}

/// Removes an event with its id entry and its attempt log.
fn drop_event(t: &mut Tables<'_>, seq: u64) -> Result<(), StoreError> {
    let Some(row) = t
        .events
        .remove(seq)?
        .map(|v| decode_event(v.value()))
        .transpose()?
    else {
        return Ok(());
    };
    let id_key = (row.bus.as_str(), row.event.id.as_str());
    if t.event_ids.get(id_key)?.is_some_and(|v| v.value() == seq) {
        t.event_ids.remove(id_key)?;
    }
    history::drop_attempts(t, seq)
}

/// Removes every row of a subscription; the caller removes its definition.
pub(super) fn delete_subscription_rows(
    t: &mut Tables<'_>,
    sub: u64,
    retention_ms: u64,
) -> Result<(), StoreError> {
    let mut seqs = Vec::new();
    for row in t.deliveries.range((sub, 0)..=(sub, u64::MAX))? {
        seqs.push(DeliveryRow::decode(row?.1.value())?.event_seq);
    }
    let now = now_ms();
    for seq in seqs {
        release(t, seq, now, retention_ms)?;
    }
    t.deliveries
        .retain_in((sub, 0)..=(sub, u64::MAX), |_, _| false)?;
    t.due
        .retain_in((sub, 0, 0)..=(sub, u64::MAX, u64::MAX), |_, _| false)?;
    t.dead.retain_in((sub, 0)..=(sub, u64::MAX), |_, _| false)?;
    history::drop_subscription_attempts(t, sub)?;
    t.counters.remove(sub)?;
    Ok(())
}

/// Turns dead letters back into pending deliveries: those listed, or the first `REDRIVE_CHUNK`.
/// Each gets a fresh delivery id and retry window; its event goes back to its place in history.
pub(super) fn redrive(
    t: &mut Tables<'_>,
    sub: u64,
    ids: Option<Vec<u64>>,
) -> Result<u64, StoreError> {
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

pub(super) fn purge(t: &mut Tables<'_>, sub: u64) -> Result<u64, StoreError> {
    let Some(mut c) = load_counters(&t.counters, sub)? else {
        return Err(StoreError::no_subscription_id(sub));
    };
    let mut count = 0u64;
    t.dead.retain_in((sub, 0)..=(sub, u64::MAX), |_, _| {
        count += 1;
        false
    })?;
    c.dead = c.dead.saturating_sub(count);
    c.purged += count;
    t.counters.insert(sub, c.encode().as_slice())?;
    Ok(count)
}

/// Looks at up to `GC_CHUNK` events past the collection cursor that are older than the
/// retention: drops those nothing pending needs (the others are dropped when their last delivery
/// finishes). Returns how many it looked at.
pub(super) fn collect_history(
    t: &mut Tables<'_>,
    now: u64,
    retention_ms: u64,
) -> Result<usize, StoreError> {
    let cursor = t.meta.get(GC_CURSOR)?.map_or(0, |v| v.value());
    let cutoff = now.saturating_sub(retention_ms);
    let mut expired = Vec::new();
    let mut next = cursor;
    for row in t.events.range(cursor..)?.take(GC_CHUNK) {
        let (seq, bytes) = row?;
        if event_ingested_ms(bytes.value())? > cutoff {
            break;
        }
        expired.push(seq.value());
        next = seq.value() + 1;
    }
    for seq in &expired {
        if t.refs.get(*seq)?.is_none() {
            drop_event(t, *seq)?;
        }
    }
    if next != cursor {
        t.meta.insert(GC_CURSOR, next)?;
    }
    Ok(expired.len())
}

/// Forgets up to `GC_CHUNK` publisher ids whose de-duplication window is over; returns how many.
pub(super) fn collect_dedup(
    t: &mut Tables<'_>,
    now: u64,
    window_ms: u64,
) -> Result<usize, StoreError> {
    let cutoff = now.saturating_sub(window_ms);
    let mut expired = Vec::new();
    for row in t
        .dedup_expiry
        .range::<(u64, &str, &str)>(..(cutoff, "", ""))?
        .take(GC_CHUNK)
    {
        let (key, _) = row?;
        let (at, bus, id) = key.value();
        expired.push((at, bus.to_string(), id.to_string()));
    }
    for (at, bus, id) in &expired {
        t.dedup_expiry.remove((*at, bus.as_str(), id.as_str()))?;
        if t.dedup
            .get((bus.as_str(), id.as_str()))?
            .is_some_and(|v| v.value() == *at)
        {
            t.dedup.remove((bus.as_str(), id.as_str()))?;
        }
    }
    Ok(expired.len())
}
