//! Scheduled subscriptions (`schedule`, in EventBridge's rate and cron syntax) from the REST API
//! and the config file: each tick sends one "Scheduled Event", a schedule without a pattern takes
//! no published event, a disabled one does not tick, a too-short test minute is refused, and two
//! nodes on one PostgreSQL database fire each tick once.
//!
//! Every test shortens the rate minute with `--schedule-minute-ms`, so `rate(1 minute)` ticks
//! every few hundred milliseconds; waits are bounded, and none asserts on speed.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::common::*;

/// `--schedule-minute-ms` of these tests.
const MINUTE_MS: u64 = 300;

/// Each hit's tick (its `time`), checking that it is a Scheduled Event on the scaled minute.
fn ticks(hits: &[Hit], rule_arn: &str) -> Vec<u64> {
    hits.iter()
        .map(|hit| {
            let event = &hit.body;
            assert_eq!(event["source"], "aws.events", "{event}");
            assert_eq!(event["detail-type"], "Scheduled Event", "{event}");
            assert_eq!(event["resources"], json!([rule_arn]), "{event}");
            assert_eq!(event["detail"], json!({}), "{event}");
            let time = event["time"].as_str().unwrap();
            let tick = switchyard_model::parse_rfc3339_ms("time", time).unwrap();
            assert_eq!(tick % MINUTE_MS, 0, "a tick off the scaled minute: {time}");
            tick
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_subscription_gets_one_scheduled_event_per_tick_and_no_published_event() {
    let (ticked, everything) = (Receiver::ok().await, Receiver::ok().await);
    let dir = temp_dir();
    let minute = MINUTE_MS.to_string();
    let server = Server::start(dir.path(), &["--schedule-minute-ms", &minute]);
    let api = Api::new(&server);
    api.bus("jobs").await;
    api.subscribe(
        "jobs",
        "nightly",
        json!({"schedule": "rate(1 minute)", "destination": {"url": ticked.url}}),
    )
    .await;
    api.subscribe(
        "jobs",
        "all",
        json!({"destination": {"url": everything.url}}),
    )
    .await;
    let (status, view) = api.get("/v1/buses/jobs/subscriptions/nightly").await;
    assert_eq!(status, 200);
    assert_eq!(view["schedule"], "rate(1 minute)", "{view}");

    api.publish("jobs", vec![event("shop", json!({"n": 1}))])
        .await;
    wait_for("three ticks", Duration::from_secs(30), async || {
        ticked.count() >= 3
    })
    .await;
    // The published event reached `all`, so it was routed; `nightly` has no pattern and got
    // only ticks (each checked to be a Scheduled Event).
    wait_for("the published event", Duration::from_secs(20), async || {
        everything.hits().iter().any(|h| h.body["source"] == "shop")
    })
    .await;
    let arn = "arn:aws:events:us-east-1:000000000000:rule/jobs/nightly";
    let ticks = ticks(&ticked.hits(), arn);
    let distinct: BTreeSet<u64> = ticks.iter().copied().collect();
    assert_eq!(distinct.len(), ticks.len(), "a tick fired twice: {ticks:?}");
    // Ticks go to the schedule's subscriptions only, not to every subscription of the bus.
    assert!(
        everything.hits().iter().all(|h| h.body["source"] == "shop"),
        "a tick went to a subscription without the schedule"
    );
    wait_for("the ticks counted", Duration::from_secs(20), async || {
        sample(
            &scrape(&api).await,
            "switchyard_schedule_ticks_total{bus=\"jobs\",subscription=\"nightly\"}",
        ) >= 3.0
    })
    .await;

    // Disabled, it stops; a second schedule is the sentinel that ticks meanwhile.
    let sentinel = Receiver::ok().await;
    api.subscribe(
        "jobs",
        "nightly",
        json!({"schedule": "rate(1 minute)", "enabled": false, "destination": {"url": ticked.url}}),
    )
    .await;
    let settled = ticked.count();
    api.subscribe(
        "jobs",
        "sentinel",
        json!({"schedule": "rate(1 minute)", "destination": {"url": sentinel.url}}),
    )
    .await;
    wait_for(
        "three sentinel ticks",
        Duration::from_secs(30),
        async || sentinel.count() >= 3,
    )
    .await;
    // One tick decided just before the change may still come.
    assert!(
        ticked.count() <= settled + 1,
        "a disabled schedule kept ticking: {settled} then {}",
        ticked.count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_from_the_config_file_ticks_and_a_pattern_beside_it_still_matches() {
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[buses.ops.subscriptions.report]
schedule = "rate(2 minutes)"
pattern = {{ source = ["ops"] }}
destination = {{ url = "{}/report" }}
"#,
            receiver.url
        ),
    )
    .unwrap();
    let minute = MINUTE_MS.to_string();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--schedule-minute-ms",
            &minute,
        ],
    );
    let api = Api::new(&server);
    api.publish("ops", vec![event("ops", json!({}))]).await;
    wait_for(
        "two ticks and the event",
        Duration::from_secs(30),
        async || {
            let hits = receiver.hits();
            hits.iter()
                .filter(|h| h.body["source"] == "aws.events")
                .count()
                >= 2
                && hits.iter().any(|h| h.body["source"] == "ops")
        },
    )
    .await;
    let scheduled: Vec<Hit> = receiver
        .hits()
        .into_iter()
        .filter(|h| h.body["source"] == "aws.events")
        .collect();
    let ticks = ticks(
        &scheduled,
        "arn:aws:events:us-east-1:000000000000:rule/ops/report",
    );
    // rate(2 minutes): consecutive ticks two scaled minutes apart.
    for pair in ticks.windows(2) {
        assert_eq!((pair[1] - pair[0]) % (2 * MINUTE_MS), 0, "{ticks:?}");
    }
}

#[test]
fn a_schedule_minute_below_the_minimum_is_refused() {
    let dir = temp_dir();
    let log = Server::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--schedule-minute-ms",
        "10",
    ])
    .err()
    .expect("serve started with a 10 ms minute");
    assert!(
        log.join("\n")
            .contains("--schedule-minute-ms 10 is too short"),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_schedule_is_refused_with_what_is_wrong_and_nothing_is_stored() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("jobs").await;
    for (schedule, says) in [
        ("rate(5 minute)", "needs a plural unit"),
        ("cron(0 12 * * * *)", "?"),
        ("every day", "neither rate"),
    ] {
        let (status, body) = api
            .put(
                "/v1/buses/jobs/subscriptions/bad",
                json!({"schedule": schedule, "destination": {"url": "http://127.0.0.1:9/"}}),
            )
            .await;
        assert_eq!(status, 400, "{schedule}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{schedule}: {message}");
    }
    assert_eq!(api.get("/v1/buses/jobs/subscriptions/bad").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_fire_each_tick_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let minute = MINUTE_MS.to_string();
    let node = |name: &str| {
        crate::cluster::node(&db, dir.path(), name, &["--schedule-minute-ms", &minute])
    };
    // One after the other: the first creates the schema and the master key.
    let first = node("n1");
    let second = node("n2");
    let api = Api::new(&first);
    api.bus("jobs").await;
    api.subscribe(
        "jobs",
        "nightly",
        json!({"schedule": "rate(1 minute)", "destination": {"url": receiver.url}}),
    )
    .await;
    wait_for("eight ticks", Duration::from_secs(60), async || {
        receiver.count() >= 8
    })
    .await;
    let ticks = ticks(
        &receiver.hits(),
        "arn:aws:events:us-east-1:000000000000:rule/jobs/nightly",
    );
    let distinct: BTreeSet<u64> = ticks.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ticks.len(),
        "a tick fired on both nodes: {ticks:?}"
    );
    // Each tick is counted by the node whose commit won, before it is delivered.
    let series = "switchyard_schedule_ticks_total{bus=\"jobs\",subscription=\"nightly\"}";
    let total =
        sample(&scrape(&api).await, series) + sample(&scrape(&Api::new(&second)).await, series);
    assert!(
        total >= distinct.len() as f64,
        "{total} ticks counted for {} delivered",
        distinct.len()
    );
}
