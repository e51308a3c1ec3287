//! The catalog on PostgreSQL: buses, subscriptions, archives and named documents.
//!
//! Each write is its own short transaction that also NOTIFYs the catalog change, so other nodes
//! reload their catalog once it is committed. Creating races between nodes are settled by the
//! unique keys (`INSERT ... ON CONFLICT DO NOTHING`, then an update): the loser updates, and
//! nobody sees a unique violation. A record that belongs to a bus (a subscription, an archive)
//! is written by one helper, [`put_on_bus`], as the embedded store's catalog does. Deleting an
//! archive leaves its copies to [`super::collect`].
//!
//! Must not: touch the delivery tables other than through [`deliveries`] and [`dead_letters`].

use tokio_postgres::{Client, Row};

use super::conn::{Pool, Session, col, int, unsigned};
use super::{dead_letters, deliveries, notify};
use crate::records::{from_json, to_json};
use crate::{
    ArchiveRecord, BusRecord, DocumentKind, DocumentRecord, StoreError, SubscriptionRecord,
};
use switchyard_model::{ArchiveSpec, BusSpec, SubscriptionSpec, now_ms};

/// A create that finds the row and an update that then misses it met a concurrent delete;
/// the next try sees the delete.
const CREATE_TRIES: usize = 3;

const INSERT_BUS: &str = "INSERT INTO switchyard_buses (name, spec, created_ms, updated_ms)
    VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO NOTHING RETURNING created_ms";
const UPDATE_BUS: &str = "UPDATE switchyard_buses SET spec = $2, updated_ms = $3
    WHERE name = $1 RETURNING created_ms";
const GET_BUS: &str =
    "SELECT name, spec, created_ms, updated_ms FROM switchyard_buses WHERE name = $1";
const LIST_BUSES: &str =
    "SELECT name, spec, created_ms, updated_ms FROM switchyard_buses ORDER BY name";
/// Held until commit: a subscription cannot be added to a bus being deleted.
const LOCK_BUS: &str = "SELECT 1 FROM switchyard_buses WHERE name = $1 FOR UPDATE";
const KEEP_BUS: &str = "SELECT 1 FROM switchyard_buses WHERE name = $1 FOR KEY SHARE";
const DELETE_BUS: &str = "DELETE FROM switchyard_buses WHERE name = $1";

const INSERT_SUBSCRIPTION: &str = "INSERT INTO switchyard_subscriptions
        (bus, name, spec, created_ms, updated_ms)
    VALUES ($1, $2, $3, $4, $4) ON CONFLICT (bus, name) DO NOTHING
    RETURNING id, bus, name, spec, created_ms, updated_ms";
const UPDATE_SUBSCRIPTION: &str = "UPDATE switchyard_subscriptions SET spec = $3, updated_ms = $4
    WHERE bus = $1 AND name = $2 RETURNING id, bus, name, spec, created_ms, updated_ms";
const INSERT_COUNTERS: &str = "INSERT INTO switchyard_counters (subscription_id) VALUES ($1)";
const GET_SUBSCRIPTION: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_subscriptions WHERE bus = $1 AND name = $2";
const LIST_SUBSCRIPTIONS: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_subscriptions ORDER BY bus, name";
const LIST_SUBSCRIPTIONS_OF: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_subscriptions WHERE bus = $1 ORDER BY name";
const LOCK_SUBSCRIPTIONS_OF: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_subscriptions WHERE bus = $1 ORDER BY name FOR UPDATE";
const DELETE_SUBSCRIPTION: &str = "DELETE FROM switchyard_subscriptions
    WHERE bus = $1 AND name = $2 RETURNING id, bus, name, spec, created_ms, updated_ms";
const DELETE_SUBSCRIPTION_ID: &str = "DELETE FROM switchyard_subscriptions WHERE id = $1";

const INSERT_ARCHIVE: &str =
    "INSERT INTO switchyard_archives (bus, name, spec, created_ms, updated_ms)
    VALUES ($1, $2, $3, $4, $4) ON CONFLICT (bus, name) DO NOTHING
    RETURNING id, bus, name, spec, created_ms, updated_ms";
const UPDATE_ARCHIVE: &str = "UPDATE switchyard_archives SET spec = $3, updated_ms = $4
    WHERE bus = $1 AND name = $2 RETURNING id, bus, name, spec, created_ms, updated_ms";
const GET_ARCHIVE: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_archives WHERE bus = $1 AND name = $2";
const LIST_ARCHIVES: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_archives ORDER BY bus, name";
const LIST_ARCHIVES_OF: &str = "SELECT id, bus, name, spec, created_ms, updated_ms
    FROM switchyard_archives WHERE bus = $1 ORDER BY name";
const DELETE_ARCHIVE: &str = "DELETE FROM switchyard_archives WHERE bus = $1 AND name = $2
    RETURNING id, bus, name, spec, created_ms, updated_ms";
const DELETE_ARCHIVES_OF: &str = "DELETE FROM switchyard_archives WHERE bus = $1
    RETURNING id, bus, name, spec, created_ms, updated_ms";
/// Leaves the deleted archive's copies to collection.
const FORGET_ARCHIVE: &str =
    "INSERT INTO switchyard_deleted_archives (id) VALUES ($1) ON CONFLICT DO NOTHING";

const INSERT_DOCUMENT: &str = "INSERT INTO switchyard_documents
        (kind, name, body, created_ms, updated_ms)
    VALUES ($1, $2, $3, $4, $4) ON CONFLICT (kind, name) DO NOTHING RETURNING created_ms";
const UPDATE_DOCUMENT: &str = "UPDATE switchyard_documents SET body = $3, updated_ms = $4
    WHERE kind = $1 AND name = $2 RETURNING created_ms";
const LIST_DOCUMENTS: &str = "SELECT name, body, created_ms, updated_ms
    FROM switchyard_documents WHERE kind = $1 ORDER BY name";
const GET_DOCUMENT: &str = "SELECT name, body, created_ms, updated_ms
    FROM switchyard_documents WHERE kind = $1 AND name = $2";
const DELETE_DOCUMENT: &str = "DELETE FROM switchyard_documents
    WHERE kind = $1 AND name = $2 RETURNING name, body, created_ms, updated_ms";

fn bus_from_row(row: &Row) -> Result<BusRecord, StoreError> {
    Ok(BusRecord {
        name: col(row, 0)?,
        spec: from_json("switchyard_buses", col(row, 1)?)?,
        created_ms: unsigned(row, 2)?,
        updated_ms: unsigned(row, 3)?,
    })
}

/// A subscription from `id, bus, name, spec, created_ms, updated_ms`.
fn subscription_from_row(row: &Row) -> Result<SubscriptionRecord, StoreError> {
    Ok(SubscriptionRecord {
        id: unsigned(row, 0)?,
        bus: col(row, 1)?,
        name: col(row, 2)?,
        spec: from_json("switchyard_subscriptions", col(row, 3)?)?,
        created_ms: unsigned(row, 4)?,
        updated_ms: unsigned(row, 5)?,
    })
}

fn archive_from_row(row: &Row) -> Result<ArchiveRecord, StoreError> {
    Ok(ArchiveRecord {
        id: unsigned(row, 0)?,
        bus: col(row, 1)?,
        name: col(row, 2)?,
        spec: from_json("switchyard_archives", col(row, 3)?)?,
        created_ms: unsigned(row, 4)?,
        updated_ms: unsigned(row, 5)?,
    })
}

fn document_from_row(row: &Row) -> Result<DocumentRecord, StoreError> {
    Ok(DocumentRecord {
        name: col(row, 0)?,
        body: col(row, 1)?,
        created_ms: unsigned(row, 2)?,
        updated_ms: unsigned(row, 3)?,
    })
}

/// Creates or replaces a row: `insert` (doing nothing on conflict) then `update`, both
/// returning the row; the flag says whether it was created.
async fn upsert(
    db: &mut Session<'_, tokio_postgres::Transaction<'_>>,
    insert: (&'static str, &[&(dyn tokio_postgres::types::ToSql + Sync)]),
    update: (&'static str, &[&(dyn tokio_postgres::types::ToSql + Sync)]),
) -> Result<(Row, bool), StoreError> {
    for _ in 0..CREATE_TRIES {
        if let Some(row) = db.query_opt(insert.0, insert.1).await? {
            return Ok((row, true));
        }
        if let Some(row) = db.query_opt(update.0, update.1).await? {
            return Ok((row, false));
        }
    }
    Err(StoreError::Conflict(
        "the record was created and deleted concurrently; try again".into(),
    ))
}

pub(super) async fn put_bus(
    pool: &Pool,
    channel: &str,
    name: &str,
    spec: BusSpec,
) -> Result<(BusRecord, bool), StoreError> {
    let text = to_json(&spec)?;
    let now = int(now_ms());
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    let (row, created) = upsert(
        &mut db,
        (INSERT_BUS, &[&name, &text, &now]),
        (UPDATE_BUS, &[&name, &text, &now]),
    )
    .await?;
    notify::catalog(&mut db, channel).await?;
    let record = BusRecord {
        name: name.to_string(),
        spec,
        created_ms: unsigned(&row, 0)?,
        updated_ms: now.unsigned_abs(),
    };
    tx.commit().await?;
    Ok((record, created))
}

pub(super) async fn get_bus(
    db: &mut Session<'_, Client>,
    name: &str,
) -> Result<BusRecord, StoreError> {
    let row = db
        .query_opt(GET_BUS, &[&name])
        .await?
        .ok_or_else(|| StoreError::no_bus(name))?;
    bus_from_row(&row)
}

pub(super) async fn list_buses(db: &mut Session<'_, Client>) -> Result<Vec<BusRecord>, StoreError> {
    db.query(LIST_BUSES, &[])
        .await?
        .iter()
        .map(bus_from_row)
        .collect()
}

pub(super) async fn delete_bus(
    pool: &Pool,
    channel: &str,
    name: &str,
    force: bool,
    retention_ms: u64,
) -> Result<Vec<SubscriptionRecord>, StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    if db.query_opt(LOCK_BUS, &[&name]).await?.is_none() {
        return Err(StoreError::no_bus(name));
    }
    let doomed = db
        .query(LOCK_SUBSCRIPTIONS_OF, &[&name])
        .await?
        .iter()
        .map(subscription_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let archives = list_archives(&mut db, Some(name)).await?;
    if (!doomed.is_empty() || !archives.is_empty()) && !force {
        return Err(StoreError::bus_in_use(name, doomed.len(), archives.len()));
    }
    for sub in &doomed {
        delete_subscription_rows(&mut db, sub.id, retention_ms).await?;
        db.execute(DELETE_SUBSCRIPTION_ID, &[&int(sub.id)]).await?;
    }
    for row in db.query(DELETE_ARCHIVES_OF, &[&name]).await? {
        let record = archive_from_row(&row)?;
        db.execute(FORGET_ARCHIVE, &[&int(record.id)]).await?;
    }
    db.execute(DELETE_BUS, &[&name]).await?;
    notify::catalog(&mut db, channel).await?;
    tx.commit().await?;
    Ok(doomed)
}

/// How a record that belongs to a bus (a subscription, an archive) is written.
struct OnBus<T> {
    /// Takes (bus, name, spec JSON, now) and does nothing on conflict.
    insert: &'static str,
    /// Takes the same and updates the existing row.
    update: &'static str,
    /// Run with the new row's id when the record is created.
    on_create: Option<&'static str>,
    /// Reads the record from the row the insert or update returned.
    decode: fn(&Row) -> Result<T, StoreError>,
}

/// Creates or replaces a record of a bus, in a transaction that keeps the bus from being deleted
/// meanwhile and tells the other nodes; the flag says whether it was created.
async fn put_on_bus<T>(
    pool: &Pool,
    channel: &str,
    bus: &str,
    name: &str,
    spec: String,
    how: OnBus<T>,
) -> Result<(T, bool), StoreError> {
    let now = int(now_ms());
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    if db.query_opt(KEEP_BUS, &[&bus]).await?.is_none() {
        return Err(StoreError::no_bus(bus));
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&bus, &name, &spec, &now];
    let (row, created) = upsert(&mut db, (how.insert, &params), (how.update, &params)).await?;
    let record = (how.decode)(&row)?;
    if created && let Some(on_create) = how.on_create {
        db.execute(on_create, &[&col::<i64>(&row, 0)?]).await?;
    }
    notify::catalog(&mut db, channel).await?;
    tx.commit().await?;
    Ok((record, created))
}

pub(super) async fn put_subscription(
    pool: &Pool,
    channel: &str,
    bus: &str,
    name: &str,
    spec: SubscriptionSpec,
) -> Result<(SubscriptionRecord, bool), StoreError> {
    let how = OnBus {
        insert: INSERT_SUBSCRIPTION,
        update: UPDATE_SUBSCRIPTION,
        on_create: Some(INSERT_COUNTERS),
        decode: subscription_from_row,
    };
    put_on_bus(pool, channel, bus, name, to_json(&spec)?, how).await
}

pub(super) async fn get_subscription(
    db: &mut Session<'_, Client>,
    bus: &str,
    name: &str,
) -> Result<SubscriptionRecord, StoreError> {
    let row = db
        .query_opt(GET_SUBSCRIPTION, &[&bus, &name])
        .await?
        .ok_or_else(|| StoreError::no_subscription(bus, name))?;
    subscription_from_row(&row)
}

pub(super) async fn list_subscriptions(
    db: &mut Session<'_, Client>,
    bus: Option<&str>,
) -> Result<Vec<SubscriptionRecord>, StoreError> {
    let rows = match bus {
        Some(bus) => db.query(LIST_SUBSCRIPTIONS_OF, &[&bus]).await?,
        None => db.query(LIST_SUBSCRIPTIONS, &[]).await?,
    };
    rows.iter().map(subscription_from_row).collect()
}

pub(super) async fn delete_subscription(
    pool: &Pool,
    channel: &str,
    bus: &str,
    name: &str,
    retention_ms: u64,
) -> Result<SubscriptionRecord, StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    let row = db
        .query_opt(DELETE_SUBSCRIPTION, &[&bus, &name])
        .await?
        .ok_or_else(|| StoreError::no_subscription(bus, name))?;
    let record = subscription_from_row(&row)?;
    delete_subscription_rows(&mut db, record.id, retention_ms).await?;
    notify::catalog(&mut db, channel).await?;
    tx.commit().await?;
    Ok(record)
}

/// Removes every row of a subscription but its definition, in the transaction deleting it.
async fn delete_subscription_rows<C: tokio_postgres::GenericClient + Sync>(
    db: &mut Session<'_, C>,
    subscription: u64,
    retention_ms: u64,
) -> Result<(), StoreError> {
    deliveries::delete_subscription_rows(db, subscription, retention_ms).await?;
    dead_letters::delete_all(db, subscription).await?;
    Ok(())
}

pub(super) async fn put_archive(
    pool: &Pool,
    channel: &str,
    bus: &str,
    name: &str,
    spec: ArchiveSpec,
) -> Result<(ArchiveRecord, bool), StoreError> {
    let how = OnBus {
        insert: INSERT_ARCHIVE,
        update: UPDATE_ARCHIVE,
        on_create: None,
        decode: archive_from_row,
    };
    put_on_bus(pool, channel, bus, name, to_json(&spec)?, how).await
}

pub(super) async fn get_archive(
    db: &mut Session<'_, Client>,
    bus: &str,
    name: &str,
) -> Result<ArchiveRecord, StoreError> {
    let row = db
        .query_opt(GET_ARCHIVE, &[&bus, &name])
        .await?
        .ok_or_else(|| StoreError::no_archive(bus, name))?;
    archive_from_row(&row)
}

pub(super) async fn list_archives<C: tokio_postgres::GenericClient + Sync>(
    db: &mut Session<'_, C>,
    bus: Option<&str>,
) -> Result<Vec<ArchiveRecord>, StoreError> {
    let rows = match bus {
        Some(bus) => db.query(LIST_ARCHIVES_OF, &[&bus]).await?,
        None => db.query(LIST_ARCHIVES, &[]).await?,
    };
    rows.iter().map(archive_from_row).collect()
}

/// Deletes an archive's record at once; its copies are collected later.
pub(super) async fn delete_archive(
    pool: &Pool,
    channel: &str,
    bus: &str,
    name: &str,
) -> Result<ArchiveRecord, StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    let row = db
        .query_opt(DELETE_ARCHIVE, &[&bus, &name])
        .await?
        .ok_or_else(|| StoreError::no_archive(bus, name))?;
    let record = archive_from_row(&row)?;
    db.execute(FORGET_ARCHIVE, &[&int(record.id)]).await?;
    notify::catalog(&mut db, channel).await?;
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn put_document(
    pool: &Pool,
    channel: &str,
    kind: DocumentKind,
    name: &str,
    body: String,
) -> Result<(DocumentRecord, bool), StoreError> {
    let now = int(now_ms());
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&kind.as_str(), &name, &body, &now];
    let (row, created) = upsert(
        &mut db,
        (INSERT_DOCUMENT, &params),
        (UPDATE_DOCUMENT, &params),
    )
    .await?;
    if kind.followed() {
        notify::catalog(&mut db, channel).await?;
    }
    let record = DocumentRecord {
        name: name.to_string(),
        created_ms: unsigned(&row, 0)?,
        updated_ms: now.unsigned_abs(),
        body,
    };
    tx.commit().await?;
    Ok((record, created))
}

pub(super) async fn create_document(
    pool: &Pool,
    channel: &str,
    kind: DocumentKind,
    name: &str,
    body: String,
) -> Result<DocumentRecord, StoreError> {
    let now = int(now_ms());
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&kind.as_str(), &name, &body, &now];
    let record = match db.query_opt(INSERT_DOCUMENT, &params).await? {
        Some(_) => {
            if kind.followed() {
                notify::catalog(&mut db, channel).await?;
            }
            DocumentRecord {
                name: name.to_string(),
                body,
                created_ms: now.unsigned_abs(),
                updated_ms: now.unsigned_abs(),
            }
        }
        // Another node created it first (the insert waited for its commit): theirs stands.
        None => {
            let row = db.query_one(GET_DOCUMENT, &[&kind.as_str(), &name]).await?;
            document_from_row(&row)?
        }
    };
    tx.commit().await?;
    Ok(record)
}

pub(super) async fn list_documents(
    db: &mut Session<'_, Client>,
    kind: DocumentKind,
) -> Result<Vec<DocumentRecord>, StoreError> {
    db.query(LIST_DOCUMENTS, &[&kind.as_str()])
        .await?
        .iter()
        .map(document_from_row)
        .collect()
}

pub(super) async fn delete_document(
    pool: &Pool,
    channel: &str,
    kind: DocumentKind,
    name: &str,
) -> Result<DocumentRecord, StoreError> {
    let mut conn = pool.get().await?;
    let (client, statements) = conn.parts();
    let tx = client.transaction().await?;
    let mut db = Session::new(&tx, statements);
    let row = db
        .query_opt(DELETE_DOCUMENT, &[&kind.as_str(), &name])
        .await?
        .ok_or_else(|| StoreError::no_document(kind, name))?;
    let record = document_from_row(&row)?;
    if kind.followed() {
        notify::catalog(&mut db, channel).await?;
    }
    tx.commit().await?;
    Ok(record)
}
