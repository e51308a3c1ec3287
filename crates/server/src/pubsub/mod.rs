//! The Pub/Sub door: Google's Pub/Sub v1 gRPC API (`google.pubsub.v1.Publisher` and
//! `Subscriber`) on `serve --pubsub-listen`, so that code written with Google's client libraries
//! runs against switchyard with `PUBSUB_EMULATOR_HOST` set (docs/pubsub.md).
//!
//! Plaintext HTTP/2 as the emulator speaks it, or TLS with the REST listener's certificate.
//!
//! A protocol door like `eventbridge`: it translates names and shapes (a topic is a bus, a
//! Pub/Sub subscription a subscription, a message an event, an ack id a pull lease) and calls the
//! operations layer the REST API calls. It keeps no state of its own (a StreamingPull's
//! outstanding set lives as long as its stream) and never touches the store.
//!
//! Files: `grpc` (tonic plumbing and status codes), `names` (resource names), `publisher`,
//! `subscriber` (definitions and unary pulls) and `streaming` (StreamingPull and its flow
//! control). This file serves HTTP/2 and routes each call to its handler.

mod grpc;
mod names;
mod publisher;
mod streaming;
mod subscriber;

use std::convert::Infallible;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::task::TaskTracker;
use tonic::Status;

use crate::App;
use crate::auth::{ApiToken, Need};
use grpc::{HttpResponse, streaming, unary};

/// Serves the Pub/Sub API over HTTP/2 on `listener` (a `TcpListener` for plaintext gRPC, as the
/// emulator speaks, or a [`crate::tls::TlsListener`] whose config offers `h2`) until shutdown
/// begins; then each connection finishes its calls (StreamingPulls end) and closes.
pub async fn run<L: Listener<Addr = SocketAddr>>(mut listener: L, app: Arc<App>) {
    let connections = TaskTracker::new();
    let shutdown = app.shutdown().clone();
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let app = Arc::clone(&app);
        let stopped = shutdown.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(route(app, request).await) }
            });
            let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            http.timer(TokioTimer::new());
            let connection = http.serve_connection(TokioIo::new(io), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stopped.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "pubsub: connection closed");
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Who is calling: with API tokens configured, the token of the call's `authorization`
/// metadata, which must allow what each call needs.
#[derive(Clone)]
pub(crate) struct Call {
    pub(crate) app: Arc<App>,
    /// `None` with no tokens configured (a loopback listener: everything is allowed), or when
    /// the call presented none that is known (everything is refused).
    token: Option<ApiToken>,
}

impl Call {
    fn new(app: Arc<App>, authorization: Option<&str>) -> Call {
        let token = app.config().api_tokens.find(authorization).cloned();
        Call { app, token }
    }

    /// Refuses the call unless its token allows `need`.
    pub(crate) fn require(&self, need: Need) -> Result<(), Status> {
        if self.app.config().api_tokens.is_empty() {
            return Ok(());
        }
        match &self.token {
            Some(token) if token.allows(&need) => Ok(()),
            Some(token) => Err(Status::permission_denied(format!(
                "token {:?} may not do this: it needs the scope {need}",
                token.name
            ))),
            None => Err(Status::unauthenticated(
                "send a valid API token as 'authorization: Bearer <token>' metadata",
            )),
        }
    }
}

async fn route(app: Arc<App>, request: axum::http::Request<Incoming>) -> HttpResponse {
    let authorization = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let call = Call::new(app, authorization);
    let path = request.uri().path().to_string();
    let Some((service, method)) = path
        .strip_prefix("/google.pubsub.v1.")
        .and_then(|rest| rest.split_once('/'))
    else {
        return unimplemented(&path);
    };
    match (service, method) {
        ("Publisher", "CreateTopic") => unary(request, |r| publisher::create_topic(call, r)).await,
        ("Publisher", "GetTopic") => unary(request, |r| publisher::get_topic(call, r)).await,
        ("Publisher", "UpdateTopic") => unary(request, |r| publisher::update_topic(call, r)).await,
        ("Publisher", "ListTopics") => unary(request, |r| publisher::list_topics(call, r)).await,
        ("Publisher", "ListTopicSubscriptions") => {
            unary(request, |r| publisher::list_topic_subscriptions(call, r)).await
        }
        ("Publisher", "DeleteTopic") => unary(request, |r| publisher::delete_topic(call, r)).await,
        ("Publisher", "Publish") => unary(request, |r| publisher::publish(call, r)).await,
        ("Subscriber", "CreateSubscription") => {
            unary(request, |r| subscriber::create_subscription(call, r)).await
        }
        ("Subscriber", "GetSubscription") => {
            unary(request, |r| subscriber::get_subscription(call, r)).await
        }
        ("Subscriber", "UpdateSubscription") => {
            unary(request, |r| subscriber::update_subscription(call, r)).await
        }
        ("Subscriber", "ListSubscriptions") => {
            unary(request, |r| subscriber::list_subscriptions(call, r)).await
        }
        ("Subscriber", "DeleteSubscription") => {
            unary(request, |r| subscriber::delete_subscription(call, r)).await
        }
        ("Subscriber", "ModifyPushConfig") => {
            unary(request, |r| subscriber::modify_push_config(call, r)).await
        }
        ("Subscriber", "Pull") => unary(request, |r| subscriber::pull(call, r)).await,
        ("Subscriber", "Acknowledge") => unary(request, |r| subscriber::acknowledge(call, r)).await,
        ("Subscriber", "ModifyAckDeadline") => {
            unary(request, |r| subscriber::modify_ack_deadline(call, r)).await
        }
        ("Subscriber", "Seek") => unary(request, |r| subscriber::seek(call, r)).await,
        ("Subscriber", "StreamingPull") => {
            streaming(request, |r| streaming::streaming_pull(call, r)).await
        }
        _ => unimplemented(&path),
    }
}

/// Pub/Sub's paging of a list sorted by name: the items after `token` (a name), `size` of them
/// (0 or less: 100; at most 1,000), and the token of the next page (empty on the last).
pub(crate) fn page<T>(
    items: Vec<T>,
    name: impl Fn(&T) -> &str,
    size: i32,
    token: &str,
) -> (Vec<T>, String) {
    let size = match usize::try_from(size) {
        Ok(0) | Err(_) => 100,
        Ok(n) => n.min(1_000),
    };
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|item| token.is_empty() || name(item) > token)
        .collect();
    let more = rest.len() > size;
    rest.truncate(size);
    let next = match (more, rest.last()) {
        (true, Some(last)) => name(last).to_string(),
        _ => String::new(),
    };
    (rest, next)
}

fn unimplemented(path: &str) -> HttpResponse {
    Status::unimplemented(format!(
        "{path} is not implemented by switchyard (docs/pubsub.md lists what is)"
    ))
    .into_http()
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn pages_follow_their_tokens_to_the_end() {
        let names: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        let (first, token) = page(names.clone(), |n| n, 2, "");
        assert_eq!((first, token.as_str()), (vec!["a".into(), "b".into()], "b"));
        let (second, token) = page(names.clone(), |n| n, 2, &token);
        assert_eq!(
            (second, token.as_str()),
            (vec!["c".into(), "d".into()], "d")
        );
        let (last, token) = page(names.clone(), |n| n, 2, &token);
        assert_eq!((last, token.as_str()), (vec!["e".into()], ""));
        assert_eq!(
            page(names, |n| n, 0, "").0.len(),
            5,
            "0 is the default of 100"
        );
    }
}
