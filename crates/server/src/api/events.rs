//! `POST /v1/buses/{bus}/events`: publishing over the REST API.
//!
//! Reads the loop guard and trace context from the headers ([`Inbound`], shared with webhook
//! sources), parses the body (the REST API's JSON, or a CloudEvent in structured, batch or binary
//! mode: `switchyard_model::parse_cloudevents`), and hands the events to the shared publish path
//! ([`crate::publish`]). Answers have PutEvents' shape: one entry per
//! event, in order.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use switchyard_metrics::{BusMetrics, RejectReason};
use switchyard_model::{
    CloudEventsBody, ModelError, PublishContext, PublishRequest, TraceContext, cloudevents_headers,
    now_ms, parse_cloudevents, parse_publish_request,
};

use super::{ApiError, RawBody, find_bus};
use crate::App;

pub(crate) async fn publish(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Value>, ApiError> {
    let index = find_bus(&app, &bus)?;
    let bus_metrics = app.metrics().bus(&bus);
    let inbound = Inbound::read(&app, &bus_metrics, &headers)?;
    let context = inbound.context.clone();
    let kind =
        BodyKind::of(&headers).inspect_err(|_| bus_metrics.rejected(RejectReason::Invalid, 1))?;
    let request = app
        .cpu()
        .run(body.len(), move || kind.parse(&body, &context))
        .await
        .inspect_err(|error| bus_metrics.rejected(RejectReason::from(error), 1))?;
    if request.single
        && let Some(Err(error)) = request.entries.first()
    {
        bus_metrics.rejected(RejectReason::from(error), 1);
        return Err(error.clone().into());
    }
    let events = request.entries.iter().filter(|e| e.is_ok()).count() as u64;
    inbound.spend(&app, &bus_metrics, events)?;
    let answers = crate::publish::publish(&app, index, request.entries).await?;
    let failed = answers.iter().filter(|a| a.is_err()).count();
    let entries: Vec<Value> = answers
        .into_iter()
        .map(|answer| match answer {
            Ok(id) => json!({ "id": id }),
            Err(error) => json!({ "error_code": error.code(), "error_message": error.to_string() }),
        })
        .collect();
    Ok(Json(
        json!({ "failed_entry_count": failed, "entries": entries }),
    ))
}

/// What a publish body is, from its headers: the REST API's own JSON, or a CloudEvent in one
/// of the HTTP binding's modes (structured and batch by `content-type`, binary by the presence
/// of `ce-specversion`).
enum BodyKind {
    Rest,
    Structured,
    Batch,
    Binary {
        attributes: Vec<(String, String)>,
        content_type: Option<String>,
    },
}

impl BodyKind {
    fn of(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
        let content_type = match headers.get(axum::http::header::CONTENT_TYPE) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| ApiError::invalid("the content-type header is not ASCII"))?,
            ),
        };
        let essence = content_type.map(switchyard_destination::media_type_essence);
        match essence.as_deref() {
            Some("application/cloudevents+json") => return Ok(BodyKind::Structured),
            Some("application/cloudevents-batch+json") => return Ok(BodyKind::Batch),
            _ => {}
        }
        if !headers.contains_key("ce-specversion") {
            return Ok(BodyKind::Rest);
        }
        let attributes = cloudevents_headers(
            headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        )?;
        Ok(BodyKind::Binary {
            attributes,
            content_type: content_type.map(str::to_string),
        })
    }

    fn parse(self, body: &[u8], context: &PublishContext) -> Result<PublishRequest, ModelError> {
        let text = || {
            std::str::from_utf8(body)
                .map_err(|_| ModelError::Invalid("the request body is not UTF-8".into()))
        };
        match self {
            BodyKind::Rest => parse_publish_request(text()?, context),
            BodyKind::Structured => {
                parse_cloudevents(CloudEventsBody::Structured(text()?), context)
            }
            BodyKind::Batch => parse_cloudevents(CloudEventsBody::Batch(text()?), context),
            BodyKind::Binary {
                attributes,
                content_type,
            } => parse_cloudevents(
                CloudEventsBody::Binary {
                    attributes,
                    content_type: content_type.as_deref(),
                    body,
                },
                context,
            ),
        }
    }
}

/// The loop guard of a publish that arrives over HTTP, here or at `/hooks/{name}`: both read
/// `switchyard-hops` and the trace context the same way, so a loop through either is stopped.
pub(super) struct Inbound {
    pub(crate) context: PublishContext,
    /// The publisher sent a valid `traceparent` (which it may reuse for many publishes).
    traced: bool,
}

impl Inbound {
    /// Reads the headers and refuses a publish that is already `max_hops` deliveries deep.
    pub(crate) fn read(
        app: &App,
        bus: &BusMetrics,
        headers: &HeaderMap,
    ) -> Result<Inbound, ApiError> {
        let hops = hops(headers)?;
        if hops >= app.config().max_hops {
            bus.rejected(RejectReason::MaxHops, 1);
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "max_hops",
                format!(
                    "refused: this publish has already passed through {hops} switchyard deliveries (limit {}); a subscription probably delivers into its own bus (GET /v1/lint lists delivery loops)",
                    app.config().max_hops
                ),
            ));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let given =
            header("traceparent").and_then(|tp| TraceContext::parse(tp, header("tracestate")));
        Ok(Inbound {
            traced: given.is_some(),
            context: PublishContext {
                ingested_ms: now_ms(),
                max_event_bytes: app.config().max_event_bytes,
                hops,
                trace: given.unwrap_or_else(TraceContext::new_root),
                aws: app.config().aws.clone(),
            },
        })
    }

    /// Once the number of events is known: a forward (hops >= 1) spends from its trace's
    /// budget, and is refused whole when that is used up; originals are counted so that each
    /// of them brings its own budget. A 400, as for `max_hops`: a 5xx or 429 would be retried.
    pub(crate) fn spend(&self, app: &App, bus: &BusMetrics, events: u64) -> Result<(), ApiError> {
        let trace = self.context.trace.trace_id();
        if self.context.hops == 0 {
            // A trace switchyard just started for one event needs no entry: its first forward
            // assumes one original.
            if self.traced || events > 1 {
                app.forwards()
                    .originals(trace, events, self.context.ingested_ms);
            }
            return Ok(());
        }
        app.forwards()
            .forward(trace, events, self.context.ingested_ms)
            .map_err(|exhausted| {
                bus.rejected(RejectReason::MaxForwards, events);
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "max_forwards",
                    format!(
                        "refused: trace {trace} has already caused {} forwarded publishes on this node, its budget of {} per original event ({} in all); a subscription probably delivers into its own bus (GET /v1/lint lists delivery loops)",
                        exhausted.used, app.config().max_forwards, exhausted.allowed
                    ),
                )
            })
    }
}
/// The publisher's `switchyard-hops`: set by switchyard on every attempt, so a receiver that
/// publishes what it got passes the count on. Absent means a first publish.
fn hops(headers: &HeaderMap) -> Result<u32, ApiError> {
    match headers.get("switchyard-hops") {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| ApiError::invalid("header switchyard-hops must be a whole number")),
    }
}
