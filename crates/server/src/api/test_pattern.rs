//! `POST /v1/test-pattern`: does this pattern match this event, or (given a `bus` instead of a
//! `pattern`) which of the bus's subscriptions and archives would take it? The same code
//! subscriptions use, run off the async workers when the body is large, like a publish.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchyard_model::{PublishContext, parse_publish_request};
use switchyard_pattern::Pattern;

use super::{ApiError, Text};
use crate::App;

/// Pattern and event stay raw JSON text, so number literals reach the matcher exactly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestPattern<'a> {
    #[serde(borrow, default)]
    pattern: Option<&'a RawValue>,
    /// Instead of a pattern: the bus whose subscriptions are tried, the event read as a
    /// publish to it would be (envelope fields filled in).
    #[serde(default)]
    bus: Option<String>,
    #[serde(borrow)]
    event: &'a RawValue,
}

pub(crate) async fn test_pattern(
    State(app): State<Arc<App>>,
    Text(body): Text,
) -> Result<Json<Value>, ApiError> {
    let bytes = body.len();
    let context = app.origin_context();
    let evaluating = Arc::clone(&app);
    app.cpu()
        .run(bytes, move || evaluate(&evaluating, &body, &context))
        .await
        .map(Json)
}

fn evaluate(app: &App, body: &str, context: &PublishContext) -> Result<Value, ApiError> {
    let shape = "the body must be {\"pattern\": {...}, \"event\": {...}} or {\"bus\": \"NAME\", \"event\": {...}}";
    let request: TestPattern =
        serde_json::from_str(body).map_err(|e| ApiError::invalid(format!("{shape}: {e}")))?;
    let pattern = match (request.pattern, request.bus) {
        (Some(pattern), None) => pattern,
        (None, Some(bus)) => return against_bus(app, &bus, request.event.get(), context),
        _ => {
            return Err(ApiError::invalid(format!(
                "{shape}, with one of pattern and bus"
            )));
        }
    };
    let pattern = Pattern::parse(pattern.get()).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_pattern",
            format!("invalid pattern: {e}"),
        )
    })?;
    let matches = pattern
        .matches(request.event.get())
        .map_err(|e| ApiError::invalid(format!("invalid event: {e}")))?;
    Ok(json!({ "matches": matches }))
}

/// The subscriptions and archives of `bus` that `event` would go to if it were published there
/// now, and the envelope it would have.
fn against_bus(
    app: &App,
    bus: &str,
    event: &str,
    context: &PublishContext,
) -> Result<Value, ApiError> {
    let index = super::find_bus(app, bus)?;
    let request = parse_publish_request(event, context)?;
    let Some(Ok(event)) = request
        .entries
        .into_iter()
        .next()
        .filter(|_| request.single)
    else {
        return Err(ApiError::invalid(
            "the event must be one event object, as a publish of one event takes it",
        ));
    };
    let routes = index
        .route(&event.envelope)
        .map_err(|e| ApiError::invalid(format!("invalid event: {e}")))?;
    let matched: HashSet<u64> = routes.subscriptions.into_iter().collect();
    let archived: HashSet<u64> = routes.archives.into_iter().collect();
    let subscriptions: Vec<&str> = index
        .subscriptions()
        .filter(|s| matched.contains(&s.id))
        .map(|s| s.name.as_str())
        .collect();
    let archives: Vec<&str> = index
        .archives()
        .filter(|a| archived.contains(&a.id))
        .map(|a| a.name.as_str())
        .collect();
    let envelope: &RawValue = serde_json::from_str(&event.envelope)
        .map_err(|e| ApiError::invalid(format!("invalid event: {e}")))?;
    Ok(json!({
        "bus": bus,
        "matches": !subscriptions.is_empty(),
        "subscriptions": subscriptions,
        "archives": archives,
        "event": envelope,
    }))
}
