//! The door's protocol edges, with raw requests (no SDK): what a broken or hostile client gets,
//! and a bus target that forwards into another bus, loops included.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_test_support::temp_dir;

use crate::common::{Api, Receiver, Server, call, client, wait_for};

async fn eventbridge(
    server: &Server,
    target: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value, String) {
    let response = client()
        .post(format!("{}/", server.base))
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null);
    (status, body, kind)
}

#[tokio::test]
async fn malformed_unknown_and_oversized_calls_get_eventbridge_errors() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let cases: [(&str, Vec<u8>, u16, &str); 6] = [
        (
            "AWSEvents.ListRules",
            b"{not json".to_vec(),
            400,
            "SerializationException",
        ),
        (
            "AWSEvents.ListRules",
            b"[1, 2]".to_vec(),
            400,
            "SerializationException",
        ),
        (
            "AWSEvents.DescribeRule",
            br#"{"Name": 7}"#.to_vec(),
            400,
            "SerializationException",
        ),
        (
            "AWSEvents.Nope",
            b"{}".to_vec(),
            404,
            "UnknownOperationException",
        ),
        (
            "Other.ListRules",
            b"{}".to_vec(),
            404,
            "UnknownOperationException",
        ),
        // Over the 16 MiB request limit: refused from its Content-Length, unread.
        (
            "AWSEvents.PutEvents",
            vec![b' '; (16 << 20) + 1],
            413,
            "RequestEntityTooLargeException",
        ),
    ];
    for (target, body, status, kind) in cases {
        let (got, answer, header) = eventbridge(&server, target, body).await;
        assert_eq!(
            (got, answer["__type"].as_str()),
            (status, Some(kind)),
            "{target}: {answer}"
        );
        assert_eq!(header, kind);
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Without X-Amz-Target it is not an AWS call: the REST API's 404.
    let (status, answer) = call(client().post(format!("{}/", server.base)).body("{}")).await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["code"], "not_found");
    // Nothing above changed anything: the default bus is all there is.
    let (_, buses, _) = eventbridge(&server, "AWSEvents.ListEventBuses", "{}").await;
    assert_eq!(buses["EventBuses"].as_array().unwrap().len(), 1, "{buses}");
}

#[tokio::test]
async fn a_bus_target_publishes_into_that_bus_and_a_loop_between_two_buses_stops() {
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let bus_arn = |name: &str| format!("arn:aws:events:us-east-1:000000000000:event-bus/{name}");
    for name in ["a", "b"] {
        let (status, answer, _) = eventbridge(
            &server,
            "AWSEvents.CreateEventBus",
            json!({"Name": name}).to_string(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    api.subscribe("b", "watch", json!({"destination": {"url": receiver.url}}))
        .await;
    for (rule, from, to) in [("a-to-b", "a", "b"), ("b-to-a", "b", "a")] {
        let (status, answer, _) = eventbridge(
            &server,
            "AWSEvents.PutRule",
            json!({"Name": rule, "EventBusName": from, "EventPattern": r#"{"source": ["loop"]}"#})
                .to_string(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let (_, answer, _) = eventbridge(
            &server,
            "AWSEvents.PutTargets",
            json!({"Rule": rule, "EventBusName": from, "Targets": [{"Id": "next", "Arn": bus_arn(to)}]})
                .to_string(),
        )
        .await;
        assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
    }
    let (_, answer, _) = eventbridge(
        &server,
        "AWSEvents.PutEvents",
        json!({"Entries": [{"Source": "loop", "DetailType": "ping", "Detail": "{}", "EventBusName": "a"}]})
            .to_string(),
    )
    .await;
    assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
    // The event reached bus b, went on to a, and came back to b with the same id: the forward
    // keeps the event's id, so b acknowledges it without delivering it again and the loop ends
    // (the hop limit would end a loop that changes the event).
    wait_for("the loop to end", Duration::from_secs(30), async || {
        let a = api.stats("a", "a-to-b.next").await;
        let b = api.stats("b", "b-to-a.next").await;
        a["delivered"] == 2 && b["delivered"] == 1 && a["pending"] == 0 && b["pending"] == 0
    })
    .await;
    api.publish(
        "b",
        vec![json!({"source": "sentinel", "detail-type": "s", "detail": {}})],
    )
    .await;
    wait_for("the sentinel", Duration::from_secs(20), async || {
        receiver.count() == 2
    })
    .await;
    let hits = receiver.hits();
    assert_eq!(hits[0].body["detail-type"], "ping");
    assert_eq!(
        hits[1].body["source"], "sentinel",
        "bus b saw the event more than once"
    );
    let (_, lint) = api.get("/v1/lint").await;
    assert!(
        lint.to_string().contains("a-to-b.next"),
        "lint shows the loop: {lint}"
    );
}

#[tokio::test]
async fn a_connection_secret_that_reads_as_a_file_or_sealed_reference_is_refused_and_nothing_stored()
 {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let basic =
        |password: &str| json!({"BasicAuthParameters": {"Username": "u", "Password": password}});
    let attempts = [
        (
            "ApiKeyValue",
            json!({"ApiKeyAuthParameters": {"ApiKeyName": "x-key", "ApiKeyValue": "file:/etc/passwd"}}),
        ),
        ("Password", basic("sealed:v1:abc:AAAA")),
        (
            "ClientSecret",
            json!({"OAuthParameters": {
                "AuthorizationEndpoint": "https://auth.example.com/token", "HttpMethod": "POST",
                "ClientParameters": {"ClientID": "id", "ClientSecret": "file:/root/.ssh/id_rsa"}}}),
        ),
        (
            "Value",
            json!({"ApiKeyAuthParameters": {"ApiKeyName": "x-key", "ApiKeyValue": "k"},
                   "InvocationHttpParameters": {"HeaderParameters": [
                       {"Key": "x-extra", "Value": "file:/etc/shadow", "IsValueSecret": true}]}}),
        ),
    ];
    for (member, parameters) in attempts {
        let kind = if member == "Password" {
            "BASIC"
        } else if member == "ClientSecret" {
            "OAUTH_CLIENT_CREDENTIALS"
        } else {
            "API_KEY"
        };
        let (status, answer, _) = eventbridge(
            &server,
            "AWSEvents.CreateConnection",
            json!({"Name": "crm", "AuthorizationType": kind, "AuthParameters": parameters})
                .to_string(),
        )
        .await;
        assert_eq!(
            (status, answer["__type"].as_str()),
            (400, Some("ValidationException")),
            "{member}: {answer}"
        );
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(member) && message.contains("file:"),
            "{message}"
        );
    }
    // A good connection, then an update that would turn its key into a file read.
    let (status, answer, _) = eventbridge(
        &server,
        "AWSEvents.CreateConnection",
        json!({"Name": "crm", "AuthorizationType": "API_KEY", "AuthParameters": {
            "ApiKeyAuthParameters": {"ApiKeyName": "x-key", "ApiKeyValue": "k-0123"}}})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer, _) = eventbridge(
        &server,
        "AWSEvents.UpdateConnection",
        json!({"Name": "crm", "AuthParameters": {
            "ApiKeyAuthParameters": {"ApiKeyName": "x-key", "ApiKeyValue": "file:/etc/passwd"}}})
        .to_string(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (_, listed, _) = eventbridge(&server, "AWSEvents.ListConnections", "{}").await;
    assert_eq!(
        listed["Connections"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let api = Api::new(&server);
    let (_, stored) = api.get("/v1/connections/crm").await;
    assert_eq!(stored["auth"]["value"], "********", "{stored}");
    assert!(
        !stored.to_string().contains("file:"),
        "the update changed nothing: {stored}"
    );
}
