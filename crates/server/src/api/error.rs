//! The API's error shape: `{"error": {"code": "...", "message": "..."}}` with the right status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchyard_model::ModelError;
use switchyard_store::{OutageKind, StoreError};

/// What a store outage answers in `Retry-After`: about how often the store re-opens its file
/// or reconnects once the fault is gone.
const OUTAGE_RETRY_AFTER_S: u64 = 2;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    /// Stable and machine-readable: scripts branch on it, so codes are never renamed.
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// Seconds for `Retry-After`, when retrying later is the fix.
    pub(crate) retry_after_s: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<ModelError> for ApiError {
    fn from(error: ModelError) -> ApiError {
        let status = match error {
            ModelError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ModelError::Invalid(_) | ModelError::InvalidPattern(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<crate::ServerError> for ApiError {
    fn from(error: crate::ServerError) -> ApiError {
        match error {
            crate::ServerError::Store(error) => error.into(),
            crate::ServerError::Invalid(message) => ApiError::invalid(message),
            // Logged with its cause where the task was awaited.
            internal @ crate::ServerError::Internal { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("{internal}; see the server log"),
            ),
            other => {
                tracing::error!(error = %other, "server failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the change could not be made; see the server log",
                )
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(message) => ApiError::not_found(message),
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            StoreError::Unsupported(message) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", message)
            }
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "switchyard is shutting down",
            ),
            // The store logs the fault and its recovery; one line per refused request would
            // flood the log for the whole outage.
            StoreError::Unavailable(outage) => {
                let (status, code) = match outage.kind {
                    OutageKind::DiskFull => {
                        (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
                    }
                    OutageKind::WriteFailed | OutageKind::Unreachable => {
                        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                    }
                };
                ApiError {
                    retry_after_s: Some(OUTAGE_RETRY_AFTER_S),
                    ..ApiError::new(status, code, outage.to_string())
                }
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store failed; nothing was changed",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerError;

    #[tokio::test]
    #[expect(
        clippy::disallowed_methods,
        reason = "a task that panics, for its JoinError"
    )]
    async fn a_panicked_task_is_answered_as_internal_never_as_a_store_outage() {
        let cause = tokio::spawn(async { panic!("a bug") })
            .await
            .expect_err("the task panicked");
        let answer = ApiError::from(ServerError::Internal {
            what: "change",
            cause,
        });
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.code, "internal");
        assert_eq!(answer.retry_after_s, None, "a bug is not worth retrying");
        assert_eq!(
            answer.message,
            "the change did not finish; see the server log"
        );
    }
}
