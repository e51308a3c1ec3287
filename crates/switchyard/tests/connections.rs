//! Connections: basic, API key (with extra headers and query parameters) and OAuth client
//! credentials against real receivers and a token endpoint on 127.0.0.1; secrets stay sealed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::json;

const PASSWORD: &str = "pw-secret-8d1f";
const API_KEY: &str = "key-secret-77aa";
const CLIENT_SECRET: &str = "client-secret-c0ffee";

#[tokio::test]
async fn connections_authenticate_deliveries_and_keep_their_secrets() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    // The token endpoint issues tok-1, tok-2, ...; the API accepts only the newest token, as if
    // tok-1 had been revoked as soon as tok-2 existed, and refuses tok-1 from its third use on.
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&issued);
    let tokens = Receiver::start(move |_, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::json(
            200,
            json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600}),
        )
    })
    .await;
    let seen_tok1 = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&seen_tok1);
    let oauth_api = Receiver::start(move |hit, _| match hit.header("authorization") {
        "Bearer tok-1" if seen.fetch_add(1, Ordering::SeqCst) < 2 => Reply::status(200),
        "Bearer tok-2" => Reply::status(200),
        _ => Reply::status(401),
    })
    .await;

    let (status, view) = api
        .put(
            "/v1/connections/basic",
            json!({"auth": {"type": "basic", "username": "svc", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{view}");
    assert!(!view.to_string().contains(PASSWORD), "{view}");
    api.put(
        "/v1/connections/keyed",
        json!({
            "auth": {"type": "api_key", "header": "X-API-Key", "value": API_KEY},
            "headers": {"X-Team": "billing"},
            "query": {"tenant": "acme"}
        }),
    )
    .await;
    let (status, view) = api.put("/v1/connections/oauth", json!({"auth": {
        "type": "oauth2_client_credentials", "token_url": format!("{}/token", tokens.url),
        "client_id": "switchyard", "client_secret": CLIENT_SECRET, "scopes": ["orders.write"]
    }}))
    .await;
    assert_eq!(status, 201, "{view}");

    api.bus("b").await;
    let (status, body) = api
        .put(
            "/v1/buses/b/subscriptions/none",
            json!({"destination": {"url": receiver.url, "connection": "missing"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    api.subscribe("b", "basic", json!({"pattern": {"source": ["basic"]}, "destination": {"url": format!("{}/basic", receiver.url), "connection": "basic"}})).await;
    api.subscribe("b", "keyed", json!({"pattern": {"source": ["keyed"]}, "destination": {"url": format!("{}/keyed?x=1", receiver.url), "connection": "keyed"}})).await;
    api.subscribe(
        "b",
        "oauth",
        json!({
            "pattern": {"source": ["oauth"]},
            "destination": {"url": oauth_api.url, "connection": "oauth"},
            "max_concurrency": 1
        }),
    )
    .await;
    api.publish(
        "b",
        vec![event("basic", json!({})), event("keyed", json!({}))],
    )
    .await;
    api.publish(
        "b",
        (0..4).map(|i| event("oauth", json!({"i": i}))).collect(),
    )
    .await;
    wait_for("deliveries", Duration::from_secs(30), async || {
        receiver.count() == 2 && api.stats("b", "oauth").await["delivered"] == 4
    })
    .await;

    let hits = receiver.hits();
    let basic = hits.iter().find(|h| h.path == "/basic").unwrap();
    assert_eq!(
        basic.header("authorization"),
        format!("Basic {}", STANDARD.encode(format!("svc:{PASSWORD}")))
    );
    let keyed = hits.iter().find(|h| h.path == "/keyed").unwrap();
    assert_eq!(keyed.header("x-api-key"), API_KEY);
    assert_eq!(keyed.header("x-team"), "billing");
    assert!(
        keyed.query.contains("x=1") && keyed.query.contains("tenant=acme"),
        "{}",
        keyed.query
    );

    // One token for the first deliveries, shared; one refresh after the 401, retried at once.
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "tokens are cached and refreshed once on a 401"
    );
    let token_request = &tokens.hits()[0];
    assert!(token_request.header("authorization").starts_with("Basic "));
    let form = String::from_utf8_lossy(&token_request.raw_body).to_string();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    let oauth_stats = api.stats("b", "oauth").await;
    assert_eq!(oauth_stats["dead"], 0, "{oauth_stats}");

    assert_eq!(
        api.delete("/v1/connections/basic").await.0,
        409,
        "a connection in use cannot be deleted"
    );
    let (_, listed) = api.get("/v1/connections").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    let log = server.log_text();
    drop(server);
    for secret in [PASSWORD, API_KEY, CLIENT_SECRET] {
        assert!(
            !contains_anywhere(&data, secret.as_bytes()),
            "{secret} is in the data directory"
        );
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}
