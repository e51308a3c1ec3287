//! The publish path shared by every way in (the REST API, webhook sources): route each event
//! through the bus's compiled matcher, commit events and deliveries (the store groups concurrent
//! publishes into one commit), count, and only then hand the deliveries to the dispatcher.
//!
//! Must not: return before the store has committed, or hand off anything that is not durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchyard_model::{Activity, Event, ModelError, format_rfc3339_ms, now_ms};
use switchyard_store::{NewEvent, PendingDelivery, StoreError};

use crate::App;
use crate::catalog::BusIndex;

/// Publishes the valid entries; returns, per entry in order, the event id or why it was refused.
/// Refused entries are counted as `invalid`; a store failure publishes nothing. Runs on its own
/// task: a publisher that hangs up must not leave committed deliveries unhanded to their lanes.
pub async fn publish(
    app: &Arc<App>,
    index: Arc<BusIndex>,
    entries: Vec<Result<Event, ModelError>>,
) -> Result<Vec<Result<String, ModelError>>, StoreError> {
    let app = Arc::clone(app);
    tokio::spawn(async move { publish_now(&app, &index, entries).await })
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Storage(format!(
                "the publish did not finish: {e}"
            )))
        })
}

async fn publish_now(
    app: &App,
    index: &BusIndex,
    entries: Vec<Result<Event, ModelError>>,
) -> Result<Vec<Result<String, ModelError>>, StoreError> {
    let bus = index.record.name.as_str();
    let bus_metrics = app.metrics.bus(bus);
    let mut answers = Vec::with_capacity(entries.len());
    let mut accepted = Vec::with_capacity(entries.len());
    for entry in entries {
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
                    bus: bus.to_string(),
                    event: Arc::new(event),
                    subscriptions,
                });
            }
            Err(error) => answers.push(Err(error)),
        }
    }
    let refused = answers.iter().filter(|a| a.is_err()).count() as u64;
    bus_metrics.rejected("invalid", refused);
    if accepted.is_empty() {
        return Ok(answers);
    }
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
        announce(app, bus, &published, &deliveries);
    }
    for delivery in &deliveries {
        if let Some(subscription) = app.metrics.subscription_by_id(delivery.subscription) {
            subscription.matched.fetch_add(1, Ordering::Relaxed);
        }
    }
    app.dispatcher.hand_off(deliveries);
    Ok(answers)
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
