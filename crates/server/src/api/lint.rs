//! `GET /v1/lint`: what is wrong with the running configuration that can be found before it
//! happens; for now, delivery loops ([`crate::lint`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::App;

pub(crate) async fn lint(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "findings": crate::lint::running(&app) }))
}
