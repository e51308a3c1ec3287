//! A consistent copy of the store file while the server runs ([`crate::Store::backup`]).
//!
//! The copy is made from one read transaction: an MVCC snapshot of one commit, which writers do
//! not wait for (they go on committing meanwhile; the file only grows a little, since redb keeps
//! the snapshot's pages until it ends). Every table of [`codec`](super::codec) is copied row by
//! row into a new redb file beside the store file, which is then opened for reading and its
//! name removed, so that only the returned handle keeps it.
//!
//! Invariant: the copy holds every table of the snapshot and nothing else, so `serve` opens it as
//! it would the original (schema version included). Must not: write to the live file, or leave
//! a copy behind on disk, finished or not.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, Durability, Key, ReadTransaction, ReadableTable, TableDefinition, Value};

use super::codec;
use crate::{Backup, StoreError};

/// Rows per commit of the copy: a commit's dirty pages are held in memory until it ends.
const ROWS_PER_COMMIT: usize = 10_000;

/// Tells apart the copies of backups made at the same time.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Copies `snapshot` into a new file in `dir` and returns it open, already unlinked.
pub(super) fn backup(snapshot: &ReadTransaction, dir: &Path) -> Result<Backup, StoreError> {
    let path = dir.join(format!(
        ".backup-{}-{}.redb",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let copied = write_copy(snapshot, &path).and_then(|()| {
        let file = std::fs::File::open(&path)
            .map_err(|e| StoreError::storage("cannot open the backup copy", e))?;
        let bytes = file
            .metadata()
            .map_err(|e| StoreError::storage("cannot read the backup copy's size", e))?
            .len();
        Ok(Backup { file, bytes })
    });
    // On success as on failure: an open handle keeps the file's contents; no name stays behind.
    let removed = std::fs::remove_file(&path);
    let backup = copied?;
    removed.map_err(|e| StoreError::storage("cannot remove the backup copy's name", e))?;
    Ok(backup)
}

fn write_copy(snapshot: &ReadTransaction, path: &PathBuf) -> Result<(), StoreError> {
    let target = Database::create(path)?;
    copy(snapshot, &target, codec::META)?;
    copy(snapshot, &target, codec::BUSES)?;
    copy(snapshot, &target, codec::SUBSCRIPTIONS)?;
    copy(snapshot, &target, codec::EVENTS)?;
    copy(snapshot, &target, codec::DELIVERIES)?;
    copy(snapshot, &target, codec::DUE)?;
    copy(snapshot, &target, codec::DEAD)?;
    copy(snapshot, &target, codec::COUNTERS)?;
    copy(snapshot, &target, codec::DOCUMENTS)?;
    copy(snapshot, &target, codec::DEDUP)?;
    copy(snapshot, &target, codec::DEDUP_EXPIRY)?;
    copy(snapshot, &target, codec::EVENT_IDS)?;
    copy(snapshot, &target, codec::REFS)?;
    copy(snapshot, &target, codec::ATTEMPTS)?;
    copy(snapshot, &target, codec::ATTEMPTS_BY_SUBSCRIPTION)?;
    copy(snapshot, &target, codec::ARCHIVES)?;
    copy(snapshot, &target, codec::ARCHIVED)?;
    copy(snapshot, &target, codec::ARCHIVE_COUNTS)?;
    copy(snapshot, &target, codec::DELETED_ARCHIVES)?;
    copy(snapshot, &target, codec::SCHEDULE_TICKS)?;
    // The copies' commits were not durable (one fsync for the whole copy): this one makes them
    // all durable.
    target.begin_write()?.commit()?;
    Ok(())
}

/// Copies one table of the snapshot into `target`, in commits of [`ROWS_PER_COMMIT`] rows; an
/// empty table is created empty.
fn copy<K: Key + 'static, V: Value + 'static>(
    snapshot: &ReadTransaction,
    target: &Database,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let source = snapshot.open_table(table)?;
    let mut rows = source.iter()?;
    loop {
        let mut txn = target.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::storage("cannot write the backup copy", e))?;
        let mut copied = 0;
        {
            let mut out = txn.open_table(table)?;
            for row in rows.by_ref().take(ROWS_PER_COMMIT) {
                let (key, value) = row?;
                out.insert(key.value(), value.value())?;
                copied += 1;
            }
        }
        txn.commit()?;
        if copied < ROWS_PER_COMMIT {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, ReadableTableMetadata, TableHandle};

    use super::*;
    use crate::{EmbeddedStore, NewEvent, Store, StoreOptions};

    fn tables(txn: &ReadTransaction) -> Vec<(String, u64)> {
        let mut tables: Vec<(String, u64)> = txn
            .list_tables()
            .unwrap()
            .map(|handle| {
                let name = handle.name().to_string();
                let rows = txn.open_untyped_table(handle).unwrap().len().unwrap();
                (name, rows)
            })
            .collect();
        tables.sort();
        tables
    }

    /// A table added to `codec` but not to the copy would be missing from every backup: the
    /// copy must list exactly the tables of the file, with as many rows each.
    #[tokio::test]
    async fn a_backup_holds_every_table_of_the_store_with_all_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            EmbeddedStore::open(&dir.path().join("store.redb"), StoreOptions::default()).unwrap();
        store.put_bus("orders", Default::default()).await.unwrap();
        let spec = switchyard_model::parse_subscription_spec(
            r#"{"destination": {"url": "http://127.0.0.1:9/"}}"#,
        )
        .unwrap();
        store
            .put_subscription("orders", "billing", spec)
            .await
            .unwrap();
        let subscription = store.get_subscription("orders", "billing").await.unwrap();
        let events = (0..3)
            .map(|n| NewEvent {
                bus: "orders".into(),
                event: std::sync::Arc::new(switchyard_model::Event {
                    id: format!("e{n}"),
                    envelope: format!("{{\"id\":\"e{n}\"}}"),
                    ingested_ms: 1_000 + n,
                    hops: 0,
                    trace: switchyard_model::TraceContext::new_root(),
                    ordering_key: None,
                    explicit_id: false,
                }),
                subscriptions: vec![subscription.id],
                archives: vec![],
                once: None,
            })
            .collect();
        store.append(events).await.unwrap();

        let backup = store.backup().await.unwrap();
        assert_eq!(backup.bytes, backup.file.metadata().unwrap().len());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["store.redb"], "the copy left a name behind");

        let copy_path = dir.path().join("copy.redb");
        std::io::copy(
            &mut &backup.file,
            &mut std::fs::File::create(&copy_path).unwrap(),
        )
        .unwrap();
        let live = store.file.database().unwrap();
        let expected = tables(&live.begin_read().unwrap());
        assert!(
            expected
                .iter()
                .any(|(name, rows)| name == "events" && *rows == 3)
        );
        drop(store);
        let copy = Database::open(&copy_path).unwrap();
        assert_eq!(tables(&copy.begin_read().unwrap()), expected);
    }
}
