//! slack-jobs: an example worker that a switchyard subscription pushes Slack slash commands to.
//!
//! The flow (docs/slack.md walks through it): Slack POSTs `/jobs deploy api` to switchyard's
//! source `POST /hooks/{name}`, which verifies the signature, answers Slack at once ("Working on
//! it...") and publishes a `slash_command` event; a subscription pushes that event's envelope to
//! this worker's `POST /jobs`. The worker answers 200 at once (switchyard's delivery is done),
//! runs the slow job in the background, then posts the result to the command's `response_url`
//! and, with a bot token, to `chat.postMessage`.
//!
//! What it must not do: read the bot token from an environment variable or the command line
//! (both leak through `ps`, `/proc` and crash reports; it comes from `--bot-token-file`), log
//! the token, or post to a `response_url` outside `--response-url-prefix` (the URL is data from
//! a request, and an open relay for arbitrary POSTs would be a gift to anyone who can publish).
//!
//! Delivery is at least once, so the same event may arrive twice: ids of recent events are
//! remembered and a repeat is acknowledged without running the job again.

#![allow(
    clippy::disallowed_methods,
    reason = "a worker outside the server: its client calls Slack, not subscribers, and its job tasks end with the process"
)]

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest simulated job: the example's jobs are minutes at most, and an unbounded sleep from a
/// flag typo would look like a hung worker.
const MAX_JOB_MS: u64 = 600_000;
/// Recent event ids kept for de-duplication.
const REMEMBERED_IDS: usize = 4_096;

#[derive(Debug, Parser)]
#[command(about = "Runs the slow job behind a Slack slash command, as pushed by switchyard")]
struct Args {
    /// Address to listen on (`127.0.0.1:0` picks a free port and logs it).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// How long the simulated job takes, in milliseconds (0 to 600000).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(0..=MAX_JOB_MS))]
    job_duration_ms: u64,
    /// File with the Slack bot token (`xoxb-...`); when given, each result is also posted with
    /// `chat.postMessage` to the command's channel. Never pass the token itself.
    #[arg(long)]
    bot_token_file: Option<PathBuf>,
    /// Slack Web API base URL (a test points it at a fake Slack).
    #[arg(long, default_value = "https://slack.com/api")]
    slack_api_url: String,
    /// A command's `response_url` must start with this; Slack's all do.
    #[arg(long, default_value = "https://hooks.slack.com/")]
    response_url_prefix: String,
    /// Jobs running at once; past this the worker answers 503 and switchyard retries later.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_jobs: u32,
}

/// The bot token; its `Debug` is redacted so it cannot reach a log by accident.
struct BotToken(String);

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotToken(<redacted>)")
    }
}

struct App {
    client: reqwest::Client,
    job_duration: Duration,
    token: Option<BotToken>,
    post_message_url: String,
    response_url_prefix: String,
    jobs: Arc<Semaphore>,
    seen: Mutex<Seen>,
}

/// A bounded set of recent event ids, oldest forgotten first.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// True if `id` is new (and remembers it).
    fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == REMEMBERED_IDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    fn forget(&mut self, id: &str) {
        self.ids.remove(id);
        self.order.retain(|kept| kept != id);
    }
}

/// The part of switchyard's envelope this worker reads.
#[derive(Debug, Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: SlashCommand,
}

/// The slash command's form fields, as the `slack` source publishes them.
#[derive(Debug, Deserialize)]
struct SlashCommand {
    command: String,
    #[serde(default)]
    text: String,
    response_url: String,
    channel_id: String,
    user_id: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    // reqwest is built without a default TLS provider: the process picks ring, as switchyard does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = match &args.bot_token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    let api = reqwest::Url::parse(&args.slack_api_url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .with_context(|| {
            format!(
                "--slack-api-url {:?} is not an http(s) URL",
                args.slack_api_url
            )
        })?;
    let app = Arc::new(App {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?,
        job_duration: Duration::from_millis(args.job_duration_ms),
        token,
        post_message_url: format!("{}/chat.postMessage", api.as_str().trim_end_matches('/')),
        response_url_prefix: args.response_url_prefix,
        jobs: Arc::new(Semaphore::new(args.max_jobs as usize)),
        seen: Mutex::new(Seen::default()),
    });
    let router = Router::new()
        .route("/jobs", post(accept_job))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Arc::clone(&app));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(
        bot_token = app.token.is_some(),
        job_ms = args.job_duration_ms,
        "slack-jobs listening on http://{address}"
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

fn read_token(path: &Path) -> anyhow::Result<BotToken> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the bot token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "the bot token file {} must hold the token alone (xoxb-...)",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                "the bot token file is readable by other users; chmod 600 it"
            );
        }
    }
    Ok(BotToken(token.to_string()))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Takes one delivery: checks it, answers at once, and leaves the job to a background task.
/// A 4xx means the subscription sends the wrong events (switchyard dead-letters it for a
/// person to see); 503 means "busy, retry later".
async fn accept_job(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("not a slash-command event: {e}")}),
            );
        }
    };
    if envelope.detail_type != "slash_command" {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": format!(
                "detail-type {:?} is not slash_command; the subscription's pattern should select only slash commands",
                envelope.detail_type
            )}),
        );
    }
    if !envelope
        .detail
        .response_url
        .starts_with(&app.response_url_prefix)
    {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("response_url is not under {}", app.response_url_prefix)}),
        );
    }
    let new = app
        .seen
        .lock()
        .map(|mut seen| seen.insert(&envelope.id))
        .unwrap_or(true);
    if !new {
        tracing::info!(event = %envelope.id, "repeated delivery; the job already runs");
        return answer(
            StatusCode::OK,
            json!({"accepted": envelope.id, "duplicate": true}),
        );
    }
    let Ok(permit) = Arc::clone(&app.jobs).try_acquire_owned() else {
        // Not taken after all: the retry must run it.
        if let Ok(mut seen) = app.seen.lock() {
            seen.forget(&envelope.id);
        }
        let mut response = answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "all job slots are busy"}),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return response;
    };
    tracing::info!(event = %envelope.id, command = %envelope.detail.command, "job accepted");
    let id = envelope.id.clone();
    tokio::spawn(run_job(app, envelope, permit));
    answer(StatusCode::OK, json!({"accepted": id}))
}

/// The slow part: the simulated job, then the result to Slack.
async fn run_job(app: Arc<App>, envelope: Envelope, _permit: OwnedSemaphorePermit) {
    let command = &envelope.detail;
    tokio::time::sleep(app.job_duration).await;
    let text = format!(
        "`{} {}` for <@{}> is done (took {:.1} s).",
        command.command,
        command.text,
        command.user_id,
        app.job_duration.as_secs_f64()
    );

    // Slack's response_url takes a message for the command's channel, without any token.
    let sent = app
        .client
        .post(&command.response_url)
        .json(&json!({"response_type": "in_channel", "text": text}))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            tracing::info!(event = %envelope.id, "result posted to response_url");
        }
        Ok(r) => {
            tracing::warn!(event = %envelope.id, status = r.status().as_u16(), "response_url refused the result");
        }
        Err(e) => tracing::warn!(event = %envelope.id, error = %e, "cannot reach response_url"),
    }

    let Some(token) = &app.token else { return };
    let sent = app
        .client
        .post(&app.post_message_url)
        .bearer_auth(&token.0)
        .json(&json!({"channel": command.channel_id, "text": text}))
        .send()
        .await;
    // The Web API answers 200 with {"ok": false, "error": "..."} for most failures.
    match sent {
        Ok(r) => match r.json::<serde_json::Value>().await {
            Ok(body) if body["ok"] == true => {
                tracing::info!(event = %envelope.id, channel = %command.channel_id, "result posted with chat.postMessage");
            }
            Ok(body) => tracing::warn!(
                event = %envelope.id,
                error = %body["error"].as_str().unwrap_or("unknown"),
                "chat.postMessage failed"
            ),
            Err(e) => {
                tracing::warn!(event = %envelope.id, error = %e, "chat.postMessage answered no JSON")
            }
        },
        Err(e) => tracing::warn!(event = %envelope.id, error = %e, "cannot reach the Slack API"),
    }
}
