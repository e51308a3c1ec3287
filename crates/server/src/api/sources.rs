//! `/v1/sources[/{name}]` (webhook sources, write-only secrets) and `POST /hooks/{name}`, where
//! third parties deliver their webhooks.
//!
//! A hook request is verified first (network, method, signature, timestamp), then its event is
//! published through the same path and loop guard (`switchyard-hops`, trace budget) as the REST
//! API, and only once that is durable does the sender
//! get the source's answer. A refusal publishes nothing and is counted by reason.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchyard_metrics::SourceCounts;
use switchyard_model::{format_rfc3339_ms, parse_publish_request};
use switchyard_sources::{Outcome, SourceSpec, Webhook, parse_source_spec};

use super::events::Inbound;
use super::views::Page;
use super::{ApiError, Body, names};
use crate::App;
use crate::sources::LiveSource;

#[derive(Serialize)]
struct SourceView<'a> {
    name: &'a str,
    /// The configuration as PUT takes it, without the secret, which is write-only.
    #[serde(flatten)]
    spec: &'a SourceSpec,
    /// Where the third party sends its webhooks.
    hook_path: String,
    created_at: String,
    updated_at: String,
    /// Webhook requests this node took since it started, by result, and refusals by reason.
    requests: RequestsView,
}

#[derive(Serialize)]
struct RequestsView {
    published: u64,
    challenge: u64,
    refused: u64,
    refusals: std::collections::BTreeMap<&'static str, u64>,
}

impl From<SourceCounts> for RequestsView {
    fn from(counts: SourceCounts) -> RequestsView {
        RequestsView {
            published: counts.published,
            challenge: counts.challenge,
            refused: counts.refused,
            refusals: counts.refusals,
        }
    }
}

impl<'a> SourceView<'a> {
    fn new(app: &App, live: &'a LiveSource) -> SourceView<'a> {
        SourceView {
            name: &live.record.name,
            spec: &live.spec,
            requests: app.metrics().source(&live.record.name).counts().into(),
            hook_path: format!("/hooks/{}", live.record.name),
            created_at: format_rfc3339_ms(live.record.created_ms),
            updated_at: format_rfc3339_ms(live.record.updated_ms),
        }
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("source {name:?} does not exist"))
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut sources = app.sources().list();
    let next = super::Params::from(query)
        .name_page()?
        .select(&mut sources, |s| &s.record.name);
    let items: Vec<_> = sources.iter().map(|s| SourceView::new(&app, s)).collect();
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
    names(&[("source", &name)])?;
    let live = app.sources().get(&name).ok_or_else(|| not_found(&name))?;
    Ok(Json(SourceView::new(&app, &live)).into_response())
}

pub(crate) async fn put(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    names(&[("source", &name)])?;
    let spec = parse_source_spec(&body).map_err(|e| ApiError::invalid(e.to_string()))?;
    let (live, created) = app.put_source(&name, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(SourceView::new(&app, &live))).into_response())
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    names(&[("source", &name)])?;
    app.delete_source(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /hooks/{name}`: no API token; the source's own verification is the authentication.
pub(crate) async fn receive(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    super::RawBody(body): super::RawBody,
) -> Result<Response, ApiError> {
    let live = app.sources().get(&name).ok_or_else(|| not_found(&name))?;
    let metrics = app.metrics().source(&name);
    let now = switchyard_model::now();
    // Verifying and parsing a large body is CPU work: off the async workers, like a publish's.
    let outcome = app
        .cpu()
        .run(body.len(), {
            let (live, headers) = (Arc::clone(&live), headers.clone());
            move || {
                let pairs: Vec<(&str, &[u8])> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes()))
                    .collect();
                live.source.receive(&Webhook {
                    method: method.as_str(),
                    headers: &pairs,
                    body: &body,
                    peer: peer.ip(),
                    now,
                })
            }
        })
        .await;
    let (event, answer) = match outcome {
        Outcome::Refused(refusal) => {
            metrics.refused(refusal.reason.as_str());
            tracing::info!(source = %name, reason = refusal.reason.as_str(), peer = %peer.ip(), "webhook refused");
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return Err(ApiError::new(
                status,
                refusal.reason.as_str(),
                refusal.message,
            ));
        }
        Outcome::Challenge(answer) => {
            metrics.challenge();
            return Ok(answer_response(answer));
        }
        Outcome::Publish { event, answer } => (event, answer),
    };
    let index = app.catalog().bus(live.source.bus()).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "source {name:?} publishes to bus {:?}, which no longer exists",
                live.source.bus()
            ),
        )
    })?;
    // A switchyard subscription may deliver here: the same loop guard as the publish path,
    // counted for the bus and as the source's refusal.
    let bus_metrics = app.metrics().bus(live.source.bus());
    let refused = |error: &ApiError| metrics.refused(error.code);
    let inbound = Inbound::read(&app, &bus_metrics, &headers).inspect_err(refused)?;
    let request = parse_publish_request(&event.to_publish_json(), &inbound.context)?;
    inbound.spend(&app, &bus_metrics, 1).inspect_err(refused)?;
    let answers = crate::publish::publish(&app, index, request.entries).await?;
    if let Some(Err(error)) = answers.into_iter().next() {
        return Err(error.into());
    }
    metrics.published();
    Ok(answer_response(answer))
}

fn answer_response(answer: switchyard_sources::Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    if let Some(content_type) = answer
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}
