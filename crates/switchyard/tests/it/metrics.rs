//! `/metrics`: what an operator sees while an endpoint is down, after it recovers, and for 4xx;
//! dead letters kept, API requests, the process, the build and the store; and that every metric
//! the dashboard and alerting rules in `deploy/` use is one the server exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use serde_json::json;

const SUB: &str = "bus=\"b\",subscription=\"s\"";

#[tokio::test]
async fn a_down_endpoint_shows_backlog_and_5xx_then_recovers_to_zero() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    api.bus("b").await;
    // The circuit breaker would pause attempts during the outage; this test watches retries.
    api.subscribe(
        "b",
        "s",
        json!({
            "destination": {"url": receiver.url},
            "retry": {"min_backoff_ms": 50, "max_backoff_ms": 100},
            "circuit_breaker": {"failure_threshold": 0}
        }),
    )
    .await;
    api.publish(
        "b",
        vec![
            event("x", json!({})),
            event("x", json!({})),
            event("x", json!({})),
        ],
    )
    .await;
    wait_for(
        "several failed attempts",
        Duration::from_secs(20),
        async || receiver.count() >= 6,
    )
    .await;
    // The receiver sees an attempt before its outcome is counted: wait for the counters.
    wait_for(
        "the failed attempts counted",
        Duration::from_secs(20),
        async || {
            sample(
                &scrape(&api).await,
                &format!("switchyard_delivery_attempts_total{{{SUB},class=\"5xx\"}}"),
            ) >= 6.0
        },
    )
    .await;

    let text = scrape(&api).await;
    assert_eq!(
        sample(&text, "switchyard_events_published_total{bus=\"b\"}"),
        3.0
    );
    assert_eq!(
        sample(&text, &format!("switchyard_matched_total{{{SUB}}}")),
        3.0
    );
    assert_eq!(
        sample(&text, &format!("switchyard_subscription_pending{{{SUB}}}")),
        3.0
    );
    assert!(
        sample(
            &text,
            &format!("switchyard_subscription_oldest_pending_age_seconds{{{SUB}}}")
        ) > 0.0
    );
    assert!(
        sample(
            &text,
            &format!("switchyard_delivery_attempts_total{{{SUB},class=\"5xx\"}}")
        ) >= 6.0
    );
    assert_eq!(
        sample(&text, &format!("switchyard_deliveries_total{{{SUB}}}")),
        0.0
    );
    assert!(text.contains("# TYPE switchyard_attempt_duration_seconds histogram"));
    assert!(
        sample(
            &text,
            &format!("switchyard_ingestion_to_attempt_seconds_count{{{SUB}}}")
        ) == 3.0
    );

    receiver.set(|_, _| Reply::status(200));
    // Counters move just after the commit that the stats read; wait for the counters themselves.
    wait_for("recovery", Duration::from_secs(20), async || {
        sample(
            &scrape(&api).await,
            &format!("switchyard_deliveries_total{{{SUB}}}"),
        ) == 3.0
    })
    .await;
    let text = scrape(&api).await;
    assert_eq!(
        sample(&text, &format!("switchyard_subscription_pending{{{SUB}}}")),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("switchyard_subscription_oldest_pending_age_seconds{{{SUB}}}")
        ),
        0.0
    );
    assert_eq!(
        sample(&text, &format!("switchyard_deliveries_total{{{SUB}}}")),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("switchyard_delivery_attempts_total{{{SUB},class=\"2xx\"}}")
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("switchyard_ingestion_to_delivery_seconds_count{{{SUB}}}")
        ),
        3.0
    );
}

#[tokio::test]
async fn a_4xx_counts_as_a_failure_and_a_dead_letter_never_as_success() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, _| Reply::status(404)).await;
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}}))
        .await;
    api.publish("b", vec![event("x", json!({})), event("x", json!({}))])
        .await;
    wait_for(
        "dead letters counted",
        Duration::from_secs(20),
        async || {
            let text = scrape(&api).await;
            sample(
                &text,
                &format!("switchyard_dead_letters_total{{{SUB},reason=\"non_retryable_status\"}}"),
            ) == 2.0
        },
    )
    .await;
    let text = scrape(&api).await;
    assert_eq!(
        sample(
            &text,
            &format!("switchyard_delivery_attempts_total{{{SUB},class=\"4xx\"}}")
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("switchyard_delivery_attempts_total{{{SUB},class=\"2xx\"}}")
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("switchyard_dead_letters_total{{{SUB},reason=\"non_retryable_status\"}}")
        ),
        2.0
    );
    assert_eq!(
        sample(&text, &format!("switchyard_deliveries_total{{{SUB}}}")),
        0.0
    );
}

#[tokio::test]
async fn refused_events_are_counted_by_reason() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--max-event-bytes", "500"]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.post("/v1/buses/b/events", json!({"source": "s"})).await;
    api.post(
        "/v1/buses/b/events",
        json!({"entries": [{"source": "s", "detail-type": "t"}, {"source": 1}, {}]}),
    )
    .await;
    api.post(
        "/v1/buses/b/events",
        event("s", json!({"x": "y".repeat(600)})),
    )
    .await;
    let text = scrape(&api).await;
    assert_eq!(
        sample(
            &text,
            "switchyard_events_rejected_total{bus=\"b\",reason=\"invalid\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "switchyard_events_rejected_total{bus=\"b\",reason=\"too_large\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(&text, "switchyard_events_published_total{bus=\"b\"}"),
        1.0
    );
    assert!(!text.contains("event_id"), "no label may carry an event id");
}

/// The value of a series, or `None` when the scrape has no such series (where [`sample`] says 0).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    })
}

/// A server whose subscription `b`/`s` dead-letters every delivery (its receiver answers 404).
async fn dead_lettering(api: &Api<'_>, receiver: &Receiver, events: usize) {
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}}))
        .await;
    api.publish("b", (0..events).map(|_| event("x", json!({}))).collect())
        .await;
    wait_for(
        "the dead letters kept",
        Duration::from_secs(20),
        async || api.stats("b", "s").await["dead"] == events,
    )
    .await;
}

#[tokio::test]
async fn the_dead_letter_gauge_is_the_dead_letters_kept_now_and_falls_when_they_are_purged() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, _| Reply::status(404)).await;
    dead_lettering(&api, &receiver, 2).await;
    let gauge = format!("switchyard_subscription_dead_letters{{{SUB}}}");
    let text = scrape(&api).await;
    assert!(text.contains("# TYPE switchyard_subscription_dead_letters gauge"));
    assert_eq!(value(&text, &gauge), Some(2.0), "{text}");

    let (status, body) = api.delete("/v1/buses/b/subscriptions/s/dead-letters").await;
    assert_eq!(status, 200, "{body}");
    let text = scrape(&api).await;
    assert_eq!(value(&text, &gauge), Some(0.0), "{text}");
    // The counter says how many died; the gauge, how many are left to look at.
    assert_eq!(
        sample(
            &text,
            &format!("switchyard_dead_letters_total{{{SUB},reason=\"non_retryable_status\"}}")
        ),
        2.0
    );
}

#[tokio::test]
async fn api_requests_are_counted_by_route_template_method_and_status_never_by_path() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.publish("b", vec![event("x", json!({}))]).await;
    let (status, _) = api
        .post("/v1/buses/nope/events", event("x", json!({})))
        .await;
    assert_eq!(status, 404);
    let (status, _) = api.get("/no/such/route/7f3a").await;
    assert_eq!(status, 404);
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let (status, _) = call(api.client.request(brew, server.url("/healthz"))).await;
    assert_eq!(status, 405);
    let eventbridge = |operation: &str, body: serde_json::Value| {
        api.client
            .post(server.url("/"))
            .header("x-amz-target", format!("AWSEvents.{operation}"))
            .header("content-type", "application/x-amz-json-1.1")
            .body(body.to_string())
    };
    let entry = json!({"Source": "x", "DetailType": "t", "Detail": "{}", "EventBusName": "b"});
    let (status, body) = call(eventbridge("PutEvents", json!({"Entries": [entry]}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(eventbridge("ListEventBuses", json!({}))).await;
    assert_eq!(status, 200, "{body}");

    let text = scrape(&api).await;
    let events = "route=\"/v1/buses/{bus}/events\",method=\"POST\"";
    for (series, expected) in [
        (
            "switchyard_http_requests_total{route=\"/v1/buses/{bus}\",method=\"PUT\",status=\"201\"}",
            1.0,
        ),
        (
            &format!("switchyard_http_requests_total{{{events},status=\"200\"}}"),
            1.0,
        ),
        (
            &format!("switchyard_http_requests_total{{{events},status=\"404\"}}"),
            1.0,
        ),
        (
            &format!("switchyard_http_request_duration_seconds_count{{{events}}}"),
            2.0,
        ),
        (
            &format!("switchyard_http_request_duration_seconds_bucket{{{events},le=\"+Inf\"}}"),
            2.0,
        ),
        (
            "switchyard_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}",
            1.0,
        ),
        (
            "switchyard_http_requests_total{route=\"/healthz\",method=\"other\",status=\"405\"}",
            1.0,
        ),
        (
            "switchyard_http_requests_total{route=\"/#PutEvents\",method=\"POST\",status=\"200\"}",
            1.0,
        ),
        (
            "switchyard_http_requests_total{route=\"/\",method=\"POST\",status=\"200\"}",
            1.0,
        ),
    ] {
        assert_eq!(value(&text, series), Some(expected), "{series}\n{text}");
    }
    assert!(text.contains("# TYPE switchyard_http_request_duration_seconds histogram"));
    // Names and ids from the paths as sent are no label values.
    for sent in ["nope", "7f3a", "BREW", "ListEventBuses"] {
        assert!(!text.contains(sent), "{sent} in a label:\n{text}");
    }
}

#[tokio::test]
async fn process_build_and_store_series_describe_the_running_server() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let text = scrape(&api).await;
    assert_eq!(
        value(
            &text,
            &format!(
                "switchyard_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "switchyard_store_ready"), Some(1.0));
    // The embedded store's size is its file's (nothing writes between the two reads but the
    // server's own upkeep, hence the retries).
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "redb"))
        .expect("the store file");
    wait_for(
        "the store's size to be its file's",
        Duration::from_secs(10),
        async || {
            let scraped = value(&scrape(&api).await, "switchyard_store_size_bytes");
            let len = std::fs::metadata(&file).unwrap().len();
            len > 0 && scraped == Some(len as f64)
        },
    )
    .await;
    assert!(value(&text, "switchyard_postgres_pool_max_connections").is_none());
    if !cfg!(target_os = "linux") {
        return;
    }
    let get = |name: &str| value(&text, name).unwrap_or_else(|| panic!("no {name}:\n{text}"));
    assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    assert!(get("process_cpu_seconds_total") >= 0.0);
    let resident = get("process_resident_memory_bytes");
    assert!(resident > 1e6, "{resident}");
    assert!(get("process_virtual_memory_bytes") >= resident);
    // stdin, stdout, stderr, the listener and the store file at least.
    let open = get("process_open_fds");
    assert!(open >= 5.0 && open <= get("process_max_fds"), "{text}");
    // The server started after this test did, and not after the scrape (give or take the
    // kernel's boot time, which it keeps in whole seconds).
    let start = get("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let test_started = now - dir_age(dir.path());
    assert!(
        start >= test_started - 5.0 && start <= now + 5.0,
        "{start} not within {test_started}..{now}"
    );
}

/// Seconds since a directory was made.
fn dir_age(path: &std::path::Path) -> f64 {
    let made = std::fs::metadata(path).unwrap().modified().unwrap();
    made.elapsed().unwrap_or_default().as_secs_f64()
}

/// A database of the test's own on the test server, so that the test may refuse connections
/// to it without touching the other tests' schemas; dropped (connections and all) at the end.
struct OwnDatabase<'a> {
    db: &'a TestDatabase,
    name: String,
}

impl<'a> OwnDatabase<'a> {
    async fn create(db: &'a TestDatabase) -> OwnDatabase<'a> {
        let name = format!("{}_own", db.schema);
        db.admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        OwnDatabase { db, name }
    }

    /// The test server's URL with this database in place of the test database.
    fn url(&self) -> String {
        let base = &self.db.base;
        let (path, query) = base.split_once('?').unwrap_or((base, ""));
        let (server, _) = path.rsplit_once('/').unwrap();
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{server}/{}{query}", self.name)
    }

    /// Refuses new connections and ends the open ones, or lets them in again.
    async fn allow_connections(&self, allow: bool) {
        let admin = self.db.admin().await;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
                self.name
            ))
            .await
            .unwrap();
        if !allow {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&self.name],
                )
                .await
                .unwrap();
        }
    }
}

impl Drop for OwnDatabase<'_> {
    fn drop(&mut self) {
        // Drop cannot await; a thread with its own runtime can, even while a test unwinds.
        let dropped = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        self.db
                            .admin()
                            .await
                            .batch_execute(&format!(
                                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                                self.name
                            ))
                            .await
                    })
                })
                .join()
        });
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

#[tokio::test]
async fn a_postgres_store_shows_its_pool_and_size_and_is_not_ready_while_unreachable() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let own = OwnDatabase::create(&db).await;
    let dir = temp_dir();
    let (url, key) = (own.url(), dir.path().join("master.key"));
    let server = Server::start(
        &dir.path().join("node"),
        &["--store", &url, "--master-key-file", key.to_str().unwrap()],
    );
    let api = Api::new(&server);
    api.bus("b").await;
    api.subscribe(
        "b",
        "s",
        json!({"destination": {"url": "http://127.0.0.1:9/"}}),
    )
    .await;
    let text = scrape(&api).await;
    assert_eq!(value(&text, "switchyard_store_ready"), Some(1.0));
    assert!(value(&text, "switchyard_store_size_bytes").is_some_and(|size| size > 0.0));
    let max = value(&text, "switchyard_postgres_pool_max_connections").unwrap();
    let idle = value(
        &text,
        "switchyard_postgres_pool_connections{state=\"idle\"}",
    )
    .unwrap();
    let in_use = value(
        &text,
        "switchyard_postgres_pool_connections{state=\"in_use\"}",
    )
    .unwrap();
    // The scrape's own queries had their connections back before the pool was read.
    assert!(max >= 1.0 && idle >= 1.0 && idle + in_use <= max, "{text}");
    assert_eq!(
        value(&text, &format!("switchyard_subscription_pending{{{SUB}}}")),
        Some(0.0)
    );

    own.allow_connections(false).await;
    wait_for("the store not ready", Duration::from_secs(30), async || {
        value(&scrape(&api).await, "switchyard_store_ready") == Some(0.0)
    })
    .await;
    let text = scrape(&api).await;
    // What the store would say is left out rather than shown as an empty backlog.
    assert!(
        value(&text, &format!("switchyard_subscription_pending{{{SUB}}}")).is_none(),
        "{text}"
    );
    assert!(value(&text, "switchyard_store_size_bytes").is_none());
    assert_eq!(
        value(
            &text,
            &format!("switchyard_subscription_circuit_state{{{SUB}}}")
        ),
        Some(0.0)
    );
    assert_eq!(api.get("/readyz").await.0, 503);

    own.allow_connections(true).await;
    wait_for(
        "the store ready again",
        Duration::from_secs(30),
        async || value(&scrape(&api).await, "switchyard_store_ready") == Some(1.0),
    )
    .await;
    assert_eq!(api.get("/readyz").await.0, 200);
    drop(api);
    server.kill();
}

/// The metric names a dashboard or rules file uses: every `switchyard_…` and `process_…` word,
/// a histogram's series (`_bucket`, `_sum`, `_count`) by the histogram's name.
fn metric_names(text: &str) -> BTreeSet<String> {
    let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut names = BTreeSet::new();
    for prefix in ["switchyard_", "process_"] {
        for (at, _) in text.match_indices(prefix) {
            if text[..at].chars().next_back().is_some_and(word) {
                continue;
            }
            let rest = &text[at..];
            let name = &rest[..rest.find(|c: char| !word(c)).unwrap_or(rest.len())];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(name.to_string());
        }
    }
    names
}

/// The metric names a scrape declares (`# TYPE name kind`), whether or not they have series.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_metric_the_shipped_dashboard_and_alerts_use_is_one_the_server_exports() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let mut used = BTreeMap::new();
    for file in [
        "grafana/switchyard.json",
        "prometheus/switchyard-rules.yml",
        "prometheus/switchyard-rules.test.yml",
    ] {
        let text = std::fs::read_to_string(deploy.join(file)).unwrap();
        for name in metric_names(&text) {
            used.entry(name).or_insert(file);
        }
    }
    // A reading that found (next to) nothing would pass whatever the files say.
    assert!(used.len() >= 30, "{used:?}");

    // A server with a bus, a subscription with a dead letter and an archive.
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("embedded"), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|_, _| Reply::status(404)).await;
    dead_lettering(&api, &receiver, 1).await;
    let (status, body) = api.put("/v1/buses/b/archives/all", json!({})).await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let mut exported = exported_names(&scrape(&api).await);
    // The PostgreSQL pool's series exist only on a PostgreSQL store.
    match TestDatabase::create().await {
        Some(db) => {
            let node = crate::cluster::node(&db, dir.path(), "pg", &[]);
            exported.extend(exported_names(&scrape(&Api::new(&node)).await));
        }
        None => used.retain(|name, _| !name.starts_with("switchyard_postgres_")),
    }
    let unknown: Vec<_> = used
        .iter()
        .filter(|(name, _)| !exported.contains(*name))
        .collect();
    assert!(
        unknown.is_empty(),
        "used in deploy/ but not exported (name, first file): {unknown:?}"
    );
}
