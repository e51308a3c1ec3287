//! Writes of the delivery path on PostgreSQL: appending events with their deliveries,
//! recording outcomes, redriving and purging dead letters, and the lifetime of stored events.
//!
//! Every function runs inside a transaction its caller opened, sends each batch as a few
//! multi-row statements (arrays through `unnest`), and keeps the store's invariants within it:
//! counters move with the rows they count (aggregated per subscription in [`Deltas`], written
//! once per transaction), and an event is dropped only when no pending delivery refers to it.
//!
//! Locks are always taken in one order, so that nodes sharing the database do not deadlock:
//! counters (by subscription id), then the collection lock, then delivery rows (by id), then
//! event rows (by sequence).
//!
//! An event leaves the store when nothing pending needs it and it is older than the history
//! retention: when its last delivery finishes (if already that old, or if collection already
//! passed it), or when [`collect_history`] reaches it. Both lock the event row and then look for
//! pending deliveries in a later statement, so that two transactions finishing an event's last
//! two deliveries at once cannot both miss the drop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchyard_model::now_ms;
use tokio_postgres::GenericClient;

use super::conn::{Session, col, int, unsigned};
use crate::{NewEvent, Outcome, OutcomeKind, PendingDelivery, StoreError, StoreOptions};

/// Events looked at per collection transaction, so that collection never holds locks for long.
pub(super) const GC_CHUNK: usize = 2_000;
/// Dead letters redriven per transaction when redriving all of them.
pub(super) const REDRIVE_CHUNK: usize = 5_000;

const LOCK_COUNTERS: &str = "SELECT subscription_id FROM switchyard_counters
    WHERE subscription_id = ANY($1) ORDER BY subscription_id FOR NO KEY UPDATE";
const UPDATE_COUNTERS: &str = "UPDATE switchyard_counters c SET
        accepted = c.accepted + d.accepted,
        delivered = c.delivered + d.delivered,
        dead = greatest(c.dead + d.dead, 0),
        pending = greatest(c.pending + d.pending, 0),
        purged = c.purged + d.purged,
        failed_attempts = c.failed_attempts + d.failed_attempts
    FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
        AS d(subscription_id, accepted, delivered, dead, pending, purged, failed_attempts)
    WHERE c.subscription_id = d.subscription_id";

/// Collection (exclusive) and the writes that finish deliveries (shared) exclude each other, so
/// that the collection cursor cannot move past an event while its last delivery finishes.
const GC_LOCK_SHARED: &str =
    "SELECT pg_advisory_xact_lock_shared(hashtext('switchyard gc ' || current_schema()))";
const GC_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext('switchyard gc ' || current_schema()))";
/// A statement of its own, after the lock: it must see what the lock holder committed.
const GC_CURSOR: &str = "SELECT value FROM switchyard_meta WHERE key = 'gc_cursor'";
const SET_GC_CURSOR: &str = "UPDATE switchyard_meta SET value = $1 WHERE key = 'gc_cursor'";

/// Publisher ids seen before within the window are not returned (and not renewed).
const DEDUP: &str = "INSERT INTO switchyard_dedup (bus, event_id, accepted_ms)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
    ON CONFLICT (bus, event_id) DO UPDATE SET accepted_ms = excluded.accepted_ms
        WHERE switchyard_dedup.accepted_ms + $4 <= excluded.accepted_ms
    RETURNING bus, event_id";
/// Sorted, so that delivery ids grow in the order they are handed out.
const ALLOCATE: &str = "SELECT
    array(SELECT nextval('switchyard_event_seq') FROM generate_series(1, $1::int8) ORDER BY 1),
    array(SELECT nextval('switchyard_delivery_id') FROM generate_series(1, $2::int8) ORDER BY 1)";
const ALLOCATE_DELIVERIES: &str = "SELECT array(SELECT nextval('switchyard_delivery_id') FROM generate_series(1, $1::int8) ORDER BY 1)";
const INSERT_EVENTS: &str = "INSERT INTO switchyard_events
        (seq, bus, event_id, envelope, ingested_ms, hops, traceparent, tracestate, ordering_key,
         subscriptions)
    SELECT seq, bus, event_id, envelope, ingested_ms, hops, traceparent, tracestate, ordering_key,
        subscriptions::int8[]
    FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
            $7::text[], $8::text[], $9::text[], $10::text[])
        AS e(seq, bus, event_id, envelope, ingested_ms, hops, traceparent, tracestate,
             ordering_key, subscriptions)
    ON CONFLICT (seq) DO NOTHING";
const INSERT_PENDING: &str = "INSERT INTO switchyard_pending
        (subscription_id, id, event_seq, attempts, due_ms, ingested_ms, pending_since_ms)
    SELECT subscription_id, id, event_seq, 0, due_ms, ingested_ms, pending_since_ms
    FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
        AS p(subscription_id, id, event_seq, due_ms, ingested_ms, pending_since_ms)";
const NOTIFY: &str = "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload";

/// Ordered and locked: two writers finishing the same deliveries take their locks in one order.
const LOCK_PENDING: &str = "SELECT p.subscription_id, p.id, p.event_seq, p.ingested_ms, e.event_id
    FROM unnest($1::int8[], $2::int8[]) AS o(subscription_id, id)
    JOIN switchyard_pending p ON p.subscription_id = o.subscription_id AND p.id = o.id
    LEFT JOIN switchyard_events e ON e.seq = p.event_seq
    ORDER BY p.subscription_id, p.id
    FOR UPDATE OF p";
const DELETE_PENDING: &str = "DELETE FROM switchyard_pending p
    USING unnest($1::int8[], $2::int8[]) AS d(subscription_id, id)
    WHERE p.subscription_id = d.subscription_id AND p.id = d.id";
const RESCHEDULE: &str = "UPDATE switchyard_pending p SET attempts = d.attempts, due_ms = d.due_ms
    FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[])
        AS d(subscription_id, id, attempts, due_ms)
    WHERE p.subscription_id = d.subscription_id AND p.id = d.id";
/// The dead letter copies its event: it outlives the event's row.
const INSERT_DEAD: &str = "INSERT INTO switchyard_dead_letters
        (subscription_id, id, event_seq, bus, event_id, envelope, hops, ordering_key,
         traceparent, tracestate, attempts, last_status, last_error, reason, ingested_ms, dead_ms)
    SELECT d.subscription_id, d.id, e.seq, e.bus, e.event_id, e.envelope, e.hops, e.ordering_key,
        e.traceparent, e.tracestate, d.attempts, d.last_status, d.last_error, d.reason,
        d.ingested_ms, d.dead_ms
    FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int4[], $6::text[],
            $7::text[], $8::int8[], $9::int8[])
        AS d(subscription_id, id, event_seq, attempts, last_status, last_error, reason,
             ingested_ms, dead_ms)
    JOIN switchyard_events e ON e.seq = d.event_seq";
const INSERT_ATTEMPTS: &str = "INSERT INTO switchyard_attempts
        (subscription_id, started_ms, delivery, attempt, event_seq, event_id, duration_ms, class,
         status, error, outcome, reason)
    SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::text[],
            $7::int8[], $8::text[], $9::int4[], $10::text[], $11::text[], $12::text[])
    ON CONFLICT DO NOTHING";

/// Events whose history is over (old enough, or passed by collection), locked before the
/// statement that looks for their pending deliveries, so that it sees every commit before ours.
const LOCK_EXPIRED_EVENTS: &str = "SELECT seq FROM switchyard_events
    WHERE seq = ANY($1) AND (ingested_ms <= $2 OR seq < $3)
    ORDER BY seq FOR UPDATE";
const DROP_EVENTS: &str = "WITH gone AS (
        DELETE FROM switchyard_events e
        WHERE e.seq = ANY($1) AND (e.ingested_ms <= $2 OR e.seq < $3)
            AND NOT EXISTS (SELECT 1 FROM switchyard_pending p WHERE p.event_seq = e.seq)
        RETURNING e.seq
    )
    DELETE FROM switchyard_attempts a USING gone WHERE a.event_seq = gone.seq";
const SCAN_EVENTS: &str = "SELECT seq, ingested_ms FROM switchyard_events
    WHERE seq >= $1 ORDER BY seq LIMIT $2";
const COLLECT_DEDUP: &str = "DELETE FROM switchyard_dedup d
    USING (SELECT bus, event_id FROM switchyard_dedup WHERE accepted_ms < $1 LIMIT $2) old
    WHERE d.bus = old.bus AND d.event_id = old.event_id";

const DELETE_COUNTERS: &str = "DELETE FROM switchyard_counters WHERE subscription_id = $1";
const DELETE_PENDING_OF: &str =
    "DELETE FROM switchyard_pending WHERE subscription_id = $1 RETURNING event_seq";
const DELETE_DEAD_OF: &str = "DELETE FROM switchyard_dead_letters WHERE subscription_id = $1";
const DELETE_ATTEMPTS_OF: &str = "DELETE FROM switchyard_attempts WHERE subscription_id = $1";

const TAKE_DEAD_LISTED: &str = "DELETE FROM switchyard_dead_letters
    WHERE subscription_id = $1 AND id = ANY($2)
    RETURNING id, event_seq, bus, event_id, envelope, hops, ordering_key, traceparent, tracestate,
        ingested_ms";
const TAKE_DEAD_FIRST: &str = "DELETE FROM switchyard_dead_letters
    WHERE subscription_id = $1 AND id IN (
        SELECT id FROM switchyard_dead_letters WHERE subscription_id = $1 ORDER BY id LIMIT $2)
    RETURNING id, event_seq, bus, event_id, envelope, hops, ordering_key, traceparent, tracestate,
        ingested_ms";
/// Keeps collection off the events a redrive puts deliveries back on.
const SHARE_EVENTS: &str =
    "SELECT seq FROM switchyard_events WHERE seq = ANY($1) ORDER BY seq FOR SHARE";
const ADD_SUBSCRIBER: &str = "UPDATE switchyard_events
    SET subscriptions = subscriptions || $2::int8
    WHERE seq = ANY($1) AND NOT ($2::int8 = ANY(subscriptions))";
const PURGE: &str = "DELETE FROM switchyard_dead_letters WHERE subscription_id = $1";

/// A NOTIFY payload stays below PostgreSQL's 8000-byte limit.
const MAX_PAYLOAD: usize = 7_900;
/// Payload prefixes on the deployment's channel.
pub(super) const PENDING_PREFIX: &str = "p:";
pub(super) const CATALOG_PAYLOAD: &str = "c";

/// How one transaction changes the counters of each subscription it touches.
#[derive(Default)]
pub(super) struct Deltas(HashMap<u64, Delta>);

#[derive(Default, Clone, Copy)]
pub(super) struct Delta {
    pub accepted: i64,
    pub delivered: i64,
    pub dead: i64,
    pub pending: i64,
    pub purged: i64,
    pub failed_attempts: i64,
}

impl Deltas {
    pub(super) fn of(&mut self, subscription: u64) -> &mut Delta {
        self.0.entry(subscription).or_default()
    }

    /// Writes every change in one statement; the rows were locked by [`lock_counters`].
    pub(super) async fn write<C: GenericClient + Sync>(
        self,
        db: &mut Session<'_, C>,
    ) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut columns: [Vec<i64>; 7] = Default::default();
        for (sub, d) in self.0 {
            let values = [
                int(sub),
                d.accepted,
                d.delivered,
                d.dead,
                d.pending,
                d.purged,
                d.failed_attempts,
            ];
            for (column, value) in columns.iter_mut().zip(values) {
                column.push(value);
            }
        }
        let [a, b, c, d, e, f, g] = &columns;
        db.execute(UPDATE_COUNTERS, &[a, b, c, d, e, f, g]).await?;
        Ok(())
    }
}

/// Locks the counters of these subscriptions (in id order) and returns those that exist: a
/// subscription without counters was deleted, and its rows must not be written.
pub(super) async fn lock_counters<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    subscriptions: impl IntoIterator<Item = u64>,
) -> Result<HashSet<u64>, StoreError> {
    let mut ids: Vec<i64> = subscriptions.into_iter().map(int).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    db.query(LOCK_COUNTERS, &[&ids])
        .await?
        .iter()
        .map(|row| unsigned(row, 0))
        .collect()
}

/// Takes the collection lock (shared) and returns the collection cursor: events below it were
/// passed by collection and are dropped as soon as nothing pending needs them.
pub(super) async fn gc_cursor_shared<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
) -> Result<i64, StoreError> {
    db.execute(GC_LOCK_SHARED, &[]).await?;
    col(&db.query_one(GC_CURSOR, &[]).await?, 0)
}

/// Sends NOTIFYs (at commit) telling listeners which subscriptions got new pending deliveries,
/// split so that no payload is too long.
pub(super) async fn notify_pending<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    channel: &str,
    subscriptions: impl IntoIterator<Item = u64>,
) -> Result<(), StoreError> {
    let mut subscriptions: Vec<u64> = subscriptions.into_iter().collect();
    subscriptions.sort_unstable();
    subscriptions.dedup();
    let mut payloads = Vec::new();
    let mut current = String::from(PENDING_PREFIX);
    for sub in subscriptions {
        let id = sub.to_string();
        if current.len() + id.len() + 1 > MAX_PAYLOAD {
            payloads.push(std::mem::replace(
                &mut current,
                String::from(PENDING_PREFIX),
            ));
        }
        if current.len() > PENDING_PREFIX.len() {
            current.push(',');
        }
        current.push_str(&id);
    }
    if current.len() > PENDING_PREFIX.len() {
        payloads.push(current);
    }
    if !payloads.is_empty() {
        db.execute(NOTIFY, &[&channel, &payloads]).await?;
    }
    Ok(())
}

pub(super) async fn notify_catalog<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    channel: &str,
) -> Result<(), StoreError> {
    db.execute(NOTIFY, &[&channel, &vec![CATALOG_PAYLOAD]])
        .await?;
    Ok(())
}

/// Appends events with one delivery per live subscription they matched; `live` holds the
/// subscriptions whose counters the transaction locked. Returns per event the deliveries made.
pub(super) async fn append<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    events: &[&NewEvent],
    live: &HashSet<u64>,
    options: StoreOptions,
    deltas: &mut Deltas,
) -> Result<Vec<Vec<PendingDelivery>>, StoreError> {
    let keep = deduplicate(db, events, options.dedup_window_ms).await?;
    let deliveries_of = |new: &NewEvent| {
        new.subscriptions
            .iter()
            .filter(|sub| live.contains(sub))
            .count()
    };
    // Without history, an event nothing subscribed to is acknowledged but not kept; it still
    // takes a sequence if an archive keeps a copy, since copies are keyed by it.
    let stored = |i: usize| deliveries_of(events[i]) > 0 || options.history_retention_ms > 0;
    let numbered: Vec<usize> = (0..events.len())
        .filter(|&i| keep[i] && (stored(i) || !events[i].archives.is_empty()))
        .collect();
    let delivery_count: usize = numbered.iter().map(|&i| deliveries_of(events[i])).sum();
    let mut created = vec![Vec::new(); events.len()];
    if numbered.is_empty() {
        return Ok(created);
    }
    let row = db
        .query_one(
            ALLOCATE,
            &[&(numbered.len() as i64), &(delivery_count as i64)],
        )
        .await?;
    let seqs: Vec<i64> = col(&row, 0)?;
    let ids: Vec<i64> = col(&row, 1)?;
    if seqs.len() != numbered.len() || ids.len() != delivery_count {
        return Err(StoreError::Storage(
            "the database handed out fewer ids than asked for".into(),
        ));
    }

    let mut e = EventColumns::default();
    let mut p = PendingColumns::default();
    let mut next_id = ids.iter();
    let mut archived = Vec::new();
    for (&index, seq) in numbered.iter().zip(&seqs) {
        let new = events[index];
        if !new.archives.is_empty() {
            archived.push((new, *seq));
        }
        if !stored(index) {
            continue;
        }
        let at = int(new.event.ingested_ms);
        let made = &mut created[index];
        for &sub in new.subscriptions.iter().filter(|sub| live.contains(sub)) {
            let Some(&id) = next_id.next() else { break };
            p.push(sub, id, *seq, at, at, at);
            let delta = deltas.of(sub);
            delta.accepted += 1;
            delta.pending += 1;
            made.push(PendingDelivery {
                id: id.unsigned_abs(),
                subscription: sub,
                event: Arc::clone(&new.event),
                attempts: 0,
                due_ms: new.event.ingested_ms,
                pending_since_ms: new.event.ingested_ms,
            });
        }
        let subscriptions: Vec<String> = made.iter().map(|d| d.subscription.to_string()).collect();
        e.push(*seq, new, format!("{{{}}}", subscriptions.join(",")));
    }
    let insert_events = db.prepare(INSERT_EVENTS).await?;
    let insert_pending = db.prepare(INSERT_PENDING).await?;
    let (event_params, pending_params) = (e.params(), p.params());
    let client = db.client();
    tokio::try_join!(
        client.execute(&insert_events, &event_params),
        client.execute(&insert_pending, &pending_params),
    )?;
    super::archives::keep(db, &archived).await?;
    Ok(created)
}

/// Which events are new: those without a publisher-chosen id, and those whose id was not
/// accepted on their bus within the window. The first of a batch's repeats stands for them all.
async fn deduplicate<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    events: &[&NewEvent],
    window_ms: u64,
) -> Result<Vec<bool>, StoreError> {
    let mut keep = vec![true; events.len()];
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    for (index, new) in events.iter().enumerate() {
        if new.event.explicit_id {
            let key = (new.bus.as_str(), new.event.id.as_str());
            match first.entry(key) {
                std::collections::hash_map::Entry::Occupied(_) => keep[index] = false,
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(index);
                }
            }
        }
    }
    if first.is_empty() {
        return Ok(keep);
    }
    // Sorted, so that concurrent writers take the key locks in one order.
    let mut keys: Vec<((&str, &str), usize)> = first.into_iter().collect();
    keys.sort_unstable();
    let buses: Vec<&str> = keys.iter().map(|((bus, _), _)| *bus).collect();
    let ids: Vec<&str> = keys.iter().map(|((_, id), _)| *id).collect();
    let ats: Vec<i64> = keys
        .iter()
        .map(|(_, index)| int(events[*index].event.ingested_ms))
        .collect();
    let rows = db
        .query(DEDUP, &[&buses, &ids, &ats, &int(window_ms)])
        .await?;
    let mut accepted = HashSet::with_capacity(rows.len());
    for row in &rows {
        accepted.insert((col::<String>(row, 0)?, col::<String>(row, 1)?));
    }
    for ((bus, id), index) in keys {
        if !accepted.contains(&(bus.to_string(), id.to_string())) {
            keep[index] = false;
        }
    }
    Ok(keep)
}

#[derive(Default)]
struct EventColumns<'a> {
    seq: Vec<i64>,
    bus: Vec<&'a str>,
    event_id: Vec<&'a str>,
    envelope: Vec<&'a str>,
    ingested_ms: Vec<i64>,
    hops: Vec<i64>,
    traceparent: Vec<String>,
    tracestate: Vec<Option<&'a str>>,
    ordering_key: Vec<Option<&'a str>>,
    subscriptions: Vec<String>,
}

impl<'a> EventColumns<'a> {
    fn push(&mut self, seq: i64, new: &'a NewEvent, subscriptions: String) {
        self.seq.push(seq);
        self.bus.push(&new.bus);
        self.event_id.push(&new.event.id);
        self.envelope.push(&new.event.envelope);
        self.ingested_ms.push(int(new.event.ingested_ms));
        self.hops.push(i64::from(new.event.hops));
        self.traceparent.push(new.event.trace.traceparent());
        self.tracestate.push(new.event.trace.tracestate.as_deref());
        self.ordering_key.push(new.event.ordering_key.as_deref());
        self.subscriptions.push(subscriptions);
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 10] {
        [
            &self.seq,
            &self.bus,
            &self.event_id,
            &self.envelope,
            &self.ingested_ms,
            &self.hops,
            &self.traceparent,
            &self.tracestate,
            &self.ordering_key,
            &self.subscriptions,
        ]
    }
}

#[derive(Default)]
struct PendingColumns {
    subscription: Vec<i64>,
    id: Vec<i64>,
    seq: Vec<i64>,
    due_ms: Vec<i64>,
    ingested_ms: Vec<i64>,
    pending_since_ms: Vec<i64>,
}

impl PendingColumns {
    fn push(&mut self, sub: u64, id: i64, seq: i64, due: i64, ingested: i64, since: i64) {
        self.subscription.push(int(sub));
        self.id.push(id);
        self.seq.push(seq);
        self.due_ms.push(due);
        self.ingested_ms.push(ingested);
        self.pending_since_ms.push(since);
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 6] {
        [
            &self.subscription,
            &self.id,
            &self.seq,
            &self.due_ms,
            &self.ingested_ms,
            &self.pending_since_ms,
        ]
    }
}

/// A delivery an outcome batch touches, as locked, and what the batch made of it.
struct Touched {
    seq: i64,
    ingested_ms: i64,
    /// `None` when its event is missing: such a delivery cannot be recorded.
    event_id: Option<String>,
    finished: bool,
    rescheduled: Option<(i64, i64)>,
}

/// Makes outcomes durable. The transaction holds the counter locks of `live` and the collection
/// lock (shared), with the collection cursor `gc_cursor`.
pub(super) async fn record_outcomes<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    outcomes: &[&Outcome],
    live: &HashSet<u64>,
    gc_cursor: i64,
    retention_ms: u64,
    deltas: &mut Deltas,
) -> Result<(), StoreError> {
    let keys: HashSet<(i64, i64)> = outcomes
        .iter()
        .filter(|o| live.contains(&o.subscription))
        .map(|o| (int(o.subscription), int(o.delivery)))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let (subs, ids): (Vec<i64>, Vec<i64>) = keys.into_iter().unzip();
    let mut touched = HashMap::new();
    for row in db.query(LOCK_PENDING, &[&subs, &ids]).await? {
        let key: (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
        touched.insert(
            key,
            Touched {
                seq: col(&row, 2)?,
                ingested_ms: col(&row, 3)?,
                event_id: col(&row, 4)?,
                finished: false,
                rescheduled: None,
            },
        );
    }

    let now = int(now_ms());
    let mut attempts = AttemptColumns::default();
    let mut dead = DeadColumns::default();
    let mut finished: (Vec<i64>, Vec<i64>) = Default::default();
    let mut released = Vec::new();
    // In order: a batch may hold several outcomes of one delivery (a retry, then its success).
    for outcome in outcomes {
        let key = (int(outcome.subscription), int(outcome.delivery));
        let Some(t) = touched.get_mut(&key).filter(|t| !t.finished) else {
            continue;
        };
        let Some(event_id) = t.event_id.as_deref() else {
            tracing::error!(
                delivery = outcome.delivery,
                event = t.seq,
                "store: outcome not recorded: the delivery's event is missing"
            );
            continue;
        };
        attempts.push(outcome, t.seq, event_id);
        let delta = deltas.of(outcome.subscription);
        match outcome.kind {
            OutcomeKind::Delivered => {
                delta.delivered += 1;
                delta.pending -= 1;
            }
            OutcomeKind::Retry { due_ms } => {
                delta.failed_attempts += 1;
                t.rescheduled = Some((i64::from(outcome.attempts), int(due_ms)));
                continue;
            }
            OutcomeKind::Dead { reason } => {
                delta.failed_attempts += 1;
                delta.dead += 1;
                delta.pending -= 1;
                dead.push(outcome, t.seq, reason.as_str(), t.ingested_ms, now);
            }
        }
        t.finished = true;
        finished.0.push(key.0);
        finished.1.push(key.1);
        released.push(t.seq);
    }
    let (mut resched_subs, mut resched_ids, mut resched_attempts, mut resched_due) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((sub, id), t) in &touched {
        if let (false, Some((attempts, due))) = (t.finished, t.rescheduled) {
            resched_subs.push(*sub);
            resched_ids.push(*id);
            resched_attempts.push(attempts);
            resched_due.push(due);
        }
    }

    // Dead letters copy their event before anything can drop it; pending rows go before the
    // events are checked for pending deliveries. Pipelined statements run in this order.
    let insert_dead = db.prepare(INSERT_DEAD).await?;
    let insert_attempts = db.prepare(INSERT_ATTEMPTS).await?;
    let delete_pending = db.prepare(DELETE_PENDING).await?;
    let reschedule = db.prepare(RESCHEDULE).await?;
    let client = db.client();
    tokio::try_join!(
        async {
            match dead.id.is_empty() {
                true => Ok(0),
                false => client.execute(&insert_dead, &dead.params()).await,
            }
        },
        async {
            match attempts.delivery.is_empty() {
                true => Ok(0),
                false => client.execute(&insert_attempts, &attempts.params()).await,
            }
        },
        async {
            match finished.0.is_empty() {
                true => Ok(0),
                false => {
                    client
                        .execute(&delete_pending, &[&finished.0, &finished.1])
                        .await
                }
            }
        },
        async {
            match resched_ids.is_empty() {
                true => Ok(0),
                false => {
                    client
                        .execute(
                            &reschedule,
                            &[&resched_subs, &resched_ids, &resched_attempts, &resched_due],
                        )
                        .await
                }
            }
        },
    )?;
    release(db, released, now, retention_ms, gc_cursor).await
}

#[derive(Default)]
struct AttemptColumns {
    subscription: Vec<i64>,
    started_ms: Vec<i64>,
    delivery: Vec<i64>,
    attempt: Vec<i64>,
    seq: Vec<i64>,
    event_id: Vec<String>,
    duration_ms: Vec<i64>,
    class: Vec<&'static str>,
    status: Vec<Option<i32>>,
    error: Vec<Option<String>>,
    outcome: Vec<&'static str>,
    reason: Vec<Option<&'static str>>,
}

impl AttemptColumns {
    fn push(&mut self, outcome: &Outcome, seq: i64, event_id: &str) {
        let (label, reason) = outcome.kind.label();
        self.subscription.push(int(outcome.subscription));
        self.started_ms.push(int(outcome.started_ms));
        self.delivery.push(int(outcome.delivery));
        self.attempt.push(i64::from(outcome.attempts));
        self.seq.push(seq);
        self.event_id.push(event_id.to_string());
        self.duration_ms.push(int(outcome.duration_ms));
        self.class.push(outcome.class.as_str());
        self.status.push(outcome.status.map(i32::from));
        self.error.push(outcome.error.clone());
        self.outcome.push(label.as_str());
        self.reason.push(reason.map(|r| r.as_str()));
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 12] {
        [
            &self.subscription,
            &self.started_ms,
            &self.delivery,
            &self.attempt,
            &self.seq,
            &self.event_id,
            &self.duration_ms,
            &self.class,
            &self.status,
            &self.error,
            &self.outcome,
            &self.reason,
        ]
    }
}

#[derive(Default)]
struct DeadColumns {
    subscription: Vec<i64>,
    id: Vec<i64>,
    seq: Vec<i64>,
    attempts: Vec<i64>,
    last_status: Vec<Option<i32>>,
    last_error: Vec<Option<String>>,
    reason: Vec<&'static str>,
    ingested_ms: Vec<i64>,
    dead_ms: Vec<i64>,
}

impl DeadColumns {
    fn push(&mut self, outcome: &Outcome, seq: i64, reason: &'static str, ingested: i64, now: i64) {
        self.subscription.push(int(outcome.subscription));
        self.id.push(int(outcome.delivery));
        self.seq.push(seq);
        self.attempts.push(i64::from(outcome.attempts));
        self.last_status.push(outcome.status.map(i32::from));
        self.last_error.push(outcome.error.clone());
        self.reason.push(reason);
        self.ingested_ms.push(ingested);
        self.dead_ms.push(now);
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 9] {
        [
            &self.subscription,
            &self.id,
            &self.seq,
            &self.attempts,
            &self.last_status,
            &self.last_error,
            &self.reason,
            &self.ingested_ms,
            &self.dead_ms,
        ]
    }
}

/// Deliveries of these events finished (or were deleted); drops those events that nothing
/// pending needs any more and whose history is over, with their attempt log.
async fn release<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    mut seqs: Vec<i64>,
    now: i64,
    retention_ms: u64,
    gc_cursor: i64,
) -> Result<(), StoreError> {
    if seqs.is_empty() {
        return Ok(());
    }
    seqs.sort_unstable();
    seqs.dedup();
    let cutoff = now.saturating_sub(int(retention_ms));
    let lock = db.prepare(LOCK_EXPIRED_EVENTS).await?;
    let drop = db.prepare(DROP_EVENTS).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&seqs, &cutoff, &gc_cursor];
    let client = db.client();
    tokio::try_join!(
        client.execute(&lock, &params),
        client.execute(&drop, &params)
    )?;
    Ok(())
}

/// Removes every row of a subscription but its definition (the caller removes that), keeping
/// the events other subscriptions still need.
pub(super) async fn delete_subscription_rows<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    subscription: u64,
    retention_ms: u64,
) -> Result<(), StoreError> {
    let sub = int(subscription);
    db.execute(DELETE_COUNTERS, &[&sub]).await?;
    let cursor = gc_cursor_shared(db).await?;
    let seqs = db
        .query(DELETE_PENDING_OF, &[&sub])
        .await?
        .iter()
        .map(|row| col(row, 0))
        .collect::<Result<Vec<i64>, _>>()?;
    release(db, seqs, int(now_ms()), retention_ms, cursor).await?;
    db.execute(DELETE_DEAD_OF, &[&sub]).await?;
    db.execute(DELETE_ATTEMPTS_OF, &[&sub]).await?;
    Ok(())
}

/// Turns dead letters back into pending deliveries: those listed, or the first `REDRIVE_CHUNK`.
/// Each gets a fresh delivery id and retry window; its event goes back to its place in history.
pub(super) async fn redrive<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    channel: &str,
    subscription: u64,
    ids: Option<&[u64]>,
) -> Result<u64, StoreError> {
    if lock_counters(db, [subscription]).await?.is_empty() {
        return Err(StoreError::no_subscription_id(subscription));
    }
    let sub = int(subscription);
    let taken = match ids {
        Some(ids) => {
            let ids: Vec<i64> = ids.iter().copied().map(int).collect();
            db.query(TAKE_DEAD_LISTED, &[&sub, &ids]).await?
        }
        None => {
            db.query(TAKE_DEAD_FIRST, &[&sub, &(REDRIVE_CHUNK as i64)])
                .await?
        }
    };
    if taken.is_empty() {
        return Ok(0);
    }
    // In dead-letter order, so that the new delivery ids keep it.
    let mut letters = taken
        .into_iter()
        .map(|row| Ok((col::<i64>(&row, 0)?, row)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    letters.sort_by_key(|(id, _)| *id);
    let letters: Vec<tokio_postgres::Row> = letters.into_iter().map(|(_, row)| row).collect();
    let seqs = letters
        .iter()
        .map(|row| col(row, 1))
        .collect::<Result<Vec<i64>, _>>()?;
    let present: HashSet<i64> = db
        .query(SHARE_EVENTS, &[&seqs])
        .await?
        .iter()
        .map(|row| col(row, 0))
        .collect::<Result<_, _>>()?;
    db.execute(ADD_SUBSCRIBER, &[&seqs, &sub]).await?;

    let row = db
        .query_one(ALLOCATE_DELIVERIES, &[&(letters.len() as i64)])
        .await?;
    let new_ids: Vec<i64> = col(&row, 0)?;
    let now = int(now_ms());
    let mut restored = RestoredEvents::default();
    let mut pending = PendingColumns::default();
    for (letter, id) in letters.iter().zip(new_ids) {
        let seq: i64 = col(letter, 1)?;
        let ingested: i64 = col(letter, 9)?;
        if !present.contains(&seq) {
            restored.push(letter, seq, format!("{{{subscription}}}"))?;
        }
        pending.push(subscription, id, seq, now, ingested, now);
    }
    if !restored.seq.is_empty() {
        db.execute(INSERT_EVENTS, &restored.params()).await?;
    }
    db.execute(INSERT_PENDING, &pending.params()).await?;
    let count = pending.id.len() as u64;
    let mut deltas = Deltas::default();
    let delta = deltas.of(subscription);
    delta.dead -= count as i64;
    delta.pending += count as i64;
    deltas.write(db).await?;
    notify_pending(db, channel, [subscription]).await?;
    Ok(count)
}

/// Events put back from their dead letters' copies, in [`INSERT_EVENTS`]' columns.
#[derive(Default)]
struct RestoredEvents {
    seq: Vec<i64>,
    bus: Vec<String>,
    event_id: Vec<String>,
    envelope: Vec<String>,
    ingested_ms: Vec<i64>,
    hops: Vec<i64>,
    traceparent: Vec<String>,
    tracestate: Vec<Option<String>>,
    ordering_key: Vec<Option<String>>,
    subscriptions: Vec<String>,
}

impl RestoredEvents {
    /// `letter` is a row of [`TAKE_DEAD_FIRST`].
    fn push(
        &mut self,
        letter: &tokio_postgres::Row,
        seq: i64,
        subscriptions: String,
    ) -> Result<(), StoreError> {
        self.seq.push(seq);
        self.bus.push(col(letter, 2)?);
        self.event_id.push(col(letter, 3)?);
        self.envelope.push(col(letter, 4)?);
        self.hops.push(col(letter, 5)?);
        self.ordering_key.push(col(letter, 6)?);
        self.traceparent.push(col(letter, 7)?);
        self.tracestate.push(col(letter, 8)?);
        self.ingested_ms.push(col(letter, 9)?);
        self.subscriptions.push(subscriptions);
        Ok(())
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 10] {
        [
            &self.seq,
            &self.bus,
            &self.event_id,
            &self.envelope,
            &self.ingested_ms,
            &self.hops,
            &self.traceparent,
            &self.tracestate,
            &self.ordering_key,
            &self.subscriptions,
        ]
    }
}

pub(super) async fn purge<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    subscription: u64,
) -> Result<u64, StoreError> {
    if lock_counters(db, [subscription]).await?.is_empty() {
        return Err(StoreError::no_subscription_id(subscription));
    }
    let count = db.execute(PURGE, &[&int(subscription)]).await?;
    let mut deltas = Deltas::default();
    let delta = deltas.of(subscription);
    delta.dead -= count as i64;
    delta.purged += count as i64;
    deltas.write(db).await?;
    Ok(count)
}

/// Looks at up to `GC_CHUNK` events past the collection cursor that are older than the
/// retention, drops those nothing pending needs (the others are dropped when their last
/// delivery finishes) and moves the cursor past them. Returns how many it looked at.
pub(super) async fn collect_history<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    now: u64,
    retention_ms: u64,
) -> Result<usize, StoreError> {
    db.execute(GC_LOCK, &[]).await?;
    let cursor: i64 = col(&db.query_one(GC_CURSOR, &[]).await?, 0)?;
    let cutoff = int(now).saturating_sub(int(retention_ms));
    let mut expired = Vec::new();
    for row in db
        .query(SCAN_EVENTS, &[&cursor, &(GC_CHUNK as i64)])
        .await?
    {
        let (seq, ingested): (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
        if ingested > cutoff {
            break;
        }
        expired.push(seq);
    }
    let Some(&last) = expired.last() else {
        return Ok(0);
    };
    let next = last + 1;
    let count = expired.len();
    release(db, expired, int(now), retention_ms, next).await?;
    db.execute(SET_GC_CURSOR, &[&next]).await?;
    Ok(count)
}

/// Forgets up to `GC_CHUNK` publisher ids whose de-duplication window is over; returns how many.
pub(super) async fn collect_dedup<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    now: u64,
    window_ms: u64,
) -> Result<usize, StoreError> {
    let cutoff = int(now).saturating_sub(int(window_ms));
    let count = db
        .execute(COLLECT_DEDUP, &[&cutoff, &(GC_CHUNK as i64)])
        .await?;
    Ok(count as usize)
}
