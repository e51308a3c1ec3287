//! `POST /v1/buses/{bus}/subscriptions/{name}/{pull,ack,modify-ack-deadline}`: consuming a pull
//! subscription over REST. The shapes are the API's; the work is the operations layer's, which
//! the Pub/Sub door calls alike.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchyard_dispatcher::AckId;
use switchyard_model::MAX_ACK_DEADLINE_S;

use super::subscriptions::find;
use super::{ApiError, Body};
use crate::App;

const DEFAULT_MESSAGES: usize = 100;
/// How long a pull waits for messages when none is ready, unless it says otherwise.
const DEFAULT_WAIT_S: u64 = 2;
const MAX_WAIT_S: u64 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullBody {
    max_messages: Option<usize>,
    wait_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    ack_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlineBody {
    ack_ids: Vec<String>,
    ack_deadline_s: u32,
}

/// A body of type `T`; an empty one is `{}`.
fn parse<T: DeserializeOwned>(body: &str, shape: &str) -> Result<T, ApiError> {
    let text = if body.trim().is_empty() { "{}" } else { body };
    serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("the body must be {shape}: {e}")))
}

/// Body (all optional): `{"max_messages": 1..1000 (100), "wait_s": 0..30 (2)}`. Answers
/// `{"messages": [{"ack_id", "delivery_attempt", "event"}]}`, empty when nothing came within
/// `wait_s`.
pub(crate) async fn pull(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Messages>, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let request: PullBody = parse(&body, r#"{"max_messages": N, "wait_s": S}"#)?;
    let max = request.max_messages.unwrap_or(DEFAULT_MESSAGES);
    let wait_s = request.wait_s.unwrap_or(DEFAULT_WAIT_S);
    if wait_s > MAX_WAIT_S {
        return Err(ApiError::invalid(format!(
            "\"wait_s\" must be 0 to {MAX_WAIT_S}"
        )));
    }
    let leased = app
        .pull(&subscription, max, Duration::from_secs(wait_s), None)
        .await?;
    let mut messages = Vec::with_capacity(leased.len());
    for delivery in &leased {
        // The stored envelope as it is: numbers keep every digit.
        let event = RawValue::from_string(delivery.event.envelope.clone()).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("a stored envelope is not JSON: {e}"),
            )
        })?;
        messages.push(Message {
            ack_id: AckId::of(delivery).to_string(),
            delivery_attempt: delivery.attempts,
            event,
        });
    }
    Ok(Json(Messages { messages }))
}

#[derive(Serialize)]
pub(crate) struct Messages {
    messages: Vec<Message>,
}

#[derive(Serialize)]
struct Message {
    ack_id: String,
    delivery_attempt: u32,
    event: Box<RawValue>,
}

/// Body: `{"ack_ids": [...]}`. Ids of deliveries already done are ignored: `acknowledged`
/// counts the others.
pub(crate) async fn ack(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let request: AckBody = parse(&body, r#"{"ack_ids": ["…"]}"#)?;
    let acknowledged = app.acknowledge(&subscription, &request.ack_ids).await?;
    Ok(Json(json!({ "acknowledged": acknowledged })))
}

/// Body: `{"ack_ids": [...], "ack_deadline_s": 0..600}`; 0 gives the deliveries back at once.
/// Answers how many leases were still current and moved.
pub(crate) async fn modify_ack_deadline(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let shape = format!(r#"{{"ack_ids": ["…"], "ack_deadline_s": 0 to {MAX_ACK_DEADLINE_S}}}"#);
    let request: DeadlineBody = parse(&body, &shape)?;
    let modified = app
        .modify_ack_deadline(&subscription, &request.ack_ids, request.ack_deadline_s)
        .await?;
    Ok(Json(json!({ "modified": modified })))
}
