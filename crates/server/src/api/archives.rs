//! `/v1/buses/{bus}/archives[/{name}]`: create, show and delete a bus's archives.
//!
//! Changes go through `App::put_archive`/`delete_archive` (store first, then the catalog, so the
//! next publish is archived by the new pattern); answers add what the archive holds, read from
//! the store. Must not: read or remove archived events itself (the store's upkeep does).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchyard_model::parse_archive_spec;
use switchyard_store::ArchiveRecord;

use super::views::{ArchiveView, Page};
use super::{ApiError, Body, Params, find_bus, names};
use crate::App;

fn find(app: &App, bus: &str, name: &str) -> Result<Arc<ArchiveRecord>, ApiError> {
    names(&[("archive", name)])?;
    let index = find_bus(app, bus)?;
    index.archive(name).cloned().ok_or_else(|| {
        ApiError::not_found(format!("archive {name:?} does not exist on bus {bus:?}"))
    })
}

async fn view(app: &App, record: &ArchiveRecord) -> Result<ArchiveView, ApiError> {
    let stats = app.archive_stats(record.id).await?;
    Ok(ArchiveView::new(record, stats))
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    query: Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let index = find_bus(&app, &bus)?;
    let mut archives: Vec<_> = index.archives().collect();
    let next = Params::from(query)
        .name_page()?
        .select(&mut archives, |a| &a.name);
    let mut items = Vec::new();
    for archive in archives {
        items.push(view(&app, archive).await?);
    }
    Ok(Json(Page {
        items,
        next: Some(next),
    })
    .into_response())
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let archive = find(&app, &bus, &name)?;
    Ok(Json(view(&app, &archive).await?).into_response())
}

pub(crate) async fn put(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    names(&[("bus", &bus), ("archive", &name)])?;
    let spec = parse_archive_spec(&body)?;
    let (record, created) = app.put_archive(&bus, &name, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&app, &record).await?)).into_response())
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    names(&[("bus", &bus), ("archive", &name)])?;
    app.delete_archive(&bus, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
