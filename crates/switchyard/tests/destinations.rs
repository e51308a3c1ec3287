//! Destinations against real receivers on 127.0.0.1: every payload format, URL and header
//! templates, the input transformer, and Standard Webhooks signatures checked independently.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::{Value, json};

/// Publishes one order event to a fresh subscription with `destination` and returns what the
/// receiver got.
async fn deliver(api: &Api<'_>, receiver: &Receiver, name: &str, destination: Value) -> Hit {
    api.subscribe(
        "shop",
        name,
        json!({"pattern": {"detail": {"orderId": [name]}}, "destination": destination}),
    )
    .await;
    let before = receiver.count();
    api.publish(
        "shop",
        vec![json!({
            "source": "shop.orders",
            "detail-type": "Order Placed",
            "resources": ["urn:shop:order/o 1"],
            "detail": {"orderId": name, "total": 3.0e2, "customer": {"tier": "Gold & more"}}
        })],
    )
    .await;
    wait_for("a delivery", Duration::from_secs(20), async || {
        receiver.count() > before
    })
    .await;
    receiver.hits().pop().unwrap()
}

#[tokio::test]
async fn every_format_reaches_receivers_written_for_it() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("shop").await;
    let url = format!("{}/in", receiver.url);

    let hit = deliver(
        &api,
        &receiver,
        "detail",
        json!({"url": url, "format": "detail"}),
    )
    .await;
    assert_eq!(
        hit.body,
        json!({"orderId": "detail", "total": 300.0, "customer": {"tier": "Gold & more"}})
    );
    assert!(hit.header("content-type").starts_with("application/json"));

    let hit = deliver(
        &api,
        &receiver,
        "ce-binary",
        json!({"url": url, "format": "cloudevents-binary"}),
    )
    .await;
    assert_eq!(hit.header("ce-specversion"), "1.0");
    assert_eq!(hit.header("ce-type"), "Order%20Placed");
    assert_eq!(hit.header("ce-source"), "shop.orders");
    assert!(!hit.header("ce-id").is_empty() && !hit.header("ce-time").is_empty());
    assert_eq!(hit.body["orderId"], "ce-binary");

    let hit = deliver(
        &api,
        &receiver,
        "ce-structured",
        json!({"url": url, "format": "cloudevents-structured"}),
    )
    .await;
    assert!(
        hit.header("content-type")
            .starts_with("application/cloudevents+json")
    );
    assert_eq!(
        (hit.body["specversion"].as_str(), hit.body["type"].as_str()),
        (Some("1.0"), Some("Order Placed"))
    );
    assert_eq!(hit.body["subject"], "urn:shop:order/o 1");
    assert_eq!(hit.body["data"]["orderId"], "ce-structured");

    let hit = deliver(
        &api,
        &receiver,
        "pubsub",
        json!({"url": url, "format": "pubsub-push"}),
    )
    .await;
    let message = &hit.body["message"];
    let data: Value =
        serde_json::from_slice(&STANDARD.decode(message["data"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(data["detail"]["orderId"], "pubsub");
    assert_eq!(message["messageId"], message["message_id"]);
    assert_eq!(message["publishTime"], message["publish_time"]);
    assert_eq!(message["attributes"]["source"], "shop.orders");
    assert_eq!(
        hit.body["subscription"],
        "projects/shop/subscriptions/pubsub"
    );
    assert_eq!(hit.body["deliveryAttempt"], 1);

    let hit = deliver(
        &api,
        &receiver,
        "unwrapped",
        json!({"url": url, "format": "pubsub-push-unwrapped"}),
    )
    .await;
    assert_eq!(hit.body["detail"]["orderId"], "unwrapped");
    assert_eq!(
        hit.header("x-goog-pubsub-subscription-name"),
        "projects/shop/subscriptions/unwrapped"
    );
    assert_eq!(
        hit.header("x-goog-pubsub-message-id"),
        hit.body["id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn templates_and_transforms_fill_requests_from_the_event() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("shop").await;

    let hit = deliver(&api, &receiver, "templated", json!({
        "url": format!("{}/orders/{{$.detail.orderId}}?tier={{$.detail.customer.tier}}", receiver.url),
        "method": "PUT",
        "headers": {"x-order": "{$.detail.orderId}", "x-fixed": "yes"}
    }))
    .await;
    assert_eq!(hit.path, "/orders/templated");
    assert_eq!(hit.header("x-order"), "templated");
    assert_eq!(hit.header("x-fixed"), "yes");

    let hit = deliver(
        &api,
        &receiver,
        "transformed",
        json!({
            "url": receiver.url,
            "transform": {
                "input_paths": {"order": "$.detail.orderId", "total": "$.detail.total"},
                "input_template": "{\"text\": \"order <order> for <total>\", \"total\": <total>}"
            }
        }),
    )
    .await;
    assert_eq!(
        hit.body,
        json!({"text": "order transformed for 300.0", "total": 300.0})
    );

    // A template that refers to a missing field cannot be sent: a dead letter, not a retry loop.
    api.subscribe(
        "shop",
        "broken",
        json!({"destination": {"url": format!("{}/{{$.detail.nothing}}", receiver.url)}}),
    )
    .await;
    api.publish("shop", vec![event("shop.orders", json!({"orderId": "x"}))])
        .await;
    wait_for("a dead letter", Duration::from_secs(20), async || {
        api.stats("shop", "broken").await["dead"] == 1
    })
    .await;
    let (_, page) = api
        .get("/v1/buses/shop/subscriptions/broken/dead-letters")
        .await;
    assert_eq!(page["items"][0]["reason"], "invalid_destination");
}

#[tokio::test]
async fn standard_webhooks_signatures_verify_independently_and_secrets_stay_sealed() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("shop").await;
    let key = b"switchyard-test-signing-key-32by";
    let secret = format!("whsec_{}", STANDARD.encode(key));
    let old_key = b"the-old-key-being-rotated-out-32";
    let old_secret = format!("whsec_{}", STANDARD.encode(old_key));
    let hit = deliver(
        &api,
        &receiver,
        "signed",
        json!({
            "url": receiver.url,
            "signing": {"scheme": "standard-webhooks", "secrets": [secret, old_secret]}
        }),
    )
    .await;

    let id = hit.header("webhook-id").to_string();
    let timestamp = hit.header("webhook-timestamp").to_string();
    let body = serde_json::to_string(&hit.body).unwrap();
    assert!(!id.is_empty() && timestamp.parse::<u64>().is_ok());
    // The receiver's check, written from the specification: base64 HMAC-SHA256 of id.timestamp.body.
    let raw_body = hit.raw_body.clone();
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", &raw_body].concat();
    let expected = |key: &[u8]| {
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), &signed);
        format!("v1,{}", STANDARD.encode(tag.as_ref()))
    };
    let signatures: Vec<&str> = hit.header("webhook-signature").split(' ').collect();
    assert_eq!(
        signatures,
        [expected(key), expected(old_key)],
        "body {body}"
    );

    let (_, view) = api.get("/v1/buses/shop/subscriptions/signed").await;
    let shown = view["destination"]["signing"].to_string();
    assert!(
        !shown.contains(&secret) && !shown.contains(&STANDARD.encode(key)),
        "{shown}"
    );
    drop(server);
    for needle in [
        secret.as_bytes(),
        STANDARD.encode(key).as_bytes(),
        old_secret.as_bytes(),
    ] {
        assert!(
            !contains_anywhere(&data, needle),
            "a signing secret is in the data directory in plain text"
        );
    }
}

#[tokio::test]
async fn the_address_policy_refuses_metadata_and_denied_networks() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("shop").await;
    let (status, body) = api
        .put(
            "/v1/buses/shop/subscriptions/steal",
            json!({"destination": {"url": "http://169.254.169.254/latest/meta-data/iam"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("destination address policy"),
        "{body}"
    );
    drop(server);

    // Denying loopback: a name that resolves there is refused when the attempt resolves it.
    let other = temp_dir();
    let receiver = Receiver::ok().await;
    let port = receiver.url.rsplit(':').next().unwrap().to_string();
    let server = Server::start(
        other.path(),
        &[
            "--deny-destination-network",
            "127.0.0.0/8",
            "--deny-destination-network",
            "::1",
        ],
    );
    let api = Api::new(&server);
    api.bus("shop").await;
    let (status, _) = api
        .put(
            "/v1/buses/shop/subscriptions/literal",
            json!({"destination": {"url": receiver.url}}),
        )
        .await;
    assert_eq!(status, 400);
    api.subscribe(
        "shop",
        "named",
        json!({"destination": {"url": format!("http://localhost:{port}/")}}),
    )
    .await;
    api.publish("shop", vec![event("x", json!({}))]).await;
    wait_for("a dead letter", Duration::from_secs(20), async || {
        api.stats("shop", "named").await["dead"] == 1
    })
    .await;
    let (_, page) = api
        .get("/v1/buses/shop/subscriptions/named/dead-letters")
        .await;
    assert_eq!(page["items"][0]["reason"], "invalid_destination");
    assert!(
        page["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("destination policy"),
        "{page}"
    );
    assert_eq!(receiver.count(), 0);
}

/// Verifies an ES256 JWT against a JWKS document, as a receiver would; returns its claims.
fn verify_jwt(token: &str, jwks: &Value) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the token's key is published");
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("a valid signature");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn identity_tokens_verify_against_the_published_keys() {
    let dir = temp_dir();
    let server = Server::start(
        dir.path(),
        &["--public-url", "https://switchyard.example.internal"],
    );
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("shop").await;
    let hit = deliver(
        &api,
        &receiver,
        "idtoken",
        json!({"url": format!("{}/push", receiver.url), "identity_token": {}}),
    )
    .await;
    let token = hit
        .header("authorization")
        .strip_prefix("Bearer ")
        .expect("a bearer token")
        .to_string();
    let (status, jwks) = api.get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let claims = verify_jwt(&token, &jwks);
    assert_eq!(claims["iss"], "https://switchyard.example.internal");
    assert_eq!(claims["aud"], format!("{}/push", receiver.url));
    assert_eq!(claims["sub"], "buses/shop/subscriptions/idtoken");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(exp > iat && exp - iat <= 3600, "{claims}");

    let hit = deliver(
        &api,
        &receiver,
        "audience",
        json!({"url": receiver.url, "identity_token": {"audience": "billing-api"}}),
    )
    .await;
    let token = hit
        .header("authorization")
        .strip_prefix("Bearer ")
        .unwrap()
        .to_string();
    assert_eq!(verify_jwt(&token, &jwks)["aud"], "billing-api");

    // The key is kept: after a restart, the published key is the same.
    drop(server);
    let restarted = Server::start(dir.path(), &[]);
    let (_, again) = Api::new(&restarted).get("/.well-known/jwks.json").await;
    assert_eq!(again["keys"][0]["kid"], jwks["keys"][0]["kid"]);
}
