//! `/v1/replays[/{name}]`: start, watch and cancel replays of archived events.
//!
//! Parsing and answers only: the replay itself (validation against the catalog, the runner,
//! cancellation across nodes) is `crate::replay`'s.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchyard_model::parse_replay_spec;

use super::views::{Page, ReplayView};
use super::{ApiError, Body, names};
use crate::App;

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    query: Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = super::Params::from(query).name_page()?;
    let mut replays = app.list_replays().await?;
    let next = page.select(&mut replays, |r| &r.spec.name);
    let items: Vec<_> = replays.iter().map(ReplayView::new).collect();
    Ok(Json(Page {
        items,
        next: Some(next),
    })
    .into_response())
}

pub(crate) async fn start(
    State(app): State<Arc<App>>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let spec = parse_replay_spec(&body)?;
    let record = app.start_replay(spec).await?;
    Ok((StatusCode::CREATED, Json(ReplayView::new(&record))).into_response())
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    names(&[("replay", &name)])?;
    let record = app.get_replay(&name).await?;
    Ok(Json(ReplayView::new(&record)).into_response())
}

/// Cancels a running replay; deliveries it already created stay.
pub(crate) async fn cancel(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    names(&[("replay", &name)])?;
    let record = app.cancel_replay(&name).await?;
    Ok(Json(ReplayView::new(&record)).into_response())
}
