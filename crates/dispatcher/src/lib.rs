//! The dispatcher: pushes every pending delivery to its subscription's destination, or leases
//! it to the consumers of a pull subscription (module `pull`).
//!
//! Each subscription has its own lane (module `lane`): a task with its own queue, concurrency
//! limit and timers, so that a slow or dead endpoint only ever slows its own subscription. New
//! deliveries arrive in memory from the publish path ([`Dispatcher::hand_off`]) with no polling
//! delay; everything else (deliveries pending at start, redriven dead letters, a backlog too
//! large to hold in memory) is read from the store by the lane itself.
//!
//! Owns: the HTTP client, the lanes and their in-memory queues, the retry decision (module
//! `policy`), per-subscription flow control (rate limit, circuit breaker), the destination
//! address policy, connections with their OAuth tokens, and the optional OTLP export of attempt
//! spans.
//! Must not: acknowledge anything to publishers, or forget a delivery without the store knowing:
//! every attempt's outcome is committed before the lane lets go of the delivery.
//!
//! Invariant: the store is the truth. A lane's memory is a cache of the subscription's pending
//! deliveries; losing it (crash, shutdown) loses no delivery, only repeats some attempts.

mod address;
mod attempt;
mod clock;
mod connections;
mod error;
mod flow;
mod lane;
mod otlp;
mod outbound;
mod policy;
mod pull;
mod queue;
mod runner;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_metrics::Metrics;
use switchyard_model::{Activity, DeliveryMode};
use switchyard_secrets::Keyring;
use switchyard_store::{PendingDelivery, Store, SubscriptionRecord};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use address::{AddressPolicy, AddressRefused, DEFAULT_DENY};
pub use attempt::IdentitySigner;
pub use connections::{Connections, LiveConnection};
pub use error::DispatchError;
pub(crate) use error::{DeliveryError, ErrorKind};
pub use flow::CircuitState;
pub use lane::LaneGauges;
use otlp::SpanExporter;
pub use pull::{AckId, LeaseChange};

/// Below the usual 1,024 open-file limit, with room left for the listener, the store and the
/// pool's idle connections.
pub const DEFAULT_MAX_OUTBOUND_CONNECTIONS: usize = 256;

/// Activity records buffered for slow tails before they are told they lagged.
const ACTIVITY_BUFFER: usize = 4_096;

/// Tuning of the dispatcher; the defaults suit one node.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Deliveries a lane keeps in memory; past this, it leaves the rest in the store and reads
    /// them back as it drains, so a long outage of one endpoint cannot exhaust memory.
    pub lane_capacity: usize,
    /// How often a lane with deliveries left in the store looks for due ones.
    pub backlog_poll: Duration,
    /// Which addresses deliveries may go to.
    pub address_policy: Arc<AddressPolicy>,
    /// Signs identity tokens for destinations that ask for them.
    pub identity: Option<Arc<IdentitySigner>>,
    /// Where to export attempt spans over OTLP/HTTP; `None` (the default) exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Outbound HTTP connections every lane together may hold at once (see module `outbound`).
    pub max_outbound_connections: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        DispatcherConfig {
            lane_capacity: 10_000,
            backlog_poll: Duration::from_millis(500),
            address_policy: Arc::new(AddressPolicy::default()),
            identity: None,
            otlp_endpoint: None,
            max_outbound_connections: DEFAULT_MAX_OUTBOUND_CONNECTIONS,
        }
    }
}

/// Handle to the running dispatcher; clone it freely.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// What every attempt of every lane shares: the HTTP client, keys, connections, policy.
    context: Arc<attempt::Context>,
    config: DispatcherConfig,
    metrics: Arc<Metrics>,
    lanes: Mutex<HashMap<u64, LaneHandle>>,
    /// Cancelled once at shutdown; lanes stop starting attempts and drain those in flight.
    draining: CancellationToken,
    /// Cancelled once every lane has drained: what serves the lanes (the span export) stops.
    drained: CancellationToken,
    /// Every task the dispatcher starts (lanes, also those handed over or aborted, and the span
    /// export), so that shutdown returns only once none is left.
    tasks: TaskTracker,
    /// Live feed of published events and finished attempts, for `switchyard tail`.
    activity: broadcast::Sender<Activity>,
    /// The pull subscriptions this dispatcher runs: they have no lane, but a node owns them as
    /// it owns a lane's (in a cluster, for the work only one node does for a subscription).
    pulls: Mutex<std::collections::HashSet<u64>>,
    /// Per pull subscription, the wake-up of pulls waiting for deliveries (module `pull`).
    pull_waiters: Mutex<HashMap<u64, Arc<tokio::sync::Notify>>>,
    /// Per pull subscription with a stream that counts its leases, where acknowledgements and
    /// deadline changes are told (module `pull`).
    lease_watchers: Mutex<HashMap<u64, broadcast::Sender<pull::LeaseChange>>>,
}

struct LaneHandle {
    inbox: mpsc::UnboundedSender<lane::Message>,
    gauges: Arc<LaneGauges>,
    task: JoinHandle<()>,
}

impl Dispatcher {
    /// Builds the HTTP client and, with `config.otlp_endpoint`, starts the span export; no lane
    /// runs until [`Dispatcher::upsert`] starts one per subscription. Fails only when the HTTP
    /// client cannot be built.
    pub fn new(
        store: Arc<dyn Store>,
        config: DispatcherConfig,
        metrics: Arc<Metrics>,
        keyring: Arc<Keyring>,
    ) -> Result<Dispatcher, DispatchError> {
        // Ignored when already installed (several dispatchers in one test process).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = http_client(&config.address_policy, None)
            .map_err(|e| DispatchError::Client(switchyard_model::error_chain(&e)))?;
        let (activity, _) = broadcast::channel(ACTIVITY_BUFFER);
        let tasks = TaskTracker::new();
        let drained = CancellationToken::new();
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                store,
                context: Arc::new(attempt::Context {
                    keyring,
                    connections: Connections::default(),
                    outbound: outbound::Outbound::new(config.max_outbound_connections),
                    policy: Arc::clone(&config.address_policy),
                    identity: config.identity.clone(),
                    spans: config
                        .otlp_endpoint
                        .as_deref()
                        .map(|e| SpanExporter::start(e, client.clone(), &tasks, drained.clone())),
                    client,
                }),
                config,
                metrics,
                activity,
                lanes: Mutex::new(HashMap::new()),
                pulls: Mutex::new(std::collections::HashSet::new()),
                pull_waiters: Mutex::new(HashMap::new()),
                lease_watchers: Mutex::new(HashMap::new()),
                draining: CancellationToken::new(),
                drained,
                tasks,
            }),
        })
    }

    /// Refuses a connection whose client certificate cannot be used (its key does not belong to
    /// it, say) now, rather than at its first attempt.
    pub fn check_client_certificate(
        &self,
        connection: &switchyard_destination::ResolvedConnection,
    ) -> Result<(), DispatchError> {
        match connection.client_identity() {
            Some(pem) => connections::identity_client(pem, &self.inner.context.policy).map(drop),
            None => Ok(()),
        }
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LaneHandle>> {
        // A panic while holding this lock leaves the map itself intact; keep going.
        self.inner
            .lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts the lane of a subscription, or gives a running lane its new definition. A pull
    /// subscription has no lane (its consumers pull: module `pull`); one that was push loses
    /// its lane, whose deliveries stay pending for them.
    pub fn upsert(&self, subscription: Arc<SubscriptionRecord>) {
        if self.inner.draining.is_cancelled() {
            return;
        }
        let mut lanes = self.lanes();
        if subscription.spec.delivery == DeliveryMode::Pull {
            if let Some(lane) = lanes.remove(&subscription.id) {
                lane.task.abort();
            }
            self.pulls().insert(subscription.id);
            return;
        }
        self.pulls().remove(&subscription.id);
        if let Some(lane) = lanes.get(&subscription.id)
            && lane
                .inbox
                .send(lane::Message::Update(Arc::clone(&subscription)))
                .is_ok()
        {
            return;
        }
        let (inbox, messages) = mpsc::unbounded_channel();
        let gauges = Arc::new(LaneGauges::default());
        let task = self.inner.tasks.spawn(
            lane::Lane::new(
                subscription.clone(),
                Arc::clone(&self.inner.store),
                Arc::clone(&self.inner.context),
                self.inner.config.clone(),
                Arc::clone(&gauges),
                self.inner.metrics.subscription(
                    subscription.id,
                    &subscription.bus,
                    &subscription.name,
                ),
                self.inner.activity.clone(),
            )
            .run(messages, self.inner.draining.clone()),
        );
        lanes.insert(
            subscription.id,
            LaneHandle {
                inbox,
                gauges,
                task,
            },
        );
    }

    /// Stops the lane of a deleted subscription; attempts in flight are abandoned (their
    /// deliveries are gone from the store with the subscription).
    pub fn remove(&self, subscription: u64) {
        if let Some(lane) = self.lanes().remove(&subscription) {
            lane.task.abort();
        }
        self.pulls().remove(&subscription);
        self.inner.metrics.remove_subscription(subscription);
    }

    /// Stops the lane of a subscription that this node gives to another: it starts nothing new,
    /// lets its attempts in flight finish and commits their outcomes. The returned task ends
    /// when it has; only then may another node take the subscription, or attempts would repeat.
    pub fn hand_over(&self, subscription: u64) -> Option<JoinHandle<()>> {
        if self.pulls().remove(&subscription) {
            // Nothing in flight: a pull subscription's leases are the store's.
            return Some(self.inner.tasks.spawn(async {}));
        }
        let lane = self.lanes().remove(&subscription)?;
        let _ = lane.inbox.send(lane::Message::Stop);
        Some(lane.task)
    }

    /// Stops the lane of a subscription at once, for a node that may no longer own it (its lease
    /// could not be renewed): attempts in flight are dropped without an outcome, their
    /// deliveries stay pending in the store and the next owner makes them again (at least once).
    pub fn abandon(&self, subscription: u64) {
        if let Some(lane) = self.lanes().remove(&subscription) {
            lane.task.abort();
        }
        self.pulls().remove(&subscription);
    }

    /// Ids of the subscriptions this dispatcher runs: a lane for each push one, and the pull
    /// ones it was given.
    pub fn running(&self) -> Vec<u64> {
        let mut running: Vec<u64> = self.lanes().keys().copied().collect();
        running.extend(self.pulls().iter().copied());
        running
    }

    fn pulls(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u64>> {
        self.inner
            .pulls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives freshly committed deliveries to their lanes. Never blocks: a lane that is full
    /// leaves them in the store and reads them later.
    pub fn hand_off(&self, deliveries: Vec<PendingDelivery>) {
        let lanes = self.lanes();
        let mut by_lane: HashMap<u64, Vec<PendingDelivery>> = HashMap::new();
        for delivery in deliveries {
            by_lane
                .entry(delivery.subscription)
                .or_default()
                .push(delivery);
        }
        let mut pulled = Vec::new();
        for (subscription, batch) in by_lane {
            match lanes.get(&subscription) {
                Some(lane) => {
                    let _ = lane.inbox.send(lane::Message::Deliveries(batch));
                }
                None => pulled.push(subscription),
            }
        }
        drop(lanes);
        self.wake_pulls(pulled);
    }

    /// Tells a lane that the store has deliveries it has not seen (e.g. redriven dead letters).
    pub fn reload(&self, subscription: u64) {
        if let Some(lane) = self.lanes().get(&subscription) {
            let _ = lane.inbox.send(lane::Message::Reload);
        }
    }

    /// The activity feed: lanes send finished attempts, the publish path sends published events.
    /// Senders check `receiver_count()` first, so nobody pays for it while nobody tails.
    pub fn activity(&self) -> &broadcast::Sender<Activity> {
        &self.inner.activity
    }

    /// Connections by name; the server puts them here as they are created, changed and deleted.
    pub fn connections(&self) -> &Connections {
        &self.inner.context.connections
    }

    /// Live figures of a lane, for stats; `None` when the subscription has no lane.
    pub fn gauges(&self, subscription: u64) -> Option<Arc<LaneGauges>> {
        self.lanes()
            .get(&subscription)
            .map(|lane| Arc::clone(&lane.gauges))
    }

    /// Stops starting attempts and waits until every attempt in flight has finished and its
    /// outcome is committed, then until every task of the dispatcher has ended. Deliveries not
    /// attempted stay pending in the store.
    pub async fn shutdown(&self) {
        self.inner.draining.cancel();
        let lanes: Vec<(u64, JoinHandle<()>)> = self
            .lanes()
            .drain()
            .map(|(subscription, lane)| (subscription, lane.task))
            .collect();
        for (subscription, task) in lanes {
            if let Err(error) = task.await
                && error.is_panic()
            {
                tracing::error!(subscription, %error, "a lane panicked; its deliveries stay pending in the store");
            }
        }
        self.inner.drained.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

/// The HTTP client of deliveries, token fetches and span exports; one per client certificate,
/// all with these settings.
fn http_client(
    policy: &Arc<AddressPolicy>,
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client, reqwest::Error> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place outbound clients are built"
    )]
    let mut builder = reqwest::Client::builder()
        // A 3xx is an outcome the subscriber must see, not something to follow.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(address::PolicyResolver {
            policy: Arc::clone(policy),
        }));
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build()
}
