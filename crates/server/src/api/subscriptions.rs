//! `/v1/buses/{bus}/subscriptions[/{name}[/stats]]`. A PUT answers, besides the subscription,
//! the delivery loops it is on as `warnings`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use switchyard_model::{now_ms, parse_subscription_spec};
use switchyard_store::SubscriptionRecord;

use super::views::{Page, SubscriptionView};
use super::{ApiError, Body, Params, find_bus, names};
use crate::App;
use crate::lint::Finding;

/// The subscription as the catalog knows it, or a 404 that says which of bus and name is wrong.
pub(super) fn find(app: &App, bus: &str, name: &str) -> Result<Arc<SubscriptionRecord>, ApiError> {
    names(&[("subscription", name)])?;
    let index = find_bus(app, bus)?;
    index.subscription(name).cloned().ok_or_else(|| {
        ApiError::not_found(format!(
            "subscription {name:?} does not exist on bus {bus:?}"
        ))
    })
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    query: Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let index = find_bus(&app, &bus)?;
    let mut subscriptions: Vec<_> = index.subscriptions().collect();
    let next = Params::from(query)
        .name_page()?
        .select(&mut subscriptions, |s| &s.name);
    let items: Vec<_> = subscriptions
        .into_iter()
        .map(|s| SubscriptionView::new(s))
        .collect();
    Ok(Json(Page {
        items,
        next: Some(next),
    })
    .into_response())
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    Ok(Json(SubscriptionView::new(&subscription)).into_response())
}

pub(crate) async fn put(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    names(&[("bus", &bus), ("subscription", &name)])?;
    let spec = parse_subscription_spec(&body)?;
    let (record, created) = app.put_subscription(&bus, &name, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let label = format!("{bus}/{name}");
    let warnings = crate::lint::running(&app)
        .into_iter()
        .filter(|finding| finding.subscriptions.contains(&label))
        .collect();
    let answer = PutAnswer {
        view: SubscriptionView::new(&record),
        warnings,
    };
    Ok((status, Json(answer)).into_response())
}

/// The subscription, and the delivery loops it is on (which the change may just have closed).
#[derive(Serialize)]
struct PutAnswer<'a> {
    #[serde(flatten)]
    view: SubscriptionView<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<Finding>,
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    names(&[("bus", &bus), ("subscription", &name)])?;
    app.delete_subscription(&bus, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn stats(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let stats = app.store().stats(subscription.id).await?;
    let age_s = stats.oldest_pending_age_ms(now_ms()) as f64 / 1000.0;
    let (in_flight, circuit) = super::stats::lane_state(&app, subscription.id);
    Ok(Json(json!({
        "bus": bus,
        "subscription": name,
        "accepted": stats.accepted,
        "delivered": stats.delivered,
        "failed_attempts": stats.failed_attempts,
        "pending": stats.pending,
        "in_flight": in_flight,
        "dead": stats.dead,
        "purged": stats.purged,
        "circuit": circuit.as_str(),
        "rate_limit_per_s": subscription.spec.rate_limit_per_s,
        "oldest_pending_age_s": age_s,
    }))
    .into_response())
}
