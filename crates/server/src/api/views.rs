//! How records look in API answers: names and RFC 3339 times, never internal ids.

use serde::Serialize;
use serde_json::value::RawValue;
use switchyard_model::{
    CircuitBreaker, DeliveryMode, EventBridgeLink, RetryPolicy, format_rfc3339_ms,
};
use switchyard_secrets::REDACTED;
use switchyard_store::{ArchiveRecord, ArchiveStats, BusRecord, DeadLetter, SubscriptionRecord};

use crate::catalog::BusIndex;
use crate::replay::{ReplayRecord, ReplayState};

/// A list answer. A struct rather than `json!`, so that raw JSON inside items (patterns, events)
/// is written out verbatim instead of being re-encoded through `serde_json::Value`.
#[derive(Serialize)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<Option<String>>,
}

#[derive(Serialize)]
pub(crate) struct BusView<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    subscriptions: usize,
    archives: usize,
    created_at: String,
    updated_at: String,
}

impl<'a> BusView<'a> {
    pub(crate) fn new(record: &'a BusRecord, index: Option<&BusIndex>) -> BusView<'a> {
        BusView {
            name: &record.name,
            description: record.spec.description.as_deref(),
            subscriptions: index.map_or(0, |b| b.subscriptions().count()),
            archives: index.map_or(0, |b| b.archives().count()),
            created_at: format_rfc3339_ms(record.created_ms),
            updated_at: format_rfc3339_ms(record.updated_ms),
        }
    }
}

/// The archive's fields as PUT takes them, plus what it holds now.
#[derive(Serialize)]
pub(crate) struct ArchiveView {
    name: String,
    bus: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<Box<RawValue>>,
    retention_days: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    event_count: u64,
    size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_event_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl ArchiveView {
    pub(crate) fn new(record: &ArchiveRecord, stats: ArchiveStats) -> ArchiveView {
        ArchiveView {
            name: record.name.clone(),
            bus: record.bus.clone(),
            pattern: record.spec.pattern.clone(),
            retention_days: record.spec.retention_days,
            description: record.spec.description.clone(),
            event_count: stats.events,
            size_bytes: stats.bytes,
            oldest_event_at: stats.oldest_ms.map(format_rfc3339_ms),
            created_at: format_rfc3339_ms(record.created_ms),
            updated_at: format_rfc3339_ms(record.updated_ms),
        }
    }
}

/// A replay: its request, state and progress.
#[derive(Serialize)]
pub(crate) struct ReplayView<'a> {
    name: &'a str,
    bus: &'a str,
    archive: &'a str,
    from: String,
    /// The end of the range, capped at when the replay started.
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscriptions: Option<&'a [String]>,
    state: ReplayState,
    events_total: u64,
    events_replayed: u64,
    deliveries_created: u64,
    /// Replayed events out of the total, 0 to 1.
    progress: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_replayed_event_at: Option<String>,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// The node running it, on a shared store.
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    /// While the replay is held up by a target's backlog: which one, and since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_for: Option<WaitingView<'a>>,
}

#[derive(Serialize)]
struct WaitingView<'a> {
    subscription: &'a str,
    since: String,
}

impl<'a> ReplayView<'a> {
    pub(crate) fn new(record: &'a ReplayRecord) -> ReplayView<'a> {
        // Completed is all there was, even if some events expired from the archive meanwhile.
        let progress = match (record.state, record.events_total) {
            (ReplayState::Completed, _) => 1.0,
            (_, 0) => 0.0,
            (_, total) => (record.events_replayed as f64 / total as f64).min(1.0),
        };
        ReplayView {
            name: &record.spec.name,
            bus: &record.spec.bus,
            archive: &record.spec.archive,
            from: format_rfc3339_ms(record.spec.from_ms),
            to: format_rfc3339_ms(record.spec.to_ms),
            subscriptions: record.spec.subscriptions.as_deref(),
            state: record.state,
            events_total: record.events_total,
            events_replayed: record.events_replayed,
            deliveries_created: record.deliveries,
            progress,
            last_replayed_event_at: record.cursor.map(|c| format_rfc3339_ms(c.ingested_ms)),
            started_at: format_rfc3339_ms(record.started_ms),
            finished_at: record.finished_ms.map(format_rfc3339_ms),
            error: record.error.as_deref(),
            node: record.node.as_deref(),
            waiting_for: record.waiting_for.as_ref().map(|w| WaitingView {
                subscription: &w.subscription,
                since: format_rfc3339_ms(w.since_ms),
            }),
        }
    }
}

/// The subscription's fields exactly as PUT takes them, plus its name, bus and times.
#[derive(Serialize)]
pub(crate) struct SubscriptionView<'a> {
    name: &'a str,
    bus: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<&'a str>,
    delivery: DeliveryMode,
    /// With sealed secrets shown as `********`: see [`redact_sealed`]. A pull subscription has
    /// none.
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter_bus: Option<&'a str>,
    /// The lease of a pulled delivery, in seconds (pull only).
    #[serde(skip_serializing_if = "Option::is_none")]
    ack_deadline_s: Option<u64>,
    retry: &'a RetryPolicy,
    max_concurrency: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_per_s: Option<u32>,
    circuit_breaker: &'a CircuitBreaker,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ordered: bool,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eventbridge: Option<&'a EventBridgeLink>,
    created_at: String,
    updated_at: String,
}

impl<'a> SubscriptionView<'a> {
    pub(crate) fn new(record: &'a SubscriptionRecord) -> SubscriptionView<'a> {
        SubscriptionView {
            name: &record.name,
            bus: &record.bus,
            pattern: record.spec.pattern.as_deref(),
            filter: record.spec.filter.as_deref(),
            delivery: record.spec.delivery,
            destination: record.spec.destination.as_ref().map(redacted),
            dead_letter_bus: record.spec.dead_letter_bus.as_deref(),
            ack_deadline_s: (record.spec.delivery == DeliveryMode::Pull)
                .then(|| record.spec.ack_deadline_ms() / 1_000),
            retry: &record.spec.retry,
            max_concurrency: record.spec.max_concurrency,
            rate_limit_per_s: record.spec.rate_limit_per_s,
            circuit_breaker: &record.spec.circuit_breaker,
            ordered: record.spec.ordered,
            enabled: record.spec.enabled,
            schedule: record.spec.schedule.as_deref(),
            eventbridge: record.spec.eventbridge.as_ref(),
            created_at: format_rfc3339_ms(record.created_ms),
            updated_at: format_rfc3339_ms(record.updated_ms),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct DeadLetterView<'a> {
    /// A string, so that clients in any language keep all 64 bits.
    id: String,
    event_id: &'a str,
    event: Option<&'a RawValue>,
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<&'a str>,
    reason: &'static str,
    ingested_at: String,
    dead_at: String,
}

impl<'a> DeadLetterView<'a> {
    pub(crate) fn new(letter: &'a DeadLetter, event: Option<&'a RawValue>) -> DeadLetterView<'a> {
        DeadLetterView {
            id: letter.id.to_string(),
            event_id: &letter.event_id,
            event,
            attempts: letter.attempts,
            last_status: letter.last_status,
            last_error: letter.last_error.as_deref(),
            reason: letter.reason.as_str(),
            ingested_at: format_rfc3339_ms(letter.ingested_ms),
            dead_at: format_rfc3339_ms(letter.dead_ms),
        }
    }
}

/// Replaces sealed secrets (`sealed:...` strings) by `********`. A sealed value is not the secret,
/// but an API client that could read one could copy it into a destination of its own and have
/// switchyard sign or authenticate with it there; answers therefore never show one.
pub(crate) fn redact_sealed(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.starts_with("sealed:") => {
            *text = REDACTED.to_string()
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_sealed),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(redact_sealed),
        _ => {}
    }
}

fn redacted(value: &impl Serialize) -> serde_json::Value {
    let mut value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    redact_sealed(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::redact_sealed;

    #[test]
    fn sealed_values_never_leave_in_answers() {
        let mut value = serde_json::json!({"a": "sealed:v1:k:xyz", "b": ["file:/x", "sealed:v1:k:abc"], "c": {"d": 1}});
        redact_sealed(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"a": "********", "b": ["file:/x", "********"], "c": {"d": 1}})
        );
    }
}
