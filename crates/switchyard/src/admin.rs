//! Commands a person runs by hand against a server: apply a config file, publish, dead letters.

use std::path::PathBuf;

use anyhow::Context;
use reqwest::Method;
use switchyard_server::ConfigFile;

use crate::client::{ApiClient, ClientArgs};

#[derive(clap::Args)]
pub(crate) struct ApplyArgs {
    /// Config file (TOML) whose buses and subscriptions to create or update.
    file: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

/// Creates or updates every connection, bus (with its subscriptions and archives) and source in
/// the file through the API, as `serve --config` does at start; prints one line per change.
pub(crate) async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let file = ConfigFile::parse(&text).with_context(|| format!("in {}", args.file.display()))?;
    // Connections and sources are sent as written: their parsed form shows inline secrets as
    // `********`, which the API rightly refuses.
    let raw: toml::Table = text
        .parse()
        .with_context(|| format!("in {}", args.file.display()))?;
    if raw.contains_key("server") {
        anyhow::bail!(
            "{}: the [server] table configures `switchyard serve` itself, which `apply` cannot change on a running server; \
             remove it from this file, or give the file to `serve --config`",
            args.file.display()
        );
    }
    let client = ApiClient::new(&args.client)?;
    // In the order things need each other: subscriptions their connections, sources their bus.
    put_tables(&client, &raw, "connections", "connection").await?;
    for (bus, declared) in &file.buses {
        client
            .call(
                Method::PUT,
                &format!("/v1/buses/{bus}"),
                Some(serde_json::to_string(&declared.spec)?),
            )
            .await?;
        println!("bus {bus}: applied");
        for (name, spec) in &declared.subscriptions {
            let path = format!("/v1/buses/{bus}/subscriptions/{name}");
            let answer = client
                .call(Method::PUT, &path, Some(serde_json::to_string(spec)?))
                .await?;
            println!("subscription {bus}/{name}: applied");
            for warning in answer["warnings"].as_array().into_iter().flatten() {
                eprintln!(
                    "warning: {}",
                    warning["message"].as_str().unwrap_or_default()
                );
            }
        }
        for (name, spec) in &declared.archives {
            let path = format!("/v1/buses/{bus}/archives/{name}");
            client
                .call(Method::PUT, &path, Some(serde_json::to_string(spec)?))
                .await?;
            println!("archive {bus}/{name}: applied");
        }
    }
    put_tables(&client, &raw, "sources", "source").await?;
    Ok(())
}

/// PUTs each `[TABLE.NAME]` of the file, as written, to `/v1/TABLE/NAME`.
async fn put_tables(
    client: &ApiClient,
    raw: &toml::Table,
    table: &str,
    noun: &str,
) -> anyhow::Result<()> {
    let Some(entries) = raw.get(table).and_then(toml::Value::as_table) else {
        return Ok(());
    };
    for (name, spec) in entries {
        client
            .call(
                Method::PUT,
                &format!("/v1/{table}/{name}"),
                Some(serde_json::to_string(spec)?),
            )
            .await?;
        println!("{noun} {name}: applied");
    }
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct PublishArgs {
    bus: String,
    /// The event (or `{"entries": [...]}`) as JSON, `@FILE`, or `-` for standard input.
    event: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let body = match args.event.as_str() {
        "-" => std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?,
        other => crate::json_argument(other)?,
    };
    let client = ApiClient::new(&args.client)?;
    let answer = client
        .call(
            Method::POST,
            &format!("/v1/buses/{}/events", args.bus),
            Some(body),
        )
        .await?;
    println!("{answer}");
    if answer["failed_entry_count"].as_u64().unwrap_or(0) > 0 {
        anyhow::bail!("some events were refused");
    }
    Ok(())
}

#[derive(clap::Args)]
pub(crate) struct DeadLetterArgs {
    bus: String,
    subscription: String,
    #[command(subcommand)]
    action: DeadLetterAction,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Subcommand)]
enum DeadLetterAction {
    /// Print dead letters, one JSON object a line, oldest first; says on stderr when there are
    /// more, and the --after that shows them.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Start after this dead letter id (what the previous page said).
        #[arg(long)]
        after: Option<String>,
    },
    /// Send dead letters again: all of them, or the ids given (ids that are not dead letters of
    /// the subscription are named, and make the exit status 1).
    Redrive { ids: Vec<String> },
    /// Delete every dead letter of the subscription; on a terminal, asks first.
    Purge {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) async fn dead_letters(args: DeadLetterArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.client)?;
    let base = format!(
        "/v1/buses/{}/subscriptions/{}/dead-letters",
        args.bus, args.subscription
    );
    match args.action {
        DeadLetterAction::List { limit, mut after } => {
            let mut shown = 0;
            let mut more = false;
            while shown < limit {
                let page_size = (limit - shown).min(1000);
                let cursor = after
                    .as_ref()
                    .map_or(String::new(), |a| format!("&after={a}"));
                let page = client
                    .call(
                        Method::GET,
                        &format!("{base}?limit={page_size}{cursor}"),
                        None,
                    )
                    .await?;
                for item in page["items"].as_array().into_iter().flatten() {
                    println!("{item}");
                    shown += 1;
                }
                match page["next"].as_str() {
                    Some(next) => {
                        after = Some(next.to_string());
                        more = true;
                    }
                    None => {
                        more = false;
                        break;
                    }
                }
            }
            if let (true, Some(after)) = (more, after) {
                // A full page has a cursor whether or not anything follows it: look.
                let peek = client
                    .call(Method::GET, &format!("{base}?limit=1&after={after}"), None)
                    .await?;
                if peek["items"]
                    .as_array()
                    .is_some_and(|items| !items.is_empty())
                {
                    eprintln!("more dead letters: list them with --after {after}");
                }
            }
        }
        DeadLetterAction::Redrive { ids } => {
            let unknown = if ids.is_empty() {
                Vec::new()
            } else {
                unknown_dead_letters(&client, &base, &ids).await?
            };
            let known: Vec<&String> = ids.iter().filter(|id| !unknown.contains(id)).collect();
            if ids.is_empty() || !known.is_empty() {
                let body = if ids.is_empty() {
                    "{}".to_string()
                } else {
                    serde_json::json!({ "ids": known }).to_string()
                };
                println!(
                    "{}",
                    client
                        .call(Method::POST, &format!("{base}/redrive"), Some(body))
                        .await?
                );
            }
            if !unknown.is_empty() {
                anyhow::bail!(
                    "not dead letters of {}/{}, so not redriven: {}",
                    args.bus,
                    args.subscription,
                    unknown.join(", ")
                );
            }
        }
        DeadLetterAction::Purge { yes } => {
            if !yes && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!(
                    "purge every dead letter of {}/{}? They cannot be redriven after. [y/N] ",
                    args.bus, args.subscription
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    anyhow::bail!("not purged");
                }
            }
            println!("{}", client.call(Method::DELETE, &base, None).await?);
        }
    }
    Ok(())
}

/// Which of `ids` are not dead letters of the subscription.
async fn unknown_dead_letters(
    client: &ApiClient,
    base: &str,
    ids: &[String],
) -> anyhow::Result<Vec<String>> {
    let letters = client.list_all(base).await?;
    let known: std::collections::HashSet<&str> =
        letters.iter().filter_map(|l| l["id"].as_str()).collect();
    let unknown: std::collections::BTreeSet<&String> = ids
        .iter()
        .filter(|id| !known.contains(id.as_str()))
        .collect();
    Ok(unknown.into_iter().cloned().collect())
}
