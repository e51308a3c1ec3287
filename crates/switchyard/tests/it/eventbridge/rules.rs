//! Buses, rules, targets and PutEvents through boto3, delivered for real: what a team that
//! built "Pub/Sub push on AWS" from EventBridge runs, with only the endpoint URL changed.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_test_support::{python_or_skip, temp_dir};

use super::run_steps;
use crate::common::{Api, Receiver, Reply, Server, scrape, wait_for};

fn error_of(steps: &HashMap<String, Value>, step: &str) -> (String, u64) {
    let line = &steps[step];
    (
        line["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{step} did not fail: {line}"))
            .to_string(),
        line["status"].as_u64().unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_made_with_boto3_delivers_to_its_api_destination_with_the_connection_and_parameters()
{
    let Some(python) = python_or_skip() else {
        return;
    };
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (status, _) = api
        .put(
            "/v1/connections/crm-key",
            json!({"auth": {"type": "api_key", "header": "x-api-key", "value": "k-123"}}),
        )
        .await;
    assert_eq!(status, 201);
    let steps = run_steps(
        &python,
        "rules.py",
        vec![
            ("ENDPOINT", server.base.clone()),
            ("RECEIVER", receiver.url.clone()),
            (
                "CONNECTION_ARN",
                "arn:aws:events:us-east-1:000000000000:connection/crm-key/00000000-0000-0000-0000-000000000000".into(),
            ),
        ],
    )
    .await;

    // Buses, paging and the default bus.
    assert_eq!(
        steps["create_bus"]["result"]["EventBusArn"],
        "arn:aws:events:us-east-1:000000000000:event-bus/orders"
    );
    assert_eq!(
        error_of(&steps, "create_bus_again"),
        ("ResourceAlreadyExistsException".into(), 400)
    );
    let page = &steps["list_buses_page"]["result"];
    assert_eq!(page["EventBuses"].as_array().unwrap().len(), 1);
    assert!(page["NextToken"].is_string(), "{page}");
    assert_eq!(
        steps["describe_bus"]["result"]["Description"],
        "shop orders"
    );
    let all: Vec<&str> = steps["list_buses"]["result"]["EventBuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["Name"].as_str().unwrap())
        .collect();
    assert_eq!(all, ["default", "orders", "orders-eu"]);
    assert_eq!(
        error_of(&steps, "delete_default_bus").0,
        "ValidationException"
    );

    // The rule, its targets and what reads them back.
    let rule = &steps["describe_rule"]["result"];
    assert_eq!(
        rule["Arn"],
        "arn:aws:events:us-east-1:000000000000:rule/orders/placed"
    );
    assert_eq!(rule["State"], "ENABLED");
    assert_eq!(rule["EventBusName"], "orders");
    assert_eq!(
        steps["put_targets"]["result"]["FailedEntryCount"], 0,
        "{}",
        steps["put_targets"]
    );
    let failed = &steps["put_targets_bad"]["result"];
    assert_eq!(failed["FailedEntryCount"], 1);
    assert_eq!(failed["FailedEntries"][0]["TargetId"], "both");
    assert_eq!(
        failed["FailedEntries"][0]["ErrorCode"],
        "ValidationException"
    );
    let targets = steps["list_targets"]["result"]["Targets"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<&str> = targets.iter().map(|t| t["Id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["audit", "crm", "detail"]);
    assert_eq!(targets[1]["RetryPolicy"]["MaximumRetryAttempts"], 2);
    assert_eq!(
        steps["rule_names_by_target"]["result"]["RuleNames"],
        json!(["placed"])
    );
    assert_eq!(steps["list_rules"]["result"]["Rules"][0]["Name"], "placed");
    assert_eq!(
        steps["tags"]["result"]["Tags"],
        json!([{"Key": "team", "Value": "shop"}])
    );
    assert_eq!(steps["test_pattern"]["result"]["Result"], true);

    // PutEvents: per-entry results in request order.
    let put = &steps["put_events"]["result"];
    assert_eq!(put["FailedEntryCount"], 2, "{put}");
    assert!(put["Entries"][0]["EventId"].is_string());
    assert_eq!(put["Entries"][1]["ErrorCode"], "MalformedDetail");
    assert_eq!(put["Entries"][2]["ErrorCode"], "ResourceNotFoundException");

    // Every error type of these calls, with its status.
    assert_eq!(
        error_of(&steps, "describe_missing_rule"),
        ("ResourceNotFoundException".into(), 400)
    );
    assert_eq!(
        error_of(&steps, "bad_pattern"),
        ("InvalidEventPatternException".into(), 400)
    );
    assert_eq!(
        steps["scheduled"]["result"]["RuleArn"],
        "arn:aws:events:us-east-1:000000000000:rule/nightly",
        "{}",
        steps["scheduled"]
    );
    assert!(
        steps["bad_schedule"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid")
    );
    assert_eq!(
        error_of(&steps, "no_pattern"),
        ("ValidationException".into(), 400)
    );
    assert_eq!(
        error_of(&steps, "delete_rule_with_targets"),
        ("ValidationException".into(), 400)
    );
    assert_eq!(
        error_of(&steps, "put_permission"),
        ("OperationDisabledException".into(), 400)
    );
    assert_eq!(
        error_of(&steps, "too_many_tags"),
        ("LimitExceededException".into(), 400)
    );

    // The event reached the API destination with the parameters, the transform and the auth.
    wait_for("the deliveries", Duration::from_secs(20), async || {
        receiver.count() >= 2
    })
    .await;
    let hits = receiver.hits();
    let detail = hits
        .iter()
        .find(|h| h.path == "/orders/detail-only")
        .expect("the InputPath target");
    assert_eq!(
        detail.body["id"], "o-1",
        "InputPath sends the selected value"
    );
    assert!(
        String::from_utf8_lossy(&detail.raw_body).contains("123456789012345678901234"),
        "PutEvents kept every digit of the detail: {}",
        String::from_utf8_lossy(&detail.raw_body)
    );
    let hit = hits
        .iter()
        .find(|h| h.path == "/orders/o-1")
        .expect("the transformed target");
    assert_eq!(hit.path, "/orders/o-1");
    assert_eq!(hit.query, "src=shop");
    assert_eq!(hit.header("x-tenant"), "acme");
    assert_eq!(hit.header("x-api-key"), "k-123");
    assert_eq!(
        hit.body,
        json!({"order": "o-1", "total": 12.5, "rule": "placed"})
    );

    // The target is a subscription of the REST API, linked to its rule.
    let (status, crm) = api.get("/v1/buses/orders/subscriptions/placed.crm").await;
    assert_eq!(status, 200);
    assert_eq!(crm["eventbridge"]["rule"], "placed");
    assert_eq!(crm["eventbridge"]["target_id"], "crm");
    assert_eq!(crm["retry"]["max_attempts"], 3);
    assert_eq!(crm["rate_limit_per_s"], 50);

    // The Lambda target is kept but cannot be invoked: a dead letter `unsupported_target`.
    wait_for(
        "the unsupported target's dead letter",
        Duration::from_secs(20),
        async || api.stats("orders", "placed.audit").await["dead"] == 1,
    )
    .await;
    let (_, letters) = api
        .get("/v1/buses/orders/subscriptions/placed.audit/dead-letters")
        .await;
    assert_eq!(letters["items"][0]["reason"], "unsupported_target");
    let metrics = scrape(&api).await;
    assert!(
        metrics.contains(r#"reason="unsupported_target""#),
        "no unsupported_target series in /metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_changed_through_the_rest_api_is_seen_changed_by_describe_rule_and_a_4xx_is_a_failure()
 {
    let Some(python) = python_or_skip() else {
        return;
    };
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (status, _) = api
        .put(
            "/v1/connections/open",
            json!({"headers": {"x-from": "switchyard"}}),
        )
        .await;
    assert_eq!(status, 201);
    let env = vec![
        ("ENDPOINT", server.base.clone()),
        ("RECEIVER", receiver.url.clone()),
        (
            "CONNECTION_ARN",
            "arn:aws:events:us-east-1:000000000000:connection/open/00000000-0000-0000-0000-000000000000".into(),
        ),
    ];
    run_steps(&python, "rules.py", env.clone()).await;

    // A REST edit of the target's subscription: a new pattern, and the link is kept.
    let (_, mut crm) = api.get("/v1/buses/orders/subscriptions/placed.crm").await;
    crm["pattern"] = json!({"source": ["shop"], "detail-type": ["Order Shipped"]});
    for field in ["id", "bus", "name", "created_ms", "updated_ms"] {
        crm.as_object_mut().unwrap().remove(field);
    }
    crm["eventbridge"]
        .as_object_mut()
        .unwrap()
        .remove("unsupported");
    let body = json!({"pattern": crm["pattern"], "destination": crm["destination"]});
    let (status, changed) = api
        .put("/v1/buses/orders/subscriptions/placed.crm", body)
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        changed["eventbridge"]["rule"], "placed",
        "a REST edit cut the link"
    );
    let steps = run_steps(&python, "describe.py", env).await;
    let pattern: Value = serde_json::from_str(
        steps["describe_rule"]["result"]["EventPattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pattern["detail-type"], json!(["Order Shipped"]));

    // The receiver answered 400 to the first run's event: a dead letter at once, counted.
    wait_for("the 4xx dead letter", Duration::from_secs(20), async || {
        api.stats("orders", "placed.crm").await["dead"] == 1
    })
    .await;
    let (_, letters) = api
        .get("/v1/buses/orders/subscriptions/placed.crm/dead-letters")
        .await;
    assert_eq!(letters["items"][0]["reason"], "non_retryable_status");
    assert_eq!(letters["items"][0]["last_status"], 400);
    let metrics = scrape(&api).await;
    assert!(
        metrics.contains(r#"switchyard_eventbridge_target_info{bus="orders",subscription="placed.crm",rule="placed",target_id="crm"} 1"#),
        "no target info series for the rule's target"
    );
}
