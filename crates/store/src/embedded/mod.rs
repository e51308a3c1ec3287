//! The embedded store: one redb file in the data directory, zero setup.
//!
//! Owns the file and its single writer thread ([`writer`]); reads run on tokio's blocking pool
//! against MVCC snapshots, so they never wait for a commit. Only one process can open the file
//! at a time (redb locks it), which is what keeps two `serve`s off the same data directory.
//!
//! Must not: decide delivery policy, or hold a write transaction across an `.await`.

mod codec;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, Table};
use switchyard_model::{BusSpec, SubscriptionSpec, now_ms};

use self::codec::*;
use self::writer::Writer;
use crate::{
    BusRecord, DeadLetter, NewEvent, Outcome, OutcomeKind, PendingDelivery, Store, StoreError,
    SubscriptionRecord, SubscriptionStats,
};

/// Events removed per write job: collection shares group commits with publishes and outcomes,
/// so a chunk must be small enough not to delay them noticeably.
const GC_CHUNK: usize = 2_000;
/// Dead letters redriven per write job when redriving all of them.
const REDRIVE_CHUNK: usize = 5_000;

pub struct EmbeddedStore {
    /// Shared with the writer thread; reads open their own snapshots on it.
    db: Arc<Database>,
    writer: Writer,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. Fails if another process holds it.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Conflict(format!(
                "{} is in use by another switchyard process",
                path.display()
            )),
            other => StoreError::Storage(format!("cannot open {}: {other}", path.display())),
        })?;
        init_schema(&db)?;
        let db = Arc::new(db);
        let writer = Writer::start(Arc::clone(&db))?;
        Ok(EmbeddedStore { db, writer })
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db.begin_read()?))
            .await
            .map_err(|e| StoreError::Storage(format!("read task failed: {e}")))?
    }
}

fn init_schema(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        // Creates every table on first start, so that read transactions always find them.
        let mut meta = Tables::open(&txn)?.meta;
        let version = meta.get(SCHEMA_VERSION)?.map(|v| v.value());
        match version {
            None => {
                meta.insert(SCHEMA_VERSION, CURRENT_SCHEMA)?;
            }
            Some(CURRENT_SCHEMA) => {}
            Some(other) => {
                return Err(StoreError::Conflict(format!(
                    "the data directory has schema version {other}; this switchyard reads version {CURRENT_SCHEMA}"
                )));
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Storage(format!("cannot encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

fn meta_get(meta: &Table<&str, u64>, key: &str) -> Result<u64, StoreError> {
    Ok(meta.get(key)?.map(|v| v.value()).unwrap_or(1))
}

fn load_counters(
    table: &impl ReadableTable<u64, &'static [u8]>,
    sub: u64,
) -> Result<Option<Counters>, StoreError> {
    table
        .get(sub)?
        .map(|v| Counters::decode(v.value()))
        .transpose()
}

fn bus_not_found(bus: &str) -> StoreError {
    StoreError::NotFound(format!("bus {bus:?} does not exist"))
}

fn subscription_not_found(bus: &str, name: &str) -> StoreError {
    StoreError::NotFound(format!(
        "subscription {name:?} does not exist on bus {bus:?}"
    ))
}

/// Removes every row of a subscription; the caller removes its definition.
fn delete_subscription_rows(t: &mut Tables<'_>, sub: u64) -> Result<(), StoreError> {
    t.deliveries
        .retain_in((sub, 0)..=(sub, u64::MAX), |_, _| false)?;
    t.due
        .retain_in((sub, 0, 0)..=(sub, u64::MAX, u64::MAX), |_, _| false)?;
    t.dead.retain_in((sub, 0)..=(sub, u64::MAX), |_, _| false)?;
    t.counters.remove(sub)?;
    Ok(())
}

fn subscriptions_of(
    table: &impl ReadableTable<(&'static str, &'static str), &'static str>,
    bus: Option<&str>,
) -> Result<Vec<SubscriptionRecord>, StoreError> {
    let mut out = Vec::new();
    let rows = match bus {
        Some(bus) => table.range((bus, "")..)?,
        None => table.range::<(&str, &str)>(..)?,
    };
    for row in rows {
        let (key, value) = row?;
        if bus.is_some_and(|bus| key.value().0 != bus) {
            break;
        }
        out.push(from_json("subscriptions", value.value())?);
    }
    Ok(out)
}

fn decode_pending(
    sub: u64,
    id: u64,
    row: &DeliveryRow,
    events: &impl ReadableTable<u64, &'static [u8]>,
    cache: &mut HashMap<u64, Arc<switchyard_model::Event>>,
) -> Result<PendingDelivery, StoreError> {
    let event = match cache.get(&row.event_seq) {
        Some(event) => Arc::clone(event),
        None => {
            let bytes = events
                .get(row.event_seq)?
                .ok_or_else(|| StoreError::Corrupt {
                    table: "events",
                    detail: format!("event {} of delivery {id} is missing", row.event_seq),
                })?;
            let event = decode_event(bytes.value())?;
            cache.insert(row.event_seq, Arc::clone(&event));
            event
        }
    };
    Ok(PendingDelivery {
        id,
        subscription: sub,
        event,
        attempts: row.attempts,
        due_ms: row.due_ms,
        pending_since_ms: row.pending_since_ms,
    })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put_bus(&self, name: &str, spec: BusSpec) -> Result<(BusRecord, bool), StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| {
                let buses = &mut t.buses;
                let now = now_ms();
                let existing: Option<BusRecord> = buses
                    .get(name.as_str())?
                    .map(|v| from_json("buses", v.value()))
                    .transpose()?;
                let created = existing.is_none();
                let record = BusRecord {
                    created_ms: existing.map_or(now, |e| e.created_ms),
                    updated_ms: now,
                    name,
                    spec,
                };
                buses.insert(record.name.as_str(), json(&record)?.as_str())?;
                Ok((record, created))
            })
            .await
    }

    async fn get_bus(&self, name: &str) -> Result<BusRecord, StoreError> {
        let name = name.to_string();
        self.read(move |txn| {
            let buses = txn.open_table(BUSES)?;
            let value = buses
                .get(name.as_str())?
                .ok_or_else(|| bus_not_found(&name))?;
            from_json("buses", value.value())
        })
        .await
    }

    async fn list_buses(&self) -> Result<Vec<BusRecord>, StoreError> {
        self.read(|txn| {
            let buses = txn.open_table(BUSES)?;
            let mut out = Vec::new();
            for row in buses.iter()? {
                out.push(from_json("buses", row?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_bus(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| {
                if t.buses.get(name.as_str())?.is_none() {
                    return Err(bus_not_found(&name));
                }
                let doomed = subscriptions_of(&t.subscriptions, Some(&name))?;
                if !doomed.is_empty() && !force {
                    return Err(StoreError::Conflict(format!(
                        "bus {name:?} still has {} subscription(s); delete them first, or add ?force=true to delete them with the bus",
                        doomed.len()
                    )));
                }
                for sub in &doomed {
                    t.subscriptions.remove((sub.bus.as_str(), sub.name.as_str()))?;
                    delete_subscription_rows(t, sub.id)?;
                }
                t.buses.remove(name.as_str())?;
                Ok(doomed)
            })
            .await
    }

    async fn put_subscription(
        &self,
        bus: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<(SubscriptionRecord, bool), StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.writer
            .write(move |t| {
                if t.buses.get(bus.as_str())?.is_none() {
                    return Err(bus_not_found(&bus));
                }
                let subscriptions = &mut t.subscriptions;
                let existing: Option<SubscriptionRecord> = subscriptions
                    .get((bus.as_str(), name.as_str()))?
                    .map(|v| from_json("subscriptions", v.value()))
                    .transpose()?;
                let now = now_ms();
                let created = existing.is_none();
                let record = match existing {
                    Some(old) => SubscriptionRecord {
                        spec,
                        updated_ms: now,
                        ..old
                    },
                    None => {
                        let meta = &mut t.meta;
                        let id = meta_get(&meta, NEXT_SUBSCRIPTION_ID)?;
                        meta.insert(NEXT_SUBSCRIPTION_ID, id + 1)?;
                        t.counters
                            .insert(id, Counters::default().encode().as_slice())?;
                        SubscriptionRecord {
                            id,
                            bus,
                            name,
                            spec,
                            created_ms: now,
                            updated_ms: now,
                        }
                    }
                };
                subscriptions.insert(
                    (record.bus.as_str(), record.name.as_str()),
                    json(&record)?.as_str(),
                )?;
                Ok((record, created))
            })
            .await
    }

    async fn get_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.read(move |txn| {
            let subscriptions = txn.open_table(SUBSCRIPTIONS)?;
            let value = subscriptions
                .get((bus.as_str(), name.as_str()))?
                .ok_or_else(|| subscription_not_found(&bus, &name))?;
            from_json("subscriptions", value.value())
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        bus: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let bus = bus.map(str::to_string);
        self.read(move |txn| subscriptions_of(&txn.open_table(SUBSCRIPTIONS)?, bus.as_deref()))
            .await
    }

    async fn delete_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.writer
            .write(move |t| {
                let subscriptions = &mut t.subscriptions;
                let record: SubscriptionRecord = subscriptions
                    .remove((bus.as_str(), name.as_str()))?
                    .map(|v| from_json("subscriptions", v.value()))
                    .transpose()?
                    .ok_or_else(|| subscription_not_found(&bus, &name))?;
                delete_subscription_rows(t, record.id)?;
                Ok(record)
            })
            .await
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Vec<PendingDelivery>>, StoreError> {
        self.writer
            .write(move |t| {
                let meta = &mut t.meta;
                let event_rows = &mut t.events;
                let deliveries = &mut t.deliveries;
                let due = &mut t.due;
                let counter_rows = &mut t.counters;
                let mut counters: HashMap<u64, Option<Counters>> = HashMap::new();
                let mut seq = meta_get(&meta, NEXT_EVENT_SEQ)?;
                let mut delivery_id = meta_get(&meta, NEXT_DELIVERY_ID)?;
                let mut created = Vec::with_capacity(events.len());
                for new in events {
                    let mut pending = Vec::with_capacity(new.subscriptions.len());
                    let at = new.event.ingested_ms;
                    for sub in new.subscriptions {
                        let entry = match counters.entry(sub) {
                            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                e.insert(load_counters(&*counter_rows, sub)?)
                            }
                        };
                        let Some(c) = entry.as_mut() else { continue };
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
                        deliveries.insert((sub, delivery_id), row.encode().as_slice())?;
                        due.insert((sub, at, delivery_id), ())?;
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
                    // An event nothing subscribed to is acknowledged but not kept.
                    if !pending.is_empty() {
                        event_rows.insert(seq, encode_event(&new.event).as_slice())?;
                        seq += 1;
                    }
                    created.push(pending);
                }
                for (sub, c) in counters {
                    if let Some(c) = c {
                        counter_rows.insert(sub, c.encode().as_slice())?;
                    }
                }
                meta.insert(NEXT_EVENT_SEQ, seq)?;
                meta.insert(NEXT_DELIVERY_ID, delivery_id)?;
                Ok(created)
            })
            .await
    }

    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        self.writer
            .write(move |t| {
                let deliveries = &mut t.deliveries;
                let due = &mut t.due;
                let dead = &mut t.dead;
                let events = &t.events;
                let counter_rows = &mut t.counters;
                let now = now_ms();
                for outcome in outcomes {
                    let key = (outcome.subscription, outcome.delivery);
                    let Some(mut row) = deliveries
                        .get(key)?
                        .map(|v| DeliveryRow::decode(v.value()))
                        .transpose()?
                    else {
                        continue;
                    };
                    let Some(mut c) = load_counters(&*counter_rows, outcome.subscription)? else {
                        continue;
                    };
                    due.remove((outcome.subscription, row.due_ms, outcome.delivery))?;
                    row.attempts = outcome.attempts;
                    row.last_status = outcome.status.unwrap_or(0);
                    row.last_error = outcome.error.clone().unwrap_or_default();
                    match outcome.kind {
                        OutcomeKind::Delivered => {
                            deliveries.remove(key)?;
                            c.delivered += 1;
                            c.pending = c.pending.saturating_sub(1);
                        }
                        OutcomeKind::Retry { due_ms } => {
                            row.due_ms = due_ms;
                            deliveries.insert(key, row.encode().as_slice())?;
                            due.insert((outcome.subscription, due_ms, outcome.delivery), ())?;
                            c.failed_attempts += 1;
                        }
                        OutcomeKind::Dead { reason } => {
                            deliveries.remove(key)?;
                            let event_bytes =
                                events
                                    .get(row.event_seq)?
                                    .ok_or_else(|| StoreError::Corrupt {
                                        table: "events",
                                        detail: format!(
                                            "event {} of delivery {} is missing",
                                            row.event_seq, outcome.delivery
                                        ),
                                    })?;
                            let event = decode_event(event_bytes.value())?;
                            let letter = DeadLetter {
                                id: outcome.delivery,
                                subscription: outcome.subscription,
                                event_id: event.id.clone(),
                                envelope: event.envelope.clone(),
                                hops: event.hops,
                                traceparent: event.trace.traceparent(),
                                tracestate: event.trace.tracestate.clone(),
                                attempts: outcome.attempts,
                                last_status: outcome.status,
                                last_error: outcome.error,
                                reason,
                                ingested_ms: row.ingested_ms,
                                dead_ms: now,
                            };
                            dead.insert(key, json(&letter)?.as_str())?;
                            c.failed_attempts += 1;
                            c.dead += 1;
                            c.pending = c.pending.saturating_sub(1);
                        }
                    }
                    counter_rows.insert(outcome.subscription, c.encode().as_slice())?;
                }
                Ok(())
            })
            .await
    }

    async fn load_pending(
        &self,
        subscription: u64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.read(move |txn| {
            let due = txn.open_table(DUE)?;
            let deliveries = txn.open_table(DELIVERIES)?;
            let events = txn.open_table(EVENTS)?;
            let mut cache = HashMap::new();
            let mut out = Vec::new();
            for row in due
                .range((subscription, 0, 0)..=(subscription, u64::MAX, u64::MAX))?
                .take(limit)
            {
                let (_, _, id) = row?.0.value();
                let Some(bytes) = deliveries.get((subscription, id))? else {
                    continue;
                };
                let delivery = DeliveryRow::decode(bytes.value())?;
                out.push(decode_pending(
                    subscription,
                    id,
                    &delivery,
                    &events,
                    &mut cache,
                )?);
            }
            Ok(out)
        })
        .await
    }

    async fn stats(&self, subscription: u64) -> Result<SubscriptionStats, StoreError> {
        self.read(move |txn| {
            let counters =
                load_counters(&txn.open_table(COUNTERS)?, subscription)?.ok_or_else(|| {
                    StoreError::NotFound(format!("subscription id {subscription} does not exist"))
                })?;
            let deliveries = txn.open_table(DELIVERIES)?;
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
        })
        .await
    }

    async fn list_dead_letters(
        &self,
        subscription: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(move |txn| {
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
        })
        .await
    }

    async fn redrive(&self, subscription: u64, ids: Option<Vec<u64>>) -> Result<u64, StoreError> {
        if let Some(ids) = ids {
            return self
                .writer
                .write(move |t| redrive_rows(t, subscription, Some(ids)))
                .await;
        }
        // "All" goes in chunks, so that a huge dead-letter list never becomes one huge commit.
        let mut total = 0;
        loop {
            let count = self
                .writer
                .write(move |t| redrive_rows(t, subscription, None))
                .await?;
            total += count;
            if count < REDRIVE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn purge_dead_letters(&self, subscription: u64) -> Result<u64, StoreError> {
        self.writer
            .write(move |t| {
                let counter_rows = &mut t.counters;
                let Some(mut c) = load_counters(&*counter_rows, subscription)? else {
                    return Err(StoreError::NotFound(format!(
                        "subscription id {subscription} does not exist"
                    )));
                };
                let mut count = 0u64;
                t.dead
                    .retain_in((subscription, 0)..=(subscription, u64::MAX), |_, _| {
                        count += 1;
                        false
                    })?;
                c.dead -= count;
                c.purged += count;
                counter_rows.insert(subscription, c.encode().as_slice())?;
                Ok(count)
            })
            .await
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        let mut removed = 0;
        loop {
            let chunk = self.writer.write(collect_events).await?;
            removed += chunk;
            if chunk < GC_CHUNK {
                break;
            }
        }
        if removed > 0 {
            tracing::debug!(removed, "store: collected delivered events");
        }
        Ok(())
    }
}

/// Turns dead letters back into pending deliveries: those listed, or the first `REDRIVE_CHUNK`.
fn redrive_rows(
    t: &mut Tables<'_>,
    subscription: u64,
    ids: Option<Vec<u64>>,
) -> Result<u64, StoreError> {
    let dead = &mut t.dead;
    let counter_rows = &mut t.counters;
    let Some(mut c) = load_counters(&*counter_rows, subscription)? else {
        return Err(StoreError::NotFound(format!(
            "subscription id {subscription} does not exist"
        )));
    };
    let wanted: Vec<u64> = match ids {
        Some(ids) => ids,
        None => {
            let mut first = Vec::with_capacity(REDRIVE_CHUNK);
            let rows = dead.range((subscription, 0)..=(subscription, u64::MAX))?;
            for row in rows.take(REDRIVE_CHUNK) {
                first.push(row?.0.value().1);
            }
            first
        }
    };
    let meta = &mut t.meta;
    let events = &mut t.events;
    let deliveries = &mut t.deliveries;
    let due = &mut t.due;
    let mut seq = meta_get(&meta, NEXT_EVENT_SEQ)?;
    let mut delivery_id = meta_get(&meta, NEXT_DELIVERY_ID)?;
    let now = now_ms();
    let mut count = 0;
    for id in wanted {
        let Some(letter) = dead.remove((subscription, id))? else {
            continue;
        };
        let letter: DeadLetter = from_json("dead_letters", letter.value())?;
        let trace = switchyard_model::TraceContext::parse(
            &letter.traceparent,
            letter.tracestate.as_deref(),
        )
        .ok_or_else(|| StoreError::Corrupt {
            table: "dead_letters",
            detail: format!("dead letter {id} has an invalid traceparent"),
        })?;
        let event = switchyard_model::Event {
            id: letter.event_id,
            envelope: letter.envelope,
            ingested_ms: letter.ingested_ms,
            hops: letter.hops,
            trace,
        };
        events.insert(seq, encode_event(&event).as_slice())?;
        // A fresh id keeps "delivery ids grow with time", which oldest-pending and
        // event collection rely on.
        let row = DeliveryRow {
            event_seq: seq,
            attempts: 0,
            due_ms: now,
            ingested_ms: letter.ingested_ms,
            pending_since_ms: now,
            last_status: 0,
            last_error: String::new(),
        };
        deliveries.insert((subscription, delivery_id), row.encode().as_slice())?;
        due.insert((subscription, now, delivery_id), ())?;
        seq += 1;
        delivery_id += 1;
        count += 1;
    }
    c.dead -= count;
    c.pending += count;
    counter_rows.insert(subscription, c.encode().as_slice())?;
    meta.insert(NEXT_EVENT_SEQ, seq)?;
    meta.insert(NEXT_DELIVERY_ID, delivery_id)?;
    Ok(count)
}

/// Removes up to `GC_CHUNK` events that no pending delivery refers to; returns how many.
fn collect_events(t: &mut Tables<'_>) -> Result<usize, StoreError> {
    // Sequences and delivery ids grow together, so each subscription's first pending delivery
    // refers to its lowest event; below the lowest of those, nothing refers to an event.
    let mut low_water = meta_get(&t.meta, NEXT_EVENT_SEQ)?;
    for row in t.counters.iter()? {
        let sub = row?.0.value();
        if let Some(first) = t.deliveries.range((sub, 0)..=(sub, u64::MAX))?.next() {
            low_water = low_water.min(DeliveryRow::decode(first?.1.value())?.event_seq);
        }
    }
    let mut doomed = Vec::with_capacity(GC_CHUNK);
    for row in t.events.range(..low_water)?.take(GC_CHUNK) {
        doomed.push(row?.0.value());
    }
    for seq in &doomed {
        t.events.remove(*seq)?;
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let _first = EmbeddedStore::open(&path).unwrap();
        let second = EmbeddedStore::open(&path);
        assert!(
            matches!(second, Err(StoreError::Conflict(_))),
            "{:?}",
            second.err()
        );
    }

    #[test]
    fn dead_reasons_have_stable_codes() {
        assert_eq!(
            crate::DeadReason::NonRetryableStatus.as_str(),
            "non_retryable_status"
        );
    }
}
