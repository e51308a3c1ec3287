//! The Pub/Sub API (docs/pubsub.md) driven by Google's own client (google-cloud-pubsub, from
//! `.ci/python-venv`) through `PUBSUB_EMULATOR_HOST`, against the real binary: topics and
//! subscriptions, 1,000 messages published and received by the streaming-pull subscriber,
//! redelivery after a deadline, ordering keys through a nack, a filter, a dead-letter topic, Seek
//! to a time, a push subscription's OIDC token, error codes, and a `kill -9` between publish and
//! ack.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use switchyard_test_support::{python_or_skip, temp_dir};

use crate::common::{
    ADMIN_TOKEN, Api, READER_TOKEN, Receiver, Server, TestCa, admin_and_reader_tokens,
    script_steps, wait_for,
};
use crate::destinations::verify_jwt;

/// A run of the script may publish or receive 1,000 messages on a loaded machine.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn start(data: &Path) -> (Server, String) {
    start_with(data, &[])
}

fn start_with(data: &Path, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--pubsub-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(data, &args);
    let log = server.log_text();
    let at = log
        .find("Pub/Sub API listening on ")
        .expect("the server announces its Pub/Sub listener");
    let rest = &log[at + "Pub/Sub API listening on ".len()..];
    let host: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    (server, host)
}

async fn phase(python: &Path, host: &str, phase: &str, receiver: &str) -> HashMap<String, Value> {
    phase_with(python, host, phase, receiver, Vec::new()).await
}

/// Runs phase `phase` of the script with `extra` in its environment; its lines by step.
async fn phase_with(
    python: &Path,
    host: &str,
    phase: &str,
    receiver: &str,
    extra: Vec<(&'static str, String)>,
) -> HashMap<String, Value> {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pubsub/client.py");
    let mut env = vec![
        ("PUBSUB_EMULATOR_HOST", host.to_string()),
        ("PHASE", phase.to_string()),
        ("RECEIVER", receiver.to_string()),
    ];
    env.extend(extra);
    script_steps(python, script, env, SCRIPT_TIMEOUT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_cloud_pubsub_publishes_and_receives_through_switchyard() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (server, host) = start(&data);

    let steps = phase(&python, &host, "publish", &receiver.url).await;
    assert_eq!(
        steps["create_topic"]["name"],
        "projects/test-project/topics/orders"
    );
    assert_eq!(
        steps["create_work"]["topic"],
        "projects/test-project/topics/orders"
    );
    assert_eq!(steps["create_work"]["ack"], 30);
    assert_eq!(steps["get_pushed"]["endpoint"], receiver.url.as_str());
    assert_eq!(
        steps["get_pushed"]["audience"],
        "https://worker.example.com"
    );
    assert_eq!(
        steps["get_pushed"]["email"],
        "pusher@test-project.iam.gserviceaccount.com"
    );
    assert_eq!(steps["published"]["count"], 1000);
    assert_eq!(steps["published"]["keyed"], 3);
    assert_eq!(
        steps["lists"]["topics"],
        serde_json::json!(["projects/test-project/topics/orders"])
    );
    assert_eq!(
        steps["create_filtered"]["filter"],
        r#"attributes.kind = "keyed" AND NOT attributes:index"#
    );
    assert_eq!(
        steps["lists"]["subscriptions"],
        serde_json::json!([
            "projects/test-project/subscriptions/filtered",
            "projects/test-project/subscriptions/ordered",
            "projects/test-project/subscriptions/pushed",
            "projects/test-project/subscriptions/work"
        ])
    );

    // The push subscription delivers Pub/Sub's push JSON, the data byte for byte, with an OIDC
    // token that verifies against switchyard's published keys.
    wait_for("the pushes", Duration::from_secs(60), async || {
        receiver.count() >= 1003
    })
    .await;
    let hit = receiver
        .hits()
        .into_iter()
        .find(|h| h.body["message"]["attributes"]["index"] == "7")
        .expect("message 7 was pushed");
    let message = &hit.body["message"];
    assert_eq!(
        STANDARD.decode(message["data"].as_str().unwrap()).unwrap(),
        b"message 7"
    );
    assert_eq!(
        message["attributes"],
        serde_json::json!({"index": "7", "kind": "bulk"}),
        "a message's attributes are its own"
    );
    let api = Api::new(&server);
    let (_, jwks) = api.get("/.well-known/jwks.json").await;
    let token = hit.header("authorization").strip_prefix("Bearer ").unwrap();
    let claims = verify_jwt(token, &jwks);
    assert_eq!(claims["aud"], "https://worker.example.com");
    assert_eq!(
        claims["email"],
        "pusher@test-project.iam.gserviceaccount.com"
    );
    assert_eq!(claims["email_verified"], true);

    // kill -9 after the publisher had its ids and before anything was acked: nothing is lost.
    server.kill();
    let (server, host) = start(&data);
    let steps = phase(&python, &host, "receive", &receiver.url).await;
    assert_eq!(steps["received"]["distinct"], 1000, "{}", steps["received"]);
    assert_eq!(steps["received"]["repeated"], 0, "{}", steps["received"]);
    assert_eq!(
        steps["received"]["others"],
        serde_json::json!(["k0", "k1", "k2"])
    );
    let api = Api::new(&server);
    let stats = api.stats("orders", "work").await;
    assert_eq!(
        (&stats["delivered"], &stats["pending"]),
        (&serde_json::json!(1003), &serde_json::json!(0)),
        "{stats}"
    );

    let steps = phase(&python, &host, "redeliver", &receiver.url).await;
    let redelivered = &steps["redelivered"];
    assert_eq!(redelivered["first"], "slow");
    assert_eq!(redelivered["again"], "slow");
    assert_eq!(redelivered["attempt"], 2);
    assert_eq!(redelivered["same_id"], true);

    let steps = phase(&python, &host, "order", &receiver.url).await;
    assert_eq!(
        steps["ordered"]["seen"],
        serde_json::json!([["k0"], ["k0"], ["k1"], ["k2"]]),
        "k's messages in order, k0 again after its nack"
    );

    let steps = phase(&python, &host, "filtered", &receiver.url).await;
    assert_eq!(
        steps["filtered"]["data"],
        serde_json::json!(["k0", "k1", "k2"]),
        "the filter lets only the keyed messages through"
    );

    // Seek replays the bus's archive: one made through the REST API, as Pub/Sub has none.
    api.bus("seekable").await;
    let (status, answer) = api
        .put("/v1/buses/seekable/archives/all", serde_json::json!({}))
        .await;
    assert_eq!(status, 201, "{answer}");
    let steps = phase(&python, &host, "seek", &receiver.url).await;
    let seek = &steps["seek"];
    assert_eq!(
        seek["first"],
        serde_json::json!(["s0", "s1", "s2"]),
        "{seek}"
    );
    assert_eq!(
        seek["again"],
        serde_json::json!(["s0", "s1", "s2"]),
        "{seek}"
    );
    assert_eq!(seek["no_archive"], "FAILED_PRECONDITION", "{seek}");

    let steps = phase(&python, &host, "deadletter", &receiver.url).await;
    let dead = &steps["deadletter"];
    assert_eq!(
        dead["attempts"],
        serde_json::json!([1, 2, 3, 4, 5]),
        "{dead}"
    );
    assert_eq!(dead["policy_topic"], "projects/test-project/topics/dead");
    assert_eq!(dead["policy_attempts"], 5);
    assert_eq!(dead["data"], "poison", "{dead}");
    let attributes = &dead["attributes"];
    assert_eq!(attributes["kind"], "poison", "{dead}");
    assert_eq!(
        attributes["CloudPubSubDeadLetterSourceDeliveryCount"], "5",
        "{dead}"
    );
    assert_eq!(
        attributes["CloudPubSubDeadLetterSourceSubscription"], "fragile",
        "{dead}"
    );
    let stats = api.stats("fragile", "fragile").await;
    assert_eq!(
        (&stats["dead"], &stats["purged"]),
        (&serde_json::json!(0), &serde_json::json!(1)),
        "{stats}"
    );

    let steps = phase(&python, &host, "errors", &receiver.url).await;
    for (case, code) in [
        ("topic_exists", "ALREADY_EXISTS"),
        ("no_topic", "NOT_FOUND"),
        ("bad_name", "INVALID_ARGUMENT"),
        ("no_subscription", "NOT_FOUND"),
        ("bad_deadline", "INVALID_ARGUMENT"),
        ("bad_filter", "INVALID_ARGUMENT"),
        ("no_messages", "INVALID_ARGUMENT"),
        ("no_ack_ids", "INVALID_ARGUMENT"),
        ("bad_ack_id", "INVALID_ARGUMENT"),
    ] {
        assert_eq!(
            steps[&format!("error_{case}")]["code"],
            code,
            "{case}: {}",
            steps[&format!("error_{case}")]
        );
    }
}

#[tokio::test]
async fn off_loopback_the_pubsub_listener_needs_tls_and_tokens_and_it_can_come_from_the_config_file()
 {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let refused = Server::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--pubsub-listen",
        "0.0.0.0:8085",
    ]);
    let log = refused.err().expect("must refuse to start").join("\n");
    assert!(log.contains("needs TLS"), "{log}");
    let config = dir.path().join("switchyard.toml");
    std::fs::write(&config, "[server]\npubsub_listen = \"127.0.0.1:0\"\n").unwrap();
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    assert!(
        server
            .log_text()
            .contains("Pub/Sub API listening on 127.0.0.1:"),
        "{}",
        server.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_api_tokens_a_pubsub_call_needs_a_token_with_the_scope() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = temp_dir();
    let tokens = admin_and_reader_tokens(dir.path());
    let (_server, host) = start_with(
        &dir.path().join("data"),
        &["--api-tokens-file", tokens.to_str().unwrap()],
    );
    let steps = phase_with(
        &python,
        &host,
        "auth",
        "",
        vec![
            ("READER", READER_TOKEN.into()),
            ("ADMIN", ADMIN_TOKEN.into()),
        ],
    )
    .await;
    let code = |case: &str| steps[&format!("auth_{case}")]["code"].clone();
    assert_eq!(code("none"), "UNAUTHENTICATED");
    assert_eq!(code("reader_lists"), "OK");
    assert_eq!(code("reader_creates"), "PERMISSION_DENIED");
    assert_eq!(code("admin_creates"), "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_pubsub_api_serves_a_client_that_trusts_the_certificate() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = temp_dir();
    let ca = TestCa::new("pubsub test CA");
    let cert = ca.server();
    let (cert_file, key_file, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert_file, &cert.cert).unwrap();
    std::fs::write(&key_file, &cert.key).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[tokens.admin]\ntoken = \"admin-token-0123456789\"\nscopes = [\"admin\"]\n",
    )
    .unwrap();
    let (_server, host) = start_with(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
            "--api-tokens-file",
            tokens.to_str().unwrap(),
        ],
    );
    let port = host.rsplit(':').next().unwrap();
    let steps = phase_with(
        &python,
        "",
        "tls",
        "",
        vec![
            ("CA", ca_file.display().to_string()),
            ("TLS_HOST", format!("localhost:{port}")),
            ("ADMIN", "admin-token-0123456789".into()),
        ],
    )
    .await;
    assert_eq!(steps["tls"]["topic"], "projects/test-project/topics/orders");
    assert_eq!(
        steps["tls"]["listed"],
        serde_json::json!(["projects/test-project/topics/orders"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_not_held_by_a_streaming_pull_whose_client_holds_its_messages() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = temp_dir();
    let (server, host) = start(&dir.path().join("data"));
    let api = Api::new(&server);
    let holding = tokio::spawn({
        let (python, host) = (python.clone(), host.clone());
        async move { phase(&python, &host, "hold", "").await }
    });
    wait_for("the held messages", Duration::from_secs(60), async || {
        crate::common::sample(
            &crate::common::scrape(&api).await,
            r#"switchyard_pulled_total{bus="orders",subscription="held"}"#,
        ) >= 2.0
    })
    .await;
    // The stream is open and full; SIGTERM must still stop the server (within the harness's
    // patience), ending the stream.
    let status = server.terminate().await;
    assert!(status.success(), "{status}");
    let steps = holding.await.unwrap();
    assert_eq!(steps["holding"]["got"], true);
}
