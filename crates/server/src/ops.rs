//! The operations layer: every change of state, whoever asks for it (the REST API, the config
//! file, a replay's start or cancel, a dead-letter redrive or purge), and the consumer side of
//! pull subscriptions (pull, acknowledge, modify the ack deadline), which every door that pulls
//! (the REST API, the Pub/Sub API) calls alike.
//!
//! Each change to buses, subscriptions, archives, sources and connections is written to the store
//! first and applied to the catalog and the dispatcher after it commits, all under the catalog's
//! change lock, so that what publishers match against and what the store holds never disagree
//! for longer than one change. A dead-letter redrive or purge changes no definition, only
//! deliveries, and takes no lock: it is detached work like the others.
//!
//! Owns the change lock, for the API's changes and for the cluster's loops alike (taking in
//! other nodes' changes, starting and handing over lanes: the mechanics are in `cluster`), and
//! [`App::detached`], the one way the server runs work a client hanging up must not cut short.
//!
//! Must not: parse requests or shape answers (the handlers in `api` do); hold the change lock
//! across anything but the store write and what follows it in memory.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchyard_destination::{ConnectionAuth, ConnectionSpec};
use switchyard_dispatcher::{AckId, LeaseChange, LiveConnection};
use switchyard_model::{
    ArchiveSpec, BusSpec, DeliveryMode, MAX_ACK_DEADLINE_S, ReplaySpec, SubscriptionSpec, now_ms,
};
use switchyard_secrets::SecretRef;
use switchyard_sources::SourceSpec;
use switchyard_store::{
    ArchiveRecord, BusRecord, DocumentKind, DocumentRecord, PendingDelivery, StoreError,
    SubscriptionRecord,
};

use crate::replay::ReplayRecord;
use crate::sources::{LiveSource, StoredSource};
use crate::{App, ServerError};

impl App {
    /// Runs `work` to completion on a task of its own, tracked for shutdown: a client that hangs
    /// up cancels its request, never the work. A panic in `work` is a bug: logged here and
    /// returned as [`ServerError::Internal`], never as a fault worth retrying.
    pub(crate) async fn detached<T, F, Fut>(
        self: &Arc<Self>,
        what: &'static str,
        work: F,
    ) -> Result<T, ServerError>
    where
        F: FnOnce(Arc<App>) -> Fut,
        Fut: Future<Output = Result<T, ServerError>> + Send + 'static,
        T: Send + 'static,
    {
        self.tasks()
            .spawn(work(Arc::clone(self)))
            .await
            .unwrap_or_else(|cause| {
                tracing::error!(what, error = %cause, "a task did not finish");
                Err(ServerError::Internal { what, cause })
            })
    }

    /// Runs a change under the catalog's change lock, detached: a client that hangs up cancels
    /// its request, never a change half made (committed to the store but not yet applied to the
    /// catalog and the dispatcher).
    async fn change<T, F, Fut>(self: &Arc<Self>, work: F) -> Result<T, ServerError>
    where
        F: FnOnce(Arc<App>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ServerError>> + Send + 'static,
        T: Send + 'static,
    {
        self.detached("change", |app| async move {
            let _change = app.catalog().lock_changes().await;
            work(Arc::clone(&app)).await
        })
        .await
    }

    /// Takes in what other nodes committed (the cluster's change feed), under the change lock so
    /// that it cannot interleave with a change of this node's.
    pub(crate) async fn take_in_changes(&self) -> Result<(), StoreError> {
        let _change = self.catalog().lock_changes().await;
        self.reconcile().await
    }

    /// Runs lanes for exactly the subscriptions this node's leases cover, under the change lock
    /// so that a subscription changed meanwhile is started with its new definition.
    pub(crate) async fn own_exactly(
        self: &Arc<Self>,
        owned: HashSet<u64>,
    ) -> Result<(), ServerError> {
        let _change = self.catalog().lock_changes().await;
        Ok(self.run_lanes_for(owned).await?)
    }

    pub(crate) async fn put_bus(
        self: &Arc<Self>,
        name: &str,
        spec: BusSpec,
    ) -> Result<(BusRecord, bool), ServerError> {
        let name = name.to_owned();
        self.change(move |app| async move {
            let name = name.as_str();
            let (record, created) = app.store().put_bus(name, spec).await?;
            app.catalog().put_bus(record.clone());
            app.metrics().bus(name);
            Ok((record, created))
        })
        .await
    }

    pub(crate) async fn delete_bus(
        self: &Arc<Self>,
        name: &str,
        force: bool,
    ) -> Result<(), ServerError> {
        let name = name.to_owned();
        self.change(move |app| async move {
            let name = name.as_str();
            let removed = app.store().delete_bus(name, force).await?;
            app.catalog().remove_bus(name);
            app.metrics().remove_bus(name);
            for subscription in removed {
                app.dispatcher().remove(subscription.id);
            }
            Ok(())
        })
        .await
    }

    /// Takes effect at once: the next publish matches the new pattern, the next attempt uses the
    /// new destination and policy.
    pub(crate) async fn put_subscription(
        self: &Arc<Self>,
        bus: &str,
        name: &str,
        spec: SubscriptionSpec,
    ) -> Result<(Arc<SubscriptionRecord>, bool), ServerError> {
        let bus = bus.to_owned();
        let name = name.to_owned();
        self.change(move |app| async move {
            let (bus, name) = (bus.as_str(), name.as_str());
            let mut spec = spec;
            // A REST edit of an EventBridge target must not cut its link to the rule; only a
            // delete does.
            if spec.eventbridge.is_none() {
                spec.eventbridge = app
                    .catalog()
                    .bus(bus)
                    .and_then(|index| index.subscription(name).cloned())
                    .and_then(|current| current.spec.eventbridge.clone());
            }
            if let Some(target) = &spec.dead_letter_bus {
                if target == bus {
                    return Err(ServerError::Invalid(format!(
                        "field \"dead_letter_bus\": dead letters cannot go back to the subscription's own bus {bus:?}; name another"
                    )));
                }
                if app.catalog().bus(target).is_none() {
                    return Err(ServerError::Invalid(format!(
                        "field \"dead_letter_bus\": bus {target:?} does not exist; create it first"
                    )));
                }
            }
            if let Some(destination) = &mut spec.destination {
                if let Some(connection) = &destination.connection
                    && app.dispatcher().connections().get(connection).is_none() {
                        return Err(ServerError::Invalid(format!(
                            "field \"destination.connection\": connection {connection:?} does not exist; create it first"
                        )));
                    }
                app.check_address("destination.url", destination.url.as_str())?;
                // Signing secrets are stored sealed (or as `file:` references), never as written.
                if let Some(signing) = &destination.signing {
                    destination.signing = Some(signing.seal(app.keyring()).map_err(|e| {
                        ServerError::Invalid(format!("field \"destination.signing\": {e}"))
                    })?);
                }
            }
            let (record, created) = app.store().put_subscription(bus, name, spec).await?;
            let record = Arc::new(record);
            app.catalog().put_subscription(Arc::clone(&record))?;
            app.deliver_for(Arc::clone(&record));
            Ok((record, created))
        })
        .await
    }

    pub(crate) async fn delete_subscription(
        self: &Arc<Self>,
        bus: &str,
        name: &str,
    ) -> Result<(), ServerError> {
        let bus = bus.to_owned();
        let name = name.to_owned();
        self.change(move |app| async move {
            let (bus, name) = (bus.as_str(), name.as_str());
            let record = app.store().delete_subscription(bus, name).await?;
            app.catalog().remove_subscription(bus, name);
            app.dispatcher().remove(record.id);
            Ok(())
        })
        .await
    }

    /// Takes effect at once: the next publish is archived by the new pattern. A new retention
    /// applies to the events already kept too.
    pub(crate) async fn put_archive(
        self: &Arc<Self>,
        bus: &str,
        name: &str,
        spec: ArchiveSpec,
    ) -> Result<(Arc<ArchiveRecord>, bool), ServerError> {
        let (bus, name) = (bus.to_owned(), name.to_owned());
        self.change(move |app| async move {
            let (record, created) = app.store().put_archive(&bus, &name, spec).await?;
            let record = Arc::new(record);
            app.catalog().put_archive(Arc::clone(&record))?;
            Ok((record, created))
        })
        .await
    }

    /// Stops archiving at once; the events the archive kept are removed in the background.
    pub(crate) async fn delete_archive(
        self: &Arc<Self>,
        bus: &str,
        name: &str,
    ) -> Result<(), ServerError> {
        let (bus, name) = (bus.to_owned(), name.to_owned());
        self.change(move |app| async move {
            app.store().delete_archive(&bus, &name).await?;
            app.catalog().remove_archive(&bus, &name);
            Ok(())
        })
        .await
    }

    /// Creates or replaces a webhook source. Its secret is sealed with the master key before it
    /// is stored (a `file:` reference is stored as such); a replacement that leaves the secret
    /// out keeps the current one, since answers never show it.
    pub(crate) async fn put_source(
        self: &Arc<Self>,
        name: &str,
        mut spec: SourceSpec,
    ) -> Result<(Arc<LiveSource>, bool), ServerError> {
        let name = name.to_owned();
        self.change(move |app| async move {
            let name = name.as_str();
            if app.catalog().bus(&spec.bus).is_none() {
                return Err(ServerError::Invalid(format!(
                    "field \"bus\": bus {:?} does not exist; create it first",
                    spec.bus
                )));
            }
            let field = spec.secret_field();
            let secret = match spec.take_secret() {
                Some(secret) => {
                    let reference = SecretRef::parse(secret.expose())
                        .map_err(|e| ServerError::Invalid(format!("field \"{field}\": {e}")))?;
                    let sealed = reference
                        .seal(app.keyring())
                        .map_err(|e| ServerError::Invalid(format!("field \"{field}\": {e}")))?;
                    serde_json::to_value(&sealed)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .ok_or_else(|| {
                            ServerError::Invalid(format!("field \"{field}\" cannot be stored"))
                        })?
                }
                None => match app.sources().get(name) {
                    Some(live) => live.secret.clone(),
                    None => {
                        return Err(ServerError::Invalid(format!(
                            "field \"{field}\" is required"
                        )));
                    }
                },
            };
            let spec = serde_json::to_value(&spec)
                .map_err(|e| ServerError::Invalid(format!("cannot encode the source: {e}")))?;
            let body = serde_json::to_string(&StoredSource { spec, secret })
                .map_err(|e| ServerError::Invalid(format!("cannot encode the source: {e}")))?;
            let draft = DocumentRecord {
                name: name.to_string(),
                body,
                created_ms: now_ms(),
                updated_ms: now_ms(),
            };
            // Compiled before it is stored, so that a source that cannot verify anything is refused.
            let mut live = LiveSource::compile_off_runtime(draft, app.keyring()).await?;
            let (stored, created) = app
                .store()
                .put_document(DocumentKind::Source, name, live.record.body.clone())
                .await?;
            live.record = stored;
            Ok((app.sources().insert(live), created))
        })
        .await
    }

    pub(crate) async fn delete_source(self: &Arc<Self>, name: &str) -> Result<(), ServerError> {
        let name = name.to_owned();
        self.change(move |app| async move {
            let name = name.as_str();
            app.store()
                .delete_document(DocumentKind::Source, name)
                .await?;
            app.sources().remove(name);
            app.metrics().remove_source(name);
            Ok(())
        })
        .await
    }

    /// Creates or replaces a connection. Its secrets are sealed with the master key before it is
    /// stored; it is resolved once first, so that an unreadable `file:` secret, or a client
    /// certificate with another certificate's key, is refused now.
    pub(crate) async fn put_connection(
        self: &Arc<Self>,
        name: &str,
        spec: ConnectionSpec,
    ) -> Result<(DocumentRecord, bool), ServerError> {
        let name = name.to_owned();
        self.change(move |app| async move {
            let name = name.as_str();
            if let Some(ConnectionAuth::OAuth2ClientCredentials(oauth)) = &spec.auth {
                app.check_address("auth.token_url", &oauth.token_url)?;
            }
            switchyard_model::validate_description(spec.description.as_deref())
                .map_err(|e| ServerError::Invalid(e.to_string()))?;
            let sealed = spec
                .seal(app.keyring())
                .map_err(|e| ServerError::Invalid(e.to_string()))?;
            let keyring = Arc::clone(app.keyring());
            let check = sealed.clone();
            let resolved = crate::cpu::blocking(move || check.resolve(&keyring))
                .await
                .map_err(|e| ServerError::Invalid(e.to_string()))?;
            app.dispatcher()
                .check_client_certificate(&resolved)
                .map_err(|e| ServerError::Invalid(e.to_string()))?;
            drop(resolved);
            let body = serde_json::to_string(&sealed)
                .map_err(|e| ServerError::Invalid(format!("cannot encode the connection: {e}")))?;
            let (record, created) = app
                .store()
                .put_document(DocumentKind::Connection, name, body)
                .await?;
            app.dispatcher()
                .connections()
                .insert(name, LiveConnection::new(sealed));
            Ok((record, created))
        })
        .await
    }

    /// What an archive holds now (a read: the REST API and the EventBridge door show it).
    pub(crate) async fn archive_stats(
        &self,
        archive: u64,
    ) -> Result<switchyard_store::ArchiveStats, ServerError> {
        Ok(self.store().archive_stats(archive).await?)
    }

    /// Every document of a kind the server does not keep in memory (replays, the EventBridge
    /// door's rules, API destinations and tags), read from the store when asked for.
    pub(crate) async fn documents(
        &self,
        kind: DocumentKind,
    ) -> Result<Vec<DocumentRecord>, ServerError> {
        Ok(self.store().list_documents(kind).await?)
    }

    /// Creates or replaces one of the EventBridge door's documents. Sources, connections, keys
    /// and replays have operations of their own, which keep the server's memory in step.
    pub(crate) async fn put_document(
        self: &Arc<Self>,
        kind: DocumentKind,
        name: &str,
        body: String,
    ) -> Result<(DocumentRecord, bool), ServerError> {
        Self::door_kind(kind)?;
        let name = name.to_owned();
        self.change(
            move |app| async move { Ok(app.store().put_document(kind, &name, body).await?) },
        )
        .await
    }

    /// Deletes one of the EventBridge door's documents and returns it.
    pub(crate) async fn delete_document(
        self: &Arc<Self>,
        kind: DocumentKind,
        name: &str,
    ) -> Result<DocumentRecord, ServerError> {
        Self::door_kind(kind)?;
        let name = name.to_owned();
        self.change(move |app| async move { Ok(app.store().delete_document(kind, &name).await?) })
            .await
    }

    fn door_kind(kind: DocumentKind) -> Result<(), ServerError> {
        match kind {
            DocumentKind::EventBridgeRule
            | DocumentKind::EventBridgeApiDestination
            | DocumentKind::EventBridgeTags
            | DocumentKind::EventBridgeConnection => Ok(()),
            other => Err(ServerError::Invalid(format!(
                "{other:?} documents change only through their own operations"
            ))),
        }
    }

    /// Checks the request against the catalog, stores the replay as `running` and starts it.
    pub(crate) async fn start_replay(
        self: &Arc<Self>,
        spec: ReplaySpec,
    ) -> Result<ReplayRecord, ServerError> {
        self.change(move |app| async move { app.begin_replay(spec).await })
            .await
    }

    /// Asks a running replay to stop and returns its final state (see `replay`).
    pub(crate) async fn cancel_replay(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<ReplayRecord, ServerError> {
        let name = name.to_owned();
        self.detached("replay cancel", move |app| async move {
            Ok(app.stop_replay(&name).await?)
        })
        .await
    }

    /// Makes dead letters of a subscription (those with `ids`, or all) pending again. The lane
    /// is told whatever happened: chunks may have committed before a later one failed, and a
    /// client that hangs up must not leave them unseen by the lane.
    pub(crate) async fn redrive(
        self: &Arc<Self>,
        subscription: u64,
        ids: Option<Vec<u64>>,
    ) -> Result<u64, ServerError> {
        self.detached("redrive", move |app| async move {
            let result = app.store().redrive(subscription, ids).await;
            app.dispatcher().reload(subscription);
            Ok(result?)
        })
        .await
    }

    /// Leases up to `max` deliveries of a pull subscription for `ack_deadline_ms` (the
    /// subscription's own when `None`), waiting up to `wait` when none is ready (module
    /// `switchyard_dispatcher::pull`).
    pub(crate) async fn pull(
        &self,
        subscription: &SubscriptionRecord,
        max: usize,
        wait: Duration,
        ack_deadline_ms: Option<u64>,
    ) -> Result<Vec<PendingDelivery>, ServerError> {
        pull_only(subscription)?;
        if !(1..=MAX_PULL_MESSAGES).contains(&max) {
            return Err(ServerError::Invalid(format!(
                "\"max_messages\" must be 1 to {MAX_PULL_MESSAGES}"
            )));
        }
        let deadline = ack_deadline_ms.unwrap_or_else(|| subscription.spec.ack_deadline_ms());
        // A waiting pull is a long-lived answer: it ends when shutdown begins. Leases already
        // taken then simply expire.
        tokio::select! {
            pulled = self.dispatcher().pull(subscription, max, wait, deadline) => Ok(pulled?),
            () = self.shutdown().cancelled() => Ok(Vec::new()),
        }
    }

    /// Acknowledges pulled deliveries by their ack ids; answers how many were still pending.
    pub(crate) async fn acknowledge(
        &self,
        subscription: &SubscriptionRecord,
        ack_ids: &[String],
    ) -> Result<u64, ServerError> {
        pull_only(subscription)?;
        let acks = ack_ids_of(ack_ids)?;
        Ok(self.dispatcher().acknowledge(subscription, &acks).await?)
    }

    /// Gives pulled deliveries a new ack deadline, `deadline_s` from now (0: give them back);
    /// answers how many leases were still current.
    pub(crate) async fn modify_ack_deadline(
        &self,
        subscription: &SubscriptionRecord,
        ack_ids: &[String],
        deadline_s: u32,
    ) -> Result<u64, ServerError> {
        pull_only(subscription)?;
        if deadline_s > MAX_ACK_DEADLINE_S {
            return Err(ServerError::Invalid(format!(
                "the ack deadline must be 0 to {MAX_ACK_DEADLINE_S} seconds"
            )));
        }
        let acks = ack_ids_of(ack_ids)?;
        Ok(self
            .dispatcher()
            .modify_ack_deadline(subscription, &acks, deadline_s)
            .await?)
    }

    /// The acknowledgements and deadline changes of a pull subscription's leases made on this
    /// node, from now on: what a stream that counts its client's leases listens to.
    pub(crate) fn lease_changes(
        &self,
        subscription: &SubscriptionRecord,
    ) -> tokio::sync::broadcast::Receiver<LeaseChange> {
        self.dispatcher().lease_changes(subscription.id)
    }

    /// Removes every dead letter of a subscription; returns how many there were.
    pub(crate) async fn purge_dead_letters(&self, subscription: u64) -> Result<u64, ServerError> {
        Ok(self.store().purge_dead_letters(subscription, None).await?)
    }

    /// Refuses a URL whose written address the destination address policy refuses, so that the
    /// mistake is reported when it is made rather than as dead letters later. (Every request is
    /// checked again when it is sent, and a name when it resolves.)
    fn check_address(&self, field: &str, url: &str) -> Result<(), ServerError> {
        let url = url::Url::parse(url).map_err(|e| {
            ServerError::Invalid(format!("field \"{field}\": is not a valid URL: {e}"))
        })?;
        self.config().address_policy.check_url(&url).map_err(|e| {
            ServerError::Invalid(format!(
                "field \"{field}\": {e}; use an address the policy allows"
            ))
        })
    }

    /// Deletes a connection no subscription uses.
    pub(crate) async fn delete_connection(self: &Arc<Self>, name: &str) -> Result<(), ServerError> {
        let name = name.to_owned();
        self.change(move |app| async move {
            let name = name.as_str();
            let users: Vec<String> = app
                .catalog()
                .all_subscriptions()
                .iter()
                .filter(|s| {
                    s.spec
                        .destination
                        .as_ref()
                        .is_some_and(|d| d.connection.as_deref() == Some(name))
                })
                .map(|s| format!("{}/{}", s.bus, s.name))
                .collect();
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "connection {name:?} is used by {}; change them first",
                    users.join(", ")
                ))
                .into());
            }
            app.store()
                .delete_document(DocumentKind::Connection, name)
                .await?;
            app.dispatcher().connections().remove(name);
            Ok(())
        })
        .await
    }
}

/// Refuses pulling a push subscription: its deliveries belong to its lane.
fn pull_only(subscription: &SubscriptionRecord) -> Result<(), ServerError> {
    if subscription.spec.delivery == DeliveryMode::Pull {
        return Ok(());
    }
    Err(ServerError::Invalid(format!(
        "subscription {:?} on bus {:?} is a push subscription: its deliveries go to its destination; only a subscription with \"delivery\": \"pull\" is pulled",
        subscription.name, subscription.bus
    )))
}

/// Pub/Sub's most messages per pull, whichever door it comes through.
const MAX_PULL_MESSAGES: usize = 1_000;

/// Ack ids in one acknowledge or deadline change, whichever door it comes through.
const MAX_ACK_IDS: usize = 10_000;

fn ack_ids_of(ack_ids: &[String]) -> Result<Vec<AckId>, ServerError> {
    if ack_ids.is_empty() || ack_ids.len() > MAX_ACK_IDS {
        return Err(ServerError::Invalid(format!(
            "\"ack_ids\" has {} ids; send 1 to {MAX_ACK_IDS}",
            ack_ids.len()
        )));
    }
    ack_ids
        .iter()
        .map(|id| {
            id.parse::<AckId>()
                .map_err(|e| ServerError::Invalid(e.to_string()))
        })
        .collect()
}
