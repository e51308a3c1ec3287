//! CloudEvents in (structured, batch and binary mode on `POST /v1/buses/{bus}/events`) and out
//! (the `cloudevents-*` formats): what the CloudEvents SDK sends comes back to it as the same
//! attributes and data, and the envelope in between is the documented mapping.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use switchyard_test_support::{python_or_skip, run_python, temp_dir};

use crate::common::{Api, Hit, Receiver, Server, call, client, wait_for};

fn script() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cloudevents/roundtrip.py")
}

/// The request as the SDK's `from_http` takes it.
fn as_request(hit: &Hit) -> Value {
    let headers: serde_json::Map<String, Value> = hit
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                json!(value.to_str().unwrap_or_default()),
            )
        })
        .collect();
    json!({"headers": headers, "body_base64": STANDARD.encode(&hit.raw_body)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudevents_sdk_gets_back_the_attributes_and_data_it_sent_in_every_mode() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let structured = Receiver::ok().await;
    let binary = Receiver::ok().await;
    let envelopes = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("ce").await;
    for (name, receiver, format) in [
        ("structured", &structured, "cloudevents-structured"),
        ("binary", &binary, "cloudevents-binary"),
        ("envelopes", &envelopes, "envelope"),
    ] {
        api.subscribe(
            "ce",
            name,
            json!({"destination": {"url": receiver.url, "format": format}}),
        )
        .await;
    }
    let run = |env: Vec<(&'static str, String)>| {
        let python = python.clone();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
            run_python(&python, &script(), &env, Duration::from_secs(60)).lines
        })
    };
    let lines = run(vec![
        ("PHASE", "send".into()),
        ("ENDPOINT", server.base.clone()),
    ])
    .await
    .unwrap();
    for line in &lines[..lines.len() - 1] {
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["answer"]["failed_entry_count"], 0, "{line}");
    }
    let sent = lines.last().unwrap()["events"].clone();
    let count = sent.as_object().unwrap().len();
    assert_eq!(count, 6);
    wait_for("every delivery", Duration::from_secs(30), async || {
        structured.count() == count && binary.count() == count && envelopes.count() == count
    })
    .await;

    for receiver in [&structured, &binary] {
        let requests: Vec<Value> = receiver.hits().iter().map(as_request).collect();
        let file = dir.path().join("requests.json");
        std::fs::write(&file, serde_json::to_vec(&requests).unwrap()).unwrap();
        let lines = run(vec![
            ("PHASE", "parse".into()),
            ("REQUESTS", file.display().to_string()),
        ])
        .await
        .unwrap();
        let received = lines[0]["events"].as_array().unwrap().clone();
        assert_eq!(received.len(), count);
        for event in received {
            let id = event["attributes"]["id"].as_str().unwrap().to_string();
            assert_eq!(event, sent[&id], "event {id} came back changed");
        }
    }

    // The envelope in between, as docs/api.md#cloudevents maps it.
    let by_id = |id: &str| {
        envelopes
            .hits()
            .into_iter()
            .find(|h| h.event_id() == id)
            .unwrap()
            .body
    };
    let json_event = by_id("s-1");
    assert_eq!(json_event["detail-type"], "com.example.order.placed");
    assert_eq!(json_event["source"], "/shop/orders");
    assert_eq!(json_event["resources"], json!(["orders/s-1"]));
    assert_eq!(json_event["time"], "2026-03-01T10:00:00.123456Z");
    assert_eq!(json_event["attributes"], json!({"tenant": "acme"}));
    assert!(
        String::from_utf8_lossy(
            &envelopes
                .hits()
                .into_iter()
                .find(|h| h.event_id() == "s-1")
                .unwrap()
                .raw_body
        )
        .contains("12345678901234567890"),
        "the data's digits are kept"
    );
    assert_eq!(by_id("s-2")["data"], "plain text, not JSON");
    assert_eq!(
        by_id("b-2")["data_base64"],
        STANDARD.encode([0, 1, 0xfe, 0xff])
    );
    assert_eq!(by_id("x-1")["attributes"]["region"], "eu west 1 \u{20ac}");
}

#[tokio::test]
async fn a_bad_cloudevent_is_refused_with_what_to_fix_and_nothing_is_delivered() {
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("ce").await;
    api.subscribe("ce", "all", json!({"destination": {"url": receiver.url}}))
        .await;
    let url = server.url("/v1/buses/ce/events");
    let structured = |body: &str| {
        client()
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .body(body.to_string())
    };
    let cases = [
        (
            structured(r#"{"id":"1","source":"s","type":"t"}"#),
            "no specversion",
        ),
        (
            structured(r#"{"specversion":"1.0","id":"1","source":"s"}"#),
            "no type",
        ),
        (
            structured(r#"{"specversion":"1.0","id":"1","source":"s","type":"t","Ext":"x"}"#),
            "lowercase",
        ),
        (structured("[1]"), "JSON object"),
        (
            client()
                .post(&url)
                .header("content-type", "application/cloudevents-batch+json")
                .body("[]"),
            "send 1 to",
        ),
        (
            client()
                .post(&url)
                .header("ce-specversion", "1.0")
                .header("ce-id", "1")
                .header("ce-source", "s")
                .header("ce-type", "t")
                .header("content-type", "application/json")
                .body("{broken"),
            "not JSON",
        ),
        (
            client()
                .post(&url)
                .header("ce-specversion", "1.0")
                .header("ce-id", "1")
                .header("ce-type", "t")
                .body("{}"),
            "no source",
        ),
    ];
    for (request, expected) in cases {
        let (status, answer) = call(request).await;
        assert_eq!(status, 400, "{expected}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // A batch with one bad entry fails that entry only, as a REST batch does.
    let (status, answer) = call(
        client()
            .post(&url)
            .header("content-type", "application/cloudevents-batch+json")
            .body(r#"[{"specversion":"1.0","id":"ok","source":"s","type":"t"},{"specversion":"1.0","id":"bad"}]"#),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["failed_entry_count"], 1, "{answer}");
    assert_eq!(answer["entries"][0]["id"], "ok");
    wait_for("the good entry", Duration::from_secs(20), async || {
        receiver.count() == 1
    })
    .await;
    let stats = api.stats("ce", "all").await;
    assert_eq!(stats["accepted"], 1, "{stats}");
}
