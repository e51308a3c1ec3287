//! The embedded store: one redb file in the data directory, zero setup.
//!
//! Owns the file ([`file`]) and its single writer thread ([`writer`]); reads run on tokio's
//! blocking pool against MVCC snapshots, so they never wait for a commit. Only one process can
//! open the file at a time (redb locks it), which is what keeps two `serve`s off the same data
//! directory. A full disk or an I/O error fails writes (and reads) with an [`crate::Outage`]
//! until the writer has re-opened the file; no restart is needed.
//!
//! Must not: decide delivery policy, or hold a write transaction across an `.await`.

mod archives;
mod codec;
mod deliveries;
mod file;
mod history;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable, Table};
use switchyard_model::{ArchiveSpec, BusSpec, SubscriptionSpec, now_ms};

use self::codec::*;
use self::file::StoreFile;
use self::writer::Writer;
use crate::records::{from_json, to_json as json};
use crate::{
    ArchiveCursor, ArchiveRecord, ArchiveStats, ArchivedEvent, AttemptRecord, BusRecord, Change,
    DeadLetter, DocumentKind, DocumentRecord, EventTrail, NewEvent, Outcome, PendingDelivery,
    PendingOrder, Store, StoreError, StoreOptions, SubscriptionRecord, SubscriptionStats,
};

pub struct EmbeddedStore {
    /// Shared with the writer thread; reads open their own snapshots on its current handle.
    file: Arc<StoreFile>,
    writer: Writer,
    options: StoreOptions,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. Fails if another process holds it.
    pub fn open(path: &Path, options: StoreOptions) -> Result<EmbeddedStore, StoreError> {
        let file = Arc::new(StoreFile::open(path, options.cache_bytes)?);
        let writer = Writer::start(Arc::clone(&file))?;
        Ok(EmbeddedStore {
            file,
            writer,
            options,
        })
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || work(&file.database()?.begin_read()?))
            .await
            .map_err(|e| StoreError::Storage(format!("read task failed: {e}")))?
    }
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
            let event = decode_event(bytes.value())?.event;
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
                .ok_or_else(|| StoreError::no_bus(&name))?;
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
        let retention_ms = self.options.history_retention_ms;
        self.writer
            .write(move |t| {
                if t.buses.get(name.as_str())?.is_none() {
                    return Err(StoreError::no_bus(&name));
                }
                let doomed = subscriptions_of(&t.subscriptions, Some(&name))?;
                let archives = archives::of_bus(&t.archives, Some(&name))?;
                if (!doomed.is_empty() || !archives.is_empty()) && !force {
                    return Err(StoreError::bus_in_use(&name, doomed.len(), archives.len()));
                }
                for archive in &archives {
                    archives::delete(t, archive)?;
                }
                for sub in &doomed {
                    t.subscriptions
                        .remove((sub.bus.as_str(), sub.name.as_str()))?;
                    deliveries::delete_subscription_rows(t, sub.id, retention_ms)?;
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
                    return Err(StoreError::no_bus(&bus));
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
                        let id = meta_get(meta, NEXT_SUBSCRIPTION_ID)?;
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
                .ok_or_else(|| StoreError::no_subscription(&bus, &name))?;
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
        let retention_ms = self.options.history_retention_ms;
        self.writer
            .write(move |t| {
                let subscriptions = &mut t.subscriptions;
                let record: SubscriptionRecord = subscriptions
                    .remove((bus.as_str(), name.as_str()))?
                    .map(|v| from_json("subscriptions", v.value()))
                    .transpose()?
                    .ok_or_else(|| StoreError::no_subscription(&bus, &name))?;
                deliveries::delete_subscription_rows(t, record.id, retention_ms)?;
                Ok(record)
            })
            .await
    }

    async fn put_archive(
        &self,
        bus: &str,
        name: &str,
        spec: ArchiveSpec,
    ) -> Result<(ArchiveRecord, bool), StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.writer
            .write(move |t| archives::put(t, bus, name, spec))
            .await
    }

    async fn get_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.read(move |txn| {
            let table = txn.open_table(ARCHIVES)?;
            let row = table.get((bus.as_str(), name.as_str()))?;
            match row {
                Some(v) => from_json("archives", v.value()),
                None => Err(StoreError::no_archive(&bus, &name)),
            }
        })
        .await
    }

    async fn list_archives(&self, bus: Option<&str>) -> Result<Vec<ArchiveRecord>, StoreError> {
        let bus = bus.map(str::to_string);
        self.read(move |txn| archives::of_bus(&txn.open_table(ARCHIVES)?, bus.as_deref()))
            .await
    }

    async fn delete_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.writer
            .write(move |t| {
                let record: ArchiveRecord = match t.archives.get((bus.as_str(), name.as_str()))? {
                    Some(v) => from_json("archives", v.value())?,
                    None => return Err(StoreError::no_archive(&bus, &name)),
                };
                archives::delete(t, &record)?;
                Ok(record)
            })
            .await
    }

    async fn archive_stats(&self, archive: u64) -> Result<ArchiveStats, StoreError> {
        self.read(move |txn| archives::stats(txn, archive)).await
    }

    async fn read_archive(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
        after: Option<ArchiveCursor>,
        limit: usize,
    ) -> Result<Vec<ArchivedEvent>, StoreError> {
        self.read(move |txn| archives::read(txn, archive, from_ms, to_ms, after, limit))
            .await
    }

    async fn count_archived(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<u64, StoreError> {
        self.read(move |txn| archives::count(txn, archive, from_ms, to_ms))
            .await
    }

    async fn put_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<(DocumentRecord, bool), StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| {
                let key = (kind.as_str(), name.as_str());
                let existing: Option<DocumentRecord> = t
                    .documents
                    .get(key)?
                    .map(|v| from_json("documents", v.value()))
                    .transpose()?;
                let now = now_ms();
                let record = DocumentRecord {
                    created_ms: existing.as_ref().map_or(now, |e| e.created_ms),
                    updated_ms: now,
                    name: name.clone(),
                    body,
                };
                t.documents.insert(key, json(&record)?.as_str())?;
                Ok((record, existing.is_none()))
            })
            .await
    }

    async fn create_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<DocumentRecord, StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| {
                let key = (kind.as_str(), name.as_str());
                if let Some(existing) = t.documents.get(key)? {
                    return from_json("documents", existing.value());
                }
                let now = now_ms();
                let record = DocumentRecord {
                    created_ms: now,
                    updated_ms: now,
                    name: name.clone(),
                    body,
                };
                t.documents.insert(key, json(&record)?.as_str())?;
                Ok(record)
            })
            .await
    }

    async fn list_documents(&self, kind: DocumentKind) -> Result<Vec<DocumentRecord>, StoreError> {
        self.read(move |txn| {
            let table = txn.open_table(DOCUMENTS)?;
            let mut out = Vec::new();
            for row in table.range((kind.as_str(), "")..)? {
                let (key, value) = row?;
                if key.value().0 != kind.as_str() {
                    break;
                }
                out.push(from_json("documents", value.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<DocumentRecord, StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| {
                t.documents
                    .remove((kind.as_str(), name.as_str()))?
                    .map(|v| from_json("documents", v.value()))
                    .transpose()?
                    .ok_or_else(|| StoreError::no_document(kind, &name))
            })
            .await
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Vec<PendingDelivery>>, StoreError> {
        let options = self.options;
        self.writer
            .write(move |t| deliveries::append(t, events, options))
            .await
    }

    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        let retention_ms = self.options.history_retention_ms;
        self.writer
            .write(move |t| deliveries::record_outcomes(t, outcomes, retention_ms))
            .await
    }

    async fn load_pending(
        &self,
        subscription: u64,
        limit: usize,
        order: PendingOrder,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.read(move |txn| {
            let deliveries = txn.open_table(DELIVERIES)?;
            let events = txn.open_table(EVENTS)?;
            let ids: Vec<u64> = match order {
                PendingOrder::Due => {
                    let due = txn.open_table(DUE)?;
                    let rows =
                        due.range((subscription, 0, 0)..=(subscription, u64::MAX, u64::MAX))?;
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
            let mut cache = HashMap::new();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
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
            let counters = load_counters(&txn.open_table(COUNTERS)?, subscription)?
                .ok_or_else(|| StoreError::no_subscription_id(subscription))?;
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
                .write(move |t| deliveries::redrive(t, subscription, Some(ids)))
                .await;
        }
        // "All" goes in chunks, so that a huge dead-letter list never becomes one huge commit.
        let mut total = 0;
        loop {
            let count = self
                .writer
                .write(move |t| deliveries::redrive(t, subscription, None))
                .await?;
            total += count;
            if count < deliveries::REDRIVE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    async fn purge_dead_letters(&self, subscription: u64) -> Result<u64, StoreError> {
        self.writer
            .write(move |t| deliveries::purge(t, subscription))
            .await
    }

    async fn list_attempts(
        &self,
        subscription: u64,
        before: Option<(u64, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(move |txn| history::list_attempts(txn, subscription, before, limit))
            .await
    }

    async fn event_trail(&self, bus: &str, event_id: &str) -> Result<EventTrail, StoreError> {
        let (bus, event_id) = (bus.to_string(), event_id.to_string());
        self.read(move |txn| history::event_trail(txn, &bus, &event_id))
            .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.read(|txn| txn.open_table(META).map(|_| ()).map_err(StoreError::from))
            .await?;
        // An empty job through the writer: it answers only if the writer thread is alive and
        // commits succeed.
        self.writer.write(|_| Ok(())).await
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        let retention_ms = self.options.history_retention_ms;
        let mut looked_at = 0;
        loop {
            let chunk = self
                .writer
                .write(move |t| deliveries::collect_history(t, now_ms(), retention_ms))
                .await?;
            looked_at += chunk;
            if chunk < deliveries::GC_CHUNK {
                break;
            }
        }
        if looked_at > 0 {
            tracing::debug!(looked_at, "store: collected history past its retention");
        }
        let window_ms = self.options.dedup_window_ms;
        while self
            .writer
            .write(move |t| deliveries::collect_dedup(t, now_ms(), window_ms))
            .await?
            == deliveries::GC_CHUNK
        {}
        while self
            .writer
            .write(move |t| archives::collect(t, now_ms()))
            .await?
            == deliveries::GC_CHUNK
        {}
        Ok(())
    }

    async fn claim_subscriptions(
        &self,
        _node: &str,
        _lease_ms: u64,
    ) -> Result<Vec<u64>, StoreError> {
        // The file is locked to one process, so this node is the only one there is.
        let all = self.list_subscriptions(None).await?;
        Ok(all.into_iter().map(|s| s.id).collect())
    }

    async fn release_subscriptions(&self, _node: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn hand_over_subscription(
        &self,
        _node: &str,
        _subscription: u64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let _first = EmbeddedStore::open(&path, StoreOptions::default()).unwrap();
        let second = EmbeddedStore::open(&path, StoreOptions::default());
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
