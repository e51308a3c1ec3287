//! `/v1/connections[/{name}]`: how to authenticate to destinations. Secrets are write-only: they
//! are sealed before they are stored and answers show only their sealed form or a `file:` path.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchyard_destination::parse_connection_spec;
use switchyard_model::format_rfc3339_ms;
use switchyard_store::{DocumentKind, DocumentRecord};

use super::views::{Page, redact_sealed};
use super::{ApiError, Body, Params, names};
use crate::App;

/// The connection as stored (secrets sealed), with its name and times.
fn render(record: &DocumentRecord) -> serde_json::Value {
    let mut view = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&record.body)
        .unwrap_or_default();
    view.insert("name".into(), record.name.clone().into());
    view.insert(
        "created_at".into(),
        format_rfc3339_ms(record.created_ms).into(),
    );
    view.insert(
        "updated_at".into(),
        format_rfc3339_ms(record.updated_ms).into(),
    );
    let mut view = serde_json::Value::Object(view);
    redact_sealed(&mut view);
    view
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    query: Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let page = Params::from(query).name_page()?;
    let mut records = app.store().list_documents(DocumentKind::Connection).await?;
    let next = page.select(&mut records, |r| &r.name);
    let items: Vec<_> = records.iter().map(render).collect();
    Ok(Json(Page {
        items,
        next: Some(next),
    })
    .into_response())
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    names(&[("connection", &name)])?;
    let records = app.store().list_documents(DocumentKind::Connection).await?;
    let record = records
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| ApiError::not_found(format!("connection {name:?} does not exist")))?;
    Ok(Json(render(record)).into_response())
}

pub(crate) async fn put(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    names(&[("connection", &name)])?;
    let spec = parse_connection_spec(&body).map_err(|e| ApiError::invalid(e.to_string()))?;
    let (record, created) = app.put_connection(&name, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render(&record))).into_response())
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    names(&[("connection", &name)])?;
    app.delete_connection(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
