//! The PostgreSQL store: several switchyard nodes sharing one database.
//!
//! Owns its connections to the database: a small pool for reads and catalog writes
//! ([`conn`]), one for the group commit of appends and outcomes ([`writer`]) and one that
//! LISTENs for other nodes' changes ([`listener`]). The schema is migrated on connect
//! ([`schema`]). Nodes coordinate only through the database: leases on subscriptions
//! ([`leases`]) and NOTIFY ([`notify`]), never by talking to each other; that is this store's
//! [`ClusterStore`] side.
//!
//! Laid out as the embedded store is: [`catalog`], [`deliveries`], [`dead_letters`],
//! [`archives`], [`history`], [`collect`] and [`writer`], each owning the same part of the
//! state as its namesake there; [`columns`] is how every batch is sent. This module only hands
//! each call to its part.
//!
//! Invariants: the same as every [`Store`]'s (see the crate documentation), each kept inside
//! one PostgreSQL transaction, whichever node writes; times that nodes must agree on (leases,
//! heartbeats) are the database's clock. Must not: decide delivery policy, or hold a
//! transaction open across anything but its own statements.
//!
//! Connections use TLS as the URL's `sslmode` says ([`tls`]: libpq's modes, rustls).

mod archives;
mod catalog;
mod collect;
mod columns;
mod conn;
mod dead_letters;
mod deliveries;
mod history;
mod leases;
mod listener;
mod notify;
mod schema;
mod tls;
mod writer;

use async_trait::async_trait;
use switchyard_model::{ArchiveSpec, BusSpec, SubscriptionSpec};
use tokio::sync::broadcast;

use self::conn::{Conn, Pool};
use self::listener::Listener;
use self::tls::Database;
use self::writer::{Context, Writer};
use crate::{
    ArchiveCursor, ArchiveRecord, ArchiveStats, ArchivedEvent, AttemptRecord, Backup, BusRecord,
    Change, ClusterStore, DeadLetter, DocumentKind, DocumentRecord, EventTrail, Lease, NewEvent,
    Outcome, PendingDelivery, PendingOrder, PullRequest, Store, StoreError, StoreOptions,
    StoreUsage, SubscriptionRecord, SubscriptionStats,
};

/// Connections for reads and catalog writes, besides the writer's and the listener's.
const POOL_SIZE: usize = 4;
/// Changes a slow receiver may fall behind by before it lags (and must resync).
const CHANGES_CAPACITY: usize = 1024;
/// The deployment's own tables (its schema's `switchyard_*`), with their indexes and TOAST: a
/// database may hold several deployments, or other applications, so not the database's size.
const SIZE: &str = "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint
     FROM pg_class c
     WHERE c.relnamespace = current_schema()::regnamespace
       AND c.relkind = 'r' AND c.relname LIKE 'switchyard\\_%'";

/// The PostgreSQL store: one node's connections to a database that several nodes can share,
/// coordinated by its [`ClusterStore`] side.
pub struct PostgresStore {
    pool: Pool,
    writer: Writer,
    /// Retention and de-duplication windows, which deletions and collection apply.
    options: StoreOptions,
    /// This deployment's NOTIFY channel (per schema).
    channel: String,
    /// What the listener hears, for every [`ClusterStore::changes`] receiver.
    changes: broadcast::Sender<Change>,
    /// Kept for its drop, which stops listening.
    _listener: Listener,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a key=value string; its
    /// `options`, such as `-csearch_path=...`, apply to every connection, and its `sslmode` and
    /// `sslrootcert` say how TLS is used), brings the schema up to date and starts listening for
    /// changes.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<PostgresStore, StoreError> {
        let config = Database::parse(url)?;
        let mut first = Conn::connect(&config).await?;
        let (client, _) = first.parts();
        schema::migrate(client).await?;
        let channel = schema::channel(client).await?;
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        let listener = Listener::start(config.clone(), channel.clone(), changes.clone()).await?;
        let writer = Writer::start(
            first,
            Context {
                config: config.clone(),
                channel: channel.clone(),
                options,
            },
        );
        Ok(PostgresStore {
            pool: Pool::new(config, POOL_SIZE),
            writer,
            options,
            channel,
            changes,
            _listener: listener,
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn put_bus(&self, name: &str, spec: BusSpec) -> Result<(BusRecord, bool), StoreError> {
        catalog::put_bus(&self.pool, &self.channel, name, spec).await
    }

    async fn get_bus(&self, name: &str) -> Result<BusRecord, StoreError> {
        catalog::get_bus(&mut self.pool.get().await?.session(), name).await
    }

    async fn list_buses(&self) -> Result<Vec<BusRecord>, StoreError> {
        catalog::list_buses(&mut self.pool.get().await?.session()).await
    }

    async fn delete_bus(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let retention_ms = self.options.history_retention_ms;
        catalog::delete_bus(&self.pool, &self.channel, name, force, retention_ms).await
    }

    async fn put_subscription(
        &self,
        bus: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<(SubscriptionRecord, bool), StoreError> {
        catalog::put_subscription(&self.pool, &self.channel, bus, name, spec).await
    }

    async fn get_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError> {
        catalog::get_subscription(&mut self.pool.get().await?.session(), bus, name).await
    }

    async fn list_subscriptions(
        &self,
        bus: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        catalog::list_subscriptions(&mut self.pool.get().await?.session(), bus).await
    }

    async fn delete_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError> {
        let retention_ms = self.options.history_retention_ms;
        catalog::delete_subscription(&self.pool, &self.channel, bus, name, retention_ms).await
    }

    async fn put_archive(
        &self,
        bus: &str,
        name: &str,
        spec: ArchiveSpec,
    ) -> Result<(ArchiveRecord, bool), StoreError> {
        catalog::put_archive(&self.pool, &self.channel, bus, name, spec).await
    }

    async fn get_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError> {
        catalog::get_archive(&mut self.pool.get().await?.session(), bus, name).await
    }

    async fn list_archives(&self, bus: Option<&str>) -> Result<Vec<ArchiveRecord>, StoreError> {
        catalog::list_archives(&mut self.pool.get().await?.session(), bus).await
    }

    async fn delete_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError> {
        catalog::delete_archive(&self.pool, &self.channel, bus, name).await
    }

    async fn archive_stats(&self, archive: u64) -> Result<ArchiveStats, StoreError> {
        archives::stats(&mut self.pool.get().await?.session(), archive).await
    }

    async fn read_archive(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
        after: Option<ArchiveCursor>,
        limit: usize,
    ) -> Result<Vec<ArchivedEvent>, StoreError> {
        let mut conn = self.pool.get().await?;
        archives::read(&mut conn.session(), archive, from_ms, to_ms, after, limit).await
    }

    async fn count_archived(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<u64, StoreError> {
        archives::count(
            &mut self.pool.get().await?.session(),
            archive,
            from_ms,
            to_ms,
        )
        .await
    }

    async fn put_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<(DocumentRecord, bool), StoreError> {
        catalog::put_document(&self.pool, &self.channel, kind, name, body).await
    }

    async fn create_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<DocumentRecord, StoreError> {
        catalog::create_document(&self.pool, &self.channel, kind, name, body).await
    }

    async fn list_documents(&self, kind: DocumentKind) -> Result<Vec<DocumentRecord>, StoreError> {
        catalog::list_documents(&mut self.pool.get().await?.session(), kind).await
    }

    async fn delete_document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<DocumentRecord, StoreError> {
        catalog::delete_document(&self.pool, &self.channel, kind, name).await
    }

    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Vec<PendingDelivery>>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.append(events).await
    }

    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.writer.record_outcomes(outcomes).await
    }

    async fn load_pending(
        &self,
        subscription: u64,
        limit: usize,
        order: PendingOrder,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let mut conn = self.pool.get().await?;
        deliveries::load_pending(&mut conn.session(), subscription, limit, order).await
    }

    async fn pull(
        &self,
        subscription: u64,
        request: PullRequest,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        deliveries::pull(&mut self.pool.get().await?.session(), subscription, request).await
    }

    async fn extend_leases(
        &self,
        subscription: u64,
        leases: Vec<Lease>,
    ) -> Result<u64, StoreError> {
        deliveries::extend_leases(&mut self.pool.get().await?.session(), subscription, &leases)
            .await
    }

    async fn pending_among(
        &self,
        subscription: u64,
        deliveries: Vec<u64>,
    ) -> Result<Vec<u64>, StoreError> {
        let mut conn = self.pool.get().await?;
        deliveries::pending_among(&mut conn.session(), subscription, &deliveries).await
    }

    async fn stats(&self, subscription: u64) -> Result<SubscriptionStats, StoreError> {
        deliveries::stats(&mut self.pool.get().await?.session(), subscription).await
    }

    async fn list_dead_letters(
        &self,
        subscription: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut conn = self.pool.get().await?;
        dead_letters::list(&mut conn.session(), subscription, after, limit).await
    }

    async fn redrive(&self, subscription: u64, ids: Option<Vec<u64>>) -> Result<u64, StoreError> {
        dead_letters::redrive(&self.pool, &self.channel, subscription, ids.as_deref()).await
    }

    async fn purge_dead_letters(
        &self,
        subscription: u64,
        ids: Option<Vec<u64>>,
    ) -> Result<u64, StoreError> {
        dead_letters::purge(&self.pool, subscription, ids.as_deref()).await
    }

    async fn list_attempts(
        &self,
        subscription: u64,
        before: Option<(u64, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut conn = self.pool.get().await?;
        history::list_attempts(&mut conn.session(), subscription, before, limit).await
    }

    async fn event_trail(&self, bus: &str, event_id: &str) -> Result<EventTrail, StoreError> {
        history::event_trail(&mut self.pool.get().await?.session(), bus, event_id).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        conn.session().query_one("SELECT 1", &[]).await?;
        // An empty group through the writer: it answers only if the writer task is alive and
        // can commit.
        self.writer.record_outcomes(Vec::new()).await
    }

    async fn usage(&self) -> Result<StoreUsage, StoreError> {
        // Read before taking a connection for the query, which would count itself.
        let pool = self.pool.usage();
        let row = self
            .pool
            .get()
            .await?
            .session()
            .query_one(SIZE, &[])
            .await?;
        Ok(StoreUsage {
            size_bytes: conn::unsigned(&row, 0)?,
            pool: Some(pool),
        })
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        collect::maintain(&self.pool, self.options).await
    }

    async fn backup(&self) -> Result<Backup, StoreError> {
        Err(StoreError::Unsupported(
            "this server's store is PostgreSQL, which switchyard does not copy itself: back it up with \
             pg_dump (or the database's own backups), and the master key file beside it"
                .into(),
        ))
    }

    fn cluster(&self) -> Option<&dyn ClusterStore> {
        Some(self)
    }
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn claim_subscriptions(&self, node: &str, lease_ms: u64) -> Result<Vec<u64>, StoreError> {
        leases::claim(&self.pool, node, lease_ms).await
    }

    async fn release_subscriptions(&self, node: &str) -> Result<(), StoreError> {
        leases::release(&self.pool, &self.channel, node).await
    }

    async fn hand_over_subscription(
        &self,
        node: &str,
        subscription: u64,
    ) -> Result<(), StoreError> {
        leases::hand_over(&self.pool, &self.channel, node, subscription).await
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
