//! `POST /v1/test-pattern`: does this pattern match this event? The same code subscriptions use,
//! run off the async workers when the body is large, like a publish.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use switchyard_pattern::Pattern;

use super::{ApiError, Text};
use crate::App;

/// Pattern and event stay raw JSON text, so number literals reach the matcher exactly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestPattern<'a> {
    #[serde(borrow)]
    pattern: &'a RawValue,
    #[serde(borrow)]
    event: &'a RawValue,
}

pub(crate) async fn test_pattern(
    State(app): State<Arc<App>>,
    Text(body): Text,
) -> Result<Json<Value>, ApiError> {
    let bytes = body.len();
    app.cpu()
        .run(bytes, move || evaluate(&body))
        .await
        .map(Json)
}

fn evaluate(body: &str) -> Result<Value, ApiError> {
    let request: TestPattern = serde_json::from_str(body).map_err(|e| {
        ApiError::invalid(format!(
            "the body must be {{\"pattern\": {{...}}, \"event\": {{...}}}}: {e}"
        ))
    })?;
    let pattern = Pattern::parse(request.pattern.get()).map_err(|e| {
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
