//! Running as one node of several that share a store (PostgreSQL): which subscriptions this node
//! delivers for, and following the changes other nodes make.
//!
//! Every subscription is delivered by exactly one live node, its owner, which holds a lease on it
//! in the store (`ClusterStore::claim_subscriptions`) and renews it every third of the lease. One
//! lane in the whole cluster per subscription is what makes its limits (`max_concurrency`,
//! `rate_limit_per_s`, ordering keys, the circuit breaker) hold cluster-wide rather than per node.
//! Any node accepts publishes; the store tells the owner of new deliveries (LISTEN/NOTIFY) and the
//! owner's lane reads them, so a delivery is attempted by its owner only.
//!
//! Ownership moves without overlap while nodes are healthy: a subscription above this node's
//! share is handed over only once its lane has drained (attempts in flight finished and their
//! outcomes committed), and a node that cannot renew its leases for two thirds of a lease stops
//! its lanes before anyone else may take them. A node that dies stops renewing; once its leases
//! run out the other nodes claim its subscriptions and read their pending deliveries from the
//! store. Nothing acknowledged is lost; attempts in flight on the dead node are made again (at
//! least once).
//!
//! Changes made on another node (buses, subscriptions, archives, sources, connections) arrive
//! through the store's change feed, with a full comparison every second as a safety net against a
//! missed notification; both go through [`App::reconcile`], as does a claim that finds a
//! subscription it does not know yet.
//!
//! With a single-node store (`Store::cluster` is `None`) none of this runs: the node owns all.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_store::{Change, DocumentKind, StoreError, SubscriptionRecord};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{App, ServerError};

/// How often a node compares its catalog with the store even without a notification.
const RESYNC: Duration = Duration::from_secs(1);

/// This node's part in a cluster.
pub(crate) struct Cluster {
    /// Names this node in leases; unique per running process (`--node-id`).
    pub(crate) node_id: String,
    /// How long a claim on a subscription lasts without renewal: how long a dead node's
    /// subscriptions wait before another node delivers them.
    pub(crate) lease_ms: u64,
    /// Wakes the ownership loop at once, e.g. when a subscription is created here.
    claim_now: Arc<tokio::sync::Notify>,
    /// When the last successful claim started: the leases it renewed last until then plus a
    /// lease, so this node must stop delivering before that if it cannot renew.
    renewed_at: Mutex<Option<Instant>>,
    /// Cancelled once this node's lanes have drained at shutdown: it claims and follows nothing
    /// more.
    stopped: CancellationToken,
    /// `updated_ms` of each connection as last loaded, so that an unchanged connection keeps
    /// its live state (cached OAuth tokens).
    connections: Mutex<HashMap<String, u64>>,
}

impl Cluster {
    pub(crate) fn new(node_id: String, lease_ms: u64) -> Cluster {
        Cluster {
            node_id,
            lease_ms,
            claim_now: Arc::new(tokio::sync::Notify::new()),
            renewed_at: Mutex::new(None),
            stopped: CancellationToken::new(),
            connections: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn claim_now(&self) {
        self.claim_now.notify_one();
    }

    /// Called once the lanes have drained at shutdown, just before the leases are released.
    pub(crate) fn stop(&self) {
        self.stopped.cancel();
    }

    /// Whether the leases may have run out: the last renewal is older than two thirds of a
    /// lease (a third is left for clocks and for stopping lanes).
    fn lease_in_doubt(&self) -> bool {
        let renewed_at = *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner());
        renewed_at.is_none_or(|at| at.elapsed() > Duration::from_millis(self.lease_ms * 2 / 3))
    }
}

impl App {
    /// Starts this node's ownership and change-following loops; they end at [`Cluster::stop`].
    pub(crate) fn join_cluster(self: &Arc<Self>) {
        let (Some(cluster), Some(mut changes)) = (
            self.cluster(),
            self.store().cluster().map(|shared| shared.changes()),
        ) else {
            return;
        };
        let renew = Duration::from_millis((cluster.lease_ms / 3).max(1));
        let wake = Arc::clone(&cluster.claim_now);
        let stopped = cluster.stopped.clone();
        let weak = Arc::downgrade(self);
        // Renewal goes on during shutdown, while lanes drain, until `Cluster::stop`.
        self.tasks().spawn(async move {
            loop {
                let Some(app) = weak.upgrade() else { break };
                let Some(cluster) = app.cluster() else { break };
                if cluster.stopped.is_cancelled() {
                    break;
                }
                // A store that hangs must not hold shutdown: `Cluster::stop` cuts a claim short
                // (the leases it may have taken expire on their own).
                let Some(claimed) = stopped.run_until_cancelled(app.claim()).await else {
                    break;
                };
                if let Err(error) = claimed {
                    tracing::warn!(%error, "cannot renew subscription leases; will try again");
                    if cluster.lease_in_doubt() && !app.dispatcher().running().is_empty() {
                        tracing::error!(
                            "subscription leases not renewed for two thirds of --lease-ms: stopping this node's deliveries until they are"
                        );
                        for subscription in app.dispatcher().running() {
                            app.dispatcher().abandon(subscription);
                        }
                    }
                }
                drop(app);
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(renew) => {}
                    () = stopped.cancelled() => {}
                }
            }
        });
        let stopped = cluster.stopped.clone();
        let weak = Arc::downgrade(self);
        self.tasks().spawn(async move {
            let mut resync = tokio::time::interval(RESYNC);
            loop {
                // `None`: the periodic comparison, not a notification.
                let change = tokio::select! {
                    change = changes.recv() => Some(change),
                    _ = resync.tick() => None,
                    () = stopped.cancelled() => break,
                };
                let Some(app) = weak.upgrade() else { break };
                let outcome = match change {
                    None => app.follow_store_until(&stopped).await,
                    Some(Ok(Change::Pending(subscriptions))) => {
                        for subscription in subscriptions {
                            app.dispatcher().reload(subscription);
                        }
                        Ok(())
                    }
                    // Also sent when a node releases or hands over leases: claim now, not at
                    // the next renewal.
                    Some(Ok(Change::Catalog)) => {
                        if let Some(cluster) = app.cluster() {
                            cluster.claim_now();
                        }
                        app.follow_store_until(&stopped).await
                    }
                    // Missed notifications: catch up on everything.
                    Some(Err(RecvError::Lagged(_))) => {
                        for subscription in app.dispatcher().running() {
                            app.dispatcher().reload(subscription);
                        }
                        app.follow_store_until(&stopped).await
                    }
                    Some(Err(RecvError::Closed)) => break,
                };
                if let Err(error) = outcome {
                    tracing::warn!(%error, "cannot follow the store's changes; will try again");
                }
            }
        });
    }

    /// Claims and renews this node's subscriptions, runs lanes for exactly those, and hands
    /// over the others once their lanes have drained.
    async fn claim(self: &Arc<Self>) -> Result<(), ServerError> {
        let (Some(cluster), Some(shared)) = (self.cluster(), self.store().cluster()) else {
            return Ok(());
        };
        let started = Instant::now();
        let owned: HashSet<u64> = shared
            .claim_subscriptions(&cluster.node_id, cluster.lease_ms)
            .await?
            .into_iter()
            .collect();
        *cluster.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(started);
        self.own_exactly(owned).await
    }

    /// Runs lanes for exactly `owned`: hands the others over, starts the gained ones (taking in
    /// the catalog first when one was created on another node a moment ago). Called by
    /// [`App::own_exactly`], under the change lock.
    pub(crate) async fn run_lanes_for(
        self: &Arc<Self>,
        owned: HashSet<u64>,
    ) -> Result<(), StoreError> {
        let running: HashSet<u64> = self.dispatcher().running().into_iter().collect();
        for leaving in running.difference(&owned) {
            self.hand_over(*leaving);
        }
        let gained: Vec<u64> = owned.difference(&running).copied().collect();
        let mut known = self.subscriptions_by_id();
        if gained.iter().any(|id| !known.contains_key(id)) {
            self.reconcile().await?;
            known = self.subscriptions_by_id();
        }
        for id in gained {
            if let Some(record) = known.remove(&id) {
                tracing::info!(bus = %record.bus, subscription = %record.name, "delivering for it");
                self.dispatcher().upsert(record);
            }
        }
        Ok(())
    }

    /// Drains the lane of a subscription above this node's share, then gives up its lease.
    fn hand_over(self: &Arc<Self>, subscription: u64) {
        let Some(drained) = self.dispatcher().hand_over(subscription) else {
            return;
        };
        let app = Arc::clone(self);
        self.tasks().spawn(async move {
            let _ = drained.await;
            let (Some(cluster), Some(shared)) = (app.cluster(), app.store().cluster()) else {
                return;
            };
            match shared
                .hand_over_subscription(&cluster.node_id, subscription)
                .await
            {
                Ok(()) => tracing::info!(subscription, "handed over to another node"),
                // The lease then expires on its own, a lease later.
                Err(error) => tracing::warn!(subscription, %error, "cannot hand over a lease"),
            }
        });
    }

    fn subscriptions_by_id(&self) -> HashMap<u64, Arc<SubscriptionRecord>> {
        self.catalog()
            .all_subscriptions()
            .into_iter()
            .map(|s| (s.id, s))
            .collect()
    }

    /// Every node counts what it publishes and reports every subscription's backlog, owned or
    /// not, so that `/metrics` reads the same whichever node a scrape reaches.
    pub(crate) fn register_metrics(&self) {
        for bus in self.catalog().buses() {
            self.metrics().bus(&bus.record.name);
            for s in bus.subscriptions() {
                self.metrics().subscription(s.id, &s.bus, &s.name);
            }
        }
    }

    /// Takes in the catalog as the store holds it, and makes this node's lanes follow: a
    /// changed subscription's lane gets its new definition, a deleted one's stops. The caller
    /// holds the change lock.
    pub(crate) async fn reconcile(&self) -> Result<(), StoreError> {
        let before = self.subscriptions_by_id();
        if !self.catalog().refresh(self.store().as_ref()).await? {
            return Ok(());
        }
        let known = self.subscriptions_by_id();
        self.register_metrics();
        for id in before.keys().filter(|id| !known.contains_key(id)) {
            self.dispatcher().remove(*id);
        }
        for id in self.dispatcher().running() {
            if let Some(record) = known.get(&id)
                && before
                    .get(&id)
                    .is_none_or(|old| old.updated_ms != record.updated_ms)
            {
                self.dispatcher().upsert(Arc::clone(record));
            }
        }
        // A subscription created elsewhere may be this node's to take.
        if let Some(cluster) = self.cluster()
            && known.keys().any(|id| !before.contains_key(id))
        {
            cluster.claim_now();
        }
        Ok(())
    }

    /// [`App::follow_store`], cut short by `Cluster::stop`, so that a store that hangs cannot
    /// hold shutdown; what is not taken in then does not matter any more.
    async fn follow_store_until(&self, stopped: &CancellationToken) -> Result<(), ServerError> {
        stopped
            .run_until_cancelled(self.follow_store())
            .await
            .unwrap_or(Ok(()))
    }

    /// Takes in what other nodes changed: the catalog (and the lanes of changed or deleted
    /// subscriptions), sources and connections.
    async fn follow_store(&self) -> Result<(), ServerError> {
        self.take_in_changes().await?;
        self.sources()
            .refresh(self.store().as_ref(), self.keyring())
            .await?;
        self.follow_connections().await?;
        Ok(())
    }

    async fn follow_connections(&self) -> Result<(), StoreError> {
        let Some(cluster) = self.cluster() else {
            return Ok(());
        };
        let stored = self
            .store()
            .list_documents(DocumentKind::Connection)
            .await?;
        let mut seen = cluster
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let names: HashSet<&str> = stored.iter().map(|d| d.name.as_str()).collect();
        for name in self.dispatcher().connections().names() {
            if !names.contains(name.as_str()) {
                self.dispatcher().connections().remove(&name);
                seen.remove(&name);
            }
        }
        for record in &stored {
            if seen.get(&record.name) == Some(&record.updated_ms)
                && self.dispatcher().connections().get(&record.name).is_some()
            {
                continue;
            }
            if crate::app::load_connection(self.dispatcher(), record) {
                seen.insert(record.name.clone(), record.updated_ms);
            }
        }
        Ok(())
    }

    /// Lets the lane of a subscription that was created or changed here follow: a running lane
    /// takes the new definition at once; a new subscription is claimed by whichever node gets to
    /// it first (this one is woken now, the others by the store's notification).
    pub(crate) fn deliver_for(&self, record: Arc<SubscriptionRecord>) {
        match self.cluster() {
            None => self.dispatcher().upsert(record),
            Some(cluster) => {
                self.metrics()
                    .subscription(record.id, &record.bus, &record.name);
                if self.dispatcher().running().contains(&record.id) {
                    self.dispatcher().upsert(record);
                } else {
                    cluster.claim_now();
                }
            }
        }
    }
}
