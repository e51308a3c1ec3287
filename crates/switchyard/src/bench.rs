//! `switchyard bench`: end-to-end throughput and latency of a running server.
//!
//! Starts a sink on 127.0.0.1 that answers 200 at once, subscribes it to a fresh bus, publishes
//! batches (as fast as possible or at a fixed rate) and measures, per event, the time from just
//! before its publish request to its arrival at the sink. With `--archives N`, the bus also has N
//! archives that keep every event, to show what archiving costs the publish path. Removes its
//! bus afterwards.
//!
//! Beside rates and latency it reports what the server spent: its CPU time per delivered event
//! (from its own `process_cpu_seconds_total` before and after, so the client's and the sink's
//! CPU are not counted) and its resident memory, and the delivered rate as a share of the raw
//! sink limit: what this client's HTTP can push into the same sink on the same connections,
//! measured for a moment before the run (or given with `--sink-limit`).

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark client: it measures wall-clock time and runs its senders and sink as tasks that end with the run"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use reqwest::Method;

use crate::client::{ApiClient, ClientArgs};
use axum::routing::post;
use serde_json::json;
use tokio::sync::Notify;

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Events to publish.
    #[arg(long, default_value_t = 50_000)]
    events: u64,
    /// Events per publish request.
    #[arg(long, default_value_t = 100)]
    batch: u64,
    /// Target publish rate in events/s; 0 publishes as fast as the server accepts.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Publish requests in flight at once.
    #[arg(long, default_value_t = 4)]
    publishers: u64,
    /// The subscription's max_concurrency.
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// Bytes of filler in each event's detail.
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Archives on the bench bus, each keeping every event.
    #[arg(long, default_value_t = 0)]
    archives: u32,
    /// Consume through a pull subscription with this many pullers (each pulls up to 1,000
    /// messages, records them and acknowledges them) instead of a push subscription; 0 pushes.
    #[arg(long, default_value_t = 0)]
    pullers: u64,
    /// The sink's raw limit in POSTs/s, to report the delivered rate as a share of; 0 measures
    /// it before an unlimited run (--concurrency connections posting event-sized bodies for 2 s).
    #[arg(long, default_value_t = 0)]
    sink_limit: u64,
    /// Publish through these nodes in turn (repeat the flag) instead of through --url alone: for
    /// a cluster, where any node takes publishes.
    #[arg(long = "publish-url", value_name = "URL")]
    publish_urls: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What the sink saw.
struct Sink {
    latencies_us: Mutex<Vec<u64>>,
    seen: Mutex<Vec<bool>>,
    unique: AtomicU64,
    duplicates: AtomicU64,
    last_arrival_us: AtomicU64,
    done: Notify,
    expected: u64,
}

impl Sink {
    fn record(&self, body: &[u8]) {
        let now = unix_micros();
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let (Some(seq), Some(sent)) = (
            event["detail"]["seq"].as_u64(),
            event["detail"]["sent_us"].as_u64(),
        ) else {
            return;
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            match seen.get_mut(seq as usize) {
                Some(flag) if !*flag => *flag = true,
                Some(_) => {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                None => return,
            }
        }
        self.latencies_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(now.saturating_sub(sent));
        self.last_arrival_us.fetch_max(now, Ordering::Relaxed);
        if self.unique.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            self.done.notify_one();
        }
    }
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.batch == 0 || args.batch > 500 || args.publishers == 0 {
        bail!("--events and --publishers must be positive and --batch 1 to 500");
    }
    let client = ApiClient::new(&args.client)?;

    let sink = Arc::new(Sink {
        latencies_us: Mutex::new(Vec::with_capacity(args.events as usize)),
        seen: Mutex::new(vec![false; args.events as usize]),
        unique: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        last_arrival_us: AtomicU64::new(0),
        done: Notify::new(),
        expected: args.events,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr: SocketAddr = listener.local_addr()?;
    let recorder = Arc::clone(&sink);
    let app = axum::Router::new().route(
        "/sink",
        post(move |body: axum::body::Bytes| {
            let recorder = Arc::clone(&recorder);
            async move { recorder.record(&body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let bus_path = format!("/v1/buses/bench-{}", std::process::id());
    client
        .call(Method::PUT, &bus_path, Some("{}".into()))
        .await?;
    let subscription = if args.pullers > 0 {
        json!({"delivery": "pull", "ack_deadline_s": 60})
    } else {
        json!({
            "destination": {"url": format!("http://{sink_addr}/sink")},
            "max_concurrency": args.concurrency,
        })
    };
    client
        .call(
            Method::PUT,
            &format!("{bus_path}/subscriptions/sink"),
            Some(subscription.to_string()),
        )
        .await?;

    for archive in 0..args.archives {
        client
            .call(
                Method::PUT,
                &format!("{bus_path}/archives/bench-{archive}"),
                Some("{}".into()),
            )
            .await?;
    }

    let mut pullers = Vec::new();
    for _ in 0..args.pullers {
        let (client, sink) = (client.clone(), Arc::clone(&sink));
        let path = format!("{bus_path}/subscriptions/sink");
        pullers.push(tokio::spawn(async move {
            pull_until_done(&client, &path, &sink).await
        }));
    }

    let filler = "x".repeat(args.payload);
    let sink_limit = match args.sink_limit {
        // Only a run as fast as possible says anything about the sink's share.
        0 if args.pullers == 0 && args.rate == 0 => Some(
            measure_sink(
                &format!("http://{sink_addr}/sink"),
                args.concurrency,
                &filler,
            )
            .await?,
        ),
        0 => None,
        given => Some(given as f64),
    };
    let before = ServerUse::read(&client).await;
    let next_batch = Arc::new(AtomicU64::new(0));
    let batches = args.events.div_ceil(args.batch);
    let started = Instant::now();
    let start_us = unix_micros();
    let mut through = vec![client.clone()];
    if !args.publish_urls.is_empty() {
        through = args
            .publish_urls
            .iter()
            .map(|url| client.with_base(url))
            .collect::<anyhow::Result<_>>()?;
    }
    let mut publishers = Vec::new();
    for publisher in 0..args.publishers {
        let client = through[publisher as usize % through.len()].clone();
        let (next_batch, filler) = (Arc::clone(&next_batch), filler.clone());
        let (events_path, args_events, batch, rate) = (
            format!("{bus_path}/events"),
            args.events,
            args.batch,
            args.rate,
        );
        publishers.push(tokio::spawn(async move {
            loop {
                let index = next_batch.fetch_add(1, Ordering::Relaxed);
                if index >= batches {
                    return Ok::<(), anyhow::Error>(());
                }
                let first = index * batch;
                if rate > 0 {
                    let due = Duration::from_secs_f64(first as f64 / rate as f64);
                    tokio::time::sleep_until(tokio::time::Instant::from_std(started + due)).await;
                }
                let sent_us = unix_micros();
                let entries: Vec<_> = (first..(first + batch).min(args_events))
                    .map(|seq| json!({"source": "bench", "detail-type": "tick", "detail": {"seq": seq, "sent_us": sent_us, "filler": filler}}))
                    .collect();
                let body = json!({ "entries": entries }).to_string();
                let answer = client.call(Method::POST, &events_path, Some(body)).await?;
                if answer["failed_entry_count"].as_u64() != Some(0) {
                    bail!("the server refused events: {answer}");
                }
            }
        }));
    }
    for publisher in publishers {
        publisher.await??;
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let wait = Duration::from_secs(60 + args.events / 1_000);
    let all_arrived = tokio::time::timeout(wait, async {
        while sink.unique.load(Ordering::Relaxed) < args.events {
            tokio::select! {
                _ = sink.done.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
    .await
    .is_ok();
    for puller in pullers {
        puller.abort();
    }
    let after = ServerUse::read(&client).await;
    let delivered = sink.unique.load(Ordering::Relaxed);
    let delivered_secs = sink
        .last_arrival_us
        .load(Ordering::Relaxed)
        .saturating_sub(start_us) as f64
        / 1e6;
    let _ = client
        .call(Method::DELETE, &format!("{bus_path}?force=true"), None)
        .await;

    let mut latencies =
        std::mem::take(&mut *sink.latencies_us.lock().unwrap_or_else(|p| p.into_inner()));
    latencies.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        latencies[rank] as f64 / 1000.0
    };
    println!(
        "switchyard bench: {} events in batches of {}, {} publishers through {} node(s), {} archives, rate {}, {}",
        args.events,
        args.batch,
        args.publishers,
        through.len(),
        args.archives,
        if args.rate == 0 {
            "unlimited".to_string()
        } else {
            format!("{}/s", args.rate)
        },
        if args.pullers == 0 {
            "pushed".to_string()
        } else {
            format!("pulled and acked by {} pullers", args.pullers)
        }
    );
    println!(
        "  published   {:>10.0} events/s  ({:.2} s)",
        args.events as f64 / publish_secs,
        publish_secs
    );
    println!(
        "  delivered   {:>10.0} events/s  ({delivered} of {} in {delivered_secs:.2} s, {} duplicates)",
        delivered as f64 / delivered_secs.max(1e-9),
        args.events,
        sink.duplicates.load(Ordering::Relaxed)
    );
    println!(
        "  publish->delivery latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        percentile(50.0),
        percentile(90.0),
        percentile(99.0),
        percentile(100.0)
    );
    match (before, after) {
        (Some(before), Some(after)) if delivered > 0 => {
            let cpu_s = after.cpu_s - before.cpu_s;
            println!(
                "  server CPU  {:>10.0} µs per delivered event  ({cpu_s:.2} s user+system; RSS {:.0} MiB after)",
                cpu_s * 1e6 / delivered as f64,
                after.rss_bytes / (1024.0 * 1024.0)
            );
        }
        _ => println!("  server CPU         n/a  (its /metrics has no process_cpu_seconds_total)"),
    }
    if let Some(limit) = sink_limit {
        println!(
            "  sink limit  {limit:>10.0} POSTs/s raw{}; delivered at {:.0} % of it",
            if args.sink_limit == 0 {
                " (measured)"
            } else {
                " (given)"
            },
            100.0 * delivered as f64 / delivered_secs.max(1e-9) / limit.max(1e-9)
        );
    }
    if !all_arrived {
        bail!(
            "only {delivered} of {} events arrived within {} s",
            args.events,
            wait.as_secs()
        );
    }
    Ok(())
}

/// What the server's own process metrics say it has used so far.
#[derive(Clone, Copy)]
struct ServerUse {
    cpu_s: f64,
    rss_bytes: f64,
}

impl ServerUse {
    /// `None` when the server does not export them (not Linux, or an older server).
    async fn read(client: &ApiClient) -> Option<ServerUse> {
        let text = client.call(Method::GET, "/metrics", None).await.ok()?;
        let text = text.as_str()?;
        let sample = |name: &str| {
            text.lines().find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
        };
        Some(ServerUse {
            cpu_s: sample("process_cpu_seconds_total")?,
            rss_bytes: sample("process_resident_memory_bytes").unwrap_or(0.0),
        })
    }
}

/// POSTs/s that `connections` connections get through the sink with event-sized bodies the
/// sink takes (and ignores: their sequence number is out of range), in 2 s.
async fn measure_sink(url: &str, connections: u32, filler: &str) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let body = json!({"source": "bench", "detail-type": "tick", "detail": {"seq": u64::MAX, "sent_us": 0, "filler": filler}}).to_string();
    let posted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(2);
    let mut senders = Vec::new();
    for _ in 0..connections.max(1) {
        let (http, body, posted, url) = (
            http.clone(),
            body.clone(),
            Arc::clone(&posted),
            url.to_string(),
        );
        senders.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                http.post(&url)
                    .body(body.clone())
                    .send()
                    .await?
                    .error_for_status()?;
                posted.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), reqwest::Error>(())
        }));
    }
    for sender in senders {
        sender.await??;
    }
    Ok(posted.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// One puller: pulls, records what it got as the push sink would, acknowledges it, until every
/// event arrived (the caller aborts it then).
async fn pull_until_done(client: &ApiClient, path: &str, sink: &Sink) -> anyhow::Result<()> {
    let pull = json!({"max_messages": 1000, "wait_s": 1}).to_string();
    while sink.unique.load(Ordering::Relaxed) < sink.expected {
        let answer = client
            .call(Method::POST, &format!("{path}/pull"), Some(pull.clone()))
            .await?;
        let Some(messages) = answer["messages"].as_array() else {
            bail!("pull answered no messages list: {answer}");
        };
        if messages.is_empty() {
            continue;
        }
        let mut ack_ids = Vec::with_capacity(messages.len());
        for message in messages {
            sink.record(&serde_json::to_vec(&message["event"])?);
            ack_ids.push(message["ack_id"].clone());
        }
        client
            .call(
                Method::POST,
                &format!("{path}/ack"),
                Some(json!({ "ack_ids": ack_ids }).to_string()),
            )
            .await?;
    }
    Ok(())
}
