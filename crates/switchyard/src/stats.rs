//! `switchyard stats [BUS]`: one table of every subscription (of every bus, or of BUS), worst
//! first as the server ranks them (`GET /v1/stats?fresh=true`, the console's overview order);
//! `--watch` prints it again every few seconds.

use std::time::Duration;

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

/// The most rows the server answers in one overview.
const MAX_ROWS: u32 = 1_000;

/// Every subscription's row of `GET /v1/stats?fresh=true`, worst first as the server ranks
/// them (the console's overview order), with counts read now rather than sampled.
async fn collect(client: &ApiClient, only: Option<&str>) -> anyhow::Result<Vec<Value>> {
    if let Some(bus) = only {
        switchyard_model::validate_name("bus", bus)?;
    }
    let bus = only.map(|b| format!("&bus={b}")).unwrap_or_default();
    let answer = client
        .call(
            Method::GET,
            &format!("/v1/stats?fresh=true&limit={MAX_ROWS}{bus}"),
            None,
        )
        .await?;
    if let Some(more) = answer["more"].as_u64().filter(|&n| n > 0) {
        eprintln!("{more} more subscriptions, better off than these, are not shown");
    }
    Ok(answer["items"].as_array().cloned().unwrap_or_default())
}

fn render(rows: Vec<Value>) -> String {
    let number = |row: &Value, field: &str| row[field].as_f64().unwrap_or(0.0);
    let header = [
        "BUS",
        "SUBSCRIPTION",
        "PROBLEM",
        "PENDING",
        "OLDEST_S",
        "DELIVERED",
        "FAILED",
        "DEAD",
        "CIRCUIT",
    ];
    let cells: Vec<[String; 9]> = rows
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
                text("problem"),
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
            if index < 3 || index == 8 {
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
