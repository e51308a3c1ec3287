//! Activity: what `switchyard tail` shows, one record per published event or finished attempt.
//!
//! Records are built only while someone is tailing (the publisher of activity checks first), so
//! the hot paths pay nothing when nobody watches. They carry names and ids for a person to read,
//! never payloads or secrets.

use serde::Serialize;

use crate::{AttemptClass, AttemptOutcome, DeadReason};

/// One line of a tail's NDJSON feed; `kind` (`published`, `attempted`, `lagged`) says which.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// An event was accepted on a bus.
    Published {
        /// When the event was durable and announced, RFC 3339 UTC with milliseconds.
        at: String,
        /// The bus the event was published to.
        bus: String,
        /// The event's `id`, the publisher's or the one switchyard assigned.
        event_id: String,
        /// The event's `source`.
        source: String,
        /// The event's `detail-type`.
        detail_type: String,
        /// Subscriptions whose pattern matched: deliveries created for this event.
        matched: usize,
    },
    /// An attempt finished and its outcome is durable.
    Attempted {
        /// When the outcome was committed, RFC 3339 UTC with milliseconds.
        at: String,
        /// The subscription's bus.
        bus: String,
        /// The subscription's name, unique within its bus.
        subscription: String,
        /// The id of the event delivered.
        event_id: String,
        /// This attempt's number: 1 for the first attempt of the delivery.
        attempt: u32,
        /// How the attempt ended, as stats and metrics group it.
        class: AttemptClass,
        /// The destination's HTTP status; `None` when the attempt ended without one (timeout,
        /// connection error, invalid destination).
        status: Option<u16>,
        /// How long the attempt took, in ms.
        duration_ms: u64,
        /// What the attempt meant for the delivery: delivered, retried or dead-lettered.
        outcome: AttemptOutcome,
        /// For dead letters: why.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<DeadReason>,
        /// For a failed attempt: the status and an excerpt of the answer (credentials
        /// redacted), or the transport error (which never quotes the URL).
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The tail fell behind and missed this many records.
    Lagged {
        /// Records dropped for this tail since the last it received.
        missed: u64,
    },
}

impl Activity {
    /// The bus the record belongs to, for filtering a tail by bus; `None` for `Lagged`, which
    /// every tail receives.
    pub fn bus(&self) -> Option<&str> {
        match self {
            Activity::Published { bus, .. } | Activity::Attempted { bus, .. } => Some(bus),
            Activity::Lagged { .. } => None,
        }
    }

    /// The subscription of an `Attempted` record, for filtering a tail by subscription; `None`
    /// for the others.
    pub fn subscription(&self) -> Option<&str> {
        match self {
            Activity::Attempted { subscription, .. } => Some(subscription),
            _ => None,
        }
    }
}
