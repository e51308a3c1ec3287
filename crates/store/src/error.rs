//! The store's typed error.

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
