//! Pull subscriptions over REST: leases for the ack deadline, redelivery of what is not
//! acknowledged, the retry rules and dead letters, ordering keys, and a dead node's leases
//! taken up by another.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_test_support::{TestDatabase, temp_dir};

use crate::common::{Api, Server, assert_accounting, event, sample, scrape, wait_for};

fn path(name: &str, action: &str) -> String {
    format!("/v1/buses/jobs/subscriptions/{name}/{action}")
}

async fn pull(api: &Api<'_>, name: &str, body: Value) -> Vec<Value> {
    let (status, answer) = api.post(&path(name, "pull"), body).await;
    assert_eq!(status, 200, "{answer}");
    answer["messages"].as_array().unwrap().clone()
}

/// Acknowledges `messages`; answers how many were still pending.
async fn ack(api: &Api<'_>, name: &str, messages: &[Value]) -> u64 {
    let ids: Vec<&Value> = messages.iter().map(|m| &m["ack_id"]).collect();
    let (status, answer) = api.post(&path(name, "ack"), json!({"ack_ids": ids})).await;
    assert_eq!(status, 200, "{answer}");
    answer["acknowledged"].as_u64().unwrap()
}

fn sources(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["event"]["source"].as_str().unwrap().to_string())
        .collect()
}

async fn jobs(api: &Api<'_>, name: &str, spec: Value) {
    api.bus("jobs").await;
    api.subscribe("jobs", name, spec).await;
}

#[tokio::test]
async fn pulled_messages_are_acked_once_and_one_not_acked_comes_back_after_its_deadline() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    // Long enough that the leases last through the checks on a busy machine.
    jobs(
        &api,
        "work",
        json!({"delivery": "pull", "ack_deadline_s": 3}),
    )
    .await;
    let (_, shown) = api.get("/v1/buses/jobs/subscriptions/work").await;
    assert_eq!(
        (&shown["delivery"], &shown["ack_deadline_s"]),
        (&json!("pull"), &json!(3)),
        "{shown}"
    );
    assert!(shown.get("destination").is_none(), "{shown}");
    let events: Vec<Value> = (0..5)
        .map(|i| {
            event(
                &format!("s{i}"),
                json!({"n": 123456789012345678901234u128.to_string()}),
            )
        })
        .collect();
    api.publish("jobs", events).await;
    let first = pull(&api, "work", json!({"max_messages": 3})).await;
    assert_eq!(sources(&first), ["s0", "s1", "s2"]);
    assert!(first.iter().all(|m| m["delivery_attempt"] == 1));
    let rest = pull(&api, "work", json!({})).await;
    assert_eq!(sources(&rest), ["s3", "s4"]);
    // Everything is leased: an immediate pull finds nothing.
    assert!(pull(&api, "work", json!({"wait_s": 0})).await.is_empty());
    assert_eq!(ack(&api, "work", &first).await, 3);
    assert_eq!(ack(&api, "work", &rest[..1]).await, 1);
    // s4 was not acknowledged: after its deadline it is delivered again.
    let again = pull(&api, "work", json!({"wait_s": 20})).await;
    assert_eq!(sources(&again), ["s4"]);
    assert_eq!(again[0]["delivery_attempt"], 2);
    assert_ne!(again[0]["ack_id"], rest[1]["ack_id"]);
    assert_eq!(ack(&api, "work", &again).await, 1);
    // Acking the old lease of a done delivery, or acking twice, changes and counts nothing.
    assert_eq!(ack(&api, "work", &rest[1..]).await, 0);
    assert_eq!(ack(&api, "work", &first).await, 0);
    let stats = api.stats("jobs", "work").await;
    assert_eq!(
        (&stats["delivered"], &stats["pending"]),
        (&json!(5), &json!(0)),
        "{stats}"
    );
    assert_accounting(&stats);
    let metrics = scrape(&api).await;
    let labels = r#"{bus="jobs",subscription="work"}"#;
    assert_eq!(
        sample(&metrics, &format!("switchyard_pulled_total{labels}")),
        6.0
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("switchyard_pull_redeliveries_total{labels}")
        ),
        1.0
    );
    let acked =
        r#"switchyard_delivery_attempts_total{bus="jobs",subscription="work",class="acked"}"#;
    assert_eq!(sample(&metrics, acked), 5.0);
    assert_eq!(
        sample(&metrics, &format!("switchyard_deliveries_total{labels}")),
        5.0
    );
}

#[tokio::test]
async fn a_waiting_pull_returns_what_is_published_meanwhile() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    jobs(&api, "work", json!({"delivery": "pull"})).await;
    // The pull waits (or is about to) while the event is published: either way it must answer
    // with it, long before its 30 s.
    let publisher = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        api.publish("jobs", vec![event("late", json!({}))]).await;
    };
    let (got, ()) = tokio::join!(pull(&api, "work", json!({"wait_s": 30})), publisher);
    assert_eq!(sources(&got), ["late"]);
}

#[tokio::test]
async fn a_delivery_pulled_max_attempts_times_without_an_ack_is_a_dead_letter() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    jobs(
        &api,
        "work",
        json!({"delivery": "pull", "ack_deadline_s": 1, "retry": {"max_attempts": 2}}),
    )
    .await;
    api.publish("jobs", vec![event("doomed", json!({}))]).await;
    let first = pull(&api, "work", json!({})).await;
    assert_eq!(first.len(), 1);
    // Given back at once (a nack), it is leased again: the second and last attempt.
    let (status, answer) = api
        .post(
            &path("work", "modify-ack-deadline"),
            json!({"ack_ids": [first[0]["ack_id"]], "ack_deadline_s": 0}),
        )
        .await;
    assert_eq!((status, &answer["modified"]), (200, &json!(1)), "{answer}");
    let second = pull(&api, "work", json!({"wait_s": 5})).await;
    assert_eq!(second[0]["delivery_attempt"], 2);
    wait_for("the dead letter", Duration::from_secs(20), async || {
        pull(&api, "work", json!({"wait_s": 1})).await.is_empty()
            && api.stats("jobs", "work").await["dead"] == 1
    })
    .await;
    let (_, letters) = api
        .get("/v1/buses/jobs/subscriptions/work/dead-letters")
        .await;
    let letter = &letters["items"][0];
    assert_eq!(letter["reason"], "max_attempts", "{letters}");
    assert_eq!(letter["attempts"], 2, "{letters}");
    assert_accounting(&api.stats("jobs", "work").await);
}

#[tokio::test]
async fn an_ordered_pull_hands_out_a_keys_next_event_only_after_the_previous_is_acked() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    jobs(&api, "work", json!({"delivery": "pull", "ordered": true})).await;
    let keyed = |source: &str, key: &str| json!({"source": source, "detail-type": "t", "detail": {}, "ordering-key": key});
    api.publish(
        "jobs",
        vec![keyed("a1", "a"), keyed("a2", "a"), keyed("b1", "b")],
    )
    .await;
    let heads = pull(&api, "work", json!({})).await;
    assert_eq!(sources(&heads), ["a1", "b1"]);
    // a1 given back (a nack): it comes again before a2, which still waits.
    let (status, _) = api
        .post(
            &path("work", "modify-ack-deadline"),
            json!({"ack_ids": [heads[0]["ack_id"]], "ack_deadline_s": 0}),
        )
        .await;
    assert_eq!(status, 200);
    let again = pull(&api, "work", json!({"wait_s": 5})).await;
    assert_eq!(sources(&again), ["a1"]);
    assert_eq!(ack(&api, "work", &again).await, 1);
    let next = pull(&api, "work", json!({"wait_s": 5})).await;
    assert_eq!(sources(&next), ["a2"]);
}

#[tokio::test]
async fn bad_pull_requests_are_refused_with_what_to_fix() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    jobs(&api, "work", json!({"delivery": "pull"})).await;
    api.subscribe(
        "jobs",
        "pushed",
        json!({"destination": {"url": "http://127.0.0.1:9/"}}),
    )
    .await;
    let bad_specs = [
        (
            json!({"delivery": "pull", "destination": {"url": "http://127.0.0.1:9/"}}),
            "has no \"destination\"",
        ),
        (json!({}), "\"destination\" is required"),
        (
            json!({"destination": {"url": "http://127.0.0.1:9/"}, "ack_deadline_s": 30}),
            "pull subscriptions only",
        ),
        (
            json!({"delivery": "pull", "ack_deadline_s": 601}),
            "1 to 600",
        ),
        (json!({"delivery": "later"}), "delivery"),
        (
            json!({"delivery": "pull", "dead_letter_bus": "jobs"}),
            "cannot go back",
        ),
        (
            json!({"delivery": "pull", "dead_letter_bus": "nope"}),
            "does not exist",
        ),
    ];
    for (spec, says) in bad_specs {
        let (status, answer) = api
            .put("/v1/buses/jobs/subscriptions/bad", spec.clone())
            .await;
        assert_eq!(status, 400, "{spec}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{spec}: {message}");
    }
    assert_eq!(api.get("/v1/buses/jobs/subscriptions/bad").await.0, 404);
    let bad_calls = [
        (path("pushed", "pull"), json!({}), "is a push subscription"),
        (
            path("work", "pull"),
            json!({"max_messages": 0}),
            "1 to 1000",
        ),
        (path("work", "pull"), json!({"wait_s": 31}), "0 to 30"),
        (path("work", "pull"), json!({"max": 3}), "unknown field"),
        (
            path("work", "ack"),
            json!({"ack_ids": ["nope"]}),
            "is not an ack id",
        ),
        (path("work", "ack"), json!({"ack_ids": []}), "send 1 to"),
        (
            path("work", "modify-ack-deadline"),
            json!({"ack_ids": ["1-1"], "ack_deadline_s": 601}),
            "0 to 600",
        ),
    ];
    for (url, body, says) in bad_calls {
        let (status, answer) = api.post(&url, body.clone()).await;
        assert_eq!(status, 400, "{url} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{url} {body}: {message}");
    }
    let (status, _) = api.post(&path("missing", "pull"), json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_pulled_from_a_killed_node_is_delivered_again_by_another() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = temp_dir();
    let first = crate::cluster::node(&db, dir.path(), "n1", &[]);
    let second = crate::cluster::node(&db, dir.path(), "n2", &[]);
    let (api1, api2) = (Api::new(&first), Api::new(&second));
    jobs(
        &api1,
        "work",
        json!({"delivery": "pull", "ack_deadline_s": 3}),
    )
    .await;
    wait_for(
        "the subscription on n2",
        Duration::from_secs(20),
        async || api2.get("/v1/buses/jobs/subscriptions/work").await.0 == 200,
    )
    .await;
    api2.publish("jobs", vec![event("job", json!({}))]).await;
    let taken = pull(&api1, "work", json!({"wait_s": 10})).await;
    assert_eq!(sources(&taken), ["job"]);
    // Nobody else gets it while n1's lease lasts; then n1 dies holding it.
    assert!(pull(&api2, "work", json!({"wait_s": 0})).await.is_empty());
    first.kill();
    let again = pull(&api2, "work", json!({"wait_s": 20})).await;
    assert_eq!(sources(&again), ["job"]);
    assert_eq!(again[0]["delivery_attempt"], 2);
    assert_eq!(ack(&api2, "work", &again).await, 1);
    let stats = api2.stats("jobs", "work").await;
    assert_eq!(
        (&stats["delivered"], &stats["pending"]),
        (&json!(1), &json!(0)),
        "{stats}"
    );
}
