//! Pull delivery: the other way out. Consumers lease a pull subscription's deliveries for its
//! ack deadline and acknowledge them; one not acknowledged in time is leased again.
//!
//! Owns the lease round (a store pull, then the retry rules: a delivery leased more than
//! `retry.max_attempts` times, or pending longer than `retry.max_age_s`, becomes a dead letter
//! instead of going out again), acknowledgements (recorded as delivered attempts of class
//! `acked`), deadline changes, the wait of a pull that finds nothing, and the ack id.
//!
//! Must not: keep deliveries in memory between calls (the store's lease is the only state, so
//! any node can serve any consumer and a dead node's leases simply expire), or hand out a
//! delivery its retry rules have given up on.
//!
//! Invariant: a delivery is leased to one consumer at a time while its lease lasts; every lease
//! counts as an attempt, as a push attempt does.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use switchyard_model::{AttemptClass, now_ms};
use switchyard_store::{
    Lease, Outcome, OutcomeKind, PendingDelivery, PullRequest, SubscriptionRecord,
};
use tokio::sync::{Notify, broadcast};

use crate::policy::lease_given_up;
use crate::{DispatchError, Dispatcher};

/// How often a waiting pull looks at the store again, for deliveries this node was not told
/// of (published on another node, or a lease that expired).
const WAIT_POLL: Duration = Duration::from_millis(250);

/// Names one lease of one delivery, as consumers hand it back: `{delivery}-{attempt}`. The
/// attempt makes a stale ack id (its delivery was leased again since) unable to move the newer
/// lease's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckId {
    /// The delivery's id.
    pub delivery: u64,
    /// The attempt the lease was.
    pub attempt: u32,
}

impl AckId {
    /// The ack id of a leased delivery.
    pub fn of(delivery: &PendingDelivery) -> AckId {
        AckId {
            delivery: delivery.id,
            attempt: delivery.attempts,
        }
    }
}

impl fmt::Display for AckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.delivery, self.attempt)
    }
}

impl FromStr for AckId {
    type Err = DispatchError;

    fn from_str(text: &str) -> Result<AckId, DispatchError> {
        let bad = || DispatchError::AckId(text.chars().take(64).collect());
        let (delivery, attempt) = text.split_once('-').ok_or_else(bad)?;
        Ok(AckId {
            delivery: delivery.parse().map_err(|_| bad())?,
            attempt: attempt.parse().map_err(|_| bad())?,
        })
    }
}

/// What became of a lease, for the streams that handed it out: a StreamingPull's flow control
/// counts what its client still holds, and the client may acknowledge or extend through any
/// call, not only its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    /// Acknowledged, or given back: no longer held.
    Done(AckId),
    /// Held until this time (Unix ms).
    Extended(AckId, u64),
}

/// Lease changes a stream may miss before it is told it lagged.
const LEASE_CHANGES: usize = 4_096;

impl Dispatcher {
    /// Subscribes to the lease changes of a subscription made on this node.
    pub fn lease_changes(&self, subscription: u64) -> broadcast::Receiver<LeaseChange> {
        let mut watchers = self
            .inner
            .lease_watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        watchers
            .entry(subscription)
            .or_insert_with(|| broadcast::channel(LEASE_CHANGES).0)
            .subscribe()
    }

    fn tell_lease_changes(
        &self,
        subscription: u64,
        changes: impl IntoIterator<Item = LeaseChange>,
    ) {
        let mut watchers = self
            .inner
            .lease_watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(sender) = watchers.get(&subscription) else {
            return;
        };
        if sender.receiver_count() == 0 {
            watchers.remove(&subscription);
            return;
        }
        for change in changes {
            let _ = sender.send(change);
        }
    }

    /// Leases up to `max` deliveries of a pull subscription for `ack_deadline_ms`; when none is
    /// ready, waits for some up to `wait` (ending early at shutdown). Deliveries the retry rules
    /// give up on become dead letters here, as a push lane's would.
    pub async fn pull(
        &self,
        subscription: &SubscriptionRecord,
        max: usize,
        wait: Duration,
        ack_deadline_ms: u64,
    ) -> Result<Vec<PendingDelivery>, DispatchError> {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = self.pull_notify(subscription.id);
        let metrics =
            self.inner
                .metrics
                .subscription(subscription.id, &subscription.bus, &subscription.name);
        loop {
            // Armed before the store is read, so a hand-off in between is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = now_ms();
            let leased = self
                .inner
                .store
                .pull(
                    subscription.id,
                    PullRequest {
                        limit: max,
                        now_ms: now,
                        until_ms: now.saturating_add(ack_deadline_ms),
                        ordered: subscription.spec.ordered,
                    },
                )
                .await?;
            let mut handed = Vec::with_capacity(leased.len());
            let mut dead = Vec::new();
            for delivery in leased {
                let retry = &subscription.spec.retry;
                match lease_given_up(retry, delivery.attempts, delivery.pending_since_ms, now) {
                    Some(reason) => dead.push(Outcome {
                        subscription: subscription.id,
                        delivery: delivery.id,
                        // The lease just taken is not an attempt the consumer saw.
                        attempts: delivery.attempts - 1,
                        status: None,
                        error: Some(format!(
                            "not acknowledged after {} deliveries",
                            delivery.attempts - 1
                        )),
                        kind: OutcomeKind::Dead { reason },
                        started_ms: now,
                        duration_ms: 0,
                        class: AttemptClass::Timeout,
                    }),
                    None => handed.push(delivery),
                }
            }
            if !dead.is_empty() {
                for outcome in &dead {
                    if let OutcomeKind::Dead { reason } = outcome.kind {
                        metrics.dead_letter(reason);
                    }
                }
                self.inner.store.record_outcomes(dead).await?;
            }
            for delivery in &handed {
                metrics
                    .pulled
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if delivery.attempts > 1 {
                    metrics
                        .pull_redeliveries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    metrics.ingestion_to_attempt.observe(Duration::from_millis(
                        now.saturating_sub(delivery.event.ingested_ms),
                    ));
                }
            }
            if !handed.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(handed);
            }
            let poll = WAIT_POLL.min(deadline - tokio::time::Instant::now());
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(poll) => {}
                () = self.inner.draining.cancelled() => return Ok(Vec::new()),
            }
        }
    }

    /// Acknowledges pulled deliveries: each is delivered, whatever its lease's state (an ack
    /// after the deadline still counts, as in Pub/Sub). Ids of deliveries already done are
    /// ignored; answers how many were not.
    pub async fn acknowledge(
        &self,
        subscription: &SubscriptionRecord,
        acks: &[AckId],
    ) -> Result<u64, DispatchError> {
        let now = now_ms();
        // Only what is still pending, so that a repeated ack is not counted twice.
        let pending = self
            .inner
            .store
            .pending_among(subscription.id, acks.iter().map(|a| a.delivery).collect())
            .await?;
        let outcomes: Vec<Outcome> = acks
            .iter()
            .filter(|ack| pending.contains(&ack.delivery))
            .map(|ack| Outcome {
                subscription: subscription.id,
                delivery: ack.delivery,
                attempts: ack.attempt,
                status: None,
                error: None,
                kind: OutcomeKind::Delivered,
                started_ms: now,
                duration_ms: 0,
                class: AttemptClass::Acked,
            })
            .collect();
        let acknowledged = outcomes.len() as u64;
        self.inner.store.record_outcomes(outcomes).await?;
        self.tell_lease_changes(subscription.id, acks.iter().map(|a| LeaseChange::Done(*a)));
        let metrics =
            self.inner
                .metrics
                .subscription(subscription.id, &subscription.bus, &subscription.name);
        for _ in 0..acknowledged {
            metrics.attempt(AttemptClass::Acked);
            metrics
                .delivered
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(acknowledged)
    }

    /// Gives leases a new deadline, `deadline_s` from now; 0 gives the deliveries back at once.
    /// Answers how many leases were still current and moved.
    pub async fn modify_ack_deadline(
        &self,
        subscription: &SubscriptionRecord,
        acks: &[AckId],
        deadline_s: u32,
    ) -> Result<u64, DispatchError> {
        let until_ms = now_ms().saturating_add(u64::from(deadline_s) * 1_000);
        let leases = acks
            .iter()
            .map(|ack| Lease {
                delivery: ack.delivery,
                attempts: ack.attempt,
                until_ms,
            })
            .collect();
        let moved = self
            .inner
            .store
            .extend_leases(subscription.id, leases)
            .await?;
        if deadline_s == 0 && moved > 0 {
            self.pull_notify(subscription.id).notify_waiters();
        }
        self.tell_lease_changes(
            subscription.id,
            acks.iter().map(|a| match deadline_s {
                0 => LeaseChange::Done(*a),
                _ => LeaseChange::Extended(*a, until_ms),
            }),
        );
        Ok(moved)
    }

    /// The wake-up of pulls waiting on a subscription, made on first use.
    fn pull_notify(&self, subscription: u64) -> Arc<Notify> {
        let mut waiters = self
            .inner
            .pull_waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(waiters.entry(subscription).or_default())
    }

    /// Wakes the pulls waiting on these subscriptions: they have new deliveries.
    pub(crate) fn wake_pulls(&self, subscriptions: impl IntoIterator<Item = u64>) {
        let waiters = self
            .inner
            .pull_waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for subscription in subscriptions {
            if let Some(notify) = waiters.get(&subscription) {
                notify.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_id_reads_back_and_a_bad_one_is_refused() {
        let id = AckId {
            delivery: 42,
            attempt: 3,
        };
        assert_eq!(id.to_string(), "42-3");
        assert_eq!("42-3".parse::<AckId>().unwrap(), id);
        for bad in [
            "",
            "42",
            "42-",
            "-3",
            "a-b",
            "42-3-1",
            "18446744073709551616-1",
        ] {
            assert!(bad.parse::<AckId>().is_err(), "{bad:?}");
        }
    }
}
