//! Scheduled rules through boto3: a `rate(1 minute)` rule (with the minute shortened by
//! `--schedule-minute-ms`) sends EventBridge's "Scheduled Event" to each of its targets, one
//! event per tick naming the rule in `resources`; a disabled rule sends nothing, and disabling a
//! rule stops its ticks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use switchyard_test_support::{python_or_skip, temp_dir};

use super::{open_connection, run_steps};
use crate::common::{Api, Receiver, Server, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rule_sends_one_scheduled_event_per_tick_to_each_target() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &["--schedule-minute-ms", "300"]);
    let api = Api::new(&server);
    open_connection(&api).await;
    let env = |phase: &str| {
        vec![
            ("ENDPOINT", server.base.clone()),
            ("RECEIVER", receiver.url.clone()),
            ("PHASE", phase.to_string()),
        ]
    };
    let setup = run_steps(&python, "schedule.py", env("setup")).await;
    let rule_arn = "arn:aws:events:us-east-1:000000000000:rule/every-minute";
    assert_eq!(
        setup["rule"]["result"]["RuleArn"], rule_arn,
        "{}",
        setup["rule"]
    );
    assert_eq!(
        setup["targets"]["result"]["FailedEntryCount"], 0,
        "{}",
        setup["targets"]
    );
    let described = &setup["describe"]["result"];
    assert_eq!(
        described["ScheduleExpression"], "rate(1 minute)",
        "{described}"
    );
    assert_eq!(described["State"], "ENABLED");
    assert_eq!(
        setup["bad_cron"]["error"], "ValidationException",
        "{}",
        setup["bad_cron"]
    );

    // Target `one` gets the event as is; `two` its Input, so its ticks are told apart by path.
    wait_for(
        "three ticks at each target",
        Duration::from_secs(30),
        async || {
            let hits = receiver.hits();
            ["/one", "/two"]
                .iter()
                .all(|path| hits.iter().filter(|h| h.path == *path).count() >= 3)
        },
    )
    .await;
    let hits = receiver.hits();
    assert!(
        hits.iter().all(|h| h.path != "/off"),
        "the disabled rule ticked"
    );
    let mut times = BTreeMap::new();
    for hit in hits.iter().filter(|h| h.path == "/one") {
        let event = &hit.body;
        assert_eq!(event["source"], "aws.events", "{event}");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["resources"], json!([rule_arn]));
        assert_eq!(event["detail"], json!({}));
        assert_eq!(event["account"], "000000000000");
        let time = event["time"].as_str().unwrap().to_string();
        let ms = switchyard_model::parse_rfc3339_ms("time", &time).unwrap();
        assert_eq!(ms % 300, 0, "a tick off the scaled minute: {time}");
        assert!(
            times.insert(time, event["id"].clone()).is_none(),
            "a tick fired twice"
        );
    }
    for hit in hits.iter().filter(|h| h.path == "/two") {
        assert_eq!(hit.body, json!({"job": "two"}));
    }

    // Disabling `every-minute` and enabling `off`: once `off` has ticked three times, the
    // disabled rule has had time for many ticks, and only one decided before the disable (a
    // delivery to each target) may have come.
    let disabled = run_steps(&python, "schedule.py", env("swap")).await;
    assert_eq!(
        disabled["describe"]["result"]["State"], "DISABLED",
        "{disabled:?}"
    );
    let others = || receiver.hits().iter().filter(|h| h.path != "/off").count();
    let settled = others();
    wait_for(
        "three ticks of the enabled rule",
        Duration::from_secs(30),
        async || receiver.hits().iter().filter(|h| h.path == "/off").count() >= 3,
    )
    .await;
    let late = others() - settled;
    assert!(late <= 2, "ticks kept coming after DisableRule: {late}");
}
