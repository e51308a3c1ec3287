//! switchyard's durable state, behind one batch-first [`Store`] interface.
//!
//! The store owns buses, subscriptions, events, deliveries, dead letters and the per-subscription
//! counters that make delivery accounting checkable. It does not match events, make HTTP calls or
//! decide retry policy: callers hand it decisions ([`Outcome`]s) to make durable.
//!
//! Invariants every implementation keeps, each within one transaction:
//! - a publish is durable with all its deliveries, or not at all;
//! - for every subscription, `accepted = delivered + dead + pending + purged` at every commit;
//! - an event is kept as long as any pending delivery refers to it, and for the history retention
//!   after that (dead letters keep a copy of theirs);
//! - an attempt's record lives as long as its event (or its subscription, if deleted first);
//! - delivery ids grow with time, so the first pending delivery of a subscription is its oldest;
//! - an event with a [`OnceKey`] is appended only if no event with that key was (within
//!   [`OnceKey`]'s 7 days), and the key is recorded in the event's transaction: a scheduled tick
//!   becomes at most one event, however many nodes fire it.
//!
//! Faults that pass (a full disk, a failed write, a database server restarting) are
//! [`StoreError::Unavailable`]: nothing was acknowledged, and both stores recover from them by
//! themselves (re-open the file, reconnect), without a restart.
//!
//! Every operation takes and returns batches: both stores turn concurrent callers into one group
//! commit, and the PostgreSQL store sends each batch in a few multi-row statements.
//!
//! Several nodes can share one PostgreSQL store. What only a shared store does is its cluster
//! side, [`ClusterStore`] ([`Store::cluster`]): each node runs the subscriptions it holds a lease
//! on ([`ClusterStore::claim_subscriptions`]) and hears of other nodes' writes through
//! [`ClusterStore::changes`]. A store only one process can open has none.
//!
//! Both implementations are laid out alike, one module per part of the state, so that a reader
//! finds one store's code by the other's: `catalog` (buses, subscriptions, archives, documents),
//! `deliveries` (appends, outcomes, pending deliveries and counters), `dead_letters`, `archives`
//! (the copies of archived events), `history` (the attempt log and event trails), `collect`
//! (what leaves the store and when) and `writer` (the group commit). The embedded store's `codec`
//! (tables and layouts) and `file` (its one handle) are the PostgreSQL store's `schema` and
//! `conn`; the PostgreSQL store adds `notify`, `listener` and `leases` for its cluster side.

mod embedded;
mod error;
mod postgres;
mod records;

pub use embedded::EmbeddedStore;
pub use error::{Cause, Outage, OutageKind, StoreError};
pub use postgres::PostgresStore;
pub use records::{
    ArchiveCursor, ArchiveRecord, ArchiveStats, ArchivedEvent, AttemptRecord, BusRecord, Change,
    DeadLetter, DeadReason, DeliveryState, DeliveryTrail, DocumentKind, DocumentRecord, EventTrail,
    NewEvent, OnceKey, Outcome, OutcomeKind, PendingDelivery, SubscriptionRecord,
    SubscriptionStats,
};

/// The order in which [`Store::load_pending`] returns deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingOrder {
    /// Soonest due first: what an unordered lane attempts next.
    Due,
    /// Publish order (delivery ids): an ordered lane must see the oldest delivery of every key.
    Publish,
}

/// What [`Store::pull`] leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullRequest {
    /// Deliveries leased at most.
    pub limit: usize,
    /// Deliveries due at or before this time are leased.
    pub now_ms: u64,
    /// The lease's deadline: when a delivery not acknowledged is due again.
    pub until_ms: u64,
    /// The subscription is ordered: one delivery per ordering key at a time, in publish order.
    pub ordered: bool,
}

/// One lease of [`Store::extend_leases`]: the delivery and the attempt that leased it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The delivery's id.
    pub delivery: u64,
    /// Its attempts when it was leased ([`PendingDelivery::attempts`] as pulled).
    pub attempts: u32,
    /// The new deadline.
    pub until_ms: u64,
}

/// What a store keeps and for how long, and how much memory the embedded store caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long history (an event with its attempt log and event trail) is kept after the bus
    /// accepted the event, in ms (1 h by default), and at least until no pending delivery needs
    /// it. With 0, an event goes when its last delivery finishes, and one that matched nothing
    /// is not kept.
    pub history_retention_ms: u64,
    /// How long a publisher-chosen event id is remembered: a publish that repeats it within the
    /// window is acknowledged but not delivered again.
    pub dedup_window_ms: u64,
    /// The embedded store's page cache, in bytes (redb's default is 1 GiB, too much for a small
    /// machine). Reads past it go to the file, through the operating system's own cache.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            history_retention_ms: 3_600_000,
            dedup_window_ms: 86_400_000,
            cache_bytes: 64 << 20,
        }
    }
}

/// What [`Store::usage`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    /// Bytes the store takes: the embedded store's file (it grows in steps and reuses freed
    /// pages, so it does not shrink after deletions), or the PostgreSQL store's tables with
    /// their indexes and TOAST in its schema.
    pub size_bytes: u64,
    /// The connection pool for reads and catalog writes; `None` for a store without one.
    pub pool: Option<PoolUsage>,
}

/// A connection pool's use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open and waiting for work.
    pub idle: u64,
    /// Connections taken by callers (being opened or running statements).
    pub in_use: u64,
    /// The most connections the pool holds at once; callers past it wait.
    pub max: u64,
}

/// A copy of the whole store as of one commit ([`Store::backup`]): a store file of its own, which
/// `serve --data-dir` opens as it would the original.
#[derive(Debug)]
pub struct Backup {
    /// The copy, open for reading from its start. It has no name left on disk: once this
    /// handle is dropped the copy is gone, so nothing is left behind by a reader that stops.
    pub file: std::fs::File,
    /// Its length in bytes.
    pub bytes: u64,
}

use async_trait::async_trait;
use switchyard_model::{ArchiveSpec, BusSpec, SubscriptionSpec};

/// The durable state of one switchyard deployment.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates or replaces a bus; the flag says whether it was created.
    async fn put_bus(&self, name: &str, spec: BusSpec) -> Result<(BusRecord, bool), StoreError>;
    /// The bus of that name; [`StoreError::NotFound`] if there is none.
    async fn get_bus(&self, name: &str) -> Result<BusRecord, StoreError>;
    /// Every bus, by name.
    async fn list_buses(&self) -> Result<Vec<BusRecord>, StoreError>;
    /// Deletes a bus. With `force`, its subscriptions (pending deliveries and dead letters
    /// included) and archives go too; without it, a bus that still has subscriptions or archives
    /// is a [`StoreError::Conflict`].
    /// Returns the deleted subscriptions.
    async fn delete_bus(
        &self,
        name: &str,
        force: bool,
    ) -> Result<Vec<SubscriptionRecord>, StoreError>;

    /// Creates or replaces a subscription of an existing bus. Replacing keeps its id, pending
    /// deliveries, dead letters and counters.
    async fn put_subscription(
        &self,
        bus: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<(SubscriptionRecord, bool), StoreError>;
    /// The subscription of that name on a bus; [`StoreError::NotFound`] if there is none.
    async fn get_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError>;
    /// The subscriptions of one bus, or of every bus with `None`.
    async fn list_subscriptions(
        &self,
        bus: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>, StoreError>;
    /// Deletes a subscription with its pending deliveries, dead letters and counters.
    async fn delete_subscription(
        &self,
        bus: &str,
        name: &str,
    ) -> Result<SubscriptionRecord, StoreError>;

    /// Creates or replaces an archive of an existing bus. Replacing keeps its id and the events
    /// it holds; a new retention applies to them too.
    async fn put_archive(
        &self,
        bus: &str,
        name: &str,
        spec: ArchiveSpec,
    ) -> Result<(ArchiveRecord, bool), StoreError>;
    /// The archive of that name on a bus; [`StoreError::NotFound`] if there is none.
    async fn get_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError>;
    /// The archives of one bus, or of every bus with `None`.
    async fn list_archives(&self, bus: Option<&str>) -> Result<Vec<ArchiveRecord>, StoreError>;
    /// Deletes an archive at once; the events it held are removed in the background.
    async fn delete_archive(&self, bus: &str, name: &str) -> Result<ArchiveRecord, StoreError>;
    /// What an archive (by id) holds now; [`StoreError::NotFound`] once it is deleted.
    async fn archive_stats(&self, archive: u64) -> Result<ArchiveStats, StoreError>;
    /// Up to `limit` events of an archive accepted in `[from_ms, to_ms)`, after `after`, in
    /// archive order.
    async fn read_archive(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
        after: Option<ArchiveCursor>,
        limit: usize,
    ) -> Result<Vec<ArchivedEvent>, StoreError>;
    /// How many events of an archive were accepted in `[from_ms, to_ms)`.
    async fn count_archived(
        &self,
        archive: u64,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<u64, StoreError>;

    /// Creates or replaces a named document of a kind; a replacement keeps its creation time.
    async fn put_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<(DocumentRecord, bool), StoreError>;
    /// Creates a document unless one of that kind and name exists, and returns the one stored:
    /// when several nodes create the same document at once, all of them get the first one.
    async fn create_document(
        &self,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<DocumentRecord, StoreError>;
    /// Every document of a kind, by name.
    async fn list_documents(&self, kind: DocumentKind) -> Result<Vec<DocumentRecord>, StoreError>;
    /// Deletes a document and returns it; [`StoreError::NotFound`] if there is none.
    async fn delete_document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<DocumentRecord, StoreError>;

    /// Makes events and their deliveries durable, returning per event the deliveries created.
    /// A subscription deleted since matching simply gets no delivery. An event that is not
    /// appended gets none either: a publisher's repeat of an event id within the de-duplication
    /// window, or a tick whose [`OnceKey`] is already recorded (a repeat within one batch
    /// included: the first stands).
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Vec<PendingDelivery>>, StoreError>;
    /// Makes attempt outcomes durable. Outcomes of deliveries that no longer exist (their
    /// subscription was deleted meanwhile) are ignored.
    async fn record_outcomes(&self, outcomes: Vec<Outcome>) -> Result<(), StoreError>;
    /// Up to `limit` pending deliveries of a subscription, soonest due first or in publish order.
    async fn load_pending(
        &self,
        subscription: u64,
        limit: usize,
        order: PendingOrder,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// Leases up to `request.limit` due deliveries of a pull subscription to a consumer: each
    /// gets one more attempt and is due again at `request.until_ms`, when, not acknowledged
    /// (recorded as an [`Outcome`]) or given a new deadline ([`Store::extend_leases`]), it is
    /// leased again. Soonest due first; with `request.ordered`, only the oldest pending delivery
    /// of each ordering key, and only once the one before it is done. Writes no attempt record
    /// and moves no counter: a lease is not an outcome. Concurrent callers (other nodes
    /// included) never lease the same delivery twice while its lease lasts.
    async fn pull(
        &self,
        subscription: u64,
        request: PullRequest,
    ) -> Result<Vec<PendingDelivery>, StoreError>;
    /// Moves the deadline of leased deliveries to `until_ms` (now: a consumer gives them back).
    /// A lease is named by its delivery and attempt, so a stale one (its delivery was leased
    /// again since, or is done) changes nothing. Answers how many leases moved.
    async fn extend_leases(&self, subscription: u64, leases: Vec<Lease>)
    -> Result<u64, StoreError>;

    /// Which of `deliveries` are still pending for the subscription: what an acknowledgement
    /// will finish (the others are done already), so that it is counted once.
    async fn pending_among(
        &self,
        subscription: u64,
        deliveries: Vec<u64>,
    ) -> Result<Vec<u64>, StoreError>;

    /// The delivery accounting of a subscription (by id) and the age of its backlog;
    /// [`StoreError::NotFound`] if there is none.
    async fn stats(&self, subscription: u64) -> Result<SubscriptionStats, StoreError>;
    /// Dead letters in id order, after the `after` cursor.
    async fn list_dead_letters(
        &self,
        subscription: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    /// Turns dead letters (all, or those listed) back into pending deliveries due now, each with
    /// a fresh retry window. Returns how many were redriven.
    async fn redrive(&self, subscription: u64, ids: Option<Vec<u64>>) -> Result<u64, StoreError>;
    /// Removes the dead letters of a subscription with `ids`, or all of them; they count as
    /// purged. Returns how many there were.
    async fn purge_dead_letters(
        &self,
        subscription: u64,
        ids: Option<Vec<u64>>,
    ) -> Result<u64, StoreError>;

    /// The attempt log of a subscription, newest first, strictly before the `before` cursor
    /// `(started_ms, delivery, attempt)`.
    async fn list_attempts(
        &self,
        subscription: u64,
        before: Option<(u64, u64, u32)>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, StoreError>;
    /// An event of a bus with its deliveries and attempts, while it is kept.
    async fn event_trail(&self, bus: &str, event_id: &str) -> Result<EventTrail, StoreError>;

    /// A consistent copy of the whole store (every table as of one commit) made while it keeps
    /// serving: writers are not held up, and the copy reflects none of the commits made while
    /// it is written. Only the embedded store makes one; a PostgreSQL store answers
    /// [`StoreError::Unsupported`], since the database's own tools (`pg_dump`) back it up.
    async fn backup(&self) -> Result<Backup, StoreError>;

    /// Whether the store can read and write now: what readiness probes ask.
    async fn check(&self) -> Result<(), StoreError>;
    /// What the store takes up now, for `/metrics`; cheap enough for every scrape (a file's
    /// metadata, or one query over the deployment's own tables in the catalog).
    async fn usage(&self) -> Result<StoreUsage, StoreError>;

    /// Background upkeep (removing history and archived events past their retention, and the
    /// events of deleted archives), in bounded chunks; call it periodically.
    async fn maintain(&self) -> Result<(), StoreError>;

    /// The store's cluster side, if several nodes can share it; `None` for a store that only
    /// one process can open, whose one node delivers for every subscription.
    fn cluster(&self) -> Option<&dyn ClusterStore> {
        None
    }
}

/// What a store shared by several nodes adds: which node delivers for which subscription, and
/// hearing of the others' writes. Only the PostgreSQL store has it (see [`Store::cluster`]).
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Claims (or renews) this node's leases on subscriptions, for `lease_ms`, and returns the
    /// ids of every subscription this node now owns. A subscription is owned by at most one live
    /// node; a node takes unowned or expired ones up to its fair share (ceil(subscriptions / live
    /// nodes), where live nodes are those that claimed within the lease), and gives up those
    /// above it so that a node that joins gets its share.
    async fn claim_subscriptions(&self, node: &str, lease_ms: u64) -> Result<Vec<u64>, StoreError>;
    /// Gives up this node's leases (graceful shutdown), so other nodes take them over at once.
    async fn release_subscriptions(&self, node: &str) -> Result<(), StoreError>;
    /// Gives up one lease that a claim stopped reporting as owned (above the node's share), once
    /// the node's lane for it has drained; until then nobody else takes it.
    async fn hand_over_subscription(&self, node: &str, subscription: u64)
    -> Result<(), StoreError>;
    /// Changes made by other nodes (and this one): new pending deliveries per subscription, and
    /// catalog changes (bus, subscription, document put/delete).
    fn changes(&self) -> tokio::sync::broadcast::Receiver<Change>;
}
