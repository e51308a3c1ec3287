//! The CLI against a running server: apply, publish, dead-letters.

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

fn cli(server: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("SWITCHYARD_URL", &server.base)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_publish_and_manage_dead_letters_from_the_command_line() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let receiver =
        Receiver::start(|hit, _| Reply::status(if hit.path == "/fail" { 422 } else { 200 })).await;
    let config = dir.path().join("setup.toml");
    let write_config = |path: &str| {
        std::fs::write(
            &config,
            format!("[buses.shop.subscriptions.crm]\npattern = {{ source = [\"web\"] }}\ndestination = {{ url = \"{}{path}\" }}\n", receiver.url),
        )
        .unwrap()
    };
    write_config("/fail");
    let applied = cli(&server, &["apply", config.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    assert!(stdout(&applied).contains("subscription shop/crm: applied"));

    let published = cli(
        &server,
        &[
            "publish",
            "shop",
            r#"{"source": "web", "detail-type": "signup", "detail": {"user": 7}}"#,
        ],
    );
    assert!(published.status.success(), "{published:?}");
    assert!(stdout(&published).contains("\"failed_entry_count\":0"));
    let refused = cli(
        &server,
        &["publish", "shop", r#"{"detail-type": "signup"}"#],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("\"source\" is required"));

    let api = Api::new(&server);
    wait_for("a dead letter", Duration::from_secs(20), async || {
        api.stats("shop", "crm").await["dead"] == 1
    })
    .await;
    let listed = cli(&server, &["dead-letters", "shop", "crm", "list"]);
    assert!(
        stdout(&listed).contains("\"last_status\":422"),
        "{listed:?}"
    );

    write_config("/ok");
    assert!(
        cli(&server, &["apply", config.to_str().unwrap()])
            .status
            .success()
    );
    let redriven = cli(&server, &["dead-letters", "shop", "crm", "redrive"]);
    assert!(stdout(&redriven).contains("\"redriven\":1"), "{redriven:?}");
    wait_for("redelivery", Duration::from_secs(20), async || {
        api.stats("shop", "crm").await["delivered"] == 1
    })
    .await;
    let purged = cli(&server, &["dead-letters", "shop", "crm", "purge"]);
    assert!(stdout(&purged).contains("\"purged\":0"), "{purged:?}");

    let missing = cli(&server, &["dead-letters", "shop", "nope", "list"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404 not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_shows_published_events_and_attempt_outcomes() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 503 } else { 200 })).await;
    api.bus("b").await;
    api.subscribe("b", "s", serde_json::json!({"destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 10, "max_backoff_ms": 20}})).await;
    let mut tail = Command::new(BIN)
        .args(["tail", "b", "--json"])
        .env("SWITCHYARD_URL", &server.base)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // The tail is connected once it said so on stderr.
    let mut stderr = BufReader::new(tail.stderr.take().unwrap());
    let mut hello = String::new();
    stderr.read_line(&mut hello).unwrap();
    assert!(hello.contains("tailing bus b"), "{hello}");
    // The server subscribed the tail before answering, so nothing published from now is missed.
    let id = api
        .publish("b", vec![event("shop", serde_json::json!({}))])
        .await
        .remove(0);
    let mut records: Vec<serde_json::Value> = Vec::new();
    while !records
        .iter()
        .any(|r| r["kind"] == "attempted" && r["outcome"] == "delivered")
    {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("tail showed only {records:?}"));
        records.push(serde_json::from_str(&line).unwrap());
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let published = records
        .iter()
        .find(|r| r["kind"] == "published")
        .expect("a published record");
    assert_eq!(published["source"], "shop");
    assert_eq!(published["matched"], 1);
    let failed = records
        .iter()
        .find(|r| r["kind"] == "attempted" && r["outcome"] == "retry")
        .expect("the 503");
    assert_eq!(
        (failed["status"].as_u64(), failed["class"].as_str()),
        (Some(503), Some("5xx"))
    );
    assert_eq!(failed["subscription"], "s");
    assert!(records.iter().all(|r| r["event_id"] == id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_from_the_command_line_follows_progress_to_the_end() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let receiver = Receiver::ok().await;
    let config = dir.path().join("setup.toml");
    std::fs::write(
        &config,
        format!(
            "[buses.shop.archives.all]\nretention_days = 7\n\n[buses.shop.subscriptions.crm]\ndestination = {{ url = \"{}\" }}\n",
            receiver.url
        ),
    )
    .unwrap();
    let applied = cli(&server, &["apply", config.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    assert!(stdout(&applied).contains("archive shop/all: applied"));
    let api = Api::new(&server);
    api.publish(
        "shop",
        (0..3)
            .map(|i| event("web", serde_json::json!({"n": i})))
            .collect(),
    )
    .await;

    let replay = cli(
        &server,
        &[
            "replay",
            "start",
            "again",
            "--bus",
            "shop",
            "--archive",
            "all",
            "--from",
            "2020-01-01T00:00:00Z",
        ],
    );
    assert!(replay.status.success(), "{replay:?}");
    let progress = String::from_utf8_lossy(&replay.stderr).to_string();
    assert!(
        progress.contains("100%  3/3 events  3 deliveries  completed"),
        "{progress}"
    );
    assert!(stdout(&replay).contains("\"state\":\"completed\""));
    wait_for("the replayed events", Duration::from_secs(20), async || {
        receiver.count() == 6
    })
    .await;

    let status = cli(&server, &["replay", "status", "again"]);
    assert!(
        stdout(&status).contains("\"events_replayed\":3"),
        "{status:?}"
    );
    let cancel = cli(&server, &["replay", "cancel", "again"]);
    assert!(!cancel.status.success());
    assert!(
        String::from_utf8_lossy(&cancel.stderr).contains("only a running replay can be cancelled")
    );
}

/// `apply` skipped `[sources]` and `[connections]` and exited 0; it applies them now (secrets
/// as written, never the `********` of their parsed form), and refuses `[server]`, which it
/// cannot apply, naming the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_applies_sources_and_connections_and_refuses_the_server_table() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let config = dir.path().join("setup.toml");
    std::fs::write(
        &config,
        r#"
[connections.crm]
auth = { type = "api_key", header = "x-api-key", value = "crm-key-0123456789" }

[sources.slack-jobs]
bus = "jobs"
verify = { type = "slack", signing_secret = "8f742231b10e8888abcd99yyyzzz85a5" }

[buses.jobs.subscriptions.crm]
destination = { url = "http://127.0.0.1:9/hook", connection = "crm" }
"#,
    )
    .unwrap();
    let applied = cli(&server, &["apply", config.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    let out = stdout(&applied);
    for line in [
        "connection crm: applied",
        "source slack-jobs: applied",
        "subscription jobs/crm: applied",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let api = Api::new(&server);
    let (status, connection) = api.get("/v1/connections/crm").await;
    assert_eq!(status, 200, "{connection}");
    assert_eq!(connection["auth"]["value"], "********");
    let (status, source) = api.get("/v1/sources/slack-jobs").await;
    assert_eq!(status, 200, "{source}");
    assert_eq!(source["bus"], "jobs");

    std::fs::write(&config, "[server]\nmax_hops = 4\n\n[buses.other]\n").unwrap();
    let refused = cli(&server, &["apply", config.to_str().unwrap()]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(message.contains("[server]"), "{message}");
    assert_eq!(
        api.get("/v1/buses/other").await.0,
        404,
        "nothing applied from a refused file"
    );
}

/// `test-pattern` exited 0 whether or not the pattern matched; scripts need 0 on a match, 1
/// without one, 2 on an error.
#[test]
fn test_pattern_exits_0_on_a_match_1_without_one_and_2_on_an_error() {
    let status = |pattern: &str, event: &str| {
        Command::new(BIN)
            .args(["test-pattern", pattern, event])
            .output()
            .unwrap()
            .status
            .code()
    };
    let pattern = r#"{"source": [{"prefix": "shop."}]}"#;
    assert_eq!(status(pattern, r#"{"source": "shop.orders"}"#), Some(0));
    assert_eq!(status(pattern, r#"{"source": "billing"}"#), Some(1));
    assert_eq!(status(r#"{"source": "x"}"#, "{}"), Some(2));
    assert_eq!(status(pattern, "not json"), Some(2));
}

/// `--url 127.0.0.1:8700` failed with "builder error" from the HTTP client; it now says the
/// scheme is missing and what to write.
#[test]
fn a_server_url_without_a_scheme_is_refused_with_what_to_write() {
    let output = Command::new(BIN)
        .args(["publish", "--url", "127.0.0.1:8700", "orders", "{}"])
        .env_remove("SWITCHYARD_URL")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        message.contains("has no scheme: give http://127.0.0.1:8700"),
        "{message}"
    );
}

/// `--url` after a nested subcommand (`dead-letters B S list --url …`) was "unexpected
/// argument"; the client flags are accepted on either side of it now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_flags_are_accepted_after_a_nested_subcommand_too() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        serde_json::json!({"destination": {"url": "http://127.0.0.1:9/"}}),
    )
    .await;
    for args in [
        vec!["dead-letters", "b", "s", "list", "--url", &server.base],
        vec!["dead-letters", "--url", &server.base, "b", "s", "list"],
        vec!["replay", "status", "nope", "--url", &server.base],
    ] {
        let output = Command::new(BIN)
            .args(&args)
            .env_remove("SWITCHYARD_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(
            !stderr.contains("unexpected argument"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("cannot reach"), "{args:?}: {stderr}");
    }
}

/// `dead-letters list` stopped at --limit without saying there were more, and had no way to go
/// on; it says so now, with the --after that shows the rest. `redrive` of ids that are not dead
/// letters said nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_list_pages_and_redrive_names_the_ids_it_does_not_know() {
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        serde_json::json!({"destination": {"url": receiver.url}}),
    )
    .await;
    api.publish(
        "b",
        (0..3)
            .map(|i| event("x", serde_json::json!({"n": i})))
            .collect(),
    )
    .await;
    wait_for("three dead letters", Duration::from_secs(20), async || {
        api.stats("b", "s").await["dead"] == 3
    })
    .await;
    let first = cli(&server, &["dead-letters", "b", "s", "list", "--limit", "2"]);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(stdout(&first).lines().count(), 2);
    let said = String::from_utf8_lossy(&first.stderr).to_string();
    let after = said
        .trim()
        .strip_prefix("more dead letters: list them with --after ")
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    let rest = cli(
        &server,
        &[
            "dead-letters",
            "b",
            "s",
            "list",
            "--limit",
            "2",
            "--after",
            &after,
        ],
    );
    assert_eq!(stdout(&rest).lines().count(), 1, "{rest:?}");
    assert!(
        rest.stderr.is_empty(),
        "nothing more to say: {}",
        String::from_utf8_lossy(&rest.stderr)
    );
    let exact = cli(&server, &["dead-letters", "b", "s", "list", "--limit", "3"]);
    assert_eq!(stdout(&exact).lines().count(), 3);
    assert!(exact.stderr.is_empty(), "a full last page is not 'more'");

    // redrive named unknown ids nowhere and exited 0: it names them now, and fails.
    let known = stdout(&exact).lines().next().map(|line| {
        serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let known = known.unwrap();
    let redrive = cli(
        &server,
        &["dead-letters", "b", "s", "redrive", &known, "999999"],
    );
    assert!(!redrive.status.success());
    assert!(stdout(&redrive).contains("\"redriven\":1"), "{redrive:?}");
    let said = String::from_utf8_lossy(&redrive.stderr).to_string();
    assert!(
        said.contains("not dead letters of b/s, so not redriven: 999999"),
        "{said}"
    );
    // Off a terminal purge does not ask (scripts); --yes is accepted everywhere.
    let purged = cli(&server, &["dead-letters", "b", "s", "purge", "--yes"]);
    assert!(purged.status.success(), "{purged:?}");
}

/// `switchyard stats`: every subscription in one table, worst first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_shows_every_subscription_worst_first() {
    let failing = Receiver::start(|_, _| Reply::status(400)).await;
    let fine = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let api = Api::new(&server);
    for bus in ["a", "b"] {
        api.bus(bus).await;
    }
    api.subscribe(
        "a",
        "fine",
        serde_json::json!({"destination": {"url": fine.url}}),
    )
    .await;
    api.subscribe(
        "b",
        "broken",
        serde_json::json!({"destination": {"url": failing.url}}),
    )
    .await;
    api.publish("a", vec![event("x", serde_json::json!({}))])
        .await;
    api.publish("b", vec![event("x", serde_json::json!({}))])
        .await;
    wait_for(
        "a delivery and a dead letter",
        Duration::from_secs(20),
        async || {
            api.stats("a", "fine").await["delivered"] == 1
                && api.stats("b", "broken").await["dead"] == 1
        },
    )
    .await;
    let output = cli(&server, &["stats"]);
    assert!(output.status.success(), "{output:?}");
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("BUS"), "{table}");
    assert!(
        lines[0].contains("OLDEST_S") && lines[0].contains("CIRCUIT"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("b ") && lines[1].contains("broken"),
        "the dead letter first: {table}"
    );
    assert!(
        lines[2].starts_with("a ") && lines[2].contains("fine"),
        "{table}"
    );
    assert!(table.ends_with('\n'));
    let only = stdout(&cli(&server, &["stats", "a"]));
    assert_eq!(only.lines().count(), 2, "{only}");
}
