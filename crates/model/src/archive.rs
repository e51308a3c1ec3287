//! Archives and replays: which events a bus keeps for later, and a request to send kept events
//! through subscriptions again.
//!
//! An archive keeps a copy of every event of its bus that its pattern matches, for
//! `retention_days`; a replay reads one archive's events of a time range, in publish order, and
//! publishes them again to chosen subscriptions with the top-level field `replay-name` added.
//! Replayed events are never archived again.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_pattern::Pattern;

use crate::time::parse_rfc3339_ms;
use crate::{ModelError, validate_name};

const DAY_MS: f64 = 86_400_000.0;
/// A century: far enough for anyone who does not mean "forever", which is 0.
const MAX_RETENTION_DAYS: f64 = 36_500.0;

/// An archive of a bus, as created by `PUT /v1/buses/{bus}/archives/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSpec {
    /// EventBridge pattern as JSON text; absent keeps every event of the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Box<RawValue>>,
    /// How long events are kept; 0 keeps them forever. Fractions are allowed (0.5 is 12 hours).
    #[serde(default)]
    pub retention_days: f64,
    /// Free text for people, at most [`crate::MAX_DESCRIPTION_BYTES`]; only shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ArchiveSpec {
    /// Checks what the types cannot: the description's length, the retention's range (0 to
    /// 36,500 days) and the pattern.
    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        crate::validate_description(self.description.as_deref())?;
        if !self.retention_days.is_finite()
            || !(0.0..=MAX_RETENTION_DAYS).contains(&self.retention_days)
        {
            return Err(ModelError::invalid(format!(
                "field \"retention_days\" must be 0 (keep forever) to {MAX_RETENTION_DAYS}"
            )));
        }
        self.compile_pattern().map(drop)
    }

    /// The compiled pattern, or `None` for an archive of every event of the bus.
    pub fn compile_pattern(&self) -> Result<Option<Pattern>, ModelError> {
        self.pattern
            .as_ref()
            .map(|text| Pattern::parse(text.get()))
            .transpose()
            .map_err(|e| ModelError::InvalidPattern(e.to_string()))
    }

    /// How long an event is kept, or `None` for ever.
    pub fn retention_ms(&self) -> Option<u64> {
        (self.retention_days > 0.0).then(|| (self.retention_days * DAY_MS).ceil() as u64)
    }
}

/// Parses and validates an archive body; an empty body is an archive of every event, kept forever.
pub fn parse_archive_spec(text: &str) -> Result<ArchiveSpec, ModelError> {
    if text.trim().is_empty() {
        return Ok(ArchiveSpec::default());
    }
    let spec: ArchiveSpec = switchyard_destination::parse_json(text, "the archive")
        .map_err(|e| ModelError::invalid(e.to_string()))?;
    spec.validate()?;
    Ok(spec)
}

/// A replay as requested by `POST /v1/replays`: times are inclusive-exclusive `[from, to)` on
/// the time the bus accepted each event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplaySpec {
    /// Names the replay in the API; every replayed event carries it as `replay-name`.
    pub name: String,
    /// The bus whose archive is read and whose subscriptions receive the events.
    pub bus: String,
    /// The archive of `bus` the events are read from.
    pub archive: String,
    /// Start of the range, inclusive: Unix ms of the time the bus accepted the event.
    pub from_ms: u64,
    /// End of the range, exclusive, in Unix ms; always after `from_ms`.
    pub to_ms: u64,
    /// Names of the bus's subscriptions to replay to; `None` means all of them, as they are when
    /// the replay starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<String>>,
}

/// Parses and validates a replay body: its names, its RFC 3339 `from` and `to` (which must be
/// in that order), and a non-empty `subscriptions` list when one is given.
pub fn parse_replay_spec(text: &str) -> Result<ReplaySpec, ModelError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        bus: String,
        archive: String,
        from: String,
        to: String,
        #[serde(default)]
        subscriptions: Option<Vec<String>>,
    }
    let body: Body = switchyard_destination::parse_json(text, "the replay")
        .map_err(|e| ModelError::invalid(e.to_string()))?;
    validate_name("replay", &body.name)?;
    validate_name("bus", &body.bus)?;
    validate_name("archive", &body.archive)?;
    let from_ms = parse_rfc3339_ms("from", &body.from)?;
    let to_ms = parse_rfc3339_ms("to", &body.to)?;
    if from_ms >= to_ms {
        return Err(ModelError::invalid(format!(
            "field \"from\" ({}) must be before field \"to\" ({})",
            body.from, body.to
        )));
    }
    if let Some(subscriptions) = &body.subscriptions {
        if subscriptions.is_empty() {
            return Err(ModelError::invalid(
                "field \"subscriptions\" is empty; leave it out to replay to every subscription of the bus",
            ));
        }
        for name in subscriptions {
            validate_name("subscription", name)?;
        }
    }
    Ok(ReplaySpec {
        name: body.name,
        bus: body.bus,
        archive: body.archive,
        from_ms,
        to_ms,
        subscriptions: body.subscriptions,
    })
}

/// Adds the top-level `replay-name` field to an envelope (a JSON object's text).
pub fn replayed_envelope(envelope: &str, replay: &str) -> String {
    let body = envelope.trim_end();
    let Some(inner) = body.strip_suffix('}') else {
        return envelope.to_string();
    };
    let name = serde_json::to_string(replay).unwrap_or_else(|_| String::from("\"\""));
    let separator = if inner.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    format!("{inner}{separator}\"replay-name\":{name}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_defaults_to_everything_forever() {
        let spec = parse_archive_spec("").unwrap();
        assert!(spec.pattern.is_none());
        assert_eq!(spec.retention_ms(), None);
        let spec = parse_archive_spec(r#"{"retention_days": 0.5}"#).unwrap();
        assert_eq!(spec.retention_ms(), Some(43_200_000));
    }

    #[test]
    fn archive_refuses_bad_retention_and_patterns() {
        let error = parse_archive_spec(r#"{"retention_days": -1}"#).unwrap_err();
        assert!(error.to_string().contains("retention_days"), "{error}");
        let error = parse_archive_spec(r#"{"retention_days": "7"}"#).unwrap_err();
        assert!(error.to_string().contains("retention_days"), "{error}");
        let error = parse_archive_spec(r#"{"pattern": {"source": "x"}}"#).unwrap_err();
        assert_eq!(error.code(), "invalid_pattern");
        let error = parse_archive_spec(r#"{"patern": {}}"#).unwrap_err();
        assert!(error.to_string().contains("patern"), "{error}");
    }

    #[test]
    fn replay_needs_an_ordered_time_range() {
        let ok = parse_replay_spec(
            r#"{"name":"r","bus":"b","archive":"a","from":"2026-11-24T10:00:00Z","to":"2026-11-24T11:00:00+01:00"}"#,
        );
        let error = ok.unwrap_err();
        assert!(error.to_string().contains("before"), "{error}");
        let spec = parse_replay_spec(
            r#"{"name":"r","bus":"b","archive":"a","from":"2026-11-24T10:00:00Z","to":"2026-11-24T10:00:00.001Z","subscriptions":["s"]}"#,
        )
        .unwrap();
        assert_eq!(spec.to_ms - spec.from_ms, 1);
        let error = parse_replay_spec(
            r#"{"name":"r","bus":"b","archive":"a","from":"yesterday","to":"2026-11-24T10:00:00Z"}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("\"from\""), "{error}");
        let error = parse_replay_spec(r#"{"name":"r","bus":"b"}"#).unwrap_err();
        assert!(error.to_string().contains("archive"), "{error}");
    }

    #[test]
    fn replayed_envelopes_carry_the_replay_name() {
        assert_eq!(
            replayed_envelope(r#"{"id":"1","detail":{}}"#, "fix-1"),
            r#"{"id":"1","detail":{},"replay-name":"fix-1"}"#
        );
        assert_eq!(replayed_envelope("{}", "r"), r#"{"replay-name":"r"}"#);
    }
}
