//! Optional export of attempt spans over OTLP/HTTP (JSON encoding), off unless an endpoint is set.
//!
//! Each attempt is a client span in the event's trace: its parent is the publish span (the
//! publisher's, from its `traceparent`), and its id is the one the attempt sent in its own
//! `traceparent`, so the receiver's spans hang under it. Export never slows delivery: spans go
//! through a bounded queue to a batching task, and are dropped (and counted in the log) when the
//! queue is full or the collector fails. Must not: make an attempt wait for the exporter, or
//! retry an export (a span is worth less than the delivery it describes). At shutdown the spans
//! still queued are dropped, as they were at process exit before the exporter was tracked.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Spans waiting for export at most; beyond, new ones are dropped.
const QUEUE: usize = 10_000;
/// Spans per export request at most.
const BATCH: usize = 512;
/// How long a span waits for its batch to fill.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One finished attempt, as a span.
pub(crate) struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    pub failed: bool,
}

/// The exporter's queue.
pub(crate) struct SpanExporter {
    queue: mpsc::Sender<Span>,
}

impl SpanExporter {
    /// Starts the batching task that posts to `{endpoint}/v1/traces`, on `tasks`, until `stop`
    /// is cancelled; what is queued then is dropped, as the queue drops spans it cannot hold.
    pub(crate) fn start(
        endpoint: &str,
        client: reqwest::Client,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> SpanExporter {
        let (queue, spans) = mpsc::channel(QUEUE);
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        tasks.spawn(async move { stop.run_until_cancelled(run(url, client, spans)).await });
        SpanExporter { queue }
    }

    pub(crate) fn export(&self, span: Span) {
        if self.queue.try_send(span).is_err() {
            tracing::debug!("otlp: span queue full; span dropped");
        }
    }
}

async fn run(url: String, client: reqwest::Client, mut spans: mpsc::Receiver<Span>) {
    while let Some(first) = spans.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, spans.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let count = batch.len();
        let sent = client
            .post(&url)
            .timeout(Duration::from_secs(10))
            .json(&encode(batch))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::warn!(
                status = response.status().as_u16(),
                count,
                "otlp: collector refused spans"
            ),
            Err(error) => {
                tracing::warn!(error = %error.without_url(), count, "otlp: cannot reach the collector")
            }
        }
    }
}

fn attribute(key: &str, value: &Value) -> Value {
    let value = match value {
        Value::Number(n) => json!({"intValue": n.to_string()}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": value})
}

/// The OTLP/JSON `ExportTraceServiceRequest` for a batch.
fn encode(batch: Vec<Span>) -> Value {
    let spans: Vec<Value> = batch
        .into_iter()
        .map(|span| {
            json!({
                "traceId": span.trace_id,
                "spanId": span.span_id,
                "parentSpanId": span.parent_span_id,
                "name": span.name,
                // SPAN_KIND_CLIENT: switchyard calls the destination.
                "kind": 3,
                "startTimeUnixNano": span.start_unix_ns.to_string(),
                "endTimeUnixNano": span.end_unix_ns.to_string(),
                "attributes": span.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
                "status": {"code": if span.failed { 2 } else { 1 }},
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [attribute("service.name", &json!("switchyard"))]},
        "scopeSpans": [{"scope": {"name": "switchyard", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_otlp_json_shape() {
        let body = encode(vec![Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b8".into(),
            parent_span_id: "00f067aa0ba902b7".into(),
            name: "deliver b/s".into(),
            start_unix_ns: 1,
            end_unix_ns: 2,
            attributes: vec![
                ("switchyard.attempt", json!(1)),
                ("switchyard.bus", json!("b")),
            ],
            failed: true,
        }]);
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["startTimeUnixNano"], "1");
        assert_eq!(
            span["attributes"][0],
            json!({"key": "switchyard.attempt", "value": {"intValue": "1"}})
        );
        assert_eq!(span["status"]["code"], 2);
    }
}
