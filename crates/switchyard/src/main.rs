//! The `switchyard` binary: the command line over the server, store and dispatcher crates.
//!
//! This is the only crate that uses `anyhow`: errors end here, as a message for a person.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program: what it prints is what the user asked for"
)]

mod admin;
mod backup;
mod bench;
mod bench_hooks;
mod bench_match;
mod client;
mod lint;
mod replay;
mod serve;
mod sink;
mod stats;
mod tail;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A self-hosted event bus with durable push delivery.",
    after_help = "Commands that talk to a running server take --url URL (or SWITCHYARD_URL, default \
                  http://127.0.0.1:8700) and --api-token-file FILE (or SWITCHYARD_API_TOKEN_FILE), \
                  before or after the command's name: see `switchyard COMMAND --help`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    leading: client::LeadingClientArgs,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Built-in workloads of `bench-match`.
#[derive(Clone, Copy, ValueEnum)]
enum MatchWorkload {
    Adversarial,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: REST API, publishing and delivery.
    Serve(Box<serve::ServeArgs>),
    /// Follow a bus's published events and attempt outcomes live.
    Tail(tail::TailArgs),
    /// One table of every subscription (or BUS's): pending, oldest pending age, delivered,
    /// failed, dead, circuit; worst first. --watch prints it again every few seconds.
    Stats(stats::StatsArgs),
    /// Create or update the connections, sources, buses, subscriptions and archives of a config
    /// file on a running server (a [server] table is refused: it is `serve`'s).
    Apply(admin::ApplyArgs),
    /// Publish an event (or a batch) to a bus of a running server.
    Publish(admin::PublishArgs),
    /// List, redrive or purge a subscription's dead letters.
    DeadLetters(admin::DeadLetterArgs),
    /// Start, follow or cancel a replay of a bus's archived events.
    Replay(replay::ReplayArgs),
    /// Write a consistent copy of a running server's embedded store to DIR/switchyard.redb
    /// (admin token; a PostgreSQL store is backed up with pg_dump).
    Backup(backup::BackupArgs),
    /// Drive a running server with batched publishes into a local sink and report publish rate,
    /// delivered rate and publish-to-delivery latency.
    Bench(bench::BenchArgs),
    /// Does PATTERN match EVENT? Both are JSON text, or @FILE to read one from a file. Exit
    /// status 0 on a match, 1 without one, 2 on an error.
    TestPattern { pattern: String, event: String },
    /// Measure the matcher alone: events/s for a file of patterns over a file of events (JSON lines),
    /// or for a built-in workload.
    BenchMatch {
        #[arg(long, required_unless_present = "workload")]
        patterns: Option<std::path::PathBuf>,
        #[arg(long, required_unless_present = "workload")]
        events: Option<std::path::PathBuf>,
        /// `adversarial`: events with large arrays of objects against patterns over many of their
        /// fields, and a long string under a wildcard (instead of --patterns and --events).
        #[arg(long, value_enum, conflicts_with_all = ["patterns", "events"])]
        workload: Option<MatchWorkload>,
        /// Array elements per adversarial event.
        #[arg(long, default_value_t = 5000, requires = "workload")]
        elements: usize,
    },
    /// Measure how fast a webhook source acknowledges signed Slack slash commands under load.
    BenchHooks(bench_hooks::BenchHooksArgs),
    /// Find delivery loops (subscriptions delivering round a cycle of this server's own buses)
    /// in CONFIG_FILE, or on the running server without one. Exit status 1 when there are some.
    Lint(lint::LintArgs),
    /// Run a throwaway endpoint that prints every request it receives (for trying things out).
    Sink(sink::SinkArgs),
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::prelude::*;
    // RUST_LOG takes `info`, `switchyard_dispatcher=debug`, ... (no regex, so no heavy filter).
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    let registry = tracing_subscriber::registry().with(filter);
    // Colours only for a person at a terminal: never in a redirected log, nor with NO_COLOR
    // (https://no-color.org) set to anything.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colours)
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

/// A command-line JSON argument: the text itself, or `@path` for a file's contents.
fn json_argument(argument: &str) -> anyhow::Result<String> {
    match argument.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}")),
        None => Ok(argument.to_string()),
    }
}

/// Exit status 0 on a match and 1 without one, as `grep` does, so that scripts can test it; 2 on
/// an error.
fn test_pattern(pattern: &str, event: &str) -> std::process::ExitCode {
    let evaluated = (|| -> anyhow::Result<bool> {
        let pattern = switchyard_pattern::Pattern::parse(&json_argument(pattern)?)
            .context("invalid pattern")?;
        pattern
            .matches(&json_argument(event)?)
            .context("invalid event")
    })();
    match evaluated {
        Ok(matches) => {
            println!("{}", serde_json::json!({ "matches": matches }));
            std::process::ExitCode::from(if matches { 0 } else { 1 })
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Some(name) = not_a_client(&cli.command)
        && (cli.leading.url.is_some() || cli.leading.api_token_file.is_some())
    {
        eprintln!(
            "error: `{name}` talks to no server: --url and --api-token-file are for the commands \
             that do (publish, apply, tail, …); see `switchyard {name} --help`"
        );
        return std::process::ExitCode::from(2);
    }
    // Their own exit statuses: 1 means findings (no match), so an error is 2.
    let command = match cli.command {
        Command::Lint(args) => return lint::main(args),
        Command::TestPattern { pattern, event } => return test_pattern(&pattern, &event),
        other => other,
    };
    match run(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line, without a backtrace.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The name of a command that is no client of a running server, which the client flags
/// (accepted anywhere, being global) must not silently ignore.
fn not_a_client(command: &Command) -> Option<&'static str> {
    match command {
        Command::Serve(_) => Some("serve"),
        Command::Sink(_) => Some("sink"),
        Command::TestPattern { .. } => Some("test-pattern"),
        Command::BenchMatch { .. } => Some("bench-match"),
        Command::Tail(_)
        | Command::Stats(_)
        | Command::Apply(_)
        | Command::Publish(_)
        | Command::DeadLetters(_)
        | Command::Replay(_)
        | Command::Backup(_)
        | Command::Bench(_)
        | Command::BenchHooks(_)
        | Command::Lint(_) => None,
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    if let Command::BenchMatch {
        patterns,
        events,
        workload,
        elements,
    } = &command
    {
        let report = match (workload, patterns, events) {
            (Some(MatchWorkload::Adversarial), _, _) => bench_match::run_adversarial(*elements)?,
            (None, Some(patterns), Some(events)) => bench_match::run(patterns, events)?,
            _ => anyhow::bail!("give --patterns and --events, or --workload"),
        };
        println!("{report}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Sink(args) => sink::run(args).await,
            Command::Apply(args) => admin::apply(args).await,
            Command::Tail(args) => tail::run(args).await,
            Command::Stats(args) => stats::run(args).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Backup(args) => backup::run(args).await,
            Command::BenchHooks(args) => bench_hooks::run(args).await,
            Command::Publish(args) => admin::publish(args).await,
            Command::DeadLetters(args) => admin::dead_letters(args).await,
            Command::TestPattern { .. } | Command::BenchMatch { .. } | Command::Lint(_) => Ok(()),
        }
    })
}
