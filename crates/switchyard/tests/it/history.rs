//! The attempt log and the event trail: what happened to each delivery, after the fact.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn the_attempt_log_and_event_trail_show_every_attempt() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let flaky = Receiver::start(|_, n| Reply::status(if n == 0 { 503 } else { 200 })).await;
    let broken = Receiver::start(|_, _| Reply::status(404)).await;
    api.bus("b").await;
    api.subscribe("b", "flaky", json!({"destination": {"url": flaky.url}, "retry": {"min_backoff_ms": 10, "max_backoff_ms": 20}})).await;
    api.subscribe("b", "broken", json!({"destination": {"url": broken.url}}))
        .await;
    api.subscribe(
        "b",
        "elsewhere",
        json!({"pattern": {"source": ["other"]}, "destination": {"url": broken.url}}),
    )
    .await;
    let id = api
        .publish("b", vec![event("shop", json!({"n": 1}))])
        .await
        .remove(0);
    wait_for("both outcomes", Duration::from_secs(20), async || {
        api.stats("b", "flaky").await["delivered"] == 1
            && api.stats("b", "broken").await["dead"] == 1
    })
    .await;

    let (status, log) = api.get("/v1/buses/b/subscriptions/flaky/attempts").await;
    assert_eq!(status, 200, "{log}");
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (
            items[0]["attempt"].as_u64(),
            items[0]["outcome"].as_str(),
            items[0]["status"].as_u64()
        ),
        (Some(2), Some("delivered"), Some(200))
    );
    assert_eq!(
        (
            items[1]["attempt"].as_u64(),
            items[1]["outcome"].as_str(),
            items[1]["class"].as_str()
        ),
        (Some(1), Some("retry"), Some("5xx"))
    );
    assert_eq!(items[1]["event_id"], id.as_str());
    assert!(items[1]["started_at"].is_string() && items[1]["duration_ms"].is_u64());
    let (_, first_page) = api
        .get("/v1/buses/b/subscriptions/flaky/attempts?limit=1")
        .await;
    let next = first_page["next"].as_str().unwrap();
    let (_, second_page) = api
        .get(&format!(
            "/v1/buses/b/subscriptions/flaky/attempts?limit=1&before={next}"
        ))
        .await;
    assert_eq!(second_page["items"][0]["attempt"], 1);

    let (status, trail) = api.get(&format!("/v1/buses/b/events/{id}")).await;
    assert_eq!(status, 200, "{trail}");
    assert_eq!(trail["event"]["detail"], json!({"n": 1}));
    assert_eq!(trail["hops"], 0);
    let deliveries = trail["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries.len(),
        2,
        "only the subscriptions that matched: {trail}"
    );
    let by_name = |name: &str| {
        deliveries
            .iter()
            .find(|d| d["subscription"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("flaky")["state"], "delivered");
    assert_eq!(by_name("flaky")["attempts"].as_array().unwrap().len(), 2);
    let broken_trail = by_name("broken");
    assert_eq!(broken_trail["state"], "dead");
    assert_eq!(
        broken_trail["attempts"][0]["reason"],
        "non_retryable_status"
    );

    // Redriven, the dead delivery is pending again; delivered, the trail shows both deliveries' attempts.
    broken.set(|_, _| Reply::status(200));
    api.post(
        "/v1/buses/b/subscriptions/broken/dead-letters/redrive",
        json!({}),
    )
    .await;
    wait_for("redelivery", Duration::from_secs(20), async || {
        api.stats("b", "broken").await["delivered"] == 1
    })
    .await;
    let (_, trail) = api.get(&format!("/v1/buses/b/events/{id}")).await;
    let broken_trail = trail["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["subscription"] == "broken")
        .unwrap()
        .clone();
    assert_eq!(broken_trail["state"], "delivered");
    assert_eq!(broken_trail["attempts"].as_array().unwrap().len(), 2);

    let (status, body) = api.get("/v1/buses/b/events/no-such-event").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = api
        .get("/v1/buses/b/subscriptions/flaky/attempts?before=yesterday")
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn history_goes_after_its_retention_but_pending_events_stay() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--history-retention-s", "0"]);
    let api = Api::new(&server);
    let ok = Receiver::ok().await;
    let down = Receiver::start(|_, _| Reply::status(503)).await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "ok",
        json!({"pattern": {"source": ["a"]}, "destination": {"url": ok.url}}),
    )
    .await;
    api.subscribe("b", "down", json!({"pattern": {"source": ["b"]}, "destination": {"url": down.url}, "retry": {"min_backoff_ms": 50, "max_backoff_ms": 100}})).await;
    let delivered = api
        .publish("b", vec![event("a", json!({}))])
        .await
        .remove(0);
    let pending = api
        .publish("b", vec![event("b", json!({}))])
        .await
        .remove(0);
    wait_for(
        "delivery and a failed attempt",
        Duration::from_secs(20),
        // Counted from the store: a receiver sees a request before its outcome is committed.
        async || {
            api.stats("b", "ok").await["delivered"] == 1
                && api.stats("b", "down").await["failed_attempts"].as_u64() >= Some(1)
        },
    )
    .await;
    wait_for(
        "the delivered event to leave",
        Duration::from_secs(20),
        async || api.get(&format!("/v1/buses/b/events/{delivered}")).await.0 == 404,
    )
    .await;
    let (status, trail) = api.get(&format!("/v1/buses/b/events/{pending}")).await;
    assert_eq!(status, 200, "a pending event keeps its history: {trail}");
    assert_eq!(trail["deliveries"][0]["state"], "pending");
    assert!(
        !trail["deliveries"][0]["attempts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        api.get("/v1/buses/b/subscriptions/ok/attempts").await.1["items"],
        json!([])
    );
}
