//! The attempt runner: one attempt of one delivery, from its start to the outcome its lane
//! commits. Owns the attempt's bookkeeping: it takes an outbound connection, sends through the lane's [`Transport`], counts the
//! attempt in the metrics, exports its span, asks [`crate::policy`] what the result means, and
//! logs it.
//!
//! Must not: touch the store or the lane's queue (the lane commits and re-queues), or read the
//! clock other than through the lane's [`Clock`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchyard_metrics::SubscriptionMetrics;
use switchyard_model::{AttemptClass, TraceContext};
use switchyard_store::{Outcome, OutcomeKind, PendingDelivery, SubscriptionRecord};

use crate::attempt::{self, Context};
use crate::clock::Clock;
use crate::otlp::Span;
use crate::{DeliveryError, ErrorKind, policy};

/// An attempt being sent; its Ok is the 2xx status.
pub(crate) type Sending<'a> = Pin<Box<dyn Future<Output = Result<u16, DeliveryError>> + Send + 'a>>;

/// How an attempt reaches its destination. Production sends it over HTTP ([`attempt::send`]);
/// the lane's tests answer it in process, so that paused time is not advanced under a socket.
pub(crate) trait Transport: Send + Sync {
    fn send<'a>(
        &'a self,
        subscription: &'a SubscriptionRecord,
        delivery: &'a PendingDelivery,
        span_id: &'a str,
    ) -> Sending<'a>;
}

impl Transport for Context {
    fn send<'a>(
        &'a self,
        subscription: &'a SubscriptionRecord,
        delivery: &'a PendingDelivery,
        span_id: &'a str,
    ) -> Sending<'a> {
        Box::pin(attempt::send(self, subscription, delivery, span_id))
    }
}

/// What an attempt task hands back to its lane: the delivery and the outcome to commit.
pub(crate) struct Attempted {
    pub(crate) delivery: PendingDelivery,
    pub(crate) outcome: Outcome,
}

/// Makes one attempt and decides its outcome; the lane commits it.
pub(crate) async fn run(
    context: Arc<Context>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    subscription: Arc<SubscriptionRecord>,
    metrics: Arc<SubscriptionMetrics>,
    delivery: PendingDelivery,
) -> Attempted {
    let start = clock.now();
    if delivery.attempts == 0 {
        let waited = start.ms.saturating_sub(delivery.event.ingested_ms);
        metrics
            .ingestion_to_attempt
            .observe(Duration::from_millis(waited));
    }
    let span_id = TraceContext::new_span_id();
    let unsupported = subscription
        .spec
        .eventbridge
        .as_ref()
        .is_some_and(|link| link.unsupported);
    let result = if unsupported {
        Err(DeliveryError {
            kind: ErrorKind::UnsupportedTarget,
            message: "an EventBridge target of this kind (Lambda, SQS, …) cannot be invoked by switchyard".into(),
        })
    } else {
        let _connection = context.outbound.acquire(&metrics).await;
        transport.send(&subscription, &delivery, &span_id).await
    };
    let end = clock.now();
    let duration = end.at.saturating_duration_since(start.at);
    let class = class_of(&result);
    metrics.attempt_duration.observe(duration);
    metrics.attempt(class);
    if let Some(spans) = &context.spans {
        export_span(
            spans,
            &subscription,
            &delivery,
            span_id,
            start.ms,
            duration,
            &result,
        );
    }
    let attempts = delivery.attempts + 1;
    let kind = policy::decide(
        &result,
        &subscription.spec.retry,
        attempts,
        delivery.pending_since_ms,
        end.ms,
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
        started_ms: start.ms,
        duration_ms: duration.as_millis() as u64,
        class,
    };
    Attempted { delivery, outcome }
}

fn class_of(result: &Result<u16, DeliveryError>) -> AttemptClass {
    result
        .as_ref()
        .map_or_else(DeliveryError::class, |_| AttemptClass::Status2xx)
}

/// The attempt as a client span in the event's trace (see [`crate::otlp`]).
fn export_span(
    spans: &crate::otlp::SpanExporter,
    subscription: &SubscriptionRecord,
    delivery: &PendingDelivery,
    span_id: String,
    started_ms: u64,
    duration: Duration,
    result: &Result<u16, DeliveryError>,
) {
    let start_unix_ns = started_ms.saturating_mul(1_000_000);
    let mut attributes = vec![
        ("switchyard.bus", json!(subscription.bus)),
        ("switchyard.subscription", json!(subscription.name)),
        ("switchyard.event_id", json!(delivery.event.id)),
        ("switchyard.attempt", json!(delivery.attempts + 1)),
        ("switchyard.outcome_class", json!(class_of(result).as_str())),
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

fn log_outcome(
    subscription: &SubscriptionRecord,
    delivery: &PendingDelivery,
    attempt: u32,
    result: &Result<u16, DeliveryError>,
    kind: OutcomeKind,
) {
    let (bus, name, event_id) = (&subscription.bus, &subscription.name, &delivery.event.id);
    match (result, kind) {
        (Ok(status), _) => {
            tracing::debug!(%bus, subscription = %name, %event_id, attempt, status, "delivered")
        }
        (Err(error), OutcomeKind::Dead { reason }) => tracing::warn!(
            %bus, subscription = %name, %event_id, attempt, class = error.class().as_str(), reason = reason.as_str(), error = %error,
            "dead-lettered"
        ),
        (Err(error), _) => tracing::info!(
            %bus, subscription = %name, %event_id, attempt, class = error.class().as_str(), error = %error,
            "attempt failed; will retry"
        ),
    }
}
