//! Push delivery end to end: routing, retries, dead letters, redrive, Retry-After, isolation.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

fn fast_retry() -> serde_json::Value {
    json!({"min_backoff_ms": 20, "max_backoff_ms": 200})
}

#[tokio::test]
async fn routes_each_event_to_the_subscriptions_whose_pattern_matches() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (orders, payments, everything) = (
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
    );
    api.bus("shop").await;
    api.subscribe("shop", "orders", json!({"pattern": {"source": ["shop.orders"]}, "destination": {"url": format!("{}/orders", orders.url)}})).await;
    api.subscribe("shop", "big-payments", json!({
        "pattern": {"source": ["shop.payments"], "detail": {"amount": [{"numeric": [">", 100]}]}},
        "destination": {"url": format!("{}/payments", payments.url), "headers": {"x-team": "billing"}}
    })).await;
    api.subscribe(
        "shop",
        "all",
        json!({"destination": {"url": everything.url}}),
    )
    .await;

    let ids = api
        .publish(
            "shop",
            vec![
                event("shop.orders", json!({"n": 1})),
                event("shop.payments", json!({"amount": 50})),
                event("shop.payments", json!({"amount": 500})),
                event("shop.users", json!({})),
            ],
        )
        .await;
    wait_for("deliveries", Duration::from_secs(20), async || {
        everything.count() == 4 && orders.count() == 1 && payments.count() == 1
    })
    .await;

    let order = &orders.hits()[0];
    assert_eq!(order.event_id(), ids[0]);
    assert_eq!(order.header("switchyard-event-id"), ids[0]);
    assert_eq!(order.header("switchyard-subscription"), "orders");
    assert_eq!(order.header("switchyard-attempt"), "1");
    assert_eq!(order.header("content-type"), "application/json");
    assert_eq!(order.body["version"], "0");
    assert_eq!(order.body["source"], "shop.orders");
    assert_eq!(order.body["detail-type"], "test");
    assert_eq!(order.body["detail"], json!({"n": 1}));
    assert!(order.body["time"].is_string() && order.body["resources"].is_array());
    let payment = &payments.hits()[0];
    assert_eq!(payment.event_id(), ids[2]);
    assert_eq!(payment.header("x-team"), "billing");
    // Receivers see requests before their outcomes are committed.
    wait_for(
        "4 committed deliveries",
        Duration::from_secs(20),
        async || api.stats("shop", "all").await["delivered"] == 4,
    )
    .await;
    assert_accounting(&api.stats("shop", "all").await);
    // A sentinel for each of the two, published after: once it has arrived and its subscription
    // has nothing pending, every delivery matched before it has been attempted.
    let sentinels = api
        .publish(
            "shop",
            vec![
                event("shop.orders", json!({"sentinel": true})),
                event("shop.payments", json!({"amount": 1000, "sentinel": true})),
            ],
        )
        .await;
    for (name, receiver, sentinel) in [
        ("orders", &orders, &sentinels[0]),
        ("big-payments", &payments, &sentinels[1]),
    ] {
        wait_for("the sentinel", Duration::from_secs(20), async || {
            receiver.hits().iter().any(|h| h.event_id() == *sentinel)
                && api.stats("shop", name).await["pending"] == 0
        })
        .await;
    }
    let before_sentinels = |r: &Receiver| {
        r.hits()
            .iter()
            .filter(|h| !sentinels.contains(&h.event_id()))
            .count()
    };
    assert_eq!(
        before_sentinels(&orders) + before_sentinels(&payments),
        2,
        "an event went where its pattern does not match"
    );
}

#[tokio::test]
async fn a_503_is_retried_until_it_succeeds() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, n| Reply::status(if n < 2 { 503 } else { 200 })).await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": receiver.url}, "retry": fast_retry()}),
    )
    .await;
    api.publish("b", vec![event("x", json!({}))]).await;
    wait_for("delivery", Duration::from_secs(20), async || {
        api.stats("b", "s").await["delivered"] == 1
    })
    .await;
    let attempts: Vec<String> = receiver
        .hits()
        .iter()
        .map(|h| h.header("switchyard-attempt").to_string())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let stats = api.stats("b", "s").await;
    assert_eq!(stats["failed_attempts"], 2);
    assert_eq!(stats["pending"], 0);
    assert_eq!(stats["dead"], 0);
    assert_accounting(&stats);
}

#[tokio::test]
async fn a_400_is_dead_lettered_at_once_and_redrive_delivers_it() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": receiver.url}, "retry": fast_retry()}),
    )
    .await;
    let ids = api
        .publish(
            "b",
            vec![event("x", json!({"k": 1})), event("x", json!({"k": 2}))],
        )
        .await;
    wait_for("dead letters", Duration::from_secs(20), async || {
        api.stats("b", "s").await["dead"] == 2
    })
    .await;
    assert_eq!(receiver.count(), 2, "a 400 must not be retried");

    let (status, page) = api
        .get("/v1/buses/b/subscriptions/s/dead-letters?limit=1")
        .await;
    assert_eq!(status, 200);
    let first = &page["items"][0];
    assert_eq!(first["reason"], "non_retryable_status");
    assert_eq!(first["last_status"], 400);
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["event_id"], ids[0].as_str());
    assert_eq!(first["event"]["detail"], json!({"k": 1}));
    let next = page["next"].as_str().expect("a second page");
    let (_, second) = api
        .get(&format!(
            "/v1/buses/b/subscriptions/s/dead-letters?after={next}"
        ))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["event_id"], ids[1].as_str());

    // Fix the receiver, then redrive only the first dead letter.
    receiver.set(|_, _| Reply::status(200));
    let (status, body) = api
        .post(
            "/v1/buses/b/subscriptions/s/dead-letters/redrive",
            json!({"ids": [first["id"]]}),
        )
        .await;
    assert_eq!((status, body["redriven"].as_u64()), (200, Some(1)));
    wait_for("redriven delivery", Duration::from_secs(20), async || {
        api.stats("b", "s").await["delivered"] == 1
    })
    .await;
    let redelivered = receiver.hits().last().unwrap().clone();
    assert_eq!(redelivered.event_id(), ids[0]);
    assert_eq!(
        redelivered.header("switchyard-attempt"),
        "1",
        "a redrive starts a fresh retry window"
    );
    let stats = api.stats("b", "s").await;
    assert_eq!(
        (stats["dead"].as_u64(), stats["pending"].as_u64()),
        (Some(1), Some(0))
    );
    assert_accounting(&stats);

    // Purge the rest.
    let (status, body) = api.delete("/v1/buses/b/subscriptions/s/dead-letters").await;
    assert_eq!((status, body["purged"].as_u64()), (200, Some(1)));
    let stats = api.stats("b", "s").await;
    assert_eq!(
        (stats["dead"].as_u64(), stats["purged"].as_u64()),
        (Some(0), Some(1))
    );
    assert_accounting(&stats);
}

#[tokio::test]
async fn retries_give_up_after_max_attempts() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, _| Reply::status(500)).await;
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 10, "max_backoff_ms": 20, "max_attempts": 3}})).await;
    api.publish("b", vec![event("x", json!({}))]).await;
    wait_for("dead letter", Duration::from_secs(20), async || {
        api.stats("b", "s").await["dead"] == 1
    })
    .await;
    assert_eq!(receiver.count(), 3);
    let (_, page) = api.get("/v1/buses/b/subscriptions/s/dead-letters").await;
    assert_eq!(page["items"][0]["reason"], "max_attempts");
    assert_eq!(page["items"][0]["last_status"], 500);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, n| {
        if n == 0 {
            Reply {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                delay: Duration::ZERO,
                body: String::new(),
            }
        } else {
            Reply::status(200)
        }
    })
    .await;
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 10, "max_backoff_ms": 5000}})).await;
    api.publish("b", vec![event("x", json!({}))]).await;
    wait_for("delivery", Duration::from_secs(20), async || {
        receiver.count() == 2
    })
    .await;
    let hits = receiver.hits();
    let gap = hits[1].at - hits[0].at;
    // A lower bound only: the receiver asked for one second, and a 10 ms backoff would be far less.
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?} despite Retry-After: 1"
    );
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another_subscription() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let hanging = Receiver::start(|_, _| Reply {
        status: 200,
        headers: vec![],
        delay: Duration::from_secs(60),
        body: String::new(),
    })
    .await;
    let healthy = Receiver::ok().await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "stuck",
        json!({"destination": {"url": hanging.url, "timeout_ms": 60000}, "max_concurrency": 2}),
    )
    .await;
    api.subscribe("b", "fine", json!({"destination": {"url": healthy.url}}))
        .await;
    for chunk in 0..4 {
        let events = (0..50)
            .map(|i| event("x", json!({"i": chunk * 50 + i})))
            .collect();
        api.publish("b", events).await;
    }
    wait_for(
        "all 200 events at the healthy endpoint",
        Duration::from_secs(30),
        async || healthy.count() == 200,
    )
    .await;
    assert!(
        hanging.count() <= 2,
        "the stuck subscription exceeded its max_concurrency"
    );
    let stuck = api.stats("b", "stuck").await;
    assert_eq!(stuck["pending"], 200);
    assert_eq!(stuck["in_flight"], 2);
    // The receiver sees each request before switchyard commits its outcome; wait for the commits.
    wait_for(
        "all 200 outcomes committed",
        Duration::from_secs(30),
        async || api.stats("b", "fine").await["delivered"] == 200,
    )
    .await;
}

#[tokio::test]
async fn changing_a_subscription_takes_effect_without_restart() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (old, new) = (Receiver::ok().await, Receiver::ok().await);
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({"pattern": {"source": ["a"]}, "destination": {"url": old.url}}),
    )
    .await;
    api.publish("b", vec![event("a", json!({}))]).await;
    wait_for("first delivery", Duration::from_secs(20), async || {
        old.count() == 1
    })
    .await;

    api.subscribe(
        "b",
        "s",
        json!({"pattern": {"source": ["b"]}, "destination": {"url": new.url}}),
    )
    .await;
    api.publish("b", vec![event("a", json!({})), event("b", json!({}))])
        .await;
    wait_for(
        "delivery to the new destination",
        Duration::from_secs(20),
        async || new.count() == 1,
    )
    .await;
    assert_eq!(new.hits()[0].body["source"], "b");
    assert_eq!(old.count(), 1);
    let (_, view) = api.get("/v1/buses/b/subscriptions/s").await;
    assert_eq!(view["pattern"], json!({"source": ["b"]}));
    assert_eq!(view["destination"]["url"], new.url.as_str());
}

#[tokio::test]
async fn deleting_a_subscription_stops_its_deliveries() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": receiver.url}, "retry": fast_retry()}),
    )
    .await;
    let deleted = api
        .publish("b", vec![event("x", json!({}))])
        .await
        .remove(0);
    wait_for("first attempt", Duration::from_secs(20), async || {
        receiver.count() >= 1
    })
    .await;
    assert_eq!(api.delete("/v1/buses/b/subscriptions/s").await.0, 204);
    assert_eq!(api.get("/v1/buses/b/subscriptions/s").await.0, 404);
    // Re-created under the same name, it starts empty.
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}}))
        .await;
    let stats = api.stats("b", "s").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["pending"].as_u64()),
        (Some(0), Some(0))
    );
    // The sentinel: an event for the re-created subscription, failing at the same receiver. Its
    // retry is due a whole minimum backoff (1 s by default) after its first attempt; every retry
    // the deleted subscription had scheduled was due within its 200 ms maximum, before the
    // delete. So when the sentinel's retry arrives, the deleted one's had their chance.
    let sentinel = api
        .publish("b", vec![event("x", json!({}))])
        .await
        .remove(0);
    let attempts_of = |id: &str| {
        receiver
            .hits()
            .iter()
            .filter(|h| h.event_id() == id)
            .count()
    };
    wait_for("the sentinel", Duration::from_secs(20), async || {
        attempts_of(&sentinel) >= 1
    })
    .await;
    let after = attempts_of(&deleted);
    wait_for(
        "the sentinel's retry",
        Duration::from_secs(20),
        async || attempts_of(&sentinel) >= 2,
    )
    .await;
    assert_eq!(
        attempts_of(&deleted),
        after,
        "a deleted subscription kept retrying"
    );
}

#[tokio::test]
async fn a_redirect_is_an_outcome_not_followed() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let target = Receiver::ok().await;
    let target_url = target.url.clone();
    let redirecting = Receiver::start(move |_, _| Reply {
        headers: vec![("location", target_url.clone())],
        ..Reply::status(302)
    })
    .await;
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": redirecting.url}}))
        .await;
    api.publish("b", vec![event("x", json!({}))]).await;
    wait_for("a dead letter", Duration::from_secs(20), async || {
        api.stats("b", "s").await["dead"] == 1
    })
    .await;
    let (_, page) = api.get("/v1/buses/b/subscriptions/s/dead-letters").await;
    assert_eq!(
        (
            page["items"][0]["last_status"].as_u64(),
            page["items"][0]["reason"].as_str()
        ),
        (Some(302), Some("non_retryable_status"))
    );
    assert_eq!(target.count(), 0, "the redirect was followed");
}

#[tokio::test]
async fn retries_parked_far_ahead_do_not_starve_new_deliveries() {
    let dir = temp_dir();
    // A lane that holds only 10 deliveries in memory, filled with retries due in a minute.
    let server = Server::start(dir.path(), &["--lane-capacity", "10"]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|hit, _| {
        Reply::status(if hit.body["source"] == "bad" {
            503
        } else {
            200
        })
    })
    .await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({
            "destination": {"url": receiver.url},
            "retry": {"min_backoff_ms": 60000, "max_backoff_ms": 60000},
            "circuit_breaker": {"failure_threshold": 0}
        }),
    )
    .await;
    api.publish(
        "b",
        (0..12).map(|i| event("bad", json!({"i": i}))).collect(),
    )
    .await;
    wait_for(
        "the failing events parked",
        Duration::from_secs(20),
        async || api.stats("b", "s").await["failed_attempts"].as_u64() >= Some(10),
    )
    .await;
    api.publish(
        "b",
        (0..5).map(|i| event("good", json!({"i": i}))).collect(),
    )
    .await;
    // Before the fix, these waited until the parked retries were due, a minute later.
    wait_for("the new deliveries", Duration::from_secs(20), async || {
        api.stats("b", "s").await["delivered"] == 5
    })
    .await;
}
