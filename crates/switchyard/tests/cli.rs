//! The CLI against a running server: apply, publish, dead-letters.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn cli(server: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("SWITCHYARD_URL", &server.base)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_publish_and_manage_dead_letters_from_the_command_line() {
    let dir = temp_dir();
    let server = Server::start(&dir.path().join("data"), &[]);
    let receiver =
        Receiver::start(|hit, _| Reply::status(if hit.path == "/fail" { 422 } else { 200 })).await;
    let config = dir.path().join("setup.toml");
    let write_config = |path: &str| {
        std::fs::write(
            &config,
            format!("[buses.shop.subscriptions.crm]\npattern = {{ source = [\"web\"] }}\ndestination = {{ url = \"{}{path}\" }}\n", receiver.url),
        )
        .unwrap()
    };
    write_config("/fail");
    let applied = cli(&server, &["apply", config.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    assert!(stdout(&applied).contains("subscription shop/crm: applied"));

    let published = cli(
        &server,
        &[
            "publish",
            "shop",
            r#"{"source": "web", "detail-type": "signup", "detail": {"user": 7}}"#,
        ],
    );
    assert!(published.status.success(), "{published:?}");
    assert!(stdout(&published).contains("\"failed_entry_count\":0"));
    let refused = cli(
        &server,
        &["publish", "shop", r#"{"detail-type": "signup"}"#],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("\"source\" is required"));

    let api = Api::new(&server);
    wait_for("a dead letter", Duration::from_secs(20), async || {
        api.stats("shop", "crm").await["dead"] == 1
    })
    .await;
    let listed = cli(&server, &["dead-letters", "shop", "crm", "list"]);
    assert!(
        stdout(&listed).contains("\"last_status\":422"),
        "{listed:?}"
    );

    write_config("/ok");
    assert!(
        cli(&server, &["apply", config.to_str().unwrap()])
            .status
            .success()
    );
    let redriven = cli(&server, &["dead-letters", "shop", "crm", "redrive"]);
    assert!(stdout(&redriven).contains("\"redriven\":1"), "{redriven:?}");
    wait_for("redelivery", Duration::from_secs(20), async || {
        api.stats("shop", "crm").await["delivered"] == 1
    })
    .await;
    let purged = cli(&server, &["dead-letters", "shop", "crm", "purge"]);
    assert!(stdout(&purged).contains("\"purged\":0"), "{purged:?}");

    let missing = cli(&server, &["dead-letters", "shop", "nope", "list"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404 not_found"));
}
