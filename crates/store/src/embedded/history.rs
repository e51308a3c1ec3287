//! The attempt log and the event trail: what happened to each delivery, kept as long as its
//! event is kept.
//!
//! Every attempt's outcome writes one record, keyed by event (for the trail) and indexed by
//! subscription and time (for the log); both go when the event goes. Must not: keep anything
//! that could hold a secret; the record's error is the receiver's answer or a transport error.

use std::collections::BTreeMap;

use redb::{ReadTransaction, ReadableTable};

use super::codec::*;
use crate::records::{from_json, to_json as json};
use crate::{AttemptRecord, DeliveryState, DeliveryTrail, EventTrail, Outcome, StoreError};

pub(super) fn record_attempt(
    t: &mut Tables<'_>,
    seq: u64,
    event_id: &str,
    outcome: &Outcome,
) -> Result<(), StoreError> {
    let (label, reason) = outcome.kind.label();
    let record = AttemptRecord {
        subscription: outcome.subscription,
        event_id: event_id.to_string(),
        delivery: outcome.delivery,
        attempt: outcome.attempts,
        started_ms: outcome.started_ms,
        duration_ms: outcome.duration_ms,
        class: outcome.class,
        status: outcome.status,
        error: outcome.error.clone(),
        outcome: label,
        reason,
    };
    t.attempts.insert(
        (
            seq,
            outcome.subscription,
            outcome.delivery,
            outcome.attempts,
        ),
        json(&record)?.as_str(),
    )?;
    t.attempts_by_subscription.insert(
        (
            outcome.subscription,
            outcome.started_ms,
            outcome.delivery,
            outcome.attempts,
        ),
        seq,
    )?;
    Ok(())
}

/// Removes the attempt records of an event.
pub(super) fn drop_attempts(t: &mut Tables<'_>, seq: u64) -> Result<(), StoreError> {
    let mut doomed = Vec::new();
    for row in t
        .attempts
        .range((seq, 0, 0, 0)..=(seq, u64::MAX, u64::MAX, u32::MAX))?
    {
        let (key, value) = row?;
        let record: AttemptRecord = from_json("attempts", value.value())?;
        doomed.push((key.value(), record.started_ms));
    }
    for ((seq, sub, delivery, attempt), started_ms) in doomed {
        t.attempts.remove((seq, sub, delivery, attempt))?;
        t.attempts_by_subscription
            .remove((sub, started_ms, delivery, attempt))?;
    }
    Ok(())
}

/// Removes the attempt records of a deleted subscription.
pub(super) fn drop_subscription_attempts(t: &mut Tables<'_>, sub: u64) -> Result<(), StoreError> {
    let mut doomed = Vec::new();
    for row in t
        .attempts_by_subscription
        .range((sub, 0, 0, 0)..=(sub, u64::MAX, u64::MAX, u32::MAX))?
    {
        let (key, seq) = row?;
        let (_, _, delivery, attempt) = key.value();
        doomed.push((seq.value(), delivery, attempt));
    }
    t.attempts_by_subscription.retain_in(
        (sub, 0, 0, 0)..=(sub, u64::MAX, u64::MAX, u32::MAX),
        |_, _| false,
    )?;
    for (seq, delivery, attempt) in doomed {
        t.attempts.remove((seq, sub, delivery, attempt))?;
    }
    Ok(())
}

pub(super) fn list_attempts(
    txn: &ReadTransaction,
    sub: u64,
    before: Option<(u64, u64, u32)>,
    limit: usize,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let index = txn.open_table(ATTEMPTS_BY_SUBSCRIPTION)?;
    let attempts = txn.open_table(ATTEMPTS)?;
    let end = before.map_or(
        (sub, u64::MAX, u64::MAX, u32::MAX),
        |(ms, delivery, attempt)| (sub, ms, delivery, attempt),
    );
    let mut out = Vec::new();
    for row in index.range((sub, 0, 0, 0)..end)?.rev().take(limit) {
        let (key, seq) = row?;
        let (_, _, delivery, attempt) = key.value();
        if let Some(record) = attempts.get((seq.value(), sub, delivery, attempt))? {
            out.push(from_json("attempts", record.value())?);
        }
    }
    Ok(out)
}

pub(super) fn event_trail(
    txn: &ReadTransaction,
    bus: &str,
    event_id: &str,
) -> Result<EventTrail, StoreError> {
    let not_found = || StoreError::no_event(bus, event_id);
    let seq = txn
        .open_table(EVENT_IDS)?
        .get((bus, event_id))?
        .ok_or_else(not_found)?
        .value();
    let row = decode_event(
        txn.open_table(EVENTS)?
            .get(seq)?
            .ok_or_else(not_found)?
            .value(),
    )?;
    let mut by_subscription: BTreeMap<u64, Vec<AttemptRecord>> = row
        .deliveries
        .iter()
        .map(|(sub, _)| (*sub, Vec::new()))
        .collect();
    let attempts = txn.open_table(ATTEMPTS)?;
    for entry in attempts.range((seq, 0, 0, 0)..=(seq, u64::MAX, u64::MAX, u32::MAX))? {
        let record: AttemptRecord = from_json("attempts", entry?.1.value())?;
        by_subscription
            .entry(record.subscription)
            .or_default()
            .push(record);
    }
    let pending = txn.open_table(DELIVERIES)?;
    let dead = txn.open_table(DEAD)?;
    let mut trail = Vec::with_capacity(by_subscription.len());
    for (subscription, mut attempts) in by_subscription {
        attempts.sort_by_key(|a| (a.started_ms, a.delivery, a.attempt));
        let current = row
            .deliveries
            .iter()
            .find(|(s, _)| *s == subscription)
            .map(|(_, d)| *d);
        let (is_pending, is_dead) = match current {
            Some(delivery) => (
                pending.get((subscription, delivery))?.is_some(),
                dead.get((subscription, delivery))?.is_some(),
            ),
            None => (false, false),
        };
        let state = DeliveryState::of(is_pending, is_dead, &attempts);
        trail.push(DeliveryTrail {
            subscription,
            state,
            attempts,
        });
    }
    Ok(EventTrail {
        event: row.event,
        deliveries: trail,
    })
}
