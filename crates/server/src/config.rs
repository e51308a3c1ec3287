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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub store: Option<String>,
    pub api_tokens_file: Option<String>,
    pub max_event_bytes: Option<usize>,
    pub max_hops: Option<u32>,
    pub max_outbound_connections: Option<usize>,
    pub max_connections: Option<usize>,
    pub reserved_connections: Option<usize>,
    pub http_header_timeout_s: Option<u64>,
    pub http_body_min_rate: Option<u64>,
    pub http_body_grace_s: Option<u64>,
    pub max_forwards: Option<u32>,
    pub history_retention_s: Option<u64>,
    pub dedup_window_s: Option<u64>,
    pub store_cache_mb: Option<usize>,
    pub master_key_file: Option<String>,
    /// Directories `file:` secrets may be read from (none: every `file:` reference refused).
    pub secret_files_dirs: Option<Vec<String>>,
    pub public_url: Option<String>,
    pub otlp_endpoint: Option<String>,
    /// PEM certificate chain and key for HTTPS on the listener (both or neither).
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Networks deliveries may go to (empty: any not denied).
    pub destination_allow: Option<Vec<String>>,
    /// Networks deliveries may not go to; replaces the default (link-local and cloud metadata).
    pub destination_deny: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
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
    pub spec: BusSpec,
    pub subscriptions: BTreeMap<String, SubscriptionSpec>,
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
