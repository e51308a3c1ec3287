//! `switchyard sink`: a throwaway HTTP endpoint that prints what it receives.
//!
//! For the quickstart and for trying subscriptions by hand: it answers 200, or the status named
//! by a `/status/{code}` path, so a person can watch deliveries, failures and dead letters
//! without writing a receiver.

use std::net::SocketAddr;

use anyhow::Context;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

#[derive(clap::Args)]
pub(crate) struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
}

pub(crate) async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // On stderr, as serve's own line: stdout is what the sink receives.
    eprintln!(
        "sink listening on http://{}, answers 200, or CODE for /status/CODE",
        listener.local_addr()?
    );
    let app = axum::Router::new().fallback(receive);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn receive(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = uri
        .path()
        .strip_prefix("/status/")
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    let switchyard: Vec<String> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("switchyard-"))
        .map(|(name, value)| format!("{}={}", name.as_str(), value.to_str().unwrap_or("?")))
        .collect();
    println!(
        "{method} {uri} -> {} [{}]\n  {}",
        status.as_u16(),
        switchyard.join(" "),
        String::from_utf8_lossy(&body)
    );
    status
}
