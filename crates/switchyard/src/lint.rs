//! `switchyard lint [CONFIG_FILE]`: delivery loops found before they run, in a config file
//! (offline, nothing is contacted) or on a running server (`GET /v1/lint`).
//!
//! Exit status: 0 when there is no finding, 1 when there are findings, 2 when the check itself
//! failed (unreadable file, server not reached), so scripts and CI can tell the three apart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::Value;
use switchyard_server::ConfigFile;
use switchyard_server::lint::{Origin, of_config};

use crate::client::{ApiClient, ClientArgs};

#[derive(clap::Args)]
pub(crate) struct LintArgs {
    /// Config file (TOML) to check offline; without it, the running server at --url is asked.
    config: Option<PathBuf>,
    /// With CONFIG_FILE: the address the server listens on, if not the file's
    /// [default: the file's `listen`, else 127.0.0.1:8700].
    #[arg(long)]
    listen: Option<String>,
    /// With CONFIG_FILE: the server's public URL, if not the file's
    /// [default: the file's `public_url`, else http://LISTEN].
    #[arg(long)]
    public_url: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// A finding as both the server and the offline check report it.
struct Finding {
    kind: String,
    subscriptions: Vec<String>,
    message: String,
}

impl Finding {
    fn from_json(value: &Value) -> Finding {
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        Finding {
            kind: text("kind"),
            subscriptions: value["subscriptions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            message: text("message"),
        }
    }
}

pub(crate) fn main(args: LintArgs) -> ExitCode {
    match findings(args) {
        Ok(findings) if findings.is_empty() => {
            println!("no delivery loops found");
            ExitCode::SUCCESS
        }
        Ok(findings) => {
            for finding in &findings {
                println!(
                    "{}: {}\n  {}",
                    finding.kind,
                    finding.subscriptions.join(", "),
                    finding.message
                );
            }
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn findings(args: LintArgs) -> anyhow::Result<Vec<Finding>> {
    let Some(path) = &args.config else {
        let client = ApiClient::new(&args.client)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let answer = runtime.block_on(client.call(Method::GET, "/v1/lint", None))?;
        let findings = answer["findings"]
            .as_array()
            .context("the server's answer to GET /v1/lint has no findings list")?;
        return Ok(findings.iter().map(Finding::from_json).collect());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = ConfigFile::parse(&text).with_context(|| format!("in {}", path.display()))?;
    let listen = args
        .listen
        .or_else(|| file.server.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8700".into());
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("listen address {listen:?} must be an IP address and port, such as 127.0.0.1:8700")
    })?;
    let public_url = args
        .public_url
        .or_else(|| file.server.public_url.clone())
        .unwrap_or_else(|| format!("http://{listen}"));
    let origin = Origin::new(Some(addr), &public_url);
    Ok(of_config(&file, &origin)
        .into_iter()
        .map(|f| Finding {
            kind: f.kind.to_string(),
            subscriptions: f.subscriptions,
            message: f.message,
        })
        .collect())
}
