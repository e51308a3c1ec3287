//! `GET /v1/stats` (every subscription's stats in one answer, worst first; with `fresh=true`
//! the counts are read from the store now instead of the last sample) and
//! `GET /v1/buses/{bus}/subscriptions/{name}/stats/history` (the last hour of one
//! subscription's samples), both from the sampler of [`crate::stats`]: the console's overview and
//! charts, and `switchyard stats`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use switchyard_dispatcher::CircuitState;
use switchyard_model::{DeliveryMode, format_rfc3339_ms, now_ms};
use switchyard_store::SubscriptionRecord;

use super::subscriptions::find;
use super::{ApiError, Params, find_bus};
use crate::App;
use crate::stats::{INTERVAL, Rates, Sample};

/// Rows of the overview unless `?limit` says otherwise, and the most it may ask for.
const DEFAULT_ROWS: u64 = 100;
const MAX_ROWS: u64 = 1_000;
/// Pending this long makes a subscription `behind`.
const BEHIND_MS: u64 = 60_000;

/// What a lane on this node says of a subscription now: deliveries under way and the circuit.
pub(super) fn lane_state(app: &App, subscription: u64) -> (u64, CircuitState) {
    let lane = app.dispatcher().gauges(subscription);
    let in_flight = lane
        .as_ref()
        .map_or(0, |g| g.in_flight.load(Ordering::Relaxed));
    let circuit = CircuitState::from_u8(
        lane.as_ref()
            .map_or(0, |g| g.circuit.load(Ordering::Relaxed)),
    );
    (in_flight, circuit)
}

/// What is wrong with a subscription, worst first; the overview sorts by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Problem {
    /// Its circuit is open: the destination keeps failing and attempts are paused.
    CircuitOpen,
    /// Attempts failed in the last minute.
    Failing,
    /// It holds dead letters.
    DeadLetters,
    /// Its oldest pending delivery has waited over a minute.
    Behind,
}

fn problem(sample: &Sample, rates: &Rates, circuit: CircuitState) -> Option<Problem> {
    if circuit == CircuitState::Open {
        Some(Problem::CircuitOpen)
    } else if rates.failed_per_s > 0.0 {
        Some(Problem::Failing)
    } else if sample.dead > 0 {
        Some(Problem::DeadLetters)
    } else if sample.oldest_pending_age_ms >= BEHIND_MS {
        Some(Problem::Behind)
    } else {
        None
    }
}

#[derive(Serialize)]
struct Row<'a> {
    bus: &'a str,
    subscription: &'a str,
    delivery: DeliveryMode,
    enabled: bool,
    problem: Option<Problem>,
    delivered_per_s: f64,
    failed_per_s: f64,
    accepted: u64,
    delivered: u64,
    failed_attempts: u64,
    pending: u64,
    in_flight: u64,
    dead: u64,
    oldest_pending_age_s: f64,
    circuit: &'static str,
    sampled_at: String,
}

pub(crate) async fn overview(
    State(app): State<Arc<App>>,
    query: Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let params = Params::from(query);
    let limit = params.number("limit", DEFAULT_ROWS, MAX_ROWS)?.max(1) as usize;
    let fresh = params.flag("fresh")?;
    let subscriptions: Vec<Arc<SubscriptionRecord>> = match params.text("bus") {
        Some(bus) => find_bus(&app, bus)?.subscriptions().cloned().collect(),
        None => app.catalog().all_subscriptions(),
    };
    let mut readings = Vec::with_capacity(subscriptions.len());
    for subscription in &subscriptions {
        let reading = if fresh {
            read_now(&app, subscription.id).await?
        } else {
            app.stats_history().latest(subscription.id)
        };
        readings.push(reading);
    }
    let mut rows: Vec<Row> = subscriptions
        .iter()
        .zip(readings)
        .filter_map(|(s, reading)| {
            let (sample, rates) = reading?;
            let (in_flight, circuit) = lane_state(&app, s.id);
            Some(Row {
                bus: &s.bus,
                subscription: &s.name,
                delivery: s.spec.delivery,
                enabled: s.spec.enabled,
                problem: problem(&sample, &rates, circuit),
                delivered_per_s: rates.delivered_per_s,
                failed_per_s: rates.failed_per_s,
                accepted: sample.accepted,
                delivered: sample.delivered,
                failed_attempts: sample.failed_attempts,
                pending: sample.pending,
                in_flight,
                dead: sample.dead,
                oldest_pending_age_s: sample.oldest_pending_age_ms as f64 / 1000.0,
                circuit: circuit.as_str(),
                sampled_at: format_rfc3339_ms(sample.at_ms),
            })
        })
        .collect();
    let unsampled = subscriptions.len() - rows.len();
    // Problems first (worst kind first), then the longest wait, then by name.
    rows.sort_by(|a, b| {
        let rank = |r: &Row| r.problem.map_or(u8::MAX, |p| p as u8);
        rank(a)
            .cmp(&rank(b))
            .then(b.oldest_pending_age_s.total_cmp(&a.oldest_pending_age_s))
            .then_with(|| (a.bus, a.subscription).cmp(&(b.bus, b.subscription)))
    });
    let more = rows.len().saturating_sub(limit);
    rows.truncate(limit);
    Ok(Json(json!({
        "interval_s": INTERVAL.as_secs(),
        "items": rows,
        "more": more,
        "unsampled": unsampled,
    }))
    .into_response())
}

/// `?fresh=true`: the subscription's counts read from the store now (exact, and there for a
/// subscription too new for a sample), with the rates of the samples before; `None` when it
/// was deleted meanwhile.
async fn read_now(app: &App, subscription: u64) -> Result<Option<(Sample, Rates)>, ApiError> {
    match app.store().stats(subscription).await {
        Ok(stats) => {
            let sample = Sample::new(now_ms(), &stats);
            Ok(Some((
                sample,
                app.stats_history().rates(subscription, sample),
            )))
        }
        Err(switchyard_store::StoreError::NotFound(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

#[derive(Serialize)]
struct HistoryPoint {
    at: String,
    /// Deliveries completed since the sample before.
    delivered: u64,
    /// Attempts failed since the sample before.
    failed_attempts: u64,
    pending: u64,
    dead: u64,
    oldest_pending_age_s: f64,
}

pub(crate) async fn history(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let samples = app.stats_history().history(subscription.id);
    let points: Vec<HistoryPoint> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let before = i.checked_sub(1).map_or(*s, |j| samples[j]);
            HistoryPoint {
                at: format_rfc3339_ms(s.at_ms),
                delivered: s.delivered.saturating_sub(before.delivered),
                failed_attempts: s.failed_attempts.saturating_sub(before.failed_attempts),
                pending: s.pending,
                dead: s.dead,
                oldest_pending_age_s: s.oldest_pending_age_ms as f64 / 1000.0,
            }
        })
        .collect();
    Ok(Json(json!({
        "bus": bus,
        "subscription": name,
        "interval_s": INTERVAL.as_secs(),
        "samples": points,
    }))
    .into_response())
}
