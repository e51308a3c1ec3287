//! `GET /v1/buses/{bus}/tail[?subscription=NAME]`: a live feed of the bus's activity as NDJSON,
//! one [`Activity`] a line, until the client goes away.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use switchyard_model::Activity;
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, find_bus};
use crate::App;

pub(crate) async fn tail(
    State(app): State<Arc<App>>,
    Path(bus): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let index = find_bus(&app, &bus)?;
    let subscription = query.get("subscription").cloned();
    if let Some(name) = &subscription
        && index.subscription(name).is_none()
    {
        return Err(ApiError::not_found(format!(
            "subscription {name:?} does not exist on bus {bus:?}"
        )));
    }
    let receiver = app.dispatcher().activity().subscribe();
    let closing = app.shutdown().clone();
    let lines =
        futures_util::stream::unfold((receiver, closing), move |(mut receiver, closing)| {
            let (bus, subscription) = (bus.clone(), subscription.clone());
            async move {
                loop {
                    // Shutdown first: a busy feed must not keep the server from stopping.
                    let next = tokio::select! {
                        biased;
                        () = closing.cancelled() => return None,
                        next = receiver.recv() => next,
                    };
                    let activity = match next {
                        Ok(activity) => activity,
                        Err(RecvError::Lagged(missed)) => Activity::Lagged { missed },
                        Err(RecvError::Closed) => return None,
                    };
                    let wanted = match (&activity, &subscription) {
                        (Activity::Lagged { .. }, _) => true,
                        (_, None) => activity.bus() == Some(&bus),
                        (_, Some(name)) => {
                            activity.bus() == Some(&bus) && activity.subscription() == Some(name)
                        }
                    };
                    if wanted {
                        let mut line = serde_json::to_vec(&activity).unwrap_or_default();
                        line.push(b'\n');
                        return Some((
                            Ok::<_, std::convert::Infallible>(line),
                            (receiver, closing),
                        ));
                    }
                }
            }
        });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
