//! `GET /metrics`: Prometheus text. Counters come from memory; backlog and archive gauges are
//! read from the store at scrape time, so they are right even for subscriptions whose lane is
//! idle (or runs on another node) and for archives whose events expired.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use switchyard_metrics::{
    ArchiveGauges, EventBridgeTarget, SubscriptionGauges, render_archives,
    render_eventbridge_targets,
};
use switchyard_model::now_ms;

use super::ApiError;
use crate::App;

pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Result<impl IntoResponse, ApiError> {
    let now = now_ms();
    let mut gauges = BTreeMap::new();
    let mut targets = Vec::new();
    for subscription in app.catalog().all_subscriptions() {
        if let Some(link) = &subscription.spec.eventbridge {
            targets.push(EventBridgeTarget {
                bus: subscription.bus.clone(),
                subscription: subscription.name.clone(),
                rule: link.rule.clone(),
                target_id: link.target_id.clone(),
            });
        }
        let stats = app.store().stats(subscription.id).await?;
        let lane = app.dispatcher().gauges(subscription.id);
        let in_flight = lane
            .as_ref()
            .map_or(0, |g| g.in_flight.load(Ordering::Relaxed));
        let circuit_state = lane
            .as_ref()
            .map_or(0, |g| g.circuit.load(Ordering::Relaxed));
        let oldest_pending_age_seconds = stats
            .oldest_pending_since_ms
            .map_or(0.0, |since| now.saturating_sub(since) as f64 / 1000.0);
        gauges.insert(
            subscription.id,
            SubscriptionGauges {
                pending: stats.pending,
                oldest_pending_age_seconds,
                in_flight,
                circuit_state,
            },
        );
    }
    let mut archives = Vec::new();
    for bus in app.catalog().buses() {
        for archive in bus.archives() {
            let stats = app.store().archive_stats(archive.id).await?;
            archives.push(ArchiveGauges {
                bus: archive.bus.clone(),
                archive: archive.name.clone(),
                events: stats.events,
                bytes: stats.bytes,
            });
        }
    }
    let mut text = app.metrics().render(&gauges);
    text.push_str(&render_archives(&archives));
    text.push_str(&render_eventbridge_targets(&targets));
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
