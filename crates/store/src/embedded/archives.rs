//! Archives in the embedded store: the copies of events they keep, written by the append that
//! accepts the events, and read back for replays.
//!
//! Every write runs inside one group commit and keeps `ARCHIVE_COUNTS` equal to what `ARCHIVED`
//! holds per archive. The archives' records are the catalog's ([`super::catalog`]); removing
//! copies past their retention, or of deleted archives, is collection's ([`super::collect`]).
//!
//! Must not: match events (callers say which archives keep an event) or archive a replayed event
//! (callers pass no archives for those).

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable};
use switchyard_model::Event;

use super::codec::*;
use crate::{ArchiveCursor, ArchiveStats, ArchivedEvent, StoreError};

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

pub(super) fn stats(txn: &ReadTransaction, archive: u64) -> Result<ArchiveStats, StoreError> {
    let counts = txn.open_table(ARCHIVE_COUNTS)?;
    let Some((events, bytes)) = counts.get(archive)?.map(|v| v.value()) else {
        return Err(StoreError::no_archive_id(archive));
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
