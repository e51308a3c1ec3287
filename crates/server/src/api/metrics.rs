//! `GET /metrics`: Prometheus text. Counters come from memory; backlog, dead-letter and archive
//! gauges are read from the store at scrape time, so they are right even for subscriptions whose
//! lane is idle (or runs on another node) and for archives whose events expired. The process's
//! figures come from `/proc` ([`process`]), API requests are counted by [`count_requests`].
//!
//! A scrape answers 200 while the store fails: `switchyard_store_ready` is then 0 (it is what
//! `/readyz` answers) and the series read from the store are left out, so that an alert sees the
//! outage rather than a failed scrape or a backlog of zero. Each scrape runs the readiness check `/readyz` runs (a read and an empty
//! commit), one stats read per subscription and archive, and the store's usage query.

mod process;
mod requests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use switchyard_metrics::{
    ArchiveGauges, Backlog, EventBridgeTarget, PoolGauges, StoreGauges, SubscriptionGauges,
    render_archives, render_build_info, render_eventbridge_targets, render_process, render_store,
};
use switchyard_model::now_ms;
use switchyard_store::{StoreError, StoreUsage};

pub(crate) use requests::count_requests;

use crate::App;

pub(crate) async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let now = now_ms();
    let ready = app.store().check().await.is_ok();
    // Not ready: /readyz says why; reading would only fail the same way.
    let from_store = if ready {
        read_store(&app, now)
            .await
            .inspect_err(|error| tracing::warn!(%error, "metrics: the store's series are left out of this scrape"))
            .ok()
    } else {
        None
    };
    let (backlogs, archives, usage) = match from_store {
        Some((backlogs, archives, usage)) => (backlogs, archives, Some(usage)),
        None => Default::default(),
    };
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
        let lane = app.dispatcher().gauges(subscription.id);
        gauges.insert(
            subscription.id,
            SubscriptionGauges {
                backlog: backlogs.get(&subscription.id).copied(),
                in_flight: lane
                    .as_ref()
                    .map_or(0, |g| g.in_flight.load(Ordering::Relaxed)),
                circuit_state: lane
                    .as_ref()
                    .map_or(0, |g| g.circuit.load(Ordering::Relaxed)),
            },
        );
    }
    let process = tokio::task::spawn_blocking(process::read)
        .await
        .unwrap_or_default();
    let mut text = app.metrics().render(&gauges);
    text.push_str(&render_archives(&archives));
    text.push_str(&render_eventbridge_targets(&targets));
    text.push_str(&render_store(&StoreGauges {
        ready,
        size_bytes: usage.map(|u| u.size_bytes),
        pool: usage.and_then(|u| u.pool).map(|p| PoolGauges {
            idle: p.idle,
            in_use: p.in_use,
            max: p.max,
        }),
    }));
    text.push_str(&render_process(&process));
    text.push_str(&render_build_info(env!("CARGO_PKG_VERSION")));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

type StoreFigures = (BTreeMap<u64, Backlog>, Vec<ArchiveGauges>, StoreUsage);

/// What the scrape reads from the store. A subscription or archive deleted since the catalog
/// was read is left out, not an error.
async fn read_store(app: &App, now: u64) -> Result<StoreFigures, StoreError> {
    let mut backlogs = BTreeMap::new();
    for subscription in app.catalog().all_subscriptions() {
        let stats = match app.store().stats(subscription.id).await {
            Ok(stats) => stats,
            Err(StoreError::NotFound(_)) => continue,
            Err(error) => return Err(error),
        };
        let oldest_pending_age_seconds = stats.oldest_pending_age_ms(now) as f64 / 1000.0;
        backlogs.insert(
            subscription.id,
            Backlog {
                pending: stats.pending,
                oldest_pending_age_seconds,
                dead_letters: stats.dead,
            },
        );
    }
    let mut archives = Vec::new();
    for bus in app.catalog().buses() {
        for archive in bus.archives() {
            let stats = match app.store().archive_stats(archive.id).await {
                Ok(stats) => stats,
                Err(StoreError::NotFound(_)) => continue,
                Err(error) => return Err(error),
            };
            archives.push(ArchiveGauges {
                bus: archive.bus.clone(),
                archive: archive.name.clone(),
                events: stats.events,
                bytes: stats.bytes,
            });
        }
    }
    let usage = app.store().usage().await?;
    Ok((backlogs, archives, usage))
}
