//! The server crate's typed error: for start-up, the config file and every operation.

use switchyard_dispatcher::DispatchError;
use switchyard_model::ModelError;
use switchyard_store::StoreError;

/// Why the server could not start, read its config file, or carry out an operation. The API
/// answers `Store` with the store error's own code, `Invalid` with 400 `invalid`, and the rest
/// with 500 `internal`.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store failed or refused the operation (not found, conflict, unavailable, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The dispatcher could not start, or a connection's client certificate cannot be used.
    #[error(transparent)]
    Dispatch(DispatchError),
    /// The config file is not valid; the message names the file's key.
    #[error("config file: {0}")]
    Config(String),
    /// One declaration of the config file breaks the API's rules for its body.
    #[error("config file: {context}: {error}")]
    ConfigEntry {
        /// The declaration's key in the file: `buses.orders`, `buses.orders.subscriptions.billing`,
        /// `sources.slack`.
        context: String,
        /// What the API's parser found wrong with it.
        error: ModelError,
    },
    /// A change was refused; the message names the field and says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The listener's certificate or key cannot be used; the message names the flag and file.
    #[error("TLS: {0}")]
    Tls(String),
    /// The master key could not seal a secret: at start, the identity-token signing key that
    /// is being stored for the first time.
    #[error("master key: {0}")]
    Secrets(#[from] switchyard_secrets::SecretError),
    /// A bug, not a fault of the request or the store: the task doing `what` panicked (or was
    /// cut off). Answered as `internal`, never as something worth retrying.
    #[error("the {what} did not finish")]
    Internal {
        /// The work the task was doing, for the message: `change`, `publish`, `redrive`,
        /// `replay cancel`.
        what: &'static str,
        /// The task's panic, or its cancellation.
        #[source]
        cause: tokio::task::JoinError,
    },
}

impl From<DispatchError> for ServerError {
    /// A store failure behind the dispatcher is a store failure (404, 503, ...), and a bad ack
    /// id is bad input, whoever reports them.
    fn from(error: DispatchError) -> ServerError {
        match error {
            DispatchError::Store(error) => ServerError::Store(error),
            DispatchError::AckId(_) => ServerError::Invalid(error.to_string()),
            other => ServerError::Dispatch(other),
        }
    }
}
