//! The real `slack-jobs` binary against a fake Slack on 127.0.0.1: a pushed envelope comes back
//! as a result at the command's `response_url` and at `chat.postMessage` with the bot token.
//!
//! Every wait is bounded; none asserts on speed.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "a test harness: its receivers are untracked tasks, its deadlines are real time against real processes, its clients talk to loopback, and it tells the person running it why a test skipped"
)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};
use switchyard_test_support::{Process, temp_dir};

const TOKEN: &str = "xoxb-test-0123456789";

/// One request the fake Slack received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A fake Slack: any POST under `/response/` is a response_url, `/api/chat.postMessage` the Web
/// API. Returns its base URL and what it received.
async fn fake_slack() -> (String, Log) {
    async fn record(
        State(log): State<Log>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> axum::Json<Value> {
        log.lock().unwrap().push(Received {
            path: uri.path().to_string(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        axum::Json(json!({"ok": true}))
    }
    let log: Log = Arc::default();
    let router = Router::new()
        .route("/response/{id}", post(record))
        .route("/api/chat.postMessage", post(record))
        .with_state(Arc::clone(&log));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), log)
}

/// A running worker; killed when dropped.
struct Worker {
    process: Process,
}

impl Worker {
    fn start(args: &[&str]) -> Worker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_slack-jobs"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("NO_COLOR", "1");
        let process = Process::spawn(command)
            .unwrap_or_else(|log| panic!("slack-jobs did not start:\n{}", log.join("\n")));
        Worker { process }
    }

    async fn push(&self, envelope: &Value) -> (u16, Value) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::new()
            .post(self.process.url("/jobs"))
            .json(envelope)
            .send()
            .await
            .expect("worker answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }
}

/// The envelope switchyard pushes for a slash command published by a `slack` source.
fn envelope(id: &str, response_url: &str) -> Value {
    json!({
        "version": "0",
        "id": id,
        "detail-type": "slash_command",
        "source": "slack-jobs",
        "time": "2026-01-01T00:00:00.000Z",
        "resources": [],
        "detail": {
            "token": "xyzz0WbapA4vBCDEFasx0q6G",
            "team_id": "T1DC2JH3J",
            "channel_id": "C0123CHAN",
            "user_id": "U2CERLKJA",
            "command": "/deploy",
            "text": "api to staging",
            "response_url": response_url,
            "trigger_id": "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        }
    })
}

/// Waits (bounded) until the fake Slack has `count` requests.
async fn wait_for(log: &Log, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let received = log.lock().unwrap().clone();
        if received.len() >= count {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "fake Slack got {} of {count} requests: {received:?}",
            received.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn result_reaches_response_url_and_chat_post_message() {
    let (slack, received) = fake_slack().await;
    let dir = temp_dir();
    let token_file = dir.path().join("bot-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let api = format!("{slack}/api");
    let prefix = format!("{slack}/response/");
    let worker = Worker::start(&[
        "--job-duration-ms",
        "200",
        "--bot-token-file",
        token_file.to_str().unwrap(),
        "--slack-api-url",
        &api,
        "--response-url-prefix",
        &prefix,
    ]);

    let response_url = format!("{slack}/response/T1DC2JH3J-1");
    let (status, body) = worker.push(&envelope("evt-1", &response_url)).await;
    assert_eq!((status, &body), (200, &json!({"accepted": "evt-1"})));

    let requests = wait_for(&received, 2).await;
    let to_response_url = requests
        .iter()
        .find(|r| r.path == "/response/T1DC2JH3J-1")
        .expect("result at response_url");
    assert_eq!(to_response_url.body["response_type"], "in_channel");
    let text = to_response_url.body["text"].as_str().unwrap();
    assert!(
        text.contains("/deploy api to staging") && text.contains("<@U2CERLKJA>"),
        "{text}"
    );
    assert_eq!(
        to_response_url.authorization, None,
        "response_url needs no token"
    );

    let to_api = requests
        .iter()
        .find(|r| r.path == "/api/chat.postMessage")
        .expect("result at chat.postMessage");
    assert_eq!(
        to_api.authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert_eq!(to_api.body["channel"], "C0123CHAN");
    assert_eq!(to_api.body["text"], text);

    // The token is never logged, not even at the worker's start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !worker.log_text().contains("chat.postMessage") {
        assert!(
            Instant::now() < deadline,
            "no log of the post:\n{}",
            worker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!worker.log_text().contains(TOKEN), "{}", worker.log_text());
}

#[tokio::test]
async fn without_a_token_only_response_url_and_a_repeat_runs_once() {
    let (slack, received) = fake_slack().await;
    let prefix = format!("{slack}/response/");
    let worker = Worker::start(&["--job-duration-ms", "50", "--response-url-prefix", &prefix]);

    let first = envelope("evt-2", &format!("{slack}/response/one"));
    assert_eq!(worker.push(&first).await.0, 200);
    // At-least-once delivery: the same event again is acknowledged, not run again.
    let (status, body) = worker.push(&first).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
    let second = envelope("evt-3", &format!("{slack}/response/two"));
    assert_eq!(worker.push(&second).await.0, 200);

    let requests = wait_for(&received, 2).await;
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/response/one", "/response/two"]);
}

#[tokio::test]
async fn wrong_events_are_refused_for_a_person_to_see() {
    let (slack, received) = fake_slack().await;
    let prefix = format!("{slack}/response/");
    let worker = Worker::start(&["--job-duration-ms", "0", "--response-url-prefix", &prefix]);

    // A response_url elsewhere would make the worker an open relay.
    let (status, body) = worker
        .push(&envelope("evt-4", "http://127.0.0.1:9/elsewhere"))
        .await;
    assert_eq!(status, 400, "{body}");

    let mut not_a_command = envelope("evt-5", &format!("{slack}/response/x"));
    not_a_command["detail-type"] = json!("event_callback");
    let (status, body) = worker.push(&not_a_command).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("pattern"),
        "{body}"
    );

    let (status, _) = worker.push(&json!({"id": "evt-6"})).await;
    assert_eq!(status, 400);
    assert!(received.lock().unwrap().is_empty());
}

#[test]
fn a_missing_or_empty_token_file_stops_the_start() {
    let dir = temp_dir();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for file in [dir.path().join("absent"), empty] {
        let output = Command::new(env!("CARGO_BIN_EXE_slack-jobs"))
            .args(["--listen", "127.0.0.1:0", "--bot-token-file"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("bot token file"), "{stderr}");
    }
}
