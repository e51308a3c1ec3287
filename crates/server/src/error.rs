//! The server crate's typed error: for start-up, the config file and every operation.

use switchyard_dispatcher::DispatchError;
use switchyard_model::ModelError;
use switchyard_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// The config file is not valid; the message names the file's key.
    #[error("config file: {0}")]
    Config(String),
    #[error("config file: {context}: {error}")]
    ConfigEntry { context: String, error: ModelError },
    /// A change was refused; the message names the field and says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The listener's certificate or key cannot be used; the message names the flag and file.
    #[error("TLS: {0}")]
    Tls(String),
    #[error("master key: {0}")]
    Secrets(#[from] switchyard_secrets::SecretError),
    /// A bug, not a fault of the request or the store: the task doing `what` panicked (or was
    /// cut off). Answered as `internal`, never as something worth retrying.
    #[error("the {what} did not finish")]
    Internal {
        what: &'static str,
        #[source]
        cause: tokio::task::JoinError,
    },
}
