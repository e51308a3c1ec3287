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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard_metrics::SubscriptionMetrics;
use switchyard_model::{Activity, TraceContext, format_rfc3339_ms, now_ms};
use switchyard_store::{
    Outcome, OutcomeKind, PendingDelivery, PendingOrder, Store, SubscriptionRecord,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::flow::{Circuit, RateLimit};
use crate::otlp::Span;
use crate::{DispatcherConfig, attempt, policy};

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
    pub in_flight: AtomicU64,
    /// Deliveries held in memory: ready, waiting for a retry, or in flight.
    pub held: AtomicU64,
    /// True while the store holds pending deliveries this lane has not loaded.
    pub backlog: AtomicBool,
    /// The circuit breaker's state, as [`crate::CircuitState`] numbers.
    pub circuit: AtomicU8,
}

/// What an attempt task hands back to its lane: the delivery and the outcome to commit.
struct Attempted {
    delivery: PendingDelivery,
    outcome: Outcome,
}

/// A commit of several outcomes, and whether it succeeded.
type Committed = (Vec<Attempted>, Result<(), switchyard_store::StoreError>);

pub(crate) struct Lane {
    subscription: Arc<SubscriptionRecord>,
    store: Arc<dyn Store>,
    context: Arc<attempt::Context>,
    config: DispatcherConfig,
    gauges: Arc<LaneGauges>,
    metrics: Arc<SubscriptionMetrics>,
    activity: broadcast::Sender<Activity>,
    /// Every delivery id in memory, whichever queue it is in; hand-offs and store reads that
    /// name one of these are duplicates.
    held: HashSet<u64>,
    ready: VecDeque<PendingDelivery>,
    /// (retry time, id) of the deliveries in `parked`, soonest first: the first are promoted
    /// when due, the last are let go first when memory is needed for sooner ones.
    waiting: BTreeSet<(u64, u64)>,
    parked: HashMap<u64, PendingDelivery>,
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
    wake_at: Option<Instant>,
    /// Ordered subscriptions only: every held delivery not under way, in publish order. Of each
    /// ordering key, only the first may become ready, and only while no other is under way.
    queued: BTreeMap<u64, PendingDelivery>,
    /// Ordered subscriptions only: the ordering keys with a delivery under way (ready, in
    /// flight, or with its outcome not yet committed), and which delivery.
    busy: HashMap<String, u64>,
    /// Ordered subscriptions only: when the first queued delivery that is not yet due becomes due.
    queued_due_ms: Option<u64>,
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
        let rate = subscription_rate(&subscription);
        let circuit = Circuit::new(subscription.spec.circuit_breaker, Instant::now());
        Lane {
            subscription,
            store,
            context,
            config,
            gauges,
            metrics,
            activity,
            held: HashSet::new(),
            ready: VecDeque::new(),
            waiting: BTreeSet::new(),
            parked: HashMap::new(),
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
            queued: BTreeMap::new(),
            busy: HashMap::new(),
            queued_due_ms: None,
            stopping: false,
            counted_busy: false,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Message>,
        shutdown: CancellationToken,
    ) {
        while !shutdown.is_cancelled() && !self.stopping {
            let now = now_ms();
            // Parked retries do not count: deliveries due sooner may displace them (see refill).
            if self.backlog
                && now >= self.next_refill_ms
                && self.held.len().saturating_sub(self.parked.len())
                    <= self.config.lane_capacity / 2
            {
                self.refill().await;
            }
            if self.subscription.spec.ordered {
                self.promote_ordered(now_ms());
            } else {
                self.promote_due(now_ms());
            }
            self.start_attempts();
            self.track_busy();
            self.start_commit();
            self.publish_gauges();
            let next_due = if self.subscription.spec.ordered {
                self.queued_due_ms
            } else {
                self.waiting.first().map(|(due, _)| *due)
            };
            let wake_for_backlog = self.backlog;
            tokio::select! {
                () = shutdown.cancelled() => {}
                message = inbox.recv() => match message {
                    Some(message) => self.handle(message),
                    None => break,
                },
                Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    self.attempted(done);
                }
                Some(done) = self.committing.join_next(), if !self.committing.is_empty() => {
                    self.committed(done);
                }
                _ = sleep_until_ms(next_due.unwrap_or(0)), if next_due.is_some() => {}
                _ = tokio::time::sleep_until(self.wake_at.unwrap_or_else(Instant::now).into()), if self.wake_at.is_some() => {}
                _ = tokio::time::sleep(self.config.backlog_poll), if wake_for_backlog => {}
            }
        }
        // Shutdown: start nothing new; let attempts in flight finish and commit their outcomes.
        while let Some(done) = self.in_flight.join_next_with_id().await {
            self.attempted(done);
        }
        while let Some(done) = self.committing.join_next().await {
            self.committed(done);
        }
        self.start_commit();
        while let Some(done) = self.committing.join_next().await {
            self.committed(done);
        }
        self.track_busy();
        self.publish_gauges();
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

    fn handle(&mut self, message: Message) {
        match message {
            Message::Deliveries(batch) => {
                // An ordered lane reads the store in publish order instead: hand-offs of
                // concurrent publishes can arrive out of that order.
                if self.subscription.spec.ordered {
                    self.backlog = true;
                    self.next_refill_ms = 0;
                    return;
                }
                if self.backlog {
                    return;
                }
                let now = now_ms();
                for delivery in batch {
                    if self.held.len() >= self.config.lane_capacity {
                        self.backlog = true;
                        return;
                    }
                    self.admit(delivery, now);
                }
            }
            Message::Update(subscription) => {
                self.circuit.configure(subscription.spec.circuit_breaker);
                let rate = subscription.spec.rate_limit_per_s;
                if rate.map(f64::from) != self.rate.as_ref().map(RateLimit::per_s) {
                    self.rate = rate.map(|r| RateLimit::new(r, Instant::now()));
                }
                let reshelve = subscription.spec.ordered != self.subscription.spec.ordered;
                self.subscription = subscription;
                if reshelve {
                    self.reshelve();
                }
            }
            Message::Reload => {
                self.backlog = true;
                self.next_refill_ms = 0;
            }
            Message::Stop => self.stopping = true,
        }
    }

    async fn refill(&mut self) {
        let limit = self.config.lane_capacity;
        let order = if self.subscription.spec.ordered {
            PendingOrder::Publish
        } else {
            PendingOrder::Due
        };
        match self
            .store
            .load_pending(self.subscription.id, limit, order)
            .await
        {
            Ok(found) => {
                let saw_everything = found.len() < limit;
                let now = now_ms();
                let mut left_out = false;
                let mut admitted = 0;
                for delivery in found {
                    if self.held.contains(&delivery.id) {
                        continue;
                    }
                    // Memory is bounded; the soonest due deliveries are the ones worth holding.
                    if self.held.len() >= limit && !self.evict_parked_after(delivery.due_ms) {
                        left_out = true;
                        break;
                    }
                    self.admit(delivery, now);
                    admitted += 1;
                }
                self.backlog = !saw_everything || left_out;
                // A read that brought nothing new waits for the next poll rather than spinning.
                self.next_refill_ms = if admitted == 0 {
                    now + self.config.backlog_poll.as_millis() as u64
                } else {
                    0
                };
            }
            Err(error) => {
                tracing::warn!(subscription = %self.subscription.name, bus = %self.subscription.bus, %error, "cannot read pending deliveries; will try again");
                self.next_refill_ms = now_ms() + self.config.backlog_poll.as_millis() as u64;
            }
        }
    }

    fn admit(&mut self, delivery: PendingDelivery, now: u64) {
        if !self.held.insert(delivery.id) {
            return;
        }
        if self.subscription.spec.ordered {
            self.queued.insert(delivery.id, delivery);
        } else if delivery.due_ms <= now {
            self.ready.push_back(delivery);
        } else {
            self.park(delivery);
        }
    }

    fn park(&mut self, delivery: PendingDelivery) {
        if self.subscription.spec.ordered {
            self.queued.insert(delivery.id, delivery);
            return;
        }
        self.waiting.insert((delivery.due_ms, delivery.id));
        self.parked.insert(delivery.id, delivery);
    }

    /// Ordered lanes: makes ready the first queued delivery of every key that has none under
    /// way and is due (and every due delivery without a key), in publish order.
    fn promote_ordered(&mut self, now: u64) {
        let mut blocked: HashSet<String> = self.busy.keys().cloned().collect();
        let mut eligible = Vec::new();
        self.queued_due_ms = None;
        for (id, delivery) in &self.queued {
            let key = delivery.event.ordering_key.as_ref();
            if key.is_some_and(|k| blocked.contains(k)) {
                continue;
            }
            if delivery.due_ms > now {
                self.queued_due_ms = Some(
                    self.queued_due_ms
                        .map_or(delivery.due_ms, |d| d.min(delivery.due_ms)),
                );
            } else {
                eligible.push(*id);
            }
            // The first delivery of a key holds back the later ones, due or not.
            if let Some(key) = key {
                blocked.insert(key.clone());
            }
        }
        for id in eligible {
            if let Some(delivery) = self.queued.remove(&id) {
                if let Some(key) = &delivery.event.ordering_key {
                    self.busy.insert(key.clone(), id);
                }
                self.ready.push_back(delivery);
            }
        }
    }

    /// Moves the deliveries not under way to the structures of the lane's (new) mode.
    fn reshelve(&mut self) {
        let mut waiting: Vec<PendingDelivery> =
            std::mem::take(&mut self.parked).into_values().collect();
        waiting.extend(std::mem::take(&mut self.queued).into_values());
        // Ready deliveries of an ordered lane hold their key; give them back to be promoted.
        if self.subscription.spec.ordered {
            waiting.extend(self.ready.drain(..));
        }
        self.waiting.clear();
        self.busy.clear();
        let now = now_ms();
        for delivery in waiting {
            self.held.remove(&delivery.id);
            self.admit(delivery, now);
        }
    }

    /// The delivery's attempt is over (its outcome committed, or lost): its key may go on.
    fn release(&mut self, delivery: u64) {
        self.busy.retain(|_, id| *id != delivery);
    }

    fn promote_due(&mut self, now: u64) {
        while let Some((due, id)) = self.waiting.first().copied() {
            if due > now {
                break;
            }
            self.waiting.pop_first();
            if let Some(delivery) = self.parked.remove(&id) {
                self.ready.push_back(delivery);
            }
        }
    }

    /// Lets go of the parked delivery due last, if it is due after `due_ms`, to make room for a
    /// sooner one; the store keeps it, and a later read brings it back when its turn comes.
    fn evict_parked_after(&mut self, due_ms: u64) -> bool {
        match self.waiting.last().copied() {
            Some((last_due, id)) if last_due > due_ms => {
                self.waiting.pop_last();
                self.parked.remove(&id);
                self.held.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// Starts what the concurrency limit, the lane's share of the outbound connections, the
    /// circuit and the rate limit allow; sets `wake_at` when the circuit or the rate limit is
    /// what holds the rest back.
    fn start_attempts(&mut self) {
        let limit = (self.subscription.spec.max_concurrency as usize)
            .min(self.context.outbound.lane_share(self.counted_busy));
        let now = Instant::now();
        self.wake_at = None;
        while self.in_flight.len() < limit && !self.ready.is_empty() {
            if let Err(retry) = self.circuit.may_attempt(now) {
                self.wake_at = retry;
                break;
            }
            if let Some(rate) = &mut self.rate
                && let Err(next) = rate.try_take(now)
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
            let Some(delivery) = self.ready.pop_front() else {
                break;
            };
            let id = delivery.id;
            let task = self.in_flight.spawn(attempt(
                Arc::clone(&self.context),
                Arc::clone(&self.subscription),
                Arc::clone(&self.metrics),
                delivery,
            ));
            self.running.insert(task.id(), id);
        }
    }

    fn attempted(&mut self, done: Result<(tokio::task::Id, Attempted), tokio::task::JoinError>) {
        match done {
            Ok((task, attempted)) => {
                self.running.remove(&task);
                if self
                    .circuit
                    .finished(&attempted.outcome.class, Instant::now())
                {
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
                    self.release(id);
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

    fn committed(&mut self, done: Result<Committed, tokio::task::JoinError>) {
        let Ok((batch, result)) = done else {
            // Cancelled only when the lane itself is being torn down.
            self.backlog = true;
            return;
        };
        match result {
            Ok(()) => {
                let now = now_ms();
                let tailing = self.activity.receiver_count() > 0;
                for attempted in batch {
                    self.release(attempted.delivery.id);
                    if tailing {
                        let _ = self.activity.send(self.describe(&attempted, now));
                    }
                    let Attempted {
                        delivery, outcome, ..
                    } = attempted;
                    match outcome.kind {
                        OutcomeKind::Retry { due_ms } => self.park(PendingDelivery {
                            due_ms,
                            attempts: outcome.attempts,
                            ..delivery
                        }),
                        OutcomeKind::Delivered => {
                            self.metrics.delivered.fetch_add(1, Ordering::Relaxed);
                            let waited = now.saturating_sub(delivery.event.ingested_ms);
                            self.metrics
                                .ingestion_to_delivery
                                .observe(Duration::from_millis(waited));
                            self.held.remove(&delivery.id);
                        }
                        OutcomeKind::Dead { reason } => {
                            self.metrics.dead_letter(reason.as_str());
                            self.held.remove(&delivery.id);
                        }
                    }
                }
            }
            Err(error) => {
                // Not recorded: the store still has each delivery as it was before this attempt,
                // so try again (at least once, never lost) after the minimum backoff.
                tracing::warn!(subscription = %self.subscription.name, bus = %self.subscription.bus, %error, outcomes = batch.len(), "cannot record attempt outcomes; will attempt again");
                let due_ms = now_ms() + self.subscription.spec.retry.min_backoff_ms;
                for Attempted { delivery, .. } in batch {
                    self.release(delivery.id);
                    self.park(PendingDelivery { due_ms, ..delivery });
                }
            }
        }
    }

    fn describe(&self, attempted: &Attempted, now: u64) -> Activity {
        let (outcome, reason) = match attempted.outcome.kind {
            OutcomeKind::Delivered => ("delivered", None),
            OutcomeKind::Retry { .. } => ("retry", None),
            OutcomeKind::Dead { reason } => ("dead", Some(reason.as_str())),
        };
        Activity::Attempted {
            at: format_rfc3339_ms(now),
            bus: self.subscription.bus.clone(),
            subscription: self.subscription.name.clone(),
            event_id: attempted.delivery.event.id.clone(),
            attempt: attempted.outcome.attempts,
            class: attempted.outcome.class.clone(),
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

fn subscription_rate(subscription: &SubscriptionRecord) -> Option<RateLimit> {
    subscription
        .spec
        .rate_limit_per_s
        .map(|r| RateLimit::new(r, Instant::now()))
}

async fn sleep_until_ms(due_ms: u64) {
    tokio::time::sleep(Duration::from_millis(due_ms.saturating_sub(now_ms()))).await;
}

/// Makes one attempt and decides its outcome; the lane commits it.
async fn attempt(
    context: Arc<attempt::Context>,
    subscription: Arc<SubscriptionRecord>,
    metrics: Arc<SubscriptionMetrics>,
    delivery: PendingDelivery,
) -> Attempted {
    if delivery.attempts == 0 {
        let waited = now_ms().saturating_sub(delivery.event.ingested_ms);
        metrics
            .ingestion_to_attempt
            .observe(Duration::from_millis(waited));
    }
    let started_ms = now_ms();
    let started = std::time::Instant::now();
    let span_id = TraceContext::new_span_id();
    let result = {
        let _connection = context.outbound.acquire(&metrics).await;
        attempt::send(&context, &subscription, &delivery, &span_id).await
    };
    let duration = started.elapsed();
    let class = result.as_ref().map_or_else(|e| e.class(), |_| "2xx");
    metrics.attempt_duration.observe(duration);
    metrics.attempt(class);
    if let Some(spans) = &context.spans {
        let start_unix_ns = started_ms.saturating_mul(1_000_000);
        let mut attributes = vec![
            ("switchyard.bus", json!(subscription.bus)),
            ("switchyard.subscription", json!(subscription.name)),
            ("switchyard.event_id", json!(delivery.event.id)),
            ("switchyard.attempt", json!(delivery.attempts + 1)),
            ("switchyard.outcome_class", json!(class)),
        ];
        if let Some(status) = result.as_ref().map_or_else(|e| e.status(), |s| Some(*s)) {
            attributes.push(("http.response.status_code", json!(status)));
        }
        spans.export(Span {
            trace_id: delivery.event.trace.trace_id().to_string(),
            span_id,
            parent_span_id: delivery.event.trace.span_id().to_string(),
            name: format!("deliver {}/{}", subscription.bus, subscription.name),
            start_unix_ns,
            end_unix_ns: start_unix_ns.saturating_add(duration.as_nanos() as u64),
            attributes,
            failed: result.is_err(),
        });
    }
    let attempts = delivery.attempts + 1;
    let policy = &subscription.spec.retry;
    let kind = policy::decide(
        &result,
        policy,
        attempts,
        delivery.pending_since_ms,
        now_ms(),
        &mut |lo, hi| fastrand::u64(lo..=hi),
    );
    let (status, error) = match &result {
        Ok(status) => (Some(*status), None),
        Err(e) => (e.status(), Some(e.message.clone())),
    };
    log_outcome(&subscription, &delivery, attempts, &result, kind);
    let outcome = Outcome {
        subscription: subscription.id,
        delivery: delivery.id,
        attempts,
        status,
        error,
        kind,
        started_ms,
        duration_ms: duration.as_millis() as u64,
        class: class.to_string(),
    };
    Attempted { delivery, outcome }
}

fn log_outcome(
    subscription: &SubscriptionRecord,
    delivery: &PendingDelivery,
    attempt: u32,
    result: &Result<u16, crate::DeliveryError>,
    kind: OutcomeKind,
) {
    let (bus, name, event_id) = (&subscription.bus, &subscription.name, &delivery.event.id);
    match (result, kind) {
        (Ok(status), _) => {
            tracing::debug!(%bus, subscription = %name, %event_id, attempt, status, "delivered")
        }
        (Err(error), OutcomeKind::Dead { reason }) => tracing::warn!(
            %bus, subscription = %name, %event_id, attempt, class = error.class(), reason = reason.as_str(), error = %error,
            "dead-lettered"
        ),
        (Err(error), _) => tracing::info!(
            %bus, subscription = %name, %event_id, attempt, class = error.class(), error = %error,
            "attempt failed; will retry"
        ),
    }
}
