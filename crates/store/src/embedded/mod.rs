//! The embedded store: one redb file in the data directory, zero setup.
//!
//! Owns the file ([`file`](mod@file)) and its single writer thread ([`writer`]); reads run on
//! tokio's blocking pool against MVCC snapshots, so they never wait for a commit. Only one
//! process can open the file at a time (redb locks it), which is what keeps two `serve`s off the
//! same data directory, and why this store has no cluster side. A full disk or an I/O error
//! fails writes (and reads) with an [`crate::Outage`] until the writer has re-opened the file;
//! no restart is needed.
//!
//! Laid out as the PostgreSQL store is: [`catalog`], [`deliveries`], [`dead_letters`],
//! [`archives`], [`history`], [`collect`] and [`writer`], each owning the same part of the
//! state as its namesake there; [`codec`] holds the tables and their byte layouts, and
//! [`backup`] copies them all while the store serves. This module
//! only hands each [`Store`] call to its part, as a read or as a job of the group commit.
//!
//! Must not: decide delivery policy, or hold a write transaction across an `.await`.

mod archives;
mod backup;
mod catalog;
mod codec;
mod collect;
mod dead_letters;
mod deliveries;
mod file;
mod history;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableDatabase};
use switchyard_model::{ArchiveSpec, BusSpec, SubscriptionSpec};

use self::file::StoreFile;
use self::writer::Writer;
use crate::{
    ArchiveCursor, ArchiveRecord, ArchiveStats, ArchivedEvent, AttemptRecord, Backup, BusRecord,
    DeadLetter, DocumentKind, DocumentRecord, EventTrail, Lease, NewEvent, Outcome,
    PendingDelivery, PendingOrder, PullRequest, Store, StoreError, StoreOptions, StoreUsage,
    SubscriptionRecord, SubscriptionStats,
};

/// The embedded store: one redb file in the data directory, which one process at a time can
/// open; what `serve` uses unless `--store` names a PostgreSQL database.
pub struct EmbeddedStore {
    /// Shared with the writer thread; reads open their own snapshots on its current handle.
    file: Arc<StoreFile>,
    writer: Writer,
    /// Retention and de-duplication windows, which writes and collection apply.
    options: StoreOptions,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. Fails if another process holds it.
    pub fn open(path: &Path, options: StoreOptions) -> Result<EmbeddedStore, StoreError> {
        let file = Arc::new(StoreFile::open(path, options.cache_bytes)?);
        let writer = Writer::start(Arc::clone(&file))?;
        Ok(EmbeddedStore {
            file,
            writer,
            options,
        })
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || work(&file.database()?.begin_read()?))
            .await
            .map_err(|e| StoreError::internal("a read task did not finish", e))?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put_bus(&self, name: &str, spec: BusSpec) -> Result<(BusRecord, bool), StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| catalog::put_bus(t, name, spec))
            .await
    }

    async fn get_bus(&self, name: &str) -> Result<BusRecord, StoreError> {
        let name = name.to_string();
        self.read(move |txn| catalog::get_bus(txn, &name)).await
    }

    async fn list_buses(&self) -> Result<Vec<BusRecord>, StoreError> {
        self.read(catalog::list_buses).await
    }

    async fn delete_bus(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let name = name.to_string();
        let retention_ms = self.options.history_retention_ms;
        self.writer
            .write(move |t| catalog::delete_bus(t, &name, force, retention_ms))
            .await
    }

    async fn put_subscription(
        &self,
        bus: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<(SubscriptionRecord, bool), StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.writer
            .write(move |t| catalog::put_on_bus(t, bus, name, spec))
            .await
    }

    async fn get_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.read(move |txn| catalog::get_on_bus(txn, &bus, &name))
            .await
    }

    async fn list_subscriptions(
        &self,
        bus: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let bus = bus.map(str::to_string);
        self.read(move |txn| catalog::list_on_bus(txn, bus.as_deref()))
            .await
    }

    async fn delete_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        let retention_ms = self.options.history_retention_ms;
        self.writer
            .write(move |t| catalog::delete_subscription(t, &bus, &name, retention_ms))
            .await
    }

    async fn put_archive(
        &self,
        bus: &str,
        name: &str,
        spec: ArchiveSpec,
    ) -> Result<(ArchiveRecord, bool), StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.writer
            .write(move |t| catalog::put_on_bus(t, bus, name, spec))
            .await
    }

    async fn get_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.read(move |txn| catalog::get_on_bus(txn, &bus, &name))
            .await
    }

    async fn list_archives(&self, bus: Option<&str>) -> Result<Vec<ArchiveRecord>, StoreError> {
        let bus = bus.map(str::to_string);
        self.read(move |txn| catalog::list_on_bus(txn, bus.as_deref()))
            .await
    }

    async fn delete_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError> {
        let (bus, name) = (bus.to_string(), name.to_string());
        self.writer
            .write(move |t| catalog::delete_archive(t, &bus, &name))
            .await
    }

    async fn archive_stats(&self, archive: u64) -> Result<ArchiveStats, StoreError> {
        self.read(move |txn| archives::stats(txn, archive)).await
    }

    async fn read_archive(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
        after: Option<ArchiveCursor>,
        limit: usize,
    ) -> Result<Vec<ArchivedEvent>, StoreError> {
        self.read(move |txn| archives::read(txn, archive, from_ms, to_ms, after, limit))
            .await
    }

    async fn count_archived(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<u64, StoreError> {
        self.read(move |txn| archives::count(txn, archive, from_ms, to_ms))
            .await
    }

    async fn put_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<(DocumentRecord, bool), StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| catalog::put_document(t, kind, name, body))
            .await
    }

    async fn create_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<DocumentRecord, StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| catalog::create_document(t, kind, name, body))
            .await
    }

    async fn list_documents(&self, kind: DocumentKind) -> Result<Vec<DocumentRecord>, StoreError> {
        self.read(move |txn| catalog::list_documents(txn, kind))
            .await
    }

    async fn delete_document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<DocumentRecord, StoreError> {
        let name = name.to_string();
        self.writer
            .write(move |t| catalog::delete_document(t, kind, &name))
            .await
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Vec<PendingDelivery>>, StoreError> {
        let options = self.options;
        self.writer
            .write(move |t| deliveries::append(t, events, options))
            .await
    }

    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        let retention_ms = self.options.history_retention_ms;
        self.writer
            .write(move |t| deliveries::record_outcomes(t, outcomes, retention_ms))
            .await
    }

    async fn load_pending(
        &self,
        subscription: u64,
        limit: usize,
        order: PendingOrder,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.read(move |txn| deliveries::load_pending(txn, subscription, limit, order))
            .await
    }

    async fn pull(
        &self,
        subscription: u64,
        request: PullRequest,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.writer
            .write(move |t| deliveries::pull(t, subscription, request))
            .await
    }

    async fn extend_leases(
        &self,
        subscription: u64,
        leases: Vec<Lease>,
    ) -> Result<u64, StoreError> {
        self.writer
            .write(move |t| deliveries::extend_leases(t, subscription, leases))
            .await
    }

    async fn pending_among(
        &self,
        subscription: u64,
        deliveries: Vec<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        self.read(move |txn| deliveries::pending_among(txn, subscription, deliveries))
            .await
    }

    async fn stats(&self, subscription: u64) -> Result<SubscriptionStats, StoreError> {
        self.read(move |txn| deliveries::stats(txn, subscription))
            .await
    }

    async fn list_dead_letters(
        &self,
        subscription: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(move |txn| dead_letters::list(txn, subscription, after, limit))
            .await
    }

    async fn redrive(&self, subscription: u64, ids: Option<Vec<u64>>) -> Result<u64, StoreError> {
        dead_letters::redrive(&self.writer, subscription, ids).await
    }

    async fn purge_dead_letters(
        &self,
        subscription: u64,
        ids: Option<Vec<u64>>,
    ) -> Result<u64, StoreError> {
        self.writer
            .write(move |t| dead_letters::purge(t, subscription, ids))
            .await
    }

    async fn list_attempts(
        &self,
        subscription: u64,
        before: Option<(u64, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(move |txn| history::list_attempts(txn, subscription, before, limit))
            .await
    }

    async fn event_trail(&self, bus: &str, event_id: &str) -> Result<EventTrail, StoreError> {
        let (bus, event_id) = (bus.to_string(), event_id.to_string());
        self.read(move |txn| history::event_trail(txn, &bus, &event_id))
            .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.read(|txn| {
            txn.open_table(codec::META)
                .map(|_| ())
                .map_err(StoreError::from)
        })
        .await?;
        // An empty job through the writer: it answers only if the writer thread is alive and
        // commits succeed.
        self.writer.write(|_| Ok(())).await
    }

    async fn usage(&self) -> Result<StoreUsage, StoreError> {
        let file = Arc::clone(&self.file);
        let size_bytes = tokio::task::spawn_blocking(move || file.size_bytes())
            .await
            .map_err(|e| StoreError::internal("a size task did not finish", e))??;
        Ok(StoreUsage {
            size_bytes,
            pool: None,
        })
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        collect::maintain(&self.writer, self.options).await
    }

    async fn backup(&self) -> Result<Backup, StoreError> {
        let dir = self.file.dir().to_path_buf();
        self.read(move |txn| backup::backup(txn, &dir)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let _first = EmbeddedStore::open(&path, StoreOptions::default()).unwrap();
        let second = EmbeddedStore::open(&path, StoreOptions::default());
        assert!(
            matches!(second, Err(StoreError::Conflict(_))),
            "{:?}",
            second.err()
        );
    }

    #[test]
    fn dead_reasons_have_stable_codes() {
        assert_eq!(
            crate::DeadReason::NonRetryableStatus.as_str(),
            "non_retryable_status"
        );
    }
}
