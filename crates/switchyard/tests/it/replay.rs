//! Archives and replays through the real binary: what an archive keeps, how long, and a replay
//! of a time range to chosen subscriptions, in publish order, marked with `replay-name`.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};
use switchyard_model::{format_rfc3339_ms, now_ms};

/// A time strictly between what was published before and what is published after.
async fn boundary() -> String {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let at = format_rfc3339_ms(now_ms());
    tokio::time::sleep(Duration::from_millis(5)).await;
    at
}

fn numbered(kind: &str, seq: u64) -> Value {
    json!({"source": "shop", "detail-type": kind, "detail": {"kind": kind, "seq": seq}})
}

async fn archive_count(api: &Api<'_>, bus: &str, name: &str) -> u64 {
    let (status, body) = api.get(&format!("/v1/buses/{bus}/archives/{name}")).await;
    assert_eq!(status, 200, "{body}");
    body["event_count"].as_u64().unwrap()
}

async fn wait_replay(api: &Api<'_>, name: &str, state: &str) -> Value {
    let mut last = Value::Null;
    wait_for(
        &format!("replay {name} {state}"),
        Duration::from_secs(30),
        async || {
            let (status, body) = api.get(&format!("/v1/replays/{name}")).await;
            assert_eq!(status, 200, "{body}");
            last = body;
            last["state"] == state
        },
    )
    .await;
    last
}

async fn wait_delivered(api: &Api<'_>, sub: &str, delivered: u64) {
    wait_for(
        &format!("{sub} delivered {delivered}"),
        Duration::from_secs(30),
        async || api.stats("b", sub).await["delivered"] == delivered,
    )
    .await;
}

#[tokio::test]
async fn replay_of_a_time_range_goes_only_to_the_chosen_subscription_in_publish_order() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (early, late) = (Receiver::ok().await, Receiver::ok().await);
    api.bus("b").await;
    let (status, body) = api.put("/v1/buses/b/archives/all", json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["retention_days"], 0.0);
    // An archive pattern that excludes refunds.
    let (status, body) = api
        .put(
            "/v1/buses/b/archives/orders",
            json!({"pattern": {"detail-type": ["order"]}, "retention_days": 30}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    api.subscribe("b", "early", json!({"destination": {"url": early.url}}))
        .await;

    for seq in 0..4 {
        api.publish("b", vec![numbered("order", seq), numbered("refund", seq)])
            .await;
    }
    let from = boundary().await;
    let mut second_half = Vec::new();
    for seq in 4..8 {
        second_half.extend(
            api.publish("b", vec![numbered("order", seq), numbered("refund", seq)])
                .await,
        );
    }
    let to = boundary().await;
    api.publish("b", vec![numbered("order", 8)]).await;
    wait_delivered(&api, "early", 17).await;
    assert_eq!(archive_count(&api, "b", "all").await, 17);
    assert_eq!(
        archive_count(&api, "b", "orders").await,
        9,
        "refunds are not archived there"
    );
    let (_, bus) = api.get("/v1/buses/b").await;
    assert_eq!(
        (bus["subscriptions"].as_u64(), bus["archives"].as_u64()),
        (Some(1), Some(2)),
        "{bus}"
    );

    // A subscription created after the events were published, serial so that order shows.
    api.subscribe(
        "b",
        "late",
        json!({"destination": {"url": late.url}, "max_concurrency": 1}),
    )
    .await;
    let (status, body) = api
        .post(
            "/v1/replays",
            json!({"name": "fix-1", "bus": "b", "archive": "all", "from": from, "to": to, "subscriptions": ["late"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events_total"], 8);
    let done = wait_replay(&api, "fix-1", "completed").await;
    assert_eq!(done["events_replayed"], 8, "{done}");
    assert_eq!(done["deliveries_created"], 8, "{done}");
    assert_eq!(done["progress"], 1.0);
    wait_delivered(&api, "late", 8).await;

    let hits = late.hits();
    let ids: Vec<String> = hits.iter().map(|h| h.event_id()).collect();
    assert_eq!(
        ids, second_half,
        "the range's events, in publish order, with their own ids"
    );
    for hit in &hits {
        assert_eq!(hit.body["replay-name"], "fix-1", "{}", hit.body);
    }
    assert_eq!(
        api.stats("b", "early").await["accepted"],
        17,
        "others get nothing"
    );
    assert_eq!(
        archive_count(&api, "b", "all").await,
        17,
        "replays are not archived again"
    );
    let metrics = scrape(&api).await;
    assert_eq!(
        sample(&metrics, "switchyard_events_replayed_total{bus=\"b\"}"),
        8.0
    );
    assert_eq!(
        sample(&metrics, "switchyard_events_published_total{bus=\"b\"}"),
        17.0
    );

    // A replay name is taken once; finished replays cannot be cancelled.
    let (status, body) = api
        .post(
            "/v1/replays",
            json!({"name": "fix-1", "bus": "b", "archive": "all", "from": from, "to": to}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = api.delete("/v1/replays/fix-1").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("running"),
        "{body}"
    );
    let (status, body) = api.get("/v1/replays").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn subscriptions_can_leave_replays_out_with_replay_name_exists_false() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (live_only, any) = (Receiver::ok().await, Receiver::ok().await);
    api.bus("b").await;
    api.put("/v1/buses/b/archives/all", json!({})).await;
    api.subscribe(
        "b",
        "live-only",
        json!({"pattern": {"replay-name": [{"exists": false}]}, "destination": {"url": live_only.url}}),
    )
    .await;
    api.subscribe("b", "any", json!({"destination": {"url": any.url}}))
        .await;
    let from = boundary().await;
    api.publish("b", (0..3).map(|i| numbered("order", i)).collect())
        .await;
    let to = boundary().await;
    wait_delivered(&api, "live-only", 3).await;

    // No subscriptions listed: every subscription of the bus, as its pattern decides.
    let (status, body) = api
        .post(
            "/v1/replays",
            json!({"name": "all-subs", "bus": "b", "archive": "all", "from": from, "to": to}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let done = wait_replay(&api, "all-subs", "completed").await;
    assert_eq!(done["deliveries_created"], 3, "{done}");
    wait_delivered(&api, "any", 6).await;
    assert_eq!(api.stats("b", "live-only").await["accepted"], 3);
}

#[tokio::test]
async fn archived_events_expire_after_their_retention_and_others_stay() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    // About 2.6 seconds; upkeep runs every 2 s.
    api.put(
        "/v1/buses/b/archives/brief",
        json!({"retention_days": 0.00003}),
    )
    .await;
    api.put("/v1/buses/b/archives/forever", json!({})).await;
    api.publish("b", (0..5).map(|i| numbered("order", i)).collect())
        .await;
    assert_eq!(archive_count(&api, "b", "brief").await, 5);
    wait_for(
        "the brief archive to expire",
        Duration::from_secs(30),
        async || archive_count(&api, "b", "brief").await == 0,
    )
    .await;
    assert_eq!(archive_count(&api, "b", "forever").await, 5);
    let metrics = scrape(&api).await;
    assert_eq!(
        sample(
            &metrics,
            "switchyard_archive_events{bus=\"b\",archive=\"brief\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            "switchyard_archive_events{bus=\"b\",archive=\"forever\"}"
        ),
        5.0
    );
    assert!(
        sample(
            &metrics,
            "switchyard_archive_bytes{bus=\"b\",archive=\"forever\"}"
        ) > 0.0
    );
    let (_, body) = api.get("/v1/buses/b/archives/brief").await;
    assert!(body.get("oldest_event_at").is_none(), "{body}");
    // A bus with archives is only deleted on purpose.
    let (status, body) = api.delete("/v1/buses/b").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("archive"),
        "{body}"
    );
}

#[tokio::test]
async fn a_replay_paced_by_a_failing_receiver_can_be_cancelled_and_resumes_after_restart() {
    let dir = temp_dir();
    let failing = Receiver::start(|_, _| Reply::status(503)).await;
    let server = Server::start(dir.path(), &["--lane-capacity", "8"]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.put("/v1/buses/b/archives/all", json!({})).await;
    let from = boundary().await;
    for batch in 0..6 {
        api.publish(
            "b",
            (0..100)
                .map(|i| numbered("order", batch * 100 + i))
                .collect(),
        )
        .await;
    }
    let to = boundary().await;
    api.subscribe(
        "b",
        "target",
        json!({"destination": {"url": failing.url}, "retry": {"min_backoff_ms": 50, "max_backoff_ms": 100},
               "circuit_breaker": {"failure_threshold": 0}}),
    )
    .await;
    let start = |name: &str| json!({"name": name, "bus": "b", "archive": "all", "from": from, "to": to, "subscriptions": ["target"]});
    let (status, body) = api.post("/v1/replays", start("paced")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events_total"], 600);
    // The receiver takes nothing, so the replay holds at about one lane's worth pending.
    wait_for("the replay to pause", Duration::from_secs(30), async || {
        api.stats("b", "target").await["pending"].as_u64().unwrap() >= 8
    })
    .await;
    // A stalled replay says which subscription it is waiting for, and since when.
    wait_for(
        "the replay to say what it waits for",
        Duration::from_secs(30),
        async || api.get("/v1/replays/paced").await.1["waiting_for"]["subscription"] == "target",
    )
    .await;
    let (_, paused) = api.get("/v1/replays/paced").await;
    assert!(paused["waiting_for"]["since"].is_string(), "{paused}");
    let (status, cancelled) = api.delete("/v1/replays/paced").await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled.get("waiting_for").is_none(), "{cancelled}");
    let replayed = cancelled["events_replayed"].as_u64().unwrap();
    assert!(replayed < 600, "{cancelled}");
    assert_eq!(
        api.stats("b", "target").await["accepted"].as_u64().unwrap(),
        replayed
    );

    // A second replay, paused behind the first one's backlog, is stopped by a restart and
    // finishes after it.
    let (status, body) = api.post("/v1/replays", start("resumed")).await;
    assert_eq!(status, 201, "{body}");
    server.kill();
    failing.set(|_, _| Reply::status(200));
    let server = Server::start(dir.path(), &["--lane-capacity", "8"]);
    let api = Api::new(&server);
    let done = wait_replay(&api, "resumed", "completed").await;
    assert_eq!(done["events_replayed"].as_u64().unwrap(), 600, "{done}");
    let stats = api.stats("b", "target").await;
    assert_accounting(&stats);
    // At least once: a batch committed just before the kill may be replayed again on resume.
    assert!(
        stats["accepted"].as_u64().unwrap() >= replayed + 600,
        "{stats}"
    );
}

#[tokio::test]
async fn bad_archive_and_replay_requests_are_refused_with_what_to_fix() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.put("/v1/buses/b/archives/all", json!({})).await;
    let cases = [
        ("/v1/buses/nope/archives/a", json!({}), 404, "nope"),
        (
            "/v1/buses/b/archives/a",
            json!({"retention_days": -1}),
            400,
            "retention_days",
        ),
        (
            "/v1/buses/b/archives/a",
            json!({"pattern": {"source": "x"}}),
            400,
            "pattern",
        ),
        ("/v1/buses/b/archives/a", json!({"keep": true}), 400, "keep"),
    ];
    for (path, body, status, needle) in cases {
        let (got, answer) = api.put(path, body).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{answer}"
        );
    }
    let range = |extra: Value| {
        let mut body = json!({"name": "r", "bus": "b", "archive": "all",
            "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (range(json!({"archive": "none"})), "archive"),
        (range(json!({"bus": "none"})), "bus"),
        (range(json!({"subscriptions": ["none"]})), "subscriptions"),
        (range(json!({"subscriptions": []})), "subscriptions"),
        (range(json!({"to": "2025-01-01T00:00:00Z"})), "before"),
        (range(json!({"from": "last tuesday"})), "from"),
        (range(json!({"name": "a/b"})), "replay name"),
    ];
    for (body, needle) in cases {
        let (status, answer) = api.post("/v1/replays", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let (status, _) = api.get("/v1/replays/r").await;
    assert_eq!(status, 404, "refused replays leave nothing behind");
    let (status, _) = api.delete("/v1/replays/r").await;
    assert_eq!(status, 404);
}
