//! `POST /v1/buses/{bus}/events`: the publish path.
//!
//! Validate, match against the bus's compiled patterns, commit the events with their deliveries
//! (the store groups concurrent publishes into one commit), answer, and only then hand the
//! deliveries to the dispatcher. Answers have PutEvents' shape: one entry per event, in order.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use switchyard_model::{ModelError, now_ms, parse_publish_request};
use switchyard_store::NewEvent;

use super::{ApiError, Body, names};
use crate::App;

pub async fn publish(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    names(&[("bus", &bus)])?;
    let index = app
        .catalog
        .bus(&bus)
        .ok_or_else(|| ApiError::not_found(format!("bus {bus:?} does not exist")))?;
    let request = parse_publish_request(&body, app.config.max_event_bytes, now_ms())?;
    if request.single {
        if let Some(Err(error)) = request.entries.first() {
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
                    event: Arc::new(event),
                    subscriptions,
                });
            }
            Err(error) => answers.push(Err(error)),
        }
    }
    if !accepted.is_empty() {
        let deliveries = app.store.append(accepted).await?;
        app.dispatcher
            .hand_off(deliveries.into_iter().flatten().collect());
    }
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
