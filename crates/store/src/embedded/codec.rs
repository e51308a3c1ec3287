//! Table definitions, the byte layouts of the embedded store's hot records, and the reads every
//! part of the store shares (ids, counters, the records of a bus).
//!
//! Events and deliveries are written and read at the full publish and delivery rate, so they use
//! small fixed little-endian layouts rather than JSON; rarely written records (buses,
//! subscriptions, dead letters) are JSON for readability with `redb` tools.
//!
//! Invariant: every layout begins with a version byte so that a later release can read old files.
//! Must not: change a table's key or value type, or a layout, in place (files already written
//! hold them): a new layout gets a new version byte.

use std::sync::Arc;

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::de::DeserializeOwned;
use switchyard_model::{Event, TraceContext};

use crate::StoreError;
use crate::records::from_json;

/// Counters that survive restarts: next ids and the schema version.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const BUSES: TableDefinition<&str, &str> = TableDefinition::new("buses");
/// (bus, subscription name) -> SubscriptionRecord JSON.
pub(super) const SUBSCRIPTIONS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("subscriptions");
/// Event sequence -> event. Sequences grow with time; low sequences are collected first.
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// (subscription id, delivery id) -> delivery. The first row of a subscription is its oldest.
pub(super) const DELIVERIES: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("deliveries");
/// (subscription id, due ms, delivery id): the order in which pending deliveries are attempted.
pub(super) const DUE: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("due");
/// (subscription id, delivery id) -> DeadLetter JSON.
pub(super) const DEAD: TableDefinition<(u64, u64), &str> = TableDefinition::new("dead_letters");
/// Subscription id -> accounting counters; its presence marks a live subscription id.
pub(super) const COUNTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("counters");
/// (kind, name) -> DocumentRecord JSON: sources, connections.
pub(super) const DOCUMENTS: TableDefinition<(&str, &str), &str> = TableDefinition::new("documents");
/// (bus, publisher's event id) -> when it was accepted: the de-duplication window.
pub(super) const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
/// (accepted ms, bus, event id): the order in which de-duplication entries expire.
pub(super) const DEDUP_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("dedup_expiry");
/// (bus, event id) -> event sequence, for looking events up by id.
pub(super) const EVENT_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("event_ids");
/// Event sequence -> pending deliveries that refer to it; absent means none.
pub(super) const REFS: TableDefinition<u64, u32> = TableDefinition::new("refs");
/// (event sequence, subscription, delivery, attempt) -> AttemptRecord JSON.
pub(super) const ATTEMPTS: TableDefinition<(u64, u64, u64, u32), &str> =
    TableDefinition::new("attempts");
/// (subscription, started ms, delivery, attempt) -> event sequence: the attempt log's order.
pub(super) const ATTEMPTS_BY_SUBSCRIPTION: TableDefinition<(u64, u64, u64, u32), u64> =
    TableDefinition::new("attempts_by_subscription");
/// (bus, archive name) -> ArchiveRecord JSON.
pub(super) const ARCHIVES: TableDefinition<(&str, &str), &str> = TableDefinition::new("archives");
/// (archive id, accepted ms, event sequence) -> event, encoded as in `EVENTS` without deliveries.
pub(super) const ARCHIVED: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("archived_events");
/// Archive id -> (events, bytes) it holds; its presence marks a live archive id.
pub(super) const ARCHIVE_COUNTS: TableDefinition<u64, (u64, u64)> =
    TableDefinition::new("archive_counts");
/// Ids of deleted archives whose events are still being collected.
pub(super) const DELETED_ARCHIVES: TableDefinition<u64, ()> =
    TableDefinition::new("deleted_archives");
/// (tick ms, once-key) of the scheduled ticks appended: one event per tick (`NewEvent::once`).
/// The tick comes first so that collection walks them oldest first.
pub(super) const SCHEDULE_TICKS: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("schedule_ticks");

/// Every table, opened once per group commit and lent to each job of the group: opening a table
/// is a B-tree lookup, too costly to repeat for every outcome of a busy commit.
pub(super) struct Tables<'txn> {
    pub(super) meta: Table<'txn, &'static str, u64>,
    pub(super) buses: Table<'txn, &'static str, &'static str>,
    pub(super) documents: Table<'txn, (&'static str, &'static str), &'static str>,
    pub(super) subscriptions: Table<'txn, (&'static str, &'static str), &'static str>,
    pub(super) events: Table<'txn, u64, &'static [u8]>,
    pub(super) deliveries: Table<'txn, (u64, u64), &'static [u8]>,
    pub(super) due: Table<'txn, (u64, u64, u64), ()>,
    pub(super) dead: Table<'txn, (u64, u64), &'static str>,
    pub(super) counters: Table<'txn, u64, &'static [u8]>,
    pub(super) event_ids: Table<'txn, (&'static str, &'static str), u64>,
    pub(super) refs: Table<'txn, u64, u32>,
    pub(super) attempts: Table<'txn, (u64, u64, u64, u32), &'static str>,
    pub(super) attempts_by_subscription: Table<'txn, (u64, u64, u64, u32), u64>,
    pub(super) dedup: Table<'txn, (&'static str, &'static str), u64>,
    pub(super) dedup_expiry: Table<'txn, (u64, &'static str, &'static str), ()>,
    pub(super) archives: Table<'txn, (&'static str, &'static str), &'static str>,
    pub(super) archived: Table<'txn, (u64, u64, u64), &'static [u8]>,
    pub(super) archive_counts: Table<'txn, u64, (u64, u64)>,
    pub(super) deleted_archives: Table<'txn, u64, ()>,
    pub(super) schedule_ticks: Table<'txn, (u64, &'static str), ()>,
}

impl<'txn> Tables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Tables<'txn>, StoreError> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            buses: txn.open_table(BUSES)?,
            documents: txn.open_table(DOCUMENTS)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS)?,
            events: txn.open_table(EVENTS)?,
            deliveries: txn.open_table(DELIVERIES)?,
            due: txn.open_table(DUE)?,
            dead: txn.open_table(DEAD)?,
            counters: txn.open_table(COUNTERS)?,
            event_ids: txn.open_table(EVENT_IDS)?,
            refs: txn.open_table(REFS)?,
            attempts: txn.open_table(ATTEMPTS)?,
            attempts_by_subscription: txn.open_table(ATTEMPTS_BY_SUBSCRIPTION)?,
            dedup: txn.open_table(DEDUP)?,
            dedup_expiry: txn.open_table(DEDUP_EXPIRY)?,
            archives: txn.open_table(ARCHIVES)?,
            archived: txn.open_table(ARCHIVED)?,
            archive_counts: txn.open_table(ARCHIVE_COUNTS)?,
            deleted_archives: txn.open_table(DELETED_ARCHIVES)?,
            schedule_ticks: txn.open_table(SCHEDULE_TICKS)?,
        })
    }
}

pub(super) const NEXT_EVENT_SEQ: &str = "next_event_seq";
pub(super) const NEXT_DELIVERY_ID: &str = "next_delivery_id";
pub(super) const NEXT_SUBSCRIPTION_ID: &str = "next_subscription_id";
pub(super) const NEXT_ARCHIVE_ID: &str = "next_archive_id";
pub(super) const SCHEMA_VERSION: &str = "schema_version";
/// The next event sequence history collection looks at; everything below it was looked at.
pub(super) const GC_CURSOR: &str = "gc_cursor";
pub(super) const CURRENT_SCHEMA: u64 = 1;

const LAYOUT_V1: u8 = 1;

/// The JSON records of one bus, or of every bus with `None`, in a table keyed by (bus, name)
/// (`table` names it in a corrupt-record error).
pub(super) fn of_bus<T: DeserializeOwned>(
    rows: &impl ReadableTable<(&'static str, &'static str), &'static str>,
    table: &'static str,
    bus: Option<&str>,
) -> Result<Vec<T>, StoreError> {
    let range = match bus {
        Some(bus) => rows.range((bus, "")..)?,
        None => rows.range::<(&str, &str)>(..)?,
    };
    let mut out = Vec::new();
    for row in range {
        let (key, value) = row?;
        if bus.is_some_and(|bus| key.value().0 != bus) {
            break;
        }
        out.push(from_json(table, value.value())?);
    }
    Ok(out)
}

/// A counter of `META`; ids start at 1, so a missing one is 1.
pub(super) fn meta_get(meta: &Table<&str, u64>, key: &str) -> Result<u64, StoreError> {
    Ok(meta.get(key)?.map(|v| v.value()).unwrap_or(1))
}

/// The counters of a subscription; `None` when it does not exist (any more).
pub(super) fn load_counters(
    table: &impl ReadableTable<u64, &'static [u8]>,
    sub: u64,
) -> Result<Option<Counters>, StoreError> {
    table
        .get(sub)?
        .map(|v| Counters::decode(v.value()))
        .transpose()
}

fn corrupt(table: &'static str, detail: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

/// Reads little-endian integers from a record, failing on truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    table: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], table: &'static str) -> Result<Self, StoreError> {
        match bytes.split_first() {
            Some((&LAYOUT_V1, rest)) => Ok(Reader { bytes: rest, table }),
            _ => Err(corrupt(table, "unknown layout version")),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(corrupt(self.table, "record is truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, StoreError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(b))
    }
    fn text(&mut self, n: usize) -> Result<String, StoreError> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt(self.table, "text is not UTF-8"))
    }
    fn prefixed_text(&mut self) -> Result<String, StoreError> {
        let len = self.u32()? as usize;
        self.text(len)
    }
    fn rest_text(&mut self) -> Result<String, StoreError> {
        self.text(self.bytes.len())
    }
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// An event as stored: the event, and where it was published and what it matched.
pub(super) struct EventRow {
    pub(super) event: Arc<Event>,
    pub(super) bus: String,
    /// (subscription, delivery id) of each delivery the event has, the latest after a redrive.
    pub(super) deliveries: Vec<(u64, u64)>,
}

/// Layout: version, ingested ms, hops, then length-prefixed id, traceparent, tracestate, bus and
/// ordering key (empty for none),
/// its deliveries as (subscription, delivery id) pairs, and the envelope as the rest. Ingested ms comes first so that
/// history collection can read it without decoding the rest.
pub(super) fn encode_event(event: &Event, bus: &str, deliveries: &[(u64, u64)]) -> Vec<u8> {
    let traceparent = event.trace.traceparent();
    let tracestate = event.trace.tracestate.as_deref().unwrap_or("");
    let mut out = Vec::with_capacity(
        1 + 8
            + 4
            + 20
            + event.id.len()
            + traceparent.len()
            + tracestate.len()
            + bus.len()
            + 16 * deliveries.len()
            + event.envelope.len(),
    );
    out.push(LAYOUT_V1);
    out.extend_from_slice(&event.ingested_ms.to_le_bytes());
    out.extend_from_slice(&event.hops.to_le_bytes());
    push_text(&mut out, &event.id);
    push_text(&mut out, &traceparent);
    push_text(&mut out, tracestate);
    push_text(&mut out, bus);
    push_text(&mut out, event.ordering_key.as_deref().unwrap_or(""));
    out.extend_from_slice(&(deliveries.len() as u32).to_le_bytes());
    for (sub, delivery) in deliveries {
        out.extend_from_slice(&sub.to_le_bytes());
        out.extend_from_slice(&delivery.to_le_bytes());
    }
    out.extend_from_slice(event.envelope.as_bytes());
    out
}

pub(super) fn decode_event(bytes: &[u8]) -> Result<EventRow, StoreError> {
    let mut r = Reader::new(bytes, "events")?;
    let ingested_ms = r.u64()?;
    let hops = r.u32()?;
    let id = r.prefixed_text()?;
    let traceparent = r.prefixed_text()?;
    let tracestate = r.prefixed_text()?;
    let bus = r.prefixed_text()?;
    let ordering_key = Some(r.prefixed_text()?).filter(|k| !k.is_empty());
    let count = r.u32()? as usize;
    let mut deliveries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        deliveries.push((r.u64()?, r.u64()?));
    }
    let trace = TraceContext::parse(
        &traceparent,
        (!tracestate.is_empty()).then_some(tracestate.as_str()),
    )
    .ok_or_else(|| corrupt("events", "invalid traceparent"))?;
    let envelope = r.rest_text()?;
    Ok(EventRow {
        event: Arc::new(Event {
            ordering_key,
            explicit_id: false,
            id,
            envelope,
            ingested_ms,
            hops,
            trace,
        }),
        bus,
        deliveries,
    })
}

/// The ingestion time of a stored event, without decoding the rest.
pub(super) fn event_ingested_ms(bytes: &[u8]) -> Result<u64, StoreError> {
    Reader::new(bytes, "events")?.u64()
}

/// A pending delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeliveryRow {
    pub(super) event_seq: u64,
    pub(super) attempts: u32,
    pub(super) due_ms: u64,
    pub(super) ingested_ms: u64,
    pub(super) pending_since_ms: u64,
    /// 0 when no attempt got an HTTP status.
    pub(super) last_status: u16,
    pub(super) last_error: String,
}

impl DeliveryRow {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(39 + self.last_error.len());
        out.push(LAYOUT_V1);
        out.extend_from_slice(&self.event_seq.to_le_bytes());
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.extend_from_slice(&self.due_ms.to_le_bytes());
        out.extend_from_slice(&self.ingested_ms.to_le_bytes());
        out.extend_from_slice(&self.pending_since_ms.to_le_bytes());
        out.extend_from_slice(&self.last_status.to_le_bytes());
        out.extend_from_slice(self.last_error.as_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "deliveries")?;
        Ok(DeliveryRow {
            event_seq: r.u64()?,
            attempts: r.u32()?,
            due_ms: r.u64()?,
            ingested_ms: r.u64()?,
            pending_since_ms: r.u64()?,
            last_status: r.u16()?,
            last_error: r.rest_text()?,
        })
    }
}

/// Accounting counters of one subscription, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counters {
    pub(super) accepted: u64,
    pub(super) delivered: u64,
    pub(super) dead: u64,
    pub(super) pending: u64,
    pub(super) purged: u64,
    pub(super) failed_attempts: u64,
}

impl Counters {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(49);
        out.push(LAYOUT_V1);
        for v in [
            self.accepted,
            self.delivered,
            self.dead,
            self.pending,
            self.purged,
            self.failed_attempts,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(bytes, "counters")?;
        Ok(Counters {
            accepted: r.u64()?,
            delivered: r.u64()?,
            dead: r.u64()?,
            pending: r.u64()?,
            purged: r.u64()?,
            failed_attempts: r.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let row = DeliveryRow {
            event_seq: 7,
            attempts: 3,
            due_ms: 11,
            ingested_ms: 13,
            pending_since_ms: 17,
            last_status: 503,
            last_error: "service unavailable".into(),
        };
        assert_eq!(DeliveryRow::decode(&row.encode()).unwrap(), row);
        let event = Event {
            id: "e-1".into(),
            envelope: "{\"a\":1}".into(),
            ingested_ms: 99,
            hops: 3,
            ordering_key: Some("customer-7".into()),
            explicit_id: false,
            trace: TraceContext::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("a=b"),
            )
            .unwrap(),
        };
        let row = decode_event(&encode_event(&event, "orders", &[(3, 30), (4, 41)])).unwrap();
        assert_eq!(*row.event, event);
        assert_eq!(row.bus, "orders");
        assert_eq!(row.deliveries, [(3, 30), (4, 41)]);
        assert_eq!(
            event_ingested_ms(&encode_event(&event, "", &[])).unwrap(),
            99
        );
        let c = Counters {
            accepted: 1,
            delivered: 2,
            dead: 3,
            pending: 4,
            purged: 5,
            failed_attempts: 6,
        };
        assert_eq!(Counters::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let row = DeliveryRow {
            event_seq: 1,
            attempts: 0,
            due_ms: 0,
            ingested_ms: 0,
            pending_since_ms: 0,
            last_status: 0,
            last_error: String::new(),
        };
        let bytes = row.encode();
        for len in 0..bytes.len() {
            assert!(DeliveryRow::decode(&bytes[..len]).is_err());
        }
        assert!(decode_event(&[LAYOUT_V1, 1, 2]).is_err());
        assert!(Counters::decode(&[9]).is_err());
    }
}
