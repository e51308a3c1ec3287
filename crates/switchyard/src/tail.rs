//! `switchyard tail BUS [--subscription NAME]`: follow a bus's events and attempt outcomes live.

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiClient, ClientArgs};

#[derive(clap::Args)]
pub(crate) struct TailArgs {
    bus: String,
    /// Show only the attempts of this subscription.
    #[arg(long)]
    subscription: Option<String>,
    /// Print the raw NDJSON records instead of one readable line each.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: TailArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let mut path = format!("/v1/buses/{}/tail", args.bus);
    if let Some(name) = &args.subscription {
        path.push_str(&format!("?subscription={name}"));
    }
    let mut response = client.send(Method::GET, &path, None).await?;
    eprintln!("tailing bus {} (Ctrl-C to stop)", args.bus);
    let mut pending = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("GET /v1/buses/{}/tail: the stream broke off", args.bus))?
    {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if args.json {
                print!("{text}");
            } else if let Ok(record) = serde_json::from_str::<Value>(&text) {
                println!("{}", readable(&record));
            }
        }
    }
    Ok(())
}

fn readable(record: &Value) -> String {
    let text = |key: &str| record[key].as_str().unwrap_or("").to_string();
    match record["kind"].as_str() {
        Some("published") => format!(
            "{}  published   {}  {} / {}  -> {} subscription(s)",
            text("at"),
            text("event_id"),
            text("source"),
            text("detail_type"),
            record["matched"]
        ),
        Some("attempted") => {
            let answer = record["status"]
                .as_u64()
                .map_or_else(|| text("class"), |s| s.to_string());
            let mut line = format!(
                "{}  {}  #{}  {}  {}  {} ms  {}",
                text("at"),
                text("subscription"),
                record["attempt"],
                text("event_id"),
                answer,
                record["duration_ms"],
                text("outcome")
            );
            if let Some(reason) = record["reason"].as_str() {
                line.push_str(&format!(" ({reason})"));
            }
            if let Some(error) = record["error"].as_str() {
                line.push_str(&format!(": {error}"));
            }
            line
        }
        Some("lagged") => format!(
            "... missed {} records (the tail fell behind)",
            record["missed"]
        ),
        _ => record.to_string(),
    }
}
