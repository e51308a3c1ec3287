//! `switchyard backup DIR` (`GET /v1/backup`): a copy of the embedded store taken while the
//! server publishes is a store another server opens with everything acknowledged before the
//! copy began; and the refusals: an existing file, a token without `admin`, a PostgreSQL store.

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::common::*;

fn backup(base: &str, dir: &std::path::Path, token_file: Option<&std::path::Path>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(["backup", dir.to_str().unwrap(), "--url", base])
        .env_remove("SWITCHYARD_URL")
        .env_remove("SWITCHYARD_API_TOKEN_FILE");
    if let Some(file) = token_file {
        command.arg("--api-token-file").arg(file);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_publishing_restores_every_event_acknowledged_before_it() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let api = Api::new(&server);
    let refusing = Receiver::start(|_, _| Reply::status(400)).await;
    api.bus("shop").await;
    // Pull: its deliveries stay pending until pulled, so each event stays findable in the copy.
    api.subscribe("shop", "held", json!({"delivery": "pull"}))
        .await;
    api.subscribe(
        "shop",
        "refused",
        json!({"pattern": {"source": ["dead"]}, "destination": {"url": refusing.url}}),
    )
    .await;
    api.publish(
        "shop",
        (0..5).map(|n| event("dead", json!({ "n": n }))).collect(),
    )
    .await;
    wait_for("five dead letters", Duration::from_secs(20), async || {
        api.stats("shop", "refused").await["dead"] == 5
    })
    .await;

    // A publisher that keeps going while the copy is made; what it had acknowledged when the
    // backup started must all be in the copy.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let publisher = {
        let (stop, acknowledged, base) = (
            Arc::clone(&stop),
            Arc::clone(&acknowledged),
            server.base.clone(),
        );
        tokio::spawn(async move {
            let client = client();
            for round in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let entries: Vec<_> = (0..10)
                    .map(|n| event("web", json!({ "round": round, "n": n })))
                    .collect();
                let (status, body) = call(
                    client
                        .post(format!("{base}/v1/buses/shop/events"))
                        .body(json!({ "entries": entries }).to_string()),
                )
                .await;
                assert_eq!(status, 200, "{body}");
                let ids = body["entries"].as_array().unwrap().iter();
                acknowledged
                    .lock()
                    .unwrap()
                    .extend(ids.map(|e| e["id"].as_str().unwrap().to_string()));
            }
        })
    };
    wait_for(
        "publishing under way",
        Duration::from_secs(20),
        async || acknowledged.lock().unwrap().len() >= 100,
    )
    .await;
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let target = dir.path().join("backups");
    let output = tokio::task::spawn_blocking({
        let (base, target) = (server.base.clone(), target.clone());
        move || backup(&base, &target, None)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    let file = target.join("switchyard.redb");
    let bytes = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        printed,
        format!(
            "wrote {} ({bytes} bytes): the store as of one commit\n",
            file.display()
        )
    );
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        1,
        "nothing but the copy is left in the directory"
    );
    assert!(
        std::fs::read_dir(&data).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("backup")),
        "the server left no copy in its data directory"
    );

    // Restoring: the copy as the data directory of another server, with the same master key.
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir(&restored_dir).unwrap();
    std::fs::copy(&file, restored_dir.join("switchyard.redb")).unwrap();
    let key = data.join("master.key");
    let restored = Server::start(&restored_dir, &["--master-key-file", key.to_str().unwrap()]);
    let restored_api = Api::new(&restored);
    let (status, subscriptions) = restored_api.get("/v1/buses/shop/subscriptions").await;
    assert_eq!(status, 200, "{subscriptions}");
    let names: Vec<&str> = subscriptions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["held", "refused"]);
    for id in &before {
        let (status, trail) = restored_api
            .get(&format!("/v1/buses/shop/events/{id}"))
            .await;
        assert_eq!(
            status, 200,
            "acknowledged event {id} is not in the copy: {trail}"
        );
    }
    let held = restored_api.stats("shop", "held").await;
    assert_accounting(&held);
    assert!(
        held["pending"].as_u64().unwrap() >= before.len() as u64 + 5,
        "{held}"
    );
    let refused = restored_api.stats("shop", "refused").await;
    assert_accounting(&refused);
    assert_eq!(refused["dead"], 5, "{refused}");
    let (status, letters) = restored_api
        .get("/v1/buses/shop/subscriptions/refused/dead-letters")
        .await;
    assert_eq!(status, 200);
    assert_eq!(letters["items"].as_array().unwrap().len(), 5, "{letters}");
    assert_eq!(letters["items"][0]["last_status"], 400, "{letters}");
}

/// A backup never overwrites a file, and only an `admin` token may take one: the copy holds
/// every event and sealed secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_refuses_to_overwrite_and_needs_an_admin_token() {
    let dir = temp_dir();
    let tokens = admin_and_reader_tokens(dir.path());
    let server = Server::start(
        &dir.path().join("data"),
        &["--api-tokens-file", tokens.to_str().unwrap()],
    );
    let (admin, reader) = (dir.path().join("admin"), dir.path().join("reader"));
    std::fs::write(&admin, format!("{ADMIN_TOKEN}\n")).unwrap();
    std::fs::write(&reader, format!("{READER_TOKEN}\n")).unwrap();

    let target = dir.path().join("b");
    let refused = backup(&server.base, &target, Some(&reader));
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "error: GET /v1/backup: 403 forbidden: token \"reader\" may not GET /v1/backup: it needs the scope admin\n"
    );
    assert!(!target.exists(), "a refused backup creates nothing");

    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("switchyard.redb"), "an older backup").unwrap();
    let existing = backup(&server.base, &target, Some(&admin));
    assert_eq!(existing.status.code(), Some(1));
    assert!(
        stderr(&existing).contains("switchyard.redb exists already: a backup never overwrites one"),
        "{existing:?}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("switchyard.redb")).unwrap(),
        "an older backup"
    );
    let taken = backup(&server.base, &dir.path().join("c"), Some(&admin));
    assert!(taken.status.success(), "{taken:?}");
}

/// A PostgreSQL store is backed up with the database's tools; the answer says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_postgres_store_is_refused_naming_pg_dump() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = temp_dir();
    let server = crate::cluster::node(&db, dir.path(), "n1", &[]);
    let output = backup(&server.base, &dir.path().join("b"), None);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with(
            "error: GET /v1/backup: 501 not_implemented: this server's store is PostgreSQL"
        ),
        "{message}"
    );
    assert!(message.contains("pg_dump"), "{message}");
    assert!(!dir.path().join("b").exists());
}
