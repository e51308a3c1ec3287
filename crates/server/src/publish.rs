//! The publish path shared by every way in (the REST API, webhook sources): route each event
//! through the bus's compiled matcher, commit events and deliveries (the store groups concurrent
//! publishes into one commit), count, and only then hand the deliveries to the dispatcher.
//!
//! Must not: return before the store has committed, or hand off anything that is not durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchyard_metrics::RejectReason;
use switchyard_model::{
    Activity, Event, ModelError, PublishContext, TraceContext, format_rfc3339_ms, now_ms,
};
use switchyard_store::{NewEvent, PendingDelivery, StoreError};

use crate::catalog::BusIndex;
use crate::{App, ServerError};

/// Publishes the valid entries; returns, per entry in order, the event id or why it was refused.
/// Refused entries are counted as `invalid`; a store failure publishes nothing. Runs detached: a
/// publisher that hangs up must not leave committed deliveries unhanded to their lanes.
impl App {
    /// The context of a publish that starts here rather than arriving from a publisher (a tick,
    /// a dead letter handed on, a Pub/Sub message): now, no hops, a trace of its own.
    pub(crate) fn origin_context(&self) -> PublishContext {
        PublishContext {
            ingested_ms: now_ms(),
            max_event_bytes: self.config().max_event_bytes,
            hops: 0,
            trace: TraceContext::new_root(),
            aws: self.config().aws.clone(),
        }
    }
}

pub(crate) async fn publish(
    app: &Arc<App>,
    index: Arc<BusIndex>,
    entries: Vec<Result<Event, ModelError>>,
) -> Result<Vec<Result<String, ModelError>>, ServerError> {
    app.detached("publish", move |app| async move {
        Ok(publish_now(&app, index, entries).await?)
    })
    .await
}

async fn publish_now(
    app: &App,
    index: Arc<BusIndex>,
    entries: Vec<Result<Event, ModelError>>,
) -> Result<Vec<Result<String, ModelError>>, StoreError> {
    let bus = index.record.name.clone();
    let bytes = entries
        .iter()
        .map(|e| e.as_ref().map_or(0, |e| e.envelope.len()))
        .sum();
    let (answers, accepted) = app.cpu().run(bytes, move || route(&index, entries)).await;
    let refused = answers.iter().filter(|a| a.is_err()).count() as u64;
    if refused > 0 {
        app.metrics()
            .bus(&bus)
            .rejected(RejectReason::Invalid, refused);
    }
    commit(app, &bus, accepted, Origin::Publish).await?;
    Ok(answers)
}

/// The answer for each entry, and the events to commit with the subscriptions and archives that
/// matched them.
fn route(
    index: &BusIndex,
    entries: Vec<Result<Event, ModelError>>,
) -> (Vec<Result<String, ModelError>>, Vec<NewEvent>) {
    let bus = index.record.name.as_str();
    let mut answers = Vec::with_capacity(entries.len());
    let mut accepted = Vec::with_capacity(entries.len());
    for entry in entries {
        let routed = entry.and_then(|event| match index.route(&event.envelope) {
            Ok(routes) => Ok((event, routes)),
            Err(e) => Err(ModelError::Invalid(format!(
                "the event cannot be matched: {e}"
            ))),
        });
        match routed {
            Ok((event, routes)) => {
                answers.push(Ok(event.id.clone()));
                accepted.push(NewEvent {
                    bus: bus.to_string(),
                    event: Arc::new(event),
                    subscriptions: routes.subscriptions,
                    archives: routes.archives,
                    once: None,
                });
            }
            Err(error) => answers.push(Err(error)),
        }
    }
    (answers, accepted)
}

/// Where committed events come from, for counting them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Publish,
    Replay,
    Schedule,
}

/// Makes routed events durable, counts them, tells tails and hands their deliveries to the
/// dispatcher. Returns how many deliveries were created.
pub(crate) async fn commit(
    app: &App,
    bus: &str,
    accepted: Vec<NewEvent>,
    origin: Origin,
) -> Result<u64, StoreError> {
    if accepted.is_empty() {
        return Ok(0);
    }
    let bus_metrics = app.metrics().bus(bus);
    let count = accepted.len() as u64;
    let archived: u64 = accepted.iter().map(|e| e.archives.len() as u64).sum();
    // Only while someone tails: keep the events to announce once they are durable.
    let tailing = app.dispatcher().activity().receiver_count() > 0;
    let published: Vec<Arc<Event>> = if tailing {
        accepted.iter().map(|e| Arc::clone(&e.event)).collect()
    } else {
        Vec::new()
    };
    let deliveries: Vec<_> = app
        .store()
        .append(accepted)
        .await?
        .into_iter()
        .flatten()
        .collect();
    match origin {
        Origin::Publish => bus_metrics.published.fetch_add(count, Ordering::Relaxed),
        Origin::Replay => bus_metrics.replayed.fetch_add(count, Ordering::Relaxed),
        // Counted per subscription by the scheduler, which alone knows whether the tick fired
        // here or had already fired on another node.
        Origin::Schedule => 0,
    };
    bus_metrics.archived.fetch_add(archived, Ordering::Relaxed);
    if tailing {
        announce(app, bus, &published, &deliveries);
    }
    for delivery in &deliveries {
        if let Some(subscription) = app.metrics().subscription_by_id(delivery.subscription) {
            subscription.matched.fetch_add(1, Ordering::Relaxed);
        }
    }
    let created = deliveries.len() as u64;
    app.dispatcher().hand_off(deliveries);
    Ok(created)
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
        let _ = app.dispatcher().activity().send(Activity::Published {
            at: at.clone(),
            bus: bus.to_string(),
            event_id: event.id.clone(),
            source: names.source,
            detail_type: names.detail_type,
            matched,
        });
    }
}
