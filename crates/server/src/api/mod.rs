//! HTTP routes, one module per resource, plus what every route shares: the error shape, the body
//! extractor that enforces size limits, and bearer-token authentication of `/v1` and `/metrics`
//! with the scopes of [`crate::auth`].

mod archives;
mod backup;
mod browsers;
mod buses;
mod connections;
mod dead_letters;
mod error;
mod events;
mod health;
mod history;
mod lint;
mod metrics;
mod pull;
mod replays;
mod sources;
mod stats;
mod subscriptions;
mod tail;
mod test_pattern;
mod views;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

pub(crate) use error::ApiError;

use crate::App;
use crate::auth::Need;

pub(crate) fn router(app: Arc<App>) -> Router {
    let v1 = Router::new()
        .route("/v1/buses", get(buses::list))
        .route(
            "/v1/buses/{bus}",
            put(buses::put).get(buses::get).delete(buses::delete),
        )
        .route("/v1/buses/{bus}/events", post(events::publish))
        .route("/v1/buses/{bus}/subscriptions", get(subscriptions::list))
        .route(
            "/v1/buses/{bus}/subscriptions/{name}",
            put(subscriptions::put)
                .get(subscriptions::get)
                .delete(subscriptions::delete),
        )
        .route(
            "/v1/buses/{bus}/subscriptions/{name}/stats",
            get(subscriptions::stats),
        )
        .route(
            "/v1/buses/{bus}/subscriptions/{name}/stats/history",
            get(stats::history),
        )
        .route("/v1/stats", get(stats::overview))
        .route(
            "/v1/buses/{bus}/subscriptions/{name}/pull",
            post(pull::pull),
        )
        .route("/v1/buses/{bus}/subscriptions/{name}/ack", post(pull::ack))
        .route(
            "/v1/buses/{bus}/subscriptions/{name}/modify-ack-deadline",
            post(pull::modify_ack_deadline),
        )
        .route(
            "/v1/buses/{bus}/subscriptions/{name}/dead-letters",
            get(dead_letters::list).delete(dead_letters::purge),
        )
        .route(
            "/v1/buses/{bus}/subscriptions/{name}/dead-letters/redrive",
            post(dead_letters::redrive),
        )
        .route("/v1/buses/{bus}/archives", get(archives::list))
        .route(
            "/v1/buses/{bus}/archives/{name}",
            put(archives::put)
                .get(archives::get)
                .delete(archives::delete),
        )
        .route("/v1/replays", get(replays::list).post(replays::start))
        .route(
            "/v1/replays/{name}",
            get(replays::get).delete(replays::cancel),
        )
        .route("/v1/test-pattern", post(test_pattern::test_pattern))
        .route("/v1/lint", get(lint::lint))
        .route("/v1/connections", get(connections::list))
        .route(
            "/v1/connections/{name}",
            put(connections::put)
                .get(connections::get)
                .delete(connections::delete),
        )
        .route("/v1/sources", get(sources::list))
        .route(
            "/v1/sources/{name}",
            put(sources::put).get(sources::get).delete(sources::delete),
        )
        .route("/v1/buses/{bus}/events/{id}", get(history::event))
        .route(
            "/v1/buses/{bus}/subscriptions/{name}/attempts",
            get(history::attempts),
        )
        .route("/v1/buses/{bus}/tail", get(tail::tail))
        .route("/v1/backup", get(backup::backup))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            require_token,
        ));
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            require_metrics_token,
        ));
    Router::new()
        .merge(v1)
        .merge(metrics)
        .route("/hooks/{name}", post(sources::receive))
        .route("/", post(crate::eventbridge::handle))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(crate::console::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(app.config().max_request_bytes))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            browsers::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            json_errors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            metrics::count_requests,
        ))
        .with_state(app)
}

/// Longest request target accepted: far above any route's needs, far below the HTTP layer's
/// own limit, so the refusal is ours and in the API's shape.
const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers, and their total size, accepted (the HTTP layer's own limits are higher,
/// for the same reason).
const MAX_HEADERS: usize = 64;
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Every error in the API's shape, also those that no handler wrote: the router's extractor
/// rejections (a path that is not valid UTF-8, a body over the limit at `/hooks`), and the
/// request-target, header and declared body limits, checked here before routing (a body declared
/// over the limit is refused before any of it is read).
async fn json_errors(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {uri} bytes; the limit is {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has {} headers of {header_bytes} bytes; the limits are {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes",
                headers.len()
            ),
        )
        .into_response();
    }
    let is_eventbridge = headers.contains_key("x-amz-target");
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > app.config().max_request_bytes as u64) {
        // Answered now; what the client still sends is read and dropped for a while (bounded
        // like any body), so that it sees the answer instead of a reset mid-write.
        // Tracked, and cut off at shutdown: a slow sender must not hold the server up.
        let shutdown = app.shutdown().clone();
        let body = drain(
            request.into_body(),
            app.config().max_request_bytes,
            app.config().http.clone(),
        );
        app.tasks()
            .spawn(async move { shutdown.run_until_cancelled(body).await });
        if is_eventbridge {
            return crate::eventbridge::too_large(app.config().max_request_bytes);
        }
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the request body is over the size limit of {} bytes",
                app.config().max_request_bytes
            ),
        )
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/x-amz-json")
        });
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Rejections carry a short plain-text reason; more than this is not a reason.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let reason = String::from_utf8_lossy(&text).trim().to_string();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        s if s.is_server_error() => "internal",
        _ => "invalid",
    };
    let message = if reason.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        reason
    };
    let mut shaped = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            shaped.headers_mut().insert(name.clone(), value.clone());
        }
    }
    shaped
}

/// The API described for tools (clients, fuzzers such as schemathesis); kept next to the routes.
async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

/// The public keys receivers use to verify switchyard's identity tokens.
async fn jwks(State(app): State<Arc<App>>) -> axum::Json<switchyard_destination::Jwks> {
    axum::Json(switchyard_destination::Jwks::new([&app.identity().key]))
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such API route; see /v1/buses")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

async fn require_token(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let need = Need::of(request.method(), request.uri().path());
    authorize(&app, need, request, next).await
}

async fn require_metrics_token(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    authorize(&app, Need::Metrics, request, next).await
}

/// The header the console sends with every request that changes something: a page elsewhere
/// cannot send it without the browser first asking this server (CORS), which never agrees, so
/// a session cookie alone changes nothing.
pub(crate) const CONSOLE_HEADER: &str = "switchyard-console";

/// 401 without a known token, 403 naming the missing scope with one that does not allow `need`.
/// The token is the `Authorization` header's, or a console session's (its cookie), which may
/// change something only with [`CONSOLE_HEADER`].
async fn authorize(app: &App, need: Need, request: Request, next: Next) -> Response {
    let tokens = &app.config().api_tokens;
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Need::Publish(bus) = &need
        && forwarded_into(app, bus, presented)
    {
        return next.run(request).await;
    }
    // Only a bearer token is ours: a proxy's own `Authorization: Basic …` must not hide the
    // console's session cookie.
    let found = match presented.and_then(crate::auth::bearer) {
        Some(_) => tokens.find(presented),
        None => {
            let token = session_token(app, request.headers());
            let safe = matches!(*request.method(), Method::GET | Method::HEAD);
            if token.is_some() && !safe && !request.headers().contains_key(CONSOLE_HEADER) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "a console session changes nothing without the {CONSOLE_HEADER} header"
                    ),
                )
                .into_response();
            }
            token
        }
    };
    match found {
        Some(token) if token.allows(&need) => next.run(request).await,
        Some(token) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token {:?} may not {} {}: it needs the scope {need}",
                token.name,
                request.method(),
                request.uri().path()
            ),
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API token as 'Authorization: Bearer <token>'",
        )
        .into_response(),
    }
}

/// The token of the request's console session cookie, if it holds a valid one.
pub(crate) fn session_token<'a>(
    app: &'a App,
    headers: &axum::http::HeaderMap,
) -> Option<&'a crate::auth::ApiToken> {
    let now_s = switchyard_model::now_ms() / 1000;
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == crate::auth::SESSION_COOKIE)
        .find_map(|(_, value)| app.config().api_tokens.by_session(value, now_s))
}

/// Whether `authorization` is this server's own identity token, sent by one of its
/// subscriptions that delivers into `bus`: how an EventBridge event bus target (or any
/// subscription whose destination is the bus's events URL with an identity token) publishes
/// when API tokens are configured. The token proves switchyard signed it for that URL; the
/// subscription it names must deliver to exactly that URL, so a token a receiver elsewhere got
/// (even one whose audience an admin set to this URL) publishes nothing.
fn forwarded_into(app: &App, bus: &str, authorization: Option<&str>) -> bool {
    let Some(token) = authorization.and_then(crate::auth::bearer) else {
        return false;
    };
    // API tokens are not JWTs: only a token with the JWS shape is worth a signature check.
    if token.bytes().filter(|&b| b == b'.').count() != 2 {
        return false;
    }
    let Ok(claims) = app
        .identity()
        .key
        .verify(token, switchyard_model::now_ms() / 1000)
    else {
        return false;
    };
    let url = app.config().bus_events_url(bus);
    if claims.iss != app.config().public_url || claims.aud != url {
        return false;
    }
    let sub: Vec<&str> = claims.sub.split('/').collect();
    let ["buses", from_bus, "subscriptions", from] = sub.as_slice() else {
        return false;
    };
    app.catalog()
        .bus(from_bus)
        .and_then(|index| index.subscription(from).cloned())
        .and_then(|s| s.spec.destination.as_ref().map(|d| d.url.as_str() == url))
        .unwrap_or(false)
}

/// A UTF-8 request body within the configured size limit, read at the minimum body rate, that
/// gives no key twice: the parser would keep one value while a person reading the body sees the
/// other. Refusals use the API's error shape.
pub(crate) struct Body(pub(crate) String);

impl FromRequest<Arc<App>> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Body, ApiError> {
        let Text(text) = Text::from_request(request, app).await?;
        switchyard_pattern::check_unique_keys(&text)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(Body(text))
    }
}

/// A UTF-8 request body with [`Body`]'s limits but not its duplicate-key check: for bodies of
/// events (publish, test-pattern), which are checked where the events are read, with each
/// event's own path in the message.
pub(crate) struct Text(pub(crate) String);

impl FromRequest<Arc<App>> for Text {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Text, ApiError> {
        let RawBody(bytes) = RawBody::from_request(request, app).await?;
        String::from_utf8(bytes.into())
            .map(Text)
            .map_err(|_| ApiError::invalid("the request body is not UTF-8"))
    }
}

/// A request body as bytes (webhooks need not be UTF-8), with the same limits as [`Body`].
pub(crate) struct RawBody(pub(crate) Bytes);

impl FromRequest<Arc<App>> for RawBody {
    type Rejection = ApiError;

    /// A body over `max_request_bytes` is refused with 413 as soon as that many bytes arrived;
    /// one that arrives slower than the minimum rate (after a grace period) with 408, so a slow
    /// sender cannot hold a connection open.
    async fn from_request(request: Request, app: &Arc<App>) -> Result<RawBody, ApiError> {
        use futures_util::StreamExt;
        let limits = &app.config().http;
        let max = app.config().max_request_bytes;
        let started = tokio::time::Instant::now();
        let mut stream = request.into_body().into_data_stream();
        let mut body = Vec::new();
        loop {
            let deadline = limits.body_deadline(started, body.len());
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "the request body arrived slower than {} bytes per second",
                            limits.body_min_rate
                        ),
                    ));
                }
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    return Err(ApiError::invalid(format!(
                        "cannot read the request body: {error}"
                    )));
                }
                Ok(Some(Ok(chunk))) => {
                    if body.len() + chunk.len() > max {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "too_large",
                            format!("the request body is over the size limit of {max} bytes"),
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
        Ok(RawBody(Bytes::from(body)))
    }
}

/// Query parameters, parsed by the handler so that a bad value gets the API's error shape.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    pub(crate) fn from(query: Query<HashMap<String, String>>) -> Params {
        Params(query.0)
    }

    pub(crate) fn number(&self, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
        match self.0.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<u64>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(ApiError::invalid(format!(
                    "query parameter {name:?} must be a whole number up to {max}"
                ))),
            },
        }
    }

    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn optional_number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.0
            .get(name)
            .map(|_| self.number(name, 0, u64::MAX))
            .transpose()
    }

    /// `?limit=N&after=NAME` of a list kept in name order.
    pub(crate) fn name_page(&self) -> Result<NamePage, ApiError> {
        Ok(NamePage {
            limit: self.number("limit", DEFAULT_PAGE, MAX_PAGE)?.max(1) as usize,
            after: self.0.get("after").cloned(),
        })
    }

    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(_) => Err(ApiError::invalid(format!(
                "query parameter {name:?} must be true or false"
            ))),
        }
    }
}

/// Reads and drops a refused request's body: at most `max` bytes, at the minimum body rate.
async fn drain(body: axum::body::Body, max: usize, limits: crate::http::HttpLimits) {
    use futures_util::StreamExt;
    let started = tokio::time::Instant::now();
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    while read <= max {
        match tokio::time::timeout_at(limits.body_deadline(started, read), stream.next()).await {
            Ok(Some(Ok(chunk))) => read += chunk.len(),
            _ => break,
        }
    }
}

/// Items of a list answer unless `?limit` says otherwise, and the most it may ask for: no answer
/// is built larger than its page, however many resources there are.
const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1_000;

/// One page of a list in name order: at most `limit` items named after `after`.
pub(crate) struct NamePage {
    limit: usize,
    after: Option<String>,
}

impl NamePage {
    /// Keeps only this page's records (sorted by `name` first) and returns the answer's `next`:
    /// the name to pass as `after` for the following page, or null on the last one.
    pub(crate) fn select<R>(
        &self,
        records: &mut Vec<R>,
        name: impl Fn(&R) -> &str,
    ) -> Option<String> {
        records.sort_by(|a, b| name(a).cmp(name(b)));
        if let Some(after) = &self.after {
            records.retain(|r| name(r) > after.as_str());
        }
        let more = records.len() > self.limit;
        records.truncate(self.limit);
        more.then(|| records.last().map(|r| name(r).to_string()))
            .flatten()
    }
}

/// The bus a path names, or the 400/404 that says what is wrong with it.
fn find_bus(app: &App, bus: &str) -> Result<Arc<crate::catalog::BusIndex>, ApiError> {
    names(&[("bus", bus)])?;
    app.catalog()
        .bus(bus)
        .ok_or_else(|| ApiError::not_found(format!("bus {bus:?} does not exist")))
}

/// Checks the names in a path before anything is looked up.
fn names(pairs: &[(&str, &str)]) -> Result<(), ApiError> {
    for (kind, name) in pairs {
        switchyard_model::validate_name(kind, name)?;
    }
    Ok(())
}
