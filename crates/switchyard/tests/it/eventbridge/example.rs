//! `examples/eventbridge/terraform_equivalent.py`, run as a user would, twice (it is
//! idempotent), against a fresh server: every event type reaches the receiver.

use std::path::PathBuf;
use std::time::Duration;

use switchyard_test_support::{python_or_skip, run_python, temp_dir};

use super::TOOL_TIMEOUT;
use crate::common::{Receiver, Server, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terraform_equivalent_runs_twice_and_delivers_each_event_type() {
    let Some(python) = python_or_skip() else {
        return;
    };
    let receiver = Receiver::ok().await;
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/eventbridge/terraform_equivalent.py");
    let (endpoint, receiver_url) = (server.base.clone(), receiver.url.clone());
    tokio::task::spawn_blocking(move || {
        for _ in 0..2 {
            let env = [
                ("ENDPOINT", endpoint.clone()),
                ("RECEIVER", receiver_url.clone()),
            ];
            let output = run_python(&python, &script, &env, TOOL_TIMEOUT);
            assert_eq!(output.lines.len(), 1, "{}", output.stderr);
        }
    })
    .await
    .unwrap();
    wait_for(
        "one delivery per event type, per run",
        Duration::from_secs(30),
        async || receiver.count() == 6,
    )
    .await;
    let mut paths: Vec<String> = receiver
        .hits()
        .iter()
        .map(|h| format!("{}?{}", h.path, h.query))
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(
        paths,
        [
            "/orders/o-0?tenant=acme",
            "/orders/o-1?tenant=acme",
            "/orders/o-2?tenant=acme"
        ]
    );
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.header("x-api-key") == "example-key")
    );
    assert!(
        receiver
            .hits()
            .iter()
            .all(|h| h.body["origin"] == "eventbridge"),
        "the connection's body parameter is in every body"
    );
}
