//! `switchyard replay start|status|cancel`: replays from the command line, with a progress bar
//! while one runs.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::client::{ApiClient, ClientArgs};

#[derive(clap::Args)]
pub(crate) struct ReplayArgs {
    #[command(subcommand)]
    action: ReplayAction,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Subcommand)]
enum ReplayAction {
    /// Replay an archive's events of a time range to the bus's subscriptions (all, or those given
    /// with --subscription), then follow its progress until it ends (unless --detach).
    Start {
        name: String,
        #[arg(long)]
        bus: String,
        #[arg(long)]
        archive: String,
        /// Start of the range, RFC 3339 (2026-11-24T10:00:00Z).
        #[arg(long)]
        from: String,
        /// End of the range (exclusive), RFC 3339; defaults to now.
        #[arg(long)]
        to: Option<String>,
        /// A subscription to replay to; repeat for several. Default: every subscription of the bus.
        #[arg(long = "subscription")]
        subscriptions: Vec<String>,
        /// Print the replay as started and return, instead of following it.
        #[arg(long)]
        detach: bool,
    },
    /// Show a replay; with --follow, follow its progress until it ends.
    Status {
        name: String,
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a running replay.
    Cancel { name: String },
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    match args.action {
        ReplayAction::Start {
            name,
            bus,
            archive,
            from,
            to,
            subscriptions,
            detach,
        } => {
            let to = to.unwrap_or_else(|| {
                switchyard_model::format_rfc3339_ms(switchyard_model::now_ms() + 1)
            });
            let mut body = serde_json::json!({
                "name": name, "bus": bus, "archive": archive, "from": from, "to": to,
            });
            if !subscriptions.is_empty() {
                body["subscriptions"] = serde_json::json!(subscriptions);
            }
            let started = client
                .call(Method::POST, "/v1/replays", Some(body.to_string()))
                .await?;
            if detach {
                println!("{started}");
                return Ok(());
            }
            follow(&client, &name).await
        }
        ReplayAction::Status { name, follow: true } => follow(&client, &name).await,
        ReplayAction::Status { name, .. } => {
            println!("{}", client.call(Method::GET, &path(&name), None).await?);
            Ok(())
        }
        ReplayAction::Cancel { name } => {
            println!("{}", client.call(Method::DELETE, &path(&name), None).await?);
            Ok(())
        }
    }
}

fn path(name: &str) -> String {
    format!("/v1/replays/{name}")
}

/// Polls the replay and draws its progress on standard error until it ends; prints the final
/// state on standard output, and fails unless the replay completed.
async fn follow(client: &ApiClient, name: &str) -> anyhow::Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = Instant::now();
    loop {
        let replay = client.call(Method::GET, &path(name), None).await?;
        let state = replay["state"].as_str().unwrap_or("unknown").to_string();
        // On a terminal the bar redraws in place; in a log, a line every few seconds is enough.
        if terminal {
            eprint!("\r{}", bar(&replay));
            let _ = std::io::stderr().flush();
        } else if last_line.elapsed() >= Duration::from_secs(5) || state != "running" {
            eprintln!("{}", bar(&replay));
            last_line = Instant::now();
        }
        if state != "running" {
            if terminal {
                eprintln!();
            }
            println!("{replay}");
            if state != "completed" {
                anyhow::bail!("replay {name} ended {state}");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `[##########----------]  50%  500/1000 events  2000 deliveries  running`
fn bar(replay: &Value) -> String {
    const WIDTH: usize = 30;
    let progress = replay["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
    let filled = (progress * WIDTH as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%  {}/{} events  {} deliveries  {}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        progress * 100.0,
        replay["events_replayed"],
        replay["events_total"],
        replay["deliveries_created"],
        replay["state"].as_str().unwrap_or("unknown"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_shows_progress_and_counts() {
        let replay = serde_json::json!({
            "progress": 0.5, "events_replayed": 5, "events_total": 10,
            "deliveries_created": 7, "state": "running"
        });
        let line = bar(&replay);
        assert!(
            line.starts_with(&format!("[{}{}]", "#".repeat(15), "-".repeat(15))),
            "{line}"
        );
        assert!(
            line.contains(" 50%  5/10 events  7 deliveries  running"),
            "{line}"
        );
    }
}
