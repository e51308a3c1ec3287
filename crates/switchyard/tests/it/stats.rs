//! Every subscription's stats in one answer (`GET /v1/stats`, worst first), the last hour of one
//! subscription's (`…/stats/history`), a bus-wide pattern test (`POST /v1/test-pattern` with a
//! `bus`) and a source's request counts: what the console draws, over the REST API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Api, Receiver, Reply, Server, call, client, event, temp_dir, wait_for};

fn names(overview: &Value) -> Vec<String> {
    overview["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            format!(
                "{}/{}",
                row["bus"].as_str().unwrap(),
                row["subscription"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_overview_puts_failing_then_dead_lettered_subscriptions_before_healthy_ones() {
    let healthy = Receiver::ok().await;
    let refusing = Receiver::start(|_, _| Reply::status(400)).await;
    let failing = Receiver::start(|_, _| Reply::status(503)).await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("shop").await;
    api.bus("other").await;
    api.subscribe(
        "shop",
        "a-healthy",
        json!({"destination": {"url": healthy.url}}),
    )
    .await;
    api.subscribe(
        "shop",
        "b-refused",
        json!({"destination": {"url": refusing.url}}),
    )
    .await;
    api.subscribe(
        "shop",
        "c-failing",
        json!({"destination": {"url": failing.url},
               "retry": {"min_backoff_ms": 100, "max_backoff_ms": 200, "max_attempts": 1000},
               "circuit_breaker": {"failure_threshold": 0}}),
    )
    .await;
    api.subscribe(
        "other",
        "quiet",
        json!({"destination": {"url": healthy.url}}),
    )
    .await;
    api.publish(
        "shop",
        (0..2).map(|i| event("shop", json!({"n": i}))).collect(),
    )
    .await;
    wait_for(
        "the problems to show",
        Duration::from_secs(30),
        async || {
            let (_, overview) = api.get("/v1/stats").await;
            names(&overview)
                == [
                    "shop/c-failing",
                    "shop/b-refused",
                    "other/quiet",
                    "shop/a-healthy",
                ]
                && overview["items"][0]["problem"] == "failing"
        },
    )
    .await;
    let (status, overview) = api.get("/v1/stats").await;
    assert_eq!(status, 200);
    let first = &overview["items"][0];
    assert_eq!(first["pending"], 2, "{first}");
    assert!(first["failed_per_s"].as_f64().unwrap() > 0.0, "{first}");
    assert_eq!(first["circuit"], "closed");
    assert_eq!(overview["items"][1]["problem"], "dead_letters");
    assert_eq!(overview["items"][1]["dead"], 2);
    assert_eq!(overview["items"][3]["problem"], Value::Null);
    assert_eq!(overview["items"][3]["delivered"], 2);
    assert_eq!(overview["interval_s"], 5);

    let (_, only) = api.get("/v1/stats?bus=other").await;
    assert_eq!(names(&only), ["other/quiet"]);
    let (_, page) = api.get("/v1/stats?limit=1").await;
    assert_eq!(names(&page), ["shop/c-failing"]);
    assert_eq!(page["more"], 3);
    let (status, body) = api.get("/v1/stats?bus=nope").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api.get("/v1/stats?limit=lots").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));

    let (status, history) = api
        .get("/v1/buses/shop/subscriptions/a-healthy/stats/history")
        .await;
    assert_eq!(status, 200, "{history}");
    let samples = history["samples"].as_array().unwrap();
    assert!(samples.len() >= 2, "{history}");
    let delivered: u64 = samples
        .iter()
        .map(|s| s["delivered"].as_u64().unwrap())
        .sum();
    assert!(delivered <= 2, "increments, not totals: {history}");
    assert!(
        samples
            .iter()
            .all(|s| s["at"].is_string() && s["pending"].is_u64())
    );
    let (status, _) = api
        .get("/v1/buses/shop/subscriptions/nope/stats/history")
        .await;
    assert_eq!(status, 404);

    // A deleted subscription leaves the overview.
    api.delete("/v1/buses/shop/subscriptions/b-refused").await;
    let (_, overview) = api.get("/v1/stats").await;
    assert!(
        !names(&overview).contains(&"shop/b-refused".to_string()),
        "{overview}"
    );
}

/// Bus `shop` with `billing` (events from `shop`) and `search` (from `catalog`), both to
/// `receiver`: what the pattern tests look up an event against.
pub(crate) async fn shop_with_billing_and_search(api: &Api<'_>, receiver: &Receiver) {
    api.bus("shop").await;
    for (name, source) in [("billing", "shop"), ("search", "catalog")] {
        api.subscribe(
            "shop",
            name,
            json!({"pattern": {"source": [source]}, "destination": {"url": receiver.url}}),
        )
        .await;
    }
}

#[tokio::test]
async fn test_pattern_with_a_bus_names_the_subscriptions_and_archives_that_would_take_the_event() {
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    shop_with_billing_and_search(&api, &receiver).await;
    api.put("/v1/buses/shop/archives/everything", json!({}))
        .await;
    let (status, answer) = api
        .post(
            "/v1/test-pattern",
            json!({"bus": "shop", "event": {"source": "shop", "detail-type": "Order Placed", "detail": {}}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["matches"], true);
    assert_eq!(answer["subscriptions"], json!(["billing"]));
    assert_eq!(answer["archives"], json!(["everything"]));
    assert_eq!(answer["event"]["source"], "shop");
    assert!(
        answer["event"]["id"].is_string(),
        "filled in as a publish would: {answer}"
    );
    let (_, none) = api
        .post(
            "/v1/test-pattern",
            json!({"bus": "shop", "event": {"source": "elsewhere", "detail-type": "x", "detail": {}}}),
        )
        .await;
    assert_eq!(none["matches"], false);
    assert_eq!(none["subscriptions"], json!([]));
    assert_eq!(receiver.count(), 0, "testing publishes nothing");

    for (body, status, says) in [
        (
            json!({"bus": "nope", "event": {"source": "s", "detail-type": "x", "detail": {}}}),
            404,
            "nope",
        ),
        (
            json!({"bus": "shop", "pattern": {}, "event": {}}),
            400,
            "one of pattern and bus",
        ),
        (json!({"event": {}}), 400, "one of pattern and bus"),
        (
            json!({"bus": "shop", "event": {"detail-type": "x", "detail": {}}}),
            400,
            "source",
        ),
        (
            json!({"bus": "shop", "event": {"entries": [{"source": "s", "detail-type": "x", "detail": {}}]}}),
            400,
            "one event",
        ),
    ] {
        let (got, answer) = api.post("/v1/test-pattern", body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
}

#[tokio::test]
async fn a_source_counts_its_refusals_by_reason() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("ops").await;
    let (status, body) = api
        .put(
            "/v1/sources/slack",
            json!({"bus": "ops", "verify": {"type": "slack", "signing_secret": "counted-signing-secret"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["requests"]["refused"], 0, "{body}");
    for _ in 0..2 {
        let (status, _) = call(client().post(server.url("/hooks/slack")).body("{}")).await;
        assert!((400..500).contains(&status));
    }
    let (_, source) = api.get("/v1/sources/slack").await;
    assert_eq!(source["requests"]["refused"], 2, "{source}");
    assert_eq!(source["requests"]["published"], 0, "{source}");
    let reasons = source["requests"]["refusals"].as_object().unwrap();
    assert_eq!(
        reasons.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        2,
        "{source}"
    );
    let (_, list) = api.get("/v1/sources").await;
    assert_eq!(list["items"][0]["requests"], source["requests"]);
}

#[tokio::test]
async fn fresh_stats_are_read_now_so_a_new_subscription_shows_at_once_with_exact_counts() {
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("shop").await;
    api.subscribe("shop", "new", json!({"destination": {"url": receiver.url}}))
        .await;
    api.publish(
        "shop",
        (0..2).map(|i| event("shop", json!({"n": i}))).collect(),
    )
    .await;
    wait_for("both deliveries", Duration::from_secs(30), async || {
        api.stats("shop", "new").await["delivered"] == 2
    })
    .await;
    let (status, fresh) = api.get("/v1/stats?fresh=true").await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(names(&fresh), ["shop/new"]);
    assert_eq!(fresh["items"][0]["delivered"], 2, "{fresh}");
    assert_eq!(fresh["unsampled"], 0, "{fresh}");
    let (status, body) = api.get("/v1/stats?fresh=maybe").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("fresh"));
}
