//! The aws CLI, as a shell script would call it: `aws events … --endpoint-url`, JSON output.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard_test_support::{aws_cli_or_skip, run_aws, temp_dir};

use super::TOOL_TIMEOUT;
use crate::common::{Api, Receiver, Server, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_events_commands_make_a_rule_that_delivers_and_list_it() {
    let Some(aws) = aws_cli_or_skip() else {
        return;
    };
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    let (status, _) = api
        .put("/v1/connections/hook", json!({"headers": {"x-hook": "1"}}))
        .await;
    assert_eq!(status, 201);
    let endpoint = server.base.clone();
    let invocation = format!("{}/hooks/*", receiver.url);
    let outputs = tokio::task::spawn_blocking(move || {
        let cli = |args: &[&str]| -> Result<Value, String> {
            let mut all: Vec<&str> = vec!["events"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["--endpoint-url", &endpoint]);
            run_aws(&aws, &all, &[], TOOL_TIMEOUT)
        };
        // awscli v1 fetches a parameter that is an http:// URL (its `cli_follow_urlparam`), so
        // scripts pass endpoints in --cli-input-json.
        let input = json!({
            "Name": "hooks",
            "ConnectionArn": "arn:aws:events:us-east-1:000000000000:connection/hook/x",
            "InvocationEndpoint": invocation,
            "HttpMethod": "POST",
        })
        .to_string();
        let destination = cli(&["create-api-destination", "--cli-input-json", &input]).unwrap();
        let rule = cli(&[
            "put-rule",
            "--name",
            "deploys",
            "--event-pattern",
            r#"{"source": ["ci"]}"#,
        ])
        .unwrap();
        let targets = json!([{
            "Id": "hook",
            "Arn": destination["ApiDestinationArn"],
            "HttpParameters": {"PathParameterValues": ["$.detail.env"]},
        }])
        .to_string();
        let put_targets =
            cli(&["put-targets", "--rule", "deploys", "--targets", &targets]).unwrap();
        let entries =
            json!([{"Source": "ci", "DetailType": "Deployed", "Detail": "{\"env\": \"staging\"}"}])
                .to_string();
        let put_events = cli(&["put-events", "--entries", &entries]).unwrap();
        let rules = cli(&["list-rules"]).unwrap();
        let missing = cli(&["describe-rule", "--name", "nope"]).unwrap_err();
        (rule, put_targets, put_events, rules, missing)
    })
    .await
    .unwrap();
    let (rule, put_targets, put_events, rules, missing) = outputs;
    assert_eq!(
        rule["RuleArn"],
        "arn:aws:events:us-east-1:000000000000:rule/deploys"
    );
    assert_eq!(put_targets["FailedEntryCount"], 0, "{put_targets}");
    assert_eq!(put_events["FailedEntryCount"], 0, "{put_events}");
    assert_eq!(rules["Rules"][0]["Name"], "deploys");
    assert!(
        missing.contains("ResourceNotFoundException"),
        "the CLI shows the error type: {missing}"
    );
    wait_for("the delivery", Duration::from_secs(20), async || {
        receiver.count() == 1
    })
    .await;
    let hit = &receiver.hits()[0];
    assert_eq!(hit.path, "/hooks/staging");
    assert_eq!(hit.header("x-hook"), "1");
    assert_eq!(hit.body["detail-type"], "Deployed");
    assert_eq!(hit.body["account"], "000000000000");
}
