//! The whole attempt, rendered through the public API exactly as the dispatcher will call it:
//! a destination object parsed from JSON (as embedded in a subscription), an envelope as the
//! store keeps it, resolved credentials, and the request that comes out.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde_json::Value;
use switchyard_destination::{
    Attempt, Credentials, Destination, HttpMethod, Identity, IdentityKey, Jwks, RenderError,
    RenderedRequest, parse_connection_spec, render,
};
use switchyard_secrets::{Keyring, MasterKey, SecretFiles};

fn parse_destination(json: &str) -> Destination {
    serde_json::from_str(json).unwrap()
}

const ENVELOPE: &str = r#"{"version":"0","id":"0190c7a2-0000-7000-8000-000000000001","detail-type":"Order Placed","source":"shop.orders","time":"2026-03-01T10:00:00Z","resources":["orders/42"],"detail":{"orderId":"42","total":12345678901234567890,"customer":{"tier":"gold"}}}"#;
const INGESTED_MS: u64 = 1_772_359_200_123; // 2026-03-01T10:00:00.123Z

fn attempt(envelope: &str) -> Attempt<'_> {
    Attempt {
        envelope,
        bus: "orders",
        subscription: "to-crm",
        rule: "to-crm",
        attempt: 3,
        ingested_ms: INGESTED_MS,
        now_s: 1_772_359_260,
    }
}

fn render_plain(destination: &str) -> RenderedRequest {
    let destination = parse_destination(destination);
    render(&destination, &attempt(ENVELOPE), &Credentials::default()).unwrap()
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

fn master_key() -> Keyring {
    Keyring::new(MasterKey::from_keys(&[[5u8; 32]]), SecretFiles::none())
}

#[test]
fn envelope_is_the_default_and_sent_byte_for_byte() {
    let request = render_plain(r#"{"url":"http://127.0.0.1:9000/hook"}"#);
    assert_eq!(request.method, HttpMethod::Post);
    assert_eq!(request.url, "http://127.0.0.1:9000/hook");
    assert_eq!(request.body, ENVELOPE.as_bytes());
    let names: Vec<&str> = request.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "content-type",
            "switchyard-event-id",
            "switchyard-bus",
            "switchyard-subscription",
            "switchyard-attempt"
        ]
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("switchyard-attempt"), Some("3"));
}

#[test]
fn detail_format_sends_only_the_detail_with_exact_numbers() {
    let request = render_plain(r#"{"url":"http://h/x","format":"detail","method":"PUT"}"#);
    assert_eq!(request.method, HttpMethod::Put);
    assert_eq!(
        request.body,
        br#"{"orderId":"42","total":12345678901234567890,"customer":{"tier":"gold"}}"#
    );
}

#[test]
fn cloudevents_binary_maps_attributes_to_encoded_ce_headers() {
    let envelope = ENVELOPE.replace("shop.orders", "shop orders/€");
    let destination = parse_destination(r#"{"url":"http://h/x","format":"cloudevents-binary"}"#);
    let request = render(&destination, &attempt(&envelope), &Credentials::default()).unwrap();
    assert_eq!(request.header("ce-specversion"), Some("1.0"));
    assert_eq!(
        request.header("ce-id"),
        Some("0190c7a2-0000-7000-8000-000000000001")
    );
    assert_eq!(request.header("ce-type"), Some("Order%20Placed"));
    assert_eq!(request.header("ce-source"), Some("shop%20orders/%E2%82%AC"));
    assert_eq!(request.header("ce-time"), Some("2026-03-01T10:00:00Z"));
    assert_eq!(request.header("ce-subject"), Some("orders/42"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(json(&request.body)["customer"]["tier"], "gold");
}

#[test]
fn cloudevents_structured_is_one_json_document() {
    let request = render_plain(r#"{"url":"http://h/x","format":"cloudevents-structured"}"#);
    assert_eq!(
        request.header("content-type"),
        Some("application/cloudevents+json; charset=utf-8")
    );
    assert!(request.header("ce-id").is_none());
    let text = String::from_utf8(request.body.clone()).unwrap();
    assert!(
        text.contains(r#""data":{"orderId":"42","total":12345678901234567890"#),
        "{text}"
    );
    let body = json(&request.body);
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["type"], "Order Placed");
    assert_eq!(body["source"], "shop.orders");
    assert_eq!(body["id"], "0190c7a2-0000-7000-8000-000000000001");
    assert_eq!(body["time"], "2026-03-01T10:00:00Z");
    assert_eq!(body["subject"], "orders/42");
    assert_eq!(body["datacontenttype"], "application/json");
}

#[test]
fn pubsub_push_wraps_the_envelope_as_google_does() {
    let request = render_plain(r#"{"url":"http://h/x","format":"pubsub-push"}"#);
    assert_eq!(request.header("content-type"), Some("application/json"));
    let body = json(&request.body);
    let message = &body["message"];
    let data = STANDARD.decode(message["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, ENVELOPE.as_bytes());
    assert_eq!(message["messageId"], "0190c7a2-0000-7000-8000-000000000001");
    assert_eq!(message["message_id"], message["messageId"]);
    assert_eq!(message["publishTime"], "2026-03-01T10:00:00.123Z");
    assert_eq!(message["publish_time"], message["publishTime"]);
    assert_eq!(message["attributes"]["source"], "shop.orders");
    assert_eq!(message["attributes"]["detail-type"], "Order Placed");
    assert_eq!(body["subscription"], "projects/orders/subscriptions/to-crm");
    assert_eq!(body["deliveryAttempt"], 3);
}

#[test]
fn pubsub_push_unwrapped_sends_the_raw_payload_and_metadata_headers() {
    let request = render_plain(r#"{"url":"http://h/x","format":"pubsub-push-unwrapped"}"#);
    assert_eq!(request.body, ENVELOPE.as_bytes());
    assert_eq!(
        request.header("x-goog-pubsub-subscription-name"),
        Some("projects/orders/subscriptions/to-crm")
    );
    assert_eq!(
        request.header("x-goog-pubsub-message-id"),
        Some("0190c7a2-0000-7000-8000-000000000001")
    );
    assert_eq!(
        request.header("x-goog-pubsub-publish-time"),
        Some("2026-03-01T10:00:00.123Z")
    );
    assert_eq!(request.header("x-goog-pubsub-delivery-attempt"), Some("3"));
    assert_eq!(request.header("source"), Some("shop.orders"));
    assert_eq!(request.header("detail-type"), Some("Order Placed"));
}

#[test]
fn url_and_header_templates_fill_from_the_event() {
    let request = render_plain(
        r#"{"url":"https://crm.example.com/orders/{$.detail.orderId}?tier={$.detail.customer.tier}&src={$.source}",
            "headers":{"X-Order":"order-{$.detail.orderId}","X-Static":"1"}}"#,
    );
    assert_eq!(
        request.url,
        "https://crm.example.com/orders/42?tier=gold&src=shop.orders"
    );
    assert_eq!(request.header("x-order"), Some("order-42"));
    assert_eq!(request.header("X-Static"), Some("1"));
}

#[test]
fn a_template_value_cannot_forge_headers_or_paths() {
    let envelope = ENVELOPE.replace(
        r#""orderId":"42""#,
        r#""orderId":"42\r\nX-Evil: 1/../admin""#,
    );
    let destination = parse_destination(
        r#"{"url":"https://h/orders/{$.detail.orderId}","headers":{"X-Order":"{$.detail.orderId}"}}"#,
    );
    let err = render(&destination, &attempt(&envelope), &Credentials::default()).unwrap_err();
    assert_eq!(
        err,
        RenderError::HeaderValue {
            name: "X-Order".into()
        }
    );
    let destination = parse_destination(r#"{"url":"https://h/orders/{$.detail.orderId}"}"#);
    let request = render(&destination, &attempt(&envelope), &Credentials::default()).unwrap();
    assert_eq!(
        request.url,
        "https://h/orders/42%0D%0AX-Evil%3A%201%2F..%2Fadmin"
    );
}

#[test]
fn the_transform_runs_before_the_format() {
    let request = render_plain(
        r#"{"url":"http://h/x","format":"cloudevents-structured",
            "transform":{"input_paths":{"id":"$.detail.orderId","tier":"$.detail.customer.tier"},
                         "input_template":"{\"order\": <id>, \"text\": \"a <tier> customer\"}"}}"#,
    );
    let body = json(&request.body);
    assert_eq!(
        body["data"],
        serde_json::json!({"order": "42", "text": "a gold customer"})
    );
    assert_eq!(body["type"], "Order Placed");

    let request = render_plain(
        r#"{"url":"http://h/x","transform":{"input_paths":{"id":"$.detail.orderId"},"input_template":"order <id> placed"}}"#,
    );
    assert_eq!(request.body, b"order 42 placed");
    assert_eq!(
        request.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let request = render_plain(
        r#"{"url":"http://h/x","format":"cloudevents-structured","transform":{"input_paths":{"id":"$.detail.orderId"},"input_template":"order <id>"}}"#,
    );
    let body = json(&request.body);
    assert_eq!(body["data"], "order 42");
    assert_eq!(body["datacontenttype"], "text/plain; charset=utf-8");

    let request = render_plain(
        r#"{"url":"http://h/x","format":"pubsub-push","transform":{"input_template":"{\"sub\": <aws.events.rule-name>}"}}"#,
    );
    let data = STANDARD
        .decode(json(&request.body)["message"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, br#"{"sub": "to-crm"}"#);
}

#[test]
fn basic_auth_extra_headers_and_masked_query() {
    let key = master_key();
    let connection = parse_connection_spec(
        r#"{"auth":{"type":"basic","username":"svc","password":"hunter2"},
            "headers":{"X-Team":"payments"},
            "query":{"tenant":"acme","api_key":{"secret":"q-secret"}}}"#,
    )
    .unwrap()
    .seal(&key)
    .unwrap();
    let resolved = connection.resolve(&key).unwrap();
    assert!(!resolved.needs_access_token());
    let destination = parse_destination(r#"{"url":"https://h/x?a=1"}"#);
    let credentials = Credentials {
        connection: Some(&resolved),
        ..Credentials::default()
    };
    let request = render(&destination, &attempt(ENVELOPE), &credentials).unwrap();
    assert_eq!(request.url, "https://h/x?a=1&api_key=q-secret&tenant=acme");
    assert_eq!(
        request.url_for_logs(),
        "https://h/x?a=1&api_key=********&tenant=acme"
    );
    assert!(request.url_is_sensitive());
    assert_eq!(request.header("x-team"), Some("payments"));
    let auth = request
        .headers
        .iter()
        .find(|h| h.name == "authorization")
        .unwrap();
    assert!(auth.sensitive);
    assert_eq!(
        auth.value,
        format!("Basic {}", STANDARD.encode("svc:hunter2"))
    );
    let debug = format!("{request:?}");
    assert!(
        !debug.contains("q-secret") && !debug.contains(&auth.value),
        "{debug}"
    );
}

#[test]
fn connection_body_members_are_set_in_an_object_body_only() {
    let key = master_key();
    let connection = parse_connection_spec(
        r#"{"body":{"source":"from-connection","team":"payments","token":{"secret":"b-\"secret"}}}"#,
    )
    .unwrap()
    .seal(&key)
    .unwrap();
    assert!(!serde_json::to_string(&connection).unwrap().contains("b-"));
    let resolved = connection.resolve(&key).unwrap();
    let credentials = Credentials {
        connection: Some(&resolved),
        ..Credentials::default()
    };
    let destination = parse_destination(r#"{"url":"https://h/x"}"#);
    let request = render(&destination, &attempt(ENVELOPE), &credentials).unwrap();
    let text = String::from_utf8(request.body.clone()).unwrap();
    // The event's members keep their text (the big number) and order; the connection's win.
    assert!(
        text.starts_with(r#"{"version":"0","id":"#)
            && text.contains(r#""total":12345678901234567890"#),
        "{text}"
    );
    let body = json(&request.body);
    assert_eq!(body["source"], "from-connection");
    assert_eq!(body["team"], "payments");
    assert_eq!(body["token"], "b-\"secret");
    assert_eq!(body["detail-type"], "Order Placed");
    // A receiver that echoes the body back does not leave the secret in a dead letter.
    assert!(
        !request.redact(&text).contains("secret"),
        "{}",
        request.redact(&text)
    );
    assert!(!format!("{request:?}").contains("b-"));

    let text_body = parse_destination(
        r#"{"url":"https://h/x","transform":{"input_template":"plain <aws.events.rule-name>"}}"#,
    );
    let request = render(&text_body, &attempt(ENVELOPE), &credentials).unwrap();
    assert_eq!(request.body, b"plain to-crm");
    let array_body =
        parse_destination(r#"{"url":"https://h/x","transform":{"input_path":"$.resources"}}"#);
    let request = render(&array_body, &attempt(ENVELOPE), &credentials).unwrap();
    assert_eq!(request.body, br#"["orders/42"]"#);
}

#[test]
fn api_key_auth_sets_its_header() {
    let key = master_key();
    let connection = parse_connection_spec(
        r#"{"auth":{"type":"api_key","header":"X-API-Key","value":"k-123"}}"#,
    )
    .unwrap();
    let resolved = connection.resolve(&key).unwrap();
    let destination =
        parse_destination(r#"{"url":"https://h/x","headers":{"X-API-Key":"configured"}}"#);
    let credentials = Credentials {
        connection: Some(&resolved),
        ..Credentials::default()
    };
    let request = render(&destination, &attempt(ENVELOPE), &credentials).unwrap();
    let header = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("x-api-key"))
        .unwrap();
    assert_eq!((header.value.as_str(), header.sensitive), ("k-123", true));
    assert_eq!(
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("x-api-key"))
            .count(),
        1
    );
}

#[test]
fn oauth2_needs_the_dispatchers_token() {
    let key = master_key();
    let connection = parse_connection_spec(
        r#"{"auth":{"type":"oauth2_client_credentials","token_url":"https://idp/token","client_id":"c","client_secret":"s"}}"#,
    )
    .unwrap();
    let resolved = connection.resolve(&key).unwrap();
    assert!(resolved.needs_access_token());
    let destination = parse_destination(r#"{"url":"https://h/x"}"#);
    let mut credentials = Credentials {
        connection: Some(&resolved),
        ..Credentials::default()
    };
    let err = render(&destination, &attempt(ENVELOPE), &credentials).unwrap_err();
    assert!(matches!(err, RenderError::MissingCredential(_)), "{err}");
    let token = switchyard_destination::oauth2::parse_token_response(
        200,
        br#"{"access_token":"at-1","token_type":"Bearer","expires_in":600}"#,
        0,
    )
    .unwrap();
    credentials.access_token = Some(&token.token);
    let request = render(&destination, &attempt(ENVELOPE), &credentials).unwrap();
    assert_eq!(request.header("authorization"), Some("Bearer at-1"));
}

#[test]
fn signing_matches_the_standard_webhooks_vector_end_to_end() {
    // The reference libraries' vector: id, timestamp, body and secret, through the whole render.
    let envelope = r#"{"version":"0","id":"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk","detail-type":"t","source":"s","time":"2022-04-07T21:39:13Z","resources":[],"detail":{"email":"test@example.com","username":"test_user"}}"#;
    let destination = parse_destination(
        r#"{"url":"https://h/x","format":"detail","signing":{"secrets":["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]}}"#,
    );
    let key = master_key();
    let secrets = destination.signing.as_ref().unwrap().resolve(&key).unwrap();
    let credentials = Credentials {
        signing: &secrets,
        ..Credentials::default()
    };
    let attempt = Attempt {
        now_s: 1649367553,
        ..attempt(envelope)
    };
    let request = render(&destination, &attempt, &credentials).unwrap();
    assert_eq!(
        request.body,
        br#"{"email":"test@example.com","username":"test_user"}"#
    );
    assert_eq!(
        request.header("webhook-id"),
        Some("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk")
    );
    assert_eq!(request.header("webhook-timestamp"), Some("1649367553"));
    assert_eq!(
        request.header("webhook-signature"),
        Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
    );
    // Configured but not passed: refused rather than sent unsigned.
    let err = render(&destination, &attempt, &Credentials::default()).unwrap_err();
    assert!(matches!(err, RenderError::MissingCredential(_)));
}

#[test]
fn identity_token_verifies_against_the_published_jwks() {
    let (key, _) = IdentityKey::generate().unwrap();
    let jwks = serde_json::to_value(Jwks::new([&key])).unwrap();
    let destination = parse_destination(
        r#"{"url":"https://crm.example.com/orders/{$.detail.orderId}","identity_token":{}}"#,
    );
    let credentials = Credentials {
        identity: Some(Identity {
            key: &key,
            issuer: "https://switchyard.example.com",
        }),
        ..Credentials::default()
    };
    let request = render(&destination, &attempt(ENVELOPE), &credentials).unwrap();
    let token = request
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let header = json(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap());
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    let mut point = vec![0x04];
    point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .unwrap();
    let claims = json(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap());
    assert_eq!(claims["iss"], "https://switchyard.example.com");
    assert_eq!(claims["sub"], "buses/orders/subscriptions/to-crm");
    assert_eq!(claims["aud"], "https://crm.example.com/orders/42");
    assert_eq!(claims["iat"], 1_772_359_260);
    assert_eq!(claims["exp"], 1_772_359_260 + 300);

    // With basic auth on the connection too, the two would fight over Authorization.
    let connection =
        parse_connection_spec(r#"{"auth":{"type":"basic","username":"u","password":"p"}}"#)
            .unwrap();
    let resolved = connection.resolve(&master_key()).unwrap();
    let conflicting = Credentials {
        connection: Some(&resolved),
        ..credentials
    };
    assert_eq!(
        render(&destination, &attempt(ENVELOPE), &conflicting).unwrap_err(),
        RenderError::ConflictingAuthorization("basic")
    );
    let audience = parse_destination(
        r#"{"url":"https://h/x","identity_token":{"audience":"crm","ttl_s":60}}"#,
    );
    let request = render(&audience, &attempt(ENVELOPE), &credentials).unwrap();
    let token = request
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let claims = json(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    );
    assert_eq!(
        (claims["aud"].as_str(), claims["exp"].as_u64()),
        (Some("crm"), Some(1_772_359_320))
    );
}

#[test]
fn bad_destination_config_names_the_field() {
    for (body, expected) in [
        (
            r#"{"url":"https://{$.detail.host}/x"}"#,
            "only in the path and the query",
        ),
        (
            r#"{"url":"https://h/","format":"xml"}"#,
            "unknown variant `xml`",
        ),
        (
            r#"{"url":"https://h/","method":"HEAD"}"#,
            "unknown variant `HEAD`",
        ),
        (
            r#"{"url":"https://h/","transform":{"input_template":"{<x>: 1}"}}"#,
            "input_template",
        ),
        (
            r#"{"url":"https://h/","signing":{"secrets":["nope"]}}"#,
            "secrets[0]: a Standard Webhooks secret starts with",
        ),
        (
            r#"{"url":"https://h/","identity_token":{"ttl_s":99999}}"#,
            "ttl_s: must be 60 to 3600",
        ),
        (
            r#"{"url":"https://h/","headers":{"X-A":"{$.detail"}}"#,
            "no closing",
        ),
    ] {
        let err = serde_json::from_str::<Destination>(body)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(expected), "{body}: {err}");
    }
}

#[test]
fn missing_event_values_and_bad_envelopes_are_render_errors() {
    let destination = parse_destination(r#"{"url":"https://h/{$.detail.nope}"}"#);
    let err = render(&destination, &attempt(ENVELOPE), &Credentials::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "url: $.detail.nope is missing or null in the event"
    );
    let destination = parse_destination(r#"{"url":"https://h/"}"#);
    let err = render(
        &destination,
        &attempt("{\"id\":1}"),
        &Credentials::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Envelope(_)), "{err}");
}

#[test]
fn secrets_resolve_from_files_at_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing");
    std::fs::write(&path, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").unwrap();
    let destination = parse_destination(&format!(
        r#"{{"url":"https://h/x","signing":{{"secrets":["file:{}"]}}}}"#,
        path.display()
    ));
    let signing = destination.signing.as_ref().unwrap();
    let keyring = Keyring::new(
        MasterKey::from_keys(&[[5u8; 32]]),
        SecretFiles::new(&[dir.path().to_path_buf()], &[]).unwrap(),
    );
    assert!(signing.reads_files());
    assert_eq!(signing.resolve(&keyring).unwrap().len(), 1);
    assert!(
        signing.resolve(&master_key()).is_err(),
        "no directory allowed"
    );
    std::fs::write(&path, "not-a-whsec").unwrap();
    let err = signing.resolve(&keyring).unwrap_err().to_string();
    assert!(
        err.starts_with("signing.secrets[0]: a Standard Webhooks secret starts with"),
        "{err}"
    );
    assert!(!err.contains("not-a-whsec"));
}
