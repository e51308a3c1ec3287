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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusRecord {
    pub name: String,
    pub spec: BusSpec,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// Internal and never reused: a subscription deleted and created again under the same name
    /// is a new subscription, and late outcomes of the old one cannot touch the new one.
    pub id: u64,
    pub bus: String,
    pub name: String,
    pub spec: SubscriptionSpec,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// An archive of a bus: the events its pattern matches, kept for its retention.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// Internal and never reused, like a subscription's: archived events are keyed by it, and
    /// those of a deleted archive are collected in the background.
    pub id: u64,
    pub bus: String,
    pub name: String,
    pub spec: ArchiveSpec,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// What an archive holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveStats {
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
    pub ingested_ms: u64,
    pub seq: u64,
}

/// One event read back from an archive.
#[derive(Debug, Clone)]
pub struct ArchivedEvent {
    pub cursor: ArchiveCursor,
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

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Source => "source",
            DocumentKind::Connection => "connection",
            DocumentKind::Key => "key",
            DocumentKind::Replay => "replay",
            DocumentKind::ReplayCancel => "replay-cancel",
        }
    }
}

/// A named configuration document. The store knows it only as JSON text, with no secret in
/// plain text in it: the server owns its meaning and seals secrets before storing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentRecord {
    pub name: String,
    pub body: String,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// An event to append, with the subscriptions and archives it matched.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub bus: String,
    pub event: Arc<Event>,
    pub subscriptions: Vec<u64>,
    /// Ids of the archives that keep a copy; empty for replayed events, which are never archived
    /// again.
    pub archives: Vec<u64>,
}

/// A delivery that is not finished: what the dispatcher needs to make the next attempt.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub id: u64,
    pub subscription: u64,
    pub event: Arc<Event>,
    /// Attempts made so far.
    pub attempts: u32,
    pub due_ms: u64,
    /// Start of the retry window (`max_age_s` counts from here): ingestion, or the redrive.
    pub pending_since_ms: u64,
}

/// What became of one attempt, as the dispatcher decided it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub subscription: u64,
    pub delivery: u64,
    /// Attempts made, this one included.
    pub attempts: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub kind: OutcomeKind,
    /// For the attempt log: when the attempt started, how long it took, its outcome class.
    pub started_ms: u64,
    pub duration_ms: u64,
    pub class: AttemptClass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Delivered,
    Retry { due_ms: u64 },
    Dead { reason: DeadReason },
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
    pub accepted: u64,
    pub delivered: u64,
    pub dead: u64,
    pub pending: u64,
    pub purged: u64,
    /// Attempts that did not deliver (retried or dead-lettered).
    pub failed_attempts: u64,
    /// When the oldest pending delivery became pending; `None` when nothing is pending.
    pub oldest_pending_since_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: u64,
    pub subscription: u64,
    pub event_id: String,
    /// The event envelope as JSON text: dead letters outlive the event table's copy.
    pub envelope: String,
    /// Kept so that a redriven delivery carries the event's loop count, trace and ordering key.
    pub hops: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    pub traceparent: String,
    pub tracestate: Option<String>,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub reason: DeadReason,
    pub ingested_ms: u64,
    pub dead_ms: u64,
    /// Where the event lived, so that a redrive puts it back in its place in the history.
    pub bus: String,
    pub event_seq: u64,
}

/// One HTTP attempt, as the attempt log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub subscription: u64,
    pub event_id: String,
    pub delivery: u64,
    /// 1 for the first attempt of a delivery (a redrive starts a new delivery).
    pub attempt: u32,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub class: AttemptClass,
    pub status: Option<u16>,
    /// The error or the start of the answer's body; never a payload we sent.
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<DeadReason>,
}

/// Where one delivery of an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
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
    pub event: Arc<Event>,
    pub deliveries: Vec<DeliveryTrail>,
}

#[derive(Debug, Clone)]
pub struct DeliveryTrail {
    pub subscription: u64,
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
