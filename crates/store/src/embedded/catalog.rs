//! The catalog in the embedded store: buses, subscriptions, archives and named documents.
//!
//! Every write runs inside one group commit. A record that belongs to a bus (a subscription, an
//! archive) is written by one helper, [`put_on_bus`], as the PostgreSQL store's catalog does:
//! created with a fresh id and its bookkeeping row (counters, archive counts), or replaced keeping
//! both. Deleting a subscription removes its rows with it
//! ([`deliveries::delete_subscription_rows`]); deleting an archive leaves its copies to
//! [`super::collect`].
//!
//! Must not: touch the delivery tables other than through [`deliveries`].

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use switchyard_model::{ArchiveSpec, BusSpec, SubscriptionSpec, now_ms};

use super::codec::*;
use super::deliveries;
use crate::records::{from_json, to_json as json};
use crate::{
    ArchiveRecord, BusRecord, DocumentKind, DocumentRecord, StoreError, SubscriptionRecord,
};

type NamedTable<'txn> = Table<'txn, (&'static str, &'static str), &'static str>;

/// A record that belongs to a bus and is kept by (bus, name), as JSON.
pub(super) trait OnBus: Serialize + DeserializeOwned {
    type Spec;
    /// Its table's name in a corrupt-record error.
    const TABLE: &'static str;
    const DEFINITION: TableDefinition<'static, (&'static str, &'static str), &'static str>;
    /// The `META` counter its ids come from.
    const NEXT_ID: &'static str;
    fn rows<'a, 'txn>(t: &'a mut Tables<'txn>) -> &'a mut NamedTable<'txn>;
    fn missing(bus: &str, name: &str) -> StoreError;
    fn created(id: u64, bus: String, name: String, spec: Self::Spec, now: u64) -> Self;
    fn replaced(self, spec: Self::Spec, now: u64) -> Self;
    /// Writes what a new record needs besides itself.
    fn on_create(t: &mut Tables<'_>, id: u64) -> Result<(), StoreError>;
}

impl OnBus for SubscriptionRecord {
    type Spec = SubscriptionSpec;
    const TABLE: &'static str = "subscriptions";
    const DEFINITION: TableDefinition<'static, (&'static str, &'static str), &'static str> =
        SUBSCRIPTIONS;
    const NEXT_ID: &'static str = NEXT_SUBSCRIPTION_ID;

    fn rows<'a, 'txn>(t: &'a mut Tables<'txn>) -> &'a mut NamedTable<'txn> {
        &mut t.subscriptions
    }

    fn missing(bus: &str, name: &str) -> StoreError {
        StoreError::no_subscription(bus, name)
    }

    fn created(id: u64, bus: String, name: String, spec: SubscriptionSpec, now: u64) -> Self {
        SubscriptionRecord {
            id,
            bus,
            name,
            spec,
            created_ms: now,
            updated_ms: now,
        }
    }

    fn replaced(self, spec: SubscriptionSpec, now: u64) -> Self {
        SubscriptionRecord {
            spec,
            updated_ms: now,
            ..self
        }
    }

    fn on_create(t: &mut Tables<'_>, id: u64) -> Result<(), StoreError> {
        t.counters
            .insert(id, Counters::default().encode().as_slice())?;
        Ok(())
    }
}

impl OnBus for ArchiveRecord {
    type Spec = ArchiveSpec;
    const TABLE: &'static str = "archives";
    const DEFINITION: TableDefinition<'static, (&'static str, &'static str), &'static str> =
        ARCHIVES;
    const NEXT_ID: &'static str = NEXT_ARCHIVE_ID;

    fn rows<'a, 'txn>(t: &'a mut Tables<'txn>) -> &'a mut NamedTable<'txn> {
        &mut t.archives
    }

    fn missing(bus: &str, name: &str) -> StoreError {
        StoreError::no_archive(bus, name)
    }

    fn created(id: u64, bus: String, name: String, spec: ArchiveSpec, now: u64) -> Self {
        ArchiveRecord {
            id,
            bus,
            name,
            spec,
            created_ms: now,
            updated_ms: now,
        }
    }

    fn replaced(self, spec: ArchiveSpec, now: u64) -> Self {
        ArchiveRecord {
            spec,
            updated_ms: now,
            ..self
        }
    }

    fn on_create(t: &mut Tables<'_>, id: u64) -> Result<(), StoreError> {
        t.archive_counts.insert(id, (0, 0))?;
        Ok(())
    }
}

/// Creates or replaces a record of an existing bus; the flag says whether it was created.
pub(super) fn put_on_bus<T: OnBus>(
    t: &mut Tables<'_>,
    bus: String,
    name: String,
    spec: T::Spec,
) -> Result<(T, bool), StoreError> {
    if t.buses.get(bus.as_str())?.is_none() {
        return Err(StoreError::no_bus(&bus));
    }
    let key = (bus.clone(), name.clone());
    let existing: Option<T> = T::rows(t)
        .get((bus.as_str(), name.as_str()))?
        .map(|v| from_json(T::TABLE, v.value()))
        .transpose()?;
    let now = now_ms();
    let created = existing.is_none();
    let record = match existing {
        Some(old) => old.replaced(spec, now),
        None => {
            let id = meta_get(&t.meta, T::NEXT_ID)?;
            t.meta.insert(T::NEXT_ID, id + 1)?;
            T::on_create(t, id)?;
            T::created(id, bus, name, spec, now)
        }
    };
    T::rows(t).insert((key.0.as_str(), key.1.as_str()), json(&record)?.as_str())?;
    Ok((record, created))
}

pub(super) fn get_on_bus<T: OnBus>(
    txn: &ReadTransaction,
    bus: &str,
    name: &str,
) -> Result<T, StoreError> {
    let table = txn.open_table(T::DEFINITION)?;
    let value = table
        .get((bus, name))?
        .ok_or_else(|| T::missing(bus, name))?;
    from_json(T::TABLE, value.value())
}

pub(super) fn list_on_bus<T: OnBus>(
    txn: &ReadTransaction,
    bus: Option<&str>,
) -> Result<Vec<T>, StoreError> {
    of_bus(&txn.open_table(T::DEFINITION)?, T::TABLE, bus)
}

pub(super) fn put_bus(
    t: &mut Tables<'_>,
    name: String,
    spec: BusSpec,
) -> Result<(BusRecord, bool), StoreError> {
    let now = now_ms();
    let existing: Option<BusRecord> = t
        .buses
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
    t.buses
        .insert(record.name.as_str(), json(&record)?.as_str())?;
    Ok((record, created))
}

pub(super) fn get_bus(txn: &ReadTransaction, name: &str) -> Result<BusRecord, StoreError> {
    let buses = txn.open_table(BUSES)?;
    let value = buses.get(name)?.ok_or_else(|| StoreError::no_bus(name))?;
    from_json("buses", value.value())
}

pub(super) fn list_buses(txn: &ReadTransaction) -> Result<Vec<BusRecord>, StoreError> {
    let buses = txn.open_table(BUSES)?;
    let mut out = Vec::new();
    for row in buses.iter()? {
        out.push(from_json("buses", row?.1.value())?);
    }
    Ok(out)
}

/// Deletes a bus; with `force` its subscriptions (with their rows) and archives too. Returns the
/// deleted subscriptions.
pub(super) fn delete_bus(
    t: &mut Tables<'_>,
    name: &str,
    force: bool,
    retention_ms: u64,
) -> Result<Vec<SubscriptionRecord>, StoreError> {
    if t.buses.get(name)?.is_none() {
        return Err(StoreError::no_bus(name));
    }
    let doomed: Vec<SubscriptionRecord> =
        of_bus(&t.subscriptions, SubscriptionRecord::TABLE, Some(name))?;
    let archives: Vec<ArchiveRecord> = of_bus(&t.archives, ArchiveRecord::TABLE, Some(name))?;
    if (!doomed.is_empty() || !archives.is_empty()) && !force {
        return Err(StoreError::bus_in_use(name, doomed.len(), archives.len()));
    }
    for archive in &archives {
        forget_archive(t, archive)?;
    }
    for sub in &doomed {
        t.subscriptions
            .remove((sub.bus.as_str(), sub.name.as_str()))?;
        deliveries::delete_subscription_rows(t, sub.id, retention_ms)?;
    }
    t.buses.remove(name)?;
    Ok(doomed)
}

/// Deletes a subscription with its pending deliveries, dead letters, attempts and counters.
pub(super) fn delete_subscription(
    t: &mut Tables<'_>,
    bus: &str,
    name: &str,
    retention_ms: u64,
) -> Result<SubscriptionRecord, StoreError> {
    let record: SubscriptionRecord = t
        .subscriptions
        .remove((bus, name))?
        .map(|v| from_json("subscriptions", v.value()))
        .transpose()?
        .ok_or_else(|| StoreError::no_subscription(bus, name))?;
    deliveries::delete_subscription_rows(t, record.id, retention_ms)?;
    Ok(record)
}

pub(super) fn delete_archive(
    t: &mut Tables<'_>,
    bus: &str,
    name: &str,
) -> Result<ArchiveRecord, StoreError> {
    let record: ArchiveRecord = match t.archives.get((bus, name))? {
        Some(v) => from_json("archives", v.value())?,
        None => return Err(StoreError::no_archive(bus, name)),
    };
    forget_archive(t, &record)?;
    Ok(record)
}

/// Removes an archive's record at once and leaves its copies to [`super::collect`].
fn forget_archive(t: &mut Tables<'_>, record: &ArchiveRecord) -> Result<(), StoreError> {
    t.archives
        .remove((record.bus.as_str(), record.name.as_str()))?;
    t.archive_counts.remove(record.id)?;
    t.deleted_archives.insert(record.id, ())?;
    Ok(())
}

pub(super) fn put_document(
    t: &mut Tables<'_>,
    kind: DocumentKind,
    name: String,
    body: String,
) -> Result<(DocumentRecord, bool), StoreError> {
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
}

pub(super) fn create_document(
    t: &mut Tables<'_>,
    kind: DocumentKind,
    name: String,
    body: String,
) -> Result<DocumentRecord, StoreError> {
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
}

pub(super) fn list_documents(
    txn: &ReadTransaction,
    kind: DocumentKind,
) -> Result<Vec<DocumentRecord>, StoreError> {
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
}

pub(super) fn delete_document(
    t: &mut Tables<'_>,
    kind: DocumentKind,
    name: &str,
) -> Result<DocumentRecord, StoreError> {
    t.documents
        .remove((kind.as_str(), name))?
        .map(|v| from_json("documents", v.value()))
        .transpose()?
        .ok_or_else(|| StoreError::no_document(kind, name))
}
