//! `POST /v1/buses/{bus}/events`: publishing over the REST API.
//!
//! Reads the loop guard and trace context from the headers, parses the body, and hands the events
//! to the shared publish path ([`crate::publish`]). Answers have PutEvents' shape: one entry per
//! event, in order.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use switchyard_model::{PublishContext, TraceContext, now_ms, parse_publish_request};

use super::{ApiError, Body, find_bus};
use crate::App;

pub async fn publish(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let index = find_bus(&app, &bus)?;
    let bus_metrics = app.metrics.bus(&bus);
    let hops = hops(&headers)?;
    if hops >= app.config.max_hops {
        bus_metrics.rejected("max_hops", 1);
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "max_hops",
            format!(
                "refused: this publish has already passed through {hops} switchyard deliveries (limit {}); a subscription probably delivers into its own bus",
                app.config.max_hops
            ),
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let context = PublishContext {
        ingested_ms: now_ms(),
        max_event_bytes: app.config.max_event_bytes,
        hops,
        trace: TraceContext::from_headers(header("traceparent"), header("tracestate")),
    };
    let request = parse_publish_request(&body, &context)
        .inspect_err(|error| bus_metrics.rejected(error.code_for_metrics(), 1))?;
    if request.single
        && let Some(Err(error)) = request.entries.first()
    {
        bus_metrics.rejected(error.code_for_metrics(), 1);
        return Err(error.clone().into());
    }
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
