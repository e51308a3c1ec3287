//! Trace context reaches subscribers as a child of the publish; a bus that delivers into itself
//! stops at the hop limit (also through a webhook source) and within the forward budget of its
//! trace; the lint finds such loops before they run.

use std::time::Duration;

use crate::common::*;
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
    // The sentinel: an event one hop short of the limit, through the same subscription and the
    // same hop check, published after; its echo is refused. Once that refusal is recorded, a
    // loop that went on would have shown itself: everything beyond the sentinel's one is extra.
    let (status, body) = call(
        api.client
            .post(server.url("/v1/buses/loop/events"))
            .header("switchyard-hops", "3")
            .body(event("x", json!({"sentinel": true})).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the sentinel's echo to be refused",
        Duration::from_secs(30),
        async || api.stats("loop", "echo").await["dead"] == 2,
    )
    .await;
    assert_eq!(
        api.stats("loop", "echo").await["accepted"],
        4 + 1,
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
    // The sentinel: a second event, published after, through the same subscription and the same
    // de-duplication. Once its two echoes are delivered, an echo of the first event that went on
    // would have shown itself: the second's own two are all there may be beyond the first's.
    api.publish("loop", vec![event("x", json!({"sentinel": true}))])
        .await;
    wait_for(
        "the sentinel's two echoes",
        Duration::from_secs(20),
        async || api.stats("loop", "echo").await["delivered"] == 2 + 2,
    )
    .await;
    let stats = api.stats("loop", "echo").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["dead"].as_u64()),
        (Some(2 + 2), Some(0)),
        "{stats}"
    );
}

/// The transform of a subscription that republishes what it gets as a new event (without the id,
/// which de-duplication would stop on).
fn republish(url: String) -> serde_json::Value {
    json!({"destination": {
        "url": url,
        "transform": {
            "input_paths": {"source": "$.source", "type": "$.detail-type"},
            "input_template": "{\"source\": <source>, \"detail-type\": <type>, \"detail\": {}}"
        }
    }})
}

#[tokio::test]
async fn a_loop_through_a_webhook_source_stops_at_the_hop_limit() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--max-hops", "4"]);
    let api = Api::new(&server);
    api.bus("loop").await;
    let (status, body) = api
        .put(
            "/v1/sources/echo",
            json!({"bus": "loop", "verify": {"type": "api_key", "key": "k-1"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    api.subscribe(
        "loop",
        "to-hook",
        json!({"destination": {"url": server.url("/hooks/echo"), "headers": {"x-api-key": "k-1"}}}),
    )
    .await;
    api.publish("loop", vec![event("x", json!({}))]).await;
    wait_for(
        "the loop to stop with a dead letter",
        Duration::from_secs(30),
        async || api.stats("loop", "to-hook").await["dead"] == 1,
    )
    .await;

    let stats = api.stats("loop", "to-hook").await;
    assert_eq!(
        (stats["accepted"].as_u64(), stats["delivered"].as_u64()),
        (Some(4), Some(3)),
        "the hook must carry switchyard-hops on: hops 0 to 3 publish, the fourth is refused: {stats}"
    );
    let (_, page) = api
        .get("/v1/buses/loop/subscriptions/to-hook/dead-letters")
        .await;
    assert_eq!(page["items"][0]["last_status"], 400);
    assert!(
        page["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("max_hops"),
        "{page}"
    );
    let metrics = scrape(&api).await;
    assert_eq!(
        sample(
            &metrics,
            "switchyard_events_rejected_total{bus=\"loop\",reason=\"max_hops\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "switchyard_source_refusals_total{source=\"echo\",reason=\"max_hops\"}"
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn three_subscriptions_delivering_into_their_own_bus_cause_linear_not_exponential_deliveries()
{
    let dir = temp_dir();
    // Without the forward budget, hops alone let one event cause 3 + 9 + ... + 3^6 = 1,092
    // deliveries here; the budget of 10 forwards per original event stops it at 3 × (10 + 1).
    let server = Server::start(dir.path(), &["--max-hops", "6", "--max-forwards", "10"]);
    let api = Api::new(&server);
    api.bus("loop").await;
    let names = ["echo-1", "echo-2", "echo-3"];
    for name in names {
        api.subscribe("loop", name, republish(server.url("/v1/buses/loop/events")))
            .await;
    }
    api.publish("loop", vec![event("x", json!({}))]).await;
    let totals = async || {
        let mut totals = [0u64; 3];
        for name in names {
            let stats = api.stats("loop", name).await;
            totals[0] += stats["accepted"].as_u64().unwrap();
            totals[1] += stats["delivered"].as_u64().unwrap();
            totals[2] += stats["dead"].as_u64().unwrap();
        }
        totals
    };
    wait_for("the loop to stop", Duration::from_secs(60), async || {
        let [accepted, delivered, dead] = totals().await;
        accepted >= 33 && accepted == delivered + dead
    })
    .await;

    // 1 original + 10 accepted forwards, each delivered to the 3 subscriptions: 10 of those 33
    // deliveries were accepted forwards, the other 23 refused and dead-lettered.
    assert_eq!(totals().await, [33, 10, 23]);
    for name in names {
        assert_eq!(api.stats("loop", name).await["accepted"], 11, "{name}");
    }
    let (_, page) = api
        .get("/v1/buses/loop/subscriptions/echo-1/dead-letters")
        .await;
    assert!(
        page["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("max_forwards"),
        "{page}"
    );
    let metrics = scrape(&api).await;
    assert_eq!(
        sample(
            &metrics,
            "switchyard_events_rejected_total{bus=\"loop\",reason=\"max_forwards\"}"
        ),
        23.0,
        "{metrics}"
    );
    // The sentinel: an event one hop short of the limit, published after, through the same three
    // subscriptions and the same guard: each of its three forwards is refused. Once those are
    // recorded, a loop that went on would have shown itself beyond the sentinel's three.
    let (status, body) = call(
        api.client
            .post(server.url("/v1/buses/loop/events"))
            .header("switchyard-hops", "5")
            .body(event("x", json!({"sentinel": true})).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for(
        "the sentinel's forwards to be refused",
        Duration::from_secs(30),
        async || totals().await[2] == 23 + 3,
    )
    .await;
    assert_eq!(totals().await[0], 33 + 3, "the loop went on");
}

#[tokio::test]
async fn each_original_event_of_a_trace_brings_its_own_forward_budget() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--max-forwards", "1"]);
    let api = Api::new(&server);
    api.bus("a").await;
    api.bus("b").await;
    api.subscribe("a", "to-b", republish(server.url("/v1/buses/b/events")))
        .await;
    // Five events in one traced publish, each forwarded once: within a budget of one forward per
    // original event, although all five forwards are in the same trace.
    let entries: Vec<_> = (0..5).map(|n| event("x", json!({"n": n}))).collect();
    let (status, body) = call(
        api.client
            .post(server.url("/v1/buses/a/events"))
            .header("traceparent", PARENT)
            .body(json!({"entries": entries}).to_string()),
    )
    .await;
    assert_eq!(
        (status, &body["failed_entry_count"]),
        (200, &json!(0)),
        "{body}"
    );
    wait_for("the forwards", Duration::from_secs(20), async || {
        let stats = api.stats("a", "to-b").await;
        stats["delivered"].as_u64().unwrap() + stats["dead"].as_u64().unwrap() == 5
    })
    .await;
    assert_eq!(api.stats("a", "to-b").await["delivered"], 5);
    // A forward beyond it is refused.
    let (status, body) = call(
        api.client
            .post(server.url("/v1/buses/b/events"))
            .header("traceparent", PARENT)
            .header("switchyard-hops", "1")
            .body(event("x", json!({})).to_string()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("max_forwards")),
        "{body}"
    );
}

#[tokio::test]
async fn two_buses_forwarding_into_each_other_are_reported_before_they_run() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("a").await;
    api.bus("b").await;
    let into = |bus: &str, source: &str| {
        json!({
            "pattern": {"source": [source]},
            "destination": {"url": server.url(&format!("/v1/buses/{bus}/events"))}
        })
    };
    let (status, answer) = api
        .put("/v1/buses/a/subscriptions/to-b", into("b", "shop"))
        .await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer.get("warnings").is_none(), "no cycle yet: {answer}");
    assert_eq!(answer["pattern"], json!({"source": ["shop"]}));

    // The PUT that closes the cycle says so.
    let (status, answer) = api
        .put("/v1/buses/b/subscriptions/to-a", into("a", "shop"))
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["name"], "to-a");
    assert_eq!(answer["warnings"][0]["kind"], "loop", "{answer}");
    assert_eq!(
        answer["warnings"][0]["subscriptions"],
        json!(["a/to-b", "b/to-a"])
    );
    let (status, lint) = api.get("/v1/lint").await;
    assert_eq!(status, 200);
    assert_eq!(lint["findings"].as_array().unwrap().len(), 1, "{lint}");
    assert_eq!(
        lint["findings"][0]["subscriptions"],
        json!(["a/to-b", "b/to-a"])
    );
    let cli = std::process::Command::new(BIN)
        .args(["lint", "--url", &server.base])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert_eq!(cli.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("a/to-b, b/to-a"), "{stdout}");

    // What a/to-b forwards has source "shop": a forward of source "never" cannot match it.
    let (status, answer) = api
        .put("/v1/buses/b/subscriptions/to-a", into("a", "never"))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("warnings").is_none(), "{answer}");
    assert_eq!(api.get("/v1/lint").await.1, json!({"findings": []}));
    let cli = std::process::Command::new(BIN)
        .args(["lint", "--url", &server.base])
        .output()
        .unwrap();
    assert_eq!(cli.status.code(), Some(0));
}

#[test]
fn lint_checks_a_config_file_offline() {
    let dir = temp_dir();
    let config = dir.path().join("switchyard.toml");
    let write = |to_a_source: &str| {
        std::fs::write(
            &config,
            format!(
                r#"
                [server]
                listen = "127.0.0.1:8700"

                [buses.a.subscriptions.to-b]
                pattern = {{ source = ["shop"] }}
                destination = {{ url = "http://localhost:8700/v1/buses/b/events" }}

                [buses.b.subscriptions.to-a]
                pattern = {{ source = ["{to_a_source}"] }}
                destination = {{ url = "http://127.0.0.1:8700/v1/buses/a/events" }}
                "#
            ),
        )
        .unwrap();
    };
    let lint = |args: &[&str]| std::process::Command::new(BIN).args(args).output().unwrap();
    let path = config.to_str().unwrap();
    write("shop");
    let found = lint(&["lint", path]);
    let stdout = String::from_utf8_lossy(&found.stdout);
    assert_eq!(found.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("a/to-b, b/to-a"), "{stdout}");
    // Served elsewhere, the same URLs are not this server's.
    assert_eq!(
        lint(&["lint", path, "--listen", "127.0.0.1:9000"])
            .status
            .code(),
        Some(0)
    );
    write("never");
    assert_eq!(lint(&["lint", path]).status.code(), Some(0));
    let missing = lint(&["lint", "/nonexistent/switchyard.toml"]);
    assert_eq!(missing.status.code(), Some(2));
}
