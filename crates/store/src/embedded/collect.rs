//! What leaves the embedded store, and when: events and their attempt log once their history
//! is over, publisher ids once their de-duplication window is, scheduled ticks' once-keys 7
//! days after their tick, archived copies past their archive's retention or of deleted archives.
//!
//! An event leaves when nothing pending needs it and it is older than the history retention:
//! either at the moment its last delivery finishes ([`release`], if already that old, or if
//! collection already walked past it), or later when collection reaches it. Collection walks
//! events once, in sequence order, behind a cursor (`GC_CURSOR`), so its cost does not grow with
//! a backlog of old pending events.
//!
//! Invariant: every collection job looks at no more than [`GC_CHUNK`] rows, so that collection
//! never holds a commit (and the publishes sharing it) for long. Must not: drop an event a
//! pending delivery refers to (`REFS`).

use redb::ReadableTable;
use switchyard_model::now_ms;

use super::codec::*;
use super::history;
use super::writer::Writer;
use crate::records::ONCE_RETENTION_MS;
use crate::{ArchiveRecord, StoreError, StoreOptions};

/// Rows looked at per collection job, so that collection never holds a commit for long.
const GC_CHUNK: usize = 2_000;

/// Runs every kind of collection until each has nothing left to do now, a chunk per commit.
pub(super) async fn maintain(writer: &Writer, options: StoreOptions) -> Result<(), StoreError> {
    let retention_ms = options.history_retention_ms;
    let mut looked_at = 0;
    loop {
        let chunk = writer
            .write(move |t| collect_history(t, now_ms(), retention_ms))
            .await?;
        looked_at += chunk;
        if chunk < GC_CHUNK {
            break;
        }
    }
    if looked_at > 0 {
        tracing::debug!(looked_at, "store: collected history past its retention");
    }
    let window_ms = options.dedup_window_ms;
    while writer
        .write(move |t| collect_dedup(t, now_ms(), window_ms))
        .await?
        == GC_CHUNK
    {}
    while writer.write(move |t| collect_ticks(t, now_ms())).await? == GC_CHUNK {}
    while writer.write(move |t| collect_archived(t, now_ms())).await? == GC_CHUNK {}
    Ok(())
}

/// One pending delivery of event `seq` is finished; drops the event if that was the last one
/// and its history retention is already over.
pub(super) fn release(
    t: &mut Tables<'_>,
    seq: u64,
    now: u64,
    retention_ms: u64,
) -> Result<(), StoreError> {
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

/// Looks at up to `GC_CHUNK` events past the collection cursor that are older than the
/// retention: drops those nothing pending needs (the others are dropped when their last delivery
/// finishes). Returns how many it looked at.
fn collect_history(t: &mut Tables<'_>, now: u64, retention_ms: u64) -> Result<usize, StoreError> {
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
fn collect_dedup(t: &mut Tables<'_>, now: u64, window_ms: u64) -> Result<usize, StoreError> {
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

/// Forgets up to `GC_CHUNK` once-keys of ticks older than [`ONCE_RETENTION_MS`]; returns how
/// many.
fn collect_ticks(t: &mut Tables<'_>, now: u64) -> Result<usize, StoreError> {
    let cutoff = now.saturating_sub(ONCE_RETENTION_MS);
    let mut expired = Vec::new();
    for row in t
        .schedule_ticks
        .range::<(u64, &str)>(..(cutoff, ""))?
        .take(GC_CHUNK)
    {
        let (entry, _) = row?;
        let (tick, key) = entry.value();
        expired.push((tick, key.to_string()));
    }
    for (tick, key) in &expired {
        t.schedule_ticks.remove((*tick, key.as_str()))?;
    }
    Ok(expired.len())
}

/// Removes up to [`GC_CHUNK`] copies: first those of deleted archives, then those past their
/// archive's retention. Returns how many; fewer than a chunk means nothing is left to do now.
fn collect_archived(t: &mut Tables<'_>, now: u64) -> Result<usize, StoreError> {
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
    for record in of_bus::<ArchiveRecord>(&t.archives, "archives", None)? {
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
