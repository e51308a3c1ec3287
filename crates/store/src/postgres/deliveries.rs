//! The delivery path on PostgreSQL: appending events with their deliveries, recording
//! outcomes, reading pending deliveries, the accounting counters, and the leases of pull
//! subscriptions (a lease is the row's next due time: an expired one is simply due again).
//!
//! Every write runs inside a transaction its caller opened, sends each batch as a few
//! multi-row statements ([`columns!`]), and keeps the store's invariants within it: counters
//! move with the rows they count (aggregated per subscription in [`Deltas`], written once per
//! transaction), and a delivery that finishes hands its event to [`collect::release`], which
//! drops it only when no pending delivery refers to it. An appended tick's once-key is inserted
//! with its event (`ON CONFLICT DO NOTHING`): a concurrent transaction with the same key waits
//! for this one's commit and then drops its event, so a tick is appended at most once.
//!
//! Locks are always taken in one order, so that nodes sharing the database do not deadlock:
//! counters (by subscription id), then the collection lock, then delivery rows (by id), then
//! event rows (by sequence); appends take tick and publisher-id keys (sorted, ticks first) right
//! after the counters. A pull locks only delivery rows, with `SKIP LOCKED`, so it never waits on
//! a lock and nodes pulling at once lease different rows. Must not: decide retry policy (outcomes arrive decided) or drop an event
//! itself.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchyard_model::{Event, now_ms};
use tokio_postgres::{Client, GenericClient, Row, Statement};

use super::collect;
use super::columns::{Columns, columns};
use super::conn::{Session, col, int, unsigned, unsigned_opt};
use super::history::{event_columns, event_from_row};
use crate::{
    Lease, NewEvent, Outcome, OutcomeKind, PendingDelivery, PendingOrder, PullRequest, StoreError,
    StoreOptions, SubscriptionStats,
};

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

/// Publisher ids seen before within the window are not returned (and not renewed).
const DEDUP: &str = "INSERT INTO switchyard_dedup (bus, event_id, accepted_ms)
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[])
    ON CONFLICT (bus, event_id) DO UPDATE SET accepted_ms = excluded.accepted_ms
        WHERE switchyard_dedup.accepted_ms + $4 <= excluded.accepted_ms
    RETURNING bus, event_id";
/// Once-keys of scheduled ticks: those already recorded (by this node or another) are not
/// returned, and their events are not appended.
const CLAIM_TICKS: &str = "INSERT INTO switchyard_schedule_ticks (key, tick_ms)
    SELECT * FROM unnest($1::text[], $2::int8[])
    ON CONFLICT (key, tick_ms) DO NOTHING
    RETURNING key, tick_ms";
/// Event sequences and delivery ids, sorted, so that ids grow in the order they are handed out.
const ALLOCATE: &str = "SELECT
    array(SELECT nextval('switchyard_event_seq') FROM generate_series(1, $1::int8) ORDER BY 1),
    array(SELECT nextval('switchyard_delivery_id') FROM generate_series(1, $2::int8) ORDER BY 1)";
pub(super) const INSERT_EVENTS: &str = "INSERT INTO switchyard_events
        (seq, bus, event_id, envelope, ingested_ms, hops, traceparent, tracestate, ordering_key,
         subscriptions)
    SELECT seq, bus, event_id, envelope, ingested_ms, hops, traceparent, tracestate, ordering_key,
        subscriptions::int8[]
    FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
            $7::text[], $8::text[], $9::text[], $10::text[])
        AS e(seq, bus, event_id, envelope, ingested_ms, hops, traceparent, tracestate,
             ordering_key, subscriptions)
    ON CONFLICT (seq) DO NOTHING";
pub(super) const INSERT_PENDING: &str = "INSERT INTO switchyard_pending
        (subscription_id, id, event_seq, attempts, due_ms, ingested_ms, pending_since_ms)
    SELECT subscription_id, id, event_seq, 0, due_ms, ingested_ms, pending_since_ms
    FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
        AS p(subscription_id, id, event_seq, due_ms, ingested_ms, pending_since_ms)";

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

const DELETE_COUNTERS: &str = "DELETE FROM switchyard_counters WHERE subscription_id = $1";
const DELETE_PENDING_OF: &str =
    "DELETE FROM switchyard_pending WHERE subscription_id = $1 RETURNING event_seq";
const DELETE_ATTEMPTS_OF: &str = "DELETE FROM switchyard_attempts WHERE subscription_id = $1";

const PENDING_BY_DUE: &str = concat!(
    "SELECT p.id, p.attempts, p.due_ms, p.pending_since_ms, ",
    event_columns!("e"),
    " FROM switchyard_pending p JOIN switchyard_events e ON e.seq = p.event_seq
    WHERE p.subscription_id = $1 ORDER BY p.due_ms, p.id LIMIT $2"
);
const PENDING_BY_ID: &str = concat!(
    "SELECT p.id, p.attempts, p.due_ms, p.pending_since_ms, ",
    event_columns!("e"),
    " FROM switchyard_pending p JOIN switchyard_events e ON e.seq = p.event_seq
    WHERE p.subscription_id = $1 ORDER BY p.id LIMIT $2"
);
/// The end of [`PULL`] and [`PULL_ORDERED`], after the `picked` rows: the lease (one more
/// attempt, due at $4) and the leased rows with their events.
macro_rules! lease_picked {
    () => {
        concat!(
            "), leased AS (
                UPDATE switchyard_pending p SET attempts = p.attempts + 1, due_ms = $4
                FROM picked WHERE p.subscription_id = picked.subscription_id AND p.id = picked.id
                RETURNING p.id, p.attempts, p.due_ms, p.pending_since_ms, p.event_seq
            )
            SELECT l.id, l.attempts, l.due_ms, l.pending_since_ms, ",
            event_columns!("e"),
            " FROM leased l JOIN switchyard_events e ON e.seq = l.event_seq ORDER BY l.id"
        )
    };
}
/// Leases due deliveries of a pull subscription: `SKIP LOCKED` so that concurrent pulls (other
/// nodes') take different rows, and the lease is the row's next due time, so an expired one is
/// simply due again. $1 subscription, $2 now, $3 limit, $4 the deadline.
const PULL: &str = concat!(
    "WITH picked AS (
        SELECT p.subscription_id, p.id FROM switchyard_pending p
        WHERE p.subscription_id = $1 AND p.due_ms <= $2
        ORDER BY p.due_ms, p.id LIMIT $3 FOR UPDATE SKIP LOCKED",
    lease_picked!()
);
/// [`PULL`] for an ordered subscription: a delivery with an ordering key is leased only when
/// no older delivery of its key is pending (leased, failing or due alike).
const PULL_ORDERED: &str = concat!(
    "WITH picked AS (
        SELECT p.subscription_id, p.id FROM switchyard_pending p
        JOIN switchyard_events e ON e.seq = p.event_seq
        WHERE p.subscription_id = $1 AND p.due_ms <= $2
          AND (e.ordering_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM switchyard_pending q JOIN switchyard_events f ON f.seq = q.event_seq
              WHERE q.subscription_id = p.subscription_id AND q.id < p.id
                AND f.ordering_key = e.ordering_key))
        ORDER BY p.id LIMIT $3 FOR UPDATE OF p SKIP LOCKED",
    lease_picked!()
);
/// Moves the deadlines of leases still current: the row's attempts are those it was leased at.
/// The rows are locked in id order first, as every other writer of delivery rows locks them.
const EXTEND_LEASES: &str = "UPDATE switchyard_pending p SET due_ms = current.until_ms
    FROM (SELECT q.id, u.until_ms FROM switchyard_pending q
          JOIN unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS u(id, attempts, until_ms)
            ON q.id = u.id AND q.attempts = u.attempts
          WHERE q.subscription_id = $1 ORDER BY q.id FOR UPDATE OF q) current
    WHERE p.subscription_id = $1 AND p.id = current.id";
const PENDING_AMONG: &str = "SELECT id FROM switchyard_pending
    WHERE subscription_id = $1 AND id = ANY($2) ORDER BY id";
/// The first pending delivery is the oldest: delivery ids grow with time.
const STATS: &str = "SELECT accepted, delivered, dead, pending, purged, failed_attempts,
        (SELECT pending_since_ms FROM switchyard_pending
         WHERE subscription_id = $1 ORDER BY id LIMIT 1)
    FROM switchyard_counters WHERE subscription_id = $1";

/// How one transaction changes the counters of each subscription it touches.
#[derive(Default)]
pub(super) struct Deltas(HashMap<u64, Delta>);

/// What one transaction adds to each counter of one subscription (negative: takes away).
#[derive(Default, Clone, Copy)]
pub(super) struct Delta {
    pub(super) accepted: i64,
    pub(super) delivered: i64,
    pub(super) dead: i64,
    pub(super) pending: i64,
    pub(super) purged: i64,
    pub(super) failed_attempts: i64,
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
        let mut changes = CounterChanges::default();
        for (sub, d) in self.0 {
            changes.push(
                int(sub),
                d.accepted,
                d.delivered,
                d.dead,
                d.pending,
                d.purged,
                d.failed_attempts,
            );
        }
        db.execute(UPDATE_COUNTERS, &changes.params()).await?;
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

/// Appends events with one delivery per live subscription they matched; `live` holds the
/// subscriptions whose counters the transaction locked. Returns per event the deliveries made.
pub(super) async fn append<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    events: &[&NewEvent],
    live: &HashSet<u64>,
    options: StoreOptions,
    deltas: &mut Deltas,
) -> Result<Vec<Vec<PendingDelivery>>, StoreError> {
    // Ticks first, so that a dropped tick leaves no trace, not even a publisher id.
    let keep = claim_ticks(db, events).await?;
    let keep = deduplicate(db, events, keep, options.dedup_window_ms).await?;
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
    let (seqs, ids) = allocate(db, numbered.len(), delivery_count).await?;

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
            p.push(int(sub), id, *seq, at, at, at);
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
        e.push(
            *seq,
            &new.bus,
            &new.event.id,
            &new.event.envelope,
            at,
            i64::from(new.event.hops),
            new.event.trace.traceparent(),
            new.event.trace.tracestate.as_deref(),
            new.event.ordering_key.as_deref(),
            format!("{{{}}}", subscriptions.join(",")),
        );
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

/// Which events may be appended as far as their once-key goes: those without one, and those
/// whose tick this transaction recorded. The first of a batch's repeats stands for them all. A
/// tick another transaction is recording waits for it, and is then dropped if it committed.
async fn claim_ticks<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    events: &[&NewEvent],
) -> Result<Vec<bool>, StoreError> {
    let mut keep = vec![true; events.len()];
    let mut first: HashMap<(&str, u64), usize> = HashMap::new();
    for (index, new) in events.iter().enumerate() {
        if let Some(once) = &new.once {
            match first.entry((once.key.as_str(), once.tick_ms)) {
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
    let mut ticks: Vec<((&str, u64), usize)> = first.into_iter().collect();
    ticks.sort_unstable();
    let mut rows = Ticks::default();
    for ((key, tick_ms), _) in &ticks {
        rows.push(key, int(*tick_ms));
    }
    let mut claimed = HashSet::new();
    for row in db.query(CLAIM_TICKS, &rows.params()).await? {
        claimed.insert((col::<String>(&row, 0)?, col::<i64>(&row, 1)?));
    }
    for ((key, tick_ms), index) in ticks {
        if !claimed.contains(&(key.to_string(), int(tick_ms))) {
            keep[index] = false;
        }
    }
    Ok(keep)
}

/// Which of the events `keep` still holds are new: those without a publisher-chosen id, and
/// those whose id was not accepted on their bus within the window. The first of a batch's
/// repeats stands for them all.
async fn deduplicate<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    events: &[&NewEvent],
    mut keep: Vec<bool>,
    window_ms: u64,
) -> Result<Vec<bool>, StoreError> {
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    for (index, new) in events.iter().enumerate() {
        if keep[index] && new.event.explicit_id {
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
    let mut publishers = Publishers::default();
    for ((bus, id), index) in &keys {
        publishers.push(bus, id, int(events[*index].event.ingested_ms));
    }
    let window = int(window_ms);
    let mut params = publishers.params();
    params.push(&window);
    let rows = db.query(DEDUP, &params).await?;
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

columns! {
    /// Rows of [`UPDATE_COUNTERS`].
    struct CounterChanges {
        subscription: i64,
        accepted: i64,
        delivered: i64,
        dead: i64,
        pending: i64,
        purged: i64,
        failed_attempts: i64,
    }
}

columns! {
    /// Rows of [`INSERT_EVENTS`]: new events, or events put back from their dead letters' copies.
    pub(super) struct EventColumns<'a> {
        seq: i64,
        bus: &'a str,
        event_id: &'a str,
        envelope: &'a str,
        ingested_ms: i64,
        hops: i64,
        traceparent: String,
        tracestate: Option<&'a str>,
        ordering_key: Option<&'a str>,
        /// The subscriptions with a delivery of the event, as an `int8[]` literal.
        subscriptions: String,
    }
}

columns! {
    /// Rows of [`INSERT_PENDING`].
    pub(super) struct PendingColumns {
        subscription: i64,
        id: i64,
        seq: i64,
        due_ms: i64,
        ingested_ms: i64,
        pending_since_ms: i64,
    }
}

columns! {
    /// Rows of [`INSERT_ATTEMPTS`].
    struct AttemptColumns {
        subscription: i64,
        started_ms: i64,
        delivery: i64,
        attempt: i64,
        seq: i64,
        event_id: String,
        duration_ms: i64,
        class: &'static str,
        status: Option<i32>,
        error: Option<String>,
        outcome: &'static str,
        reason: Option<&'static str>,
    }
}

columns! {
    /// Rows of [`INSERT_DEAD`].
    struct DeadColumns {
        subscription: i64,
        id: i64,
        seq: i64,
        attempts: i64,
        last_status: Option<i32>,
        last_error: Option<String>,
        reason: &'static str,
        ingested_ms: i64,
        dead_ms: i64,
    }
}

columns! {
    /// Keys of [`DELETE_PENDING`]: deliveries that finished.
    struct Finished {
        subscription: i64,
        id: i64,
    }
}

columns! {
    /// Rows of [`RESCHEDULE`]: deliveries to try again.
    struct Rescheduled {
        subscription: i64,
        id: i64,
        attempts: i64,
        due_ms: i64,
    }
}

columns! {
    /// Rows of [`CLAIM_TICKS`]: once-keys, first in a batch.
    struct Ticks<'a> {
        key: &'a str,
        tick_ms: i64,
    }
}

columns! {
    /// Rows of [`DEDUP`]: publisher-chosen ids, first in a batch.
    struct Publishers<'a> {
        bus: &'a str,
        event_id: &'a str,
        accepted_ms: i64,
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
    let mut finished = Finished::default();
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
        let (label, reason) = outcome.kind.label();
        attempts.push(
            int(outcome.subscription),
            int(outcome.started_ms),
            int(outcome.delivery),
            i64::from(outcome.attempts),
            t.seq,
            event_id.to_string(),
            int(outcome.duration_ms),
            outcome.class.as_str(),
            outcome.status.map(i32::from),
            outcome.error.clone(),
            label.as_str(),
            reason.map(|r| r.as_str()),
        );
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
                dead.push(
                    int(outcome.subscription),
                    int(outcome.delivery),
                    t.seq,
                    i64::from(outcome.attempts),
                    outcome.status.map(i32::from),
                    outcome.error.clone(),
                    reason.as_str(),
                    t.ingested_ms,
                    now,
                );
            }
        }
        t.finished = true;
        finished.push(key.0, key.1);
        released.push(t.seq);
    }
    let mut rescheduled = Rescheduled::default();
    for ((sub, id), t) in &touched {
        if let (false, Some((attempts, due))) = (t.finished, t.rescheduled) {
            rescheduled.push(*sub, *id, attempts, due);
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
        execute_batch(client, &insert_dead, &dead),
        execute_batch(client, &insert_attempts, &attempts),
        execute_batch(client, &delete_pending, &finished),
        execute_batch(client, &reschedule, &rescheduled),
    )?;
    collect::release(db, released, now, retention_ms, gc_cursor).await
}

/// Runs a prepared batch statement, unless the batch is empty.
async fn execute_batch<C: GenericClient + Sync>(
    client: &C,
    statement: &Statement,
    rows: &(dyn Columns + Sync),
) -> Result<u64, tokio_postgres::Error> {
    match rows.is_empty() {
        true => Ok(0),
        false => client.execute(statement, &rows.params()).await,
    }
}

/// Removes every row of a subscription but its definition and its dead letters (the caller
/// removes those), keeping the events other subscriptions still need.
pub(super) async fn delete_subscription_rows<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    subscription: u64,
    retention_ms: u64,
) -> Result<(), StoreError> {
    let sub = int(subscription);
    db.execute(DELETE_COUNTERS, &[&sub]).await?;
    let cursor = collect::gc_cursor_shared(db).await?;
    let seqs = db
        .query(DELETE_PENDING_OF, &[&sub])
        .await?
        .iter()
        .map(|row| col(row, 0))
        .collect::<Result<Vec<i64>, _>>()?;
    collect::release(db, seqs, int(now_ms()), retention_ms, cursor).await?;
    db.execute(DELETE_ATTEMPTS_OF, &[&sub]).await?;
    Ok(())
}

/// Sequences for `events` new events and ids for `deliveries` new deliveries, each in order.
pub(super) async fn allocate<C: GenericClient + Sync>(
    db: &mut Session<'_, C>,
    events: usize,
    deliveries: usize,
) -> Result<(Vec<i64>, Vec<i64>), StoreError> {
    let row = db
        .query_one(ALLOCATE, &[&(events as i64), &(deliveries as i64)])
        .await?;
    let seqs: Vec<i64> = col(&row, 0)?;
    let ids: Vec<i64> = col(&row, 1)?;
    if seqs.len() != events || ids.len() != deliveries {
        return Err(StoreError::storage_message(
            "the database handed out fewer ids than asked for",
        ));
    }
    Ok((seqs, ids))
}

pub(super) async fn pull(
    db: &mut Session<'_, Client>,
    subscription: u64,
    request: PullRequest,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let sql = if request.ordered { PULL_ORDERED } else { PULL };
    let rows = db
        .query(
            sql,
            &[
                &int(subscription),
                &int(request.now_ms),
                &int(request.limit as u64),
                &int(request.until_ms),
            ],
        )
        .await?;
    pending_from_rows(subscription, &rows)
}

pub(super) async fn extend_leases(
    db: &mut Session<'_, Client>,
    subscription: u64,
    leases: &[Lease],
) -> Result<u64, StoreError> {
    let ids: Vec<i64> = leases.iter().map(|l| int(l.delivery)).collect();
    let attempts: Vec<i64> = leases.iter().map(|l| i64::from(l.attempts)).collect();
    let until: Vec<i64> = leases.iter().map(|l| int(l.until_ms)).collect();
    db.execute(
        EXTEND_LEASES,
        &[&int(subscription), &ids, &attempts, &until],
    )
    .await
}

pub(super) async fn pending_among(
    db: &mut Session<'_, Client>,
    subscription: u64,
    deliveries: &[u64],
) -> Result<Vec<u64>, StoreError> {
    let ids: Vec<i64> = deliveries.iter().map(|&id| int(id)).collect();
    db.query(PENDING_AMONG, &[&int(subscription), &ids])
        .await?
        .iter()
        .map(|row| unsigned(row, 0))
        .collect()
}

pub(super) async fn load_pending(
    db: &mut Session<'_, Client>,
    subscription: u64,
    limit: usize,
    order: PendingOrder,
) -> Result<Vec<PendingDelivery>, StoreError> {
    let sql = match order {
        PendingOrder::Due => PENDING_BY_DUE,
        PendingOrder::Publish => PENDING_BY_ID,
    };
    let rows = db
        .query(sql, &[&int(subscription), &int(limit as u64)])
        .await?;
    pending_from_rows(subscription, &rows)
}

/// Rows of `id, attempts, due_ms, pending_since_ms`, then the event's columns.
fn pending_from_rows(subscription: u64, rows: &[Row]) -> Result<Vec<PendingDelivery>, StoreError> {
    // Deliveries of one event share its decoded copy.
    let mut events: HashMap<i64, Arc<Event>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = col(row, 4)?;
        let event = match events.get(&seq) {
            Some(event) => Arc::clone(event),
            None => {
                let event = Arc::new(event_from_row(row, 4)?);
                events.insert(seq, Arc::clone(&event));
                event
            }
        };
        out.push(PendingDelivery {
            id: unsigned(row, 0)?,
            subscription,
            event,
            attempts: unsigned(row, 1)?,
            due_ms: unsigned(row, 2)?,
            pending_since_ms: unsigned(row, 3)?,
        });
    }
    Ok(out)
}

pub(super) async fn stats(
    db: &mut Session<'_, Client>,
    subscription: u64,
) -> Result<SubscriptionStats, StoreError> {
    let row = db
        .query_opt(STATS, &[&int(subscription)])
        .await?
        .ok_or_else(|| StoreError::no_subscription_id(subscription))?;
    Ok(SubscriptionStats {
        accepted: unsigned(&row, 0)?,
        delivered: unsigned(&row, 1)?,
        dead: unsigned(&row, 2)?,
        pending: unsigned(&row, 3)?,
        purged: unsigned(&row, 4)?,
        failed_attempts: unsigned(&row, 5)?,
        oldest_pending_since_ms: unsigned_opt(&row, 6)?,
    })
}
