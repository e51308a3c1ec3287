//! The records the store takes and returns. Times are Unix milliseconds.
//!
//! Owns their shapes, and so their JSON, which both stores keep (redb's JSON tables, PostgreSQL's
//! text columns). Must not: rename or remove a stored field (files and databases already hold
//! it); a new one comes with a default.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
/// Dead letters and attempts carry it; callers name it through the store that returns it.
pub use switchyard_model::DeadReason;
use switchyard_model::{
    ArchiveSpec, AttemptClass, AttemptOutcome, BusSpec, Event, SubscriptionSpec,
};

/// A bus as stored: a named stream that events are published to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusRecord {
    /// Unique in the store: how publishers, subscriptions and archives name the bus.
    pub name: String,
    /// Its settings, as last put.
    pub spec: BusSpec,
    /// When the bus was created; replacing it keeps this.
    pub created_ms: u64,
    /// When the bus was last put; `created_ms` until it is replaced.
    pub updated_ms: u64,
}

/// A subscription as stored: a pattern, one destination and a delivery policy, on one bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// Internal and never reused: a subscription deleted and created again under the same name
    /// is a new subscription, and late outcomes of the old one cannot touch the new one.
    pub id: u64,
    /// The name of the bus whose events it selects.
    pub bus: String,
    /// Unique within its bus, not across buses.
    pub name: String,
    /// Its pattern, destination and delivery policy, as last put.
    pub spec: SubscriptionSpec,
    /// When the subscription was created; replacing it keeps this.
    pub created_ms: u64,
    /// When the subscription was last put; `created_ms` until it is replaced.
    pub updated_ms: u64,
}

/// An archive of a bus: the events its pattern matches, kept for its retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// Internal and never reused, like a subscription's: archived events are keyed by it, and
    /// those of a deleted archive are collected in the background.
    pub id: u64,
    /// The name of the bus whose events it keeps.
    pub bus: String,
    /// Unique within its bus, not across buses.
    pub name: String,
    /// Its pattern and retention, as last put.
    pub spec: ArchiveSpec,
    /// When the archive was created; replacing it keeps this.
    pub created_ms: u64,
    /// When the archive was last put; `created_ms` until it is replaced.
    pub updated_ms: u64,
}

/// What an archive holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveStats {
    /// How many events it keeps now.
    pub events: u64,
    /// Envelope bytes kept.
    pub bytes: u64,
    /// When the oldest kept event was accepted; `None` when the archive is empty.
    pub oldest_ms: Option<u64>,
}

/// Where a read of an archive stands: the position of the last event read. Archived events are
/// ordered by when the bus accepted them, then by publish order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ArchiveCursor {
    /// When the bus accepted the last event read.
    pub ingested_ms: u64,
    /// The event's sequence number in the store: publish order among events accepted in the
    /// same millisecond.
    pub(crate) seq: u64,
}

/// One event read back from an archive.
#[derive(Debug, Clone)]
pub struct ArchivedEvent {
    /// Its position in the archive: the last one read is the `after` of the next read.
    pub cursor: ArchiveCursor,
    /// The event as the bus accepted it, envelope, trace context and ordering key included.
    pub event: Arc<Event>,
}

/// The kinds of named configuration documents the store keeps besides buses and subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A webhook source: its configuration and a reference to its secret.
    Source,
    /// A connection: how to authenticate to destinations, secrets sealed.
    Connection,
    /// A key of switchyard's own, sealed: the identity-token signing key.
    Key,
    /// A replay: its request, state and progress, so that any node can show or resume it.
    Replay,
    /// A request to cancel a running replay, from any node; only its runner acts on it.
    ReplayCancel,
    /// An EventBridge rule: what its target subscriptions cannot say (a rule with no targets,
    /// its schedule's anchor, its description). Its targets are subscriptions.
    EventBridgeRule,
    /// An EventBridge API destination: the destination template its targets are built from.
    EventBridgeApiDestination,
    /// The tags of one EventBridge resource, by its ARN.
    EventBridgeTags,
    /// What EventBridge shows of a connection that switchyard's connection cannot say: the
    /// authorization type of a deauthorized one.
    EventBridgeConnection,
}

impl DocumentKind {
    /// Whether nodes keep this kind in memory, so that a change must be announced to them.
    /// Replays are read from the store when asked for, and change with every batch.
    pub fn followed(self) -> bool {
        matches!(
            self,
            DocumentKind::Source | DocumentKind::Connection | DocumentKind::Key
        )
    }

    /// How the store spells the kind in its keys and in not-found messages.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Source => "source",
            DocumentKind::Connection => "connection",
            DocumentKind::Key => "key",
            DocumentKind::Replay => "replay",
            DocumentKind::ReplayCancel => "replay-cancel",
            DocumentKind::EventBridgeRule => "eventbridge-rule",
            DocumentKind::EventBridgeApiDestination => "eventbridge-api-destination",
            DocumentKind::EventBridgeTags => "eventbridge-tags",
            DocumentKind::EventBridgeConnection => "eventbridge-connection",
        }
    }
}

/// A named configuration document. The store knows it only as JSON text, with no secret in
/// plain text in it: the server owns its meaning and seals secrets before storing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentRecord {
    /// Unique within its kind.
    pub name: String,
    /// The document as JSON text, secrets sealed.
    pub body: String,
    /// When the document was created; replacing it keeps this.
    pub created_ms: u64,
    /// When the document was last put; `created_ms` until it is replaced.
    pub updated_ms: u64,
}

/// An event to append, with the subscriptions and archives it matched.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The name of the bus it was published to; a publisher-chosen event id is de-duplicated
    /// per bus.
    pub bus: String,
    /// The event, validated, with its id and ingestion time assigned.
    pub event: Arc<Event>,
    /// Ids of the subscriptions it matched, one delivery each; a subscription deleted since
    /// matching gets none.
    pub subscriptions: Vec<u64>,
    /// Ids of the archives that keep a copy; empty for replayed events, which are never archived
    /// again.
    pub archives: Vec<u64>,
    /// For a scheduled tick: the tick it is. `None` for every other event.
    pub once: Option<OnceKey>,
}

/// A scheduled tick, which must become at most one event even when several nodes (or one node
/// twice, after a lease moved) try to fire it. The store records the key in the same transaction
/// as the event; an event whose key is already recorded is not appended and gets no deliveries,
/// as a publisher's repeat of an event id does. Recorded keys are forgotten 7 days after their
/// tick.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnceKey {
    /// What ticks: `"{bus}/{rule}"` for a rule, `"sub:{id}"` for a scheduled subscription.
    pub key: String,
    /// The tick, in Unix ms.
    pub tick_ms: u64,
}

/// How long a recorded [`OnceKey`] is kept after its tick: far longer than any node can stall
/// between deciding a tick and committing it, so that a tick never fires twice.
pub(crate) const ONCE_RETENTION_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// A delivery that is not finished: what the dispatcher needs to make the next attempt.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    /// Unique in the store and growing with time; a redrive gives the delivery a new one.
    pub id: u64,
    /// The id of the subscription it is for.
    pub subscription: u64,
    /// The event to deliver, shared by the deliveries one append created for it.
    pub event: Arc<Event>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due: the event's ingestion or the redrive, then what the last
    /// [`OutcomeKind::Retry`] said.
    pub due_ms: u64,
    /// Start of the retry window (`max_age_s` counts from here): ingestion, or the redrive.
    pub pending_since_ms: u64,
}

/// What became of one attempt, as the dispatcher decided it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The id of the delivery's subscription.
    pub subscription: u64,
    /// The delivery's id ([`PendingDelivery::id`]).
    pub delivery: u64,
    /// Attempts made, this one included.
    pub attempts: u32,
    /// The HTTP status the destination answered; `None` when there was no answer (a timeout,
    /// a connection error, a request that could not be built).
    pub status: Option<u16>,
    /// Why the attempt did not deliver, short and safe to show: the transport error, or the
    /// status with the start of the answer's body. `None` when it delivered.
    pub error: Option<String>,
    /// What becomes of the delivery.
    pub kind: OutcomeKind,
    /// When the attempt started; the attempt log is ordered by it.
    pub started_ms: u64,
    /// How long the attempt took, in ms, waiting for an outbound connection included.
    pub duration_ms: u64,
    /// The attempt's class, for the attempt log.
    pub class: AttemptClass,
}

/// What becomes of a delivery after an attempt, as the subscription's retry policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// The destination took it (2xx): the delivery is done.
    Delivered,
    /// The delivery stays pending for another attempt.
    Retry {
        /// When the next attempt is due: after the backoff, or after the answer's `Retry-After`
        /// (capped at the maximum backoff).
        due_ms: u64,
    },
    /// No attempt follows: the delivery becomes a dead letter.
    Dead {
        /// Why, as the dead letter and the attempt log keep it.
        reason: DeadReason,
    },
}

impl OutcomeKind {
    /// What the attempt log calls it, with the reason if dead.
    pub fn label(self) -> (AttemptOutcome, Option<DeadReason>) {
        match self {
            OutcomeKind::Delivered => (AttemptOutcome::Delivered, None),
            OutcomeKind::Retry { .. } => (AttemptOutcome::Retry, None),
            OutcomeKind::Dead { reason } => (AttemptOutcome::Dead, Some(reason)),
        }
    }
}

/// Delivery accounting of one subscription: `accepted = delivered + dead + pending + purged`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStats {
    /// Deliveries created, one per event the subscription matched; a redrive does not count
    /// again (it moves dead letters back to `pending`).
    pub accepted: u64,
    /// Deliveries that ended with a 2xx answer.
    pub delivered: u64,
    /// Dead letters kept now: neither redriven nor purged.
    pub dead: u64,
    /// Deliveries not finished: waiting for their first attempt or a retry, or being attempted.
    pub pending: u64,
    /// Dead letters removed by [`crate::Store::purge_dead_letters`].
    pub purged: u64,
    /// Attempts that did not deliver (retried or dead-lettered).
    pub failed_attempts: u64,
    /// When the oldest pending delivery became pending; `None` when nothing is pending.
    pub oldest_pending_since_ms: Option<u64>,
}

impl SubscriptionStats {
    /// How long the oldest pending delivery has waited at `now_ms`; 0 with nothing pending:
    /// how far behind the subscription is.
    pub fn oldest_pending_age_ms(&self, now_ms: u64) -> u64 {
        self.oldest_pending_since_ms
            .map_or(0, |since| now_ms.saturating_sub(since))
    }
}

/// A delivery that will not be retried, with why. It is kept, with a copy of its event, until
/// it is redriven or purged or its subscription is deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The id of the delivery that died, unique in the store: what [`crate::Store::redrive`]
    /// takes, and what [`crate::Store::list_dead_letters`] pages by.
    pub id: u64,
    pub(crate) subscription: u64,
    /// The event's id, the publisher's or the one switchyard assigned.
    pub event_id: String,
    /// The event envelope as JSON text: dead letters outlive the event table's copy.
    pub envelope: String,
    /// Kept so that a redriven delivery carries the event's loop count, trace and ordering key.
    pub(crate) hops: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ordering_key: Option<String>,
    pub(crate) traceparent: String,
    pub(crate) tracestate: Option<String>,
    /// Attempts made on the delivery, the last one included (counted from its redrive, if it
    /// was redriven before).
    pub attempts: u32,
    /// The HTTP status of the last attempt; `None` when it got no answer.
    pub last_status: Option<u16>,
    /// Why the last attempt did not deliver, as [`Outcome::error`] says it.
    pub last_error: Option<String>,
    /// Why it will not be retried.
    pub reason: DeadReason,
    /// When the bus accepted the event; a redrive keeps it.
    pub ingested_ms: u64,
    /// When the delivery was dead-lettered.
    pub dead_ms: u64,
    /// Where the event lived, so that a redrive puts it back in its place in the history.
    pub(crate) bus: String,
    pub(crate) event_seq: u64,
}

/// One HTTP attempt, as the attempt log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// What the event trail groups attempts by.
    pub(crate) subscription: u64,
    /// The event's id, the publisher's or the one switchyard assigned.
    pub event_id: String,
    /// The id of the delivery attempted.
    pub delivery: u64,
    /// 1 for the first attempt of a delivery (a redrive starts a new delivery).
    pub attempt: u32,
    /// When the attempt started; with `delivery` and `attempt`, the attempt log's cursor.
    pub started_ms: u64,
    /// How long it took, in ms, waiting for an outbound connection included.
    pub duration_ms: u64,
    /// How it ended (2xx, 5xx, timeout, ...), as stats and metrics group attempts.
    pub class: AttemptClass,
    /// The HTTP status answered; `None` when there was no answer.
    pub status: Option<u16>,
    /// The error or the start of the answer's body; never a payload we sent.
    pub error: Option<String>,
    /// What it meant for the delivery: delivered, retried or dead-lettered.
    pub outcome: AttemptOutcome,
    /// Why the delivery was dead-lettered; `None` unless `outcome` is dead.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<DeadReason>,
}

/// Where one delivery of an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not finished: waiting for an attempt (the first, a retry, or the first after a redrive)
    /// or being attempted.
    Pending,
    /// Its last attempt was answered with 2xx.
    Delivered,
    /// It is a dead letter, until it is redriven or purged.
    Dead,
    /// Its dead letter was purged, or the subscription was deleted.
    Gone,
}

impl DeliveryState {
    /// Where a delivery stands, from whether its current delivery is pending or a dead letter
    /// and its attempts (oldest first).
    pub(crate) fn of(pending: bool, dead: bool, attempts: &[AttemptRecord]) -> DeliveryState {
        if pending {
            DeliveryState::Pending
        } else if dead {
            DeliveryState::Dead
        } else if attempts
            .last()
            .is_some_and(|a| a.outcome == AttemptOutcome::Delivered)
        {
            DeliveryState::Delivered
        } else {
            // A dead letter that was purged, or a subscription deleted since.
            DeliveryState::Gone
        }
    }
}

/// An event with, per subscription it matched, its delivery state and attempts.
#[derive(Debug, Clone)]
pub struct EventTrail {
    /// The event as the bus accepted it.
    pub event: Arc<Event>,
    /// One per subscription it got a delivery for, in subscription id order.
    pub deliveries: Vec<DeliveryTrail>,
}

/// What became of an event for one subscription: its delivery's state and every attempt.
#[derive(Debug, Clone)]
pub struct DeliveryTrail {
    /// The subscription's id; one deleted since is still listed, [`DeliveryState::Gone`] and
    /// without attempts.
    pub subscription: u64,
    /// Where its delivery stands now; after a redrive, the new delivery.
    pub state: DeliveryState,
    /// Oldest first.
    pub attempts: Vec<AttemptRecord>,
}

/// What changed in a store shared by several nodes, as [`crate::ClusterStore::changes`] reports it.
/// A receiver that lags behind ([`tokio::sync::broadcast::error::RecvError::Lagged`]) has
/// missed changes and must resync as if it had received every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These subscriptions (ids) have new pending deliveries.
    Pending(Vec<u64>),
    /// A bus, subscription or document was created, changed or deleted, or subscription
    /// ownership moved (a node released its leases).
    Catalog,
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, crate::StoreError> {
    // Only switchyard's own records are encoded: one that does not encode is a bug.
    serde_json::to_string(value).map_err(|e| crate::StoreError::internal("cannot encode", e))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, crate::StoreError> {
    serde_json::from_str(text).map_err(|e| crate::StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}
