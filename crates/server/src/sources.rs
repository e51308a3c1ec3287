//! Webhook sources as the server runs them: each compiled with its secret, ready to verify.
//!
//! The store keeps a source's configuration without its secret, and the secret as a reference
//! (`sealed:...` under the master key, or `file:...`); this registry holds the compiled
//! [`Source`] with the secret resolved, in memory only. Must not: put a secret in a record, an
//! answer, an error or a log line.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use switchyard_secrets::{MasterKey, SecretRef};
use switchyard_sources::{Source, SourceSpec, parse_source_spec};
use switchyard_store::{SourceRecord, Store};

use crate::ServerError;

/// A source ready to receive webhooks.
pub struct LiveSource {
    pub record: SourceRecord,
    /// The configuration as stored: without the secret.
    pub spec: SourceSpec,
    pub source: Source,
}

impl LiveSource {
    /// Compiles a stored source, resolving its secret reference with the master key.
    pub fn compile(record: SourceRecord, key: &MasterKey) -> Result<LiveSource, ServerError> {
        let spec =
            parse_source_spec(&record.spec).map_err(|e| ServerError::Invalid(e.to_string()))?;
        let reference = SecretRef::parse(&record.secret)
            .map_err(|e| ServerError::Invalid(format!("secret reference: {e}")))?;
        let secret = reference
            .resolve(key)
            .map_err(|e| ServerError::Invalid(format!("cannot resolve the secret: {e}")))?;
        let mut with_secret = spec.clone();
        with_secret.set_secret(secret);
        let source = Source::new(&record.name, &with_secret)
            .map_err(|e| ServerError::Invalid(e.to_string()))?;
        Ok(LiveSource {
            record,
            spec,
            source,
        })
    }
}

#[derive(Default)]
pub struct SourceRegistry {
    sources: RwLock<BTreeMap<String, Arc<LiveSource>>>,
}

impl SourceRegistry {
    /// Loads every stored source. One that no longer compiles (a missing secret file, a
    /// rotated-away key) is left out with an error in the log, rather than stopping the server.
    pub async fn load(store: &dyn Store, key: &MasterKey) -> Result<SourceRegistry, ServerError> {
        let registry = SourceRegistry::default();
        for record in store.list_sources().await? {
            let name = record.name.clone();
            match LiveSource::compile(record, key) {
                Ok(live) => {
                    registry.insert(live);
                }
                Err(error) => tracing::error!(source = %name, %error, "webhook source not loaded"),
            }
        }
        Ok(registry)
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveSource>> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<LiveSource>> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn insert(&self, live: LiveSource) -> Arc<LiveSource> {
        let live = Arc::new(live);
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(live.record.name.clone(), Arc::clone(&live));
        live
    }

    pub fn remove(&self, name: &str) {
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}
