//! The `switchyard` binary: the command line over the server, store and dispatcher crates.
//!
//! This is the only crate that uses `anyhow`: errors end here, as a message for a person.

mod bench;
mod serve;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A self-hosted event bus with durable push delivery."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: REST API, publishing and delivery.
    Serve(serve::ServeArgs),
    /// Drive a running server with batched publishes into a local sink and report publish rate,
    /// delivered rate and publish-to-delivery latency.
    Bench(bench::BenchArgs),
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
    match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    })
}
