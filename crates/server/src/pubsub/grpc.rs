//! The gRPC plumbing of the Pub/Sub door: one request in, one (or a stream of) answers out,
//! with tonic's codec and framing, for handlers that are plain async functions.
//!
//! `googleapis-tonic-google-pubsub-v1` has Google's messages and client code but no server
//! traits, so this does what tonic's generated servers do (`Grpc::unary`, `Grpc::streaming`)
//! around closures. It also maps switchyard's errors to gRPC status codes as Pub/Sub uses them.
//! Must not: know any RPC; handlers own their request and answer.

use std::future::Future;
use std::pin::Pin;

use hyper::body::Incoming;
use switchyard_store::StoreError;
use tonic::server::{Grpc, StreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::ServerError;

pub(crate) type HttpResponse = axum::http::Response<tonic::body::Body>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Decodes a unary request, runs `handler` on it, encodes its answer or status.
pub(crate) async fn unary<Req, Resp, F, Fut>(
    request: axum::http::Request<Incoming>,
    handler: F,
) -> HttpResponse
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    struct Once<F>(Option<F>);
    impl<Req, Resp, F, Fut> UnaryService<Req> for Once<F>
    where
        Req: Send + 'static,
        F: FnOnce(Req) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        type Response = Resp;
        type Future = BoxFuture<Result<Response<Resp>, Status>>;

        fn call(&mut self, request: Request<Req>) -> Self::Future {
            let handler = self.0.take();
            Box::pin(async move {
                let handler = handler.ok_or_else(|| Status::internal("called twice"))?;
                handler(request.into_inner()).await.map(Response::new)
            })
        }
    }
    Grpc::new(ProstCodec::<Resp, Req>::default())
        .unary(Once(Some(handler)), request)
        .await
}

/// The stream of answers of a bidirectional call.
pub(crate) type Answers<Resp> =
    Pin<Box<dyn futures_util::Stream<Item = Result<Resp, Status>> + Send + 'static>>;

/// Runs a bidirectional streaming call: `handler` gets the stream of requests and returns the
/// stream of answers.
pub(crate) async fn streaming<Req, Resp, F, Fut>(
    request: axum::http::Request<Incoming>,
    handler: F,
) -> HttpResponse
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(Streaming<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Answers<Resp>, Status>> + Send + 'static,
{
    struct Once<F>(Option<F>);
    impl<Req, Resp, F, Fut> StreamingService<Req> for Once<F>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        F: FnOnce(Streaming<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Answers<Resp>, Status>> + Send + 'static,
    {
        type Response = Resp;
        type ResponseStream = Answers<Resp>;
        type Future = BoxFuture<Result<Response<Answers<Resp>>, Status>>;

        fn call(&mut self, request: Request<Streaming<Req>>) -> Self::Future {
            let handler = self.0.take();
            Box::pin(async move {
                let handler = handler.ok_or_else(|| Status::internal("called twice"))?;
                handler(request.into_inner()).await.map(Response::new)
            })
        }
    }
    Grpc::new(ProstCodec::<Resp, Req>::default())
        .streaming(Once(Some(handler)), request)
        .await
}

/// switchyard's refusals as Pub/Sub's status codes.
pub(crate) fn status(error: ServerError) -> Status {
    match error {
        ServerError::Store(error) => store_status(error),
        ServerError::Invalid(message) => Status::invalid_argument(message),
        other => {
            tracing::error!(error = %other, "pubsub: server failure");
            Status::internal("the call could not be completed; see the server log")
        }
    }
}

pub(crate) fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::NotFound(message) => Status::not_found(message),
        StoreError::Conflict(message) => Status::failed_precondition(message),
        error if error.is_transient() => Status::unavailable(error.to_string()),
        other => {
            tracing::error!(error = %other, "pubsub: store failure");
            Status::internal("the store failed; see the server log")
        }
    }
}
