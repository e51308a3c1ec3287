//! The server: the REST API under `/v1`, webhook sources under `/hooks`, health, metrics, and the
//! publish path.
//!
//! Owns the [`catalog`] (buses with their compiled matchers, kept in memory for the hot path),
//! the [`publish`] path shared by the API and [`sources`], the HTTP routes, API authentication,
//! the master key's use for sealing secrets, the declarative [`config`] file, the loop guard's
//! forward budget, and the [`lint`] that finds delivery loops before they run. It borrows the
//! store and the dispatcher: a publish is validated and matched here, made durable by the store,
//! and only then answered and handed to the dispatcher. Changes (buses, subscriptions, sources,
//! connections) go to the store first and then to memory, on a task of their own so that a client
//! hanging up cannot leave one half applied.
//!
//! Must not: answer a publisher before the store has committed, or hold a lock across an
//! `.await` on the publish path.
//!
//! As in mini-redis, [`run`] takes a bound listener and a shutdown future, so tests and the
//! binary control both; for HTTPS, the listener is a [`tls::TlsListener`] around the TCP one.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod cluster;
pub mod config;
mod cpu;
mod error;
mod forwards;
pub mod http;
pub mod lint;
mod ops;
pub mod publish;
pub mod replay;
pub mod sources;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use switchyard_destination::IdentityKey;
use switchyard_destination::parse_connection_spec;
use switchyard_dispatcher::{
    AddressPolicy, Dispatcher, DispatcherConfig, IdentitySigner, LiveConnection,
};
use switchyard_metrics::Metrics;
use switchyard_secrets::SecretRef;
use switchyard_secrets::{Keyring, MasterKey};
use switchyard_store::{DocumentKind, DocumentRecord, Store};

pub use catalog::Catalog;
pub use config::{ConfigFile, ServerSettings};
pub use error::ServerError;
pub use sources::SourceRegistry;

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
    pub api_tokens: auth::ApiTokens,
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
    pub http: http::HttpLimits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_event_bytes: 1 << 20,
            max_request_bytes: 16 << 20,
            api_tokens: auth::ApiTokens::default(),
            max_hops: 8,
            max_forwards: 100,
            address_policy: Arc::new(AddressPolicy::default()),
            public_url: "http://127.0.0.1:8700".into(),
            otlp_endpoint: None,
            lane_capacity: DispatcherConfig::default().lane_capacity,
            node_id: String::from("node"),
            lease_ms: 10_000,
            max_outbound_connections: switchyard_dispatcher::DEFAULT_MAX_OUTBOUND_CONNECTIONS,
            http: http::HttpLimits::default(),
        }
    }
}

/// Everything a request handler needs, shared by all of them.
pub struct App {
    pub store: Arc<dyn Store>,
    pub dispatcher: Dispatcher,
    pub catalog: Catalog,
    pub config: ApiConfig,
    pub metrics: Arc<Metrics>,
    /// Webhook sources, compiled with their secrets.
    pub sources: SourceRegistry,
    /// Seals secrets before they are stored and opens them when they are loaded; reads only
    /// the `file:` secrets the operator allowed.
    pub keyring: Arc<Keyring>,
    /// Signs identity tokens; its public key is served at `/.well-known/jwks.json`.
    pub identity: Arc<IdentitySigner>,
    /// Set when shutdown begins; long-lived answers (tails) end on it.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Replays running in this process, so that a cancel reaches their runner.
    replays: replay::Replays,
    /// This node's part in a cluster; `None` alone on an embedded store.
    pub cluster: Option<cluster::Cluster>,
    /// Where large bodies are parsed and matched, away from the async workers.
    pub(crate) cpu: cpu::CpuPool,
    /// Forwards accepted per trace, for the loop guard.
    pub(crate) forwards: forwards::ForwardBudget,
    /// The address [`run`] serves on, once it does: deliveries to it are deliveries to this
    /// server, which the loop lint looks for.
    pub(crate) listen: std::sync::OnceLock<std::net::SocketAddr>,
}

impl App {
    /// Loads buses and subscriptions from the store and starts a lane for every subscription.
    pub async fn start(
        store: Arc<dyn Store>,
        config: ApiConfig,
        keyring: Keyring,
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
            .then(|| cluster::Cluster::new(config.node_id.clone(), config.lease_ms));
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
            forwards: forwards::ForwardBudget::new(config.max_forwards),
            config,
            sources,
            keyring,
            identity,
            closing: tokio::sync::watch::channel(false).0,
            replays: replay::Replays::default(),
            cluster,
            cpu: cpu::CpuPool::new(),
            listen: std::sync::OnceLock::new(),
        });
        app.register_metrics();
        app.join_cluster();
        app.resume_replays().await?;
        let upkeep = Arc::downgrade(&app);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MAINTENANCE_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(app) = upkeep.upgrade() else { break };
                if let Err(error) = app.store.maintain().await {
                    tracing::warn!(%error, "store upkeep failed; will try again");
                }
            }
        });
        Ok(app)
    }
}

/// Makes a stored connection live; one that no longer parses is left out with an error in the
/// log rather than stopping the server. Returns whether it was loaded.
fn load_connection(dispatcher: &Dispatcher, record: &DocumentRecord) -> bool {
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

/// Serves the API on `listener` (a `TcpListener`, or a [`tls::TlsListener`]) until `shutdown`
/// completes, then stops taking requests, lets requests in progress finish, and lets attempts in
/// flight finish and commit their outcomes.
pub async fn run<L: Listener<Addr = std::net::SocketAddr>>(
    listener: L,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(local) = listener.local_addr() {
        let _ = app.listen.set(local);
    }
    let router = api::router(Arc::clone(&app));
    let closing = Arc::clone(&app);
    let shutdown = async move {
        shutdown.await;
        // Streams that would otherwise never end (tails) end now, so the server can stop.
        closing.closing.send_replace(true);
    };
    http::serve(listener, router, app.config.http.clone(), shutdown).await;
    app.dispatcher.shutdown().await;
    // Outcomes are committed (leases were renewed meanwhile): hand this node's subscriptions to
    // the others now rather than when the leases run out.
    if let (Some(cluster), Some(shared)) = (&app.cluster, app.store.cluster()) {
        cluster.stop();
        if let Err(error) = shared.release_subscriptions(&cluster.node_id).await {
            tracing::warn!(%error, "cannot release subscription leases; they expire on their own");
        }
    }
    Ok(())
}
