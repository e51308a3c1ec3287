//! Starting up: the config file, defaults, and admin safety on non-loopback addresses.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn the_config_file_declares_buses_and_subscriptions() {
    let dir = temp_dir();
    let receiver = Receiver::ok().await;
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[buses.orders]
description = "orders from the shop"

[buses.orders.subscriptions.billing]
pattern = {{ source = ["shop"], detail = {{ total = [{{ numeric = [">", 10] }}] }} }}
destination = {{ url = "{}/billing", headers = {{ x-team = "billing" }} }}
retry = {{ max_attempts = 5 }}
"#,
            receiver.url
        ),
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let api = Api::new(&server);
    let (status, view) = api.get("/v1/buses/orders/subscriptions/billing").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["retry"]["max_attempts"], 5);
    assert_eq!(
        view["retry"]["min_backoff_ms"], 1000,
        "defaults are the API's"
    );
    api.publish(
        "orders",
        vec![
            event("shop", json!({"total": 5})),
            event("shop", json!({"total": 50})),
        ],
    )
    .await;
    wait_for("delivery", Duration::from_secs(20), async || {
        receiver.count() == 1
    })
    .await;
    assert_eq!(receiver.hits()[0].body["detail"]["total"], 50);
    assert_eq!(receiver.hits()[0].header("x-team"), "billing");
}

#[tokio::test]
async fn a_bad_config_file_stops_start_with_the_key_named() {
    let dir = temp_dir();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[buses.orders.subscriptions.billing]\ndestination = { url = \"nope\" }\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let result = Server::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let log = result.err().expect("must not start").join("\n");
    assert!(log.contains("buses.orders.subscriptions.billing"), "{log}");
}

#[tokio::test]
async fn a_non_loopback_listener_requires_api_tokens() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let refused = Server::spawn(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let log = refused.err().expect("must refuse to start").join("\n");
    assert!(log.contains("without API tokens"), "{log}");

    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# admin\ns3cret-token-0123456789\n").unwrap();
    let server = Server::spawn(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--api-tokens-file",
        tokens.to_str().unwrap(),
    ])
    .unwrap();
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let (status, body) = call(http.get(format!("{base}/v1/buses"))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = call(http.get(format!("{base}/v1/buses")).bearer_auth("wrong")).await;
    assert_eq!(status, 401);
    let (status, _) = call(
        http.get(format!("{base}/v1/buses"))
            .bearer_auth("s3cret-token-0123456789"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(http.get(format!("{base}/healthz"))).await;
    assert_eq!(status, 200, "health checks stay open");
    assert!(
        !server.log_text().contains("s3cret-token"),
        "a token reached the log"
    );
    assert!(
        server.log_text().contains("each is an admin token"),
        "the one-token-per-line file is taken with a warning"
    );
    assert!(
        server
            .log_text()
            .contains("without TLS: API tokens, published events"),
        "plain HTTP off loopback is said to be readable: {}",
        server.log_text()
    );
}

#[tokio::test]
async fn the_listener_serves_https_with_the_given_certificate() {
    let dir = temp_dir();
    let ca = TestCa::new("switchyard test CA");
    let leaf = ca.server();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert, &leaf.cert).unwrap();
    std::fs::write(&key, &leaf.key).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let api = Api {
        server: &server,
        client: ca.https_client(),
    };
    assert_eq!(api.get("/healthz").await, (200, json!({"status": "ok"})));
    api.bus("orders").await;
    let ids = api
        .publish("orders", vec![event("shop", json!({"n": 1}))])
        .await;
    assert_eq!(ids.len(), 1);
    assert!(
        scrape(&api).await.contains("switchyard_"),
        "metrics over HTTPS"
    );

    let limit = Duration::from_secs(10);
    let untrusted = client()
        .get(server.url("/healthz"))
        .timeout(limit)
        .send()
        .await;
    assert!(
        untrusted.is_err(),
        "a client that does not trust the CA got {untrusted:?}"
    );
    let plain = server.base.replacen("https://", "http://", 1);
    let answered = client()
        .get(format!("{plain}/healthz"))
        .timeout(limit)
        .send()
        .await;
    assert!(
        answered.is_err(),
        "plain HTTP to the HTTPS port got {answered:?}"
    );
}

#[tokio::test]
async fn a_listener_key_that_is_not_pem_stops_start_naming_the_file() {
    let dir = temp_dir();
    let leaf = TestCa::new("switchyard test CA").server();
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert, &leaf.cert).unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let data = dir.path().join("data");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let log = Server::spawn(&args)
        .err()
        .expect("must not start")
        .join("\n");
    assert!(
        log.contains("--tls-key") && log.contains("server.key"),
        "{log}"
    );
    let log = Server::spawn(&args[..7])
        .err()
        .expect("must not start")
        .join("\n");
    assert!(
        log.contains("--tls-key"),
        "a certificate without its key: {log}"
    );
}

const TOKENS: &str = r#"
[tokens.deployer]
token = "admin-token-0123456789"
scopes = ["admin"]

[tokens.shop]
token = "publish-token-0123456789"
scopes = ["publish:orders"]

[tokens.anybus]
token = "anybus-token-0123456789"
scopes = ["publish"]

[tokens.viewer]
token = "read-token-0123456789"
scopes = ["read"]

[tokens.prometheus]
token = "metrics-token-0123456789"
scopes = ["metrics"]
"#;

#[tokio::test]
async fn a_publish_token_cannot_write_connections() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, TOKENS).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--api-tokens-file", tokens.to_str().unwrap()],
    );
    let http = client();
    let url = |path: &str| server.url(path);
    let admin = "admin-token-0123456789";
    for bus in ["orders", "payments"] {
        let (status, body) = call(
            http.put(url(&format!("/v1/buses/{bus}")))
                .bearer_auth(admin)
                .body("{}"),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let connection = json!({"auth": {"type": "basic", "username": "u", "password": "pw"}});

    let (status, body) = call(
        http.put(url("/v1/connections/x"))
            .bearer_auth("publish-token-0123456789")
            .body(connection.to_string()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"shop\"") && message.contains("admin"),
        "names the token and the scope it lacks: {message}"
    );
    let (status, _) = call(http.get(url("/v1/connections/x")).bearer_auth(admin)).await;
    assert_eq!(status, 404, "nothing was written");

    let event = json!({"source": "shop", "detail-type": "t", "detail": {}}).to_string();
    let publish = |bus: &str, token: &str| {
        http.post(url(&format!("/v1/buses/{bus}/events")))
            .bearer_auth(token)
            .body(event.clone())
    };
    assert_eq!(
        call(publish("orders", "publish-token-0123456789")).await.0,
        200
    );
    let (status, body) = call(publish("payments", "publish-token-0123456789")).await;
    assert_eq!(
        status, 403,
        "publish:orders does not reach payments: {body}"
    );
    assert_eq!(
        call(publish("payments", "anybus-token-0123456789")).await.0,
        200
    );
    assert_eq!(
        call(publish("orders", "read-token-0123456789")).await.0,
        403
    );

    let viewer = "read-token-0123456789";
    assert_eq!(
        call(http.get(url("/v1/buses")).bearer_auth(viewer)).await.0,
        200
    );
    let (status, _) =
        call(http.post(url("/v1/test-pattern")).bearer_auth(viewer).body(
            json!({"pattern": {"source": ["shop"]}, "event": {"source": "shop"}}).to_string(),
        ))
        .await;
    assert_ne!(status, 403, "testing a pattern changes nothing: read may");
    let (status, _) = call(
        http.put(url("/v1/buses/third"))
            .bearer_auth(viewer)
            .body("{}"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        call(
            http.put(url("/v1/connections/x"))
                .bearer_auth(admin)
                .body(connection.to_string())
        )
        .await
        .0,
        201
    );

    // `/metrics` lists bus and subscription names: it needs a token with `metrics` too.
    let (status, body) = call(http.get(url("/metrics"))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        call(http.get(url("/metrics")).bearer_auth(viewer)).await.0,
        403
    );
    let scrape = http
        .get(url("/metrics"))
        .header("authorization", "bearer metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200, "the scheme is case-insensitive");
    assert!(scrape.text().await.unwrap().contains("switchyard_"));
    assert_eq!(call(http.get(url("/healthz"))).await.0, 200);
    assert!(!server.log_text().contains("token-0123456789"));
}

#[tokio::test]
async fn a_short_token_is_refused_on_a_network_listener() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "x\n").unwrap();
    let data = dir.path().join("data");
    let refused = Server::spawn(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--api-tokens-file",
        tokens.to_str().unwrap(),
    ]);
    let log = refused.err().expect("must refuse to start").join("\n");
    assert!(log.contains("shorter than 16 characters (line 1)"), "{log}");
    // On loopback only this machine's users can try it: allowed, as before.
    Server::start(&data, &["--api-tokens-file", tokens.to_str().unwrap()]);
}

#[tokio::test]
async fn a_short_aws_secret_key_is_refused_on_a_network_listener_like_a_token() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[tokens.shop]\ntoken = \"shop-token-0123456789\"\nscopes = [\"read\"]\n\
         aws_access_key_id = \"AKIASHOP0000000000\"\naws_secret_access_key = \"short\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let refused = Server::spawn(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--api-tokens-file",
        tokens.to_str().unwrap(),
    ]);
    let log = refused.err().expect("must refuse to start").join("\n");
    assert!(
        log.contains("shorter than 16 characters (shop (aws_secret_access_key))"),
        "{log}"
    );
    assert!(!log.contains("short\""), "{log}");
    Server::start(&data, &["--api-tokens-file", tokens.to_str().unwrap()]);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    assert_eq!(api.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(api.get("/readyz").await.0, 200);
    assert!(
        server
            .log_text()
            .contains(&format!("data in {}", dir.path().display()))
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/buses",
        "/v1/buses/{bus}",
        "/v1/buses/{bus}/events",
        "/v1/buses/{bus}/subscriptions",
        "/v1/buses/{bus}/subscriptions/{name}",
        "/v1/buses/{bus}/subscriptions/{name}/stats",
        "/v1/buses/{bus}/subscriptions/{name}/dead-letters",
        "/v1/buses/{bus}/subscriptions/{name}/dead-letters/redrive",
        "/v1/test-pattern",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    let routes = include_str!("../../../server/src/api/mod.rs");
    let documented = doc["paths"].as_object().unwrap().len();
    let served = routes.matches(".route(").count();
    assert_eq!(
        documented, served,
        "every route, and only those, is in openapi.json"
    );
}

/// A redirected log carried ANSI colour codes (`\x1b[2m…`), which log collectors show as
/// garbage: colours are for a terminal only. (The harness's servers run with `NO_COLOR`, which
/// hid it; this one runs without.)
#[tokio::test]
async fn a_redirected_log_has_no_colour_codes() {
    let dir = temp_dir();
    let log_path = dir.path().join("serve.log");
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("the server to start", Duration::from_secs(20), async || {
        read().contains("listening on")
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let log = read();
    assert!(!log.contains('\u{1b}'), "{log:?}");
}
