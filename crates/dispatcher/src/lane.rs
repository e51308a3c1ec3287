//! A subscription's lane: the task that owns its queue, concurrency limit and retry timers.
//!
//! Owns: an in-memory window of the subscription's pending deliveries (ready, waiting for their
//! retry time, or in flight), at most `lane_capacity` of them. Must not: block on another lane,
//! or drop a delivery from memory before its outcome is committed.
//!
//! Memory and the store stay consistent without locks by one rule: deliveries are committed
//! before they are handed to the lane. In *backlog* mode (at start, after a redrive, or when the
//! window overflowed) the lane ignores handed-off deliveries, because they are in the store, and
//! reads due deliveries from the store instead; a read that returns less than asked for has seen
//! everything, and the lane returns to taking hand-offs. Ids already in memory are skipped, so a
//! delivery seen both ways is never attempted twice at the same time. (A hand-off that arrives
//! after the same delivery was loaded, delivered and let go can cause one more attempt, which
//! at-least-once allows; the store ignores its outcome.)
//!
//! The lane reads the time once per turn of its loop, from the [`Clock`] it is given, and sends
//! attempts through the [`Transport`] it is given, so that its tests drive both.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use switchyard_metrics::SubscriptionMetrics;
use switchyard_model::{Activity, format_rfc3339_ms};
use switchyard_store::{OutcomeKind, PendingDelivery, Store, StoreError, SubscriptionRecord};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Now, SystemClock};
use crate::flow::{Circuit, RateLimit};
use crate::queue::Queue;
use crate::runner::{self, Attempted, Transport};
use crate::{DispatcherConfig, attempt};

#[cfg(test)]
mod tests;

pub(crate) enum Message {
    /// Deliveries just committed by the publish path.
    Deliveries(Vec<PendingDelivery>),
    /// The subscription was changed; the next attempts use the new definition.
    Update(Arc<SubscriptionRecord>),
    /// The store has deliveries this lane has not seen.
    Reload,
    /// Another node takes the subscription over: stop as at shutdown (start nothing new, finish
    /// and commit the attempts in flight), then end.
    Stop,
}

/// Live figures of one lane, read by the API without asking the lane.
#[derive(Debug, Default)]
pub struct LaneGauges {
    /// HTTP attempts under way now: what the subscription's `max_concurrency` limits.
    pub in_flight: AtomicU64,
    /// Deliveries held in memory: ready, waiting for a retry, or in flight.
    pub held: AtomicU64,
    /// True while the store holds pending deliveries this lane has not loaded.
    pub backlog: AtomicBool,
    /// The circuit breaker's state, as [`crate::CircuitState`] numbers.
    pub circuit: AtomicU8,
}

/// A commit of several outcomes, and whether it succeeded.
type Committed = (Vec<Attempted>, Result<(), StoreError>);

/// What woke the lane's loop; handled at the start of the next turn, with that turn's time.
enum Wake {
    /// The dispatcher is shutting down.
    Shutdown,
    /// A message, or `None` when the dispatcher dropped the lane's inbox.
    Message(Option<Message>),
    Attempted(Result<(tokio::task::Id, Attempted), tokio::task::JoinError>),
    Committed(Result<Committed, tokio::task::JoinError>),
    /// A retry became due, the circuit or the rate limit lets attempts go, or the backlog is due
    /// for another read.
    Timer,
}

pub(crate) struct Lane {
    subscription: Arc<SubscriptionRecord>,
    store: Arc<dyn Store>,
    context: Arc<attempt::Context>,
    /// Sends each attempt: over HTTP in production, in process in the lane's tests.
    transport: Arc<dyn Transport>,
    /// The lane's and its attempts' only source of time.
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    gauges: Arc<LaneGauges>,
    metrics: Arc<SubscriptionMetrics>,
    activity: broadcast::Sender<Activity>,
    /// Every delivery id in memory, whether queued, in flight or waiting for its commit;
    /// hand-offs and store reads that name one of these are duplicates.
    held: HashSet<u64>,
    /// The held deliveries not under way, in the subscription's queueing scheme.
    queue: Queue,
    /// HTTP attempts under way; their number is what `max_concurrency` limits.
    in_flight: JoinSet<Attempted>,
    /// Which delivery each attempt task carries, to release it should the task panic.
    running: HashMap<tokio::task::Id, u64>,
    /// Outcomes waiting for the next commit. Their deliveries stay in `held` until committed,
    /// so a store read cannot bring them back meanwhile.
    uncommitted: Vec<Attempted>,
    /// At most one commit at a time: outcomes that finish during a commit go into the next one,
    /// so the commit size grows with the load and the store sees few, large writes.
    committing: JoinSet<Committed>,
    backlog: bool,
    /// Earliest time of the next store read, so a failing store is not read in a tight loop.
    next_refill_ms: u64,
    rate: Option<RateLimit>,
    /// Whether the rate limit is holding attempts back now (counted once per wait, not per loop).
    rate_limited: bool,
    circuit: Circuit,
    /// When the circuit or the rate limit lets the next attempt start.
    wake_at: Option<std::time::Instant>,
    /// Set by [`Message::Stop`]: the lane drains and ends, the rest of the process goes on.
    stopping: bool,
    /// Whether this lane is counted among the busy lanes that share the outbound connections.
    counted_busy: bool,
}

impl Lane {
    pub(crate) fn new(
        subscription: Arc<SubscriptionRecord>,
        store: Arc<dyn Store>,
        context: Arc<attempt::Context>,
        config: DispatcherConfig,
        gauges: Arc<LaneGauges>,
        metrics: Arc<SubscriptionMetrics>,
        activity: broadcast::Sender<Activity>,
    ) -> Lane {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let now = clock.now();
        let rate = subscription_rate(&subscription, now);
        let circuit = Circuit::new(subscription.spec.circuit_breaker, now.at);
        let queue = Queue::new(subscription.spec.ordered);
        Lane {
            subscription,
            store,
            transport: Arc::clone(&context) as Arc<dyn Transport>,
            context,
            clock,
            config,
            gauges,
            metrics,
            activity,
            held: HashSet::new(),
            queue,
            in_flight: JoinSet::new(),
            running: HashMap::new(),
            uncommitted: Vec::new(),
            committing: JoinSet::new(),
            // The store may hold deliveries from before this lane existed (restart, crash).
            backlog: true,
            next_refill_ms: 0,
            rate,
            rate_limited: false,
            circuit,
            wake_at: None,
            stopping: false,
            counted_busy: false,
        }
    }

    /// The lane with a test's clock and transport in place of production's. The flow control
    /// made by [`Lane::new`] reads tokio's clock, which such a test clock follows.
    #[cfg(test)]
    pub(crate) fn with_seams(self, clock: Arc<dyn Clock>, transport: Arc<dyn Transport>) -> Lane {
        Lane {
            clock,
            transport,
            ..self
        }
    }

    pub(crate) async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Message>,
        shutdown: CancellationToken,
    ) {
        let mut woke = None;
        loop {
            let mut now = self.clock.now();
            if let Some(wake) = woke.take()
                && !self.wake(wake, now)
            {
                break;
            }
            if shutdown.is_cancelled() || self.stopping {
                break;
            }
            // Parked retries do not count: deliveries due sooner may displace them (see refill).
            if self.backlog
                && now.ms >= self.next_refill_ms
                && self.held.len().saturating_sub(self.queue.displaceable())
                    <= self.config.lane_capacity / 2
            {
                now = self.refill().await;
            }
            self.queue.promote(now.ms);
            self.start_attempts(now);
            self.track_busy();
            self.start_commit();
            self.publish_gauges();
            let turn = Instant::from_std(now.at);
            let next_due = self
                .queue
                .next_due_ms()
                .map(|due| turn + Duration::from_millis(due.saturating_sub(now.ms)));
            let wake_at = self.wake_at.map(Instant::from_std);
            let wake_for_backlog = self.backlog;
            woke = Some(tokio::select! {
                () = shutdown.cancelled() => Wake::Shutdown,
                message = inbox.recv() => Wake::Message(message),
                Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    Wake::Attempted(done)
                }
                Some(done) = self.committing.join_next(), if !self.committing.is_empty() => {
                    Wake::Committed(done)
                }
                _ = tokio::time::sleep_until(next_due.unwrap_or(turn)), if next_due.is_some() => Wake::Timer,
                _ = tokio::time::sleep_until(wake_at.unwrap_or(turn)), if wake_at.is_some() => Wake::Timer,
                _ = tokio::time::sleep(self.config.backlog_poll), if wake_for_backlog => Wake::Timer,
            });
        }
        // Shutdown: start nothing new; let attempts in flight finish and commit their outcomes.
        while let Some(done) = self.in_flight.join_next_with_id().await {
            self.attempted(done, self.clock.now());
        }
        while let Some(done) = self.committing.join_next().await {
            self.committed(done, self.clock.now());
        }
        self.start_commit();
        while let Some(done) = self.committing.join_next().await {
            self.committed(done, self.clock.now());
        }
        self.track_busy();
        self.publish_gauges();
    }

    /// Handles what woke the loop; false when the lane must stop at once (its dispatcher or
    /// inbox is gone, so nothing will ever ask again).
    fn wake(&mut self, wake: Wake, now: Now) -> bool {
        match wake {
            Wake::Shutdown => {}
            Wake::Message(Some(message)) => self.handle(message, now),
            Wake::Message(None) => return false,
            Wake::Attempted(done) => self.attempted(done, now),
            Wake::Committed(done) => self.committed(done, now),
            Wake::Timer => {}
        }
        true
    }

    /// Keeps the outbound connections' count of busy lanes true: this lane is busy while it has
    /// attempts under way.
    fn track_busy(&mut self) {
        let busy = !self.in_flight.is_empty();
        if busy != self.counted_busy {
            self.context.outbound.lane_busy(busy);
            self.counted_busy = busy;
        }
    }

    fn handle(&mut self, message: Message, now: Now) {
        match message {
            Message::Deliveries(batch) => {
                // An ordered lane reads the store in publish order instead: hand-offs of
                // concurrent publishes can arrive out of that order.
                if self.queue.is_ordered() {
                    self.backlog = true;
                    self.next_refill_ms = 0;
                    return;
                }
                if self.backlog {
                    return;
                }
                for delivery in batch {
                    if self.held.len() >= self.config.lane_capacity {
                        self.backlog = true;
                        return;
                    }
                    self.admit(delivery, now.ms);
                }
            }
            Message::Update(subscription) => {
                self.circuit.configure(subscription.spec.circuit_breaker);
                let rate = subscription.spec.rate_limit_per_s;
                if rate.map(f64::from) != self.rate.as_ref().map(RateLimit::per_s) {
                    self.rate = subscription_rate(&subscription, now);
                }
                self.queue.reshelve(subscription.spec.ordered, now.ms);
                self.subscription = subscription;
            }
            Message::Reload => {
                self.backlog = true;
                self.next_refill_ms = 0;
            }
            Message::Stop => self.stopping = true,
        }
    }

    /// Reads due deliveries from the store; returns the time after the read, which the rest of
    /// the turn goes on with.
    async fn refill(&mut self) -> Now {
        let limit = self.config.lane_capacity;
        let found = self
            .store
            .load_pending(self.subscription.id, limit, self.queue.load_order())
            .await;
        let now = self.clock.now();
        match found {
            Ok(found) => {
                let saw_everything = found.len() < limit;
                let mut left_out = false;
                let mut admitted = 0;
                for delivery in found {
                    if self.held.contains(&delivery.id) {
                        continue;
                    }
                    // Memory is bounded; the soonest due deliveries are the ones worth holding.
                    if self.held.len() >= limit {
                        match self.queue.evict_parked_after(delivery.due_ms) {
                            Some(evicted) => {
                                self.held.remove(&evicted);
                            }
                            None => {
                                left_out = true;
                                break;
                            }
                        }
                    }
                    self.admit(delivery, now.ms);
                    admitted += 1;
                }
                self.backlog = !saw_everything || left_out;
                // A read that brought nothing new waits for the next poll rather than spinning.
                self.next_refill_ms = if admitted == 0 {
                    now.ms + self.config.backlog_poll.as_millis() as u64
                } else {
                    0
                };
            }
            Err(error) => {
                tracing::warn!(subscription = %self.subscription.name, bus = %self.subscription.bus, %error, "cannot read pending deliveries; will try again");
                self.next_refill_ms = now.ms + self.config.backlog_poll.as_millis() as u64;
            }
        }
        now
    }

    fn admit(&mut self, delivery: PendingDelivery, now_ms: u64) {
        if self.held.insert(delivery.id) {
            self.queue.admit(delivery, now_ms);
        }
    }

    /// Starts what the concurrency limit, the lane's share of the outbound connections, the
    /// circuit and the rate limit allow; sets `wake_at` when the circuit or the rate limit is
    /// what holds the rest back.
    fn start_attempts(&mut self, now: Now) {
        let limit = (self.subscription.spec.max_concurrency as usize)
            .min(self.context.outbound.lane_share(self.counted_busy));
        self.wake_at = None;
        while self.in_flight.len() < limit && self.queue.has_ready() {
            if let Err(retry) = self.circuit.may_attempt(now.at) {
                self.wake_at = retry;
                break;
            }
            if let Some(rate) = &mut self.rate
                && let Err(next) = rate.try_take(now.at)
            {
                if !self.rate_limited {
                    self.rate_limited = true;
                    self.metrics
                        .rate_limit_waits
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.wake_at = Some(next);
                break;
            }
            self.rate_limited = false;
            self.circuit.started();
            let Some(delivery) = self.queue.pop_ready() else {
                break;
            };
            let id = delivery.id;
            let task = self.in_flight.spawn(runner::run(
                Arc::clone(&self.context),
                Arc::clone(&self.transport),
                Arc::clone(&self.clock),
                Arc::clone(&self.subscription),
                Arc::clone(&self.metrics),
                delivery,
            ));
            self.running.insert(task.id(), id);
        }
    }

    fn attempted(
        &mut self,
        done: Result<(tokio::task::Id, Attempted), tokio::task::JoinError>,
        now: Now,
    ) {
        match done {
            Ok((task, attempted)) => {
                self.running.remove(&task);
                if self.circuit.finished(attempted.outcome.class, now.at) {
                    self.metrics.circuit_opened.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(bus = %self.subscription.bus, subscription = %self.subscription.name,
                        open_ms = self.subscription.spec.circuit_breaker.open_ms, "circuit opened: the destination keeps failing; pausing attempts");
                }
                self.uncommitted.push(attempted);
            }
            Err(error) => {
                // The delivery's state is unknown here but safe in the store: forget it and
                // read it back.
                if let Some(id) = self.running.remove(&error.id()) {
                    self.held.remove(&id);
                    self.queue.release(id);
                }
                self.circuit.abandoned();
                if error.is_panic() {
                    tracing::error!(subscription = %self.subscription.name, "a delivery attempt panicked; reloading from the store");
                }
                self.backlog = true;
            }
        }
    }

    fn start_commit(&mut self) {
        if !self.committing.is_empty() || self.uncommitted.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.uncommitted);
        let store = Arc::clone(&self.store);
        self.committing.spawn(async move {
            let outcomes = batch.iter().map(|a| a.outcome.clone()).collect();
            let result = store.record_outcomes(outcomes).await;
            (batch, result)
        });
    }

    fn committed(&mut self, done: Result<Committed, tokio::task::JoinError>, now: Now) {
        let Ok((batch, result)) = done else {
            // Cancelled only when the lane itself is being torn down.
            self.backlog = true;
            return;
        };
        match result {
            Ok(()) => {
                let tailing = self.activity.receiver_count() > 0;
                for attempted in batch {
                    self.queue.release(attempted.delivery.id);
                    if tailing {
                        let _ = self.activity.send(self.describe(&attempted, now.ms));
                    }
                    let Attempted { delivery, outcome } = attempted;
                    match outcome.kind {
                        OutcomeKind::Retry { due_ms } => self.queue.park(PendingDelivery {
                            due_ms,
                            attempts: outcome.attempts,
                            ..delivery
                        }),
                        OutcomeKind::Delivered => {
                            self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                            let waited = now.ms.saturating_sub(delivery.event.ingested_ms);
                            self.metrics
                                .ingestion_to_delivery
                                .observe(Duration::from_millis(waited));
                            self.held.remove(&delivery.id);
                        }
                        OutcomeKind::Dead { reason } => {
                            self.metrics.dead_letter(reason);
                            self.held.remove(&delivery.id);
                        }
                    }
                }
            }
            Err(error) => {
                // Not recorded: the store still has each delivery as it was before this attempt,
                // so try again (at least once, never lost) after the minimum backoff.
                tracing::warn!(subscription = %self.subscription.name, bus = %self.subscription.bus, %error, outcomes = batch.len(), "cannot record attempt outcomes; will attempt again");
                let due_ms = now.ms + self.subscription.spec.retry.min_backoff_ms;
                for Attempted { delivery, .. } in batch {
                    self.queue.release(delivery.id);
                    self.queue.park(PendingDelivery { due_ms, ..delivery });
                }
            }
        }
    }

    fn describe(&self, attempted: &Attempted, now_ms: u64) -> Activity {
        let (outcome, reason) = attempted.outcome.kind.label();
        Activity::Attempted {
            at: format_rfc3339_ms(now_ms),
            bus: self.subscription.bus.clone(),
            subscription: self.subscription.name.clone(),
            event_id: attempted.delivery.event.id.clone(),
            attempt: attempted.outcome.attempts,
            class: attempted.outcome.class,
            status: attempted.outcome.status,
            duration_ms: attempted.outcome.duration_ms,
            outcome,
            reason,
            error: attempted.outcome.error.clone(),
        }
    }

    fn publish_gauges(&self) {
        self.gauges
            .circuit
            .store(self.circuit.state() as u8, Ordering::Relaxed);
        self.gauges
            .in_flight
            .store(self.in_flight.len() as u64, Ordering::Relaxed);
        self.gauges
            .held
            .store(self.held.len() as u64, Ordering::Relaxed);
        self.gauges.backlog.store(self.backlog, Ordering::Relaxed);
    }
}

fn subscription_rate(subscription: &SubscriptionRecord, now: Now) -> Option<RateLimit> {
    subscription
        .spec
        .rate_limit_per_s
        .map(|r| RateLimit::new(r, now.at))
}
