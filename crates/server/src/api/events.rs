//! `POST /v1/buses/{bus}/events`: the publish path.
//!
//! Validate, match against the bus's compiled patterns, commit the events with their deliveries
//! (the store groups concurrent publishes into one commit), answer, and only then hand the
//! deliveries to the dispatcher. Answers have PutEvents' shape: one entry per event, in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use switchyard_model::{
    Activity, Event, ModelError, PublishContext, TraceContext, format_rfc3339_ms, now_ms,
    parse_publish_request,
};
use switchyard_store::{NewEvent, PendingDelivery};

use super::{ApiError, Body, names};
use crate::App;

pub async fn publish(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    names(&[("bus", &bus)])?;
    let index = app
        .catalog
        .bus(&bus)
        .ok_or_else(|| ApiError::not_found(format!("bus {bus:?} does not exist")))?;
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
    if request.single {
        if let Some(Err(error)) = request.entries.first() {
            bus_metrics.rejected(error.code_for_metrics(), 1);
            return Err(error.clone().into());
        }
    }
    let mut answers: Vec<Result<String, ModelError>> = Vec::with_capacity(request.entries.len());
    let mut accepted = Vec::with_capacity(request.entries.len());
    for entry in request.entries {
        let routed = entry.and_then(|event| match index.route(&event.envelope) {
            Ok(subscriptions) => Ok((event, subscriptions)),
            Err(e) => Err(ModelError::Invalid(format!(
                "the event cannot be matched: {e}"
            ))),
        });
        match routed {
            Ok((event, subscriptions)) => {
                answers.push(Ok(event.id.clone()));
                accepted.push(NewEvent {
                    bus: bus.clone(),
                    event: Arc::new(event),
                    subscriptions,
                });
            }
            Err(error) => answers.push(Err(error)),
        }
    }
    let failed = answers.iter().filter(|a| a.is_err()).count();
    if !accepted.is_empty() {
        let count = accepted.len() as u64;
        // Only while someone tails: keep the events to announce once they are durable.
        let tailing = app.dispatcher.activity().receiver_count() > 0;
        let published: Vec<Arc<Event>> = if tailing {
            accepted.iter().map(|e| Arc::clone(&e.event)).collect()
        } else {
            Vec::new()
        };
        let deliveries: Vec<_> = app
            .store
            .append(accepted)
            .await?
            .into_iter()
            .flatten()
            .collect();
        bus_metrics.published.fetch_add(count, Ordering::Relaxed);
        if tailing {
            announce(&app, &bus, &published, &deliveries);
        }
        for delivery in &deliveries {
            if let Some(subscription) = app.metrics.subscription_by_id(delivery.subscription) {
                subscription.matched.fetch_add(1, Ordering::Relaxed);
            }
        }
        app.dispatcher.hand_off(deliveries);
    }
    bus_metrics.rejected("invalid", failed as u64);
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

/// Tells tails about published events; only called while someone tails.
fn announce(app: &App, bus: &str, events: &[Arc<Event>], deliveries: &[PendingDelivery]) {
    #[derive(serde::Deserialize)]
    struct Names {
        source: String,
        #[serde(rename = "detail-type")]
        detail_type: String,
    }
    let at = format_rfc3339_ms(now_ms());
    for event in events {
        let Ok(names) = serde_json::from_str::<Names>(&event.envelope) else {
            continue;
        };
        let matched = deliveries
            .iter()
            .filter(|d| Arc::ptr_eq(&d.event, event))
            .count();
        let _ = app.dispatcher.activity().send(Activity::Published {
            at: at.clone(),
            bus: bus.to_string(),
            event_id: event.id.clone(),
            source: names.source,
            detail_type: names.detail_type,
            matched,
        });
    }
}
