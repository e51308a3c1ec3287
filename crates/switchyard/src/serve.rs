//! `switchyard serve`: settings from flags and the config file, the store, the listener, signals.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::ListenerExt;
use switchyard_dispatcher::{AddressPolicy, DEFAULT_DENY};
use switchyard_model::{AwsIdentity, Network};
use switchyard_secrets::{Keyring, MasterKey, SecretFiles};
use switchyard_server::{
    ApiConfig, ApiTokens, App, ConfigFile, HttpLimits, MIN_SCHEDULE_MINUTE_MS, MIN_TOKEN_LEN,
};
use switchyard_store::{EmbeddedStore, PostgresStore, Store, StoreOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8700]. Anything but loopback needs API tokens.
    #[arg(long)]
    listen: Option<String>,
    /// Where the embedded store keeps its file [default: ./switchyard-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Declarative config file (TOML): server settings, buses and subscriptions, applied at start.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Store to use: `embedded` (the default, a file in the data directory), or a PostgreSQL URL
    /// (`postgres://user@host:5432/db`) shared by any number of nodes.
    #[arg(long)]
    store: Option<String>,
    /// This node's name in subscription leases, on a shared store [default: HOST-PID-RANDOM].
    #[arg(long)]
    node_id: Option<String>,
    /// Milliseconds a node's claim on a subscription lasts without renewal: how soon other nodes
    /// take over the subscriptions of a node that died [default: 10000].
    #[arg(long)]
    lease_ms: Option<u64>,
    /// File of named API tokens with scopes (`[tokens.NAME]` tables with `token` and `scopes`:
    /// admin, publish, publish:BUS, read, metrics), or one token per line (each `admin`); when
    /// given, every /v1 call and /metrics need `Authorization: Bearer TOKEN`.
    #[arg(long)]
    api_tokens_file: Option<PathBuf>,
    /// A directory `file:` secrets may be read from (repeat the flag); without any, every
    /// `file:` secret reference is refused. The data directory and the master key never are.
    #[arg(long = "secret-files-dir", value_name = "DIR")]
    secret_files_dirs: Vec<PathBuf>,
    /// Largest event accepted, in bytes [default: 1048576].
    #[arg(long)]
    max_event_bytes: Option<usize>,
    /// Refuse a publish that already passed through this many deliveries [default: 8].
    #[arg(long)]
    max_hops: Option<u32>,
    /// Refuse a forwarded publish (one that came through a delivery) once the original event's
    /// trace has caused this many forwards per original event on this node [default: 100].
    #[arg(long)]
    max_forwards: Option<u32>,
    /// A network deliveries and OAuth token requests may go to (repeat the flag); without any,
    /// every network not denied.
    #[arg(long = "allow-destination-network", value_name = "CIDR")]
    allow_destination_networks: Vec<String>,
    /// A network deliveries and OAuth token requests may not go to (repeat the flag); replaces
    /// the default deny list: link-local 169.254.0.0/16 and fe80::/10 and the cloud metadata
    /// addresses (docs/destinations.md). 0.0.0.0/8 and :: are refused whatever the lists; IPv4
    /// inside IPv6 (::ffff:a.b.c.d, 64:ff9b::/96, 6to4) is checked as the IPv4 it carries.
    #[arg(long = "deny-destination-network", value_name = "CIDR")]
    deny_destination_networks: Vec<String>,
    /// switchyard's base URL as receivers reach it: the issuer of identity tokens, whose keys
    /// are at URL/.well-known/jwks.json [default: http://LISTEN, or https://LISTEN with TLS].
    #[arg(long)]
    public_url: Option<String>,
    /// The region of the ARNs the EventBridge API issues and of every event's `region`
    /// [default: us-east-1].
    #[arg(long)]
    aws_region: Option<String>,
    /// The account (12 digits) of the ARNs the EventBridge API issues and of every event's
    /// `account` [default: 000000000000].
    #[arg(long)]
    aws_account_id: Option<String>,
    /// For tests: how long a minute of a `rate(…)` schedule lasts, in ms, at least 100; cron
    /// schedules follow the real clock whatever it says [default: 60000].
    #[arg(long)]
    schedule_minute_ms: Option<u64>,
    /// Serve the Pub/Sub v1 gRPC API here, for Google's client libraries with
    /// `PUBSUB_EMULATOR_HOST` (its usual port is 8085: 127.0.0.1:8085). With --tls-cert it
    /// speaks TLS; off loopback it needs TLS and API tokens [default: off].
    #[arg(long)]
    pubsub_listen: Option<String>,
    /// Export a span per delivery attempt to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318)
    /// [default: off].
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Deliveries each subscription holds in memory; the rest wait in the store [default: 10000].
    #[arg(long)]
    lane_capacity: Option<usize>,
    /// Outbound HTTP connections all subscriptions together may hold; each busy subscription
    /// gets a fair share, so one stuck destination cannot take every socket [default: 256].
    #[arg(long)]
    max_outbound_connections: Option<usize>,
    /// Open inbound connections at most; past it, new ones are closed at once. Keep it and
    /// --max-outbound-connections below the open-file limit (`ulimit -n`) [default: 512].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Of --max-connections, the last this many serve only /healthz, /readyz and /metrics, so a
    /// flood of connections cannot blind the checks [default: 16].
    #[arg(long)]
    reserved_connections: Option<usize>,
    /// Seconds a client has to send a request's head; also how long a kept-alive connection may
    /// sit idle between requests [default: 10].
    #[arg(long)]
    http_header_timeout_s: Option<u64>,
    /// Bytes per second a request body must arrive at, at least, once its grace period is over
    /// (slower: 408) [default: 16384].
    #[arg(long)]
    http_body_min_rate: Option<u64>,
    /// Seconds a request body may take before the minimum rate applies [default: 10].
    #[arg(long)]
    http_body_grace_s: Option<u64>,
    /// Key file that seals secrets at rest [default: DATA_DIR/master.key, created with mode 0600].
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Seconds a publisher-chosen event id is remembered: a publish repeating it within the window
    /// is acknowledged but not delivered again [default: 86400].
    #[arg(long)]
    dedup_window_s: Option<u64>,
    /// Seconds to keep events and their attempt log once delivered [default: 3600].
    #[arg(long)]
    history_retention_s: Option<u64>,
    /// MiB of page cache the embedded store may hold in memory [default: 64].
    #[arg(long)]
    store_cache_mb: Option<usize>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// HTTPS on the listener: the API, webhook sources and metrics alike.
#[derive(clap::Args)]
struct TlsArgs {
    /// PEM file with the listener's certificate chain, its own certificate first; serves HTTPS
    /// (with --tls-key) [default: plain HTTP].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM file with the private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The listener's TLS settings from the flags or the file's `tls_cert` and `tls_key`; `None`
    /// for plain HTTP.
    fn server_config(
        self,
        settings: &switchyard_server::ServerSettings,
    ) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        let cert = self
            .tls_cert
            .or_else(|| settings.tls_cert.as_ref().map(PathBuf::from));
        let key = self
            .tls_key
            .or_else(|| settings.tls_key.as_ref().map(PathBuf::from));
        match (cert, key) {
            (Some(cert), Some(key)) => {
                Ok(Some(switchyard_server::tls::server_config(&cert, &key)?))
            }
            (None, None) => Ok(None),
            _ => bail!("HTTPS needs both tls_cert and tls_key (or --tls-cert and --tls-key)"),
        }
    }
}

/// Serves plain HTTP or HTTPS until the app's shutdown token is cancelled; off loopback, plain
/// HTTP is allowed but said to be readable by anyone on the network path.
async fn serve_on(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Arc<App>,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    match tls {
        Some(config) => {
            let listener = switchyard_server::tls::TlsListener::new(listener, config);
            switchyard_server::run(listener, app).await?;
        }
        None => {
            if !local.ip().is_loopback() {
                tracing::warn!(
                    "listening on {local} without TLS: API tokens, published events, webhook payloads and metrics \
                     cross the network in clear text. Give --tls-cert FILE --tls-key FILE, or put a TLS proxy in front"
                );
            }
            switchyard_server::run(listener, app).await?;
        }
    }
    Ok(())
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ConfigFile::parse(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => ConfigFile::default(),
    };
    let settings = &file.server;
    let tls = args.tls.server_config(settings)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen = args
        .listen
        .or_else(|| settings.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8700".into());
    let addr: SocketAddr = listen.parse().with_context(|| {
        format!("--listen {listen:?} must be an IP address and port, such as 127.0.0.1:8700")
    })?;
    // Bound first, so that the default public URL has the real port (`--listen 127.0.0.1:0`):
    // identity tokens name it as their issuer, and EventBridge bus targets publish to it.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let data_dir = args
        .data_dir
        .or_else(|| settings.data_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("switchyard-data"));
    let tokens_file = args
        .api_tokens_file
        .or_else(|| settings.api_tokens_file.as_ref().map(PathBuf::from));
    let api_tokens = match &tokens_file {
        Some(path) => read_tokens(path)?,
        None => ApiTokens::default(),
    };
    let pubsub = match args
        .pubsub_listen
        .or_else(|| settings.pubsub_listen.clone())
    {
        None => None,
        Some(text) => {
            let addr: SocketAddr = text.parse().with_context(|| {
                format!("--pubsub-listen {text:?} must be an IP address and port, such as 127.0.0.1:8085")
            })?;
            if !addr.ip().is_loopback() && (tls.is_none() || api_tokens.is_empty()) {
                bail!(
                    "refusing --pubsub-listen {addr}: off loopback the Pub/Sub API needs TLS (--tls-cert and --tls-key) and API tokens (--api-tokens-file), as the REST API does; or listen on 127.0.0.1:8085"
                );
            }
            Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--pubsub-listen)"))?,
            )
        }
    };
    if !addr.ip().is_loopback() && api_tokens.is_empty() {
        bail!(
            "refusing to listen on {addr} without API tokens: anyone who can reach it could change subscriptions. \
             Give --api-tokens-file FILE, or listen on 127.0.0.1"
        );
    }
    let short = api_tokens.short();
    if !addr.ip().is_loopback() && !short.is_empty() {
        bail!(
            "refusing to listen on {addr} with API tokens shorter than {MIN_TOKEN_LEN} characters ({}): they can be guessed. \
             Use long random tokens (e.g. `openssl rand -hex 24`)",
            short.join(", ")
        );
    }
    if api_tokens.legacy {
        tracing::warn!(
            "the API tokens file has one token per line: each is an admin token. Give each a name and only the scopes it needs ([tokens.NAME] with token and scopes; see docs/security.md)"
        );
    }
    let defaults = ApiConfig::default();
    let networks = |flag: &str, list: Vec<String>| -> anyhow::Result<Vec<Network>> {
        list.iter()
            .map(|text| Network::parse(text).map_err(|e| anyhow::anyhow!("{flag} {text:?}: {e}")))
            .collect()
    };
    let allow = listed(
        args.allow_destination_networks,
        settings.destination_allow.as_ref(),
    )
    .unwrap_or_default();
    let deny = listed(
        args.deny_destination_networks,
        settings.destination_deny.as_ref(),
    );
    let address_policy = match deny {
        None if allow.is_empty() => AddressPolicy::default(),
        None => AddressPolicy::new(
            networks("--allow-destination-network", allow)?,
            networks(
                "default deny",
                DEFAULT_DENY.iter().map(|s| s.to_string()).collect(),
            )?,
        ),
        Some(deny) => AddressPolicy::new(
            networks("--allow-destination-network", allow)?,
            networks("--deny-destination-network", deny)?,
        ),
    };
    let default_aws = AwsIdentity::default();
    let aws = AwsIdentity::new(
        args.aws_account_id
            .as_deref()
            .or(settings.aws_account_id.as_deref())
            .unwrap_or(&default_aws.account),
        args.aws_region
            .as_deref()
            .or(settings.aws_region.as_deref())
            .unwrap_or(&default_aws.region),
    )?;
    let schedule_minute_ms = args
        .schedule_minute_ms
        .or(settings.schedule_minute_ms)
        .unwrap_or(defaults.schedule_minute_ms);
    if schedule_minute_ms < MIN_SCHEDULE_MINUTE_MS {
        bail!(
            "--schedule-minute-ms {schedule_minute_ms} is too short: give at least {MIN_SCHEDULE_MINUTE_MS} (it is for tests; leave it out for real minutes)"
        );
    }
    let config = ApiConfig {
        aws,
        schedule_minute_ms,
        max_event_bytes: args
            .max_event_bytes
            .or(settings.max_event_bytes)
            .unwrap_or(defaults.max_event_bytes),
        api_tokens,
        address_policy: Arc::new(address_policy),
        lane_capacity: args.lane_capacity.unwrap_or(defaults.lane_capacity),
        max_outbound_connections: args
            .max_outbound_connections
            .or(settings.max_outbound_connections)
            .unwrap_or(defaults.max_outbound_connections)
            .max(1),
        http: HttpLimits {
            header_timeout: Duration::from_secs(
                args.http_header_timeout_s
                    .or(settings.http_header_timeout_s)
                    .map_or(defaults.http.header_timeout.as_secs(), |s| s.max(1)),
            ),
            body_min_rate: args
                .http_body_min_rate
                .or(settings.http_body_min_rate)
                .unwrap_or(defaults.http.body_min_rate)
                .max(1),
            body_grace: args
                .http_body_grace_s
                .or(settings.http_body_grace_s)
                .map_or(defaults.http.body_grace, Duration::from_secs),
            max_connections: args
                .max_connections
                .or(settings.max_connections)
                .unwrap_or(defaults.http.max_connections)
                .max(2),
            reserved_connections: args
                .reserved_connections
                .or(settings.reserved_connections)
                .unwrap_or(defaults.http.reserved_connections),
        },
        otlp_endpoint: args
            .otlp_endpoint
            .or_else(|| settings.otlp_endpoint.clone()),
        public_url: args
            .public_url
            .or_else(|| settings.public_url.clone())
            .unwrap_or_else(|| format!("{scheme}://{local}"))
            .trim_end_matches('/')
            .to_string(),
        max_hops: args
            .max_hops
            .or(settings.max_hops)
            .unwrap_or(defaults.max_hops),
        max_forwards: args
            .max_forwards
            .or(settings.max_forwards)
            .unwrap_or(defaults.max_forwards),
        node_id: args.node_id.unwrap_or_else(default_node_id),
        lease_ms: args.lease_ms.unwrap_or(defaults.lease_ms).max(300),
        ..defaults
    };
    let node_id = config.node_id.clone();
    let store_defaults = StoreOptions::default();
    let seconds = |flag: Option<u64>, file: Option<u64>, default_ms: u64| {
        flag.or(file).map_or(default_ms, |s| s.saturating_mul(1000))
    };
    let options = StoreOptions {
        history_retention_ms: seconds(
            args.history_retention_s,
            settings.history_retention_s,
            store_defaults.history_retention_ms,
        ),
        dedup_window_ms: seconds(
            args.dedup_window_s,
            settings.dedup_window_s,
            store_defaults.dedup_window_ms,
        ),
        cache_bytes: args
            .store_cache_mb
            .or(settings.store_cache_mb)
            .map_or(store_defaults.cache_bytes, |mb| mb.max(1) << 20),
    };
    let store_url = args.store.as_deref().or(settings.store.as_deref());
    let shared = store_url.is_some_and(|url| url != "embedded");
    let key_path = args
        .master_key_file
        .or_else(|| settings.master_key_file.as_ref().map(PathBuf::from));
    let key_path = match key_path {
        Some(path) => path,
        None if shared => bail!(
            "a shared store needs --master-key-file: every node must seal and open secrets with the same key file"
        ),
        None => data_dir.join("master.key"),
    };
    let secret_dirs =
        listed(args.secret_files_dirs, settings.secret_files_dirs.as_ref()).unwrap_or_default();
    let store = open_store(store_url, &data_dir, options).await?;
    let master_key = MasterKey::load_or_create(&key_path)
        .with_context(|| format!("master key {}", key_path.display()))?;
    let files = SecretFiles::new(&secret_dirs, &[data_dir.clone(), key_path.clone()])
        .context("--secret-files-dir")?;
    // The one shutdown mechanism, handed down: cancelling the token stops the server in order,
    // and every task it starts is on the tracker, which `switchyard_server::run` waits for.
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let app = App::start(
        store,
        config,
        Keyring::new(master_key, files),
        shutdown.clone(),
        tasks.clone(),
    )
    .await?;
    file.apply(&app).await?;
    if let Some(listener) = pubsub {
        let local = listener.local_addr()?;
        match &tls {
            Some(config) => {
                tracing::info!("Pub/Sub API listening on {local} (TLS)");
                let listener = switchyard_server::tls::TlsListener::new(
                    listener,
                    switchyard_server::tls::for_http2(config),
                );
                tasks.spawn(switchyard_server::pubsub::run(listener, Arc::clone(&app)));
            }
            None => {
                tracing::info!("Pub/Sub API listening on {local}");
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                tasks.spawn(switchyard_server::pubsub::run(listener, Arc::clone(&app)));
            }
        }
    }

    match store_url.filter(|_| shared) {
        Some(url) => tracing::info!(
            "switchyard listening on {scheme}://{local}, node {}, store {}",
            node_id,
            redact_password(url)
        ),
        None => tracing::info!(
            "switchyard listening on {scheme}://{local}, data in {}",
            data_dir.display()
        ),
    }
    let served = async {
        let served = serve_on(listener, tls, app).await;
        // Also when serving failed, so that the signal wait below ends.
        shutdown.cancel();
        served
    };
    let signalled = async {
        if shutdown
            .run_until_cancelled(shutdown_signal())
            .await
            .is_some()
        {
            shutdown.cancel();
        }
    };
    tokio::join!(served, signalled).0?;
    tracing::info!("switchyard stopped");
    Ok(())
}

/// The embedded store's file in the data directory (what `switchyard backup` writes too).
pub(crate) const STORE_FILE: &str = "switchyard.redb";

async fn open_store(
    url: Option<&str>,
    data_dir: &Path,
    options: StoreOptions,
) -> anyhow::Result<Arc<dyn Store>> {
    match url {
        None | Some("embedded") => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let store = EmbeddedStore::open(&data_dir.join(STORE_FILE), options)?;
            Ok(Arc::new(store))
        }
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PostgresStore::connect(url, options)
                .await
                .with_context(|| format!("cannot use the store at {}", redact_password(url)))?;
            Ok(Arc::new(store))
        }
        Some(other) => bail!(
            "--store {:?} is not a store this switchyard knows: use `embedded` or a postgres:// URL",
            redact_password(other)
        ),
    }
}

/// A store URL fit for a log line: `postgres://user:********@host/db`, or `password=********`
/// in a key=value connection string.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split_whitespace()
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => "password=********",
                _ => pair,
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:********@{host}")
        }
        _ => url.to_string(),
    }
}

/// `HOST-PID-XXXXXXXX`: readable in logs and lease tables, unique even for two processes of one host.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into());
    // The process id and the start time's sub-second part: unique on one host at one time.
    let nanos = switchyard_model::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{nanos:08x}", std::process::id())
}

/// A repeatable flag's values, or else the config file's list: `None` when neither says any.
fn listed<T: From<String>>(flags: Vec<T>, file: Option<&Vec<String>>) -> Option<Vec<T>> {
    match (flags, file) {
        (flags, _) if !flags.is_empty() => Some(flags),
        (_, Some(list)) => Some(list.iter().cloned().map(T::from).collect()),
        _ => None,
    }
}

fn read_tokens(path: &Path) -> anyhow::Result<ApiTokens> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read API tokens from {}", path.display()))?;
    ApiTokens::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing attempts in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_passwords_never_reach_a_log_line() {
        assert_eq!(
            redact_password("postgres://app:s3cret@db:5432/events"),
            "postgres://app:********@db:5432/events"
        );
        assert_eq!(
            redact_password("postgres://app@db/events"),
            "postgres://app@db/events"
        );
        assert_eq!(
            redact_password("host=db user=app password=s3cret dbname=events"),
            "host=db user=app password=******** dbname=events"
        );
    }
}
