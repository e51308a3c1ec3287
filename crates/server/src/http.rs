//! The HTTP connection layer: accepting connections and holding each one to deadlines, so that no
//! peer can keep sockets the server needs for everyone else.
//!
//! Owns, per connection: the time to send a request head (also the idle time allowed between two
//! requests on a kept-alive connection), and the cap on open connections, of which the last few
//! are kept for `/healthz`, `/readyz` and `/metrics` so that a flood of connections cannot blind
//! the checks that would tell an operator about it. The minimum body rate is enforced where bodies
//! are read ([`crate::api::Body`]).
//!
//! Must not: answer a request itself except to refuse it at the connection cap; let a connection
//! outlive shutdown (each is told to finish its request in progress and close).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::api::ApiError;

/// Deadlines and caps of the listener; the defaults suit a public listener on a small machine.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time to send a request's head, and the most a kept-alive connection may sit idle.
    pub header_timeout: Duration,
    /// A body must arrive at this many bytes per second at least, after the grace below.
    pub body_min_rate: u64,
    /// Time a body may take before the minimum rate applies.
    pub body_grace: Duration,
    /// Open connections at most; past it, new ones are closed at once.
    pub max_connections: usize,
    /// Of `max_connections`, the last this many serve only the health checks and metrics.
    pub reserved_connections: usize,
}

impl HttpLimits {
    /// When the next bytes of a body that started arriving at `started` are due, `read` bytes
    /// in: the grace period plus what the minimum rate allows for them.
    pub(crate) fn body_deadline(
        &self,
        started: tokio::time::Instant,
        read: usize,
    ) -> tokio::time::Instant {
        let allowed = Duration::from_secs_f64(read as f64 / self.body_min_rate.max(1) as f64);
        started + self.body_grace + allowed
    }
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_min_rate: 16 * 1024,
            body_grace: Duration::from_secs(10),
            max_connections: 512,
            reserved_connections: 16,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then each connection finishes
/// the request it is answering and closes, and this returns once all have.
pub(crate) async fn serve<L: Listener<Addr = SocketAddr>>(
    mut listener: L,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let open = Arc::new(AtomicUsize::new(0));
    // Its own tracker, not the app's: the connections must be gone before the lanes drain.
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let count = open.fetch_add(1, Ordering::Relaxed) + 1;
        if count > limits.max_connections {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, limit = limits.max_connections, "connection refused: at the connection limit");
            drop(io);
            continue;
        }
        let reserved = count
            > limits
                .max_connections
                .saturating_sub(limits.reserved_connections);
        let service = ConnectionService {
            router: router.clone(),
            peer,
            reserved,
            limit: limits.max_connections,
        };
        let mut http = http.clone();
        http.keep_alive(!reserved);
        let open = Arc::clone(&open);
        let stopped = shutdown.clone();
        connections.spawn(async move {
            let connection = http.serve_connection(
                TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(service),
            );
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(peer, result),
                () = stopped.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(peer, connection.await);
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    connections.close();
    connections.wait().await;
}

fn log_connection_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        // Timeouts and resets are what deadlines are for; they are not the server's failures.
        tracing::debug!(%peer, %error, "connection closed");
    }
}

/// The router for one connection: tells handlers the peer's address, and on a reserved
/// connection lets through only the health checks and metrics.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    reserved: bool,
    limit: usize,
}

impl Service<Request<hyper::body::Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let mut request = request.map(axum::body::Body::new);
        if self.reserved && !matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
            let mut refusal = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "the server is at its limit of {} open connections; try again shortly",
                    self.limit
                ),
            )
            .into_response();
            refusal.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            return Box::pin(async move { Ok(refusal) });
        }
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move { router.call(request).await })
    }
}
