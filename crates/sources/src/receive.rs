//! One received webhook in, one decision out: refuse it, answer a handshake, or publish an event
//! and answer the sender.
//!
//! [`Source::receive`] is a pure function of the request and the clock: the caller (the HTTP
//! handler) does the I/O, publishes [`Outcome::Publish`]'s event, and sends its answer only once
//! the event is durable. Checks run cheapest and least revealing first: network, method,
//! signature, then the body; nothing of an unverified body is parsed.

use std::fmt;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::body::Body;
use crate::spec::{MAX_DETAIL_TYPE_LEN, SourceSpec, VerifySpec};
use crate::verify::{Check, Headers};
use crate::{Secret, SourceError};
use switchyard_model::Network;

/// A request as the HTTP layer received it. Deliberately not `Debug`: it holds signatures and
/// the full payload, which must not reach a log.
#[derive(Clone, Copy)]
pub struct Webhook<'a> {
    /// The HTTP method as received, in any case; anything but `POST` is refused with 405.
    pub method: &'a str,
    /// Name/value pairs in the order received; names in any case.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The raw body, byte for byte: signatures are over these bytes, not a re-encoding.
    pub body: &'a [u8],
    /// The peer's address (the caller decides whether a proxy's forwarded address is trusted).
    pub peer: IpAddr,
    /// When the request arrived, by the caller's clock (this crate reads none): a signed
    /// timestamp more than the preset's `tolerance_s` away from it is refused as stale.
    pub now: SystemTime,
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Publish nothing, answer with the refusal's status, count the reason.
    Refused(Refusal),
    /// A verified handshake (Slack's `url_verification` challenge, Slack's `ssl_check`):
    /// publish nothing, send this answer.
    Challenge(Answer),
    /// Publish the event; once it is durable, send the answer.
    Publish {
        /// What to publish to the source's bus.
        event: EventFields,
        /// The source's configured `response`, to send only after the event is durable.
        answer: Answer,
    },
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, as a stable code; it also decides the HTTP status ([`Refusal::status`]).
    pub reason: Reason,
    /// For the error body and the log: names the header at fault, never a secret or signature.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.reason.status()
    }
}

/// Why a request was refused; [`Reason::as_str`] is the stable code for the error body and the
/// metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// 403: the peer is outside `allowed_networks`.
    NetworkNotAllowed,
    /// 405: webhooks are POSTed.
    MethodNotAllowed,
    /// 401: the signature header (or, for Standard Webhooks, `webhook-id`) is absent.
    MissingSignature,
    /// 401: the signature is malformed or does not match the body and secret.
    BadSignature,
    /// 401: the signed timestamp is absent.
    MissingTimestamp,
    /// 401: the timestamp is not Unix seconds.
    BadTimestamp,
    /// 401: the timestamp is further from now than the tolerance: a replay, or a skewed clock.
    StaleTimestamp,
    /// 401: the `basic` / `api_key` header is absent.
    MissingCredentials,
    /// 401: the credentials are not the configured ones.
    BadCredentials,
    /// 400: the verified body claims to be JSON but is not, or is not UTF-8 text.
    InvalidBody,
}

impl Reason {
    /// Every reason once, in declaration order: the complete set of refusal codes.
    pub const ALL: [Reason; 10] = [
        Reason::NetworkNotAllowed,
        Reason::MethodNotAllowed,
        Reason::MissingSignature,
        Reason::BadSignature,
        Reason::MissingTimestamp,
        Reason::BadTimestamp,
        Reason::StaleTimestamp,
        Reason::MissingCredentials,
        Reason::BadCredentials,
        Reason::InvalidBody,
    ];

    /// The stable snake_case code (`bad_signature`): the error body's `code`, and the `reason`
    /// label of `switchyard_source_refusals_total` and of the "webhook refused" log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NetworkNotAllowed => "network_not_allowed",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::MissingSignature => "missing_signature",
            Reason::BadSignature => "bad_signature",
            Reason::MissingTimestamp => "missing_timestamp",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::MissingCredentials => "missing_credentials",
            Reason::BadCredentials => "bad_credentials",
            Reason::InvalidBody => "invalid_body",
        }
    }

    /// The HTTP status to refuse with: 400, 401, 403 or 405, as each variant says.
    pub(crate) fn status(self) -> u16 {
        match self {
            Reason::NetworkNotAllowed => 403,
            Reason::MethodNotAllowed => 405,
            Reason::InvalidBody => 400,
            Reason::MissingSignature
            | Reason::BadSignature
            | Reason::MissingTimestamp
            | Reason::BadTimestamp
            | Reason::StaleTimestamp
            | Reason::MissingCredentials
            | Reason::BadCredentials => 401,
        }
    }
}

/// An HTTP answer to send as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status: 200 to 299 for a configured `response` (validated), 200 for a handshake.
    pub status: u16,
    /// `None`: send no `Content-Type` (the body is then empty).
    pub content_type: Option<String>,
    /// The body's bytes as sent; empty for no body.
    pub body: Vec<u8>,
}

/// The event to publish to the source's bus; `id`, `time` and the envelope are the publish
/// path's to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFields {
    /// The event's `source`: the spec's `event.source`, or else the source's name.
    pub source: String,
    /// The event's `detail-type`: the spec's fixed `event.detail_type`; else the trimmed value
    /// of its `event.detail_type_header` or the preset's choice; else, when that is absent or
    /// not 1 to 128 bytes without control characters, `webhook`.
    pub detail_type: String,
    /// A JSON object, as text.
    pub detail: String,
}

impl EventFields {
    /// The event as a publish body, `{"source", "detail-type", "detail"}`, for
    /// `switchyard_model::parse_publish_request`, so a source's events pass the same
    /// validation and size limit as any other.
    pub fn to_publish_json(&self) -> String {
        let quote = |text: &str| serde_json::Value::String(text.to_string()).to_string();
        format!(
            "{{\"source\":{},\"detail-type\":{},\"detail\":{}}}",
            quote(&self.source),
            quote(&self.detail_type),
            self.detail
        )
    }
}

/// Which request field picks the `detail-type`.
enum DetailType {
    Fixed(String),
    Header(String),
    Preset,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Preset {
    Slack,
    Github,
    Other,
}

/// The `detail-type` when nothing in the request names one.
const FALLBACK_DETAIL_TYPE: &str = "webhook";
const GITHUB_EVENT: &str = "X-GitHub-Event";

/// A source ready to receive: keys decoded, networks parsed, answer encoded.
pub struct Source {
    name: String,
    bus: String,
    preset: Preset,
    preset_name: &'static str,
    check: Check,
    networks: Vec<Network>,
    answer: Answer,
    event_source: String,
    detail_type: DetailType,
}

impl fmt::Debug for Source {
    /// Name, bus and preset only: the check holds key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("bus", &self.bus)
            .field("preset", &self.preset_name)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Compiles a validated spec with its secret. Fails if the secret is missing or unusable
    /// (the message names the field, never the value).
    pub fn new(name: &str, spec: &SourceSpec) -> Result<Source, SourceError> {
        switchyard_model::validate_name("source", name)
            .map_err(|e| SourceError::invalid(e.to_string()))?;
        spec.validate()?;
        let field = spec.secret_field();
        let secret: &Secret = match spec.secret() {
            Some(secret) if !secret.expose().is_empty() => secret,
            Some(_) => {
                return Err(SourceError::invalid(format!(
                    "field \"{field}\" must not be empty"
                )));
            }
            None => {
                return Err(SourceError::invalid(format!(
                    "field \"{field}\" is required"
                )));
            }
        };
        let check = Check::new(&spec.verify, secret, field)?;
        let preset = match spec.verify {
            VerifySpec::Slack(_) => Preset::Slack,
            VerifySpec::Github(_) => Preset::Github,
            _ => Preset::Other,
        };
        let detail_type = match (&spec.event.detail_type, &spec.event.detail_type_header) {
            (Some(fixed), _) => DetailType::Fixed(fixed.clone()),
            (None, Some(header)) => DetailType::Header(header.clone()),
            (None, None) => DetailType::Preset,
        };
        Ok(Source {
            name: name.to_string(),
            bus: spec.bus.clone(),
            preset,
            preset_name: spec.verify.preset(),
            check,
            networks: spec.networks()?,
            answer: Answer {
                status: spec.response.status,
                content_type: spec.response.effective_content_type(),
                body: spec.response.encoded_body(),
            },
            event_source: spec
                .event
                .source
                .clone()
                .unwrap_or_else(|| name.to_string()),
            detail_type,
        })
    }

    /// The bus this source publishes to.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// The preset's name (`slack`, `github`, ...), e.g. for a metrics label.
    pub fn preset(&self) -> &'static str {
        self.preset_name
    }

    /// Decides what to do with a request. See the module doc for the order of the checks.
    pub fn receive(&self, webhook: &Webhook) -> Outcome {
        match self.decide(webhook) {
            Ok(outcome) => outcome,
            Err(refusal) => Outcome::Refused(refusal),
        }
    }

    fn decide(&self, webhook: &Webhook) -> Result<Outcome, Refusal> {
        if !self.networks.is_empty() && !self.networks.iter().any(|n| n.contains(webhook.peer)) {
            return Err(Refusal::new(
                Reason::NetworkNotAllowed,
                format!(
                    "{} is not in the source's allowed networks",
                    webhook.peer.to_canonical()
                ),
            ));
        }
        if !webhook.method.eq_ignore_ascii_case("POST") {
            return Err(Refusal::new(
                Reason::MethodNotAllowed,
                "webhooks are sent with POST",
            ));
        }
        let headers = Headers(webhook.headers);
        let now_s = webhook
            .now
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.check.verify(headers, webhook.body, now_s)?;
        let body = Body::parse(headers.text("Content-Type"), webhook.body)
            .map_err(|why| Refusal::new(Reason::InvalidBody, why))?;
        if self.preset == Preset::Slack
            && let Some(answer) = slack_handshake(&body)
        {
            return Ok(Outcome::Challenge(answer));
        }
        let detail_type = self.detail_type(headers, &body);
        Ok(Outcome::Publish {
            event: EventFields {
                source: self.event_source.clone(),
                detail_type,
                detail: body.into_detail(),
            },
            answer: self.answer.clone(),
        })
    }

    fn detail_type(&self, headers: Headers, body: &Body) -> String {
        let from_request = match &self.detail_type {
            DetailType::Fixed(fixed) => return fixed.clone(),
            DetailType::Header(header) => headers
                .text(header)
                .or_else(|| self.preset_detail_type(headers, body)),
            DetailType::Preset => self.preset_detail_type(headers, body),
        };
        from_request
            .map(str::trim)
            .filter(|t| {
                !t.is_empty() && t.len() <= MAX_DETAIL_TYPE_LEN && !t.chars().any(char::is_control)
            })
            .unwrap_or(FALLBACK_DETAIL_TYPE)
            .to_string()
    }

    /// Slack: `slash_command` for a command, else the body's (or interactive payload's)
    /// `type`; GitHub: the `X-GitHub-Event` header; others: the body's `type`.
    fn preset_detail_type<'a>(&self, headers: Headers<'a>, body: &'a Body) -> Option<&'a str> {
        match self.preset {
            Preset::Slack if body.form_field("command").is_some() => Some("slash_command"),
            Preset::Github => headers.text(GITHUB_EVENT),
            Preset::Slack | Preset::Other => body.field("type"),
        }
    }
}

/// Slack's handshakes, answered once the request is verified and never published:
/// `url_verification` (Events API; echo the challenge) and `ssl_check` (slash commands).
fn slack_handshake(body: &Body) -> Option<Answer> {
    if !body.is_form() && body.field("type") == Some("url_verification") {
        let challenge = body.field("challenge")?;
        return Some(Answer {
            status: 200,
            content_type: Some("application/json".into()),
            body: serde_json::json!({ "challenge": challenge })
                .to_string()
                .into_bytes(),
        });
    }
    body.form_field("ssl_check").map(|_| Answer {
        status: 200,
        content_type: None,
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_unique_and_statuses_are_refusals() {
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
        for reason in Reason::ALL {
            assert!((400..500).contains(&reason.status()), "{reason:?}");
        }
    }

    #[test]
    fn publish_json_is_a_model_publish_body() {
        let fields = EventFields {
            source: "slack".into(),
            detail_type: "slash_command".into(),
            detail: "{\"n\": 12345678901234567890}".into(),
        };
        let body = fields.to_publish_json();
        assert_eq!(
            body,
            "{\"source\":\"slack\",\"detail-type\":\"slash_command\",\"detail\":{\"n\": 12345678901234567890}}"
        );
        let context = switchyard_model::PublishContext {
            ingested_ms: 0,
            max_event_bytes: 256 * 1024,
            hops: 0,
            trace: switchyard_model::TraceContext::new_root(),
            aws: switchyard_model::AwsIdentity::default(),
        };
        let parsed = switchyard_model::parse_publish_request(&body, &context).unwrap();
        let event = parsed.entries[0].as_ref().unwrap();
        assert!(event.envelope.contains("12345678901234567890"));
    }
}
