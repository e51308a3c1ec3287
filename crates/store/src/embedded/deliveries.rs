//! The delivery path in the embedded store: appending events with their deliveries, recording
//! outcomes, reading pending deliveries and the accounting counters, and leasing the deliveries
//! of pull subscriptions (a lease is the delivery's next due time, so an expired one is simply
//! due again).
//!
//! Every write runs inside one group commit (it takes the open [`Tables`]) and keeps the store's
//! invariants within it: the accounting counters move with the rows they count, and an event's
//! reference count (`REFS`) always equals the number of pending deliveries that need it. When
//! the last of them finishes, [`collect::release`] decides whether the event goes at once. An
//! appended tick's once-key (`SCHEDULE_TICKS`) is written with its event, so a tick is appended
//! at most once: the single writer sees every key before it, this commit's included.
//!
//! Must not: decide retry policy (outcomes arrive decided) or drop an event itself.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable, Table};
use switchyard_model::now_ms;

use super::codec::*;
use super::{archives, collect, history};
use crate::records::to_json as json;
use crate::{
    DeadLetter, Lease, NewEvent, Outcome, OutcomeKind, PendingDelivery, PendingOrder, PullRequest,
    StoreError, StoreOptions, SubscriptionStats,
};

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
        // A tick another append already made an event of (this batch's included): not again.
        // Checked first, so that a dropped tick leaves no trace, not even a publisher id.
        if let Some(once) = &new.once {
            let key = (once.tick_ms, once.key.as_str());
            if t.schedule_ticks.get(key)?.is_some() {
                created.push(Vec::new());
                continue;
            }
            t.schedule_ticks.insert(key, ())?;
        }
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
                collect::release(t, row.event_seq, now, retention_ms)?;
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
                collect::release(t, row.event_seq, now, retention_ms)?;
            }
        }
    }
    counters.write(&mut t.counters)
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
        collect::release(t, seq, now, retention_ms)?;
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

/// Up to `limit` pending deliveries of a subscription, soonest due first or in publish order.
/// How many pending deliveries an ordered pull looks at to find each key's oldest: the bound on
/// one pull's work behind a long backlog (deliveries past it wait for the next pull).
const ORDERED_PULL_SCAN: usize = 10_000;

/// Leases due deliveries of a pull subscription (`Store::pull`).
pub(super) fn pull(
    t: &mut Tables<'_>,
    subscription: u64,
    request: PullRequest,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let mut cache: HashMap<u64, Arc<switchyard_model::Event>> = HashMap::new();
    let mut event_of = |t: &Tables<'_>, seq: u64, id: u64| -> Result<_, StoreError> {
        if let Some(event) = cache.get(&seq) {
            return Ok(Arc::clone(event));
        }
        let bytes = t.events.get(seq)?.ok_or_else(|| missing_event(seq, id))?;
        let event = decode_event(bytes.value())?.event;
        cache.insert(seq, Arc::clone(&event));
        Ok(event)
    };
    let mut picked: Vec<(u64, DeliveryRow)> = Vec::new();
    if request.ordered {
        // In publish order, the first delivery seen of a key is its oldest; a later one of the
        // same key waits for it whether it is due, leased or failing.
        let mut keys = std::collections::HashSet::new();
        let rows: Vec<(u64, DeliveryRow)> = t
            .deliveries
            .range((subscription, 0)..=(subscription, u64::MAX))?
            .take(ORDERED_PULL_SCAN)
            .map(|row| {
                let (key, value) = row?;
                Ok((key.value().1, DeliveryRow::decode(value.value())?))
            })
            .collect::<Result<_, StoreError>>()?;
        for (id, row) in rows {
            let event = event_of(t, row.event_seq, id)?;
            if let Some(key) = &event.ordering_key
                && !keys.insert(key.clone())
            {
                continue;
            }
            if row.due_ms <= request.now_ms {
                picked.push((id, row));
                if picked.len() == request.limit {
                    break;
                }
            }
        }
    } else {
        let ids: Vec<u64> = t
            .due
            .range((subscription, 0, 0)..=(subscription, request.now_ms, u64::MAX))?
            .take(request.limit)
            .map(|row| row.map(|r| r.0.value().2))
            .collect::<Result<_, _>>()?;
        for id in ids {
            if let Some(value) = t.deliveries.get((subscription, id))? {
                picked.push((id, DeliveryRow::decode(value.value())?));
            }
        }
    }
    let mut out = Vec::with_capacity(picked.len());
    for (id, mut row) in picked {
        t.due.remove((subscription, row.due_ms, id))?;
        row.attempts += 1;
        row.due_ms = request.until_ms;
        t.deliveries
            .insert((subscription, id), row.encode().as_slice())?;
        t.due.insert((subscription, row.due_ms, id), ())?;
        out.push(PendingDelivery {
            id,
            subscription,
            event: event_of(t, row.event_seq, id)?,
            attempts: row.attempts,
            due_ms: row.due_ms,
            pending_since_ms: row.pending_since_ms,
        });
    }
    Ok(out)
}

/// Moves the deadlines of leases that are still current (`Store::extend_leases`).
pub(super) fn extend_leases(
    t: &mut Tables<'_>,
    subscription: u64,
    leases: Vec<Lease>,
) -> Result<u64, StoreError> {
    let mut moved = 0;
    for lease in leases {
        let Some(mut row) = t
            .deliveries
            .get((subscription, lease.delivery))?
            .map(|v| DeliveryRow::decode(v.value()))
            .transpose()?
        else {
            continue;
        };
        if row.attempts != lease.attempts {
            continue;
        }
        t.due.remove((subscription, row.due_ms, lease.delivery))?;
        row.due_ms = lease.until_ms;
        t.deliveries
            .insert((subscription, lease.delivery), row.encode().as_slice())?;
        t.due
            .insert((subscription, row.due_ms, lease.delivery), ())?;
        moved += 1;
    }
    Ok(moved)
}

pub(super) fn pending_among(
    txn: &ReadTransaction,
    subscription: u64,
    deliveries: Vec<u64>,
) -> Result<Vec<u64>, StoreError> {
    let table = txn.open_table(DELIVERIES)?;
    let mut pending = Vec::new();
    for id in deliveries {
        if table.get((subscription, id))?.is_some() {
            pending.push(id);
        }
    }
    Ok(pending)
}

pub(super) fn load_pending(
    txn: &ReadTransaction,
    subscription: u64,
    limit: usize,
    order: PendingOrder,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let deliveries = txn.open_table(DELIVERIES)?;
    let events = txn.open_table(EVENTS)?;
    let ids: Vec<u64> = match order {
        PendingOrder::Due => {
            let due = txn.open_table(DUE)?;
            let rows = due.range((subscription, 0, 0)..=(subscription, u64::MAX, u64::MAX))?;
            rows.take(limit)
                .map(|row| row.map(|r| r.0.value().2))
                .collect::<Result<_, _>>()?
        }
        PendingOrder::Publish => {
            let rows = deliveries.range((subscription, 0)..=(subscription, u64::MAX))?;
            rows.take(limit)
                .map(|row| row.map(|r| r.0.value().1))
                .collect::<Result<_, _>>()?
        }
    };
    // Deliveries of one event share its decoded copy.
    let mut cache: HashMap<u64, Arc<switchyard_model::Event>> = HashMap::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(bytes) = deliveries.get((subscription, id))? else {
            continue;
        };
        let row = DeliveryRow::decode(bytes.value())?;
        let event = match cache.get(&row.event_seq) {
            Some(event) => Arc::clone(event),
            None => {
                let bytes = events
                    .get(row.event_seq)?
                    .ok_or_else(|| missing_event(row.event_seq, id))?;
                let event = decode_event(bytes.value())?.event;
                cache.insert(row.event_seq, Arc::clone(&event));
                event
            }
        };
        out.push(PendingDelivery {
            id,
            subscription,
            event,
            attempts: row.attempts,
            due_ms: row.due_ms,
            pending_since_ms: row.pending_since_ms,
        });
    }
    Ok(out)
}

pub(super) fn stats(
    txn: &ReadTransaction,
    subscription: u64,
) -> Result<SubscriptionStats, StoreError> {
    let counters = load_counters(&txn.open_table(COUNTERS)?, subscription)?
        .ok_or_else(|| StoreError::no_subscription_id(subscription))?;
    let deliveries = txn.open_table(DELIVERIES)?;
    // The first pending delivery is the oldest: delivery ids grow with time.
    let oldest = match deliveries
        .range((subscription, 0)..=(subscription, u64::MAX))?
        .next()
    {
        Some(row) => Some(DeliveryRow::decode(row?.1.value())?.pending_since_ms),
        None => None,
    };
    Ok(SubscriptionStats {
        accepted: counters.accepted,
        delivered: counters.delivered,
        dead: counters.dead,
        pending: counters.pending,
        purged: counters.purged,
        failed_attempts: counters.failed_attempts,
        oldest_pending_since_ms: oldest,
    })
}
