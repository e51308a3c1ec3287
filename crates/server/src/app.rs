//! The server's state, [`App`], from start to shutdown: what every request handler, background
//! task and operation shares.
//!
//! Owns building the state at start (the store's buses, subscriptions, sources and connections
//! taken into memory, the dispatcher's lanes started, replays resumed, the cluster joined), and
//! [`run`]: serving until the shutdown token is cancelled, then stopping in order (stop accepting,
//! drain lanes, release leases, wait for every task; the store closes when the last `App` goes).
//!
//! Must not: change state once started. Fields are private and read through accessors; every
//! change goes through the operations in `ops`, which keep the store and memory in step.
//!
//! Invariant: every task the server starts is spawned on [`App::tasks`] and ends at shutdown, on
//! the shutdown token or on its own, so [`run`] returns only once none is left.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::serve::Listener;
use switchyard_destination::{IdentityKey, parse_connection_spec};
use switchyard_dispatcher::{
    AddressPolicy, Dispatcher, DispatcherConfig, IdentitySigner, LiveConnection,
};
use switchyard_metrics::Metrics;
use switchyard_model::AwsIdentity;
use switchyard_secrets::{Keyring, MasterKey, SecretRef};
use switchyard_store::{DocumentKind, DocumentRecord, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::ApiTokens;
use crate::catalog::Catalog;
use crate::cluster::Cluster;
use crate::cpu::CpuPool;
use crate::forwards::ForwardBudget;
use crate::http::HttpLimits;
use crate::replay::Replays;
use crate::sources::SourceRegistry;
use crate::stats::StatsHistory;
use crate::{ServerError, api, http};

/// How often the store's upkeep (collecting delivered events) runs.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(2);

/// Limits and credentials of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest event envelope accepted, in bytes.
    pub max_event_bytes: usize,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Bearer tokens accepted on `/v1` and `/metrics`, with their scopes; empty means the API
    /// is open (loopback only).
    pub api_tokens: ApiTokens,
    /// A publish whose `switchyard-hops` is already this high is refused: the loop guard.
    pub max_hops: u32,
    /// Forwarded publishes (hops >= 1) accepted per original event, counted by trace id: the
    /// loop guard that keeps a loop's fan-out linear (see `forwards`).
    pub max_forwards: u32,
    /// Which addresses deliveries may go to; checked at subscription time and at every attempt.
    pub address_policy: Arc<AddressPolicy>,
    /// switchyard's own base URL as receivers reach it: the issuer of identity tokens, under
    /// which they find `/.well-known/jwks.json`.
    pub public_url: String,
    /// OTLP/HTTP collector for attempt spans; `None` exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Deliveries a subscription's lane holds in memory (the rest wait in the store).
    pub lane_capacity: usize,
    /// This node's name in subscription leases, when the store is shared by several nodes.
    pub node_id: String,
    /// How long a node's claim on a subscription lasts without renewal.
    pub lease_ms: u64,
    /// Outbound HTTP connections all subscriptions together may hold at once.
    pub max_outbound_connections: usize,
    /// Deadlines and caps of inbound connections.
    pub http: HttpLimits,
    /// The account and region of every envelope and of the EventBridge API's ARNs.
    pub aws: AwsIdentity,
    /// How long a minute of a `rate(…)` schedule lasts: shorter only in tests.
    pub schedule_minute_ms: u64,
}

impl ApiConfig {
    /// Where a delivery publishes into `bus` of this server: an EventBridge event bus target's
    /// URL, and the only audience under which the API takes its own identity tokens back.
    pub(crate) fn bus_events_url(&self, bus: &str) -> String {
        format!("{}/v1/buses/{bus}/events", self.public_url)
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_event_bytes: 1 << 20,
            max_request_bytes: 16 << 20,
            api_tokens: ApiTokens::default(),
            max_hops: 8,
            max_forwards: 100,
            address_policy: Arc::new(AddressPolicy::default()),
            public_url: "http://127.0.0.1:8700".into(),
            otlp_endpoint: None,
            lane_capacity: DispatcherConfig::default().lane_capacity,
            node_id: String::from("node"),
            lease_ms: 10_000,
            max_outbound_connections: switchyard_dispatcher::DEFAULT_MAX_OUTBOUND_CONNECTIONS,
            http: HttpLimits::default(),
            aws: AwsIdentity::default(),
            schedule_minute_ms: 60_000,
        }
    }
}

/// Everything a request handler, a background task and an operation share.
pub struct App {
    /// The truth: every change is committed here before memory follows it.
    store: Arc<dyn Store>,
    /// The lanes that deliver what the store holds.
    dispatcher: Dispatcher,
    /// Buses with their compiled matchers: what the publish path reads on every request.
    catalog: Catalog,
    config: ApiConfig,
    metrics: Arc<Metrics>,
    /// Webhook sources, compiled with their secrets.
    sources: SourceRegistry,
    /// Seals secrets before they are stored and opens them when they are loaded; reads only
    /// the `file:` secrets the operator allowed.
    keyring: Arc<Keyring>,
    /// Signs identity tokens; its public key is served at `/.well-known/jwks.json`.
    identity: Arc<IdentitySigner>,
    /// Replays running in this process, so that a cancel reaches their runner.
    replays: Replays,
    /// The last hour of every subscription's stats, for the overview and its charts.
    stats_history: StatsHistory,
    /// This node's part in a cluster; `None` alone on an embedded store.
    cluster: Option<Cluster>,
    /// Where large bodies are parsed and matched, away from the async workers.
    cpu: CpuPool,
    /// Forwards accepted per trace, for the loop guard.
    forwards: ForwardBudget,
    /// The address [`run`] serves on, once it does: deliveries to it are deliveries to this
    /// server, which the loop lint looks for.
    listen: OnceLock<SocketAddr>,
    /// Cancelled when shutdown begins: the listener stops accepting, long-lived answers (tails)
    /// end, and so do the background tasks that only produce (replays, upkeep).
    shutdown: CancellationToken,
    /// Every task the server spawns, so that shutdown can wait for all of them.
    tasks: TaskTracker,
}

impl App {
    /// Loads buses and subscriptions from the store and starts a lane for every subscription.
    /// The server stops once `shutdown` is cancelled; every task it starts is spawned on
    /// `tasks`, which [`run`] closes and waits for.
    pub async fn start(
        store: Arc<dyn Store>,
        config: ApiConfig,
        keyring: Keyring,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Arc<App>, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let keyring = Arc::new(keyring);
        let identity = Arc::new(IdentitySigner {
            key: identity_key(store.as_ref(), keyring.master_key()).await?,
            issuer: config.public_url.clone(),
        });
        let dispatcher = Dispatcher::new(
            Arc::clone(&store),
            DispatcherConfig {
                address_policy: Arc::clone(&config.address_policy),
                identity: Some(Arc::clone(&identity)),
                otlp_endpoint: config.otlp_endpoint.clone(),
                lane_capacity: config.lane_capacity.max(2),
                max_outbound_connections: config.max_outbound_connections,
                ..DispatcherConfig::default()
            },
            Arc::clone(&metrics),
            Arc::clone(&keyring),
        )?;
        let catalog = Catalog::load(store.as_ref()).await?;
        // Alone on its store, a node delivers for every subscription; in a cluster, for those
        // it claims (see `cluster`).
        let cluster = store
            .cluster()
            .is_some()
            .then(|| Cluster::new(config.node_id.clone(), config.lease_ms));
        if cluster.is_none() {
            for subscription in catalog.all_subscriptions() {
                dispatcher.upsert(subscription);
            }
        }
        let sources = SourceRegistry::load(store.as_ref(), &keyring).await?;
        for record in store.list_documents(DocumentKind::Connection).await? {
            load_connection(&dispatcher, &record);
        }
        let app = Arc::new(App {
            metrics,
            store,
            dispatcher,
            catalog,
            forwards: ForwardBudget::new(config.max_forwards),
            config,
            sources,
            keyring,
            identity,
            replays: Replays::default(),
            stats_history: StatsHistory::default(),
            cluster,
            cpu: CpuPool::new(),
            listen: OnceLock::new(),
            shutdown,
            tasks,
        });
        app.register_metrics();
        app.join_cluster();
        app.resume_replays().await?;
        app.keep_up_store();
        crate::schedule::start(&app);
        crate::dead_letter_bus::start(&app);
        crate::stats::start(&app);
        Ok(app)
    }

    /// Runs the store's upkeep every [`MAINTENANCE_INTERVAL`] until shutdown; an upkeep under
    /// way is finished, not cut off.
    fn keep_up_store(self: &Arc<Self>) {
        let upkeep = Arc::downgrade(self);
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => break,
                }
                let Some(app) = upkeep.upgrade() else { break };
                if let Err(error) = app.store.maintain().await {
                    tracing::warn!(%error, "store upkeep failed; will try again");
                }
            }
        });
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn config(&self) -> &ApiConfig {
        &self.config
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn sources(&self) -> &SourceRegistry {
        &self.sources
    }

    pub(crate) fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    pub(crate) fn identity(&self) -> &IdentitySigner {
        &self.identity
    }

    pub(crate) fn replays(&self) -> &Replays {
        &self.replays
    }

    pub(crate) fn stats_history(&self) -> &StatsHistory {
        &self.stats_history
    }

    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    pub(crate) fn cpu(&self) -> &CpuPool {
        &self.cpu
    }

    pub(crate) fn forwards(&self) -> &ForwardBudget {
        &self.forwards
    }

    pub(crate) fn listen(&self) -> Option<SocketAddr> {
        self.listen.get().copied()
    }

    pub(crate) fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }
}

/// Makes a stored connection live; one that no longer parses is left out with an error in the
/// log rather than stopping the server. Returns whether it was loaded.
pub(crate) fn load_connection(dispatcher: &Dispatcher, record: &DocumentRecord) -> bool {
    match parse_connection_spec(&record.body) {
        Ok(spec) => {
            dispatcher
                .connections()
                .insert(&record.name, LiveConnection::new(spec));
            true
        }
        Err(error) => {
            tracing::error!(connection = %record.name, %error, "connection not loaded");
            false
        }
    }
}

/// The identity-token signing key: stored sealed in the store, so every node signs with the same
/// key, and created on first start.
async fn identity_key(
    store: &dyn Store,
    master_key: &MasterKey,
) -> Result<IdentityKey, ServerError> {
    const NAME: &str = "identity";
    let existing = store
        .list_documents(DocumentKind::Key)
        .await?
        .into_iter()
        .find(|d| d.name == NAME);
    let stored = match existing {
        Some(document) => document,
        None => {
            let (_, pkcs8) = IdentityKey::generate().map_err(|e| {
                ServerError::Invalid(format!("cannot create the identity key: {e}"))
            })?;
            // Nodes starting together on a new database each generate one; the first stored
            // is the one they all sign with.
            store
                .create_document(DocumentKind::Key, NAME, master_key.seal(&pkcs8)?)
                .await?
        }
    };
    // The first sealed value a node opens: a node given another master key than the one the
    // store's secrets were sealed with stops here, before it could fail every delivery.
    let SecretRef::Sealed(sealed) = SecretRef::parse(&stored.body)
        .map_err(|e| ServerError::Invalid(format!("stored identity key: {e}")))?
    else {
        return Err(ServerError::Invalid(
            "the stored identity key is not sealed".into(),
        ));
    };
    let secret = master_key.open(&sealed).map_err(|e| {
            ServerError::Invalid(format!(
                "the store's secrets were sealed with another master key ({e}); give this node the same --master-key-file as the others"
            ))
        })?;
    IdentityKey::from_pkcs8(&secret)
        .map_err(|e| ServerError::Invalid(format!("stored identity key: {e}")))
}

/// Serves the API on `listener` (a `TcpListener`, or a [`crate::tls::TlsListener`]) until the
/// shutdown token given to [`App::start`] is cancelled, then stops taking requests, lets requests
/// in progress finish, lets attempts in flight finish and commit their outcomes, hands this
/// node's subscriptions to the others, and waits for every task the server started.
pub async fn run<L: Listener<Addr = SocketAddr>>(
    listener: L,
    app: Arc<App>,
) -> std::io::Result<()> {
    if let Ok(local) = listener.local_addr() {
        let _ = app.listen.set(local);
    }
    let router = api::router(Arc::clone(&app));
    http::serve(
        listener,
        router,
        app.config.http.clone(),
        app.shutdown.clone(),
    )
    .await;
    app.dispatcher.shutdown().await;
    // Outcomes are committed (leases were renewed meanwhile): hand this node's subscriptions to
    // the others now rather than when the leases run out.
    if let (Some(cluster), Some(shared)) = (&app.cluster, app.store.cluster()) {
        cluster.stop();
        if let Err(error) = shared.release_subscriptions(&cluster.node_id).await {
            tracing::warn!(%error, "cannot release subscription leases; they expire on their own");
        }
    }
    app.tasks.close();
    app.tasks.wait().await;
    Ok(())
}
