//! `/v1/buses/{bus}/subscriptions/{name}/dead-letters[/redrive]`: list, redrive, purge.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use serde_json::value::RawValue;

use super::subscriptions::find;
use super::views::{DeadLetterView, Page};
use super::{ApiError, Body, Params};
use crate::App;

const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1_000;
/// Ids in one redrive request; redriving everything needs no list at all.
const MAX_REDRIVE_IDS: usize = 10_000;

/// A page of dead letters, oldest first; `next` is the `after` cursor of the following page.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    query: Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let params = Params::from(query);
    let limit = params.number("limit", DEFAULT_PAGE, MAX_PAGE)?.max(1);
    let after = params.optional_number("after")?;
    let letters = app
        .store()
        .list_dead_letters(subscription.id, after, limit as usize)
        .await?;
    let events: Vec<Option<Box<RawValue>>> = letters
        .iter()
        .map(|l| RawValue::from_string(l.envelope.clone()).ok())
        .collect();
    let items: Vec<_> = letters
        .iter()
        .zip(&events)
        .map(|(l, e)| DeadLetterView::new(l, e.as_deref()))
        .collect();
    let next = (letters.len() as u64 == limit)
        .then(|| letters.last().map(|l| l.id.to_string()))
        .flatten();
    Ok(Json(Page {
        items,
        next: Some(next),
    })
    .into_response())
}

/// Body: nothing or `{}` for every dead letter, or `{"ids": ["12", ...]}`.
pub(crate) async fn redrive(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let ids = parse_ids(&body)?;
    let redriven = app.redrive(subscription.id, ids).await?;
    Ok(Json(json!({ "redriven": redriven })).into_response())
}

pub(crate) async fn purge(
    State(app): State<Arc<App>>,
    Path((bus, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let subscription = find(&app, &bus, &name)?;
    let purged = app.purge_dead_letters(subscription.id).await?;
    Ok(Json(json!({ "purged": purged })).into_response())
}

fn parse_ids(body: &str) -> Result<Option<Vec<u64>>, ApiError> {
    if body.trim().is_empty() {
        return Ok(None);
    }
    let shape = || {
        ApiError::invalid(r#"the body must be empty, {}, or {"ids": ["<dead letter id>", ...]}"#)
    };
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}")))?;
    let object = value.as_object().ok_or_else(shape)?;
    if object.keys().any(|k| k != "ids") {
        return Err(shape());
    }
    let Some(ids) = object.get("ids") else {
        return Ok(None);
    };
    let ids = ids.as_array().ok_or_else(shape)?;
    if ids.len() > MAX_REDRIVE_IDS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_REDRIVE_IDS} ids per request; send an empty body to redrive all"
        )));
    }
    ids.iter()
        .map(|id| match id {
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        })
        .map(|id| {
            id.ok_or_else(|| {
                ApiError::invalid("every entry of \"ids\" must be a dead letter id such as \"42\"")
            })
        })
        .collect::<Result<Vec<u64>, ApiError>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::parse_ids;

    #[test]
    fn redrive_bodies() {
        assert_eq!(parse_ids("").unwrap(), None);
        assert_eq!(parse_ids("{}").unwrap(), None);
        assert_eq!(parse_ids(r#"{"ids":["3",4]}"#).unwrap(), Some(vec![3, 4]));
        assert!(parse_ids(r#"{"ids":["x"]}"#).is_err());
        assert!(parse_ids(r#"{"id":["3"]}"#).is_err());
        assert!(parse_ids("[").is_err());
    }
}
