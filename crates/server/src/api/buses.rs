//! `/v1/buses` and `/v1/buses/{bus}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchyard_model::parse_bus_spec;

use super::views::{BusView, Page};
use super::{ApiError, Body, Params, find_bus, names};
use crate::App;

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    query: Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut buses = app.catalog().buses();
    let next = Params::from(query)
        .name_page()?
        .select(&mut buses, |b| &b.record.name);
    let items: Vec<_> = buses
        .iter()
        .map(|b| BusView::new(&b.record, Some(b)))
        .collect();
    Ok(Json(Page {
        items,
        next: Some(next),
    })
    .into_response())
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
) -> Result<Response, ApiError> {
    let index = find_bus(&app, &bus)?;
    Ok(Json(BusView::new(&index.record, Some(&index))).into_response())
}

pub(crate) async fn put(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    names(&[("bus", &bus)])?;
    let spec = parse_bus_spec(&body)?;
    let (record, created) = app.put_bus(&bus, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let index = app.catalog().bus(&bus);
    Ok((status, Json(BusView::new(&record, index.as_deref()))).into_response())
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    query: Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    names(&[("bus", &bus)])?;
    let force = Params::from(query).flag("force")?;
    app.delete_bus(&bus, force).await?;
    Ok(StatusCode::NO_CONTENT)
}
