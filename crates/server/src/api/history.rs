//! The attempt log (`GET .../subscriptions/{name}/attempts`) and the event trail
//! (`GET /v1/buses/{bus}/events/{id}`): what happened, kept for the history retention.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use switchyard_model::format_rfc3339_ms;
use switchyard_store::{AttemptRecord, DeliveryState};

use super::subscriptions::find;
use super::views::Page;
use super::{ApiError, Params, find_bus};
use crate::App;

const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1_000;

#[derive(Serialize)]
struct AttemptView<'a> {
    event_id: &'a str,
    /// A string, so that clients in any language keep all 64 bits.
    delivery: String,
    attempt: u32,
    started_at: String,
    duration_ms: u64,
    class: &'static str,
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl<'a> AttemptView<'a> {
    fn new(record: &'a AttemptRecord) -> AttemptView<'a> {
        AttemptView {
            event_id: &record.event_id,
            delivery: record.delivery.to_string(),
            attempt: record.attempt,
            started_at: format_rfc3339_ms(record.started_ms),
            duration_ms: record.duration_ms,
            class: record.class.as_str(),
            status: record.status,
            error: record.error.as_deref(),
            outcome: record.outcome.as_str(),
            reason: record.reason.map(|r| r.as_str()),
        }
    }
}

fn parse_cursor(text: &str) -> Option<(u64, u64, u32)> {
    let mut parts = text.split('.');
    let cursor = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(cursor)
}

/// Newest first; `next` is the `before` cursor of the following (older) page.
pub(crate) async fn attempts(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    query: Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let before = match query.get("before") {
        None => None,
        Some(text) => Some(parse_cursor(text).ok_or_else(|| {
            ApiError::invalid(
                "query parameter \"before\" must be a cursor from a previous page's \"next\"",
            )
        })?),
    };
    let limit = Params::from(query)
        .number("limit", DEFAULT_PAGE, MAX_PAGE)?
        .max(1);
    let records = app
        .store()
        .list_attempts(subscription.id, before, limit as usize)
        .await?;
    let next = (records.len() as u64 == limit)
        .then(|| {
            records
                .last()
                .map(|r| format!("{}.{}.{}", r.started_ms, r.delivery, r.attempt))
        })
        .flatten();
    let items: Vec<_> = records.iter().map(AttemptView::new).collect();
    Ok(Json(Page {
        items,
        next: Some(next),
    })
    .into_response())
}

#[derive(Serialize)]
struct DeliveryView<'a> {
    subscription: String,
    state: DeliveryState,
    attempts: Vec<AttemptView<'a>>,
}

#[derive(Serialize)]
struct TrailView<'a> {
    event: Option<&'a RawValue>,
    ingested_at: String,
    hops: u32,
    traceparent: String,
    deliveries: Vec<DeliveryView<'a>>,
}

pub(crate) async fn event(
    State(app): State<Arc<App>>,
    Path((bus, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let index = find_bus(&app, &bus)?;
    let trail = app.store().event_trail(&bus, &id).await?;
    let names: HashMap<u64, &str> = index
        .subscriptions()
        .map(|s| (s.id, s.name.as_str()))
        .collect();
    let envelope = RawValue::from_string(trail.event.envelope.clone()).ok();
    let view = TrailView {
        event: envelope.as_deref(),
        ingested_at: format_rfc3339_ms(trail.event.ingested_ms),
        hops: trail.event.hops,
        traceparent: trail.event.trace.traceparent(),
        deliveries: trail
            .deliveries
            .iter()
            .map(|d| DeliveryView {
                subscription: names
                    .get(&d.subscription)
                    .map_or_else(|| "(deleted)".to_string(), |n| n.to_string()),
                state: d.state,
                attempts: d.attempts.iter().map(AttemptView::new).collect(),
            })
            .collect(),
    };
    Ok(Json(view).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors() {
        assert_eq!(
            parse_cursor("1700000000000.42.3"),
            Some((1_700_000_000_000, 42, 3))
        );
        for bad in ["", "1.2", "1.2.3.4", "a.b.c", "1.2.-3"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
