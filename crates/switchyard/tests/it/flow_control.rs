//! Per-subscription flow control: the rate limit and the circuit breaker.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn the_rate_limit_spaces_attempts() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "slow",
        json!({"destination": {"url": receiver.url}, "rate_limit_per_s": 5}),
    )
    .await;
    api.publish("b", (0..10).map(|i| event("x", json!({"i": i}))).collect())
        .await;
    wait_for("10 deliveries", Duration::from_secs(30), async || {
        receiver.count() == 10
    })
    .await;
    let hits = receiver.hits();
    let spread = hits[9].at - hits[0].at;
    // A lower bound only: 5 per second with a burst of one needs at least 9/5 s for 10 attempts;
    // 1.4 s leaves room for the receiver seeing the first request late.
    assert!(
        spread >= Duration::from_millis(1_400),
        "10 attempts within {spread:?} at 5/s"
    );
    let (_, view) = api.get("/v1/buses/b/subscriptions/slow").await;
    assert_eq!(view["rate_limit_per_s"], 5);
    assert_eq!(api.stats("b", "slow").await["rate_limit_per_s"], 5);
    let metrics = scrape(&api).await;
    assert!(
        sample(
            &metrics,
            "switchyard_rate_limit_waits_total{bus=\"b\",subscription=\"slow\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn the_circuit_opens_on_repeated_failures_and_a_probe_closes_it() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let down = Receiver::start(|_, _| Reply::status(503)).await;
    let flaky = Receiver::start(|_, n| Reply::status(if n < 3 { 503 } else { 200 })).await;
    api.bus("b").await;
    let spec = |url: &str, open_ms: u64| {
        json!({
            "pattern": {"source": [url]},
            "destination": {"url": url},
            "max_concurrency": 1,
            "retry": {"min_backoff_ms": 10, "max_backoff_ms": 20},
            "circuit_breaker": {"failure_threshold": 3, "open_ms": open_ms}
        })
    };
    api.subscribe("b", "down", spec(&down.url, 600_000)).await;
    api.subscribe("b", "flaky", spec(&flaky.url, 300)).await;
    api.publish(
        "b",
        (0..5).map(|i| event(&down.url, json!({"i": i}))).collect(),
    )
    .await;

    wait_for("the circuit to open", Duration::from_secs(20), async || {
        let stats = api.stats("b", "down").await;
        stats["circuit"] == "open" && stats["failed_attempts"].as_u64() >= Some(3)
    })
    .await;
    // The sentinel is the flaky subscription, started only now: its retries, due 10 to 20 ms
    // after each failure as the down one's were, wait out its own open circuit until the probe
    // 300 ms later. By the time it has recovered, every retry the down subscription had
    // scheduled was long due, and an open circuit that let them go would have shown it.
    api.publish(
        "b",
        (0..5).map(|i| event(&flaky.url, json!({"i": i}))).collect(),
    )
    .await;
    wait_for(
        "the flaky destination to recover",
        Duration::from_secs(20),
        async || api.stats("b", "flaky").await["delivered"] == 5,
    )
    .await;
    assert_eq!(
        down.count(),
        3,
        "attempts went on while the circuit was open"
    );
    let stats = api.stats("b", "down").await;
    assert_eq!(
        (stats["pending"].as_u64(), stats["dead"].as_u64()),
        (Some(5), Some(0)),
        "waiting burns no attempts: {stats}"
    );

    assert_eq!(
        flaky.count(),
        3 + 5,
        "three failures, then the probe and the rest"
    );
    assert_eq!(api.stats("b", "flaky").await["circuit"], "closed");
    let metrics = scrape(&api).await;
    assert_eq!(
        sample(
            &metrics,
            "switchyard_subscription_circuit_state{bus=\"b\",subscription=\"down\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "switchyard_circuit_opened_total{bus=\"b\",subscription=\"flaky\"}"
        ),
        1.0
    );
}

/// One subscription with `max_concurrency` 1000 at an endpoint that never answered held 1,000
/// sockets; under a 1,024 descriptor limit, half of another subscription's attempts failed.
#[tokio::test]
async fn a_hanging_destination_cannot_take_every_outbound_connection() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--max-outbound-connections", "20"]);
    let api = Api::new(&server);
    let hanging = Receiver::start(|_, _| Reply {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(120),
        body: String::new(),
    })
    .await;
    let healthy = Receiver::ok().await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "stuck",
        json!({"pattern": {"source": ["stuck"]}, "destination": {"url": hanging.url, "timeout_ms": 120000}, "max_concurrency": 1000}),
    )
    .await;
    api.publish(
        "b",
        (0..100).map(|i| event("stuck", json!({"i": i}))).collect(),
    )
    .await;
    wait_for(
        "the stuck lane's share",
        Duration::from_secs(20),
        async || hanging.count() >= 10,
    )
    .await;
    api.subscribe(
        "b",
        "fine",
        json!({"pattern": {"source": ["fine"]}, "destination": {"url": healthy.url}}),
    )
    .await;
    api.publish(
        "b",
        (0..30).map(|i| event("fine", json!({"i": i}))).collect(),
    )
    .await;
    wait_for(
        "every healthy delivery",
        Duration::from_secs(30),
        async || api.stats("b", "fine").await["delivered"] == 30,
    )
    .await;
    assert_eq!(
        hanging.count(),
        10,
        "alone, a lane takes half of the 20 connections, and no more once another is busy"
    );
    assert_eq!(healthy.count(), 30);
}
