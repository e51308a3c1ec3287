//! Activity: what `switchyard tail` shows, one record per published event or finished attempt.
//!
//! Records are built only while someone is tailing (the publisher of activity checks first), so
//! the hot paths pay nothing when nobody watches. They carry names and ids for a person to read,
//! never payloads or secrets.

use serde::Serialize;

use crate::{AttemptClass, AttemptOutcome, DeadReason};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// An event was accepted on a bus.
    Published {
        at: String,
        bus: String,
        event_id: String,
        source: String,
        detail_type: String,
        matched: usize,
    },
    /// An attempt finished and its outcome is durable.
    Attempted {
        at: String,
        bus: String,
        subscription: String,
        event_id: String,
        attempt: u32,
        class: AttemptClass,
        status: Option<u16>,
        duration_ms: u64,
        outcome: AttemptOutcome,
        /// For dead letters: why.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<DeadReason>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The tail fell behind and missed this many records.
    Lagged { missed: u64 },
}

impl Activity {
    pub fn bus(&self) -> Option<&str> {
        match self {
            Activity::Published { bus, .. } | Activity::Attempted { bus, .. } => Some(bus),
            Activity::Lagged { .. } => None,
        }
    }

    pub fn subscription(&self) -> Option<&str> {
        match self {
            Activity::Attempted { subscription, .. } => Some(subscription),
            _ => None,
        }
    }
}
