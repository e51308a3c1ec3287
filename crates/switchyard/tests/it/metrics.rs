//! `/metrics`: what an operator sees while an endpoint is down, after it recovers, and for 4xx.

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
