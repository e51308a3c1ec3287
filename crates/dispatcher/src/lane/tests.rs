//! In-process tests of one lane: a real embedded store in a temporary directory, tokio's paused
//! time, and a scripted transport in place of HTTP (the HTTP attempt itself is covered by the
//! server's integration tests).
//!
//! Why this keeps virtual time exact: under paused time tokio moves the clock to the next timer
//! whenever every task waits. A test therefore never sleeps and never sets a timeout of its own,
//! and the transport answers in process (a socket would let the clock run on mid-attempt), so
//! the only timers are the lane's. Store reads run on tokio's blocking pool, which holds the
//! clock still; store writes run on the store's writer thread, and a timer the lane has set
//! meanwhile may then fire, but no sooner than it was set for, which is when it would fire
//! anyway. A watchdog on a real thread ends a test that hangs, as no virtual timeout can.

#![expect(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "the lane under test runs as a plain task, and the watchdog reports a hang in real time"
)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_metrics::{Metrics, SubscriptionMetrics};
use switchyard_model::{
    Activity, AttemptClass, AttemptOutcome, DeadReason, Event, TraceContext, now_ms,
    parse_subscription_spec,
};
use switchyard_secrets::{Keyring, MasterKey, SecretFiles};
use switchyard_store::{
    EmbeddedStore, NewEvent, PendingDelivery, PendingOrder, Store, StoreOptions, SubscriptionRecord,
};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Lane, LaneGauges, Message};
use crate::clock::{Clock, Now};
use crate::runner::{Sending, Transport};
use crate::{AddressPolicy, CircuitState, Connections, DeliveryError, DispatcherConfig, ErrorKind};

/// Real time after which a hung test ends the test process.
const WATCHDOG: Duration = Duration::from_secs(30);

/// Ends the process if the test holding it has not finished within [`WATCHDOG`].
struct Watchdog {
    /// Dropped with the test, which tells the watching thread it finished.
    _alive: std::sync::mpsc::Sender<()>,
}

fn watchdog() -> Watchdog {
    let (alive, watched) = std::sync::mpsc::channel::<()>();
    let test = std::thread::current().name().unwrap_or("?").to_string();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(WATCHDOG) {
            eprintln!("{test}: still running after {WATCHDOG:?} of real time; aborting");
            std::process::abort();
        }
    });
    Watchdog { _alive: alive }
}

/// Wall milliseconds that follow tokio's (paused) clock from the moment the test began.
struct PausedClock {
    origin_ms: u64,
    origin: Instant,
}

impl Clock for PausedClock {
    fn now(&self) -> Now {
        let at = Instant::now();
        Now {
            ms: self.origin_ms + (at - self.origin).as_millis() as u64,
            at: at.into_std(),
        }
    }
}

/// How the scripted receiver answers one attempt.
enum Answer {
    Now(Result<u16, DeliveryError>),
    /// After this much (virtual) time.
    After(Duration, Result<u16, DeliveryError>),
}

fn status(status: u16, retry_after_ms: Option<u64>) -> Answer {
    Answer::Now(Err(DeliveryError {
        kind: ErrorKind::Status {
            status,
            retry_after_ms,
        },
        message: format!("HTTP {status}"),
    }))
}

/// One attempt as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    event: String,
    attempt: u32,
    /// Virtual milliseconds since the test began.
    at_ms: u64,
    /// The lane's circuit state as the attempt went out.
    circuit: CircuitState,
}

/// Answers each event's attempts from its script, in order, then with 204.
struct Scripted {
    /// Per event id, the answers to its next attempts.
    answers: Mutex<HashMap<String, VecDeque<Answer>>>,
    sent: mpsc::UnboundedSender<Sent>,
    gauges: Arc<LaneGauges>,
    origin: Instant,
}

impl Transport for Scripted {
    fn send<'a>(
        &'a self,
        _subscription: &'a SubscriptionRecord,
        delivery: &'a PendingDelivery,
        _span_id: &'a str,
    ) -> Sending<'a> {
        let answer = self
            .answers
            .lock()
            .unwrap()
            .get_mut(&delivery.event.id)
            .and_then(VecDeque::pop_front);
        let _ = self.sent.send(Sent {
            event: delivery.event.id.clone(),
            attempt: delivery.attempts + 1,
            at_ms: self.origin.elapsed().as_millis() as u64,
            circuit: CircuitState::from_u8(self.gauges.circuit.load(Ordering::Relaxed)),
        });
        Box::pin(async move {
            match answer {
                None => Ok(204),
                Some(Answer::Now(result)) => result,
                Some(Answer::After(delay, result)) => {
                    tokio::time::sleep(delay).await;
                    result
                }
            }
        })
    }
}

/// A running lane over a fresh store, and what a test observes it through.
struct Harness {
    store: Arc<dyn Store>,
    subscription: Arc<SubscriptionRecord>,
    /// When the test began, in virtual time.
    origin: Instant,
    metrics: Arc<SubscriptionMetrics>,
    /// Committed outcomes, as the lane reports them to `tail`.
    activity: broadcast::Receiver<Activity>,
    /// Attempts, as the scripted receiver saw them.
    sent: mpsc::UnboundedReceiver<Sent>,
    inbox: mpsc::UnboundedSender<Message>,
    lane: JoinHandle<()>,
    _dir: tempfile::TempDir,
    _watchdog: Watchdog,
}

/// Starts a lane for a subscription with `spec` (JSON, without the destination) over a store
/// that already holds `events` (id, ordering key), published in that order; each event's
/// attempts are answered from its script.
async fn start(
    spec: serde_json::Value,
    events: &[(&str, Option<&str>)],
    script: Vec<(&str, Vec<Answer>)>,
) -> Harness {
    let watchdog = watchdog();
    let origin = Instant::now();
    let clock = Arc::new(PausedClock {
        origin_ms: now_ms(),
        origin,
    });
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(&dir.path().join("store.redb"), StoreOptions::default()).unwrap(),
    );
    let mut spec = spec;
    spec["destination"] = serde_json::json!({"url": "http://127.0.0.1:9/"});
    let spec = parse_subscription_spec(&spec.to_string()).unwrap();
    store.put_bus("b", Default::default()).await.unwrap();
    let (subscription, _) = store.put_subscription("b", "s", spec).await.unwrap();
    let subscription = Arc::new(subscription);
    let ingested_ms = clock.now().ms;
    let new_events = events
        .iter()
        .map(|(id, key)| NewEvent {
            bus: "b".into(),
            event: Arc::new(Event {
                id: (*id).into(),
                envelope: format!("{{\"id\":\"{id}\"}}"),
                ingested_ms,
                hops: 0,
                trace: TraceContext::new_root(),
                ordering_key: key.map(String::from),
                explicit_id: false,
            }),
            subscriptions: vec![subscription.id],
            archives: Vec::new(),
            once: None,
        })
        .collect();
    store.append(new_events).await.unwrap();

    let gauges = Arc::new(LaneGauges::default());
    let (sent_to, sent) = mpsc::unbounded_channel();
    let transport = Arc::new(Scripted {
        answers: Mutex::new(
            script
                .into_iter()
                .map(|(event, answers)| (event.to_string(), answers.into()))
                .collect(),
        ),
        sent: sent_to,
        gauges: Arc::clone(&gauges),
        origin,
    });
    let metrics = Metrics::new().subscription(subscription.id, "b", "s");
    let (activity_to, activity) = broadcast::channel(1024);
    let (inbox, messages) = mpsc::unbounded_channel();
    let lane = Lane::new(
        Arc::clone(&subscription),
        Arc::clone(&store),
        context(),
        DispatcherConfig::default(),
        gauges,
        Arc::clone(&metrics),
        activity_to,
    )
    .with_seams(clock, transport);
    Harness {
        store,
        subscription,
        origin,
        metrics,
        activity,
        sent,
        inbox,
        lane: tokio::spawn(lane.run(messages, CancellationToken::new())),
        _dir: dir,
        _watchdog: watchdog,
    }
}

/// What the lane's attempts share; its HTTP client is never used, the transport is scripted.
fn context() -> Arc<crate::attempt::Context> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = Arc::new(AddressPolicy::default());
    Arc::new(crate::attempt::Context {
        client: crate::http_client(&policy, None).unwrap(),
        keyring: Arc::new(Keyring::new(
            MasterKey::from_keys(&[[7; switchyard_secrets::KEY_LEN]]),
            SecretFiles::default(),
        )),
        connections: Connections::default(),
        outbound: crate::outbound::Outbound::new(16),
        policy,
        identity: None,
        spans: None,
    })
}

impl Harness {
    /// The next `n` attempts, in the order the receiver saw them.
    async fn attempts(&mut self, n: usize) -> Vec<Sent> {
        let mut seen = Vec::with_capacity(n);
        for _ in 0..n {
            seen.push(self.sent.recv().await.expect("the lane ended"));
        }
        seen
    }

    /// The next committed outcome: (event id, attempt, outcome, dead-letter reason).
    async fn committed(&mut self) -> (String, u32, AttemptOutcome, Option<DeadReason>) {
        match self.activity.recv().await.unwrap() {
            Activity::Attempted {
                event_id,
                attempt,
                outcome,
                reason,
                ..
            } => (event_id, attempt, outcome, reason),
            other => panic!("not an attempt: {other:?}"),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

fn times(sent: &[Sent]) -> Vec<(&str, u32, u64)> {
    sent.iter()
        .map(|s| (s.event.as_str(), s.attempt, s.at_ms))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retries_wait_out_the_backoff_schedule() {
    let spec = serde_json::json!({
        "retry": {"min_backoff_ms": 100, "max_backoff_ms": 800, "max_attempts": 10},
    });
    let failures = (0..5).map(|_| status(503, None)).collect();
    let mut lane = start(spec, &[("e1", None)], vec![("e1", failures)]).await;
    let sent = lane.attempts(6).await;
    assert_eq!(
        sent.iter().map(|s| s.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(sent[0].at_ms, 0, "the first attempt goes at once");
    // After the n-th failure the delay is drawn from [min, min(max, min * 2^(n-1))].
    let ceilings = [100, 200, 400, 800, 800];
    for (n, pair) in sent.windows(2).enumerate() {
        let delay = pair[1].at_ms - pair[0].at_ms;
        assert!(
            (100..=ceilings[n]).contains(&delay),
            "delay after failure {}: {delay} ms, {:?}",
            n + 1,
            times(&sent)
        );
    }
    for attempt in 1..=5 {
        assert_eq!(
            lane.committed().await,
            ("e1".into(), attempt, AttemptOutcome::Retry, None)
        );
    }
    assert_eq!(
        lane.committed().await,
        ("e1".into(), 6, AttemptOutcome::Delivered, None)
    );
    let log = lane
        .store
        .list_attempts(lane.subscription.id, None, 10)
        .await
        .unwrap();
    let classes: Vec<AttemptClass> = log.iter().rev().map(|a| a.class).collect();
    assert_eq!(
        classes,
        [
            [AttemptClass::Status5xx; 5].as_slice(),
            &[AttemptClass::Status2xx]
        ]
        .concat()
    );
    let stats = lane.store.stats(lane.subscription.id).await.unwrap();
    assert_eq!((stats.delivered, stats.pending), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_for_up_to_the_maximum_backoff() {
    let spec = serde_json::json!({
        "retry": {"min_backoff_ms": 100, "max_backoff_ms": 5000},
    });
    let script = vec![status(429, Some(3_000)), status(503, Some(60_000))];
    let mut lane = start(spec, &[("e1", None)], vec![("e1", script)]).await;
    let sent = lane.attempts(3).await;
    assert_eq!(
        times(&sent),
        [("e1", 1, 0), ("e1", 2, 3_000), ("e1", 3, 8_000)],
        "3 s as asked, then the 5 s maximum instead of the 60 s asked"
    );
}

#[tokio::test(start_paused = true)]
async fn the_circuit_opens_probes_half_open_and_closes() {
    let spec = serde_json::json!({
        "max_concurrency": 1,
        "circuit_breaker": {"failure_threshold": 2, "open_ms": 1000},
        "retry": {"min_backoff_ms": 60000, "max_backoff_ms": 60000},
    });
    let events = [
        ("a", None),
        ("b", None),
        ("c", None),
        ("d", None),
        ("e", None),
    ];
    let script = vec![
        ("a", vec![status(503, None)]),
        ("b", vec![status(503, None)]),
        ("c", vec![status(503, None)]),
    ];
    let mut lane = start(spec, &events, script).await;
    let sent = lane.attempts(5).await;
    let seen: Vec<(&str, u64, CircuitState)> = sent
        .iter()
        .map(|s| (s.event.as_str(), s.at_ms, s.circuit))
        .collect();
    assert_eq!(
        seen,
        [
            ("a", 0, CircuitState::Closed),
            ("b", 0, CircuitState::Closed),
            // The second failure opened it for 1 s; then one probe, which fails and opens it
            // again; the next probe succeeds and closes it, and attempts flow again.
            ("c", 1_000, CircuitState::HalfOpen),
            ("d", 2_000, CircuitState::HalfOpen),
            ("e", 2_000, CircuitState::Closed),
        ]
    );
    assert_eq!(lane.metrics.circuit_opened.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_spaces_attempts_out() {
    let spec = serde_json::json!({"rate_limit_per_s": 10, "max_concurrency": 10});
    let events = [("e1", None), ("e2", None), ("e3", None), ("e4", None)];
    let mut lane = start(spec, &events, Vec::new()).await;
    let sent = lane.attempts(4).await;
    assert_eq!(
        sent.iter().map(|s| s.at_ms).collect::<Vec<_>>(),
        [0, 100, 200, 300]
    );
    assert_eq!(
        lane.metrics.rate_limit_waits.load(Ordering::Relaxed),
        3,
        "counted once per wait"
    );
}

#[tokio::test(start_paused = true)]
async fn an_ordering_key_waits_for_its_retried_delivery() {
    let spec = serde_json::json!({
        "ordered": true,
        "max_concurrency": 4,
        "retry": {"min_backoff_ms": 100, "max_backoff_ms": 100},
    });
    let events = [("k1", Some("k")), ("k2", Some("k")), ("j1", Some("j"))];
    let script = vec![("k1", vec![status(503, None)])];
    let mut lane = start(spec, &events, script).await;
    let sent = lane.attempts(4).await;
    let mut by_time = times(&sent);
    by_time.sort_by_key(|(event, attempt, at)| (*at, *event, *attempt));
    assert_eq!(
        by_time,
        [("j1", 1, 0), ("k1", 1, 0), ("k1", 2, 100), ("k2", 1, 100)],
        "another key goes on while k1 waits for its retry; k2 waits for k1"
    );
    let position = |event: &str, attempt: u32| {
        sent.iter()
            .position(|s| s.event == event && s.attempt == attempt)
            .unwrap()
    };
    assert!(position("k1", 2) < position("k2", 1));
}

#[tokio::test(start_paused = true)]
async fn a_lane_handed_over_finishes_and_commits_its_attempts_in_flight_and_starts_no_more() {
    let spec = serde_json::json!({"max_concurrency": 1});
    let events = [("e1", None), ("e2", None), ("e3", None)];
    let script = vec![("e1", vec![Answer::After(Duration::from_secs(1), Ok(200))])];
    let mut lane = start(spec, &events, script).await;
    let first = lane.attempts(1).await;
    assert_eq!(times(&first), [("e1", 1, 0)]);
    // Sent while the attempt is under way: it answers only once every task waits, so the lane
    // sees the stop first.
    lane.inbox.send(Message::Stop).unwrap();
    (&mut lane.lane).await.unwrap();
    assert_eq!(
        lane.elapsed_ms(),
        1_000,
        "the lane ended when its attempt did"
    );
    assert_eq!(
        lane.committed().await,
        ("e1".into(), 1, AttemptOutcome::Delivered, None)
    );
    assert_eq!(
        lane.sent.recv().await,
        None,
        "the lane is gone and sent nothing else"
    );
    let pending = lane
        .store
        .load_pending(lane.subscription.id, 10, PendingOrder::Publish)
        .await
        .unwrap();
    let pending: Vec<(&str, u32)> = pending
        .iter()
        .map(|d| (d.event.id.as_str(), d.attempts))
        .collect();
    assert_eq!(pending, [("e2", 0), ("e3", 0)], "left for the next owner");
}
