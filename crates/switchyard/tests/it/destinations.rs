//! Destinations against real receivers on 127.0.0.1: every payload format, URL and header
//! templates, the input transformer, and Standard Webhooks signatures checked independently.

use std::time::Duration;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
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
            .contains("destination address policy"),
        "{page}"
    );
    assert_eq!(receiver.count(), 0);
}

const DENY_LOOPBACK: [&str; 4] = [
    "--deny-destination-network",
    "127.0.0.0/8",
    "--deny-destination-network",
    "::1",
];

/// The port of a receiver's `http://127.0.0.1:PORT` URL.
fn port_of(receiver: &Receiver) -> String {
    receiver.url.rsplit(':').next().unwrap().to_string()
}

/// The first dead letter of `bus/name`, waiting (bounded) for it.
async fn first_dead_letter(api: &Api<'_>, bus: &str, name: &str) -> Value {
    wait_for("a dead letter", Duration::from_secs(20), async || {
        api.stats(bus, name).await["dead"] == 1
    })
    .await;
    let (_, page) = api
        .get(&format!(
            "/v1/buses/{bus}/subscriptions/{name}/dead-letters"
        ))
        .await;
    page["items"][0].clone()
}

#[tokio::test]
async fn zero_address_destination_is_refused_with_loopback_denied() {
    let dir = temp_dir();
    let receiver = Receiver::ok().await;
    let port = port_of(&receiver);
    // Whatever the lists say: an empty deny list and everything allowed.
    for flags in [
        &DENY_LOOPBACK[..],
        &[
            "--allow-destination-network",
            "0.0.0.0/0",
            "--allow-destination-network",
            "::/0",
        ][..],
    ] {
        let server = Server::start(dir.path(), flags);
        let api = Api::new(&server);
        api.bus("shop").await;
        for url in [
            format!("http://0.0.0.0:{port}/"),
            format!("http://0:{port}/"),
            format!("http://0.0.0.0.:{port}/"),
            format!("http://[::]:{port}/"),
            format!("http://[::ffff:0.0.0.0]:{port}/"),
        ] {
            let (status, body) = api
                .put(
                    "/v1/buses/shop/subscriptions/zero",
                    json!({"destination": {"url": url}}),
                )
                .await;
            assert_eq!(status, 400, "{url}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("destination.url") && message.contains("unspecified"),
                "{url}: {body}"
            );
        }
    }
    assert_eq!(receiver.count(), 0, "a request reached the local host");
}

#[tokio::test]
async fn every_embedded_ipv4_form_is_checked_as_the_ipv4_it_carries() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("shop").await;
    for host in [
        "[::169.254.169.254]",
        "[::ffff:169.254.169.254]",
        "[::ffff:0:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::1]",
        "[fe80::1]",
        "[fe80::a9fe:a9fe]",
        "[fd20:ce::254]",
        "100.100.100.200",
    ] {
        let (status, body) = api
            .put(
                "/v1/buses/shop/subscriptions/steal",
                json!({"destination": {"url": format!("http://{host}/latest/meta-data/")}}),
            )
            .await;
        assert_eq!(status, 400, "{host}: {body}");
    }
    drop(server);

    let other = temp_dir();
    let server = Server::start(other.path(), &DENY_LOOPBACK);
    let api = Api::new(&server);
    api.bus("shop").await;
    for host in [
        "[::127.0.0.1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:0:127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "127.1",
        "0x7f000001",
    ] {
        let (status, body) = api
            .put(
                "/v1/buses/shop/subscriptions/local",
                json!({"destination": {"url": format!("http://{host}:8080/")}}),
            )
            .await;
        assert_eq!(status, 400, "{host}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("refused by the destination address policy"),
            "{host}: {body}"
        );
    }
}

#[tokio::test]
async fn oauth_token_url_in_a_denied_network_is_refused() {
    let dir = temp_dir();
    let tokens = Receiver::start(|_, _| {
        Reply::json(
            200,
            json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}),
        )
    })
    .await;
    let receiver = Receiver::ok().await;
    let oauth = |token_url: String| {
        json!({"auth": {
            "type": "oauth2_client_credentials", "token_url": token_url,
            "client_id": "switchyard", "client_secret": "client-secret-0a0a"
        }})
    };

    // Stored while loopback was allowed; the node then restarts with loopback denied.
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (status, body) = api
        .put(
            "/v1/connections/literal",
            oauth(format!("{}/token", tokens.url)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    api.bus("b").await;
    api.subscribe(
        "b",
        "literal",
        json!({"destination": {"url": receiver.url, "connection": "literal"}}),
    )
    .await;
    drop(server);

    let server = Server::start(dir.path(), &DENY_LOOPBACK);
    let api = Api::new(&server);
    for token_url in [
        format!("{}/token", tokens.url),
        format!("http://0.0.0.0:{}/token", port_of(&tokens)),
        format!("http://[::ffff:127.0.0.1]:{}/token", port_of(&tokens)),
    ] {
        let (status, body) = api.put("/v1/connections/denied", oauth(token_url)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("auth.token_url"),
            "{body}"
        );
    }
    // A name is checked when it resolves, before the client credentials are sent.
    let (status, body) = api
        .put(
            "/v1/connections/named",
            oauth(format!("http://localhost:{}/token", port_of(&tokens))),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    api.subscribe(
        "b",
        "named",
        json!({"destination": {
            "url": format!("http://localhost:{}/", port_of(&receiver)),
            "connection": "named"
        }}),
    )
    .await;
    api.publish("b", vec![event("x", json!({}))]).await;
    for name in ["literal", "named"] {
        let dead = first_dead_letter(&api, "b", name).await;
        assert_eq!(dead["reason"], "invalid_destination", "{name}: {dead}");
        assert!(
            dead["last_error"].as_str().unwrap().contains("OAuth token"),
            "{name}: {dead}"
        );
    }
    assert_eq!(tokens.count(), 0, "the client credentials were sent");
    assert_eq!(receiver.count(), 0);
}

#[tokio::test]
async fn dot_dot_in_a_url_template_cannot_climb_the_path() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("shop").await;
    for (name, value) in [("up", ".."), ("here", ".")] {
        api.subscribe(
            "shop",
            name,
            json!({
                "pattern": {"detail": {"t": [value]}},
                "destination": {"url": format!("{}/tenants/{{$.detail.t}}/hook", receiver.url)}
            }),
        )
        .await;
    }
    api.subscribe(
        "shop",
        "slash",
        json!({
            "pattern": {"detail": {"t": ["../hook"]}},
            "destination": {"url": format!("{}/tenants/{{$.detail.t}}/hook", receiver.url)}
        }),
    )
    .await;
    api.publish(
        "shop",
        vec![
            event("x", json!({"t": ".."})),
            event("x", json!({"t": "."})),
            event("x", json!({"t": "../hook"})),
        ],
    )
    .await;
    for name in ["up", "here"] {
        let dead = first_dead_letter(&api, "shop", name).await;
        assert_eq!(dead["reason"], "invalid_destination", "{name}: {dead}");
        assert!(
            dead["last_error"].as_str().unwrap().contains("$.detail.t"),
            "{name}: {dead}"
        );
    }
    wait_for("a delivery", Duration::from_secs(20), async || {
        api.stats("shop", "slash").await["delivered"] == 1
    })
    .await;
    let paths: Vec<String> = receiver.hits().into_iter().map(|h| h.path).collect();
    assert_eq!(paths, ["/tenants/..%2Fhook/hook"]);
}

/// Verifies an ES256 JWT against a JWKS document, as a receiver would; returns its claims.
pub(crate) fn verify_jwt(token: &str, jwks: &Value) -> Value {
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
