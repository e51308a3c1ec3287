//! The web console at `/console/`: a page, a script and a style sheet built into the binary (no
//! build step, nothing fetched from elsewhere, so it works offline), and the session a person
//! signs in to with an API token.
//!
//! The console is a door like the EventBridge and Pub/Sub ones, only thinner: everything it shows
//! or changes it asks of the REST API under `/v1`, from the browser, with the same scopes, so it
//! can do nothing a `curl` with the same token could not. This module only serves the assets and
//! turns a token into a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind HTTPS,
//! holding no token: see `auth::ApiTokens::open_session`).
//!
//! Must not: keep state (the session is a signed cookie, checked by `api::authorize`), read the
//! store, or serve anything a page elsewhere could use: every answer forbids framing and
//! sniffing, and the page's content security policy allows only this origin.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, extract::State};
use serde::Deserialize;
use serde_json::json;

use crate::App;
use crate::api::{ApiError, Body};
use crate::auth::{Need, SESSION_COOKIE, SESSION_S};

/// What the page may load and connect to: this origin only, no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
        .route(
            "/console/session",
            get(session).post(sign_in).delete(sign_out),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut answer = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            // Built into the binary: a new version is a new server, so revalidate each load.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    guarded(&mut answer);
    answer
}

/// What every console answer carries: no framing, no sniffing, no referrer.
fn guarded(answer: &mut Response) {
    let headers = answer.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

async fn index() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

/// Who the console acts as: whether tokens are needed, and the signed-in token's name and what
/// it may do, so the page shows only what the token allows (the API refuses the rest anyway).
async fn session(State(app): State<Arc<App>>, headers: axum::http::HeaderMap) -> Response {
    let mut answer = who(&app, &headers);
    guarded(&mut answer);
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

fn who(app: &App, headers: &axum::http::HeaderMap) -> Response {
    let tokens = &app.config().api_tokens;
    if tokens.is_empty() {
        return Json(json!({
            "tokens_required": false,
            "token": null,
            "scopes": [],
            "read": true,
            "admin": true,
        }))
        .into_response();
    }
    match crate::api::session_token(app, headers) {
        Some(token) => Json(json!({
            "tokens_required": true,
            "token": token.name,
            "scopes": token.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "read": token.allows(&Need::Read),
            "admin": token.allows(&Need::Admin),
        }))
        .into_response(),
        None => Json(json!({
            "tokens_required": true,
            "token": null,
            "scopes": [],
            "read": false,
            "admin": false,
        }))
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// Exchanges an API token for a session cookie.
async fn sign_in(State(app): State<Arc<App>>, Body(body): Body) -> Result<Response, ApiError> {
    let tokens = &app.config().api_tokens;
    if tokens.is_empty() {
        return Err(ApiError::invalid(
            "this server has no API tokens: the console needs no sign-in",
        ));
    }
    let request: SignIn = serde_json::from_str(&body)
        .map_err(|e| ApiError::invalid(format!("the body must be {{\"token\": \"...\"}}: {e}")))?;
    let token = tokens
        .find(Some(&format!("Bearer {}", request.token)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "that is not one of this server's API tokens",
            )
        })?;
    let value = tokens.open_session(token, switchyard_model::now_ms() / 1000);
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_S}{}",
        secure(&app)
    );
    Ok(cookie_answer(
        &cookie,
        json!({ "token": token.name }),
        StatusCode::OK,
    ))
}

async fn sign_out(State(app): State<Arc<App>>) -> Response {
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(&app)
    );
    cookie_answer(&cookie, json!({}), StatusCode::OK)
}

/// Behind HTTPS (served or proxied, as the public URL says), the cookie never travels in clear.
fn secure(app: &App) -> &'static str {
    if app.config().public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn cookie_answer(cookie: &str, body: serde_json::Value, status: StatusCode) -> Response {
    let mut answer = (status, Json(body)).into_response();
    guarded(&mut answer);
    if let Ok(value) = HeaderValue::from_str(cookie) {
        answer.headers_mut().insert(header::SET_COOKIE, value);
    }
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}
