//! Reads of the delivery path on PostgreSQL: pending deliveries, accounting, dead letters, the
//! attempt log and the event trail.
//!
//! Each read is one statement (two for the trail), so it sees one consistent
//! snapshot; none takes a lock. Must not: write, or decode a row it could not trust without
//! saying so (a malformed row is [`StoreError::Corrupt`], never a panic).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use switchyard_model::{AttemptClass, AttemptOutcome, Event, TraceContext};
use tokio_postgres::{Client, Row};

use super::conn::{Session, col, int, unsigned, unsigned_opt};
use crate::{
    AttemptRecord, DeadLetter, DeadReason, DeliveryState, DeliveryTrail, EventTrail,
    PendingDelivery, PendingOrder, StoreError, SubscriptionStats,
};

/// The event columns [`event_from_row`] reads, in its order.
macro_rules! event_columns {
    ($e:literal) => {
        concat!(
            $e,
            ".seq, ",
            $e,
            ".event_id, ",
            $e,
            ".envelope, ",
            $e,
            ".ingested_ms, ",
            $e,
            ".hops, ",
            $e,
            ".traceparent, ",
            $e,
            ".tracestate, ",
            $e,
            ".ordering_key"
        )
    };
}

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
/// The first pending delivery is the oldest: delivery ids grow with time.
const STATS: &str = "SELECT accepted, delivered, dead, pending, purged, failed_attempts,
        (SELECT pending_since_ms FROM switchyard_pending
         WHERE subscription_id = $1 ORDER BY id LIMIT 1)
    FROM switchyard_counters WHERE subscription_id = $1";
const DEAD_LETTERS: &str = "SELECT id, subscription_id, event_id, envelope, hops, ordering_key,
        traceparent, tracestate, attempts, last_status, last_error, reason, ingested_ms, dead_ms,
        bus, event_seq
    FROM switchyard_dead_letters WHERE subscription_id = $1 AND id > $2 ORDER BY id LIMIT $3";
const ATTEMPTS_BEFORE: &str = "SELECT subscription_id, event_id, delivery, attempt, started_ms,
        duration_ms, class, status, error, outcome, reason
    FROM switchyard_attempts
    WHERE subscription_id = $1 AND (started_ms, delivery, attempt) < ($2, $3, $4)
    ORDER BY started_ms DESC, delivery DESC, attempt DESC LIMIT $5";
/// A newer event that took a publisher's id owns it; a redriven older one keeps its sequence.
const EVENT_BY_ID: &str = concat!(
    "SELECT ",
    event_columns!("e"),
    ", e.subscriptions FROM switchyard_events e
    WHERE e.bus = $1 AND e.event_id = $2 ORDER BY e.seq DESC LIMIT 1"
);
const TRAIL: &str = "SELECT subscription_id, event_id, delivery, attempt, started_ms,
        duration_ms, class, status, error, outcome, reason, NULL::text
    FROM switchyard_attempts WHERE event_seq = $1
    UNION ALL SELECT subscription_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        'pending'
    FROM switchyard_pending WHERE event_seq = $1
    UNION ALL SELECT subscription_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        'dead'
    FROM switchyard_dead_letters WHERE event_seq = $1";

/// Reads an event from eight columns starting at `at`, in [`event_columns`]' order.
pub(super) fn event_from_row(row: &Row, at: usize) -> Result<Event, StoreError> {
    let traceparent: String = col(row, at + 5)?;
    let tracestate: Option<String> = col(row, at + 6)?;
    let trace = TraceContext::parse(&traceparent, tracestate.as_deref()).ok_or_else(|| {
        StoreError::Corrupt {
            table: "switchyard_events",
            detail: format!("invalid traceparent {traceparent:?}"),
        }
    })?;
    Ok(Event {
        id: col(row, at + 1)?,
        envelope: col(row, at + 2)?,
        ingested_ms: unsigned(row, at + 3)?,
        hops: unsigned(row, at + 4)?,
        trace,
        ordering_key: col(row, at + 7)?,
        explicit_id: false,
    })
}

/// A member of a closed set from its stored spelling; an unknown spelling is corruption.
fn closed<T>(
    table: &'static str,
    what: &str,
    text: String,
    parse: fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(&text).ok_or_else(|| StoreError::Corrupt {
        table,
        detail: format!("unknown {what} {text:?}"),
    })
}

fn reason(table: &'static str, code: Option<String>) -> Result<Option<DeadReason>, StoreError> {
    code.map(|code| closed(table, "dead-letter reason", code, DeadReason::parse))
        .transpose()
}

/// An attempt from the first eleven columns of a row, in [`ATTEMPTS_BEFORE`]' order.
fn attempt_from_row(row: &Row) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        subscription: unsigned(row, 0)?,
        event_id: col(row, 1)?,
        delivery: unsigned(row, 2)?,
        attempt: unsigned(row, 3)?,
        started_ms: unsigned(row, 4)?,
        duration_ms: unsigned(row, 5)?,
        class: closed(
            "switchyard_attempts",
            "attempt class",
            col(row, 6)?,
            AttemptClass::parse,
        )?,
        status: col::<Option<i32>>(row, 7)?.and_then(|s| u16::try_from(s).ok()),
        error: col(row, 8)?,
        outcome: closed(
            "switchyard_attempts",
            "attempt outcome",
            col(row, 9)?,
            AttemptOutcome::parse,
        )?,
        reason: reason("switchyard_attempts", col(row, 10)?)?,
    })
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
    // Deliveries of one event share its decoded copy.
    let mut events: HashMap<i64, Arc<Event>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
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

pub(super) async fn list_dead_letters(
    db: &mut Session<'_, Client>,
    subscription: u64,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let after = after.map_or(-1, int);
    let rows = db
        .query(
            DEAD_LETTERS,
            &[&int(subscription), &after, &int(limit as u64)],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(DeadLetter {
                id: unsigned(row, 0)?,
                subscription: unsigned(row, 1)?,
                event_id: col(row, 2)?,
                envelope: col(row, 3)?,
                hops: unsigned(row, 4)?,
                ordering_key: col(row, 5)?,
                traceparent: col(row, 6)?,
                tracestate: col(row, 7)?,
                attempts: unsigned(row, 8)?,
                last_status: col::<Option<i32>>(row, 9)?.and_then(|s| u16::try_from(s).ok()),
                last_error: col(row, 10)?,
                reason: reason("switchyard_dead_letters", col(row, 11)?)?.ok_or_else(|| {
                    StoreError::Corrupt {
                        table: "switchyard_dead_letters",
                        detail: "a dead letter without a reason".into(),
                    }
                })?,
                ingested_ms: unsigned(row, 12)?,
                dead_ms: unsigned(row, 13)?,
                bus: col(row, 14)?,
                event_seq: unsigned(row, 15)?,
            })
        })
        .collect()
}

pub(super) async fn list_attempts(
    db: &mut Session<'_, Client>,
    subscription: u64,
    before: Option<(u64, u64, u32)>,
    limit: usize,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let (ms, delivery, attempt) = before.map_or((i64::MAX, i64::MAX, i64::MAX), |(m, d, a)| {
        (int(m), int(d), i64::from(a))
    });
    let rows = db
        .query(
            ATTEMPTS_BEFORE,
            &[
                &int(subscription),
                &ms,
                &delivery,
                &attempt,
                &int(limit as u64),
            ],
        )
        .await?;
    rows.iter().map(attempt_from_row).collect()
}

pub(super) async fn event_trail(
    db: &mut Session<'_, Client>,
    bus: &str,
    event_id: &str,
) -> Result<EventTrail, StoreError> {
    let row = db
        .query_opt(EVENT_BY_ID, &[&bus, &event_id])
        .await?
        .ok_or_else(|| StoreError::no_event(bus, event_id))?;
    let seq: i64 = col(&row, 0)?;
    let event = Arc::new(event_from_row(&row, 0)?);
    let subscriptions: Vec<i64> = col(&row, 8)?;
    let mut attempts: BTreeMap<u64, Vec<AttemptRecord>> = BTreeMap::new();
    for sub in subscriptions {
        attempts.insert(sub.unsigned_abs(), Vec::new());
    }
    let (mut pending, mut dead) = (HashSet::new(), HashSet::new());
    for row in db.query(TRAIL, &[&seq]).await? {
        let sub: u64 = unsigned(&row, 0)?;
        match col::<Option<String>>(&row, 11)?.as_deref() {
            Some("pending") => {
                pending.insert(sub);
            }
            Some(_) => {
                dead.insert(sub);
            }
            None => attempts
                .entry(sub)
                .or_default()
                .push(attempt_from_row(&row)?),
        }
        attempts.entry(sub).or_default();
    }
    let deliveries = attempts
        .into_iter()
        .map(|(subscription, mut attempts)| {
            attempts.sort_by_key(|a| (a.started_ms, a.delivery, a.attempt));
            DeliveryTrail {
                subscription,
                state: DeliveryState::of(
                    pending.contains(&subscription),
                    dead.contains(&subscription),
                    &attempts,
                ),
                attempts,
            }
        })
        .collect();
    Ok(EventTrail { event, deliveries })
}
