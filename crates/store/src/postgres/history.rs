//! History on PostgreSQL: the attempt log and the event trail, and how a stored event is read
//! back ([`event_from_row`], for every module that reads events).
//!
//! Attempts are written by the outcomes that record them ([`super::deliveries`]) and go with
//! their event ([`super::collect`]). Each read is one statement (two for the trail), so it sees
//! one consistent snapshot; none takes a lock. Must not: write, or decode a row it could not
//! trust without saying so (a malformed row is [`StoreError::Corrupt`], never a panic).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use switchyard_model::{AttemptClass, AttemptOutcome, Event, TraceContext};
use tokio_postgres::{Client, Row};

use super::conn::{Session, col, int, unsigned};
use crate::{AttemptRecord, DeadReason, DeliveryState, DeliveryTrail, EventTrail, StoreError};

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

pub(super) use event_columns;

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

/// A dead-letter reason as stored; `None` for none.
pub(super) fn dead_reason(
    table: &'static str,
    code: Option<String>,
) -> Result<Option<DeadReason>, StoreError> {
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
        reason: dead_reason("switchyard_attempts", col(row, 10)?)?,
    })
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
