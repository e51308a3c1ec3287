//! The store file's open handle, shared by readers and the writer thread, and its re-opening.
//!
//! After a failed read or write (a full disk, an I/O error) redb refuses every later operation
//! on that handle ("Previous I/O error occurred"): the only way back is to drop it and open the
//! file again, which also repairs it if the failure left it mid-commit. The writer thread does
//! that ([`super::writer`]); meanwhile the handle is swapped for the [`Outage`] that took it, so
//! that readers and writers fail at once with what is wrong instead of with redb's message.
//! After a full disk, the file is opened again only once the disk has room
//! ([`StoreFile::check_room`]).
//!
//! Invariant: at most one open handle exists (redb locks the file), so the old one is dropped,
//! after the reads still using it, before the file is opened again. Must not: open the file
//! from anywhere but [`StoreFile::open`] and [`StoreFile::reopen`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use redb::{Database, ReadableTable};

use super::codec::{CURRENT_SCHEMA, SCHEMA_VERSION, Tables};
use crate::{Outage, StoreError};

/// Free space the disk must show before writing resumes after it filled up. Re-opening alone
/// proves nothing: redb reuses the pages it freed, so it opens (and even commits a little) on a
/// full disk, and the next publish would fail again. A few busy group commits' worth.
const ROOM_TO_RESUME: usize = 1 << 20;

pub(super) struct StoreFile {
    path: PathBuf,
    /// redb's page cache, in bytes: what bounds the store's memory besides the lanes.
    cache_bytes: usize,
    state: RwLock<State>,
}

enum State {
    Open(Arc<Database>),
    /// Dropped after a failure; the writer is opening the file again.
    Reopening(Outage),
}

impl StoreFile {
    /// Opens (or creates) the file and checks its schema. Fails if another process holds it.
    pub(super) fn open(path: &Path, cache_bytes: usize) -> Result<StoreFile, StoreError> {
        let db = open_database(path, cache_bytes).map_err(|e| match e {
            // At start-up nothing is retried: say what failed, not that it will recover.
            StoreError::Unavailable(outage) => StoreError::Storage {
                message: format!("cannot open {}: {}", path.display(), outage.cause()),
                cause: Some(outage.shared_cause()),
            },
            StoreError::Storage { message, cause } => StoreError::Storage {
                message: format!("cannot open {}: {message}", path.display()),
                cause,
            },
            other => other,
        })?;
        Ok(StoreFile {
            path: path.to_path_buf(),
            cache_bytes,
            state: RwLock::new(State::Open(Arc::new(db))),
        })
    }

    /// The directory holding the file.
    pub(super) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The open handle, or the outage that is being recovered from.
    pub(super) fn database(&self) -> Result<Arc<Database>, StoreError> {
        match &*self.state.read().unwrap_or_else(PoisonError::into_inner) {
            State::Open(db) => Ok(Arc::clone(db)),
            State::Reopening(outage) => Err(StoreError::Unavailable(outage.clone())),
        }
    }

    /// Takes the handle away: from now on every caller gets `outage`. Returns the old handle,
    /// which the caller drops once the reads still using it are done.
    pub(super) fn close(&self, outage: Outage) -> Option<Arc<Database>> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, State::Reopening(outage)) {
            State::Open(db) => Some(db),
            State::Reopening(_) => None,
        }
    }

    /// Opens the file again after [`StoreFile::close`] (and the old handle's drop). On failure the
    /// outage callers see becomes the latest one, when the failure is one.
    pub(super) fn reopen(&self) -> Result<(), StoreError> {
        let opened = open_database(&self.path, self.cache_bytes);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match opened {
            Ok(db) => {
                *state = State::Open(Arc::new(db));
                Ok(())
            }
            Err(StoreError::Unavailable(outage)) => {
                *state = State::Reopening(outage.clone());
                Err(StoreError::Unavailable(outage))
            }
            Err(other) => Err(other),
        }
    }
}

impl StoreFile {
    /// The file's size in bytes, from its metadata: no handle needed, so it answers during an
    /// outage too. Blocking (one `stat`): call it off the async workers.
    pub(super) fn size_bytes(&self) -> Result<u64, StoreError> {
        let metadata = std::fs::metadata(&self.path).map_err(Outage::io)?;
        Ok(metadata.len())
    }

    /// Whether the disk has [`ROOM_TO_RESUME`] free, by writing that much beside the file (and
    /// removing it).
    pub(super) fn check_room(&self) -> Result<(), Outage> {
        let probe = self.path.with_extension("room-check");
        let written = write_probe(&probe);
        let _ = std::fs::remove_file(&probe);
        written.map_err(Outage::io)
    }
}

fn write_probe(path: &Path) -> std::io::Result<()> {
    let mut probe = std::fs::File::create(path)?;
    let chunk = [0x5a_u8; 64 * 1024];
    for _ in 0..ROOM_TO_RESUME / chunk.len() {
        probe.write_all(&chunk)?;
    }
    // Some filesystems find out that the blocks are missing only when writing them back.
    probe.sync_data()
}

fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    let db = redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Conflict(format!(
                "{} is in use by another switchyard process",
                path.display()
            )),
            other => StoreError::from(other),
        })?;
    init_schema(&db)?;
    Ok(db)
}

fn init_schema(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        // Creates every table on first start, so that read transactions always find them.
        let mut meta = Tables::open(&txn)?.meta;
        let version = meta.get(SCHEMA_VERSION)?.map(|v| v.value());
        match version {
            None => {
                meta.insert(SCHEMA_VERSION, CURRENT_SCHEMA)?;
            }
            Some(CURRENT_SCHEMA) => {}
            Some(other) => {
                return Err(StoreError::Conflict(format!(
                    "the data directory has schema version {other}; this switchyard reads version {CURRENT_SCHEMA}"
                )));
            }
        }
    }
    txn.commit()?;
    Ok(())
}
