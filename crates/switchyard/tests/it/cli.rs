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

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SWITCHYARD_URL")
        .env_remove("SWITCHYARD_API_TOKEN_FILE")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The commands `switchyard --help` lists, but `help`.
fn commands() -> Vec<String> {
    let help = stdout(&run(&["--help"]));
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// `switchyard --url … publish …` was "unexpected argument": the client flags were taken only
/// after the command's name. They are taken anywhere now, by every command that talks to a
/// server, and every such command's `--help` shows them; the commands that talk to none neither
/// show them nor ignore them silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_flags_are_taken_in_any_position_and_shown_in_every_client_help() {
    let not_clients = ["serve", "test-pattern", "bench-match", "sink"];
    let listed = commands();
    assert!(listed.len() > 10, "{listed:?}");
    for command in &listed {
        let help = stdout(&run(&[command, "--help"]));
        let shown = help.contains("--url <URL>") && help.contains("--api-token-file");
        assert_eq!(
            shown,
            !not_clients.contains(&command.as_str()),
            "switchyard {command} --help:\n{help}"
        );
    }
    for nested in [
        ["dead-letters", "b", "s", "list", "--help"].as_slice(),
        &["replay", "start", "--help"],
        &["replay", "status", "--help"],
    ] {
        let help = stdout(&run(nested));
        assert!(
            help.contains("--url <URL>") && help.contains("--api-token-file"),
            "{nested:?}:\n{help}"
        );
    }
    assert!(stdout(&run(&["--help"])).contains("take --url URL"));

    let dir = temp_dir();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[tokens.admin]\ntoken = \"admin-token-0123456789\"\nscopes = [\"admin\"]\n",
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--api-tokens-file", tokens.to_str().unwrap()],
    );
    let token = dir.path().join("token");
    std::fs::write(&token, "admin-token-0123456789\n").unwrap();
    let token = token.to_str().unwrap();
    let url = server.base.as_str();
    assert!(
        run(&["--url", url, "--api-token-file", token, "stats"])
            .status
            .success()
    );
    let event = r#"{"source": "web", "detail-type": "t", "detail": {}}"#;
    let bus = dir.path().join("bus.toml");
    std::fs::write(
        &bus,
        "[buses.b.subscriptions.s]\ndestination = { url = \"http://127.0.0.1:9/\" }\n",
    )
    .unwrap();
    let bus = bus.to_str().unwrap();
    for args in [
        vec!["--url", url, "--api-token-file", token, "apply", bus],
        vec![
            "--url",
            url,
            "--api-token-file",
            token,
            "publish",
            "b",
            event,
        ],
        vec![
            "--url",
            url,
            "publish",
            "--api-token-file",
            token,
            "b",
            event,
        ],
        vec![
            "publish",
            "--url",
            url,
            "b",
            event,
            "--api-token-file",
            token,
        ],
        vec![
            "--api-token-file",
            token,
            "publish",
            "b",
            event,
            "--url",
            url,
        ],
        vec![
            "--url",
            url,
            "--api-token-file",
            token,
            "dead-letters",
            "b",
            "s",
            "list",
        ],
        vec![
            "--url",
            url,
            "dead-letters",
            "b",
            "s",
            "--api-token-file",
            token,
            "list",
        ],
        vec!["--url", url, "--api-token-file", token, "lint"],
    ] {
        let output = run(&args);
        assert!(output.status.success(), "{args:?}: {output:?}");
    }
    // Without the token, the same line is refused by the server: the flag was what let it in.
    let refused = run(&["--url", url, "publish", "b", event]);
    assert!(stderr(&refused).contains("401 unauthorized"), "{refused:?}");

    for args in [
        ["--url", url, "serve"].as_slice(),
        &["serve", "--url", url],
        &["sink", "--api-token-file", token],
        &["--url", url, "test-pattern", "{}", "{}"],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(
            stderr(&output).contains(
                "talks to no server: --url and --api-token-file are for the commands that do"
            ),
            "{args:?}: {output:?}"
        );
    }
}

/// `tail` said `error: 404: bus "nope" does not exist`, other commands `error: GET
/// /v1/...?limit=1000: 404 not_found: ...`: every command now says `error: METHOD PATH: STATUS
/// CODE: message`, the path without its query, and a server that cannot be reached is named
/// after the same `METHOD PATH`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_command_reports_errors_in_one_format() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[sources.s]\nbus = \"nope\"\nverify = { type = \"slack\", signing_secret = \"s3cret\" }\n",
    )
    .unwrap();
    let missing = "404 not_found: bus \"nope\" does not exist";
    let event = r#"{"source": "web", "detail-type": "t", "detail": {}}"#;
    for (args, expected) in [
        (vec!["tail", "nope"], format!("GET /v1/buses/nope/tail: {missing}")),
        (
            vec!["tail", "nope", "--subscription", "s"],
            format!("GET /v1/buses/nope/tail: {missing}"),
        ),
        (vec!["stats", "nope"], format!("GET /v1/stats: {missing}")),
        (
            vec!["dead-letters", "nope", "s", "list"],
            format!("GET /v1/buses/nope/subscriptions/s/dead-letters: {missing}"),
        ),
        (
            vec!["dead-letters", "nope", "s", "redrive"],
            format!("POST /v1/buses/nope/subscriptions/s/dead-letters/redrive: {missing}"),
        ),
        (
            vec!["dead-letters", "nope", "s", "purge", "--yes"],
            format!("DELETE /v1/buses/nope/subscriptions/s/dead-letters: {missing}"),
        ),
        (vec!["publish", "nope", event], format!("POST /v1/buses/nope/events: {missing}")),
        (
            vec!["replay", "status", "r"],
            "GET /v1/replays/r: 404 not_found: replay \"r\" does not exist".to_string(),
        ),
        (
            vec!["replay", "cancel", "r"],
            "DELETE /v1/replays/r: 404 not_found: replay \"r\" does not exist".to_string(),
        ),
        (
            vec!["replay", "start", "r", "--bus", "nope", "--archive", "a", "--from", "2026-01-01T00:00:00Z"],
            "POST /v1/replays: 400 invalid: field \"bus\": bus \"nope\" does not exist".to_string(),
        ),
        (
            vec!["apply", config.to_str().unwrap()],
            "PUT /v1/sources/s: 400 invalid: field \"bus\": bus \"nope\" does not exist; create it first".to_string(),
        ),
    ] {
        let mut line = vec!["--url", server.base.as_str()];
        line.extend(&args);
        let output = run(&line);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        assert_eq!(stderr(&output), format!("error: {expected}\n"), "{args:?}");
    }
    let unreachable = run(&["--url", "http://127.0.0.1:9", "tail", "b"]);
    assert!(
        stderr(&unreachable)
            .starts_with("error: GET /v1/buses/b/tail: cannot reach http://127.0.0.1:9: "),
        "{unreachable:?}"
    );
}

/// Answers are printed with a trailing newline, so that a shell prompt does not follow one on
/// its line; and states in messages are spelled as the API spells them (`completed`, where the
/// server said `Completed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_ends_with_a_newline_and_states_are_spelled_as_the_api_does() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let refusing = Receiver::start(|_, _| Reply::status(400)).await;
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[buses.b.archives.all]\n\n[buses.b.subscriptions.s]\ndestination = {{ url = \"{}\" }}\n", refusing.url),
    )
    .unwrap();
    let base = server.base.as_str();
    let with_url = |args: &[&str]| {
        let mut line = vec!["--url", base];
        line.extend(args);
        run(&line)
    };
    let event = r#"{"source": "web", "detail-type": "t", "detail": {}}"#;
    let mut answers = vec![
        ("apply", with_url(&["apply", config.to_str().unwrap()])),
        ("publish", with_url(&["publish", "b", event])),
    ];
    let api = Api::new(&server);
    wait_for("a dead letter", Duration::from_secs(20), async || {
        api.stats("b", "s").await["dead"] == 1
    })
    .await;
    let from = "2020-01-01T00:00:00Z";
    answers.extend([
        (
            "dead-letters list",
            with_url(&["dead-letters", "b", "s", "list"]),
        ),
        (
            "dead-letters redrive",
            with_url(&["dead-letters", "b", "s", "redrive"]),
        ),
        (
            "dead-letters purge",
            with_url(&["dead-letters", "b", "s", "purge", "--yes"]),
        ),
        ("stats", with_url(&["stats"])),
        ("lint", with_url(&["lint"])),
        (
            "replay start",
            with_url(&[
                "replay",
                "start",
                "r",
                "--bus",
                "b",
                "--archive",
                "all",
                "--from",
                from,
            ]),
        ),
        (
            "replay start --detach",
            with_url(&[
                "replay",
                "start",
                "r2",
                "--bus",
                "b",
                "--archive",
                "all",
                "--from",
                from,
                "--detach",
            ]),
        ),
        ("replay status", with_url(&["replay", "status", "r"])),
        (
            "backup",
            with_url(&["backup", dir.path().join("backup").to_str().unwrap()]),
        ),
        (
            "test-pattern",
            run(&["test-pattern", r#"{"source": ["web"]}"#, event]),
        ),
    ]);
    for (what, output) in &answers {
        assert!(output.status.success(), "{what}: {output:?}");
        let text = stdout(output);
        assert!(
            !text.is_empty() && text.ends_with('\n'),
            "{what} printed {text:?}"
        );
    }
    let again = with_url(&[
        "replay",
        "start",
        "r",
        "--bus",
        "b",
        "--archive",
        "all",
        "--from",
        from,
    ]);
    assert_eq!(
        stderr(&again),
        "error: POST /v1/replays: 409 conflict: replay \"r\" already exists (completed); replay names are unique, choose another\n"
    );
    let cancel = with_url(&["replay", "cancel", "r"]);
    assert_eq!(
        stderr(&cancel),
        "error: DELETE /v1/replays/r: 409 conflict: replay \"r\" is completed already; only a running replay can be cancelled\n"
    );
}
