//! The store's typed error, and the messages both implementations give for the same failures.

use crate::DocumentKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The storage engine failed; the operation had no effect.
    #[error("storage error: {0}")]
    Storage(String),
    /// The store is shut down or its writer is gone; nothing was written.
    #[error("the store is closed")]
    Closed,
    /// Stored bytes do not decode: a bug or a corrupted file, never input.
    #[error("corrupt record in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

impl StoreError {
    pub(crate) fn no_bus(bus: &str) -> StoreError {
        StoreError::NotFound(format!("bus {bus:?} does not exist"))
    }

    pub(crate) fn no_subscription(bus: &str, name: &str) -> StoreError {
        StoreError::NotFound(format!(
            "subscription {name:?} does not exist on bus {bus:?}"
        ))
    }

    pub(crate) fn no_subscription_id(id: u64) -> StoreError {
        StoreError::NotFound(format!("subscription id {id} does not exist"))
    }

    pub(crate) fn no_document(kind: DocumentKind, name: &str) -> StoreError {
        StoreError::NotFound(format!("{} {name:?} does not exist", kind.as_str()))
    }

    pub(crate) fn no_event(bus: &str, event_id: &str) -> StoreError {
        StoreError::NotFound(format!(
            "event {event_id:?} is not on bus {bus:?}, or is older than the history retention"
        ))
    }

    pub(crate) fn bus_in_use(bus: &str, subscriptions: usize, archives: usize) -> StoreError {
        StoreError::Conflict(format!(
            "bus {bus:?} still has {subscriptions} subscription(s) and {archives} archive(s); delete them first, or add ?force=true to delete them with the bus"
        ))
    }

    pub(crate) fn no_archive(bus: &str, name: &str) -> StoreError {
        StoreError::NotFound(format!("archive {name:?} does not exist on bus {bus:?}"))
    }

    /// Whether the same call may succeed later (the engine hiccupped) rather than never.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Storage(_))
    }
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(e.to_string())
            }
        }
    )*};
}

storage_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The bare error prints only "db error"; what the server said is in the database error.
        match e.as_db_error() {
            // A race the statements did not settle themselves (they mostly use ON CONFLICT): the
            // caller's request met another's, not a broken store.
            Some(db) if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                StoreError::Conflict(format!("{}; try again", db.message()))
            }
            Some(db) => StoreError::Storage(format!(
                "PostgreSQL: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            )),
            None => StoreError::Storage(format!("PostgreSQL: {}", with_causes(&e))),
        }
    }
}

/// The error and its causes: tokio-postgres's own text ("error performing TLS handshake",
/// "error connecting to server") leaves out why.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
