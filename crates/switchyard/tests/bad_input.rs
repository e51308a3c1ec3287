//! Bad input gets a clear error in the API's shape, with the right status, and changes nothing.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn assert_error(response: &(u16, Value), status: u16, code: &str, mentions: &str) {
    let (got, body) = response;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(mentions),
        "message {message:?} should mention {mentions:?}"
    );
}

#[tokio::test]
async fn publishing_bad_events() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--max-event-bytes", "2000"]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}}))
        .await;

    assert_error(
        &api.post_raw("/v1/buses/b/events", "{\"source\": ").await,
        400,
        "invalid",
        "not valid JSON",
    );
    assert_error(
        &api.post_raw("/v1/buses/b/events", "[1,2]").await,
        400,
        "invalid",
        "JSON object",
    );
    assert_error(
        &api.post("/v1/buses/b/events", json!({"detail-type": "t"}))
            .await,
        400,
        "invalid",
        "\"source\" is required",
    );
    assert_error(
        &api.post(
            "/v1/buses/b/events",
            json!({"source": 7, "detail-type": "t"}),
        )
        .await,
        400,
        "invalid",
        "\"source\" must be a string",
    );
    assert_error(
        &api.post(
            "/v1/buses/b/events",
            json!({"source": "s", "detail-type": "t", "detail": "x"}),
        )
        .await,
        400,
        "invalid",
        "\"detail\" must be a JSON object",
    );
    assert_error(
        &api.post("/v1/buses/b/events", json!({"entries": "x"}))
            .await,
        400,
        "invalid",
        "\"entries\" must be an array",
    );
    let too_many: Vec<Value> = (0..501).map(|_| event("s", json!({}))).collect();
    assert_error(
        &api.post("/v1/buses/b/events", json!({"entries": too_many}))
            .await,
        400,
        "invalid",
        "1 to 500",
    );
    assert_error(
        &api.post("/v1/buses/nope/events", event("s", json!({})))
            .await,
        404,
        "not_found",
        "\"nope\"",
    );
    let big = event("s", json!({"blob": "x".repeat(3000)}));
    assert_error(
        &api.post("/v1/buses/b/events", big.clone()).await,
        413,
        "too_large",
        "2000 bytes",
    );
    assert_error(
        &api.post(
            "/v1/buses/b/events",
            json!({"entries": [event("s", json!({})), big]}),
        )
        .await,
        413,
        "too_large",
        "event 1",
    );

    // In a batch, a bad entry fails alone, as in PutEvents.
    let (status, body) = api
        .post(
            "/v1/buses/b/events",
            json!({"entries": [event("s", json!({})), {"source": "s"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["failed_entry_count"], 1);
    assert!(body["entries"][0]["id"].is_string());
    assert_eq!(body["entries"][1]["error_code"], "invalid");
    assert!(
        body["entries"][1]["error_message"]
            .as_str()
            .unwrap()
            .contains("detail-type")
    );

    let stats = api.stats("b", "s").await;
    assert_eq!(
        stats["accepted"], 1,
        "only the one good entry may have been stored: {stats}"
    );
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_413() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    let body = format!(
        "{{\"source\":\"s\",\"detail-type\":\"t\",\"detail\":{{\"x\":\"{}\"}}}}",
        "y".repeat(17 << 20)
    );
    let response = api.post_raw("/v1/buses/b/events", body).await;
    assert_error(&response, 413, "too_large", "size limit");
}

#[tokio::test]
async fn bad_subscriptions_are_refused_and_nothing_changes() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    let sub = "/v1/buses/b/subscriptions/s";
    assert_error(
        &api.put_raw(sub, "{").await,
        400,
        "invalid",
        "not valid JSON",
    );
    assert_error(
        &api.put(
            sub,
            json!({"destination": {"url": "http://127.0.0.1:1/", "timeout_ms": "5s"}}),
        )
        .await,
        400,
        "invalid",
        "destination.timeout_ms",
    );
    assert_error(
        &api.put(
            sub,
            json!({"destination": {"url": "http://127.0.0.1:1/"}, "max_concurrency": -1}),
        )
        .await,
        400,
        "invalid",
        "max_concurrency",
    );
    assert_error(
        &api.put(sub, json!({"destination": {}})).await,
        400,
        "invalid",
        "url",
    );
    assert_error(
        &api.put(sub, json!({"destination": {"url": "not a url"}}))
            .await,
        400,
        "invalid",
        "destination.url",
    );
    assert_error(
        &api.put(sub, json!({"destination": {"url": "file:///etc/passwd"}}))
            .await,
        400,
        "invalid",
        "http://",
    );
    assert_error(
        &api.put(
            sub,
            json!({"pattern": {"source": "shop"}, "destination": {"url": "http://127.0.0.1:1/"}}),
        )
        .await,
        400,
        "invalid_pattern",
        "source",
    );
    assert_error(
        &api.put(
            sub,
            json!({"pattern": {"source": []}, "destination": {"url": "http://127.0.0.1:1/"}}),
        )
        .await,
        400,
        "invalid_pattern",
        "source",
    );
    assert_error(
        &api.put(
            "/v1/buses/nope/subscriptions/s",
            json!({"destination": {"url": "http://127.0.0.1:1/"}}),
        )
        .await,
        404,
        "not_found",
        "\"nope\"",
    );
    assert_error(
        &api.put(
            "/v1/buses/b/subscriptions/bad%20name",
            json!({"destination": {"url": "http://127.0.0.1:1/"}}),
        )
        .await,
        400,
        "invalid",
        "subscription name",
    );
    assert_eq!(
        api.get("/v1/buses/b/subscriptions").await.1["items"],
        json!([])
    );

    // A bad update leaves the existing subscription as it was.
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": "http://127.0.0.1:1/"}}),
    )
    .await;
    assert_error(
        &api.put(sub, json!({"destination": {"url": "nope"}})).await,
        400,
        "invalid",
        "destination.url",
    );
    assert_eq!(
        api.get(sub).await.1["destination"]["url"],
        "http://127.0.0.1:1/"
    );
}

#[tokio::test]
async fn unknown_things_are_404_and_bus_deletion_protects_subscriptions() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    assert_error(
        &api.get("/v1/buses/none").await,
        404,
        "not_found",
        "does not exist",
    );
    assert_error(
        &api.get("/v1/buses/none/subscriptions/s/stats").await,
        404,
        "not_found",
        "bus",
    );
    assert_error(
        &api.get("/v1/nothing-here").await,
        404,
        "not_found",
        "route",
    );
    assert_error(
        &api.put_raw("/v1/buses/b", "{\"colour\": 1}").await,
        400,
        "invalid",
        "colour",
    );
    api.bus("b").await;
    assert_error(
        &api.get("/v1/buses/b/subscriptions/none/dead-letters").await,
        404,
        "not_found",
        "\"none\"",
    );
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": "http://127.0.0.1:1/"}}),
    )
    .await;
    assert_error(
        &api.get("/v1/buses/b/subscriptions/s/dead-letters?limit=lots")
            .await,
        400,
        "invalid",
        "limit",
    );
    assert_error(
        &api.post(
            "/v1/buses/b/subscriptions/s/dead-letters/redrive",
            json!({"ids": ["x"]}),
        )
        .await,
        400,
        "invalid",
        "ids",
    );
    assert_error(
        &api.delete("/v1/buses/b").await,
        409,
        "conflict",
        "force=true",
    );
    assert_eq!(api.get("/v1/buses/b/subscriptions/s").await.0, 200);
    assert_eq!(api.delete("/v1/buses/b?force=true").await.0, 204);
    assert_eq!(api.get("/v1/buses").await.1["items"], json!([]));
}

#[tokio::test]
async fn test_pattern_answers_and_explains_invalid_patterns() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let body = r#"{"pattern": {"detail": {"n": [{"numeric": [">", 299]}]}}, "event": {"source": "s", "detail": {"n": 3.0e2}}}"#;
    assert_eq!(
        api.post_raw("/v1/test-pattern", body).await,
        (200, json!({"matches": true}))
    );
    let body = r#"{"pattern": {"source": ["a"]}, "event": {"source": "b"}}"#;
    assert_eq!(
        api.post_raw("/v1/test-pattern", body).await,
        (200, json!({"matches": false}))
    );
    let body = r#"{"pattern": {"detail": {"n": []}}, "event": {}}"#;
    assert_error(
        &api.post_raw("/v1/test-pattern", body).await,
        400,
        "invalid_pattern",
        "detail.n",
    );
    assert_error(
        &api.post_raw("/v1/test-pattern", r#"{"pattern": {}}"#).await,
        400,
        "invalid",
        "event",
    );

    let cli = std::process::Command::new(BIN)
        .args([
            "test-pattern",
            r#"{"source": [{"prefix": "shop."}]}"#,
            r#"{"source": "shop.orders"}"#,
        ])
        .output()
        .unwrap();
    assert!(cli.status.success());
    assert_eq!(
        String::from_utf8_lossy(&cli.stdout).trim(),
        r#"{"matches":true}"#
    );
    let cli = std::process::Command::new(BIN)
        .args(["test-pattern", r#"{"source": "x"}"#, "{}"])
        .output()
        .unwrap();
    assert!(!cli.status.success());
    assert!(String::from_utf8_lossy(&cli.stderr).contains("invalid pattern"));
}

/// Issue 13: `{"amount": 5, "amount": 1000000}` passed a filter `amount < 100` on its first key
/// and was delivered with both; receivers read the last. A body that gives a key twice is refused
/// with the key's path, on publish and on test-pattern alike, and nothing is delivered.
#[tokio::test]
async fn duplicate_keys_cannot_slip_past_a_filter() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "small",
        json!({"pattern": {"detail": {"amount": [{"numeric": ["<", 100]}]}}, "destination": {"url": receiver.url}}),
    )
    .await;
    let twice =
        r#"{"source": "s", "detail-type": "t", "detail": {"amount": 5, "amount": 1000000}}"#;
    assert_error(
        &api.post_raw("/v1/buses/b/events", twice).await,
        400,
        "invalid",
        "\"detail.amount\" is given twice",
    );
    let batch = format!(r#"{{"entries": [{twice}]}}"#);
    assert_error(
        &api.post_raw("/v1/buses/b/events", batch).await,
        400,
        "invalid",
        "\"entries[0].detail.amount\" is given twice",
    );
    let test = format!(
        r#"{{"pattern": {{"detail": {{"amount": [{{"numeric": ["<", 100]}}]}}}}, "event": {twice}}}"#
    );
    assert_error(
        &api.post_raw("/v1/test-pattern", test).await,
        400,
        "invalid",
        "\"detail.amount\" is given twice",
    );
    // An event published after the refused ones arrives alone: they were not delivered.
    api.publish("b", vec![event("s", json!({"amount": 6}))])
        .await;
    wait_for("the later event", Duration::from_secs(10), async || {
        receiver.count() >= 1
    })
    .await;
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body["detail"], json!({"amount": 6}));
}
