//! Metrics: what `/metrics` shows, recorded on the hot paths without locks.
//!
//! Owns the metric names, their help texts and label sets (the public contract that dashboards
//! and alerts depend on; see `docs/metrics.md`), per-bus, per-subscription and per-route handles
//! of atomic counters and fixed-bucket histograms, and the Prometheus text rendering.
//!
//! Must not: take a label value that is unbounded (an event id, a URL, an error message, a
//! request path); labels are bus and subscription names, route templates ([`http`]) and small
//! closed sets (`class`, `reason`, `method`). Must not do I/O: gauges that come from the store
//! (pending, oldest pending age, dead letters) are computed by the caller at scrape time and
//! passed to [`Metrics::render`], and so are the process's and the store's own ([`node`]).
//!
//! The closed sets of delivery (`class`, dead-letter `reason`) are the model's types, indexed
//! here by the enum itself: the metrics depend on `switchyard-model` (pure data, no I/O) so that
//! the label values are the very spellings the store and the API use, and a label set cannot
//! miss a member.
//!
//! Counters live in memory and start from zero at each start, which Prometheus's `rate()`
//! handles; the durable totals are the store's per-subscription stats.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use switchyard_model::{AttemptClass, DeadReason, ModelError};

mod http;
mod node;

pub use http::{HttpMethod, UNMATCHED_ROUTE};
pub use node::{
    PoolGauges, ProcessGauges, StoreGauges, render_build_info, render_process, render_store,
};

/// Why a publish was refused, as the `reason` label of `switchyard_events_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Not a valid event (shape, field, pattern-related limits).
    Invalid,
    /// Over the event size limit.
    TooLarge,
    /// Refused by the loop guard: `switchyard-hops` reached `--max-hops`.
    MaxHops,
    /// Refused by the loop guard: the original event used up its `--max-forwards`.
    MaxForwards,
}

impl RejectReason {
    /// Every member, in declaration order: `reason as usize` indexes the counters.
    pub const ALL: [RejectReason; 4] = [
        RejectReason::Invalid,
        RejectReason::TooLarge,
        RejectReason::MaxHops,
        RejectReason::MaxForwards,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Invalid => "invalid",
            RejectReason::TooLarge => "too_large",
            RejectReason::MaxHops => "max_hops",
            RejectReason::MaxForwards => "max_forwards",
        }
    }
}

impl From<&ModelError> for RejectReason {
    fn from(error: &ModelError) -> RejectReason {
        match error {
            ModelError::TooLarge(_) => RejectReason::TooLarge,
            ModelError::Invalid(_) | ModelError::InvalidPattern(_) => RejectReason::Invalid,
        }
    }
}
/// What became of a webhook request, as the `result` label of `switchyard_source_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceResult {
    Published,
    Challenge,
    Refused,
}

impl SourceResult {
    /// Every member, in declaration order: `result as usize` indexes the counters.
    const ALL: [SourceResult; 3] = [
        SourceResult::Published,
        SourceResult::Challenge,
        SourceResult::Refused,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SourceResult::Published => "published",
            SourceResult::Challenge => "challenge",
            SourceResult::Refused => "refused",
        }
    }
}

/// Upper bounds in seconds: from a fast local receiver (1 ms) to a day-long retry window.
const BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 1800.0, 3600.0,
];

/// A histogram with fixed buckets; observations are lock-free.
#[derive(Debug)]
pub struct Histogram {
    /// Non-cumulative counts per bucket, plus one for +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Counts one observation in the first bucket whose bound is at least `value`, and adds it to
    /// the sum (kept in whole microseconds, rendered in seconds).
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = BUCKETS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

fn counters<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// Per-bus counters of the publish path.
#[derive(Debug)]
pub struct BusMetrics {
    /// Events accepted on the bus by a publish, counted once they are durable (replays are
    /// counted in `replayed`).
    pub published: AtomicU64,
    /// Events published again by replays (not counted in `published`).
    pub replayed: AtomicU64,
    /// Copies of events kept by the bus's archives (an event kept by two archives counts twice).
    pub archived: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
}

impl BusMetrics {
    /// Counts refused events.
    pub fn rejected(&self, reason: RejectReason, events: u64) {
        self.rejected[reason as usize].fetch_add(events, Ordering::Relaxed);
    }
}

/// Per-subscription counters and histograms of matching and delivery.
#[derive(Debug)]
pub struct SubscriptionMetrics {
    bus: String,
    name: String,
    /// Events whose publish matched this subscription's pattern: one delivery each.
    pub matched: AtomicU64,
    /// Ticks of its schedule that made a delivery here (a tick fired by another node of the
    /// cluster is counted there).
    pub schedule_ticks: AtomicU64,
    /// Ticks of its schedule found too late to fire (the node was stalled) and skipped.
    pub schedule_ticks_skipped: AtomicU64,
    /// Deliveries of a pull subscription leased to consumers, redeliveries included.
    pub pulled: AtomicU64,
    /// Leases of a delivery that was pulled before and not acknowledged in time (or given back).
    pub pull_redeliveries: AtomicU64,
    attempts: [AtomicU64; AttemptClass::ALL.len()],
    /// Deliveries completed: a 2xx answer, or an acknowledgement of a pulled delivery.
    pub delivered: AtomicU64,
    dead: [AtomicU64; DeadReason::ALL.len()],
    /// Times the rate limit held attempts back.
    pub rate_limit_waits: AtomicU64,
    /// Times the circuit breaker opened.
    pub circuit_opened: AtomicU64,
    /// Attempts that waited for one of the node's outbound connections to free up.
    pub outbound_waits: AtomicU64,
    /// How long each HTTP attempt took, whatever its outcome.
    pub attempt_duration: Histogram,
    /// From ingestion to the first attempt's start: how long events wait before being tried.
    pub ingestion_to_attempt: Histogram,
    /// From ingestion to the attempt that delivered: the end-to-end delay subscribers see.
    pub ingestion_to_delivery: Histogram,
}

impl SubscriptionMetrics {
    /// Counts an attempt of this class.
    pub fn attempt(&self, class: AttemptClass) {
        self.attempts[class as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a delivery dead-lettered for this reason.
    pub fn dead_letter(&self, reason: DeadReason) {
        self.dead[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Per-source counters of webhook requests. Refusal reasons are a closed set owned by the
/// sources crate, so they arrive as `&'static str`.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    results: [AtomicU64; SourceResult::ALL.len()],
    refusals: std::sync::Mutex<BTreeMap<&'static str, u64>>,
}

impl SourceMetrics {
    /// Counts a webhook request that was verified and published to the source's bus.
    pub fn published(&self) {
        self.results[SourceResult::Published as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a verified handshake (Slack's `url_verification` or `ssl_check`): answered,
    /// nothing published.
    pub fn challenge(&self) {
        self.results[SourceResult::Challenge as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused webhook request under `reason`, the `reason` label of
    /// `switchyard_source_refusals_total`: the source's verification code (a bad signature, a
    /// stale timestamp, ...) or the publish path's error code (`max_hops`, ...).
    pub fn refused(&self, reason: &'static str) {
        self.results[SourceResult::Refused as usize].fetch_add(1, Ordering::Relaxed);
        *self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// The counts so far (since this process started), as the source's API view shows them.
    pub fn counts(&self) -> SourceCounts {
        let result = |r: SourceResult| self.results[r as usize].load(Ordering::Relaxed);
        SourceCounts {
            published: result(SourceResult::Published),
            challenge: result(SourceResult::Challenge),
            refused: result(SourceResult::Refused),
            refusals: self
                .refusals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// A source's webhook requests by result, and its refusals by reason.
#[derive(Debug, Clone, Default)]
pub struct SourceCounts {
    /// Verified and published.
    pub published: u64,
    /// Verified handshakes, answered without publishing.
    pub challenge: u64,
    /// Refused, for any reason.
    pub refused: u64,
    /// Refused, by reason (the `reason` label of `switchyard_source_refusals_total`).
    pub refusals: BTreeMap<&'static str, u64>,
}

/// Gauge values the caller computed at scrape time, for one subscription.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubscriptionGauges {
    /// What the store says; `None` when it did not answer this scrape, and then those series
    /// are left out rather than shown as an empty backlog.
    pub backlog: Option<Backlog>,
    /// HTTP attempts in flight now on this node; 0 when the subscription has no lane here.
    pub in_flight: u64,
    /// 0 closed, 1 open, 2 half-open.
    pub circuit_state: u8,
}

/// A subscription's backlog and dead letters, read from the store at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    /// Deliveries neither delivered nor dead-lettered yet.
    pub pending: u64,
    /// Seconds since the oldest pending delivery became pending; 0 when nothing is pending.
    pub oldest_pending_age_seconds: f64,
    /// Dead letters kept now: neither redriven nor purged.
    pub dead_letters: u64,
}

/// What an archive holds, read from the store at scrape time.
#[derive(Debug, Clone, Default)]
pub struct ArchiveGauges {
    /// The name of the bus the archive keeps events of (the `bus` label).
    pub bus: String,
    /// The archive's name, unique within its bus (the `archive` label).
    pub archive: String,
    /// Events the archive holds now; expired ones are no longer counted.
    pub events: u64,
    /// Total size in bytes of the envelopes the archive holds now.
    pub bytes: u64,
}

/// Renders archive gauges as Prometheus text, to follow [`Metrics::render`]'s output: archives
/// live in the store, so their figures are read there at scrape time, not counted here.
pub fn render_archives(archives: &[ArchiveGauges]) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: &dyn Fn(&ArchiveGauges) -> u64| {
        header(&mut out, name, "gauge", help);
        for a in archives {
            let _ = writeln!(
                out,
                "{name}{{bus=\"{}\",archive=\"{}\"}} {}",
                escape(&a.bus),
                escape(&a.archive),
                value(a)
            );
        }
    };
    gauge(
        "switchyard_archive_events",
        "Events an archive holds now (expired ones are gone).",
        &|a| a.events,
    );
    gauge(
        "switchyard_archive_bytes",
        "Envelope bytes an archive holds now.",
        &|a| a.bytes,
    );
    out
}

/// A subscription that is an EventBridge rule's target, for the info series that joins the
/// subscription's metrics to the rule and target.
#[derive(Debug, Clone, Default)]
pub struct EventBridgeTarget {
    /// The subscription's bus (the rule's).
    pub bus: String,
    /// The subscription's name (`RULE.TARGET`, or shortened with a hash).
    pub subscription: String,
    /// The rule's name.
    pub rule: String,
    /// The target's `Id`.
    pub target_id: String,
}

/// Renders `switchyard_eventbridge_target_info`: 1 per EventBridge target, so that a rule's or a
/// target's failures are one join away (`* on (bus, subscription) group_left (rule, target_id)`)
/// while the subscription series keep their labels.
pub fn render_eventbridge_targets(targets: &[EventBridgeTarget]) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "switchyard_eventbridge_target_info",
        "gauge",
        "1 for each subscription that is an EventBridge rule's target, labelled with the rule and target id.",
    );
    for t in targets {
        let _ = writeln!(
            out,
            "switchyard_eventbridge_target_info{{bus=\"{}\",subscription=\"{}\",rule=\"{}\",target_id=\"{}\"}} 1",
            escape(&t.bus),
            escape(&t.subscription),
            escape(&t.rule),
            escape(&t.target_id)
        );
    }
    out
}

/// The registry: one handle per bus and per subscription id.
#[derive(Debug, Default)]
pub struct Metrics {
    buses: RwLock<BTreeMap<String, Arc<BusMetrics>>>,
    subscriptions: RwLock<BTreeMap<u64, Arc<SubscriptionMetrics>>>,
    sources: RwLock<BTreeMap<String, Arc<SourceMetrics>>>,
    http: http::HttpMetrics,
}

/// Prometheus label values escape `\`, `"` and newlines; names here cannot contain them, but the
/// rendering must not depend on that.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// An empty registry: every counter starts from zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// The handle of a bus, created on first use.
    pub fn bus(&self, bus: &str) -> Arc<BusMetrics> {
        if let Some(found) = self
            .buses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(bus)
        {
            return Arc::clone(found);
        }
        let mut buses = self.buses.write().unwrap_or_else(|p| p.into_inner());
        let entry = buses.entry(bus.to_string()).or_insert_with(|| {
            Arc::new(BusMetrics {
                published: AtomicU64::new(0),
                replayed: AtomicU64::new(0),
                archived: AtomicU64::new(0),
                rejected: counters(),
            })
        });
        Arc::clone(entry)
    }

    /// Forgets a deleted bus, so that its series disappear instead of going stale.
    pub fn remove_bus(&self, bus: &str) {
        self.buses
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(bus);
    }

    /// The handle of a subscription, created on first use.
    pub fn subscription(&self, id: u64, bus: &str, name: &str) -> Arc<SubscriptionMetrics> {
        if let Some(found) = self.subscription_by_id(id) {
            return found;
        }
        let mut subscriptions = self
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let entry = subscriptions.entry(id).or_insert_with(|| {
            Arc::new(SubscriptionMetrics {
                bus: bus.to_string(),
                name: name.to_string(),
                matched: AtomicU64::new(0),
                schedule_ticks: AtomicU64::new(0),
                schedule_ticks_skipped: AtomicU64::new(0),
                pulled: AtomicU64::new(0),
                pull_redeliveries: AtomicU64::new(0),
                attempts: counters(),
                delivered: AtomicU64::new(0),
                dead: counters(),
                rate_limit_waits: AtomicU64::new(0),
                outbound_waits: AtomicU64::new(0),
                circuit_opened: AtomicU64::new(0),
                attempt_duration: Histogram::default(),
                ingestion_to_attempt: Histogram::default(),
                ingestion_to_delivery: Histogram::default(),
            })
        });
        Arc::clone(entry)
    }

    /// The handle of a subscription if it has one, without creating it: for callers that know
    /// only the id.
    pub fn subscription_by_id(&self, id: u64) -> Option<Arc<SubscriptionMetrics>> {
        self.subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// The handle of a webhook source, created on first use.
    pub fn source(&self, name: &str) -> Arc<SourceMetrics> {
        if let Some(found) = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Arc::clone(found);
        }
        let mut sources = self.sources.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(sources.entry(name.to_string()).or_default())
    }

    /// Forgets a deleted source, so that its series disappear instead of going stale.
    pub fn remove_source(&self, name: &str) {
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Counts an answered API request under its route template (or [`UNMATCHED_ROUTE`]),
    /// method and status, with the time from its arrival at the route to its answer's head.
    pub fn http_request(&self, route: &str, method: HttpMethod, status: u16, took: Duration) {
        self.http.record(route, method, status, took);
    }

    /// Forgets a deleted subscription, so that its series disappear instead of going stale.
    pub fn remove_subscription(&self, id: u64) {
        self.subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Prometheus text exposition format 0.0.4. `gauges` gives, per subscription id, the values
    /// read from the store and the dispatcher at scrape time.
    pub fn render(&self, gauges: &BTreeMap<u64, SubscriptionGauges>) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let buses: Vec<(String, Arc<BusMetrics>)> = self
            .buses
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let subscriptions: Vec<(u64, Arc<SubscriptionMetrics>)> = self
            .subscriptions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, Arc::clone(v)))
            .collect();
        let sub_labels = |s: &SubscriptionMetrics| {
            format!(
                "bus=\"{}\",subscription=\"{}\"",
                escape(&s.bus),
                escape(&s.name)
            )
        };

        header(
            &mut out,
            "switchyard_events_published_total",
            "counter",
            "Events accepted on the bus (durable before the publisher was answered).",
        );
        for (bus, m) in &buses {
            let _ = writeln!(
                out,
                "switchyard_events_published_total{{bus=\"{}\"}} {}",
                escape(bus),
                m.published.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "switchyard_events_replayed_total",
            "counter",
            "Events published again to subscriptions by replays of the bus's archives.",
        );
        for (bus, m) in &buses {
            let _ = writeln!(
                out,
                "switchyard_events_replayed_total{{bus=\"{}\"}} {}",
                escape(bus),
                m.replayed.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "switchyard_events_archived_total",
            "counter",
            "Copies of events kept by the bus's archives (one per archive that matched).",
        );
        for (bus, m) in &buses {
            let _ = writeln!(
                out,
                "switchyard_events_archived_total{{bus=\"{}\"}} {}",
                escape(bus),
                m.archived.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "switchyard_events_rejected_total",
            "counter",
            "Events refused at publish, by reason.",
        );
        for (bus, m) in &buses {
            for (reason, count) in RejectReason::ALL.iter().zip(&m.rejected) {
                let _ = writeln!(
                    out,
                    "switchyard_events_rejected_total{{bus=\"{}\",reason=\"{}\"}} {}",
                    escape(bus),
                    reason.as_str(),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        subscription_counter(
            &mut out,
            &subscriptions,
            "switchyard_matched_total",
            "Events that matched the subscription's pattern (one delivery each).",
            |s| &s.matched,
        );
        subscription_counter(
            &mut out,
            &subscriptions,
            "switchyard_schedule_ticks_total",
            "Ticks of the subscription's schedule that this node fired (one delivery each).",
            |s| &s.schedule_ticks,
        );
        subscription_counter(
            &mut out,
            &subscriptions,
            "switchyard_schedule_ticks_skipped_total",
            "Ticks of the subscription's schedule found too late to fire (a stalled node) and skipped.",
            |s| &s.schedule_ticks_skipped,
        );
        subscription_counter(
            &mut out,
            &subscriptions,
            "switchyard_pulled_total",
            "Deliveries of a pull subscription leased to consumers, redeliveries included.",
            |s| &s.pulled,
        );
        subscription_counter(
            &mut out,
            &subscriptions,
            "switchyard_pull_redeliveries_total",
            "Leases of a delivery pulled before: its earlier lease expired or was given back.",
            |s| &s.pull_redeliveries,
        );
        header(
            &mut out,
            "switchyard_delivery_attempts_total",
            "counter",
            "Attempts by outcome class: 2xx, 3xx, 4xx, 429, 5xx, timeout, connection, invalid (HTTP), acked (a pulled delivery acknowledged).",
        );
        for (_, s) in &subscriptions {
            for (class, count) in AttemptClass::ALL.iter().zip(&s.attempts) {
                let _ = writeln!(
                    out,
                    "switchyard_delivery_attempts_total{{{},class=\"{}\"}} {}",
                    sub_labels(s),
                    class.as_str(),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        header(
            &mut out,
            "switchyard_deliveries_total",
            "counter",
            "Deliveries completed: a 2xx answer, or a consumer's acknowledgement of a pulled delivery.",
        );
        for (_, s) in &subscriptions {
            let _ = writeln!(
                out,
                "switchyard_deliveries_total{{{}}} {}",
                sub_labels(s),
                s.delivered.load(Ordering::Relaxed)
            );
        }
        header(
            &mut out,
            "switchyard_dead_letters_total",
            "counter",
            "Deliveries dead-lettered, by reason.",
        );
        for (_, s) in &subscriptions {
            for (reason, count) in DeadReason::ALL.iter().zip(&s.dead) {
                let _ = writeln!(
                    out,
                    "switchyard_dead_letters_total{{{},reason=\"{}\"}} {}",
                    sub_labels(s),
                    reason.as_str(),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        let gauge = |out: &mut String,
                     name: &str,
                     help: &str,
                     value: &dyn Fn(&SubscriptionGauges) -> Option<String>| {
            header(out, name, "gauge", help);
            for (id, s) in &subscriptions {
                let g = gauges.get(id).copied().unwrap_or_default();
                if let Some(value) = value(&g) {
                    let _ = writeln!(out, "{name}{{{}}} {value}", sub_labels(s));
                }
            }
        };
        gauge(
            &mut out,
            "switchyard_subscription_pending",
            "Deliveries neither delivered nor dead-lettered yet.",
            &|g| g.backlog.map(|b| b.pending.to_string()),
        );
        gauge(
            &mut out,
            "switchyard_subscription_oldest_pending_age_seconds",
            "Age of the oldest pending delivery; 0 when nothing is pending.",
            &|g| g.backlog.map(|b| b.oldest_pending_age_seconds.to_string()),
        );
        gauge(
            &mut out,
            "switchyard_subscription_dead_letters",
            "Dead letters kept now: neither redriven nor purged.",
            &|g| g.backlog.map(|b| b.dead_letters.to_string()),
        );
        gauge(
            &mut out,
            "switchyard_subscription_in_flight",
            "HTTP attempts in flight now.",
            &|g| Some(g.in_flight.to_string()),
        );
        gauge(
            &mut out,
            "switchyard_subscription_circuit_state",
            "The circuit breaker: 0 closed, 1 open (attempts paused), 2 half-open (probing).",
            &|g| Some(g.circuit_state.to_string()),
        );
        fn rate_limit_waits(s: &SubscriptionMetrics) -> &AtomicU64 {
            &s.rate_limit_waits
        }
        fn circuit_opened(s: &SubscriptionMetrics) -> &AtomicU64 {
            &s.circuit_opened
        }
        fn outbound_waits(s: &SubscriptionMetrics) -> &AtomicU64 {
            &s.outbound_waits
        }
        type Pick = fn(&SubscriptionMetrics) -> &AtomicU64;
        let flow_counters: [(&str, &str, Pick); 3] = [
            (
                "switchyard_rate_limit_waits_total",
                "Times the subscription's rate limit held attempts back.",
                rate_limit_waits,
            ),
            (
                "switchyard_circuit_opened_total",
                "Times the circuit breaker opened because the destination kept failing.",
                circuit_opened,
            ),
            (
                "switchyard_outbound_waits_total",
                "Attempts that waited for one of the node's outbound connections to free up.",
                outbound_waits,
            ),
        ];
        for (name, help, pick) in flow_counters {
            header(&mut out, name, "counter", help);
            for (_, s) in &subscriptions {
                let _ = writeln!(
                    out,
                    "{name}{{{}}} {}",
                    sub_labels(s),
                    pick(s).load(Ordering::Relaxed)
                );
            }
        }
        let histogram =
            |out: &mut String,
             name: &str,
             help: &str,
             pick: &dyn Fn(&SubscriptionMetrics) -> &Histogram| {
                header(out, name, "histogram", help);
                for (_, s) in &subscriptions {
                    pick(s).render(out, name, &sub_labels(s));
                }
            };
        histogram(
            &mut out,
            "switchyard_attempt_duration_seconds",
            "Duration of HTTP attempts, whatever their outcome.",
            &|s| &s.attempt_duration,
        );
        histogram(
            &mut out,
            "switchyard_ingestion_to_attempt_seconds",
            "From ingestion to the start of the first attempt.",
            &|s| &s.ingestion_to_attempt,
        );
        histogram(
            &mut out,
            "switchyard_ingestion_to_delivery_seconds",
            "From ingestion to successful delivery.",
            &|s| &s.ingestion_to_delivery,
        );
        self.render_sources(&mut out);
        self.http.render(&mut out);
        out
    }
}

impl Metrics {
    fn render_sources(&self, out: &mut String) {
        let sources: Vec<(String, Arc<SourceMetrics>)> = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        header(
            out,
            "switchyard_source_requests_total",
            "counter",
            "Webhook requests to a source, by result: published, challenge (a verified handshake), refused.",
        );
        for (name, m) in &sources {
            for (result, count) in SourceResult::ALL.iter().zip(&m.results) {
                let _ = writeln!(
                    out,
                    "switchyard_source_requests_total{{source=\"{}\",result=\"{}\"}} {}",
                    escape(name),
                    result.as_str(),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        header(
            out,
            "switchyard_source_refusals_total",
            "counter",
            "Webhook requests refused, by reason (failed verification, stale timestamp, network, ...).",
        );
        for (name, m) in &sources {
            for (reason, count) in m.refusals.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                let _ = writeln!(
                    out,
                    "switchyard_source_refusals_total{{source=\"{}\",reason=\"{reason}\"}} {count}",
                    escape(name)
                );
            }
        }
    }
}

/// A counter with one series per subscription.
fn subscription_counter(
    out: &mut String,
    subscriptions: &[(u64, Arc<SubscriptionMetrics>)],
    name: &str,
    help: &str,
    value: impl Fn(&SubscriptionMetrics) -> &AtomicU64,
) {
    header(out, name, "counter", help);
    for (_, s) in subscriptions {
        let _ = writeln!(
            out,
            "{name}{{bus=\"{}\",subscription=\"{}\"}} {}",
            escape(&s.bus),
            escape(&s.name),
            value(s).load(Ordering::Relaxed)
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_results_index_their_counters_and_keep_their_label_values() {
        for (index, result) in SourceResult::ALL.iter().enumerate() {
            assert_eq!(*result as usize, index);
        }
        let labels: Vec<_> = SourceResult::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["published", "challenge", "refused"]);
    }

    #[test]
    fn reject_reasons_index_their_counters_and_keep_their_label_values() {
        for (index, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index);
        }
        let labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, ["invalid", "too_large", "max_hops", "max_forwards"]);
    }

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let metrics = Metrics::new();
        metrics
            .bus("orders")
            .published
            .fetch_add(3, Ordering::Relaxed);
        metrics.bus("orders").rejected(RejectReason::TooLarge, 1);
        let sub = metrics.subscription(7, "orders", "billing");
        sub.attempt(AttemptClass::Status5xx);
        sub.attempt(AttemptClass::Status2xx);
        sub.dead_letter(DeadReason::MaxAge);
        sub.attempt_duration.observe(Duration::from_millis(3));
        sub.attempt_duration.observe(Duration::from_secs(7200));
        let mut gauges = BTreeMap::new();
        gauges.insert(
            7,
            SubscriptionGauges {
                backlog: Some(Backlog {
                    pending: 2,
                    oldest_pending_age_seconds: 1.5,
                    dead_letters: 1,
                }),
                in_flight: 1,
                circuit_state: 1,
            },
        );
        let text = metrics.render(&gauges);
        for line in [
            "switchyard_events_published_total{bus=\"orders\"} 3",
            "switchyard_events_rejected_total{bus=\"orders\",reason=\"too_large\"} 1",
            "switchyard_delivery_attempts_total{bus=\"orders\",subscription=\"billing\",class=\"5xx\"} 1",
            "switchyard_dead_letters_total{bus=\"orders\",subscription=\"billing\",reason=\"max_age\"} 1",
            "switchyard_subscription_pending{bus=\"orders\",subscription=\"billing\"} 2",
            "switchyard_subscription_oldest_pending_age_seconds{bus=\"orders\",subscription=\"billing\"} 1.5",
            "switchyard_subscription_dead_letters{bus=\"orders\",subscription=\"billing\"} 1",
            "switchyard_subscription_circuit_state{bus=\"orders\",subscription=\"billing\"} 1",
            "switchyard_attempt_duration_seconds_bucket{bus=\"orders\",subscription=\"billing\",le=\"0.001\"} 0",
            "switchyard_attempt_duration_seconds_bucket{bus=\"orders\",subscription=\"billing\",le=\"0.005\"} 1",
            "switchyard_attempt_duration_seconds_bucket{bus=\"orders\",subscription=\"billing\",le=\"3600\"} 1",
            "switchyard_attempt_duration_seconds_bucket{bus=\"orders\",subscription=\"billing\",le=\"+Inf\"} 2",
            "switchyard_attempt_duration_seconds_count{bus=\"orders\",subscription=\"billing\"} 2",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        if let Some(g) = gauges.get_mut(&7) {
            g.backlog = None;
        }
        let without = metrics.render(&gauges);
        assert!(
            !without.contains("switchyard_subscription_pending{"),
            "{without}"
        );
        assert!(without.contains(
            "switchyard_subscription_circuit_state{bus=\"orders\",subscription=\"billing\"} 1"
        ));
        metrics.remove_subscription(7);
        assert!(!metrics.render(&gauges).contains("billing"));
        let archives = render_archives(&[ArchiveGauges {
            bus: "orders".into(),
            archive: "all".into(),
            events: 3,
            bytes: 120,
        }]);
        assert!(archives.contains("# TYPE switchyard_archive_events gauge"));
        assert!(archives.contains("switchyard_archive_events{bus=\"orders\",archive=\"all\"} 3"));
        assert!(archives.contains("switchyard_archive_bytes{bus=\"orders\",archive=\"all\"} 120"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
