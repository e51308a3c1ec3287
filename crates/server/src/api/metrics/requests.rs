//! Counts every API request by route template, method and status, and times it: one layer
//! around every route, the fallbacks included.
//!
//! The `route` label is the router's template (`/v1/buses/{bus}/events`, `/hooks/{name}`), never
//! the path as sent, and [`UNMATCHED_ROUTE`] when no route matched; the EventBridge door's `/`
//! is `/#PutEvents` for its publishes (the one operation on the publish path) so that their
//! latency is apart from the catalog operations'. The time is to the answer's head: a streamed
//! answer (`tail`) counts when it starts. Nothing here runs per event.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use switchyard_metrics::{HttpMethod, UNMATCHED_ROUTE};

use crate::App;

/// The `route` of the EventBridge door's `PutEvents`.
const PUT_EVENTS_ROUTE: &str = "/#PutEvents";

pub(crate) async fn count_requests(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    let started = tokio::time::Instant::now();
    let method = HttpMethod::of(request.method().as_str());
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let put_events = request
        .headers()
        .get("x-amz-target")
        .is_some_and(|t| t == "AWSEvents.PutEvents");
    let route = match matched.as_ref().map(MatchedPath::as_str) {
        None => UNMATCHED_ROUTE,
        Some("/") if put_events => PUT_EVENTS_ROUTE,
        Some(route) => route,
    };
    let response = next.run(request).await;
    app.metrics()
        .http_request(route, method, response.status().as_u16(), started.elapsed());
    response
}
