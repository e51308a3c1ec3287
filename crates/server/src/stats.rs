//! Every subscription's stats, now and over the last hour: what `GET /v1/stats` (one row per
//! subscription, worst first) and `GET …/subscriptions/{name}/stats/history` answer, and what
//! the console's overview and charts draw.
//!
//! Owns the sampler: one task per node that reads every subscription's stats from the store
//! every [`INTERVAL`] and keeps the last hour of them in memory, a fixed ring per subscription
//! (about 40 KB each), so a page of the console costs no store reads and its rates need no
//! counter kept in the browser. Deleted subscriptions are dropped at the next sample.
//!
//! Must not: write anything, or hold its lock across an `.await` (a sample is read first, then
//! stored). The counts are the store's, so every node of a cluster answers the same ones; the
//! lane's own state (in flight, circuit) is the node's that runs the lane.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use switchyard_model::now_ms;
use switchyard_store::{StoreError, SubscriptionStats};

use crate::App;

/// How often every subscription is sampled: the most the overview lags behind the store.
pub(crate) const INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept per subscription: one hour.
const KEPT: usize = 720;
/// The window rates are measured over.
const RATE_WINDOW_MS: u64 = 60_000;

/// One reading of one subscription's stats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at_ms: u64,
    pub(crate) accepted: u64,
    pub(crate) delivered: u64,
    pub(crate) failed_attempts: u64,
    pub(crate) pending: u64,
    pub(crate) dead: u64,
    /// Age of the oldest pending delivery when sampled, in ms; 0 with nothing pending.
    pub(crate) oldest_pending_age_ms: u64,
}

impl Sample {
    pub(crate) fn new(at_ms: u64, stats: &SubscriptionStats) -> Sample {
        Sample {
            at_ms,
            accepted: stats.accepted,
            delivered: stats.delivered,
            failed_attempts: stats.failed_attempts,
            pending: stats.pending,
            dead: stats.dead,
            oldest_pending_age_ms: stats.oldest_pending_age_ms(at_ms),
        }
    }
}

/// Deliveries and failed attempts per second over the last minute of samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rates {
    pub(crate) delivered_per_s: f64,
    pub(crate) failed_per_s: f64,
}

/// The rings of samples, by subscription id.
#[derive(Default)]
pub(crate) struct StatsHistory {
    rings: Mutex<HashMap<u64, VecDeque<Sample>>>,
}

impl StatsHistory {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, VecDeque<Sample>>> {
        self.rings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The samples of the last hour, oldest first.
    pub(crate) fn history(&self, subscription: u64) -> Vec<Sample> {
        self.lock()
            .get(&subscription)
            .map(|ring| ring.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The latest sample and the rates leading up to it; `None` before the first sample.
    pub(crate) fn latest(&self, subscription: u64) -> Option<(Sample, Rates)> {
        let last = *self.lock().get(&subscription)?.back()?;
        Some((last, self.rates(subscription, last)))
    }

    /// Deliveries and failed attempts per second over the minute of samples up to `last` (a
    /// sample of the ring, or one read just now); zero before there are two to compare.
    pub(crate) fn rates(&self, subscription: u64, last: Sample) -> Rates {
        let rings = self.lock();
        let Some(ring) = rings.get(&subscription) else {
            return Rates::default();
        };
        let first = ring
            .iter()
            .find(|s| last.at_ms.saturating_sub(s.at_ms) <= RATE_WINDOW_MS)
            .copied()
            .unwrap_or(last);
        let span_s = last.at_ms.saturating_sub(first.at_ms) as f64 / 1000.0;
        let rate = |now: u64, then: u64| {
            if span_s > 0.0 {
                now.saturating_sub(then) as f64 / span_s
            } else {
                0.0
            }
        };
        Rates {
            delivered_per_s: rate(last.delivered, first.delivered),
            failed_per_s: rate(last.failed_attempts, first.failed_attempts),
        }
    }

    fn record(&self, samples: Vec<(u64, Sample)>) {
        let mut rings = self.lock();
        let live: std::collections::HashSet<u64> = samples.iter().map(|(id, _)| *id).collect();
        rings.retain(|id, _| live.contains(id));
        for (id, sample) in samples {
            let ring = rings
                .entry(id)
                .or_insert_with(|| VecDeque::with_capacity(KEPT));
            if ring.len() == KEPT {
                ring.pop_front();
            }
            ring.push_back(sample);
        }
    }
}

/// Starts the sampler on the app's tasks: a first sample at once, then one every [`INTERVAL`],
/// until shutdown.
pub(crate) fn start(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    let shutdown = app.shutdown().clone();
    app.tasks().spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let Some(app) = weak.upgrade() else { break };
            match sample(&app).await {
                Ok(samples) => app.stats_history().record(samples),
                Err(error) => {
                    tracing::warn!(%error, "cannot sample subscription stats; will try again")
                }
            }
        }
    });
}

/// Every subscription's stats now. A subscription deleted meanwhile is left out; any other
/// store failure skips the whole sample, so no subscription's ring has a hole the others lack.
async fn sample(app: &App) -> Result<Vec<(u64, Sample)>, StoreError> {
    let mut samples = Vec::new();
    for subscription in app.catalog().all_subscriptions() {
        match app.store().stats(subscription.id).await {
            Ok(stats) => samples.push((subscription.id, Sample::new(now_ms(), &stats))),
            Err(StoreError::NotFound(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(samples)
}
