//! `switchyard stats [BUS]`: one table of every subscription (of every bus, or of BUS), worst
//! first, from the stats the REST API answers; `--watch` prints it again every few seconds.

use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiClient, ClientArgs};

#[derive(clap::Args)]
pub(crate) struct StatsArgs {
    /// Only this bus's subscriptions.
    bus: Option<String>,
    /// Print the table again every this many seconds, until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
    watch: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    loop {
        let rows = collect(&client, args.bus.as_deref()).await?;
        let table = render(rows);
        match args.watch {
            None => {
                print!("{table}");
                return Ok(());
            }
            Some(seconds) => {
                // Clear the screen only for a person watching it.
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                    print!("\u{1b}[2J\u{1b}[H");
                }
                print!("{table}");
                println!();
                tokio::time::sleep(Duration::from_secs(seconds.max(1))).await;
            }
        }
    }
}

async fn collect(client: &ApiClient, only: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let buses: Vec<String> = match only {
        Some(bus) => vec![bus.to_string()],
        None => client
            .list_all("/v1/buses")
            .await?
            .iter()
            .filter_map(|b| b["name"].as_str().map(str::to_string))
            .collect(),
    };
    let mut rows = Vec::new();
    for bus in buses {
        for subscription in client
            .list_all(&format!("/v1/buses/{bus}/subscriptions"))
            .await?
        {
            let name = subscription["name"]
                .as_str()
                .context("a subscription without a name")?;
            rows.push(
                client
                    .call(
                        Method::GET,
                        &format!("/v1/buses/{bus}/subscriptions/{name}/stats"),
                        None,
                    )
                    .await?,
            );
        }
    }
    Ok(rows)
}

/// Worst first: an open circuit, then dead letters, then the oldest backlog, then the largest.
fn render(mut rows: Vec<Value>) -> String {
    let number = |row: &Value, field: &str| row[field].as_f64().unwrap_or(0.0);
    let rank = |row: &Value| match row["circuit"].as_str() {
        Some("open") => 0,
        Some("half_open") => 1,
        _ => 2,
    };
    rows.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then(number(b, "dead").total_cmp(&number(a, "dead")))
            .then(number(b, "oldest_pending_age_s").total_cmp(&number(a, "oldest_pending_age_s")))
            .then(number(b, "pending").total_cmp(&number(a, "pending")))
    });
    let header = [
        "BUS",
        "SUBSCRIPTION",
        "PENDING",
        "OLDEST_S",
        "DELIVERED",
        "FAILED",
        "DEAD",
        "CIRCUIT",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            let text = |field: &str| match &row[field] {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            [
                text("bus"),
                text("subscription"),
                text("pending"),
                format!("{:.1}", number(row, "oldest_pending_age_s")),
                text("delivered"),
                text("failed_attempts"),
                text("dead"),
                text("circuit"),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index > 0 {
                out.push_str("  ");
            }
            // Names left, figures right.
            if index < 2 || index == 7 {
                out.push_str(&format!("{cell:<width$}"));
            } else {
                out.push_str(&format!("{cell:>width$}"));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for row in &cells {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}
