//! Dead-letter buses: a subscription with `dead_letter_bus` hands each of its dead letters on to
//! that bus as a new event, as Pub/Sub hands a message to a subscription's dead-letter topic,
//! and purges it here.
//!
//! Owns the loop that does it (one task per node, every second; in a cluster, only the node that
//! owns the subscription, so one node forwards each dead letter) and the event it makes: the
//! dead letter's envelope with a new id and Pub/Sub's attributes saying where it died
//! (`CloudPubSubDeadLetterSourceDeliveryCount`, `…SourceSubscription`, `…SourceSubscription
//! Project` (the bus), `…SourceTopicPublishTime`).
//!
//! Must not: lose a dead letter. The event is committed before the dead letter is purged, so a
//! crash in between forwards it again: at least once, as every delivery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use switchyard_model::{format_rfc3339_ms, parse_publish_request};
use switchyard_store::{DeadLetter, SubscriptionRecord};

use crate::{App, ServerError};

/// How often dead letters are looked for.
const EVERY: Duration = Duration::from_secs(1);
/// Dead letters forwarded per subscription and round.
const BATCH: usize = 100;

/// Starts the loop on the app's tasks; it ends at shutdown.
pub(crate) fn start(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    let shutdown = app.shutdown().clone();
    app.tasks().spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                () = shutdown.cancelled() => break,
            }
            let Some(app) = weak.upgrade() else { break };
            for subscription in forwarding(&app) {
                if let Err(error) = forward(&app, &subscription).await {
                    tracing::warn!(bus = %subscription.bus, subscription = %subscription.name, %error, "dead letters not forwarded yet; trying again");
                }
            }
        }
    });
}

/// The subscriptions with a dead-letter bus whose dead letters this node forwards.
fn forwarding(app: &App) -> Vec<Arc<SubscriptionRecord>> {
    let owned = app.cluster().is_some().then(|| app.dispatcher().running());
    app.catalog()
        .all_subscriptions()
        .into_iter()
        .filter(|s| s.spec.dead_letter_bus.is_some())
        .filter(|s| owned.as_ref().is_none_or(|owned| owned.contains(&s.id)))
        .collect()
}

async fn forward(app: &Arc<App>, subscription: &SubscriptionRecord) -> Result<(), ServerError> {
    let Some(bus) = &subscription.spec.dead_letter_bus else {
        return Ok(());
    };
    let letters = app
        .store()
        .list_dead_letters(subscription.id, None, BATCH)
        .await?;
    if letters.is_empty() {
        return Ok(());
    }
    let Some(index) = app.catalog().bus(bus) else {
        return Err(ServerError::Invalid(format!(
            "dead_letter_bus {bus:?} does not exist; the dead letters wait here"
        )));
    };
    let context = app.origin_context();
    let mut events = Vec::with_capacity(letters.len());
    let mut forwarded = Vec::with_capacity(letters.len());
    for letter in &letters {
        let entry = handed_on(letter, subscription).and_then(|text| {
            let request = parse_publish_request(&text, &context).map_err(|e| e.to_string())?;
            request
                .entries
                .into_iter()
                .next()
                .ok_or_else(|| "it makes no event".to_string())
        });
        match entry {
            Ok(event) => {
                events.push(event);
                forwarded.push(letter.id);
            }
            Err(error) => {
                tracing::error!(letter = letter.id, %error, "a dead letter cannot be forwarded; it stays here");
            }
        }
    }
    let answers = crate::publish::publish(app, index, events).await?;
    let done: Vec<u64> = forwarded
        .into_iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.is_ok())
        .map(|(id, _)| id)
        .collect();
    if !done.is_empty() {
        app.store()
            .purge_dead_letters(subscription.id, Some(done))
            .await?;
    }
    Ok(())
}

/// The dead letter's envelope as a new event for the dead-letter bus: a new id (it is a new
/// message, and the bus would take a repeat of the old id for a duplicate), and the attributes
/// Pub/Sub adds to a dead-lettered message. Everything else, `detail` included, byte for byte.
fn handed_on(letter: &DeadLetter, subscription: &SubscriptionRecord) -> Result<String, String> {
    let mut fields: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(&letter.envelope).map_err(|e| e.to_string())?;
    fields.remove("id");
    // A replayed event's mark is not part of it.
    fields.remove("replay-name");
    let mut attributes: BTreeMap<String, String> = match fields.remove("attributes") {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| e.to_string())?,
        None => BTreeMap::new(),
    };
    for (name, value) in [
        (
            "CloudPubSubDeadLetterSourceDeliveryCount",
            letter.attempts.to_string(),
        ),
        (
            "CloudPubSubDeadLetterSourceSubscription",
            subscription.name.clone(),
        ),
        (
            "CloudPubSubDeadLetterSourceSubscriptionProject",
            subscription.bus.clone(),
        ),
        (
            "CloudPubSubDeadLetterSourceTopicPublishTime",
            format_rfc3339_ms(letter.ingested_ms),
        ),
    ] {
        attributes.insert(name.to_string(), value);
    }
    let attributes = serde_json::value::to_raw_value(&attributes).map_err(|e| e.to_string())?;
    fields.insert("attributes".into(), attributes);
    serde_json::to_string(&fields).map_err(|e| e.to_string())
}
