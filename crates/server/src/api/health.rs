//! `/healthz` (the process answers) and `/readyz` (the store answers too).
//!
//! `/readyz` asks the store to read and commit each time, so it turns 503 while the store is
//! failing (a full disk, a lost database) and says why, and 200 again once the store has
//! recovered by itself.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::App;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store().check().await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Err(error) => {
            let message = format!("the store is not ready: {error}");
            // A probe knows only ready or not: 503 whatever a request would have got.
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message,
                ..ApiError::from(error)
            }
            .into_response()
        }
    }
}
