//! Trace context reaches subscribers as a child of the publish; a bus that delivers into itself
//! stops at the hop limit.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn attempts_carry_a_child_of_the_publish_trace() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 503 } else { 200 })).await;
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 10, "max_backoff_ms": 20}})).await;
    let (status, _) = call(
        api.client
            .post(server.url("/v1/buses/b/events"))
            .header("traceparent", PARENT)
            .header("tracestate", "congo=t61rcWkgMzE")
            .body(event("x", json!({})).to_string()),
    )
    .await;
    assert_eq!(status, 200);
    // Without a traceparent (or with an invalid one), the event starts a new trace.
    let (status, _) = call(
        api.client
            .post(server.url("/v1/buses/b/events"))
            .header("traceparent", "bogus")
            .body(event("y", json!({})).to_string()),
    )
    .await;
    assert_eq!(status, 200);
    wait_for("deliveries", Duration::from_secs(20), async || {
        receiver.count() == 3
    })
    .await;

    let hits = receiver.hits();
    let traced: Vec<_> = hits.iter().filter(|h| h.body["source"] == "x").collect();
    assert_eq!(traced.len(), 2, "one failed attempt and one retry");
    let mut spans = Vec::new();
    for hit in &traced {
        let parts: Vec<&str> = hit.header("traceparent").split('-').collect();
        assert_eq!(parts.len(), 4, "{}", hit.header("traceparent"));
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
        );
        assert_ne!(parts[2], "00f067aa0ba902b7", "each attempt is a new span");
        spans.push(parts[2].to_string());
        assert_eq!(hit.header("tracestate"), "congo=t61rcWkgMzE");
    }
    assert_ne!(spans[0], spans[1]);
    let fresh = hits.iter().find(|h| h.body["source"] == "y").unwrap();
    let parts: Vec<&str> = fresh.header("traceparent").split('-').collect();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[1].len(), 32);
    assert_ne!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(fresh.header("switchyard-hops"), "1");
}

#[tokio::test]
async fn a_subscription_that_delivers_into_its_own_bus_stops_at_the_hop_limit() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--max-hops", "4"]);
    let api = Api::new(&server);
    api.bus("loop").await;
    // Every event on the bus is delivered back to the bus's own publish endpoint, as a new event
    // (a transform drops the id: republishing the same id would be stopped by de-duplication,
    // and this test is about the hop limit).
    api.subscribe(
        "loop",
        "echo",
        json!({"destination": {
            "url": server.url("/v1/buses/loop/events"),
            "transform": {
                "input_paths": {"source": "$.source", "type": "$.detail-type"},
                "input_template": "{\"source\": <source>, \"detail-type\": <type>, \"detail\": {}}"
            }
        }}),
    )
    .await;
    api.publish("loop", vec![event("x", json!({"n": 1}))]).await;
    wait_for(
        "the loop to stop with a dead letter",
        Duration::from_secs(30),
        async || api.stats("loop", "echo").await["dead"] == 1,
    )
    .await;

    let stats = api.stats("loop", "echo").await;
    assert_eq!(
        stats["accepted"], 4,
        "hops 0 to 3 publish; the fourth delivery is refused: {stats}"
    );
    assert_eq!(stats["delivered"], 3);
    let (_, page) = api
        .get("/v1/buses/loop/subscriptions/echo/dead-letters")
        .await;
    assert_eq!(page["items"][0]["last_status"], 400);
    assert!(
        page["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("max_hops")
    );
    let metrics = scrape(&api).await;
    assert!(
        metrics.contains("switchyard_events_rejected_total{bus=\"loop\",reason=\"max_hops\"} 1"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        api.stats("loop", "echo").await["accepted"],
        4,
        "the loop went on"
    );
}

#[tokio::test]
async fn a_bad_hops_header_is_refused() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    let (status, body) = call(
        api.client
            .post(server.url("/v1/buses/b/events"))
            .header("switchyard-hops", "many")
            .body(event("x", json!({})).to_string()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid"))
    );
    let (status, body) = call(
        api.client
            .post(server.url("/v1/buses/b/events"))
            .header("switchyard-hops", "8")
            .body(event("x", json!({})).to_string()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("max_hops"))
    );
}

#[tokio::test]
async fn attempts_are_exported_as_spans_under_the_publish_span() {
    let dir = temp_dir();
    let collector = Receiver::ok().await;
    let server = Server::start(dir.path(), &["--otlp-endpoint", &collector.url]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}}))
        .await;
    let (status, _) = call(
        api.client
            .post(server.url("/v1/buses/b/events"))
            .header("traceparent", PARENT)
            .body(event("x", json!({})).to_string()),
    )
    .await;
    assert_eq!(status, 200);
    wait_for("an exported span", Duration::from_secs(20), async || {
        collector.count() >= 1
    })
    .await;
    let export = &collector.hits()[0];
    assert_eq!(export.path, "/v1/traces");
    let span = &export.body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
    let sent = receiver.hits()[0].header("traceparent").to_string();
    assert_eq!(
        sent.split('-').nth(2),
        span["spanId"].as_str(),
        "the span is the one the attempt announced"
    );
    assert_eq!(span["name"], "deliver b/s");
    assert!(
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "http.response.status_code")
    );
}

#[tokio::test]
async fn an_envelope_delivered_back_to_its_own_bus_is_stopped_by_its_id() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("loop").await;
    api.subscribe(
        "loop",
        "echo",
        json!({"destination": {"url": server.url("/v1/buses/loop/events")}}),
    )
    .await;
    api.publish("loop", vec![event("x", json!({}))]).await;
    // The first echo carries the (generated) id as the publisher's own and is accepted; the echo
    // of the echo repeats that id and is acknowledged without a new delivery.
    wait_for("two echoes", Duration::from_secs(20), async || {
        api.stats("loop", "echo").await["delivered"] == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = api.stats("loop", "echo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["dead"].as_u64()),
        (Some(2), Some(0)),
        "{stats}"
    );
}
