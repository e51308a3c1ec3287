//! A source as the user writes it: the body of `PUT /v1/sources/{name}` and the table
//! `[sources.NAME]` of the config file, which have exactly the same fields.
//!
//! Defaults live here, on the types, so an omitted field means the same thing everywhere.
//! [`parse_source_spec`] names the offending field of any bad input and then checks what types
//! alone cannot. A spec may lack its secret (it was moved out to be stored encrypted, see
//! [`SourceSpec::take_secret`]); [`crate::Source::new`] is where a missing secret is refused.
//!
//! Serializing a spec never writes its secret: the serialized form is what `GET` shows and what
//! may be stored in plain text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Secret, SourceError};
use switchyard_destination::validate_header_token;
use switchyard_model::Network;

/// Replay window of the presets that sign a timestamp: Slack's documented 5 minutes, and the
/// default of Stripe's and the Standard Webhooks reference libraries.
pub const DEFAULT_TOLERANCE_S: u64 = 300;
/// A longer window would make a captured request replayable for too long to be worth a check.
const MAX_TOLERANCE_S: u64 = 3_600;
/// EventBridge's limits for the fields an event takes from here.
const MAX_SOURCE_LEN: usize = 256;
pub(crate) const MAX_DETAIL_TYPE_LEN: usize = 128;
/// The immediate answer is sent inside the sender's deadline; it is a short acknowledgement.
const MAX_RESPONSE_BODY: usize = 16 * 1024;
const MAX_NETWORKS: usize = 1_000;

/// A source: where its events go, how senders are verified, what they are answered, and how a
/// request becomes an event. Built by [`parse_source_spec`]; serializes without its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceSpec {
    /// The bus the events are published to.
    pub bus: String,
    /// How a request proves it comes from the sender.
    pub verify: VerifySpec,
    /// CIDR blocks (`"192.0.2.0/24"`, `"2001:db8::/32"`, or one address) that may send; empty
    /// means any network. Checked before the signature, and answered with 403.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_networks: Vec<String>,
    /// The answer to a request once its event is durable.
    pub response: ResponseSpec,
    /// How the event's `source` and `detail-type` are chosen.
    pub event: EventSpec,
}

/// The fields of a source other than `verify`, which is parsed apart so that its errors can
/// name the field inside the preset (`verify.tolerance_s`): serde's tagged enums lose the path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFields {
    bus: String,
    #[serde(default)]
    allowed_networks: Vec<String>,
    #[serde(default)]
    response: ResponseSpec,
    #[serde(default)]
    event: EventSpec,
}

/// The verification preset, `{"type": "...", ...}`. Each has exactly one secret field.
///
/// The secret is write-only: it is never serialized. As a client or the config file writes it,
/// it may also be a `file:/path` or sealed reference, which the server resolves before
/// [`crate::Source::new`] gets the value itself. `None` means the secret was moved out to be
/// stored sealed ([`SourceSpec::take_secret`]), or a `PUT` left it out to keep the current one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum VerifySpec {
    /// `slack`: Slack's signed requests; a verified `url_verification` or `ssl_check` is
    /// answered as a handshake and never published.
    #[serde(rename = "slack")]
    Slack(SlackVerify),
    /// `github`: GitHub's `X-Hub-Signature-256`; by default the `detail-type` is the
    /// `X-GitHub-Event` header.
    #[serde(rename = "github")]
    Github(GithubVerify),
    /// `stripe`: Stripe's `Stripe-Signature`, with a signed timestamp.
    #[serde(rename = "stripe")]
    Stripe(StripeVerify),
    /// `standard-webhooks`: the Standard Webhooks scheme (Svix and the senders that follow it).
    #[serde(rename = "standard-webhooks")]
    StandardWebhooks(StandardWebhooksVerify),
    /// `hmac`: any other sender's HMAC signature in one header, described field by field.
    #[serde(rename = "hmac")]
    Hmac(HmacVerify),
    /// `basic`: `Authorization: Basic` credentials, for senders that present a user and password
    /// rather than a signature.
    #[serde(rename = "basic")]
    Basic(BasicVerify),
    /// `api_key`: a shared key in a header, for senders that sign nothing.
    #[serde(rename = "api_key")]
    ApiKey(ApiKeyVerify),
}

/// The values of `verify.type`.
const PRESETS: [&str; 7] = [
    "slack",
    "github",
    "stripe",
    "standard-webhooks",
    "hmac",
    "basic",
    "api_key",
];

/// `X-Slack-Signature: v0=hex(HMAC-SHA256(signing_secret, "v0:" + timestamp + ":" + body))`
/// with the timestamp in `X-Slack-Request-Timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackVerify {
    /// The Slack app's signing secret, the HMAC key; for `None` see [`VerifySpec`].
    #[serde(default, skip_serializing)]
    pub signing_secret: Option<Secret>,
    /// Seconds `X-Slack-Request-Timestamp` may be from now, either way, before the request is
    /// refused as a replay: 1 to 3600, default [`DEFAULT_TOLERANCE_S`].
    #[serde(default = "default_tolerance_s")]
    pub tolerance_s: u64,
}

/// `X-Hub-Signature-256: sha256=hex(HMAC-SHA256(secret, body))`; GitHub signs no timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubVerify {
    /// The webhook's secret as entered on GitHub, the HMAC key; for `None` see [`VerifySpec`].
    #[serde(default, skip_serializing)]
    pub secret: Option<Secret>,
}

/// `Stripe-Signature: t=TIMESTAMP,v1=hex(HMAC-SHA256(secret, TIMESTAMP + "." + body))`, with any
/// number of `v1=` entries (one per active secret while Stripe rolls them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeVerify {
    /// The endpoint's signing secret (`whsec_...`), whole text as the HMAC key, as Stripe's
    /// libraries use it; for `None` see [`VerifySpec`].
    #[serde(default, skip_serializing)]
    pub secret: Option<Secret>,
    /// Seconds the header's `t=` may be from now, either way, before the request is refused as
    /// a replay: 1 to 3600, default [`DEFAULT_TOLERANCE_S`].
    #[serde(default = "default_tolerance_s")]
    pub tolerance_s: u64,
}

/// `webhook-signature: v1,base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))`, any
/// number of space-separated entries, with `webhook-id` and `webhook-timestamp`; the secret is
/// `whsec_` (which may be left out) + base64 of a 24 to 64 byte key, by the rules of
/// `switchyard_destination::standard_webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardWebhooksVerify {
    /// `whsec_` + base64 of the key, as above, checked when the source is compiled; for `None`
    /// see [`VerifySpec`].
    #[serde(default, skip_serializing)]
    pub secret: Option<Secret>,
    /// Seconds `webhook-timestamp` may be from now, either way, before the request is refused
    /// as a replay: 1 to 3600, default [`DEFAULT_TOLERANCE_S`].
    #[serde(default = "default_tolerance_s")]
    pub tolerance_s: u64,
}

/// Any HMAC scheme of the shape `header: prefix + encode(HMAC(secret, signed_payload))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacVerify {
    /// The request header that carries the signature.
    pub header: String,
    /// The HMAC's hash function; default SHA-256.
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// How the header writes the signature's bytes after the prefix; default hex.
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Text before the encoded signature in the header, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The header with the Unix time (seconds) of the request, when the sender signs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// What is signed, with `{body}` and (with a timestamp header) `{timestamp}`; default
    /// `{timestamp}.{body}` with a timestamp header and `{body}` without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_payload: Option<String>,
    /// Used only with `timestamp_header`.
    #[serde(default = "default_tolerance_s")]
    pub tolerance_s: u64,
    /// The shared secret, its UTF-8 bytes as the HMAC key; for `None` see [`VerifySpec`].
    #[serde(default, skip_serializing)]
    pub secret: Option<Secret>,
}

/// `Authorization: Basic base64(username:password)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicVerify {
    /// The user name senders must present: 1 or more characters, without `:` or control
    /// characters.
    pub username: String,
    /// The password senders must present with it; for `None` see [`VerifySpec`].
    #[serde(default, skip_serializing)]
    pub password: Option<Secret>,
}

/// A shared key in a header, e.g. `X-API-Key: KEY` or `Authorization: Bearer KEY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyVerify {
    /// The request header that carries the key; default `X-API-Key`.
    #[serde(default = "default_api_key_header")]
    pub header: String,
    /// Text before the key in the header, e.g. `Bearer `; matched without regard to case.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The key senders must present, compared whole after the prefix; for `None` see
    /// [`VerifySpec`].
    #[serde(default, skip_serializing)]
    pub key: Option<Secret>,
}

/// The hash function of the `hmac` preset, as `verify.algorithm` names it in lower case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// `sha256`, a 32-byte signature: the default, and what most senders use.
    #[default]
    Sha256,
    /// `sha384`, a 48-byte signature.
    Sha384,
    /// `sha512`, a 64-byte signature.
    Sha512,
    /// Only for senders that offer nothing better.
    Sha1,
}

/// How the `hmac` preset's header writes the signature's bytes, as `verify.encoding` names it:
/// `hex` or `base64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Either case is accepted.
    #[default]
    Hex,
    /// Standard alphabet, with padding.
    Base64,
}

/// The answer sent once the event is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// 200 to 299: anything else would tell the sender its delivery failed.
    #[serde(default = "default_status")]
    pub status: u16,
    /// A JSON string is sent as text; any other JSON value is sent as JSON. None: empty body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Default: `text/plain; charset=utf-8` for a string body, `application/json` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl Default for ResponseSpec {
    fn default() -> Self {
        ResponseSpec {
            status: default_status(),
            body: None,
            content_type: None,
        }
    }
}

/// The event's `source` and `detail-type`; the `detail` is always the request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// The event's `source`; default: the source's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A fixed `detail-type` for every event, instead of the preset's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_type: Option<String>,
    /// Take `detail-type` from this request header (e.g. `X-Gitlab-Event`) when present, else
    /// the preset's choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_type_header: Option<String>,
}

fn default_tolerance_s() -> u64 {
    DEFAULT_TOLERANCE_S
}
fn default_status() -> u16 {
    200
}
fn default_api_key_header() -> String {
    "X-API-Key".to_string()
}

/// Parses and validates a source body (JSON). The secret may be absent; see the module doc.
pub fn parse_source_spec(text: &str) -> Result<SourceSpec, SourceError> {
    let mut fields: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            SourceError::invalid(format!("the source is not valid JSON: {e}"))
        } else {
            SourceError::invalid("the source must be a JSON object")
        }
    })?;
    let verify = fields
        .remove("verify")
        .ok_or_else(|| SourceError::invalid("field \"verify\" is required"))?;
    let verify = parse_verify(verify)?;
    let rest: SpecFields = from_value(Value::Object(fields), None)?;
    let spec = SourceSpec {
        bus: rest.bus,
        verify,
        allowed_networks: rest.allowed_networks,
        response: rest.response,
        event: rest.event,
    };
    spec.validate()?;
    Ok(spec)
}

fn parse_verify(value: Value) -> Result<VerifySpec, SourceError> {
    let Value::Object(mut fields) = value else {
        return Err(SourceError::invalid(
            "field \"verify\" must be an object with a \"type\"",
        ));
    };
    let kind = match fields.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            return Err(SourceError::invalid(format!(
                "field \"verify.type\" is required: one of {PRESETS:?}"
            )));
        }
    };
    let rest = Value::Object(fields);
    let at = Some("verify");
    Ok(match kind.as_str() {
        "slack" => VerifySpec::Slack(from_value(rest, at)?),
        "github" => VerifySpec::Github(from_value(rest, at)?),
        "stripe" => VerifySpec::Stripe(from_value(rest, at)?),
        "standard-webhooks" => VerifySpec::StandardWebhooks(from_value(rest, at)?),
        "hmac" => VerifySpec::Hmac(from_value(rest, at)?),
        "basic" => VerifySpec::Basic(from_value(rest, at)?),
        "api_key" => VerifySpec::ApiKey(from_value(rest, at)?),
        other => {
            return Err(SourceError::invalid(format!(
                "field \"verify.type\": {other:?} is not a preset; use one of {PRESETS:?}"
            )));
        }
    })
}

/// Deserializes `value`, naming the field of a type error (`verify.tolerance_s: ...`).
fn from_value<T: serde::de::DeserializeOwned>(
    value: Value,
    parent: Option<&str>,
) -> Result<T, SourceError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = match (parent, path.as_str()) {
            (None, ".") => return SourceError::invalid(format!("the source: {message}")),
            (Some(parent), ".") => parent.to_string(),
            (None, path) => path.to_string(),
            (Some(parent), path) => format!("{parent}.{path}"),
        };
        SourceError::invalid(format!("field \"{field}\": {message}"))
    })
}

impl SourceSpec {
    /// Checks what the types cannot: names, ranges, CIDR blocks, header names, the template.
    /// Does not require the secret.
    pub fn validate(&self) -> Result<(), SourceError> {
        switchyard_model::validate_name("bus", &self.bus)
            .map_err(|e| SourceError::invalid(format!("field \"bus\": {e}")))?;
        self.networks()?;
        self.verify.validate()?;
        self.response.validate()?;
        self.event.validate()?;
        Ok(())
    }

    /// The preset's one secret, if the spec holds it.
    pub fn secret(&self) -> Option<&Secret> {
        self.verify.secret()
    }

    /// Where the secret goes in the body, for messages: `verify.signing_secret`.
    pub fn secret_field(&self) -> &'static str {
        match self.verify {
            VerifySpec::Slack(_) => "verify.signing_secret",
            VerifySpec::Basic(_) => "verify.password",
            VerifySpec::ApiKey(_) => "verify.key",
            VerifySpec::Github(_)
            | VerifySpec::Stripe(_)
            | VerifySpec::StandardWebhooks(_)
            | VerifySpec::Hmac(_) => "verify.secret",
        }
    }

    /// Moves the secret out, e.g. to encrypt it and store it apart from the rest of the spec.
    pub fn take_secret(&mut self) -> Option<Secret> {
        self.verify.secret_slot().take()
    }

    /// Puts a secret (back) in, e.g. one decrypted from the store or kept from the previous
    /// version when a `PUT` omits it.
    pub fn set_secret(&mut self, secret: Secret) {
        *self.verify.secret_slot() = Some(secret);
    }

    pub(crate) fn networks(&self) -> Result<Vec<Network>, SourceError> {
        if self.allowed_networks.len() > MAX_NETWORKS {
            return Err(SourceError::invalid(format!(
                "field \"allowed_networks\" has {} entries; at most {MAX_NETWORKS}",
                self.allowed_networks.len()
            )));
        }
        self.allowed_networks
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Network::parse(text).map_err(|why| {
                    SourceError::invalid(format!("field \"allowed_networks[{i}]\": {why}"))
                })
            })
            .collect()
    }
}

impl VerifySpec {
    fn secret_slot(&mut self) -> &mut Option<Secret> {
        match self {
            VerifySpec::Slack(v) => &mut v.signing_secret,
            VerifySpec::Github(v) => &mut v.secret,
            VerifySpec::Stripe(v) => &mut v.secret,
            VerifySpec::StandardWebhooks(v) => &mut v.secret,
            VerifySpec::Hmac(v) => &mut v.secret,
            VerifySpec::Basic(v) => &mut v.password,
            VerifySpec::ApiKey(v) => &mut v.key,
        }
    }

    fn secret(&self) -> Option<&Secret> {
        match self {
            VerifySpec::Slack(v) => v.signing_secret.as_ref(),
            VerifySpec::Github(v) => v.secret.as_ref(),
            VerifySpec::Stripe(v) => v.secret.as_ref(),
            VerifySpec::StandardWebhooks(v) => v.secret.as_ref(),
            VerifySpec::Hmac(v) => v.secret.as_ref(),
            VerifySpec::Basic(v) => v.password.as_ref(),
            VerifySpec::ApiKey(v) => v.key.as_ref(),
        }
    }

    /// The preset's name as written in `"type"`; also a good metrics label.
    pub fn preset(&self) -> &'static str {
        match self {
            VerifySpec::Slack(_) => "slack",
            VerifySpec::Github(_) => "github",
            VerifySpec::Stripe(_) => "stripe",
            VerifySpec::StandardWebhooks(_) => "standard-webhooks",
            VerifySpec::Hmac(_) => "hmac",
            VerifySpec::Basic(_) => "basic",
            VerifySpec::ApiKey(_) => "api_key",
        }
    }

    fn validate(&self) -> Result<(), SourceError> {
        match self {
            VerifySpec::Slack(SlackVerify { tolerance_s, .. })
            | VerifySpec::Stripe(StripeVerify { tolerance_s, .. })
            | VerifySpec::StandardWebhooks(StandardWebhooksVerify { tolerance_s, .. }) => {
                validate_tolerance(*tolerance_s)
            }
            VerifySpec::Github(_) => Ok(()),
            VerifySpec::Hmac(hmac) => {
                validate_header_token("verify.header", &hmac.header)?;
                if let Some(name) = &hmac.timestamp_header {
                    validate_header_token("verify.timestamp_header", name)?;
                }
                if has_control(&hmac.prefix) {
                    return Err(SourceError::invalid(
                        "field \"verify.prefix\" must not contain control characters",
                    ));
                }
                validate_tolerance(hmac.tolerance_s)?;
                parse_template(
                    hmac.signed_payload.as_deref(),
                    hmac.timestamp_header.is_some(),
                )?;
                Ok(())
            }
            VerifySpec::Basic(basic) => {
                let name = &basic.username;
                if name.is_empty() || name.contains(':') || has_control(name) {
                    return Err(SourceError::invalid(
                        "field \"verify.username\" must be 1 or more characters without ':' or control characters",
                    ));
                }
                Ok(())
            }
            VerifySpec::ApiKey(api_key) => {
                validate_header_token("verify.header", &api_key.header)?;
                if has_control(&api_key.prefix) {
                    return Err(SourceError::invalid(
                        "field \"verify.prefix\" must not contain control characters",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// One piece of an HMAC preset's signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    Timestamp,
    Body,
}

/// Splits a `signed_payload` template into its parts. Braces are only for the two placeholders,
/// so a typo such as `{timestmp}` is an error here rather than a signature that never matches.
pub(crate) fn parse_template(
    template: Option<&str>,
    has_timestamp: bool,
) -> Result<Vec<Part>, SourceError> {
    let template = template.unwrap_or(if has_timestamp {
        "{timestamp}.{body}"
    } else {
        "{body}"
    });
    let bad = |why: &str| SourceError::invalid(format!("field \"verify.signed_payload\": {why}"));
    let mut parts = Vec::new();
    let mut rest = template;
    let mut bodies = 0;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                parts.push(Part::Text(rest.to_string()));
                break;
            }
            Some(at) => {
                if at > 0 {
                    parts.push(Part::Text(rest[..at].to_string()));
                }
                let placeholder = &rest[at..];
                if let Some(after) = placeholder.strip_prefix("{body}") {
                    bodies += 1;
                    parts.push(Part::Body);
                    rest = after;
                } else if let Some(after) = placeholder.strip_prefix("{timestamp}") {
                    if !has_timestamp {
                        return Err(bad(
                            "{timestamp} needs \"verify.timestamp_header\" to say where the timestamp is",
                        ));
                    }
                    parts.push(Part::Timestamp);
                    rest = after;
                } else {
                    return Err(bad(
                        "braces are only for the placeholders {body} and {timestamp}",
                    ));
                }
            }
        }
    }
    if bodies != 1 {
        return Err(bad("must contain {body} exactly once"));
    }
    if has_timestamp && !parts.contains(&Part::Timestamp) {
        return Err(bad(
            "must contain {timestamp}: a timestamp that is not signed proves nothing",
        ));
    }
    Ok(parts)
}

fn validate_tolerance(tolerance_s: u64) -> Result<(), SourceError> {
    if !(1..=MAX_TOLERANCE_S).contains(&tolerance_s) {
        return Err(SourceError::invalid(format!(
            "field \"verify.tolerance_s\" must be 1 to {MAX_TOLERANCE_S} seconds"
        )));
    }
    Ok(())
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

impl ResponseSpec {
    fn validate(&self) -> Result<(), SourceError> {
        if !(200..=299).contains(&self.status) {
            return Err(SourceError::invalid(
                "field \"response.status\" must be 200 to 299: the sender must see success once its event is durable",
            ));
        }
        if let Some(content_type) = &self.content_type {
            let visible = !content_type.is_empty()
                && content_type
                    .bytes()
                    .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic());
            if !visible {
                return Err(SourceError::invalid(
                    "field \"response.content_type\" must be a non-empty header value of visible ASCII",
                ));
            }
        }
        if self.encoded_body().len() > MAX_RESPONSE_BODY {
            return Err(SourceError::invalid(format!(
                "field \"response.body\" is over {MAX_RESPONSE_BODY} bytes"
            )));
        }
        Ok(())
    }

    /// The body's bytes as sent.
    pub(crate) fn encoded_body(&self) -> Vec<u8> {
        match &self.body {
            None => Vec::new(),
            Some(serde_json::Value::String(text)) => text.clone().into_bytes(),
            Some(value) => value.to_string().into_bytes(),
        }
    }

    /// The content type as sent, if there is a body or one was configured.
    pub(crate) fn effective_content_type(&self) -> Option<String> {
        match (&self.content_type, &self.body) {
            (Some(content_type), _) => Some(content_type.clone()),
            (None, None) => None,
            (None, Some(serde_json::Value::String(_))) => {
                Some("text/plain; charset=utf-8".to_string())
            }
            (None, Some(_)) => Some("application/json".to_string()),
        }
    }
}

impl EventSpec {
    fn validate(&self) -> Result<(), SourceError> {
        if let Some(source) = &self.source {
            validate_event_text("event.source", source, MAX_SOURCE_LEN)?;
        }
        if let Some(detail_type) = &self.detail_type {
            validate_event_text("event.detail_type", detail_type, MAX_DETAIL_TYPE_LEN)?;
        }
        if let Some(header) = &self.detail_type_header {
            if self.detail_type.is_some() {
                return Err(SourceError::invalid(
                    "fields \"event.detail_type\" and \"event.detail_type_header\" exclude each other: set one",
                ));
            }
            validate_header_token("event.detail_type_header", header)?;
        }
        Ok(())
    }
}

fn validate_event_text(field: &str, text: &str, max: usize) -> Result<(), SourceError> {
    if text.is_empty() || text.len() > max || has_control(text) {
        return Err(SourceError::invalid(format!(
            "field \"{field}\" must be 1 to {max} bytes without control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_source_spec(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_and_round_trip_without_the_secret() {
        let mut spec = parse_source_spec(
            r#"{"bus": "jobs", "verify": {"type": "slack", "signing_secret": "s3cr3t"}}"#,
        )
        .unwrap();
        assert_eq!(
            spec.verify,
            VerifySpec::Slack(SlackVerify {
                signing_secret: Some(Secret::new("s3cr3t")),
                tolerance_s: 300
            })
        );
        assert_eq!(spec.response, ResponseSpec::default());
        assert_eq!(spec.response.status, 200);
        assert_eq!(spec.event, EventSpec::default());
        assert_eq!(spec.secret_field(), "verify.signing_secret");

        let public = serde_json::to_string(&spec).unwrap();
        assert!(!public.contains("s3cr3t"), "{public}");
        assert!(!format!("{spec:?}").contains("s3cr3t"));

        let secret = spec.take_secret().unwrap();
        assert_eq!(secret.expose(), "s3cr3t");
        let mut reloaded = parse_source_spec(&public).unwrap();
        assert_eq!(reloaded, spec);
        reloaded.set_secret(secret);
        assert_eq!(reloaded.secret().map(Secret::expose), Some("s3cr3t"));
    }

    #[test]
    fn errors_name_the_field() {
        assert!(error(r#"{"verify": {"type": "github"}}"#).contains("bus"));
        assert!(error(r#"{"bus": "b", "verify": {"type": "nope"}}"#).contains("verify"));
        let e = error(r#"{"bus": "b", "verify": {"type": "github", "secrt": "x"}}"#);
        assert!(e.contains("verify") && e.contains("secrt"), "{e}");
        let e = error(r#"{"bus": "b", "verify": {"type": "slack", "tolerance_s": 0}}"#);
        assert!(e.contains("verify.tolerance_s"), "{e}");
        let e = error(r#"{"bus": "b/c", "verify": {"type": "github"}}"#);
        assert!(e.contains("\"bus\""), "{e}");
        let e = error(
            r#"{"bus": "b", "verify": {"type": "github"}, "allowed_networks": ["10.0.0.0/8", "nope"]}"#,
        );
        assert!(e.contains("allowed_networks[1]"), "{e}");
        let e = error(r#"{"bus": "b", "verify": {"type": "github"}, "response": {"status": 500}}"#);
        assert!(e.contains("response.status"), "{e}");
        let e = error(r#"{"bus": "b", "verify": {"type": "github"}, "event": {"source": ""}}"#);
        assert!(e.contains("event.source"), "{e}");
        let e = error(
            r#"{"bus": "b", "verify": {"type": "github"}, "event": {"detail_type": "x", "detail_type_header": "X-Y"}}"#,
        );
        assert!(e.contains("event.detail_type_header"), "{e}");
        let e = error(r#"{"bus": "b", "verify": {"type": "hmac", "header": "bad header"}}"#);
        assert!(e.contains("verify.header"), "{e}");
        let e = error(
            r#"{"bus": "b", "verify": {"type": "hmac", "header": "X-Sig", "algorithm": "md5"}}"#,
        );
        assert!(e.contains("verify.algorithm"), "{e}");
        let e = error(r#"{"bus": "b", "verify": {"type": "basic", "username": "a:b"}}"#);
        assert!(e.contains("verify.username"), "{e}");
        let e = error(r#"{"bus": "b", "verify": {"type": "stripe", "tolerance_s": "5"}}"#);
        assert!(e.starts_with("field \"verify.tolerance_s\""), "{e}");
        let e = error(r#"{"bus": "b", "verify": {"type": "github"}, "response": {"status": "x"}}"#);
        assert!(e.starts_with("field \"response.status\""), "{e}");
        assert!(error(r#"{"bus": "b"}"#).contains("\"verify\" is required"));
        assert!(error(r#"{"bus": "b", "verify": {}}"#).contains("verify.type"));
        assert!(error("[]").contains("JSON object"));
        assert!(error("{").contains("not valid JSON"));
    }

    #[test]
    fn templates() {
        assert_eq!(parse_template(None, false).unwrap(), vec![Part::Body]);
        assert_eq!(
            parse_template(None, true).unwrap(),
            vec![Part::Timestamp, Part::Text(".".into()), Part::Body]
        );
        assert_eq!(
            parse_template(Some("v0:{timestamp}:{body}"), true).unwrap(),
            vec![
                Part::Text("v0:".into()),
                Part::Timestamp,
                Part::Text(":".into()),
                Part::Body
            ]
        );
        for (bad, has_timestamp) in [
            ("{timestamp}.{body}", false),
            ("{body}", true),
            ("{body}{body}", false),
            ("x", false),
            ("{timestmp}.{body}", true),
            ("{body}}", false),
        ] {
            let e = parse_template(Some(bad), has_timestamp)
                .unwrap_err()
                .to_string();
            assert!(e.contains("verify.signed_payload"), "{bad}: {e}");
        }
    }

    #[test]
    fn response_bodies() {
        let json: ResponseSpec = serde_json::from_str(
            r#"{"body": {"response_type": "ephemeral", "text": "Working on it..."}}"#,
        )
        .unwrap();
        assert_eq!(
            json.effective_content_type().as_deref(),
            Some("application/json")
        );
        assert_eq!(
            json.encoded_body(),
            br#"{"response_type":"ephemeral","text":"Working on it..."}"#
        );
        let text: ResponseSpec = serde_json::from_str(r#"{"body": "ok"}"#).unwrap();
        assert_eq!(text.encoded_body(), b"ok");
        assert_eq!(
            text.effective_content_type().as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(ResponseSpec::default().effective_content_type(), None);
    }
}
