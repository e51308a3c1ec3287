//! Buses and subscriptions as the user writes them, in the REST API and in the config file alike.
//!
//! Defaults live here, on the types, so that an omitted field means the same thing everywhere.
//! Parsing goes through [`parse_subscription_spec`], which names the offending field of any bad
//! input, and then through validation, which checks what types alone cannot.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_pattern::Pattern;

pub use switchyard_destination::{Destination, HttpMethod};

use crate::ModelError;

/// A bus has no required settings yet; the type exists so that later ones (archives, limits)
/// arrive without changing the API's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSpec {
    /// Free text for people, at most [`crate::MAX_DESCRIPTION_BYTES`]; only shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A pattern, one destination and a delivery policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// EventBridge event pattern as JSON text, kept verbatim so number literals keep their exact
    /// value; absent means every event of the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Box<RawValue>>,
    /// A Pub/Sub filter over the event's `attributes` (`attributes.kind = "x" AND NOT
    /// attributes:test`), compiled into a pattern: the alternative to `pattern` for those who
    /// write Pub/Sub's language (module `filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// How the subscription's deliveries leave: pushed to `destination` (the default), or
    /// pulled by consumers, each delivery leased for `ack_deadline_s`.
    #[serde(default, skip_serializing_if = "DeliveryMode::is_push")]
    pub delivery: DeliveryMode,
    /// Where a push subscription delivers; a pull subscription has none. Owned by
    /// `switchyard-destination`, which validates it and renders attempts straight from it;
    /// only the naming rule of its connection is this crate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Destination>,
    /// A bus each dead letter of this subscription is published to (and then purged from
    /// here), with why in its attributes: Pub/Sub's dead-letter topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_bus: Option<String>,
    /// How long a pulled delivery is leased to its consumer, in seconds: 1 to 600 (default 10,
    /// as Pub/Sub's). Not acknowledged in time, it is delivered again. Pull subscriptions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_deadline_s: Option<u32>,
    /// When a failed attempt is tried again, and when the delivery is dead-lettered instead.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Attempts in flight at once for this subscription: the receiver's protection.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// Attempts started per second at most, for receivers with a rate limit of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_s: Option<u32>,
    /// Pauses attempts to a destination that keeps failing, then probes it before resuming.
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// Deliver the events of one `ordering-key` strictly in publish order: the next is not
    /// attempted before the previous one is delivered or dead-lettered. Keys proceed in parallel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
    /// A disabled subscription matches no event, but keeps its pending deliveries (which are
    /// still attempted), dead letters, metrics and id: EventBridge's `DisableRule`.
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
    /// An EventBridge schedule expression (`rate(5 minutes)`, `cron(0 12 * * ? *)`): each tick
    /// is an event `Scheduled Event` delivered to this subscription. A scheduled subscription
    /// without a pattern takes only its ticks, not every event of the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Set when the subscription is an EventBridge rule's target, made through the EventBridge
    /// API: the link it is found by from that API. A REST `PUT` that leaves it out keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventbridge: Option<EventBridgeLink>,
}

/// How a subscription's deliveries leave switchyard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// The dispatcher sends each delivery to the destination and retries it.
    #[default]
    Push,
    /// Consumers pull deliveries and acknowledge them; one not acknowledged within the ack
    /// deadline is delivered again.
    Pull,
}

impl DeliveryMode {
    fn is_push(&self) -> bool {
        *self == DeliveryMode::Push
    }
}

/// Pub/Sub's default ack deadline.
const DEFAULT_ACK_DEADLINE_S: u32 = 10;
/// Pub/Sub's longest ack deadline.
pub const MAX_ACK_DEADLINE_S: u32 = 600;

fn enabled() -> bool {
    true
}

fn is_enabled(enabled: &bool) -> bool {
    *enabled
}

/// Which EventBridge rule and target a subscription is (docs/eventbridge.md has the mapping).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeLink {
    /// The rule's name, on the subscription's bus.
    pub rule: String,
    /// The target's `Id` within the rule.
    pub target_id: String,
    /// The `Target` as it was put, so that `ListTargetsByRule` answers it back unchanged.
    pub target: Box<RawValue>,
    /// The target's ARN names a service switchyard cannot invoke (Lambda, SQS, …): its
    /// deliveries are dead letters `unsupported_target` without an attempt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsupported: bool,
}

/// After `failure_threshold` failed attempts in a row (5xx, 429, timeout, connection error), the
/// circuit opens: no attempts for `open_ms`, then one probe; its success closes the circuit, its
/// failure opens it again. Deliveries wait meanwhile: an outage does not burn their attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// 0 disables the breaker.
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// How long an open circuit pauses attempts before its probe, in ms: 1 to 3,600,000
    /// (default 30,000).
    #[serde(default = "default_open_ms")]
    pub open_ms: u64,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker {
            failure_threshold: default_failure_threshold(),
            open_ms: default_open_ms(),
        }
    }
}

fn default_failure_threshold() -> u32 {
    10
}
fn default_open_ms() -> u64 {
    30_000
}

/// When a failed attempt is tried again. Defaults are EventBridge's: 185 attempts within 24 h.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts at most, the first included, before the delivery is dead-lettered: 1 to 10,000
    /// (default 185).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How long a delivery is retried, in seconds from when it became pending (ingestion or
    /// redrive): 1 to 604,800 (7 days; default 86,400). A retry due later is a dead letter
    /// `max_age` instead.
    #[serde(default = "default_max_age_s")]
    pub max_age_s: u64,
    /// The shortest delay before a retry, in ms: 1 to 86,400,000 (default 1,000); each failed
    /// attempt doubles the ceiling of the jittered delay, starting from here.
    #[serde(default = "default_min_backoff_ms")]
    pub min_backoff_ms: u64,
    /// The longest delay before a retry, in ms: `min_backoff_ms` to 86,400,000 (default
    /// 600,000). It also caps what a `Retry-After` answer may ask for.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// 3xx/4xx statuses that are retried like a 5xx; every other 3xx/4xx is a dead letter at
    /// once, because it means a configuration error that a person must see.
    #[serde(default = "default_retryable_statuses")]
    pub retryable_statuses: Vec<u16>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: default_max_attempts(),
            max_age_s: default_max_age_s(),
            min_backoff_ms: default_min_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            retryable_statuses: default_retryable_statuses(),
        }
    }
}

fn default_max_concurrency() -> u32 {
    16
}
fn default_max_attempts() -> u32 {
    185
}
fn default_max_age_s() -> u64 {
    86_400
}
fn default_min_backoff_ms() -> u64 {
    1_000
}
fn default_max_backoff_ms() -> u64 {
    600_000
}
fn default_retryable_statuses() -> Vec<u16> {
    vec![429]
}

const MAX_CONCURRENCY: u32 = 1_000;
const MAX_RATE_PER_S: u32 = 100_000;
const MAX_OPEN_MS: u64 = 3_600_000;
const MAX_ATTEMPTS: u32 = 10_000;
const MAX_AGE_S: u64 = 7 * 86_400;
const MAX_BACKOFF_MS: u64 = 86_400_000;

/// Parses a JSON body into `T`, naming the field of a type error (`destination.timeout_ms: ...`).
fn parse_json<'de, T: Deserialize<'de>>(text: &'de str, what: &str) -> Result<T, ModelError> {
    switchyard_destination::parse_json(text, what).map_err(|e| ModelError::invalid(e.to_string()))
}

/// Parses and validates a bus body; an empty body is a bus with no settings.
pub fn parse_bus_spec(text: &str) -> Result<BusSpec, ModelError> {
    if text.trim().is_empty() {
        return Ok(BusSpec::default());
    }
    let spec: BusSpec = parse_json(text, "the bus")?;
    crate::validate_description(spec.description.as_deref())?;
    Ok(spec)
}

/// Parses and validates a subscription body.
pub fn parse_subscription_spec(text: &str) -> Result<SubscriptionSpec, ModelError> {
    let spec: SubscriptionSpec = parse_json(text, "the subscription")?;
    spec.validate()?;
    Ok(spec)
}

impl SubscriptionSpec {
    /// Checks what the types cannot: ranges, URL, headers and the pattern itself.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.compile_pattern()?;
        match (self.delivery, &self.destination) {
            (DeliveryMode::Push, Some(destination)) => destination
                .validate(|name| crate::validate_name("connection", name))
                .map_err(|e| ModelError::invalid(e.to_string()))?,
            (DeliveryMode::Push, None) => {
                return Err(ModelError::invalid(
                    "field \"destination\" is required, unless \"delivery\" is \"pull\"",
                ));
            }
            (DeliveryMode::Pull, Some(_)) => {
                return Err(ModelError::invalid(
                    "a pull subscription has no \"destination\": its consumers pull its deliveries (POST .../pull); remove it, or make \"delivery\" \"push\"",
                ));
            }
            (DeliveryMode::Pull, None) => {}
        }
        match (self.delivery, self.ack_deadline_s) {
            (DeliveryMode::Push, Some(_)) => {
                return Err(ModelError::invalid(
                    "field \"ack_deadline_s\" applies to pull subscriptions only (\"delivery\": \"pull\")",
                ));
            }
            (DeliveryMode::Pull, Some(s)) if !(1..=MAX_ACK_DEADLINE_S).contains(&s) => {
                return Err(ModelError::invalid(format!(
                    "field \"ack_deadline_s\" must be 1 to {MAX_ACK_DEADLINE_S}"
                )));
            }
            _ => {}
        }
        self.retry.validate()?;
        if let Some(bus) = &self.dead_letter_bus {
            crate::validate_name("dead_letter_bus", bus)?;
        }
        if let Some(schedule) = &self.schedule {
            crate::Schedule::parse(schedule)
                .map_err(|e| ModelError::invalid(format!("field \"schedule\": {e}")))?;
        }
        if self
            .rate_limit_per_s
            .is_some_and(|r| !(1..=MAX_RATE_PER_S).contains(&r))
        {
            return Err(ModelError::invalid(format!(
                "field \"rate_limit_per_s\" must be 1 to {MAX_RATE_PER_S}"
            )));
        }
        if !(1..=MAX_OPEN_MS).contains(&self.circuit_breaker.open_ms) {
            return Err(ModelError::invalid(format!(
                "field \"circuit_breaker.open_ms\" must be 1 to {MAX_OPEN_MS}"
            )));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.max_concurrency) {
            return Err(ModelError::invalid(format!(
                "field \"max_concurrency\" must be 1 to {MAX_CONCURRENCY}"
            )));
        }
        Ok(())
    }

    /// How long a pulled delivery is leased, in ms.
    pub fn ack_deadline_ms(&self) -> u64 {
        u64::from(self.ack_deadline_s.unwrap_or(DEFAULT_ACK_DEADLINE_S)) * 1_000
    }

    /// Whether the publish path offers it events: not when it is disabled, nor when it is only
    /// a schedule (no pattern), which would otherwise mean every event of the bus.
    pub fn takes_events(&self) -> bool {
        self.enabled && (self.pattern.is_some() || self.filter.is_some() || self.schedule.is_none())
    }

    /// The compiled pattern (or filter), or `None` for a subscription to every event.
    pub fn compile_pattern(&self) -> Result<Option<Pattern>, ModelError> {
        let compiled;
        let text = match (&self.pattern, &self.filter) {
            (Some(_), Some(_)) => {
                return Err(ModelError::invalid(
                    "a subscription has a \"pattern\" or a \"filter\", not both",
                ));
            }
            (None, None) => return Ok(None),
            (Some(pattern), None) => pattern.get(),
            (None, Some(filter)) => {
                compiled = crate::filter_to_pattern(filter)?;
                compiled.as_str()
            }
        };
        Pattern::parse(text)
            .map(Some)
            .map_err(|e| ModelError::InvalidPattern(e.to_string()))
    }
}

impl RetryPolicy {
    fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &str, rule: String| {
            Err(ModelError::invalid(format!(
                "field \"retry.{field}\" must be {rule}"
            )))
        };
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return bad("max_attempts", format!("1 to {MAX_ATTEMPTS}"));
        }
        if !(1..=MAX_AGE_S).contains(&self.max_age_s) {
            return bad("max_age_s", format!("1 to {MAX_AGE_S}"));
        }
        if !(1..=MAX_BACKOFF_MS).contains(&self.min_backoff_ms) {
            return bad("min_backoff_ms", format!("1 to {MAX_BACKOFF_MS}"));
        }
        if !(self.min_backoff_ms..=MAX_BACKOFF_MS).contains(&self.max_backoff_ms) {
            return bad(
                "max_backoff_ms",
                format!("min_backoff_ms to {MAX_BACKOFF_MS}"),
            );
        }
        if let Some(status) = self
            .retryable_statuses
            .iter()
            .find(|s| !(300..=499).contains(*s))
        {
            return bad(
                "retryable_statuses",
                format!("a list of 3xx/4xx statuses (5xx are always retried), not {status}"),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_defaults() {
        let spec =
            parse_subscription_spec(r#"{"destination":{"url":"http://127.0.0.1:9/x"}}"#).unwrap();
        assert!(spec.pattern.is_none());
        let destination = spec.destination.as_ref().unwrap();
        assert_eq!(destination.method, HttpMethod::Post);
        assert_eq!(destination.timeout_ms, 5_000);
        assert_eq!(spec.delivery, DeliveryMode::Push);
        assert_eq!(spec.retry, RetryPolicy::default());
        assert_eq!(spec.retry.max_attempts, 185);
        assert_eq!(spec.max_concurrency, 16);
    }

    #[test]
    fn names_the_field_of_a_type_error() {
        let err =
            parse_subscription_spec(r#"{"destination":{"url":"http://h/","timeout_ms":"fast"}}"#)
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("field \"destination.timeout_ms\": invalid type"),
            "{err}"
        );
        let err = parse_subscription_spec(r#"{"destination":{"url":"http://h/"},"retri":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `retri`"), "{err}");
    }

    #[test]
    fn refuses_bad_destinations() {
        for (url, expected) in [
            ("not a url", "absolute http:// or https:// URL"),
            ("ftp://h/x", "http:// or https://"),
            ("http://user:pw@h/x", "credentials"),
        ] {
            let body = format!(r#"{{"destination":{{"url":"{url}"}}}}"#);
            let err = parse_subscription_spec(&body).unwrap_err().to_string();
            assert!(err.contains(expected), "{url}: {err}");
        }
        let err = parse_subscription_spec(
            r#"{"destination":{"url":"http://h/","headers":{"switchyard-attempt":"1"}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("set by switchyard"));
    }

    #[test]
    fn refuses_inconsistent_retry_policy() {
        let err = parse_subscription_spec(
            r#"{"destination":{"url":"http://h/"},"retry":{"min_backoff_ms":5000,"max_backoff_ms":10}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("retry.max_backoff_ms"), "{err}");
    }

    #[test]
    fn checks_the_schedule_and_names_its_field() {
        let spec = parse_subscription_spec(
            r#"{"schedule":"rate(5 minutes)","destination":{"url":"http://h/"}}"#,
        )
        .unwrap();
        assert_eq!(spec.schedule.as_deref(), Some("rate(5 minutes)"));
        assert!(!spec.takes_events());
        let err = parse_subscription_spec(
            r#"{"schedule":"rate(5 minute)","destination":{"url":"http://h/"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("field \"schedule\": "), "{err}");
    }

    #[test]
    fn refuses_invalid_pattern_with_its_reason() {
        let err = parse_subscription_spec(
            r#"{"pattern":{"source":"x"},"destination":{"url":"http://h/"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_pattern");
    }
}
