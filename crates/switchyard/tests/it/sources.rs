//! Webhook sources through the API: write-only secrets sealed at rest, validation, challenges,
//! network allow-lists.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::*;
use serde_json::json;

const SECRET: &str = "gh-webhook-secret-4242";

fn github_signature(body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    format!(
        "sha256={}",
        tag.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[tokio::test]
async fn secrets_are_write_only_and_sealed_at_rest() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let api = Api::new(&server);
    let receiver = Receiver::ok().await;
    api.bus("gh").await;
    api.subscribe("gh", "all", json!({"destination": {"url": receiver.url}}))
        .await;

    let (status, body) = api
        .put(
            "/v1/sources/github",
            json!({"bus": "gh", "verify": {"type": "github"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("verify.secret"),
        "{body}"
    );
    let (status, body) = api
        .put(
            "/v1/sources/github",
            json!({"bus": "nope", "verify": {"type": "github", "secret": SECRET}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"nope\" does not exist"),
        "{body}"
    );
    let (status, body) = api
        .put(
            "/v1/sources/github",
            json!({"bus": "gh", "verify": {"type": "nonsense"}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid"))
    );

    let (status, view) = api
        .put(
            "/v1/sources/github",
            json!({"bus": "gh", "verify": {"type": "github", "secret": SECRET}}),
        )
        .await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["hook_path"], "/hooks/github");
    assert!(
        !view.to_string().contains(SECRET),
        "an answer showed the secret: {view}"
    );
    // A change that leaves the secret out keeps it.
    let (status, view) = api
        .put(
            "/v1/sources/github",
            json!({"bus": "gh", "verify": {"type": "github"}, "response": {"status": 202}}),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert!(!api.get("/v1/sources").await.1.to_string().contains(SECRET));

    let payload = r#"{"action":"opened","number":7}"#;
    let (status, _) = call(
        api.client
            .post(server.url("/hooks/github"))
            .header("x-github-event", "pull_request")
            .header("x-hub-signature-256", github_signature(payload))
            .header("content-type", "application/json")
            .body(payload),
    )
    .await;
    assert_eq!(status, 202);
    wait_for("delivery", std::time::Duration::from_secs(20), async || {
        receiver.count() == 1
    })
    .await;
    let event = &receiver.hits()[0].body;
    assert_eq!(
        (event["source"].as_str(), event["detail-type"].as_str()),
        (Some("github"), Some("pull_request"))
    );
    assert_eq!(event["detail"], json!({"action": "opened", "number": 7}));

    let (status, refusal) = call(
        api.client
            .post(server.url("/hooks/github"))
            .header("x-hub-signature-256", github_signature("{}"))
            .body(payload),
    )
    .await;
    assert_eq!(
        (status, refusal["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );
    assert_eq!(api.get("/v1/sources/none").await.0, 404);
    assert_eq!(api.post_raw("/hooks/none", "{}").await.0, 404);

    // The secret survives a restart (sealed with the master key) and is nowhere in plain text.
    drop(server);
    let restarted = Server::start(&data, &[]);
    let (status, _) = call(
        Api::new(&restarted)
            .client
            .post(restarted.url("/hooks/github"))
            .header("x-hub-signature-256", github_signature(payload))
            .body(payload),
    )
    .await;
    assert_eq!(status, 202);
    assert!(data.join("master.key").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(
        !contains_anywhere(&data, SECRET.as_bytes()),
        "the plain secret is in the data directory"
    );
    assert!(!restarted.log_text().contains(SECRET));
    assert_eq!(
        Api::new(&restarted).delete("/v1/sources/github").await.0,
        204
    );
}

#[tokio::test]
async fn slack_url_verification_and_network_allow_lists() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    let (status, body) = api
        .put(
            "/v1/sources/slack",
            json!({"bus": "b", "verify": {"type": "slack", "signing_secret": "s"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let challenge = r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s");
    let tag = ring::hmac::sign(&key, format!("v0:{timestamp}:{challenge}").as_bytes());
    let signature = format!(
        "v0={}",
        tag.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let answer = api
        .client
        .post(server.url("/hooks/slack"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", signature)
        .body(challenge)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );

    let (status, _) = api.put("/v1/sources/office", json!({"bus": "b", "verify": {"type": "api_key", "key": "k"}, "allowed_networks": ["10.0.0.0/8"]})).await;
    assert_eq!(status, 201);
    let (status, refusal) = call(
        api.client
            .post(server.url("/hooks/office"))
            .header("x-api-key", "k")
            .body("{}"),
    )
    .await;
    assert_eq!(
        (status, refusal["error"]["code"].as_str()),
        (403, Some("network_not_allowed"))
    );
}
