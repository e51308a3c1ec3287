//! The declarative config file (TOML): server settings, buses with their subscriptions and
//! archives, sources and connections.
//!
//! A subscription in the file has exactly the fields of the REST API's PUT body. To keep one
//! definition of those fields, the file is read as TOML, converted to JSON, and parsed by the
//! same functions the API uses; errors name the file's key (`buses.orders.subscriptions.billing`).
//!
//! Applying a file creates or updates what it declares and leaves everything else alone.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use switchyard_destination::{ConnectionSpec, parse_connection_spec};
use switchyard_model::{
    ArchiveSpec, BusSpec, ModelError, SubscriptionSpec, parse_archive_spec, parse_bus_spec,
    parse_subscription_spec, validate_name,
};
use switchyard_sources::{SourceSpec, parse_source_spec};

use crate::{App, ServerError};

/// `[server]`: what `serve` flags can also say. Flags win over the file.
///
/// Most keys are the flag of the same name (`max_hops` is `--max-hops`), with the same default;
/// `None` (the key left out) leaves the setting to the flag or that default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// IP address and port to listen on, default `127.0.0.1:8700`; anything but loopback
    /// needs API tokens.
    pub listen: Option<String>,
    /// Directory of the embedded store's file and of the default master key file, default
    /// `./switchyard-data`.
    pub data_dir: Option<String>,
    /// `embedded` (the default: a file in the data directory), or a `postgres://` URL of a
    /// database shared by any number of nodes.
    pub store: Option<String>,
    /// File of named API tokens with scopes, or of one admin token per line; with no file here
    /// or by flag the API is open, which only a loopback listener allows.
    pub api_tokens_file: Option<String>,
    /// Largest event accepted, in bytes; default 1048576 (1 MiB).
    pub max_event_bytes: Option<usize>,
    /// A publish that already passed through this many deliveries is refused (the loop guard);
    /// default 8.
    pub max_hops: Option<u32>,
    /// Outbound HTTP connections all subscriptions together may hold, each busy one getting a
    /// fair share; default 256, at least 1.
    pub max_outbound_connections: Option<usize>,
    /// Open inbound connections at most, past which new ones are closed at once; default 512,
    /// at least 2.
    pub max_connections: Option<usize>,
    /// Of `max_connections`, the last this many serve only `/healthz`, `/readyz` and
    /// `/metrics`, so a flood of connections cannot blind the checks; default 16.
    pub reserved_connections: Option<usize>,
    /// Seconds a client has to send a request's head, and a kept-alive connection may sit idle
    /// between requests; default 10, at least 1.
    pub http_header_timeout_s: Option<u64>,
    /// Bytes per second a request body must arrive at, at least, once its grace period is over
    /// (slower: 408); default 16384, at least 1.
    pub http_body_min_rate: Option<u64>,
    /// Seconds a request body may take before `http_body_min_rate` applies; default 10.
    pub http_body_grace_s: Option<u64>,
    /// Forwarded publishes (those that came through a delivery) this node accepts per original
    /// event, counted by trace id, so a loop's fan-out stays linear; default 100.
    pub max_forwards: Option<u32>,
    /// Seconds delivered events and their attempt log are kept; default 3600.
    pub history_retention_s: Option<u64>,
    /// Seconds a publisher-chosen event id is remembered: a publish repeating it within the
    /// window is acknowledged but not delivered again; default 86400.
    pub dedup_window_s: Option<u64>,
    /// MiB of page cache the embedded store may hold in memory; default 64, at least 1.
    pub store_cache_mb: Option<usize>,
    /// Key file that seals secrets at rest; default `DATA_DIR/master.key`, created with mode
    /// 0600. A shared store needs it given, the same file on every node.
    pub master_key_file: Option<String>,
    /// Directories `file:` secrets may be read from (none: every `file:` reference refused).
    pub secret_files_dirs: Option<Vec<String>>,
    /// switchyard's base URL as receivers reach it: the issuer of identity tokens, whose keys
    /// are at `URL/.well-known/jwks.json`; default `http://LISTEN` (`https://` with TLS).
    pub public_url: Option<String>,
    /// The region of EventBridge ARNs and of every event's `region`; default `us-east-1`.
    pub aws_region: Option<String>,
    /// The 12-digit account of EventBridge ARNs and of every event's `account`; default
    /// `000000000000`.
    pub aws_account_id: Option<String>,
    /// How long a `rate(…)` minute lasts, in ms, so that tests need not wait minutes; default
    /// 60000, at least 100. Cron schedules always follow the real clock.
    pub schedule_minute_ms: Option<u64>,
    /// Where the Pub/Sub v1 gRPC API listens (`127.0.0.1:8085`, the emulator's port, for
    /// `PUBSUB_EMULATOR_HOST`); off when absent. Over TLS with `tls_cert`; off loopback it
    /// needs TLS and API tokens.
    pub pubsub_listen: Option<String>,
    /// OTLP/HTTP collector (`http://127.0.0.1:4318`) to export a span per delivery attempt to;
    /// with none here or by flag, nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// PEM certificate chain and key for HTTPS on the listener (both or neither).
    pub tls_cert: Option<String>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<String>,
    /// Networks deliveries may go to (empty: any not denied).
    pub destination_allow: Option<Vec<String>>,
    /// Networks deliveries may not go to; replaces the default (link-local and cloud metadata).
    pub destination_deny: Option<Vec<String>>,
}

/// A declarative config file, parsed and checked by the API's own parsers but not yet applied:
/// what `serve --config` applies at start, and what `switchyard apply` and `switchyard lint`
/// read.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    /// The `[server]` table; every setting `None` when the file has none.
    pub server: ServerSettings,
    /// Buses by name, in name order.
    pub buses: BTreeMap<String, DeclaredBus>,
    /// Webhook sources by name; their secrets are best written as `file:/path` references.
    pub sources: BTreeMap<String, SourceSpec>,
    /// Connections by name, applied before the subscriptions that use them.
    pub connections: BTreeMap<String, ConnectionSpec>,
}

/// A bus as the file declares it: `[buses.NAME]` with `[buses.NAME.subscriptions.SUB]` and
/// `[buses.NAME.archives.ARCHIVE]` tables.
#[derive(Debug, Clone, Default)]
pub struct DeclaredBus {
    /// The bus's own fields: the `[buses.NAME]` table without its two sub-tables.
    pub spec: BusSpec,
    /// The bus's subscriptions by name, in name order.
    pub subscriptions: BTreeMap<String, SubscriptionSpec>,
    /// The bus's archives by name, in name order.
    pub archives: BTreeMap<String, ArchiveSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    buses: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    sources: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    connections: BTreeMap<String, serde_json::Value>,
}

impl ConfigFile {
    /// Parses a config file's TOML text. Every declaration is checked as the API checks its
    /// body; the first error names its key (`buses.orders.subscriptions.billing`). What needs a
    /// running server (that a source's bus exists) is checked only by [`ConfigFile::apply`].
    pub fn parse(text: &str) -> Result<ConfigFile, ServerError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ServerError::Config(e.to_string()))?;
        let json = serde_json::to_value(&table).map_err(|e| ServerError::Config(e.to_string()))?;
        let raw: RawFile =
            serde_json::from_value(json).map_err(|e| ServerError::Config(e.to_string()))?;
        let mut buses = BTreeMap::new();
        for (bus, mut fields) in raw.buses {
            let context = format!("buses.{bus}");
            let entry = |error: ModelError| ServerError::ConfigEntry {
                context: context.clone(),
                error,
            };
            validate_name("bus", &bus).map_err(entry)?;
            let mut table = |key: &str| match fields.remove(key) {
                None => Ok(serde_json::Map::new()),
                Some(serde_json::Value::Object(map)) => Ok(map),
                Some(_) => Err(entry(ModelError::Invalid(format!(
                    "\"{key}\" must be a table"
                )))),
            };
            let (subscriptions, archives) = (table("subscriptions")?, table("archives")?);
            let spec =
                parse_bus_spec(&serde_json::Value::Object(fields).to_string()).map_err(entry)?;
            let subscriptions =
                parse_entries(&bus, "subscription", subscriptions, parse_subscription_spec)?;
            let archives = parse_entries(&bus, "archive", archives, parse_archive_spec)?;
            buses.insert(
                bus,
                DeclaredBus {
                    spec,
                    subscriptions,
                    archives,
                },
            );
        }
        let mut sources = BTreeMap::new();
        for (name, body) in raw.sources {
            let context = format!("sources.{name}");
            validate_name("source", &name).map_err(|error| ServerError::ConfigEntry {
                context: context.clone(),
                error,
            })?;
            let spec = parse_source_spec(&body.to_string())
                .map_err(|e| ServerError::Config(format!("{context}: {e}")))?;
            sources.insert(name, spec);
        }
        let mut connections = BTreeMap::new();
        for (name, body) in raw.connections {
            let context = format!("connections.{name}");
            validate_name("connection", &name).map_err(|error| ServerError::ConfigEntry {
                context: context.clone(),
                error,
            })?;
            let spec = parse_connection_spec(&body.to_string())
                .map_err(|e| ServerError::Config(format!("{context}: {e}")))?;
            connections.insert(name, spec);
        }
        Ok(ConfigFile {
            server: raw.server,
            buses,
            sources,
            connections,
        })
    }

    /// Creates or updates every bus, subscription and source the file declares.
    pub async fn apply(&self, app: &Arc<App>) -> Result<(), ServerError> {
        for (name, spec) in &self.connections {
            app.put_connection(name, spec.clone()).await?;
        }
        for (bus, declared) in &self.buses {
            app.put_bus(bus, declared.spec.clone()).await?;
            for (name, spec) in &declared.subscriptions {
                app.put_subscription(bus, name, spec.clone()).await?;
            }
            for (name, spec) in &declared.archives {
                app.put_archive(bus, name, spec.clone()).await?;
            }
        }
        for (name, spec) in &self.sources {
            app.put_source(name, spec.clone())
                .await
                .map_err(|error| match error {
                    ServerError::Invalid(message) => {
                        ServerError::Config(format!("sources.{name}: {message}"))
                    }
                    other => other,
                })?;
        }
        Ok(())
    }
}

/// Parses the `[buses.BUS.KINDs.NAME]` tables of one bus with the API's own parser.
fn parse_entries<T>(
    bus: &str,
    kind: &str,
    declared: serde_json::Map<String, serde_json::Value>,
    parse: impl Fn(&str) -> Result<T, ModelError>,
) -> Result<BTreeMap<String, T>, ServerError> {
    let mut parsed = BTreeMap::new();
    for (name, body) in declared {
        let entry = |error: ModelError| ServerError::ConfigEntry {
            context: format!("buses.{bus}.{kind}s.{name}"),
            error,
        };
        validate_name(kind, &name).map_err(entry)?;
        let value = parse(&body.to_string()).map_err(entry)?;
        parsed.insert(name, value);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_buses_and_subscriptions_with_api_defaults() {
        let file = ConfigFile::parse(
            r#"
            [server]
            listen = "127.0.0.1:8700"

            [buses.orders]
            description = "shop orders"

            [buses.orders.subscriptions.billing]
            pattern = { source = ["shop.orders"], "detail-type" = ["Order Placed"] }
            destination = { url = "http://127.0.0.1:9000/hook", headers = { x-team = "billing" } }
            retry = { max_attempts = 10 }
            "#,
        )
        .unwrap();
        let bus = &file.buses["orders"];
        assert_eq!(bus.spec.description.as_deref(), Some("shop orders"));
        let billing = &bus.subscriptions["billing"];
        assert_eq!(billing.retry.max_attempts, 10);
        assert_eq!(billing.retry.min_backoff_ms, 1_000);
        assert_eq!(billing.max_concurrency, 16);
        assert!(
            billing
                .pattern
                .as_ref()
                .unwrap()
                .get()
                .contains("Order Placed")
        );
        assert_eq!(file.server.listen.as_deref(), Some("127.0.0.1:8700"));
    }

    #[test]
    fn errors_name_the_key() {
        let err = ConfigFile::parse(
            r#"
            [buses.orders.subscriptions.billing]
            destination = { url = "ftp://nope" }
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("buses.orders.subscriptions.billing"), "{err}");
        assert!(err.contains("http://"), "{err}");
        let err = ConfigFile::parse("[buses.orders]\ncolour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("buses.orders") && err.contains("colour"),
            "{err}"
        );
        assert!(ConfigFile::parse("[serv]\n").is_err());
    }
}
