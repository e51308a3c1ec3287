//! Ordering keys: an ordered subscription delivers each key's events strictly in publish order,
//! through 5xx answers and timeouts, while different keys proceed in parallel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use serde_json::json;

const KEYS: [&str; 4] = ["k0", "k1", "k2", "k3"];
const PER_KEY: u64 = 10;

#[tokio::test]
async fn each_key_is_delivered_in_publish_order_through_failures() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    // Every third request fails with 503, every seventh hangs past the timeout; the rest succeed.
    let delivered: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let record = Arc::clone(&delivered);
    let receiver = Receiver::start(move |hit, n| {
        let key = hit.body["detail"]["key"].as_str().unwrap_or("").to_string();
        let seq = hit.body["detail"]["seq"].as_u64().unwrap_or(0);
        if n % 3 == 2 {
            Reply::status(503)
        } else if n % 7 == 6 {
            Reply {
                delay: Duration::from_millis(600),
                ..Reply::status(200)
            }
        } else {
            record.lock().unwrap().push((key, seq));
            Reply::status(200)
        }
    })
    .await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "ordered",
        json!({
            "destination": {"url": receiver.url, "timeout_ms": 200},
            "ordered": true,
            "max_concurrency": 8,
            "retry": {"min_backoff_ms": 10, "max_backoff_ms": 40},
            "circuit_breaker": {"failure_threshold": 0}
        }),
    )
    .await;
    // Interleaved across keys and requests, as concurrent publishers would.
    for seq in 0..PER_KEY {
        let batch = KEYS
            .iter()
            .map(|key| json!({"source": "s", "detail-type": "t", "ordering-key": key, "detail": {"key": key, "seq": seq}}))
            .collect();
        api.publish("b", batch).await;
    }
    wait_for(
        "every event delivered",
        Duration::from_secs(60),
        async || api.stats("b", "ordered").await["delivered"] == KEYS.len() as u64 * PER_KEY,
    )
    .await;

    let mut attempts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for hit in receiver.hits() {
        let key = hit.body["detail"]["key"].as_str().unwrap().to_string();
        assert_eq!(hit.header("switchyard-ordering-key"), key);
        attempts
            .entry(key)
            .or_default()
            .push(hit.body["detail"]["seq"].as_u64().unwrap());
    }
    for (key, seqs) in &attempts {
        assert!(
            seqs.windows(2).all(|w| w[0] <= w[1]),
            "key {key} was attempted out of order: {seqs:?}"
        );
    }
    let mut successes: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, seq) in delivered.lock().unwrap().iter() {
        successes.entry(key.clone()).or_default().push(*seq);
    }
    for key in KEYS {
        assert_eq!(
            successes[key],
            (0..PER_KEY).collect::<Vec<_>>(),
            "key {key}"
        );
    }
    let stats = api.stats("b", "ordered").await;
    assert!(
        stats["failed_attempts"].as_u64().unwrap() > 0,
        "the failures were injected: {stats}"
    );
}

#[tokio::test]
async fn a_stuck_key_does_not_block_the_others() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let receiver = Receiver::start(|hit, _| {
        Reply::status(if hit.body["detail"]["key"] == "stuck" {
            503
        } else {
            200
        })
    })
    .await;
    api.bus("b").await;
    api.subscribe(
        "b",
        "ordered",
        json!({
            "destination": {"url": receiver.url},
            "ordered": true,
            "retry": {"min_backoff_ms": 20, "max_backoff_ms": 50},
            "circuit_breaker": {"failure_threshold": 0}
        }),
    )
    .await;
    let events = ["stuck", "free", "stuck", "free", "free"]
        .iter()
        .enumerate()
        .map(|(i, key)| json!({"source": "s", "detail-type": "t", "ordering-key": key, "detail": {"key": key, "seq": i}}))
        .collect();
    api.publish("b", events).await;
    wait_for(
        "the free key's events",
        Duration::from_secs(20),
        async || api.stats("b", "ordered").await["delivered"] == 3,
    )
    .await;
    let stuck_seqs: Vec<u64> = receiver
        .hits()
        .iter()
        .filter(|h| h.body["detail"]["key"] == "stuck")
        .map(|h| h.body["detail"]["seq"].as_u64().unwrap())
        .collect();
    assert!(!stuck_seqs.is_empty());
    assert!(
        stuck_seqs.iter().all(|s| *s == 0),
        "the second stuck event went before the first: {stuck_seqs:?}"
    );
}
