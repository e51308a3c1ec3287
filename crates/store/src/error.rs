//! The store's typed error, and the messages both implementations give for the same failures.
//!
//! Faults that pass ([`Outage`]: a full disk, a failed write, a database server that went away)
//! are told apart from failures that do not, so that callers can answer "retry later" and the
//! stores can recover by themselves, and both from bugs ([`StoreError::Internal`]), which no
//! caller retries.
//!
//! Must not: drop what failed underneath: an engine's, the system's or tokio's error stays the
//! store error's source ([`Cause`]), and its text stays in the message that logs print.

use std::sync::Arc;

use crate::DocumentKind;

/// The error underneath a [`StoreError`] or an [`Outage`]: what redb, PostgreSQL, the operating
/// system or tokio reported. Shared, since a failed group commit gives it to each of its callers;
/// it is transparent (its text and its source are the error's own), and [`Cause::get`] gives
/// the error itself to downcast.
#[derive(Debug, Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub(crate) fn new(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Cause {
        Cause(Arc::from(cause.into()))
    }

    /// The error itself, to downcast (to `std::io::Error`, say).
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What kind of fault keeps the store from writing for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageKind {
    /// The disk holding the data is full (ENOSPC, a quota, PostgreSQL's `disk_full`).
    DiskFull,
    /// A read or write of the store file failed for another reason; the store re-opens it.
    WriteFailed,
    /// The database server cannot be reached, or is restarting or refusing connections.
    Unreachable,
}

/// A fault of the store's storage that is expected to pass: nothing was acknowledged, and the
/// store keeps trying to recover (re-open, reconnect) by itself.
#[derive(Debug, Clone)]
pub struct Outage {
    /// What kind of fault it is: callers answer a full disk differently.
    pub kind: OutageKind,
    /// What failed underneath, told in the outage's message and given as its source.
    cause: Cause,
}

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(self.kind, &self.cause))
    }
}

// By hand rather than derived: the source is the cause itself, not the `Cause` around it, so
// that callers can downcast it (to `std::io::Error`, say).
impl std::error::Error for Outage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.cause())
    }
}

impl Outage {
    pub(crate) fn new(
        kind: OutageKind,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Outage {
        Outage {
            kind,
            cause: Cause::new(cause),
        }
    }

    /// What failed underneath: the I/O error, or what the database server said.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.cause.get()
    }

    /// The cause, to keep in another error.
    pub(crate) fn shared_cause(&self) -> Cause {
        self.cause.clone()
    }

    /// A write or read of the store file failed: a full disk or another I/O error.
    pub(crate) fn io(error: std::io::Error) -> Outage {
        let full = matches!(
            error.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        );
        let kind = match full {
            true => OutageKind::DiskFull,
            false => OutageKind::WriteFailed,
        };
        Outage::new(kind, error)
    }
}

fn describe(kind: OutageKind, cause: &Cause) -> String {
    match kind {
        OutageKind::DiskFull => format!(
            "the store's disk is full ({cause}); nothing was written. Free space on it: the store resumes by itself"
        ),
        OutageKind::WriteFailed => format!(
            "the store could not write ({cause}); nothing was written. It is re-opening its file by itself: retry shortly"
        ),
        OutageKind::Unreachable => format!(
            "the database cannot be reached ({cause}); the change was not confirmed. Retry shortly: switchyard reconnects by itself"
        ),
    }
}

/// Why a store operation failed. Every kind but [`StoreError::Unavailable`] (and a
/// [`StoreError::Storage`] failure of the engine) fails the same way when tried again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// What was asked for does not exist (or no longer does); the message names it.
    #[error("{0}")]
    NotFound(String),
    /// The request met the store's state or another request (a bus still in use, a race); the
    /// message says which.
    #[error("{0}")]
    Conflict(String),
    /// The storage engine failed; the operation had no effect.
    #[error("storage error: {message}")]
    Storage {
        /// What failed, with the cause's own text (logs print only this).
        message: String,
        /// The engine's error, when there is one (a setting found invalid has none).
        #[source]
        cause: Option<Cause>,
    },
    /// This store cannot do what was asked at all (a backup of a PostgreSQL store); the message
    /// says what to use instead. Asking again will not help.
    #[error("{0}")]
    Unsupported(String),
    /// The store is shut down (the PostgreSQL store's writer went with its runtime); nothing was
    /// written.
    #[error("the store is closed")]
    Closed,
    /// The storage is failing for now (see [`Outage`]); the same call may succeed later.
    #[error(transparent)]
    Unavailable(Outage),
    /// Stored bytes do not decode: a bug or a corrupted file, never input.
    #[error("corrupt record in {table}: {detail}")]
    Corrupt {
        /// The table the record was read from (`postgres` for a column of any PostgreSQL one).
        table: &'static str,
        /// What does not decode: the decoder's message, or the value missing or out of range.
        detail: String,
    },
    /// A bug, not a fault of the storage: a task or thread that panicked, a value of switchyard's
    /// own that does not encode. Nothing was written, and the same call would fail again: never
    /// retry it.
    #[error("internal error in the store: {message}")]
    Internal {
        /// What went wrong, with the cause's own text (logs print only this).
        message: String,
        /// The error underneath, when there is one (a panic's payload is none).
        #[source]
        cause: Option<Cause>,
    },
}

impl StoreError {
    /// A failure of the storage engine, told by `context` and kept with its cause.
    pub(crate) fn storage(
        context: &str,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        let cause = Cause::new(cause);
        StoreError::Storage {
            message: format!("{context}: {cause}"),
            cause: Some(cause),
        }
    }

    /// A failure the storage engine did not report itself (an invalid setting, an answer that
    /// breaks the engine's promise).
    pub(crate) fn storage_message(message: impl Into<String>) -> StoreError {
        StoreError::Storage {
            message: message.into(),
            cause: None,
        }
    }

    /// A bug met with an error underneath (a task that panicked, a value that does not encode),
    /// told by `context`.
    pub fn internal(
        context: &str,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        let cause = Cause::new(cause);
        StoreError::Internal {
            message: format!("{context}: {cause}"),
            cause: Some(cause),
        }
    }

    /// A bug with nothing underneath to keep (a panic caught, a job that never ran).
    pub(crate) fn internal_message(message: impl Into<String>) -> StoreError {
        StoreError::Internal {
            message: message.into(),
            cause: None,
        }
    }

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

    pub(crate) fn no_archive_id(id: u64) -> StoreError {
        StoreError::NotFound(format!("archive {id} does not exist"))
    }

    /// Whether the same call may succeed later (the engine hiccupped) rather than never. An
    /// [`StoreError::Internal`] error never is.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Storage { .. } | StoreError::Unavailable(_)
        )
    }

    /// The error every caller of a failed group commit gets: the outage itself when that is what
    /// failed the group, so each of them can tell "retry later" from a broken store, and a bug
    /// as a bug.
    pub(crate) fn for_each_caller(&self) -> StoreError {
        match self {
            StoreError::Unavailable(_)
            | StoreError::Storage { .. }
            | StoreError::Internal { .. } => self.clone(),
            other => StoreError::Storage {
                message: other.to_string(),
                cause: Some(Cause::new(other.clone())),
            },
        }
    }
}

impl From<Outage> for StoreError {
    fn from(outage: Outage) -> Self {
        StoreError::Unavailable(outage)
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(io) => Outage::io(io).into(),
            // The file's handle is spoiled by an earlier failure; the writer re-opens it.
            redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
                Outage::new(OutageKind::WriteFailed, e).into()
            }
            // A lock poisoned by a panic inside redb: a bug, not the disk.
            redb::Error::LockPoisoned(_) => StoreError::Internal {
                message: e.to_string(),
                cause: Some(Cause::new(e)),
            },
            other => StoreError::Storage {
                message: other.to_string(),
                cause: Some(Cause::new(other)),
            },
        }
    }
}

// redb's errors of each kind of operation, each convertible into `redb::Error`, and so classified
// by the impl above with the error kept.
impl From<redb::DatabaseError> for StoreError {
    fn from(e: redb::DatabaseError) -> Self {
        redb::Error::from(e).into()
    }
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        redb::Error::from(e).into()
    }
}

impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        redb::Error::from(e).into()
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        redb::Error::from(e).into()
    }
}

impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        redb::Error::from(e).into()
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The bare error prints only "db error"; what the server said is in the database error.
        match e.as_db_error() {
            // A race the statements did not settle themselves (they mostly use ON CONFLICT): the
            // caller's request met another's, not a broken store.
            Some(db) if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                StoreError::Conflict(format!("{}; try again", db.message()))
            }
            Some(db) => {
                let described = format!(
                    "PostgreSQL: {} (SQLSTATE {})",
                    db.message(),
                    db.code().code()
                );
                match outage_of(db.code()) {
                    Some(kind) => Outage::new(kind, described).into(),
                    None => StoreError::Storage {
                        message: described,
                        cause: Some(Cause::new(e)),
                    },
                }
            }
            // A socket that broke or closed, or a server that did not answer a connect: it is
            // down or restarting, and the pool and the writer reconnect on next use.
            None => {
                let described = format!("PostgreSQL: {}", switchyard_model::error_chain(&e));
                match e.is_closed() || has_io_source(&e) {
                    true => Outage::new(OutageKind::Unreachable, described).into(),
                    false => StoreError::Storage {
                        message: described,
                        cause: Some(Cause::new(e)),
                    },
                }
            }
        }
    }
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The SQLSTATEs of faults that pass: a full disk, a server shutting down, starting up or out
/// of connections, a lost connection.
fn outage_of(code: &tokio_postgres::error::SqlState) -> Option<OutageKind> {
    use tokio_postgres::error::SqlState;
    if *code == SqlState::DISK_FULL {
        return Some(OutageKind::DiskFull);
    }
    let passing = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::INSUFFICIENT_RESOURCES,
        SqlState::OUT_OF_MEMORY,
    ];
    // Class 08: connection exceptions.
    (passing.contains(code) || code.code().starts_with("08")).then_some(OutageKind::Unreachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage_kind(error: StoreError) -> Option<OutageKind> {
        match error {
            StoreError::Unavailable(outage) => Some(outage.kind),
            _ => None,
        }
    }

    #[test]
    fn a_full_disk_is_an_outage_that_keeps_its_io_error() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let error = StoreError::from(redb::StorageError::Io(full));
        let cause = std::error::Error::source(&error).expect("the cause is kept");
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::StorageFull)
        );
        assert_eq!(outage_kind(error), Some(OutageKind::DiskFull));
    }

    #[test]
    fn a_spoiled_redb_handle_is_an_outage_but_a_corrupt_file_is_not() {
        let eio = std::io::Error::other("EIO");
        let kind = |e: redb::StorageError| outage_kind(StoreError::from(e));
        assert_eq!(
            kind(redb::StorageError::Io(eio)),
            Some(OutageKind::WriteFailed)
        );
        assert_eq!(
            kind(redb::StorageError::PreviousIo),
            Some(OutageKind::WriteFailed)
        );
        assert_eq!(kind(redb::StorageError::Corrupted("x".into())), None);
    }

    #[test]
    fn every_caller_of_a_failed_group_gets_the_outage() {
        let outage = Outage::new(OutageKind::Unreachable, "gone");
        let copy = StoreError::Unavailable(outage).for_each_caller();
        assert_eq!(outage_kind(copy), Some(OutageKind::Unreachable));
    }

    #[test]
    fn a_storage_error_keeps_the_engine_error_as_its_source() {
        let error = StoreError::from(redb::StorageError::Corrupted("page 7".into()));
        assert!(error.to_string().contains("page 7"), "{error}");
        let StoreError::Storage {
            cause: Some(cause), ..
        } = &error
        else {
            panic!("not a storage error with a cause: {error:?}");
        };
        assert!(cause.get().downcast_ref::<redb::Error>().is_some());
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn a_bug_is_internal_never_transient_and_stays_internal_for_every_caller() {
        let panicked = std::io::Error::other("task 7 panicked");
        let error = StoreError::internal("the change did not finish", panicked);
        assert_eq!(
            error.to_string(),
            "internal error in the store: the change did not finish: task 7 panicked"
        );
        assert!(!error.is_transient());
        assert!(matches!(
            error.for_each_caller(),
            StoreError::Internal { cause: Some(_), .. }
        ));
        assert!(!StoreError::internal_message("a write job panicked").is_transient());
    }

    #[test]
    fn sqlstates_of_passing_faults_are_outages() {
        use tokio_postgres::error::SqlState;
        assert_eq!(outage_of(&SqlState::DISK_FULL), Some(OutageKind::DiskFull));
        assert_eq!(
            outage_of(&SqlState::ADMIN_SHUTDOWN),
            Some(OutageKind::Unreachable)
        );
        assert_eq!(
            outage_of(&SqlState::CONNECTION_FAILURE),
            Some(OutageKind::Unreachable)
        );
        assert_eq!(outage_of(&SqlState::UNDEFINED_TABLE), None);
    }
}
