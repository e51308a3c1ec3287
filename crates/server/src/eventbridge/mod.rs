//! The EventBridge door: the EventBridge API (AWS JSON 1.1, `POST /` with
//! `X-Amz-Target: AWSEvents.<Operation>`) on the REST API's listener, so that SDK code, CLI
//! scripts and infrastructure code written for EventBridge run against switchyard with only the
//! endpoint URL changed. docs/eventbridge.md is the user's account of it: the operations, the
//! mapping, ARNs, authentication and the differences.
//!
//! Owns translation only: each operation reads its request shape, calls the same operations
//! the REST API calls (`crate::ops`, the catalog's reads), and writes EventBridge's answer
//! shape. One model, two doors: a rule's target *is* a subscription (`R.T`), an API
//! destination is a destination template, a connection is a connection, so what one door makes
//! the other shows and changes.
//!
//! Must not: keep state of its own, touch the store or the change lock (it goes through
//! `ops`), or answer a secret (connection secrets are write-only here as everywhere).

mod api_destinations;
mod archives;
mod arn;
mod buses;
mod connections;
mod errors;
mod events;
mod rules;
mod shapes;
mod sigv4;
mod tags;
mod targets;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub(crate) use arn::{Arns, Resource};
pub(crate) use errors::EbError;

use crate::App;
use crate::api::{ApiError, RawBody};
use crate::auth::{ApiToken, Need};

pub(crate) use switchyard_model::DEFAULT_BUS;

/// The JSON 1.1 protocol's content type, of requests and answers alike.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Who is calling: nobody in particular on an open (loopback, tokenless) server, else the
/// token the request's signature or bearer maps to.
pub(crate) enum Caller<'a> {
    Open,
    Token(&'a ApiToken),
}

impl Caller<'_> {
    /// `AccessDeniedException` unless the caller's scopes allow `need`.
    pub(crate) fn require(&self, need: &Need, operation: &str) -> Result<(), EbError> {
        match self {
            Caller::Open => Ok(()),
            Caller::Token(token) if token.allows(need) => Ok(()),
            Caller::Token(token) => Err(EbError::access_denied(format!(
                "the credentials of token {:?} may not call {operation}: it needs the scope {need}",
                token.name
            ))),
        }
    }

    pub(crate) fn allows(&self, need: &Need) -> bool {
        self.require(need, "").is_ok()
    }
}

/// What every operation gets: the server, the caller, and the request body as JSON.
pub(crate) struct Call<'a> {
    pub(crate) app: &'a Arc<App>,
    pub(crate) caller: Caller<'a>,
    pub(crate) input: Value,
}

impl Call<'_> {
    pub(crate) fn arns(&self) -> Arns<'_> {
        Arns(&self.app.config().aws)
    }

    /// Deletes one of the door's documents if it is there: what a delete of the resource it
    /// belongs to leaves behind must go, and its absence is no error.
    pub(crate) async fn forget(
        &self,
        kind: switchyard_store::DocumentKind,
        name: &str,
    ) -> Result<(), EbError> {
        match self.app.delete_document(kind, name).await {
            Ok(_) | Err(crate::ServerError::Store(switchyard_store::StoreError::NotFound(_))) => {
                Ok(())
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// `POST /`. A request without `X-Amz-Target` is not an AWS call, and gets the REST API's 404.
pub(crate) async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let request_id = uuid::Uuid::now_v7().to_string();
    let Some(target) = request.headers().get("x-amz-target").cloned() else {
        return ApiError::not_found(
            "no such API route; see /v1/buses (the EventBridge API needs X-Amz-Target)",
        )
        .into_response();
    };
    let mut response = match serve(&app, target, request).await {
        Ok(answer) => answer,
        Err(error) => error.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

async fn serve(app: &Arc<App>, target: HeaderValue, request: Request) -> Result<Response, EbError> {
    let operation = target
        .to_str()
        .ok()
        .and_then(|t| t.strip_prefix("AWSEvents."))
        .ok_or_else(|| {
            EbError::new(
                "UnknownOperationException",
                StatusCode::NOT_FOUND,
                "X-Amz-Target must be AWSEvents.<Operation>",
            )
        })?
        .to_string();
    let (parts, body) = request.into_parts();
    let headers = parts.headers.clone();
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let body = match RawBody::from_request(Request::from_parts(parts, body), app).await {
        Ok(RawBody(bytes)) => bytes,
        Err(error) => return Err(body_error(error)),
    };
    let caller = authenticate(app, &method, &uri, &headers, &body)?;
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        switchyard_pattern::check_unique_keys(&String::from_utf8_lossy(&body))
            .map_err(|e| EbError::client("SerializationException", e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| {
            EbError::client(
                "SerializationException",
                format!("the request body is not JSON: {e}"),
            )
        })?
    };
    if !input.is_object() {
        return Err(EbError::client(
            "SerializationException",
            "the request body must be a JSON object",
        ));
    }
    let call = Call { app, caller, input };
    buses::ensure_default(&call).await?;
    let answer = run(&operation, call).await?;
    Ok(answer_ok(&answer))
}

/// The operation table: every EventBridge operation the door implements.
async fn run(operation: &str, call: Call<'_>) -> Result<Value, EbError> {
    // PutEvents checks each entry's bus in that entry's result; every other operation needs
    // one scope for the whole call.
    if operation != "PutEvents" {
        for need in Need::of_eventbridge(operation, &[]) {
            call.caller.require(&need, operation)?;
        }
    }
    match operation {
        "CreateEventBus" => buses::create(call).await,
        "DescribeEventBus" => buses::describe(call).await,
        "ListEventBuses" => buses::list(call).await,
        "UpdateEventBus" => buses::update(call).await,
        "DeleteEventBus" => buses::delete(call).await,
        "PutRule" => rules::put(call).await,
        "DescribeRule" => rules::describe(call).await,
        "ListRules" => rules::list(call).await,
        "EnableRule" => rules::set_state(call, true).await,
        "DisableRule" => rules::set_state(call, false).await,
        "DeleteRule" => rules::delete(call).await,
        "ListRuleNamesByTarget" => rules::names_by_target(call).await,
        "PutTargets" => targets::put(call).await,
        "ListTargetsByRule" => targets::list(call).await,
        "RemoveTargets" => targets::remove(call).await,
        "PutEvents" => events::put(call).await,
        "TestEventPattern" => events::test_pattern(call).await,
        "CreateConnection" => connections::create(call).await,
        "DescribeConnection" => connections::describe(call).await,
        "ListConnections" => connections::list(call).await,
        "UpdateConnection" => connections::update(call).await,
        "DeleteConnection" => connections::delete(call).await,
        "DeauthorizeConnection" => connections::deauthorize(call).await,
        "CreateApiDestination" => api_destinations::create(call).await,
        "DescribeApiDestination" => api_destinations::describe(call).await,
        "ListApiDestinations" => api_destinations::list(call).await,
        "UpdateApiDestination" => api_destinations::update(call).await,
        "DeleteApiDestination" => api_destinations::delete(call).await,
        "CreateArchive" => archives::create(call).await,
        "DescribeArchive" => archives::describe(call).await,
        "ListArchives" => archives::list(call).await,
        "UpdateArchive" => archives::update(call).await,
        "DeleteArchive" => archives::delete(call).await,
        "StartReplay" => archives::start_replay(call).await,
        "DescribeReplay" => archives::describe_replay(call).await,
        "ListReplays" => archives::list_replays(call).await,
        "CancelReplay" => archives::cancel_replay(call).await,
        "TagResource" => tags::tag(call).await,
        "UntagResource" => tags::untag(call).await,
        "ListTagsForResource" => tags::list(call).await,
        other if DISABLED.contains(&other) => Err(EbError::client(
            "OperationDisabledException",
            format!(
                "{other} is an EventBridge operation switchyard does not offer (docs/eventbridge.md lists what it does)"
            ),
        )),
        other => Err(EbError::new(
            "UnknownOperationException",
            StatusCode::NOT_FOUND,
            format!("{other} is not an EventBridge operation"),
        )),
    }
}

/// EventBridge operations that exist but have no meaning here (permissions, partner event
/// sources, global endpoints, the schema registry's discoverers).
const DISABLED: &[&str] = &[
    "ActivateEventSource",
    "CreateEndpoint",
    "CreatePartnerEventSource",
    "DeactivateEventSource",
    "DeletePartnerEventSource",
    "DeleteEndpoint",
    "DescribeEndpoint",
    "DescribeEventSource",
    "DescribePartnerEventSource",
    "ListEndpoints",
    "ListEventSources",
    "ListPartnerEventSourceAccounts",
    "ListPartnerEventSources",
    "PutPartnerEvents",
    "PutPermission",
    "RemovePermission",
    "UpdateEndpoint",
];

/// Who the request is from. Without API tokens (a loopback listener) anything goes, signed or
/// not, because SDKs sign with whatever credentials they find. With tokens, a bearer token
/// (for curl) or an AWS Signature Version 4 made with a configured access key.
fn authenticate<'a>(
    app: &'a App,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Caller<'a>, EbError> {
    let tokens = &app.config().api_tokens;
    if tokens.is_empty() {
        return Ok(Caller::Open);
    }
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(token) = tokens.find(authorization) {
        return Ok(Caller::Token(token));
    }
    let request = sigv4::SignedRequest {
        method,
        uri,
        headers,
        body,
    };
    sigv4::verify(
        &request,
        |id| tokens.by_access_key(id),
        switchyard_model::now_ms(),
    )
    .map(Caller::Token)
    .map_err(|error| EbError::new(error.aws_type(), StatusCode::FORBIDDEN, error.to_string()))
}

/// The REST extractor's refusals (413, 408, a read error) in EventBridge's shape.
fn body_error(error: ApiError) -> EbError {
    let kind = match error.status {
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLargeException",
        StatusCode::REQUEST_TIMEOUT => "RequestTimeoutException",
        _ => "SerializationException",
    };
    EbError::new(kind, error.status, error.message)
}

/// A body declared over the limit, refused before it is read, in EventBridge's shape.
pub(crate) fn too_large(max_request_bytes: usize) -> Response {
    EbError::new(
        "RequestEntityTooLargeException",
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over the size limit of {max_request_bytes} bytes"),
    )
    .into_response()
}

fn answer_ok(body: &Value) -> Response {
    answer(StatusCode::OK, body)
}

/// An answer in the protocol's content type.
pub(crate) fn answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
        Bytes::from(body.to_string()),
    )
        .into_response()
}
