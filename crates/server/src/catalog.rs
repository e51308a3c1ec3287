//! The in-memory catalog: every bus with its subscriptions, its archives and its compiled matcher.
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
use switchyard_store::{ArchiveRecord, BusRecord, Store, StoreError, SubscriptionRecord};

/// Records of one kind on a bus by name, each with its compiled pattern (`None`: every event).
type Compiled<R> = BTreeMap<String, (Arc<R>, Option<Pattern>)>;

/// What a pattern of a bus belongs to: one matcher serves both, so an event is parsed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Subscription(u64),
    Archive(u64),
}

/// Where one event goes: ids of the subscriptions it is delivered to and the archives that keep it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Routes {
    pub(crate) subscriptions: Vec<u64>,
    pub(crate) archives: Vec<u64>,
}

/// A bus as the publish path sees it.
pub(crate) struct BusIndex {
    pub(crate) record: BusRecord,
    subscriptions: Compiled<SubscriptionRecord>,
    archives: Compiled<ArchiveRecord>,
    matcher: Matcher<Target>,
    /// Targets without a pattern: they take every event without consulting the matcher.
    match_all: Vec<Target>,
}

impl BusIndex {
    fn build(
        record: BusRecord,
        subscriptions: Compiled<SubscriptionRecord>,
        archives: Compiled<ArchiveRecord>,
    ) -> BusIndex {
        let mut builder = MatcherBuilder::new();
        let mut match_all = Vec::new();
        // A disabled subscription (EventBridge's DisableRule) stays in the catalog, so it keeps
        // its lane and id, but takes no new event; nor does one that is only a schedule.
        let targets = subscriptions
            .values()
            .filter(|(s, _)| s.spec.takes_events())
            .map(|(s, p)| (Target::Subscription(s.id), p))
            .chain(archives.values().map(|(a, p)| (Target::Archive(a.id), p)));
        for (target, pattern) in targets {
            match pattern {
                Some(pattern) => builder.add(target, pattern),
                None => match_all.push(target),
            }
        }
        BusIndex {
            record,
            subscriptions,
            archives,
            matcher: builder.build(),
            match_all,
        }
    }

    /// Where an event (its envelope's JSON text) goes.
    pub(crate) fn route(&self, envelope: &str) -> Result<Routes, EventError> {
        let mut matched = if self.matcher.is_empty() {
            Vec::new()
        } else {
            self.matcher.matches(envelope)?
        };
        matched.extend_from_slice(&self.match_all);
        let mut routes = Routes::default();
        for target in matched {
            match target {
                Target::Subscription(id) => routes.subscriptions.push(id),
                Target::Archive(id) => routes.archives.push(id),
            }
        }
        Ok(routes)
    }

    pub(crate) fn archive(&self, name: &str) -> Option<&Arc<ArchiveRecord>> {
        self.archives.get(name).map(|(a, _)| a)
    }

    pub(crate) fn archives(&self) -> impl Iterator<Item = &Arc<ArchiveRecord>> {
        self.archives.values().map(|(a, _)| a)
    }

    pub(crate) fn subscription(&self, name: &str) -> Option<&Arc<SubscriptionRecord>> {
        self.subscriptions.get(name).map(|(s, _)| s)
    }

    pub(crate) fn subscriptions(&self) -> impl Iterator<Item = &Arc<SubscriptionRecord>> {
        self.subscriptions.values().map(|(s, _)| s)
    }
}

pub(crate) struct Catalog {
    buses: RwLock<HashMap<String, Arc<BusIndex>>>,
    /// Serialises changes, so two concurrent edits of one bus cannot swap in each other's stale
    /// index, and the store and the catalog see changes in the same order.
    changes: tokio::sync::Mutex<()>,
}

fn compile(subscription: &SubscriptionRecord) -> Result<Option<Pattern>, StoreError> {
    subscription
        .spec
        .compile_pattern()
        .map_err(|e| no_longer_compiles("subscriptions", &subscription.bus, &subscription.name, e))
}

fn compile_archive(archive: &ArchiveRecord) -> Result<Option<Pattern>, StoreError> {
    archive
        .spec
        .compile_pattern()
        .map_err(|e| no_longer_compiles("archives", &archive.bus, &archive.name, e))
}

fn no_longer_compiles(
    table: &'static str,
    bus: &str,
    name: &str,
    error: switchyard_model::ModelError,
) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: format!("stored pattern of {bus}/{name} no longer compiles: {error}"),
    }
}

impl Catalog {
    pub(crate) async fn load(store: &dyn Store) -> Result<Catalog, StoreError> {
        let (buses, _) = Self::read_store(store, &HashMap::new()).await?;
        Ok(Catalog {
            buses: RwLock::new(buses),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Takes in what the store holds now: how a node follows changes other nodes made. Buses
    /// whose records did not change keep their index (no matcher rebuilt); returns whether any
    /// changed. The caller holds the change lock.
    pub(crate) async fn refresh(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let current = self.read().clone();
        let (fresh, changed) = Self::read_store(store, &current).await?;
        if changed {
            *self.write() = fresh;
        }
        Ok(changed)
    }

    async fn read_store(
        store: &dyn Store,
        current: &HashMap<String, Arc<BusIndex>>,
    ) -> Result<(HashMap<String, Arc<BusIndex>>, bool), StoreError> {
        // A record unchanged since `current` was built keeps its compiled pattern.
        fn reuse<R>(
            kept: Option<&(Arc<R>, Option<Pattern>)>,
            same: impl Fn(&R) -> bool,
        ) -> Option<(Arc<R>, Option<Pattern>)> {
            kept.filter(|(record, _)| same(record)).cloned()
        }
        // Buses with a record compiled afresh: their index is rebuilt.
        let mut dirty = std::collections::HashSet::new();
        let mut grouped: HashMap<String, Compiled<SubscriptionRecord>> = HashMap::new();
        for subscription in store.list_subscriptions(None).await? {
            let kept = current
                .get(&subscription.bus)
                .and_then(|index| index.subscriptions.get(&subscription.name));
            let entry = match reuse(kept, |s| {
                s.id == subscription.id && s.updated_ms == subscription.updated_ms
            }) {
                Some(entry) => entry,
                None => {
                    dirty.insert(subscription.bus.clone());
                    let pattern = compile(&subscription)?;
                    (Arc::new(subscription), pattern)
                }
            };
            grouped
                .entry(entry.0.bus.clone())
                .or_default()
                .insert(entry.0.name.clone(), entry);
        }
        let mut archives: HashMap<String, Compiled<ArchiveRecord>> = HashMap::new();
        for archive in store.list_archives(None).await? {
            let kept = current
                .get(&archive.bus)
                .and_then(|index| index.archives.get(&archive.name));
            let entry = match reuse(kept, |a| {
                a.id == archive.id && a.updated_ms == archive.updated_ms
            }) {
                Some(entry) => entry,
                None => {
                    dirty.insert(archive.bus.clone());
                    let pattern = compile_archive(&archive)?;
                    (Arc::new(archive), pattern)
                }
            };
            archives
                .entry(entry.0.bus.clone())
                .or_default()
                .insert(entry.0.name.clone(), entry);
        }
        let mut changed = false;
        let mut buses = HashMap::new();
        for record in store.list_buses().await? {
            let subscriptions = grouped.remove(&record.name).unwrap_or_default();
            let archives = archives.remove(&record.name).unwrap_or_default();
            let unchanged = current.get(&record.name).filter(|index| {
                !dirty.contains(&record.name)
                    && index.record.updated_ms == record.updated_ms
                    && index.subscriptions.len() == subscriptions.len()
                    && index.archives.len() == archives.len()
            });
            let index = match unchanged {
                Some(index) => Arc::clone(index),
                None => {
                    changed = true;
                    Arc::new(BusIndex::build(record, subscriptions, archives))
                }
            };
            buses.insert(index.record.name.clone(), index);
        }
        changed |= buses.len() != current.len();
        Ok((buses, changed))
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
    pub(crate) async fn lock_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    pub(crate) fn bus(&self, name: &str) -> Option<Arc<BusIndex>> {
        self.read().get(name).cloned()
    }

    pub(crate) fn buses(&self) -> Vec<Arc<BusIndex>> {
        let mut buses: Vec<_> = self.read().values().cloned().collect();
        buses.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        buses
    }

    pub(crate) fn all_subscriptions(&self) -> Vec<Arc<SubscriptionRecord>> {
        self.read()
            .values()
            .flat_map(|bus| bus.subscriptions().cloned().collect::<Vec<_>>())
            .collect()
    }

    pub(crate) fn put_bus(&self, record: BusRecord) {
        let (subscriptions, archives) = self
            .bus(&record.name)
            .map(|b| (b.subscriptions.clone(), b.archives.clone()))
            .unwrap_or_default();
        let index = Arc::new(BusIndex::build(record, subscriptions, archives));
        self.write().insert(index.record.name.clone(), index);
    }

    pub(crate) fn remove_bus(&self, name: &str) {
        self.write().remove(name);
    }

    pub(crate) fn put_subscription(
        &self,
        subscription: Arc<SubscriptionRecord>,
    ) -> Result<(), StoreError> {
        let pattern = compile(&subscription)?;
        self.rebuild(&subscription.bus.clone(), |subscriptions, _| {
            subscriptions.insert(subscription.name.clone(), (subscription, pattern));
        });
        Ok(())
    }

    pub(crate) fn remove_subscription(&self, bus: &str, name: &str) {
        self.rebuild(bus, |subscriptions, _| {
            subscriptions.remove(name);
        });
    }

    pub(crate) fn put_archive(&self, archive: Arc<ArchiveRecord>) -> Result<(), StoreError> {
        let pattern = compile_archive(&archive)?;
        self.rebuild(&archive.bus.clone(), |_, archives| {
            archives.insert(archive.name.clone(), (archive, pattern));
        });
        Ok(())
    }

    pub(crate) fn remove_archive(&self, bus: &str, name: &str) {
        self.rebuild(bus, |_, archives| {
            archives.remove(name);
        });
    }

    fn rebuild(
        &self,
        bus: &str,
        change: impl FnOnce(&mut Compiled<SubscriptionRecord>, &mut Compiled<ArchiveRecord>),
    ) {
        let Some(current) = self.bus(bus) else { return };
        let mut subscriptions = current.subscriptions.clone();
        let mut archives = current.archives.clone();
        change(&mut subscriptions, &mut archives);
        // The build happens here, outside the lock; publishers keep using `current` meanwhile.
        let index = Arc::new(BusIndex::build(
            current.record.clone(),
            subscriptions,
            archives,
        ));
        self.write().insert(bus.to_string(), index);
    }
}
