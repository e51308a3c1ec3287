//! Changes to buses and subscriptions, shared by the REST API and the config file.
//!
//! Each change is written to the store first and applied to the catalog and the dispatcher
//! after it commits, all under the catalog's change lock, so that what publishers match against
//! and what the store holds never disagree for longer than one change.

use std::sync::Arc;

use switchyard_model::{BusSpec, SubscriptionSpec};
use switchyard_store::{BusRecord, StoreError, SubscriptionRecord};

use crate::App;

impl App {
    pub async fn put_bus(
        &self,
        name: &str,
        spec: BusSpec,
    ) -> Result<(BusRecord, bool), StoreError> {
        let _change = self.catalog.lock_changes().await;
        let (record, created) = self.store.put_bus(name, spec).await?;
        self.catalog.put_bus(record.clone());
        self.metrics.bus(name);
        Ok((record, created))
    }

    pub async fn delete_bus(&self, name: &str, force: bool) -> Result<(), StoreError> {
        let _change = self.catalog.lock_changes().await;
        let removed = self.store.delete_bus(name, force).await?;
        self.catalog.remove_bus(name);
        self.metrics.remove_bus(name);
        for subscription in removed {
            self.dispatcher.remove(subscription.id);
        }
        Ok(())
    }

    /// Takes effect at once: the next publish matches the new pattern, the next attempt uses the
    /// new destination and policy.
    pub async fn put_subscription(
        &self,
        bus: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<(Arc<SubscriptionRecord>, bool), StoreError> {
        let _change = self.catalog.lock_changes().await;
        let (record, created) = self.store.put_subscription(bus, name, spec).await?;
        let record = Arc::new(record);
        self.catalog.put_subscription(Arc::clone(&record))?;
        self.dispatcher.upsert(Arc::clone(&record));
        Ok((record, created))
    }

    pub async fn delete_subscription(&self, bus: &str, name: &str) -> Result<(), StoreError> {
        let _change = self.catalog.lock_changes().await;
        let record = self.store.delete_subscription(bus, name).await?;
        self.catalog.remove_subscription(bus, name);
        self.dispatcher.remove(record.id);
        Ok(())
    }
}
