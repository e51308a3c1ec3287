//! `switchyard bench-hooks`: how fast a webhook source acknowledges, under load.
//!
//! Creates a bus, a Slack source with a random signing secret and a subscription to a local
//! sink (so deliveries run alongside, as in production), then sends signed slash commands from
//! several concurrent senders and reports the acknowledgement latency: what Slack's 3-second
//! limit is about. Removes its bus and source afterwards.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark client: it measures wall-clock time and runs its senders and sink as tasks that end with the run"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use axum::routing::post;
use reqwest::Method;
use serde_json::json;

use crate::client::{ApiClient, ClientArgs};

#[derive(clap::Args)]
pub(crate) struct BenchHooksArgs {
    /// Webhook requests to send.
    #[arg(long, default_value_t = 5_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: u64,
    #[command(flatten)]
    client: ClientArgs,
}

fn sign(secret: &[u8], timestamp: u64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    format!(
        "v0={}",
        tag.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

pub(crate) async fn run(args: BenchHooksArgs) -> anyhow::Result<()> {
    if args.requests == 0 || args.concurrency == 0 {
        bail!("--requests and --concurrency must be positive");
    }
    let client = ApiClient::new(&args.client)?;
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_url = format!("http://{}/sink", sink.local_addr()?);
    tokio::spawn(async move {
        axum::serve(sink, axum::Router::new().route("/sink", post(|| async {}))).await
    });

    let tag = std::process::id();
    let (bus, source) = (format!("bench-hooks-{tag}"), format!("bench-slack-{tag}"));
    let secret: String = (0..32).map(|_| format!("{:x}", random_nibble())).collect();
    client
        .call(Method::PUT, &format!("/v1/buses/{bus}"), Some("{}".into()))
        .await?;
    let subscription = json!({"destination": {"url": sink_url}, "max_concurrency": 32});
    client
        .call(
            Method::PUT,
            &format!("/v1/buses/{bus}/subscriptions/jobs"),
            Some(subscription.to_string()),
        )
        .await?;
    let spec = json!({
        "bus": bus,
        "verify": {"type": "slack", "signing_secret": secret},
        "response": {"body": {"response_type": "ephemeral", "text": "Working on it..."}},
    });
    client
        .call(
            Method::PUT,
            &format!("/v1/sources/{source}"),
            Some(spec.to_string()),
        )
        .await?;

    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..args.concurrency {
        let (client, next, secret, source) = (
            client.clone(),
            Arc::clone(&next),
            secret.clone(),
            source.clone(),
        );
        let total = args.requests;
        senders.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let body = "command=%2Freport&text=weekly&user_id=U1&channel_id=C1&response_url=http%3A%2F%2F127.0.0.1%3A1%2Fr";
                let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                let sent = Instant::now();
                let answer = client
                    .request(Method::POST, &format!("/hooks/{source}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("x-slack-request-timestamp", timestamp.to_string())
                    .header("x-slack-signature", sign(secret.as_bytes(), timestamp, body))
                    .body(body)
                    .send()
                    .await?;
                if !answer.status().is_success() {
                    bail!("the source answered {}", answer.status());
                }
                answer.bytes().await?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for sender in senders {
        latencies.extend(sender.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = client
        .call(Method::DELETE, &format!("/v1/sources/{source}"), None)
        .await;
    let _ = client
        .call(Method::DELETE, &format!("/v1/buses/{bus}?force=true"), None)
        .await;

    latencies.sort_unstable();
    let at = |p: f64| {
        latencies[((p / 100.0) * (latencies.len() - 1) as f64).round() as usize].as_secs_f64() * 1e3
    };
    println!(
        "switchyard bench-hooks: {} signed Slack slash commands, {} in flight",
        latencies.len(),
        args.concurrency
    );
    println!(
        "  acknowledged {:>8.0} requests/s",
        latencies.len() as f64 / elapsed
    );
    println!(
        "  ack latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        at(50.0),
        at(90.0),
        at(99.0),
        at(100.0)
    );
    Ok(())
}

/// A random hex digit for the throwaway signing secret.
fn random_nibble() -> u8 {
    let mut byte = [0u8; 1];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte);
    byte[0] & 0x0f
}
