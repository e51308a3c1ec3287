//! The node's outbound HTTP connections: a shared, bounded resource.
//!
//! Every attempt holds one of a fixed number of permits while its request is under way, so the
//! dispatcher never opens more sockets than `--max-outbound-connections` however many
//! subscriptions set a high `max_concurrency` (a descriptor limit reached by one stuck
//! destination would fail every other subscription's attempts with "Too many open files").
//! Each lane may start at most its fair share of the permits: an equal part for every lane with
//! attempts under way, with one part always left over for a lane that becomes busy. So one
//! destination that never answers cannot starve the others: they wait for a permit (counted in
//! `switchyard_outbound_waits_total`), they do not fail.
//!
//! Must not: fail an attempt for want of a permit (it waits), or hold a permit across anything
//! but the request.
//!
//! Invariant: permits in use ≤ limit; a lane's share ≥ 1.

use std::sync::atomic::{AtomicUsize, Ordering};

use switchyard_metrics::SubscriptionMetrics;
use tokio::sync::{Semaphore, SemaphorePermit};

pub(crate) struct Outbound {
    permits: Semaphore,
    limit: usize,
    /// Lanes with at least one attempt under way: what the fair share divides by.
    busy_lanes: AtomicUsize,
}

impl Outbound {
    pub(crate) fn new(limit: usize) -> Outbound {
        let limit = limit.max(1);
        Outbound {
            permits: Semaphore::new(limit),
            limit,
            busy_lanes: AtomicUsize::new(0),
        }
    }

    /// How many attempts a lane may have under way: the limit shared by the busy lanes (this
    /// one counted, busy or not) and one more.
    pub(crate) fn lane_share(&self, lane_is_busy: bool) -> usize {
        let others = self.busy_lanes.load(Ordering::Relaxed) - usize::from(lane_is_busy);
        (self.limit / (others + 2)).max(1)
    }

    /// A lane's first attempt started (`true`) or its last one ended (`false`).
    pub(crate) fn lane_busy(&self, busy: bool) {
        if busy {
            self.busy_lanes.fetch_add(1, Ordering::Relaxed);
        } else {
            self.busy_lanes.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A permit for one request; waits (and counts the wait) when all are in use.
    pub(crate) async fn acquire(&self, metrics: &SubscriptionMetrics) -> SemaphorePermit<'_> {
        if let Ok(permit) = self.permits.try_acquire() {
            return permit;
        }
        metrics.outbound_waits.fetch_add(1, Ordering::Relaxed);
        match self.permits.acquire().await {
            Ok(permit) => permit,
            // Never closed: the semaphore lives as long as the dispatcher.
            Err(_) => unreachable!("the outbound semaphore is never closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_busy_lane_leaves_room_for_others() {
        let outbound = Outbound::new(100);
        assert_eq!(outbound.lane_share(false), 50, "alone: half");
        outbound.lane_busy(true);
        assert_eq!(outbound.lane_share(true), 50);
        assert_eq!(
            outbound.lane_share(false),
            33,
            "a second lane: a third each"
        );
        outbound.lane_busy(true);
        outbound.lane_busy(true);
        assert_eq!(outbound.lane_share(true), 25);
        for _ in 0..3 {
            outbound.lane_busy(false);
        }
        assert_eq!(Outbound::new(1).lane_share(false), 1, "never zero");
    }
}
