//! Archives in the embedded store: their records, the copies of events they keep, and the
//! collection of copies past their retention or of deleted archives.
//!
//! Every write runs inside one group commit and keeps `ARCHIVE_COUNTS` equal to what `ARCHIVED`
//! holds per archive. Collection removes at most [`GC_CHUNK`] copies per commit, so a large
//! expiry never holds publishing up for long.
//!
//! Must not: match events (callers say which archives keep an event) or archive a replayed event
//! (callers pass no archives for those).

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable};
use switchyard_model::{ArchiveSpec, Event, now_ms};

use super::codec::*;
use super::deliveries::GC_CHUNK;
use super::meta_get;
use crate::records::{from_json, to_json as json};
use crate::{ArchiveCursor, ArchiveRecord, ArchiveStats, ArchivedEvent, StoreError};

pub(super) fn put(
    t: &mut Tables<'_>,
    bus: String,
    name: String,
    spec: ArchiveSpec,
) -> Result<(ArchiveRecord, bool), StoreError> {
    if t.buses.get(bus.as_str())?.is_none() {
        return Err(StoreError::no_bus(&bus));
    }
    let existing: Option<ArchiveRecord> = t
        .archives
        .get((bus.as_str(), name.as_str()))?
        .map(|v| from_json("archives", v.value()))
        .transpose()?;
    let now = now_ms();
    let created = existing.is_none();
    let record = match existing {
        Some(old) => ArchiveRecord {
            spec,
            updated_ms: now,
            ..old
        },
        None => {
            let id = meta_get(&t.meta, NEXT_ARCHIVE_ID)?;
            t.meta.insert(NEXT_ARCHIVE_ID, id + 1)?;
            t.archive_counts.insert(id, (0, 0))?;
            ArchiveRecord {
                id,
                bus,
                name,
                spec,
                created_ms: now,
                updated_ms: now,
            }
        }
    };
    t.archives.insert(
        (record.bus.as_str(), record.name.as_str()),
        json(&record)?.as_str(),
    )?;
    Ok((record, created))
}

/// Removes an archive's record at once and leaves its copies to [`collect`].
pub(super) fn delete(t: &mut Tables<'_>, record: &ArchiveRecord) -> Result<(), StoreError> {
    t.archives
        .remove((record.bus.as_str(), record.name.as_str()))?;
    t.archive_counts.remove(record.id)?;
    t.deleted_archives.insert(record.id, ())?;
    Ok(())
}

pub(super) fn of_bus(
    table: &impl ReadableTable<(&'static str, &'static str), &'static str>,
    bus: Option<&str>,
) -> Result<Vec<ArchiveRecord>, StoreError> {
    let rows = match bus {
        Some(bus) => table.range((bus, "")..)?,
        None => table.range::<(&str, &str)>(..)?,
    };
    let mut out = Vec::new();
    for row in rows {
        let (key, value) = row?;
        if bus.is_some_and(|bus| key.value().0 != bus) {
            break;
        }
        out.push(from_json("archives", value.value())?);
    }
    Ok(out)
}

/// Copies of the events of one append, counted per archive and written once at its end.
pub(super) struct Keeper(HashMap<u64, (u64, u64)>);

impl Keeper {
    pub(super) fn new() -> Self {
        Keeper(HashMap::new())
    }

    /// Keeps a copy of `event` (stored as event `seq`) in each of `archives` that still exists.
    pub(super) fn keep(
        &mut self,
        t: &mut Tables<'_>,
        archives: &[u64],
        event: &Event,
        bus: &str,
        seq: u64,
    ) -> Result<(), StoreError> {
        let mut bytes = None;
        for &archive in archives {
            let counts = match self.0.entry(archive) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    // An archive deleted since matching keeps nothing.
                    let Some(counts) = t.archive_counts.get(archive)?.map(|v| v.value()) else {
                        continue;
                    };
                    e.insert(counts)
                }
            };
            let bytes = bytes.get_or_insert_with(|| encode_event(event, bus, &[]));
            t.archived
                .insert((archive, event.ingested_ms, seq), bytes.as_slice())?;
            counts.0 += 1;
            counts.1 += event.envelope.len() as u64;
        }
        Ok(())
    }

    pub(super) fn write(self, t: &mut Tables<'_>) -> Result<(), StoreError> {
        for (archive, counts) in self.0 {
            t.archive_counts.insert(archive, counts)?;
        }
        Ok(())
    }
}

/// Removes up to [`GC_CHUNK`] copies: first those of deleted archives, then those past their
/// archive's retention. Returns how many; fewer than a chunk means nothing is left to do now.
pub(super) fn collect(t: &mut Tables<'_>, now: u64) -> Result<usize, StoreError> {
    let mut budget = GC_CHUNK;
    let deleted: Vec<u64> = t
        .deleted_archives
        .iter()?
        .map(|row| row.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for archive in deleted {
        let removed = remove_range(t, archive, u64::MAX, budget)?;
        budget -= removed.0;
        if budget == 0 {
            return Ok(GC_CHUNK);
        }
        t.deleted_archives.remove(archive)?;
    }
    for record in of_bus(&t.archives, None)? {
        let Some(retention_ms) = record.spec.retention_ms() else {
            continue;
        };
        let (removed, bytes) =
            remove_range(t, record.id, now.saturating_sub(retention_ms), budget)?;
        let counts = t.archive_counts.get(record.id)?.map(|v| v.value());
        if removed > 0
            && let Some((events, kept)) = counts
        {
            let counts = (
                events.saturating_sub(removed as u64),
                kept.saturating_sub(bytes),
            );
            t.archive_counts.insert(record.id, counts)?;
        }
        budget -= removed;
        if budget == 0 {
            return Ok(GC_CHUNK);
        }
    }
    Ok(GC_CHUNK - budget)
}

/// Removes up to `limit` copies of `archive` accepted before `before_ms`; returns how many and
/// their envelope bytes.
fn remove_range(
    t: &mut Tables<'_>,
    archive: u64,
    before_ms: u64,
    limit: usize,
) -> Result<(usize, u64), StoreError> {
    let mut doomed = Vec::new();
    let mut bytes = 0;
    for row in t
        .archived
        .range((archive, 0, 0)..(archive, before_ms, 0))?
        .take(limit)
    {
        let (key, value) = row?;
        bytes += decode_event(value.value())?.event.envelope.len() as u64;
        doomed.push(key.value());
    }
    for key in &doomed {
        t.archived.remove(key)?;
    }
    Ok((doomed.len(), bytes))
}

pub(super) fn stats(txn: &ReadTransaction, archive: u64) -> Result<ArchiveStats, StoreError> {
    let counts = txn.open_table(ARCHIVE_COUNTS)?;
    let Some((events, bytes)) = counts.get(archive)?.map(|v| v.value()) else {
        return Err(StoreError::NotFound(format!(
            "archive {archive} does not exist"
        )));
    };
    let archived = txn.open_table(ARCHIVED)?;
    let oldest_ms = archived
        .range((archive, 0, 0)..(archive, u64::MAX, u64::MAX))?
        .next()
        .transpose()?
        .map(|(key, _)| key.value().1);
    Ok(ArchiveStats {
        events,
        bytes,
        oldest_ms,
    })
}

pub(super) fn read(
    txn: &ReadTransaction,
    archive: u64,
    from_ms: u64,
    to_ms: u64,
    after: Option<ArchiveCursor>,
    limit: usize,
) -> Result<Vec<ArchivedEvent>, StoreError> {
    let archived = txn.open_table(ARCHIVED)?;
    let start = match after {
        Some(c) if c.ingested_ms >= from_ms => (archive, c.ingested_ms, c.seq.saturating_add(1)),
        _ => (archive, from_ms, 0),
    };
    let mut out = Vec::new();
    for row in archived.range(start..(archive, to_ms, 0))?.take(limit) {
        let (key, value) = row?;
        let (_, ingested_ms, seq) = key.value();
        out.push(ArchivedEvent {
            cursor: ArchiveCursor { ingested_ms, seq },
            event: decode_event(value.value())?.event,
        });
    }
    Ok(out)
}

pub(super) fn count(
    txn: &ReadTransaction,
    archive: u64,
    from_ms: u64,
    to_ms: u64,
) -> Result<u64, StoreError> {
    let archived = txn.open_table(ARCHIVED)?;
    let mut n = 0;
    for row in archived.range((archive, from_ms, 0)..(archive, to_ms, 0))? {
        row?;
        n += 1;
    }
    Ok(n)
}
