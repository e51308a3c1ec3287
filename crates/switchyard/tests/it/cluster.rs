//! Several `switchyard serve` nodes on one PostgreSQL database: changes made on one node reach
//! the others, any node takes publishes, one node SIGKILLed under load loses nothing, and ordering
//! keys hold across the failover.
//!
//! Needs PostgreSQL: `SWITCHYARD_TEST_POSTGRES` (a URL), or one at 127.0.0.1:5432 (user
//! `postgres`, database `test`). Without the variable and without a server, the test says it is
//! skipped; with the variable set, an unreachable server fails it. `.ci/run` sets it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use serde_json::json;

/// Node `name` of a cluster on `db`: its data directory under `dir`, the master key shared
/// there, short leases unless `extra` sets them.
pub(crate) fn node(db: &TestDatabase, dir: &std::path::Path, name: &str, extra: &[&str]) -> Server {
    let key = dir.join("master.key");
    let url = db.url();
    let mut args = vec![
        "--store",
        &url,
        "--master-key-file",
        key.to_str().unwrap(),
        "--node-id",
        name,
    ];
    // Short leases, so that a dead node's subscriptions move within the test's patience.
    if !extra.contains(&"--lease-ms") {
        args.extend_from_slice(&["--lease-ms", "1500"]);
    }
    args.extend_from_slice(extra);
    Server::start(&dir.join(name), &args)
}

const KEYS_PER_NODE: usize = 2;
const PER_KEY: u64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_database_lose_nothing_when_one_is_killed_and_keep_key_order() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = temp_dir();
    // Started one after the other: the first creates the schema and the master key.
    let first = node(&db, dir.path(), "n1", &[]);
    let survivors = [first, node(&db, dir.path(), "n2", &[])];
    let victim = node(&db, dir.path(), "n3", &[]);
    let apis: Vec<Api> = survivors.iter().map(Api::new).collect();

    // Arrivals per subscription (path), in order: (event id, key, seq).
    type Arrivals = BTreeMap<String, Vec<(String, String, u64)>>;
    let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
    let record = Arc::clone(&arrivals);
    let receiver = Receiver::start(move |hit, n| {
        let key = hit.body["detail"]["key"].as_str().unwrap_or("").to_string();
        let seq = hit.body["detail"]["seq"].as_u64().unwrap_or(0);
        record
            .lock()
            .unwrap()
            .entry(hit.path.clone())
            .or_default()
            .push((hit.event_id(), key, seq));
        // Slow enough that attempts are in flight when a node dies; an occasional 503.
        Reply {
            delay: Duration::from_millis(2),
            ..Reply::status(if n % 17 == 0 { 503 } else { 200 })
        }
    })
    .await;

    // Made on one node, seen on all: the catalog follows the store.
    apis[0].bus("b").await;
    let retry = json!({"min_backoff_ms": 20, "max_backoff_ms": 100});
    let breaker = json!({"failure_threshold": 0});
    for (name, ordered) in [("ordered", true), ("all", false), ("more", false)] {
        apis[1]
            .subscribe(
                "b",
                name,
                json!({"destination": {"url": format!("{}/{name}", receiver.url)},
                       "ordered": ordered, "retry": retry, "circuit_breaker": breaker}),
            )
            .await;
    }
    for api in apis.iter().chain([&Api::new(&victim)]) {
        wait_for(
            "every node to know every subscription",
            Duration::from_secs(10),
            async || api.get("/v1/buses/b/subscriptions/more").await.0 == 200,
        )
        .await;
    }

    // Leases settle on one subscription per node (the fair share), so the victim owns one.
    let mut victims = String::new();
    wait_for(
        "the victim to deliver for a subscription",
        Duration::from_secs(20),
        async || {
            let log = victim.log_text();
            match log.split("delivering for it bus=b subscription=").nth(1) {
                Some(rest) => {
                    victims = rest.split_whitespace().next().unwrap_or("").to_string();
                    true
                }
                None => false,
            }
        },
    )
    .await;

    // Each node publishes its own keys, so each key's publish order is known; node 3 dies
    // halfway through, under load.
    let acknowledged: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut publishers = Vec::new();
    for (index, node) in survivors.iter().chain([&victim]).enumerate() {
        let (url, acknowledged) = (node.url("/v1/buses/b/events"), Arc::clone(&acknowledged));
        publishers.push(tokio::spawn(async move {
            let client = client();
            for seq in 0..PER_KEY {
                let entries: Vec<_> = (0..KEYS_PER_NODE)
                    .map(|k| {
                        let key = format!("n{index}-k{k}");
                        json!({"source": "s", "detail-type": "t", "ordering-key": key,
                               "detail": {"key": key, "seq": seq}})
                    })
                    .collect();
                let answer = client
                    .post(&url)
                    .json(&json!({"entries": entries}))
                    .send()
                    .await;
                let Ok(answer) = answer else { return };
                let Ok(body) = answer.json::<serde_json::Value>().await else {
                    return;
                };
                for entry in body["entries"].as_array().into_iter().flatten() {
                    if let Some(id) = entry["id"].as_str() {
                        acknowledged.lock().unwrap().insert(id.to_string());
                    }
                }
            }
        }));
    }
    wait_for(
        "load before the kill",
        Duration::from_secs(30),
        async || acknowledged.lock().unwrap().len() >= 150,
    )
    .await;
    victim.kill();
    for publisher in publishers {
        let _ = publisher.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 2 * KEYS_PER_NODE * PER_KEY as usize);

    // Every acknowledged event reaches every subscription, through the survivors.
    for name in ["ordered", "all", "more"] {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            // A publish the victim committed but could not answer is accepted without being
            // acknowledged: at least what was acknowledged, then.
            let stats = apis[0].stats("b", name).await;
            if stats["pending"] == 0
                && stats["accepted"].as_u64() >= Some(acknowledged.len() as u64)
            {
                break;
            }
            let logs: String = survivors.iter().map(Server::log_text).collect();
            assert!(
                std::time::Instant::now() < deadline,
                "{name} did not deliver everything within 90 s: {stats}, {} acknowledged\n{logs}",
                acknowledged.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = apis[1].stats("b", name).await;
        assert_accounting(&stats);
        assert_eq!(stats["dead"], 0, "{stats}");
        let got: HashSet<String> = arrivals.lock().unwrap()[&format!("/{name}")]
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect();
        let missing: Vec<_> = acknowledged.difference(&got).collect();
        assert!(missing.is_empty(), "{name} never received {missing:?}");
    }

    // Per key, no event arrives before every earlier one of its key has (repeats after the
    // failover are allowed: at least once).
    let ordered = arrivals.lock().unwrap()["/ordered"].clone();
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, key, seq) in &ordered {
        let expected = next.entry(key.as_str()).or_insert(0);
        assert!(
            *seq <= *expected,
            "key {key}: seq {seq} arrived before seq {expected}"
        );
        if *seq == *expected {
            *expected += 1;
        }
    }
    // The victim's subscription moved to a survivor once its lease ran out.
    let survivor_logs: String = survivors.iter().map(Server::log_text).collect();
    assert!(
        survivor_logs.contains(&format!("delivering for it bus=b subscription={victims}")),
        "no survivor took over {victims}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_started_on_one_node_is_cancelled_from_another() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = temp_dir();
    // A small lane capacity and a receiver that takes nothing hold the replay back (it waits
    // while its target has a lane's worth pending), so it is still running when cancelled.
    let one = node(&db, dir.path(), "n1", &["--lane-capacity", "8"]);
    let two = node(&db, dir.path(), "n2", &["--lane-capacity", "8"]);
    let (api1, api2) = (Api::new(&one), Api::new(&two));
    let failing = Receiver::start(|_, _| Reply::status(503)).await;
    api1.bus("b").await;
    let (status, body) = api1.put("/v1/buses/b/archives/all", json!({})).await;
    assert_eq!(status, 201, "{body}");
    // The second node takes the bus and its archive in from the change feed, a moment later.
    wait_for(
        "the second node to know the archive",
        Duration::from_secs(20),
        async || api2.get("/v1/buses/b/archives/all").await.0 == 200,
    )
    .await;
    let from = switchyard_model::format_rfc3339_ms(switchyard_model::now_ms() - 1);
    for batch in 0..4 {
        api2.publish(
            "b",
            (0..100)
                .map(|i| event("s", json!({"n": batch * 100 + i})))
                .collect(),
        )
        .await;
    }
    api1.subscribe(
        "b",
        "target",
        json!({"destination": {"url": failing.url}, "circuit_breaker": {"failure_threshold": 0}}),
    )
    .await;
    let to = switchyard_model::format_rfc3339_ms(switchyard_model::now_ms() + 1);
    let (status, body) = api1
        .post(
            "/v1/replays",
            json!({"name": "r", "bus": "b", "archive": "all", "from": from, "to": to}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    wait_for(
        "the replay to be held back",
        Duration::from_secs(30),
        async || api1.stats("b", "target").await["pending"].as_u64().unwrap() >= 8,
    )
    .await;
    let (status, cancelled) = api2.delete("/v1/replays/r").await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    // The runner on the first node sees the mark and stops; its final state stays cancelled.
    wait_for("the runner to stop", Duration::from_secs(20), async || {
        let (_, replay) = api1.get("/v1/replays/r").await;
        replay["state"] == "cancelled" && replay["finished_at"].is_string()
    })
    .await;
    let (_, replay) = api2.get("/v1/replays/r").await;
    let replayed = replay["events_replayed"].as_u64().unwrap();
    assert!(replayed < 400, "{replay}");
    // Once the receiver takes deliveries again, a runner that missed the cancel would go on
    // (and write `running` back): give it the room, then a sentinel to show it had its chance.
    failing.set(|_, _| Reply::status(200));
    wait_for(
        "the backlog to drain",
        Duration::from_secs(30),
        async || api1.stats("b", "target").await["pending"] == 0,
    )
    .await;
    // The sentinel: a second replay of the same range on the same node, to a subscription of
    // its own, started after the drain. Run to the end, it has gone through the batches and the
    // backlog checks that a runner still going would have gone through beside it.
    let sentinel = Receiver::ok().await;
    api1.subscribe(
        "b",
        "sentinel",
        json!({"destination": {"url": sentinel.url}}),
    )
    .await;
    let (status, body) = api1
        .post(
            "/v1/replays",
            json!({"name": "sentinel", "bus": "b", "archive": "all", "from": from, "to": to,
                "subscriptions": ["sentinel"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    wait_for("the sentinel replay", Duration::from_secs(60), async || {
        api1.get("/v1/replays/sentinel").await.1["state"] == "completed"
    })
    .await;
    let (_, replay) = api1.get("/v1/replays/r").await;
    assert_eq!(replay["state"], "cancelled", "{replay}");
    assert_eq!(
        api2.stats("b", "target").await["accepted"]
            .as_u64()
            .unwrap(),
        replayed,
        "no batch after the cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_under_load_takes_its_share_without_repeating_deliveries() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = temp_dir();
    let first = node(&db, dir.path(), "n1", &[]);
    let api = Api::new(&first);
    // Slow answers, so that attempts are in flight whenever a lane is handed over.
    let receiver = Receiver::start(|_, _| Reply {
        delay: Duration::from_millis(100),
        ..Reply::status(200)
    })
    .await;
    api.bus("b").await;
    for name in ["s1", "s2"] {
        api.subscribe(
            "b",
            name,
            json!({"destination": {"url": format!("{}/{name}", receiver.url)}, "max_concurrency": 4}),
        )
        .await;
    }
    let mut published = 0;
    for batch in 0..3 {
        published += api
            .publish(
                "b",
                (0..50)
                    .map(|i| event("s", json!({"n": batch * 50 + i})))
                    .collect(),
            )
            .await
            .len();
    }
    wait_for(
        "deliveries under way",
        Duration::from_secs(20),
        async || receiver.count() >= 10,
    )
    .await;
    // The second node's fair share is one of the two subscriptions: the first node drains that
    // lane, then hands it over.
    let second = node(&db, dir.path(), "n2", &[]);
    wait_for(
        "the second node to take a subscription",
        Duration::from_secs(20),
        async || second.log_text().contains("delivering for it"),
    )
    .await;
    for name in ["s1", "s2"] {
        wait_for(
            &format!("{name} to deliver everything"),
            Duration::from_secs(60),
            async || api.stats("b", name).await["delivered"] == published as u64,
        )
        .await;
        let ids: Vec<String> = receiver
            .hits()
            .iter()
            .filter(|h| h.path == format!("/{name}"))
            .map(|h| h.event_id())
            .collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), unique.len(), "{name}: a delivery was repeated");
        assert_eq!(unique.len(), published);
    }
    assert!(first.log_text().contains("handed over to another node"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_with_sigterm_hands_its_subscriptions_over_at_once() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = temp_dir();
    // Leases renewed only every 40 s: anything faster than that comes from the hand-over.
    let long_lease = ["--lease-ms", "120000"];
    let first = node(&db, dir.path(), "n1", &long_lease);
    let receiver = Receiver::ok().await;
    {
        let api = Api::new(&first);
        api.bus("b").await;
        for name in ["s1", "s2"] {
            api.subscribe("b", name, json!({"destination": {"url": receiver.url}}))
                .await;
        }
        wait_for(
            "the first node to deliver for both",
            Duration::from_secs(10),
            async || first.log_text().matches("delivering for it").count() == 2,
        )
        .await;
    }
    let second = node(&db, dir.path(), "n2", &long_lease);
    let api = Api::new(&second);
    wait_for(
        "the second node to know the subscriptions",
        Duration::from_secs(10),
        async || api.get("/v1/buses/b/subscriptions/s2").await.0 == 200,
    )
    .await;
    let status = first.terminate().await;
    assert!(status.success(), "{status:?}");
    wait_for(
        "the second node to take both over",
        Duration::from_secs(3),
        async || second.log_text().matches("delivering for it").count() == 2,
    )
    .await;
    api.publish("b", vec![event("s", json!({"after": "handover"}))])
        .await;
    wait_for(
        "delivery by the second node",
        Duration::from_secs(10),
        async || receiver.count() == 2,
    )
    .await;
}
