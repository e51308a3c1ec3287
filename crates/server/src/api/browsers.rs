//! What a web browser may ask of this server: the defence against pages elsewhere using an
//! operator's browser (cross-site request forgery) or a name that resolves to this server
//! (DNS rebinding) to reach the API.
//!
//! Only requests a browser marks are judged: browsers send `Origin` with every request that can
//! change something and `Sec-Fetch-Site` with every request, and no page can remove them;
//! API clients (curl, SDKs) send neither and pass untouched. A marked request is refused when
//! - it can change something and comes from another site (`Sec-Fetch-Site` other than
//!   `same-origin` and `none`, or an `Origin` that is neither the request's `Host` nor the
//!   public URL's origin);
//! - the server has no API tokens (so the API is open, on loopback) and it is addressed to a
//!   host name that is not a loopback one or the public URL's: the page of a rebound name
//!   would otherwise be same-origin with the API.
//!
//! Webhooks (`/hooks/`) are exempt: the sender's signature is their authentication.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::App;

pub(crate) async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/hooks/") {
        return next.run(request).await;
    }
    match refusal(&app, request.method(), request.headers()) {
        Some(reason) => ApiError::new(StatusCode::FORBIDDEN, "cross_site", reason).into_response(),
        None => next.run(request).await,
    }
}

fn refusal(app: &App, method: &Method, headers: &HeaderMap) -> Option<String> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = text(header::HeaderName::from_static("sec-fetch-site"));
    let origin = text(header::ORIGIN);
    if fetch_site.is_none() && origin.is_none() {
        return None;
    }
    let host = text(header::HOST).unwrap_or("");
    let safe = *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS;
    if !safe {
        if fetch_site.is_some_and(|site| site != "same-origin" && site != "none") {
            return Some(format!(
                "a page of another site may not {method} here (Sec-Fetch-Site: {})",
                fetch_site.unwrap_or_default()
            ));
        }
        if let Some(origin) = origin
            && authority(origin) != Some(host)
            && !public_origin(app).is_some_and(|public| public.eq_ignore_ascii_case(origin))
        {
            return Some(format!(
                "a page of {origin} may not {method} here: only this server's own pages may"
            ));
        }
    }
    if app.config().api_tokens.is_empty() && !trusted_host(app, host) {
        return Some(format!(
            "this server has no API tokens, so browsers may reach it only as localhost or its public URL, not as {host:?}"
        ));
    }
    None
}

/// The public URL's origin (`scheme://host[:port]`): behind a proxy that rewrites `Host`, the
/// console's own requests carry this origin, not the `Host` the server sees.
fn public_origin(app: &App) -> Option<String> {
    let url = url::Url::parse(&app.config().public_url).ok()?;
    Some(url.origin().ascii_serialization())
}

/// The `host[:port]` of an origin (`scheme://host[:port]`).
fn authority(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, rest)| rest)
}

/// A loopback name or address, or the public URL's host.
fn trusted_host(app: &App, host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || url::Url::parse(&app.config().public_url)
            .ok()
            .and_then(|url| url.host_str().map(|h| h.eq_ignore_ascii_case(name)))
            .unwrap_or(false)
}
