//! Bad input gets a clear error in the API's shape, with the right status, and changes nothing.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

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

/// A 16 MiB bus description was accepted and listed in full: eight concurrent lists took the
/// server to 1.66 GB. Descriptions are bounded, and lists are paged.
#[tokio::test]
async fn huge_descriptions_are_refused_and_lists_are_paged() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let huge = "x".repeat(64 * 1024);
    assert_error(
        &api.put("/v1/buses/b", json!({"description": huge})).await,
        400,
        "invalid",
        "the limit is 1024",
    );
    assert_eq!(api.get("/v1/buses/b").await.0, 404, "nothing was created");
    api.bus("b").await;
    assert_error(
        &api.put("/v1/buses/b/archives/a", json!({"description": huge}))
            .await,
        400,
        "invalid",
        "description",
    );
    assert_error(
        &api.put("/v1/connections/c", json!({"description": huge}))
            .await,
        400,
        "invalid",
        "description",
    );

    for name in ["e", "a", "d", "c"] {
        api.bus(name).await;
    }
    let (status, first) = api.get("/v1/buses?limit=2").await;
    assert_eq!(status, 200, "{first}");
    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first["next"], "b");
    let (_, second) = api.get("/v1/buses?limit=2&after=b").await;
    assert_eq!(names(&second), ["c", "d"]);
    let (_, last) = api.get("/v1/buses?limit=2&after=d").await;
    assert_eq!(names(&last), ["e"]);
    assert_eq!(last["next"], Value::Null);
    let (_, all) = api.get("/v1/buses").await;
    assert_eq!(names(&all).len(), 5, "the default page holds them all");
    assert_error(
        &api.get("/v1/buses?limit=100000").await,
        400,
        "invalid",
        "limit",
    );
}

/// One 1 MB event with a large array of objects took 11 s of CPU to match, on the threads that
/// answer every request: two at once stalled `/healthz` and other buses for 12 s.
#[tokio::test]
async fn a_large_array_event_does_not_stall_the_server() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("big").await;
    api.bus("other").await;
    api.subscribe(
        "big",
        "shipped",
        json!({"pattern": {"detail": {"items": {"sku": ["A"], "status": ["shipped"]}}}, "destination": {"url": receiver.url}}),
    )
    .await;
    let items: Vec<Value> = (0..20_000)
        .map(|_| json!({"sku": "A", "status": "new"}))
        .collect();
    let big =
        json!({"source": "shop", "detail-type": "order", "detail": {"items": items}}).to_string();
    assert!(big.len() < 1_000_000, "{}", big.len());
    let publishes: Vec<_> = (0..4)
        .map(|_| {
            let request = api
                .client
                .post(server.url("/v1/buses/big/events"))
                .body(big.clone());
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // While those are parsed and matched, the server answers everyone else. The bound is a
    // liveness limit, far above any answer time; the stall this guards against was 12 s per
    // pair of such events.
    let bounded = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..5 {
        let (status, _) = call(bounded.get(server.url("/healthz"))).await;
        assert_eq!(status, 200);
        let (status, body) = call(
            bounded
                .post(server.url("/v1/buses/other/events"))
                .body(json!({"source": "s", "detail-type": "t", "detail": {}}).to_string()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    for publish in publishes {
        let status = publish.await.unwrap().unwrap();
        assert!(status == 200 || status == 400, "{status}");
    }
    assert_eq!(receiver.count(), 0, "no item is shipped");
}

/// The HTTP layer's 400, 414 and 431 had empty bodies, and a 413 from `/hooks` was plain text.
#[tokio::test]
async fn http_layer_errors_have_the_json_shape() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    assert_error(&api.get("/v1/buses/%FF").await, 400, "invalid", "");
    let long = format!("/v1/buses/b?x={}", "y".repeat(10_000));
    assert_error(&api.get(&long).await, 414, "uri_too_long", "limit");
    let mut many = api.client.get(server.url("/v1/buses"));
    for i in 0..80 {
        many = many.header(format!("x-h{i}"), "v");
    }
    assert_error(&call(many).await, 431, "headers_too_large", "limits");
    let address = server.base.trim_start_matches("http://").to_string();
    // Chunked, so the size is known only as the body arrives: the limit of the body reader.
    let mut chunked =
        b"POST /hooks/nope HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(&address, chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");

    // A declared body over the limit is refused at once, before any of it is sent.
    let head =
        b"POST /v1/buses/b/events HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000000\r\n\r\n{";
    let answer = raw_exchange(&address, head.to_vec()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
}

/// Writes `request` (ignoring a write cut short by the server's answer) and reads the answer's
/// first bytes; a liveness bound, not a speed check.
async fn raw_exchange(address: &str, request: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        write
    });
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), read.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    writer.abort();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// 1,000 slowloris connections, 2,000 idle ones and 500 slow bodies were never closed, and
/// 1,100 slow connections under a 1,024 descriptor limit made `/healthz` time out for everyone.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_healthz_keeps_a_reserve() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir();
    let server = Server::start(
        dir.path(),
        &[
            "--http-header-timeout-s",
            "3",
            "--http-body-grace-s",
            "3",
            "--http-body-min-rate",
            "1000",
            "--max-connections",
            "120",
            "--reserved-connections",
            "10",
        ],
    );
    let address = server.base.trim_start_matches("http://").to_string();
    let api = Api::new(&server);
    api.bus("b").await;
    let mut held = Vec::new();
    for i in 0..115 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        match i % 3 {
            // Idle: connects and says nothing.
            0 => {}
            // Slowloris: a request head that never ends.
            1 => stream.write_all(b"GET /v1/buses HTTP/1.1\r\nhost: x\r\n").await.unwrap(),
            // A slow body: the head, then a fraction of what it declares.
            _ => stream
                .write_all(b"POST /v1/buses/b/events HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{")
                .await
                .unwrap(),
        }
        held.push(stream);
    }
    // 115 of 120 connections taken: the health check still answers, on the reserve, and the
    // rest of the API says why it does not.
    let (status, _) = call(client().get(server.url("/healthz"))).await;
    assert_eq!(status, 200);
    let refused = call(client().get(server.url("/v1/buses"))).await;
    assert_error(
        &refused,
        503,
        "unavailable",
        "limit of 120 open connections",
    );
    // Every one of them is closed by the server, without a byte more from the client. The
    // bound is a liveness limit, far above the 3 s deadlines (which are long enough for the
    // connections above to be made before the first is closed).
    let mut slow_bodies_refused = 0;
    for mut stream in held {
        let mut answer = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
        assert!(closed.is_ok(), "a connection was left open");
        if String::from_utf8_lossy(&answer).contains("request_timeout") {
            slow_bodies_refused += 1;
        }
    }
    assert!(
        slow_bodies_refused > 0,
        "slow bodies get 408 request_timeout"
    );
    let (status, _) = call(client().get(server.url("/v1/buses"))).await;
    assert_eq!(status, 200, "and the server serves everyone again");
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

/// A 100,000-level deep event was refused on a bus with patterns but accepted and delivered on
/// a bus whose subscriptions have none; its replay then "completed" with nothing delivered.
#[tokio::test]
async fn deep_nesting_is_refused_on_a_bus_without_patterns() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("b").await;
    api.subscribe("b", "all", json!({"destination": {"url": receiver.url}}))
        .await;
    for depth in [129, 100_000] {
        let detail = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body =
            format!(r#"{{"source": "s", "detail-type": "t", "detail": {{"deep": {detail}}}}}"#);
        assert_error(
            &api.post_raw("/v1/buses/b/events", body).await,
            400,
            "invalid",
            "128 levels",
        );
    }
    let fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let body = format!(r#"{{"source": "s", "detail-type": "t", "detail": {{"deep": {fine}}}}}"#);
    assert_eq!(api.post_raw("/v1/buses/b/events", body).await.0, 200);
    wait_for(
        "the event within the limit",
        Duration::from_secs(10),
        async || receiver.count() == 1,
    )
    .await;
}

/// One document, one meaning for configuration too: a subscription body that gave
/// `destination` twice was stored with the last one, whatever the first said.
#[tokio::test]
async fn duplicate_keys_in_a_configuration_body_are_refused() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    let body = r#"{"destination": {"url": "http://127.0.0.1:9/a"}, "destination": {"url": "http://127.0.0.1:9/b"}}"#;
    assert_error(
        &api.put_raw("/v1/buses/b/subscriptions/s", body).await,
        400,
        "invalid",
        "\"destination\" is given twice",
    );
    assert_eq!(api.get("/v1/buses/b/subscriptions/s").await.0, 404);
    assert_error(
        &api.put_raw("/v1/buses/b", r#"{"description": "a", "description": "b"}"#)
            .await,
        400,
        "invalid",
        "description",
    );
}
