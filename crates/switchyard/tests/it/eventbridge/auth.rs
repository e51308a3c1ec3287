//! Authentication of the EventBridge door: with API tokens configured, a call must be signed
//! (SigV4) with an access key of the tokens file, and gets that token's scopes.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use switchyard_test_support::{AwsKey, python_or_skip, sign_eventbridge, temp_dir};

use super::run_steps;
use crate::common::{Api, Receiver, Server, call, client, event, wait_for};

const TOKENS: &str = r#"
[tokens.deployer]
token = "deployer-token-0123456789"
scopes = ["admin"]
aws_access_key_id = "AKIADEPLOYER0000"
aws_secret_access_key = "deployer-secret-0123456789"

[tokens.shop]
token = "shop-token-0123456789"
scopes = ["read", "publish:orders"]
aws_access_key_id = "AKIASHOP00000000"
aws_secret_access_key = "shop-secret-0123456789"
"#;

const DEPLOYER: AwsKey<'static> = AwsKey {
    access_key_id: "AKIADEPLOYER0000",
    secret_access_key: "deployer-secret-0123456789",
    region: "us-east-1",
};

fn server(dir: &std::path::Path) -> Server {
    let tokens = dir.join("tokens.toml");
    std::fs::write(&tokens, TOKENS).unwrap();
    Server::start(
        &dir.join("data"),
        &["--api-tokens-file", tokens.to_str().unwrap()],
    )
}

/// Sends one EventBridge call signed by `key`, with `tamper` applied to the body after
/// signing; returns the status and the `__type` of an error answer.
async fn signed(
    server: &Server,
    key: &AwsKey<'_>,
    operation: &str,
    body: Value,
    tamper: bool,
) -> (u16, Value) {
    let url = format!("{}/", server.base);
    let target = format!("AWSEvents.{operation}");
    let body = body.to_string().into_bytes();
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let signature = sign_eventbridge(key, "POST", &url, &headers, &body, SystemTime::now());
    let mut request = client().post(&url);
    for (name, value) in headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain(signature)
    {
        request = request.header(name, value);
    }
    let mut sent = body;
    if tamper {
        sent[1] ^= 0x01;
    }
    let response = request.body(sent).send().await.unwrap();
    let status = response.status().as_u16();
    let answer = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, answer)
}

#[tokio::test]
async fn a_signed_call_is_accepted_and_a_tampered_or_unknown_signature_refused() {
    let dir = temp_dir();
    let server = server(dir.path());
    let (status, answer) = signed(
        &server,
        &DEPLOYER,
        "CreateEventBus",
        json!({"Name": "orders"}),
        false,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = signed(
        &server,
        &DEPLOYER,
        "DescribeEventBus",
        json!({"Name": "orders"}),
        true,
    )
    .await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (403, Some("InvalidSignatureException")),
        "{answer}"
    );
    let stranger = AwsKey {
        access_key_id: "AKIASTRANGER0000",
        ..DEPLOYER
    };
    let (status, answer) = signed(&server, &stranger, "ListEventBuses", json!({}), false).await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (403, Some("UnrecognizedClientException")),
        "{answer}"
    );
    let (status, answer) = crate::common::call(
        client()
            .post(format!("{}/", server.base))
            .header("x-amz-target", "AWSEvents.ListEventBuses")
            .header("content-type", "application/x-amz-json-1.1")
            .body("{}"),
    )
    .await;
    assert_eq!(
        (status, answer["__type"].as_str()),
        (403, Some("MissingAuthenticationTokenException")),
        "{answer}"
    );
    // A bearer token works too (for curl), with its scopes.
    let (status, answer) = crate::common::call(
        client()
            .post(format!("{}/", server.base))
            .header("x-amz-target", "AWSEvents.ListEventBuses")
            .header("authorization", "Bearer shop-token-0123456789")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_signs_with_a_tokens_file_key_and_gets_that_tokens_scopes() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = temp_dir();
    let server = server(dir.path());
    signed(
        &server,
        &DEPLOYER,
        "CreateEventBus",
        json!({"Name": "orders"}),
        false,
    )
    .await;
    let env = vec![
        ("ENDPOINT", server.base.clone()),
        ("AWS_ACCESS_KEY_ID", "AKIASHOP00000000".to_string()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "shop-secret-0123456789".to_string(),
        ),
    ];
    let steps = run_steps(&python, "auth.py", env).await;
    let step = |name: &str| steps[name].clone();
    assert!(
        step("list_buses")["result"]["EventBuses"].is_array(),
        "a read key may list"
    );
    assert_eq!(step("put_rule")["error"], "AccessDeniedException");
    assert_eq!(step("put_rule")["status"], 403);
    let put = step("put_events")["result"].clone();
    assert_eq!(put["FailedEntryCount"], 1, "{put}");
    assert_eq!(put["Entries"][0]["ErrorCode"], "AccessDeniedException");
    assert!(
        put["Entries"][1]["EventId"].is_string(),
        "publish:orders may publish to orders"
    );
}

#[tokio::test]
async fn a_bus_target_forwards_with_tokens_configured_and_no_other_identity_token_publishes() {
    let watch = Receiver::ok().await;
    let spy = Receiver::ok().await;
    let dir = temp_dir();
    let server = server(dir.path());
    let admin = {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "authorization",
            "Bearer deployer-token-0123456789".parse().unwrap(),
        );
        // client() installs the TLS provider reqwest needs.
        let _ = client();
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let api = Api {
        server: &server,
        client: admin.clone(),
    };
    let door = async |operation: &str, body: Value| {
        call(
            admin
                .post(format!("{}/", server.base))
                .header("x-amz-target", format!("AWSEvents.{operation}"))
                .header("content-type", "application/x-amz-json-1.1")
                .body(body.to_string()),
        )
        .await
    };
    api.bus("a").await;
    api.bus("b").await;
    api.subscribe("b", "watch", json!({"destination": {"url": watch.url}}))
        .await;
    let b_events = server.url("/v1/buses/b/events");
    // A receiver elsewhere that an admin gave an identity token for bus b's URL.
    api.subscribe(
        "a",
        "leak",
        json!({"destination": {"url": spy.url, "identity_token": {"audience": b_events}}}),
    )
    .await;
    let (status, answer) = door(
        "PutRule",
        json!({"Name": "a-to-b", "EventBusName": "a", "EventPattern": r#"{"source": ["shop"]}"#}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, answer) = door(
        "PutTargets",
        json!({"Rule": "a-to-b", "EventBusName": "a", "Targets": [
            {"Id": "b", "Arn": "arn:aws:events:us-east-1:000000000000:event-bus/b"}]}),
    )
    .await;
    assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
    api.publish("a", vec![event("shop", json!({"n": 1}))]).await;
    // The forward's outcome is committed after the receiver on b has the event.
    wait_for(
        "the forward and the leak",
        Duration::from_secs(20),
        async || {
            watch.count() == 1
                && spy.count() == 1
                && api.stats("a", "a-to-b.b").await["delivered"] == 1
        },
    )
    .await;
    assert_eq!(watch.hits()[0].body["detail"]["n"], 1);
    // The spy's token is switchyard's, for b's URL, but its subscription delivers elsewhere.
    let leaked = spy.hits()[0].header("authorization").to_string();
    assert!(leaked.starts_with("Bearer ey"), "{leaked}");
    let (status, answer) = call(
        client()
            .post(&b_events)
            .header("authorization", &leaked)
            .body(json!([event("forged", json!({}))]).to_string()),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = call(
        client()
            .post(server.url("/v1/buses/a/events"))
            .header("authorization", &leaked)
            .body(json!([event("forged", json!({}))]).to_string()),
    )
    .await;
    assert_eq!(status, 401, "a forward's token is for its own bus only");
    api.publish("b", vec![event("sentinel", json!({}))]).await;
    wait_for("the sentinel", Duration::from_secs(20), async || {
        watch.count() == 2
    })
    .await;
    assert_eq!(watch.hits()[1].body["source"], "sentinel");
}
