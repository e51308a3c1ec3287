//! The Slack background-job flow end to end, on 127.0.0.1 only: a signed slash command reaches a
//! webhook source, is acknowledged at once with the configured text, becomes an event, is pushed
//! by a subscription to the `slack-jobs` worker, and the worker's result reaches a fake Slack.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchyard_test_support::Process;

use crate::common::*;

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_TOKEN: &str = "xoxb-e2e-token";

/// The worker binary, built by `cargo test --workspace`; built here when a narrower run skipped it.
fn worker_binary() -> PathBuf {
    let test_binary = std::env::current_exe().unwrap();
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    let binary = profile_dir.join("slack-jobs");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target_dir = profile_dir.parent().unwrap();
        let status = Command::new(cargo)
            .args(["build", "-p", "slack-jobs", "--target-dir"])
            .arg(target_dir)
            .status()
            .unwrap();
        assert!(status.success(), "cannot build slack-jobs");
    }
    binary
}

fn start_worker(fake_slack: &str, token_file: &std::path::Path) -> Process {
    let mut command = Command::new(worker_binary());
    command
        .args(["--listen", "127.0.0.1:0", "--job-duration-ms", "1500"])
        .args(["--response-url-prefix", &format!("{fake_slack}/")])
        .args(["--slack-api-url", &format!("{fake_slack}/api")])
        .arg("--bot-token-file")
        .arg(token_file)
        .env("NO_COLOR", "1");
    Process::spawn(command)
        .unwrap_or_else(|log| panic!("the worker did not start:\n{}", log.join("\n")))
}

/// Signs a body as Slack does: `v0=` hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
fn slack_signature(timestamp: u64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SIGNING_SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_is_acknowledged_at_once_and_its_result_reaches_slack() {
    let dir = temp_dir();
    let fake_slack = Receiver::start(|_, _| Reply {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        delay: Duration::ZERO,
        body: String::new(),
    })
    .await;
    let token_file = dir.path().join("bot-token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap();
    let worker = start_worker(&fake_slack.url, &token_file);
    let secret_file = dir.path().join("slack-signing-secret");
    std::fs::write(&secret_file, SIGNING_SECRET).unwrap();
    let config = dir.path().join("slack.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[buses.slack.subscriptions.jobs]
pattern = {{ "detail-type" = ["slash_command"], detail = {{ command = ["/report"] }} }}
destination = {{ url = "{}/jobs" }}

[sources.slack]
bus = "slack"
verify = {{ type = "slack", signing_secret = "file:{}" }}
response = {{ body = {{ response_type = "ephemeral", text = "Working on it..." }} }}
"#,
            worker.base,
            secret_file.display()
        ),
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--secret-files-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let api = Api::new(&server);

    let body = form_encode(&[
        ("token", "legacy"),
        ("team_id", "T0001"),
        ("channel_id", "C2147483705"),
        ("user_id", "U2147483697"),
        ("command", "/report"),
        ("text", "weekly sales"),
        (
            "response_url",
            &format!("{}/response/T0001/123", fake_slack.url),
        ),
        ("trigger_id", "13345224609.738474920.8088930838d88f008e0"),
    ]);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ack = api
        .client
        .post(server.url("/hooks/slack"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", timestamp.to_string())
        .header("x-slack-signature", slack_signature(timestamp, &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ack.status(), 200);
    let ack: serde_json::Value = ack.json().await.unwrap();
    assert_eq!(
        ack,
        json!({"response_type": "ephemeral", "text": "Working on it..."})
    );
    // The acknowledgement came before the job's result: the 1.5 s job has not answered yet.
    assert_eq!(fake_slack.count(), 0, "the ack waited for the job");

    wait_for(
        "the job's result at Slack",
        Duration::from_secs(30),
        async || fake_slack.count() >= 2,
    )
    .await;
    let hits = fake_slack.hits();
    let response = hits
        .iter()
        .find(|h| h.path == "/response/T0001/123")
        .expect("a post to response_url");
    assert_eq!(response.body["response_type"], "in_channel");
    assert!(
        response.body["text"]
            .as_str()
            .unwrap()
            .contains("/report weekly sales"),
        "{}",
        response.body
    );
    let posted = hits
        .iter()
        .find(|h| h.path == "/api/chat.postMessage")
        .expect("a chat.postMessage call");
    assert_eq!(
        posted.header("authorization"),
        format!("Bearer {BOT_TOKEN}")
    );
    assert_eq!(posted.body["channel"], "C2147483705");
    let stats = api.stats("slack", "jobs").await;
    assert_eq!(stats["delivered"], 1, "{stats}");

    // A tampered or stale request is refused, publishes nothing, and is counted.
    let tampered = body.replace("weekly", "yearly");
    let (status, refusal) = call(
        api.client
            .post(server.url("/hooks/slack"))
            .header("x-slack-request-timestamp", timestamp.to_string())
            .header("x-slack-signature", slack_signature(timestamp, &body))
            .body(tampered),
    )
    .await;
    assert_eq!(
        (status, refusal["error"]["code"].as_str()),
        (401, Some("bad_signature"))
    );
    let stale = timestamp - 600;
    let (status, refusal) = call(
        api.client
            .post(server.url("/hooks/slack"))
            .header("x-slack-request-timestamp", stale.to_string())
            .header("x-slack-signature", slack_signature(stale, &body))
            .body(body.clone()),
    )
    .await;
    assert_eq!(
        (status, refusal["error"]["code"].as_str()),
        (401, Some("stale_timestamp"))
    );
    assert_eq!(api.stats("slack", "jobs").await["accepted"], 1);
    let metrics = scrape(&api).await;
    for line in [
        "switchyard_source_requests_total{source=\"slack\",result=\"published\"} 1",
        "switchyard_source_requests_total{source=\"slack\",result=\"refused\"} 2",
        "switchyard_source_refusals_total{source=\"slack\",reason=\"bad_signature\"} 1",
        "switchyard_source_refusals_total{source=\"slack\",reason=\"stale_timestamp\"} 1",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
}
