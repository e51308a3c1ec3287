//! The in-memory catalog: every bus with its subscriptions and its compiled matcher.
//!
//! The publish path reads it on every request, so it is built for reading: a bus's index is an
//! immutable `Arc<BusIndex>`, rebuilt off to the side on every change and swapped in under a
//! write lock held only for the pointer swap. Publishing never waits for a matcher build.
//!
//! Invariant: the catalog follows the store. Changes go to the store first and are applied here
//! only once committed, under the change lock, so the two cannot disagree for long or diverge.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use switchyard_pattern::{EventError, Matcher, MatcherBuilder, Pattern};
use switchyard_store::{BusRecord, Store, StoreError, SubscriptionRecord};

/// A bus's subscriptions by name, each with its compiled pattern (`None`: every event).
type Compiled = BTreeMap<String, (Arc<SubscriptionRecord>, Option<Pattern>)>;

/// A bus as the publish path sees it.
pub struct BusIndex {
    pub record: BusRecord,
    /// By name, with the compiled pattern (`None`: every event).
    subscriptions: Compiled,
    matcher: Matcher<u64>,
    /// Subscriptions without a pattern: they take every event without consulting the matcher.
    match_all: Vec<u64>,
}

impl BusIndex {
    fn build(record: BusRecord, subscriptions: Compiled) -> BusIndex {
        let mut builder = MatcherBuilder::new();
        let mut match_all = Vec::new();
        for (subscription, pattern) in subscriptions.values() {
            match pattern {
                Some(pattern) => builder.add(subscription.id, pattern),
                None => match_all.push(subscription.id),
            }
        }
        BusIndex {
            record,
            subscriptions,
            matcher: builder.build(),
            match_all,
        }
    }

    /// Ids of the subscriptions an event (its envelope's JSON text) goes to.
    pub fn route(&self, envelope: &str) -> Result<Vec<u64>, EventError> {
        let mut matched = if self.matcher.is_empty() {
            Vec::new()
        } else {
            self.matcher.matches(envelope)?
        };
        matched.extend_from_slice(&self.match_all);
        Ok(matched)
    }

    pub fn subscription(&self, name: &str) -> Option<&Arc<SubscriptionRecord>> {
        self.subscriptions.get(name).map(|(s, _)| s)
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &Arc<SubscriptionRecord>> {
        self.subscriptions.values().map(|(s, _)| s)
    }
}

pub struct Catalog {
    buses: RwLock<HashMap<String, Arc<BusIndex>>>,
    /// Serialises changes, so two concurrent edits of one bus cannot swap in each other's stale
    /// index, and the store and the catalog see changes in the same order.
    changes: tokio::sync::Mutex<()>,
}

fn compile(subscription: &SubscriptionRecord) -> Result<Option<Pattern>, StoreError> {
    subscription
        .spec
        .compile_pattern()
        .map_err(|e| StoreError::Corrupt {
            table: "subscriptions",
            detail: format!(
                "stored pattern of {}/{} no longer compiles: {e}",
                subscription.bus, subscription.name
            ),
        })
}

impl Catalog {
    pub async fn load(store: &dyn Store) -> Result<Catalog, StoreError> {
        let mut grouped: HashMap<String, Compiled> = HashMap::new();
        for subscription in store.list_subscriptions(None).await? {
            let pattern = compile(&subscription)?;
            grouped
                .entry(subscription.bus.clone())
                .or_default()
                .insert(subscription.name.clone(), (Arc::new(subscription), pattern));
        }
        let mut buses = HashMap::new();
        for record in store.list_buses().await? {
            let subscriptions = grouped.remove(&record.name).unwrap_or_default();
            buses.insert(
                record.name.clone(),
                Arc::new(BusIndex::build(record, subscriptions)),
            );
        }
        Ok(Catalog {
            buses: RwLock::new(buses),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<BusIndex>>> {
        self.buses
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<BusIndex>>> {
        self.buses
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held by whoever changes a bus or subscription, from the store write to the swap here.
    pub async fn lock_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    pub fn bus(&self, name: &str) -> Option<Arc<BusIndex>> {
        self.read().get(name).cloned()
    }

    pub fn buses(&self) -> Vec<Arc<BusIndex>> {
        let mut buses: Vec<_> = self.read().values().cloned().collect();
        buses.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        buses
    }

    pub fn all_subscriptions(&self) -> Vec<Arc<SubscriptionRecord>> {
        self.read()
            .values()
            .flat_map(|bus| bus.subscriptions().cloned().collect::<Vec<_>>())
            .collect()
    }

    pub fn put_bus(&self, record: BusRecord) {
        let subscriptions = self
            .bus(&record.name)
            .map(|b| b.subscriptions.clone())
            .unwrap_or_default();
        let index = Arc::new(BusIndex::build(record, subscriptions));
        self.write().insert(index.record.name.clone(), index);
    }

    pub fn remove_bus(&self, name: &str) {
        self.write().remove(name);
    }

    pub fn put_subscription(
        &self,
        subscription: Arc<SubscriptionRecord>,
    ) -> Result<(), StoreError> {
        let pattern = compile(&subscription)?;
        self.rebuild(&subscription.bus.clone(), |subscriptions| {
            subscriptions.insert(subscription.name.clone(), (subscription, pattern));
        });
        Ok(())
    }

    pub fn remove_subscription(&self, bus: &str, name: &str) {
        self.rebuild(bus, |subscriptions| {
            subscriptions.remove(name);
        });
    }

    fn rebuild(&self, bus: &str, change: impl FnOnce(&mut Compiled)) {
        let Some(current) = self.bus(bus) else { return };
        let mut subscriptions = current.subscriptions.clone();
        change(&mut subscriptions);
        // The build happens here, outside the lock; publishers keep using `current` meanwhile.
        let index = Arc::new(BusIndex::build(current.record.clone(), subscriptions));
        self.write().insert(bus.to_string(), index);
    }
}
