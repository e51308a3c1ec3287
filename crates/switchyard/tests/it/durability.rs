//! What survives: SIGKILL under load, restarts, SIGTERM with attempts in flight, a full disk
//! and a PostgreSQL server that restarts.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn every_acknowledged_event_is_delivered_after_sigkill_under_load() {
    let dir = temp_dir();
    let receiver = Receiver::ok().await;
    let server = Server::start(dir.path(), &[]);
    {
        let api = Api::new(&server);
        api.bus("load").await;
        api.subscribe("load", "sink", json!({"destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 20, "max_backoff_ms": 200}})).await;
    }
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let base = server.base.clone();
    let mut publishers = Vec::new();
    for publisher in 0..4 {
        let (acknowledged, base) = (Arc::clone(&acknowledged), base.clone());
        publishers.push(tokio::spawn(async move {
            let http = client();
            // Bounded: 200 batches of 25 at most, whichever comes first with the kill.
            for batch in 0..200 {
                let entries: Vec<_> = (0..25)
                    .map(|i| event("load", json!({"p": publisher, "b": batch, "i": i})))
                    .collect();
                let sent = http
                    .post(format!("{base}/v1/buses/load/events"))
                    .body(json!({ "entries": entries }).to_string())
                    .send()
                    .await;
                let Ok(response) = sent else { return };
                if response.status() != 200 {
                    return;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else {
                    return;
                };
                let mut acked = acknowledged.lock().unwrap();
                for entry in answer["entries"].as_array().into_iter().flatten() {
                    acked.insert(entry["id"].as_str().unwrap().to_string());
                }
            }
        }));
    }
    wait_for(
        "some acknowledged load",
        Duration::from_secs(30),
        async || acknowledged.lock().unwrap().len() >= 2_000,
    )
    .await;
    server.kill();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 2_000);

    let restarted = Server::start(dir.path(), &[]);
    wait_for(
        "every acknowledged event at the receiver",
        Duration::from_secs(120),
        async || {
            let seen: HashSet<String> = receiver.hits().iter().map(Hit::event_id).collect();
            acknowledged.is_subset(&seen)
        },
    )
    .await;
    let api = Api::new(&restarted);
    wait_for("nothing pending", Duration::from_secs(60), async || {
        api.stats("load", "sink").await["pending"] == 0
    })
    .await;
    let stats = api.stats("load", "sink").await;
    assert_accounting(&stats);
    assert!(
        stats["delivered"].as_u64().unwrap() >= acknowledged.len() as u64,
        "{stats}"
    );
}

#[tokio::test]
async fn buses_subscriptions_and_pending_deliveries_survive_a_restart() {
    let dir = temp_dir();
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    let server = Server::start(dir.path(), &[]);
    let ids = {
        let api = Api::new(&server);
        api.bus("b").await;
        api.subscribe("b", "s", json!({"pattern": {"source": ["keep"]}, "destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 50, "max_backoff_ms": 100}})).await;
        api.publish(
            "b",
            vec![event("keep", json!({"n": 1})), event("drop", json!({}))],
        )
        .await
    };
    wait_for("a failed attempt", Duration::from_secs(20), async || {
        receiver.count() >= 1
    })
    .await;
    assert_eq!(server.terminate().await.code(), Some(0));

    receiver.set(|_, _| Reply::status(200));
    let restarted = Server::start(dir.path(), &[]);
    let api = Api::new(&restarted);
    wait_for(
        "delivery after restart",
        Duration::from_secs(20),
        async || api.stats("b", "s").await["delivered"] == 1,
    )
    .await;
    assert_eq!(receiver.hits().last().unwrap().event_id(), ids[0]);
    let (_, view) = api.get("/v1/buses/b/subscriptions/s").await;
    assert_eq!(view["retry"]["min_backoff_ms"], 50);
    assert_eq!(view["pattern"], json!({"source": ["keep"]}));
    let stats = api.stats("b", "s").await;
    assert!(stats["failed_attempts"].as_u64().unwrap() >= 1);
    assert_accounting(&stats);
}

#[tokio::test]
async fn sigterm_lets_attempts_in_flight_finish_and_records_them() {
    let dir = temp_dir();
    let receiver = Receiver::start(|_, _| Reply {
        status: 200,
        headers: vec![],
        delay: Duration::from_millis(800),
        body: String::new(),
    })
    .await;
    let server = Server::start(dir.path(), &[]);
    {
        let api = Api::new(&server);
        api.bus("b").await;
        api.subscribe("b", "s", json!({"destination": {"url": receiver.url}}))
            .await;
        api.publish("b", vec![event("x", json!({}))]).await;
    }
    wait_for(
        "the attempt to start",
        Duration::from_secs(20),
        async || receiver.count() == 1,
    )
    .await;
    let status = server.terminate().await;
    assert_eq!(status.code(), Some(0), "graceful shutdown must exit 0");

    let restarted = Server::start(dir.path(), &[]);
    let api = Api::new(&restarted);
    let stats = api.stats("b", "s").await;
    assert_eq!(
        (stats["delivered"].as_u64(), stats["pending"].as_u64()),
        (Some(1), Some(0)),
        "{stats}"
    );
    // The sentinel: an event published after the restart, through the same subscription. Once
    // it is delivered and nothing is pending, whatever the restarted server had to send (a
    // repeat included) has been sent.
    let sentinel = api
        .publish("b", vec![event("x", json!({}))])
        .await
        .remove(0);
    wait_for("the sentinel", Duration::from_secs(20), async || {
        api.stats("b", "s").await["delivered"] == 2
    })
    .await;
    assert_eq!(
        receiver
            .hits()
            .iter()
            .filter(|h| h.event_id() != sentinel)
            .count(),
        1,
        "the finished attempt was repeated after restart"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = temp_dir();
    let _first = Server::start(dir.path(), &[]);
    let second = Server::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    let log = second
        .err()
        .expect("the second server must not start")
        .join("\n");
    assert!(
        log.contains("in use by another switchyard process"),
        "{log}"
    );
}

#[tokio::test]
async fn a_server_given_another_master_key_refuses_to_start_and_says_why() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    Server::start(&data, &[]).kill();
    let other_key = dir.path().join("other.key");
    let refused = Server::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--master-key-file",
        other_key.to_str().unwrap(),
    ]);
    let log = refused.err().expect("must refuse to start").join("\n");
    assert!(log.contains("sealed with another master key"), "{log}");
    assert!(log.contains("--master-key-file"), "{log}");
    // The right key still opens everything.
    let server = Server::start(&data, &[]);
    assert_eq!(Api::new(&server).get("/v1/buses").await.0, 200);
}

#[tokio::test]
async fn sigterm_stops_the_server_while_a_tail_is_open() {
    let dir = temp_dir();
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    let tail = api
        .client
        .get(server.url("/v1/buses/b/tail"))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    // `terminate` waits (bounded) for the exit: before the fix, an open tail kept it running.
    assert_eq!(server.terminate().await.code(), Some(0));
    drop(tail);
}

#[tokio::test]
async fn a_repeated_event_id_is_acknowledged_but_not_delivered_again_even_after_a_restart() {
    let dir = temp_dir();
    let receiver = Receiver::ok().await;
    let server = Server::start(dir.path(), &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.bus("other").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}}))
        .await;
    api.subscribe("other", "s", json!({"destination": {"url": receiver.url}}))
        .await;
    let order =
        json!({"source": "shop", "detail-type": "Order Placed", "id": "order-1001", "detail": {}});
    assert_eq!(api.publish("b", vec![order.clone()]).await, ["order-1001"]);
    assert_eq!(
        api.publish("b", vec![order.clone()]).await,
        ["order-1001"],
        "the retry is acknowledged"
    );
    // Ids are per bus.
    api.publish("other", vec![order.clone()]).await;
    wait_for(
        "both deliveries committed",
        Duration::from_secs(20),
        async || {
            api.stats("b", "s").await["delivered"] == 1
                && api.stats("other", "s").await["delivered"] == 1
        },
    )
    .await;
    server.kill();

    let restarted = Server::start(dir.path(), &[]);
    let api = Api::new(&restarted);
    assert_eq!(api.publish("b", vec![order.clone()]).await, ["order-1001"]);
    api.publish("b", vec![event("shop", json!({"n": 2}))]).await;
    wait_for("the new event", Duration::from_secs(20), async || {
        api.stats("b", "s").await["delivered"] == 2
    })
    .await;
    let stats = api.stats("b", "s").await;
    assert_eq!(
        stats["accepted"], 2,
        "a repeated id became a delivery again: {stats}"
    );
    let on_b = receiver
        .hits()
        .iter()
        .filter(|h| h.header("switchyard-bus") == "b" && h.event_id() == "order-1001")
        .count();
    assert_eq!(on_b, 1);
}

/// One publish of one event, with what a publisher needs to decide to retry.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: serde_json::Value,
}

impl Answer {
    fn id(&self) -> String {
        self.body["entries"][0]["id"].as_str().unwrap().to_string()
    }
}

async fn publish_one(http: &reqwest::Client, base: &str, detail: serde_json::Value) -> Answer {
    let response = http
        .post(format!("{base}/v1/buses/b/events"))
        .body(json!({ "entries": [event("faults", detail)] }).to_string())
        .send()
        .await
        .expect("the server answers while its store fails");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap_or_default();
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Waits (bounded) until the receiver has seen every acknowledged event and nothing is pending,
/// and checks the accounting.
async fn assert_all_delivered(api: &Api<'_>, receiver: &Receiver, acknowledged: &HashSet<String>) {
    wait_for(
        "every acknowledged event at the receiver",
        Duration::from_secs(120),
        async || {
            let seen: HashSet<String> = receiver.hits().iter().map(Hit::event_id).collect();
            acknowledged.is_subset(&seen)
        },
    )
    .await;
    wait_for("nothing pending", Duration::from_secs(60), async || {
        api.stats("b", "s").await["pending"] == 0
    })
    .await;
    let stats = api.stats("b", "s").await;
    assert_accounting(&stats);
    assert!(
        stats["delivered"].as_u64().unwrap() >= acknowledged.len() as u64,
        "{stats}"
    );
}

/// A tmpfs mounted for one test, unmounted when dropped (also when the test fails).
struct Tmpfs {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Err says why it cannot be mounted (not root, no mount command).
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let parent = temp_dir();
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !mounted.status.success() {
            return Err(format!(
                "mount -t tmpfs was refused ({}); it needs root",
                String::from_utf8_lossy(&mounted.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path,
            _parent: parent,
        })
    }

    /// Writes a file until the disk is full, then gives `room` bytes back; returns its path.
    fn fill(&self, room: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            match file.write(&chunk) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let full = file.metadata().unwrap().len();
        file.set_len(full.saturating_sub(room)).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Something still holds a file there: detach it now, it goes when released.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

#[tokio::test]
async fn a_full_disk_fails_publishes_with_507_and_the_store_recovers_without_a_restart() {
    let disk = match Tmpfs::mount("8m") {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let data = disk.path.join("data");
    let receiver = Receiver::ok().await;
    let server = Server::start(&data, &[]);
    let api = Api::new(&server);
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 20, "max_backoff_ms": 200}})).await;
    // Room for some publishes first, so that the disk fills up under acknowledged events.
    let filler = disk.fill(1 << 20);

    // 2,000 events of 10 KB are far more than the disk's 8 MB.
    let pad = "x".repeat(10_000);
    let mut acknowledged = HashSet::new();
    let mut refused = None;
    for n in 0..2_000 {
        let answer = publish_one(&api.client, &server.base, json!({"n": n, "pad": pad})).await;
        if answer.status != 200 {
            refused = Some(answer);
            break;
        }
        acknowledged.insert(answer.id());
    }
    let refused = refused.expect("the full disk never failed a publish");
    let error = &refused.body["error"];
    assert_eq!(
        (refused.status, error["code"].as_str()),
        (507, Some("insufficient_storage")),
        "{}",
        refused.body
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("disk is full"), "{message}");
    assert!(refused.retry_after.is_some(), "no Retry-After");
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert!(
        ready["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{ready}"
    );

    std::fs::remove_file(filler).unwrap();
    wait_for(
        "a publish to succeed once space is freed",
        Duration::from_secs(60),
        async || {
            let answer = publish_one(&api.client, &server.base, json!({"after": true})).await;
            if answer.status == 200 {
                acknowledged.insert(answer.id());
            }
            answer.status == 200
        },
    )
    .await;
    wait_for("/readyz to be ready", Duration::from_secs(30), async || {
        api.get("/readyz").await.0 == 200
    })
    .await;
    assert_all_delivered(&api, &receiver, &acknowledged).await;

    // The file is whole: it opens after a restart with every acknowledged event accounted for.
    drop(api);
    assert_eq!(server.terminate().await.code(), Some(0));
    let restarted = Server::start(&data, &[]);
    let stats = Api::new(&restarted).stats("b", "s").await;
    assert_accounting(&stats);
    assert!(
        stats["accepted"].as_u64().unwrap() >= acknowledged.len() as u64,
        "{stats}"
    );
}

/// A PostgreSQL cluster of the test's own (initdb and pg_ctl, as `.ci/postgres` starts one, in
/// a temporary directory on a free port), so that the test may stop and start it without
/// touching a server anyone else uses. Stopped for good when dropped.
struct OwnPostgres {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnPostgres {
    /// Err says why no cluster can be started here (no PostgreSQL binaries).
    fn start() -> Result<OwnPostgres, String> {
        let bin = postgres_bin().ok_or(
            "no initdb and pg_ctl in PATH or /usr/lib/postgresql/*/bin; install postgresql",
        )?;
        let dir = temp_dir();
        let root = dir.path().join("pg");
        std::fs::create_dir(&root).unwrap();
        if running_as_root() {
            // PostgreSQL refuses to run as root: it runs as `postgres`, who must reach the
            // directory.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            let owned = Command::new("chown").arg("postgres").arg(&root).status();
            if !owned.is_ok_and(|s| s.success()) {
                return Err("running as root and there is no postgres user to run it as".into());
            }
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let postgres = OwnPostgres {
            bin,
            root,
            port,
            _dir: dir,
        };
        let data = postgres.root.join("data");
        postgres.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        postgres.start_server();
        Ok(postgres)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.root.display()
        );
        let log = self.root.join("log");
        let data = self.root.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// A fast shutdown: the server ends every session and goes away.
    fn stop_server(&self) {
        let data = self.root.join("data");
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-w", "-m", "fast", "stop"],
        );
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let done = self.command(tool).args(args).output().unwrap();
        assert!(
            done.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.root.join("data");
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

/// Where initdb and pg_ctl are: PATH, or Debian's versioned directory (the newest).
fn postgres_bin() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    in_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// What a publisher running through an outage saw.
#[derive(Default)]
struct Seen {
    acknowledged: HashSet<String>,
    /// Every answer other than 200: status, Retry-After, body.
    refused: Vec<(u16, Option<String>, serde_json::Value)>,
}

#[tokio::test]
async fn publishing_resumes_after_the_postgresql_server_restarts_and_nothing_acknowledged_is_lost()
{
    let postgres = match OwnPostgres::start() {
        Ok(postgres) => postgres,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let dir = temp_dir();
    let key = dir.path().join("master.key");
    let url = postgres.url();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--store",
            &url,
            "--master-key-file",
            key.to_str().unwrap(),
            "--lease-ms",
            "1500",
        ],
    );
    let receiver = Receiver::ok().await;
    let api = Api::new(&server);
    api.bus("b").await;
    api.subscribe("b", "s", json!({"destination": {"url": receiver.url}, "retry": {"min_backoff_ms": 20, "max_backoff_ms": 200}})).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (seen, stop, base) = (Arc::clone(&seen), Arc::clone(&stop), server.base.clone());
        tokio::spawn(async move {
            let http = client();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let answer = publish_one(&http, &base, json!({ "n": n })).await;
                {
                    let mut seen = seen.lock().unwrap();
                    match answer.status {
                        200 => {
                            seen.acknowledged.insert(answer.id());
                        }
                        status => seen.refused.push((status, answer.retry_after, answer.body)),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let acknowledged = async || seen.lock().unwrap().acknowledged.len();
    wait_for(
        "publishes before the outage",
        Duration::from_secs(30),
        async || acknowledged().await >= 50,
    )
    .await;

    postgres.stop_server();
    wait_for(
        "a publish refused during the outage",
        Duration::from_secs(30),
        async || !seen.lock().unwrap().refused.is_empty(),
    )
    .await;
    wait_for("/readyz to fail", Duration::from_secs(30), async || {
        api.get("/readyz").await.0 == 503
    })
    .await;
    let (_, ready) = api.get("/readyz").await;
    assert!(
        ready["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be reached")),
        "{ready}"
    );

    postgres.start_server();
    let before = acknowledged().await;
    wait_for(
        "publishes after the restart",
        Duration::from_secs(60),
        async || acknowledged().await >= before + 50,
    )
    .await;
    wait_for("/readyz to be ready", Duration::from_secs(30), async || {
        api.get("/readyz").await.0 == 200
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    publisher.await.unwrap();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    for (status, retry_after, body) in &seen.refused {
        assert_eq!(*status, 503, "{body}");
        assert_eq!(body["error"]["code"], "unavailable", "{body}");
        assert!(retry_after.is_some(), "no Retry-After: {body}");
    }
    assert_all_delivered(&api, &receiver, &seen.acknowledged).await;
}
