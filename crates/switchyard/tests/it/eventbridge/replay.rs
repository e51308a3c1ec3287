//! Archives and StartReplay through boto3: a replay to one rule reaches that rule's target
//! only, and its state goes to COMPLETED.

use std::time::Duration;

use serde_json::json;
use switchyard_test_support::{python_or_skip, temp_dir};

use super::{open_connection, run_steps};
use crate::common::{Api, Receiver, Server, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_to_one_rule_reaches_only_that_rules_target_and_completes() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let (a, b) = (Receiver::ok().await, Receiver::ok().await);
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    open_connection(&api).await;
    let env = |phase: &str| {
        vec![
            ("ENDPOINT", server.base.clone()),
            ("RECEIVER_A", a.url.clone()),
            ("RECEIVER_B", b.url.clone()),
            ("PHASE", phase.to_string()),
        ]
    };
    let setup = run_steps(&python, "replay.py", env("setup")).await;
    assert_eq!(
        setup["archive"]["result"]["State"], "ENABLED",
        "{}",
        setup["archive"]
    );
    assert_eq!(
        setup["archive_again"]["error"],
        "ResourceAlreadyExistsException"
    );
    wait_for("the live deliveries", Duration::from_secs(20), async || {
        a.count() == 1 && b.count() == 1
    })
    .await;
    wait_for("the archived event", Duration::from_secs(20), async || {
        api.get("/v1/buses/shop/archives/all-shop").await.1["event_count"] == 1
    })
    .await;

    let replay = run_steps(&python, "replay.py", env("replay")).await;
    assert_eq!(
        replay["start"]["result"]["State"], "RUNNING",
        "{}",
        replay["start"]
    );
    let described = &replay["describe"]["result"];
    assert_eq!(described["State"], "COMPLETED", "{described}");
    assert_eq!(
        described["EventSourceArn"],
        "arn:aws:events:us-east-1:000000000000:archive/all-shop"
    );
    assert_eq!(replay["cancel_finished"]["error"], "IllegalStatusException");
    assert_eq!(
        replay["list_replays"]["result"]["Replays"][0]["ReplayName"],
        "fix-b"
    );
    let archive = &replay["describe_archive"]["result"];
    assert_eq!(archive["EventCount"], 1);
    assert_eq!(archive["RetentionDays"], 7);
    assert_eq!(
        replay["list_archives"]["result"]["Archives"][0]["ArchiveName"],
        "all-shop"
    );

    wait_for(
        "the replayed delivery",
        Duration::from_secs(20),
        async || b.count() == 2,
    )
    .await;
    assert_eq!(b.hits()[1].body["replay-name"], "fix-b");
    // Rule a's target was not in FilterArns: a sentinel published after the replay reaches
    // it as its second request, so the replay did not.
    api.publish(
        "shop",
        vec![json!({"source": "shop", "detail-type": "sentinel", "detail": {}})],
    )
    .await;
    wait_for("the sentinel", Duration::from_secs(20), async || {
        a.count() == 2
    })
    .await;
    assert_eq!(a.hits()[1].body["detail-type"], "sentinel");
}
