//! EventBridge's error shape: `{"__type": "<Type>", "message": "…"}` with the status the
//! EventBridge API Reference gives the type, and the type again in `x-amzn-ErrorType`, which is
//! what botocore and the AWS CLI read to raise the named exception.
//!
//! Owns the translation of the server's, the model's and the store's errors into those types.
//! Must not: carry a secret or a signature in a message.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use switchyard_model::ModelError;
use switchyard_store::StoreError;

use crate::ServerError;

/// Seconds a client is asked to wait when the store is out: botocore retries a
/// `ThrottlingException` by itself.
const OUTAGE_RETRY_AFTER_S: u64 = 2;

/// One refused EventBridge call.
#[derive(Debug)]
pub(crate) struct EbError {
    /// EventBridge's exception name, such as `ResourceNotFoundException`.
    pub(crate) kind: &'static str,
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) retry_after_s: Option<u64>,
}

impl EbError {
    pub(crate) fn new(kind: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        EbError {
            kind,
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// A 400 of `kind`: every service exception but `InternalException` is a 400.
    pub(crate) fn client(kind: &'static str, message: impl Into<String>) -> Self {
        EbError::new(kind, StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        EbError::client("ValidationException", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        EbError::client("ResourceNotFoundException", message)
    }

    pub(crate) fn already_exists(message: impl Into<String>) -> Self {
        EbError::client("ResourceAlreadyExistsException", message)
    }

    pub(crate) fn limit_exceeded(message: impl Into<String>) -> Self {
        EbError::client("LimitExceededException", message)
    }

    /// A call made with credentials whose token lacks the scope (403, as AWS answers it).
    pub(crate) fn access_denied(message: impl Into<String>) -> Self {
        EbError::new("AccessDeniedException", StatusCode::FORBIDDEN, message)
    }
}

impl IntoResponse for EbError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"__type": self.kind, "message": self.message});
        let mut response = super::answer(self.status, &body);
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<ModelError> for EbError {
    fn from(error: ModelError) -> EbError {
        match error {
            ModelError::InvalidPattern(_) => {
                EbError::client("InvalidEventPatternException", error.to_string())
            }
            ModelError::Invalid(_) | ModelError::TooLarge(_) => {
                EbError::validation(error.to_string())
            }
        }
    }
}

impl From<ServerError> for EbError {
    fn from(error: ServerError) -> EbError {
        match error {
            ServerError::Store(error) => error.into(),
            ServerError::Invalid(message) => EbError::validation(message),
            internal @ ServerError::Internal { .. } => EbError::new(
                "InternalException",
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{internal}; see the server log"),
            ),
            other => {
                tracing::error!(error = %other, "server failure");
                EbError::new(
                    "InternalException",
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the change could not be made; see the server log",
                )
            }
        }
    }
}

impl From<StoreError> for EbError {
    fn from(error: StoreError) -> EbError {
        match error {
            StoreError::NotFound(message) => EbError::not_found(message),
            StoreError::Conflict(message) => {
                EbError::client("ConcurrentModificationException", message)
            }
            StoreError::Closed | StoreError::Unavailable(_) => EbError {
                retry_after_s: Some(OUTAGE_RETRY_AFTER_S),
                ..EbError::client("ThrottlingException", error.to_string())
            },
            other => {
                tracing::error!(error = %other, "store failure");
                EbError::new(
                    "InternalException",
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store failed; see the server log",
                )
            }
        }
    }
}
