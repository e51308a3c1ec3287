//! The web console at `/console/`: in a real headless Chromium (Debian's, driven by Playwright
//! from `tests/console/browser.py`) against the real server, and its sessions and cross-site
//! defences over plain HTTP.
//!
//! The browser tests need `SWITCHYARD_TEST_PYTHON` (the venv of `.ci/python-venv`, which has
//! Playwright) and `SWITCHYARD_TEST_CHROMIUM`; without them they skip, except under `CI=true`.
//! With `SWITCHYARD_CONSOLE_SCREENSHOTS=DIR` they save the pictures of docs/console.md there.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use switchyard_test_support::{chromium_or_skip, python_or_skip, run_python, temp_dir};

use crate::common::{
    ADMIN_TOKEN, Api, READER_TOKEN, Receiver, Reply, Server, admin_and_reader_tokens, call, client,
    event, wait_for,
};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console/browser.py")
}

/// Runs one scenario of the browser script against `server` and returns what it saw.
async fn browse(server: &Server, scenario: &str, env: &[(&str, &str)]) -> Option<Value> {
    let python = python_or_skip()?;
    let chromium = chromium_or_skip()?;
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("SCENARIO".into(), scenario.to_string()));
    env.push(("CONSOLE".into(), server.url("/console/")));
    env.push(("CHROMIUM".into(), chromium.display().to_string()));
    if let Ok(dir) = std::env::var("SWITCHYARD_CONSOLE_SCREENSHOTS") {
        env.push(("SCREENSHOTS".into(), dir));
    }
    let seen = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        run_python(&python, &script(), &env, Duration::from_secs(120))
    })
    .await
    .unwrap();
    let seen = seen
        .lines
        .last()
        .cloned()
        .expect("the script printed nothing");
    assert_eq!(seen["page_errors"], json!([]), "{seen}");
    Some(seen)
}

fn bearer_client(token: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let _ = client();
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Publishes one event to a subscription whose receiver refuses it with 400, and waits for
/// the dead letter.
async fn dead_letter(api: &Api<'_>, bus: &str, name: &str, receiver: &Receiver) -> String {
    api.bus(bus).await;
    api.subscribe(
        bus,
        name,
        json!({"destination": {"url": format!("{}/orders", receiver.url)}}),
    )
    .await;
    let id = api
        .publish(bus, vec![event("shop", json!({"order": 1}))])
        .await
        .remove(0);
    wait_for("the dead letter", Duration::from_secs(30), async || {
        api.stats(bus, name).await["dead"] == 1
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_lists_a_failing_subscription_first_with_its_pending_count() {
    let healthy = Receiver::ok().await;
    let failing = Receiver::start(|_, _| Reply::status(503)).await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("shop").await;
    for name in ["audit", "analytics"] {
        api.subscribe("shop", name, json!({"destination": {"url": healthy.url}}))
            .await;
    }
    api.subscribe(
        "shop",
        "payments",
        json!({"destination": {"url": failing.url},
               "retry": {"min_backoff_ms": 200, "max_backoff_ms": 400, "max_attempts": 1000}}),
    )
    .await;
    api.publish(
        "shop",
        (0..3).map(|i| event("shop", json!({"order": i}))).collect(),
    )
    .await;
    let Some(seen) = browse(
        &server,
        "overview",
        &[("BUS", "shop"), ("SUBSCRIPTION", "payments")],
    )
    .await
    else {
        return;
    };
    assert_eq!(seen["first"], "shop/payments", "{seen}");
    assert_eq!(seen["pending"], 3, "{seen}");
    assert_eq!(seen["rows"].as_array().unwrap().len(), 3, "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_redriven_from_the_subscription_page_after_confirmation_arrives() {
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let id = dead_letter(&api, "shop", "billing", &receiver).await;
    receiver.set(|_, _| Reply::status(200));
    let Some(seen) = browse(
        &server,
        "redrive",
        &[("BUS", "shop"), ("SUBSCRIPTION", "billing")],
    )
    .await
    else {
        return;
    };
    assert!(
        seen["asked"]
            .as_str()
            .unwrap()
            .starts_with("Redrive 1 selected"),
        "{seen}"
    );
    assert_eq!(
        seen["declined"], "",
        "declining must redrive nothing: {seen}"
    );
    assert_eq!(seen["status"], "1 redriven", "{seen}");
    wait_for(
        "the redriven event at the receiver",
        Duration::from_secs(30),
        async || {
            receiver
                .hits()
                .iter()
                .any(|h| h.event_id() == id && receiver.count() == 2)
        },
    )
    .await;
    let stats = api.stats("shop", "billing").await;
    assert_eq!(stats["dead"], 0, "{stats}");
    // A purge asked and dismissed with Esc fired with the redrive's confirmation.
    assert_eq!(stats["purged"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_started_from_the_console_shows_its_progress_and_delivers() {
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("shop").await;
    let (status, body) = api.put("/v1/buses/shop/archives/all", json!({})).await;
    assert_eq!(status, 201, "{body}");
    api.publish(
        "shop",
        (0..3).map(|i| event("shop", json!({"order": i}))).collect(),
    )
    .await;
    // Subscribed after the events were published: only the replay can bring them.
    api.subscribe(
        "shop",
        "rebuild",
        json!({"destination": {"url": receiver.url}}),
    )
    .await;
    wait_for(
        "the archive to hold the events",
        Duration::from_secs(30),
        async || api.get("/v1/buses/shop/archives/all").await.1["event_count"] == 3,
    )
    .await;
    let Some(seen) = browse(&server, "replay", &[]).await else {
        return;
    };
    assert_eq!(seen["state"], "completed", "{seen}");
    assert_eq!(seen["progress"], "1", "{seen}");
    assert!(
        seen["text"].as_str().unwrap().contains("3 / 3 events"),
        "{seen}"
    );
    wait_for("the replayed events", Duration::from_secs(30), async || {
        receiver.count() == 3
    })
    .await;
    let replayed = receiver.hits()[0].body["replay-name"].clone();
    assert_eq!(replayed, seen["name"], "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_a_read_token_sees_the_dead_letters_but_cannot_redrive() {
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    let dir = temp_dir();
    let tokens = admin_and_reader_tokens(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--api-tokens-file", tokens.to_str().unwrap()]);
    let api = Api {
        server: &server,
        client: bearer_client(ADMIN_TOKEN),
    };
    dead_letter(&api, "shop", "billing", &receiver).await;
    receiver.set(|_, _| Reply::status(200));
    let Some(seen) = browse(
        &server,
        "read_only",
        &[
            ("BUS", "shop"),
            ("SUBSCRIPTION", "billing"),
            ("TOKEN", READER_TOKEN),
        ],
    )
    .await
    else {
        return;
    };
    assert!(
        seen["who"].as_str().unwrap().starts_with("reader (read)"),
        "{seen}"
    );
    assert_eq!(seen["dead_letters"], 1, "{seen}");
    assert_eq!(seen["redrive_buttons"], 0, "{seen}");
    assert_eq!(seen["refused"]["status"], 403, "{seen}");
    assert_eq!(
        seen["refused"]["body"]["error"]["code"], "forbidden",
        "{seen}"
    );
    assert_eq!(api.stats("shop", "billing").await["dead"], 1);
    assert_eq!(receiver.count(), 1, "nothing was redriven");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pattern_tester_lists_the_subscriptions_of_the_bus_an_event_matches() {
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    crate::stats::shop_with_billing_and_search(&api, &receiver).await;
    let (status, source) = api
        .put(
            "/v1/sources/slack",
            json!({"bus": "shop", "verify": {"type": "slack", "signing_secret": "console-signing-secret"}}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    let (status, refused) = call(client().post(server.url("/hooks/slack")).body("{}")).await;
    assert!(
        (400..500).contains(&status),
        "an unsigned webhook is refused: {refused}"
    );
    let event = r#"{"source": "shop", "detail-type": "Order Placed", "detail": {"id": 1}}"#;
    let Some(seen) = browse(
        &server,
        "pattern_tester",
        &[("BUS", "shop"), ("EVENT", event)],
    )
    .await
    else {
        return;
    };
    assert_eq!(seen["matches"], json!(["billing"]), "{seen}");
    let Some(seen) = browse(&server, "sources", &[]).await else {
        return;
    };
    let row = seen["rows"][0].as_str().unwrap();
    assert!(row.contains("slack") && row.contains(": 1"), "{seen}");
}

/// The session cookie a sign-in sets, as `name=value`.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> String {
    let set = headers
        .get(reqwest::header::SET_COOKIE)
        .expect("a sign-in sets a cookie")
        .to_str()
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_console_session_is_an_http_only_cookie_that_changes_nothing_without_the_console_header()
{
    let dir = temp_dir();
    let tokens = admin_and_reader_tokens(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--api-tokens-file", tokens.to_str().unwrap()]);
    let http = client();

    let page = http.get(server.url("/console/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"));
    let (status, session) = call(http.get(server.url("/console/session"))).await;
    assert_eq!(status, 200);
    assert_eq!(session["tokens_required"], true);
    assert_eq!(session["token"], Value::Null);

    let (status, body) = call(
        http.post(server.url("/console/session"))
            .body(json!({"token": "not-a-token"}).to_string()),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = call(http.post(server.url("/console/session")).body("token")).await;
    assert_eq!(status, 400, "{body}");

    let answer = http
        .post(server.url("/console/session"))
        .body(json!({"token": READER_TOKEN}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let cookie = session_cookie(answer.headers());
    assert!(
        !cookie.contains(READER_TOKEN),
        "the cookie must not hold the token"
    );
    let (status, session) = call(
        http.get(server.url("/console/session"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(session["token"], "reader");
    assert_eq!(session["admin"], false);
    let (status, _) = call(http.get(server.url("/v1/buses")).header("cookie", &cookie)).await;
    assert_eq!(status, 200, "a session reads as its token does");
    let (status, body) = call(
        http.put(server.url("/v1/buses/b"))
            .header("cookie", &cookie)
            .header("switchyard-console", "1")
            .body("{}"),
    )
    .await;
    assert_eq!(
        status, 403,
        "a read session may not change anything: {body}"
    );

    let answer = http
        .post(server.url("/console/session"))
        .body(json!({"token": ADMIN_TOKEN}).to_string())
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(answer.headers());
    let (status, body) = call(
        http.put(server.url("/v1/buses/b"))
            .header("cookie", &cookie)
            .body("{}"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("switchyard-console"),
        "{body}"
    );
    let (status, body) = call(
        http.put(server.url("/v1/buses/b"))
            .header("cookie", &cookie)
            .header("switchyard-console", "1")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // A proxy's own Basic credentials do not hide the session.
    let (status, body) = call(
        http.get(server.url("/v1/buses"))
            .header("cookie", &cookie)
            .header("authorization", "Basic cHJveHk6c2VjcmV0"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Behind a proxy that rewrites Host, the console's origin is the public URL's.
    let (status, body) = call(
        http.put(server.url("/v1/buses/proxied"))
            .header("cookie", &cookie)
            .header("switchyard-console", "1")
            .header("host", "backend.internal:8080")
            .header("origin", &server.base)
            .body("{}"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        http.put(server.url("/v1/buses/forged"))
            .header("cookie", &cookie)
            .header("switchyard-console", "1")
            .header("origin", "https://attacker.example")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let tampered = format!("{}x", cookie);
    let (status, _) = call(http.get(server.url("/v1/buses")).header("cookie", tampered)).await;
    assert_eq!(status, 401);
    let answer = http
        .delete(server.url("/console/session"))
        .send()
        .await
        .unwrap();
    let cleared = answer.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn pages_of_other_sites_and_rebound_host_names_cannot_use_the_api() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let port = server.base.rsplit(':').next().unwrap().to_string();

    // A page elsewhere posting to an open server on loopback (a form, or fetch without CORS).
    for (name, value) in [
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-site", "same-site".to_string()),
        ("origin", "https://attacker.example".to_string()),
    ] {
        let (status, body) = call(
            http.put(server.url("/v1/buses/stolen"))
                .header(name, value)
                .body("{}"),
        )
        .await;
        assert_eq!(status, 403, "{name}: {body}");
        assert_eq!(body["error"]["code"], "cross_site");
    }
    // A name the attacker rebound to 127.0.0.1: same-origin for the browser, not for us.
    let rebound = format!("attacker.example:{port}");
    let (status, body) = call(
        http.get(server.url("/v1/buses"))
            .header("host", &rebound)
            .header("sec-fetch-site", "same-origin"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = call(http.get(server.url("/v1/buses/stolen"))).await;
    assert_eq!(status, 404, "nothing was created");

    // The console's own requests, and clients that are not browsers, pass.
    let (status, body) = call(
        http.put(server.url("/v1/buses/mine"))
            .header("sec-fetch-site", "same-origin")
            .header("origin", format!("http://127.0.0.1:{port}"))
            .body("{}"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(http.put(server.url("/v1/buses/curl")).body("{}")).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = call(
        http.get(server.url("/console/"))
            .header("host", format!("localhost:{port}"))
            .header("sec-fetch-site", "none"),
    )
    .await;
    assert_eq!(status, 200);
}
