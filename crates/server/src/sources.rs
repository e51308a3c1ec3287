//! Webhook sources as the server runs them: each compiled with its secret, ready to verify.
//!
//! The store keeps a source as a document: its configuration without its secret, and the secret
//! as a reference (`sealed:...` under the master key, or `file:...`); this registry holds the compiled
//! [`Source`] with the secret resolved, in memory only. Must not: put a secret in a record, an
//! answer, an error or a log line.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use switchyard_secrets::{Keyring, SecretRef};
use switchyard_sources::{Source, SourceSpec, parse_source_spec};
use switchyard_store::{DocumentKind, DocumentRecord, Store};

use crate::ServerError;

/// A source's document body.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSource {
    /// The configuration, without the secret.
    pub(crate) spec: serde_json::Value,
    /// `sealed:...` or `file:...`; never the secret itself.
    pub(crate) secret: String,
}

/// A source ready to receive webhooks.
pub(crate) struct LiveSource {
    pub(crate) record: DocumentRecord,
    /// The configuration as stored: without the secret.
    pub(crate) spec: SourceSpec,
    /// The stored reference to the secret, kept when a change leaves the secret out.
    pub(crate) secret: String,
    pub(crate) source: Source,
}

impl LiveSource {
    /// Compiles a stored source, resolving its secret reference with the master key.
    pub(crate) fn compile(
        record: DocumentRecord,
        key: &Keyring,
    ) -> Result<LiveSource, ServerError> {
        let stored: StoredSource = serde_json::from_str(&record.body).map_err(|e| {
            ServerError::Invalid(format!(
                "stored source {:?} is unreadable: {e}",
                record.name
            ))
        })?;
        let spec = parse_source_spec(&stored.spec.to_string())
            .map_err(|e| ServerError::Invalid(e.to_string()))?;
        let reference = SecretRef::parse(&stored.secret)
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
            secret: stored.secret,
            source,
        })
    }

    /// [`LiveSource::compile`] on the blocking pool: a `file:` secret is read from disk, which
    /// must not stall the runtime's workers.
    pub(crate) async fn compile_off_runtime(
        record: DocumentRecord,
        key: &Arc<Keyring>,
    ) -> Result<LiveSource, ServerError> {
        let key = Arc::clone(key);
        crate::cpu::blocking(move || LiveSource::compile(record, &key)).await
    }
}

#[derive(Default)]
pub(crate) struct SourceRegistry {
    sources: RwLock<BTreeMap<String, Arc<LiveSource>>>,
}

impl SourceRegistry {
    /// Loads every stored source. One that no longer compiles (a missing secret file, a
    /// rotated-away key) is left out with an error in the log, rather than stopping the server.
    pub(crate) async fn load(
        store: &dyn Store,
        key: &Arc<Keyring>,
    ) -> Result<SourceRegistry, ServerError> {
        let registry = SourceRegistry::default();
        registry.refresh(store, key).await?;
        Ok(registry)
    }

    /// Takes in the sources as the store holds them now (changes made on other nodes): compiles
    /// those created or changed since, drops those deleted.
    pub(crate) async fn refresh(
        &self,
        store: &dyn Store,
        key: &Arc<Keyring>,
    ) -> Result<(), ServerError> {
        let stored = store.list_documents(DocumentKind::Source).await?;
        let names: std::collections::HashSet<&str> =
            stored.iter().map(|d| d.name.as_str()).collect();
        for live in self.list() {
            if !names.contains(live.record.name.as_str()) {
                self.remove(&live.record.name);
            }
        }
        for record in stored {
            let current = self.get(&record.name);
            if current.is_some_and(|c| {
                c.record.updated_ms == record.updated_ms && c.record.body == record.body
            }) {
                continue;
            }
            let name = record.name.clone();
            match LiveSource::compile_off_runtime(record, key).await {
                Ok(live) => {
                    self.insert(live);
                }
                Err(error) => tracing::error!(source = %name, %error, "webhook source not loaded"),
            }
        }
        Ok(())
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<LiveSource>> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn list(&self) -> Vec<Arc<LiveSource>> {
        self.sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn insert(&self, live: LiveSource) -> Arc<LiveSource> {
        let live = Arc::new(live);
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(live.record.name.clone(), Arc::clone(&live));
        live
    }

    pub(crate) fn remove(&self, name: &str) {
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}
