//! The dispatcher's errors: its own failures, and what went wrong with one attempt.
//!
//! Owns the attempt's error kinds and their one classification ([`AttemptClass`] and whether a
//! kind is retryable). Must not: decide what a failure means for the delivery (that is
//! `policy`'s), or carry a secret or a receiver's full answer (only the redacted excerpt).
//!
//! [`AttemptClass`]: switchyard_model::AttemptClass

use switchyard_model::AttemptClass;

/// The dispatcher could not start, or a connection's client certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The shared HTTP client cannot be built (its TLS setup failed, say); holds the error and
    /// its causes on one line.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// A connection's client certificate and key cannot be used together.
    #[error("client_certificate: {0}")]
    ClientCertificate(String),
    /// A consumer handed back an ack id that is not one (they look like `123-1`).
    #[error("{0:?} is not an ack id: give them back as pull answered them")]
    AckId(String),
    /// The store failed a pull, an acknowledgement or a deadline change.
    #[error(transparent)]
    Store(#[from] switchyard_store::StoreError),
}

impl DispatchError {
    /// Whether the same call may succeed later: only a store outage passes.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DispatchError::Store(e) if e.is_transient())
    }
}

/// Why one attempt did not deliver. Whether it is worth retrying depends on the kind and, for
/// 3xx/4xx statuses, on the subscription's `retry.retryable_statuses`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct DeliveryError {
    /// What failed, which decides retry, dead-letter reason and attempt class.
    pub(crate) kind: ErrorKind,
    /// Short and safe to store and show: status and a response excerpt, or the transport error.
    pub(crate) message: String,
}

/// How an attempt failed, as far as the retry decision and the circuit breaker care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The destination answered with a non-2xx status.
    Status {
        /// The answer's HTTP status, never a 2xx.
        status: u16,
        /// The answer's `Retry-After` as a delay in ms (an HTTP-date in the past is 0); `None`
        /// when absent or unreadable.
        retry_after_ms: Option<u64>,
    },
    /// No complete answer within the destination's `timeout_ms`.
    Timeout,
    /// Could not connect, or the connection broke.
    Connection,
    /// The request cannot even be built from the destination; retrying cannot help.
    InvalidDestination,
    /// The subscription stands for an EventBridge target switchyard cannot invoke (Lambda,
    /// SQS, …): no request is made at all.
    UnsupportedTarget,
}

impl DeliveryError {
    /// Whether another attempt may succeed: 5xx, timeouts and connection errors always; 3xx and
    /// 4xx only when the subscription lists the status.
    pub(crate) fn is_retryable(&self, retryable_statuses: &[u16]) -> bool {
        match self.kind {
            ErrorKind::Status { status, .. } => {
                status >= 500 || retryable_statuses.contains(&status)
            }
            ErrorKind::Timeout | ErrorKind::Connection => true,
            ErrorKind::InvalidDestination | ErrorKind::UnsupportedTarget => false,
        }
    }

    /// The outcome class used in stats and metrics.
    pub(crate) fn class(&self) -> AttemptClass {
        match self.kind {
            ErrorKind::Status { status: 429, .. } => AttemptClass::Status429,
            ErrorKind::Status { status, .. } if status >= 500 => AttemptClass::Status5xx,
            ErrorKind::Status { status, .. } if status >= 400 => AttemptClass::Status4xx,
            ErrorKind::Status { .. } => AttemptClass::Status3xx,
            ErrorKind::Timeout => AttemptClass::Timeout,
            ErrorKind::Connection => AttemptClass::Connection,
            ErrorKind::InvalidDestination | ErrorKind::UnsupportedTarget => AttemptClass::Invalid,
        }
    }

    /// The answer's HTTP status; `None` when there was no answer.
    pub(crate) fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// How long the destination asked to wait before the next attempt, in ms.
    pub(crate) fn retry_after_ms(&self) -> Option<u64> {
        match self.kind {
            ErrorKind::Status { retry_after_ms, .. } => retry_after_ms,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> DeliveryError {
        DeliveryError {
            kind: ErrorKind::Status {
                status,
                retry_after_ms: None,
            },
            message: String::new(),
        }
    }

    #[test]
    fn retryable_follows_design_md() {
        assert!(status(503).is_retryable(&[429]));
        assert!(status(429).is_retryable(&[429]));
        assert!(!status(429).is_retryable(&[]));
        assert!(!status(400).is_retryable(&[429]));
        assert!(!status(301).is_retryable(&[429]));
        assert!(status(409).is_retryable(&[409]));
        let timeout = DeliveryError {
            kind: ErrorKind::Timeout,
            message: String::new(),
        };
        assert!(timeout.is_retryable(&[]));
        let invalid = DeliveryError {
            kind: ErrorKind::InvalidDestination,
            message: String::new(),
        };
        assert!(!invalid.is_retryable(&[400]));
    }

    #[test]
    fn classes_match_the_metric_labels() {
        assert_eq!(status(429).class().as_str(), "429");
        assert_eq!(status(404).class().as_str(), "4xx");
        assert_eq!(status(502).class().as_str(), "5xx");
        assert_eq!(status(302).class().as_str(), "3xx");
    }
}
