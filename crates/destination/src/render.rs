//! One attempt, rendered: from the stored envelope and a [`Destination`] to the method, URL,
//! headers and body to send. The dispatcher sends the result as it is.
//!
//! Pure: no I/O, no clock (the caller passes the time), no HTTP client. Secrets come in already
//! resolved ([`Credentials`]) and leave only in header values marked `sensitive` or in query
//! parameters that [`RenderedRequest::url_for_logs`] masks; `Debug` of every type here hides
//! them.
//!
//! Order of work: payload (transform, or the format's default) → body and headers of the format
//! → the connection's body members (into a JSON-object body only) → URL → the destination's headers → the connection's headers and auth → identity token →
//! `switchyard-*` headers → Standard Webhooks signature over the final body. A header set later
//! replaces one of the same name set earlier, so switchyard's own headers, auth and signatures
//! always win over configured ones.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_secrets::{REDACTED, Secret};

use crate::cloudevents;
use crate::config::{Format, HttpMethod};
use crate::connection::{Param, ResolvedAuth, ResolvedConnection};
use crate::destination::Destination;
use crate::error::RenderError;
use crate::json_path::object_members;
use crate::jwt::{Claims, IdentityKey};
use crate::standard_webhooks::{self, SigningSecret, signature_header, webhook_id};
use crate::transform::{Payload, Predefined};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const OCTETS: &str = "application/octet-stream";
const CLOUDEVENTS_JSON: &str = "application/cloudevents+json; charset=utf-8";
/// CloudEvents HTTP binding §3.1.3.2: space, `"`, `%` and everything outside printable ASCII is
/// percent-encoded in `ce-*` header values.
const CE_HEADER: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// The attempt being rendered.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The stored envelope: `{"version":"0","id","detail-type","source","time","resources","detail"}`.
    pub envelope: &'a str,
    /// The bus the event was published to: the `switchyard-bus` header and part of the
    /// identity token's `sub`.
    pub bus: &'a str,
    /// The subscription's name: the `switchyard-subscription` header and part of the identity
    /// token's `sub`.
    pub subscription: &'a str,
    /// The transform's `aws.events.rule-name`: the EventBridge rule's name for a rule's
    /// target, the subscription's name otherwise.
    pub rule: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When switchyard accepted the event (Pub/Sub's `publishTime`).
    pub ingested_ms: u64,
    /// Now, in Unix seconds: `webhook-timestamp` and the identity token's `iat`.
    pub now_s: u64,
}

/// Resolved secrets for one attempt. Every field may be empty when the destination needs none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The destination's connection, resolved for this attempt; `None` when it names none.
    pub connection: Option<&'a ResolvedConnection>,
    /// The OAuth access token, when the connection uses `oauth2_client_credentials`.
    pub access_token: Option<&'a Secret>,
    /// The resolved secrets of the destination's `signing`; required when it is set.
    pub signing: &'a [SigningSecret],
    /// Required when the destination sends an identity token.
    pub identity: Option<Identity<'a>>,
}

/// What signs identity tokens: the current key and the issuer (switchyard's public base URL,
/// under which `/.well-known/jwks.json` is served).
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// Signs the token; its key id goes in the token's header.
    pub key: &'a IdentityKey,
    /// The token's `iss`.
    pub issuer: &'a str,
}

/// One request header. `sensitive` ones carry credentials: mark them sensitive in the HTTP
/// client too, and never log their values.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// As configured for the destination's and the connection's headers, lowercase for those
    /// switchyard sets; compare it ignoring case.
    pub name: String,
    /// The text to send, free of control characters other than tab.
    pub value: String,
    /// True for credentials: the connection's auth and secret headers, the identity token, the
    /// signature, and a token request's client credentials. [`RenderedRequest::redact`] hides
    /// their values in a receiver's answer.
    pub sensitive: bool,
}

impl Header {
    pub(crate) fn new(name: impl Into<String>, value: impl Into<String>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
            sensitive: false,
        }
    }

    pub(crate) fn sensitive(name: impl Into<String>, value: impl Into<String>) -> Header {
        Header {
            sensitive: true,
            ..Header::new(name, value)
        }
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.sensitive {
            REDACTED
        } else {
            &self.value
        };
        write!(f, "{}: {value}", self.name)
    }
}

/// The request to send.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedRequest {
    /// The destination's method.
    pub method: HttpMethod,
    /// The URL to send to; may hold secret query parameters (see [`Self::url_for_logs`]).
    pub url: String,
    /// In order; names are unique (case-insensitively).
    pub headers: Vec<Header>,
    /// The bytes to send; when the destination is signed, exactly those the signature covers.
    pub body: Vec<u8>,
    url_for_logs: String,
    /// The connection's secret body values, as sent and as written, for [`Self::redact`].
    body_secrets: Vec<String>,
}

impl RenderedRequest {
    /// The URL with secret query values replaced by `********`: the one to put in logs, errors
    /// and dead letters (HTTP client errors often quote the URL they failed on).
    pub fn url_for_logs(&self) -> &str {
        &self.url_for_logs
    }

    /// True when [`Self::url`] carries a secret, so its errors must be stripped of the URL.
    pub fn url_is_sensitive(&self) -> bool {
        self.url != self.url_for_logs
    }

    /// The value of header `name`, matched ignoring case; `None` when the request has none.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// `text` (a receiver's answer) with every credential this request carried replaced by
    /// `********`: the value of each sensitive header, its credentials without the scheme
    /// (`Basic`, `Bearer`), each secret query value as sent and as decoded, and each secret body
    /// value as sent and as decoded. A receiver that
    /// echoes the request back must not leave the connection's secrets in the store or the log.
    pub fn redact(&self, text: &str) -> String {
        let mut secrets: Vec<String> = self.body_secrets.clone();
        for header in self.headers.iter().filter(|h| h.sensitive) {
            secrets.push(header.value.clone());
            if let Some((_, credentials)) = header.value.split_once(' ') {
                secrets.push(credentials.to_string());
            }
        }
        if let (Ok(sent), Ok(shown)) = (
            url::Url::parse(&self.url),
            url::Url::parse(&self.url_for_logs),
        ) {
            let query = sent.query().unwrap_or_default();
            for ((_, value), (_, mask)) in sent.query_pairs().zip(shown.query_pairs()) {
                if mask == REDACTED && value != REDACTED {
                    let encoded: String =
                        url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
                    if query.contains(&encoded) {
                        secrets.push(encoded);
                    }
                    secrets.push(value.into_owned());
                }
            }
        }
        // Longest first, so a value that contains another is replaced whole.
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for secret in &secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

impl fmt::Debug for RenderedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedRequest")
            .field("method", &self.method)
            .field("url", &self.url_for_logs)
            .field("headers", &self.headers)
            .field("body", &format_args!("{} bytes", self.body.len()))
            .finish()
    }
}

/// The fields of the envelope that formats use.
#[derive(Deserialize)]
struct Envelope<'a> {
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: String,
    time: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(borrow)]
    detail: &'a RawValue,
    /// The members of events that came in as CloudEvents or Pub/Sub messages.
    #[serde(default)]
    datacontenttype: Option<String>,
    #[serde(default)]
    dataschema: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    data_base64: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl Envelope<'_> {
    /// Whether the event carries a payload of its own that is not a JSON object (a CloudEvent's
    /// or a Pub/Sub message's data): formats that send "the data" send it, not the envelope.
    fn has_raw_data(&self) -> bool {
        self.data.is_some() || self.data_base64.is_some()
    }

    /// The event's data: `detail`, or `data` (JSON, or text when its content type is not
    /// JSON), or the bytes of `data_base64`.
    fn data_payload(&self) -> Result<Payload, RenderError> {
        if let Some(bytes) = &self.data_base64 {
            return STANDARD
                .decode(bytes)
                .map(Payload::Bytes)
                .map_err(|e| RenderError::Envelope(format!("data_base64: {e}")));
        }
        match self.data {
            None => Ok(Payload::Json(self.detail.get().to_string())),
            Some(data) if cloudevents::is_json_media_type(self.datacontenttype.as_deref()) => {
                Ok(Payload::Json(data.get().to_string()))
            }
            Some(data) => match serde_json::from_str::<String>(data.get()) {
                Ok(text) => Ok(Payload::Text(text)),
                Err(_) => Ok(Payload::Json(data.get().to_string())),
            },
        }
    }

    /// The CloudEvents extension attributes: the event's attributes whose names CloudEvents
    /// allows and that are not context attributes.
    fn extensions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes
            .iter()
            .filter(|(name, _)| cloudevents::is_extension_name(name))
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

/// Renders one attempt to `destination`.
pub fn render(
    destination: &Destination,
    attempt: &Attempt<'_>,
    credentials: &Credentials<'_>,
) -> Result<RenderedRequest, RenderError> {
    let event: &RawValue =
        serde_json::from_str(attempt.envelope).map_err(|e| RenderError::Envelope(e.to_string()))?;
    let envelope: Envelope<'_> =
        serde_json::from_str(attempt.envelope).map_err(|e| RenderError::Envelope(e.to_string()))?;
    let ingestion_time = rfc3339_ms(attempt.ingested_ms);

    let payload = match &destination.transform {
        Some(transform) => transform.apply(
            event,
            &Predefined {
                envelope: attempt.envelope,
                rule: attempt.rule,
                ingestion_time: &ingestion_time,
            },
        )?,
        None => match destination.format {
            Format::PubsubPush | Format::PubsubPushUnwrapped if envelope.has_raw_data() => {
                envelope.data_payload()?
            }
            Format::Envelope | Format::PubsubPush | Format::PubsubPushUnwrapped => {
                Payload::Json(attempt.envelope.to_string())
            }
            Format::Detail | Format::CloudeventsBinary | Format::CloudeventsStructured => {
                envelope.data_payload()?
            }
        },
    };
    // The event's own media type goes with its own data, never with a transform's output.
    let data_type = match &destination.transform {
        None => envelope.datacontenttype.as_deref(),
        Some(_) => None,
    };

    let mut headers = Headers::default();
    let body = format_body(
        destination.format,
        Data {
            payload,
            content_type: data_type,
        },
        &envelope,
        attempt,
        &ingestion_time,
        &mut headers,
    )?;

    let mut body_secrets = Vec::new();
    let body = match credentials.connection {
        Some(connection) if !connection.body.is_empty() => {
            merge_body(body, &connection.body, &mut body_secrets)
        }
        _ => body,
    };

    let mut url = destination.url.render(event)?;
    // The token's audience is the URL the receiver was configured with, before the
    // connection's (possibly secret) query parameters.
    let audience_url = url.to_string();
    let mut masked = url.clone();
    if let Some(connection) = credentials.connection {
        for param in &connection.query {
            url.query_pairs_mut()
                .append_pair(&param.name, param.value.expose());
            let shown = if param.secret {
                REDACTED
            } else {
                param.value.expose()
            };
            masked.query_pairs_mut().append_pair(&param.name, shown);
        }
    }

    for (name, template) in &destination.headers {
        headers.set(Header::new(name.clone(), template.render(name, event)?));
    }

    let mut authorization_by = None;
    if let Some(connection) = credentials.connection {
        for param in &connection.headers {
            headers.set(Header {
                name: param.name.clone(),
                value: param.value.expose().to_string(),
                sensitive: param.secret,
            });
        }
        match &connection.auth {
            ResolvedAuth::None => {}
            ResolvedAuth::Basic { username, password } => {
                let pair = zeroize::Zeroizing::new(format!("{username}:{}", password.expose()));
                headers.set(Header::sensitive(
                    "authorization",
                    format!("Basic {}", STANDARD.encode(pair.as_bytes())),
                ));
                authorization_by = Some(connection.kind);
            }
            ResolvedAuth::ApiKey { header, value } => {
                headers.set(Header::sensitive(header.clone(), value.expose()));
                if header.eq_ignore_ascii_case("authorization") {
                    authorization_by = Some(connection.kind);
                }
            }
            ResolvedAuth::OAuth2 => {
                let token = credentials
                    .access_token
                    .ok_or(RenderError::MissingCredential(
                        "the connection uses OAuth 2.0 but no access token was passed",
                    ))?;
                headers.set(Header::sensitive(
                    "authorization",
                    format!("Bearer {}", token.expose()),
                ));
                authorization_by = Some(connection.kind);
            }
        }
    }

    if let Some(token_spec) = &destination.identity_token {
        if let Some(kind) = authorization_by {
            return Err(RenderError::ConflictingAuthorization(kind));
        }
        let identity = credentials.identity.ok_or(RenderError::MissingCredential(
            "the destination sends an identity token but no identity key was passed",
        ))?;
        let claims = Claims {
            iss: identity.issuer.to_string(),
            sub: format!(
                "buses/{}/subscriptions/{}",
                attempt.bus, attempt.subscription
            ),
            aud: token_spec.audience().unwrap_or(&audience_url).to_string(),
            iat: attempt.now_s,
            exp: attempt.now_s + token_spec.ttl_s(),
            email: token_spec.email().map(str::to_string),
            email_verified: token_spec.email().map(|_| true),
        };
        let token = identity
            .key
            .sign(&claims)
            .map_err(|e| RenderError::Signing(e.to_string()))?;
        headers.set(Header::sensitive(
            "authorization",
            format!("Bearer {token}"),
        ));
    }

    headers.set(Header::new("switchyard-event-id", envelope.id.as_str()));
    headers.set(Header::new("switchyard-bus", attempt.bus));
    headers.set(Header::new("switchyard-subscription", attempt.subscription));
    headers.set(Header::new(
        "switchyard-attempt",
        attempt.attempt.to_string(),
    ));

    if destination.signing.is_some() {
        if credentials.signing.is_empty() {
            return Err(RenderError::MissingCredential(
                "the destination is signed but no signing secret was passed",
            ));
        }
        let id = webhook_id(&envelope.id);
        let signature = signature_header(credentials.signing, &id, attempt.now_s, &body);
        headers.set(Header::new(standard_webhooks::ID_HEADER, id));
        headers.set(Header::new(
            standard_webhooks::TIMESTAMP_HEADER,
            attempt.now_s.to_string(),
        ));
        headers.set(Header::sensitive(
            standard_webhooks::SIGNATURE_HEADER,
            signature,
        ));
    }

    let headers = headers.0;
    if let Some(bad) = headers
        .iter()
        .find(|h| h.value.chars().any(|c| c.is_control() && c != '\t'))
    {
        return Err(RenderError::HeaderValue {
            name: bad.name.clone(),
        });
    }
    Ok(RenderedRequest {
        method: destination.method,
        url: url.to_string(),
        headers,
        body,
        url_for_logs: masked.to_string(),
        body_secrets,
    })
}

/// `body` with the connection's members set, when it is a JSON object; any other body as it
/// is (EventBridge leaves a non-object body alone too). The event's members keep their order
/// and their exact text (large numbers included); a member the connection sets is replaced and
/// moves to the end.
fn merge_body(body: Vec<u8>, members: &[Param], secrets: &mut Vec<String>) -> Vec<u8> {
    let Some(existing) = std::str::from_utf8(&body)
        .ok()
        .and_then(|text| serde_json::from_str::<&RawValue>(text).ok())
        .and_then(object_members)
    else {
        return body;
    };
    let mut parts: Vec<String> = existing
        .into_iter()
        .filter(|(name, _)| !members.iter().any(|m| m.name == *name))
        .map(|(name, value)| format!("{}:{}", json_string(&name), value.get()))
        .collect();
    for member in members {
        let value = json_string(member.value.expose());
        if member.secret {
            secrets.push(member.value.expose().to_string());
            secrets.push(value[1..value.len() - 1].to_string());
        }
        parts.push(format!("{}:{value}", json_string(&member.name)));
    }
    format!("{{{}}}", parts.join(",")).into_bytes()
}

fn json_string(text: &str) -> String {
    // Serialising a &str cannot fail.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Headers with unique names; setting a name again replaces the value in place.
#[derive(Default)]
struct Headers(Vec<Header>);

impl Headers {
    fn set(&mut self, header: Header) {
        match self
            .0
            .iter_mut()
            .find(|h| h.name.eq_ignore_ascii_case(&header.name))
        {
            Some(existing) => *existing = header,
            None => self.0.push(header),
        }
    }
}

/// A payload with the media type the event gave it, if any.
struct Data<'a> {
    payload: Payload,
    content_type: Option<&'a str>,
}

impl Data<'_> {
    fn content_type(&self) -> &str {
        self.content_type.unwrap_or(match self.payload {
            Payload::Json(_) => JSON,
            Payload::Text(_) => TEXT,
            Payload::Bytes(_) => OCTETS,
        })
    }

    fn into_bytes(self) -> Vec<u8> {
        self.payload.into_bytes()
    }
}

fn format_body(
    format: Format,
    payload: Data<'_>,
    envelope: &Envelope<'_>,
    attempt: &Attempt<'_>,
    ingestion_time: &str,
    headers: &mut Headers,
) -> Result<Vec<u8>, RenderError> {
    let encode = |e: serde_json::Error| RenderError::Envelope(e.to_string());
    match format {
        Format::Envelope | Format::Detail => {
            headers.set(Header::new("content-type", payload.content_type()));
            Ok(payload.into_bytes())
        }
        Format::CloudeventsBinary => {
            headers.set(Header::new("content-type", payload.content_type()));
            let mut ce = |name: &str, value: &str| {
                headers.set(Header::new(
                    format!("ce-{name}"),
                    utf8_percent_encode(value, CE_HEADER).to_string(),
                ));
            };
            ce("specversion", "1.0");
            ce("id", &envelope.id);
            ce("source", &envelope.source);
            ce("type", &envelope.detail_type);
            ce("time", &envelope.time);
            if let Some(subject) = envelope.resources.first() {
                ce("subject", subject);
            }
            if let Some(schema) = &envelope.dataschema {
                ce("dataschema", schema);
            }
            for (name, value) in envelope.extensions() {
                ce(name, value);
            }
            Ok(payload.into_bytes())
        }
        Format::CloudeventsStructured => {
            #[derive(Serialize)]
            struct Structured<'a> {
                specversion: &'static str,
                id: &'a str,
                source: &'a str,
                #[serde(rename = "type")]
                kind: &'a str,
                time: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                subject: Option<&'a str>,
                datacontenttype: &'a str,
                #[serde(skip_serializing_if = "Option::is_none")]
                dataschema: Option<&'a str>,
                #[serde(flatten)]
                extensions: BTreeMap<&'a str, &'a str>,
                #[serde(skip_serializing_if = "Option::is_none")]
                data: Option<Box<RawValue>>,
                #[serde(skip_serializing_if = "Option::is_none")]
                data_base64: Option<String>,
            }
            let datacontenttype = payload.content_type();
            let (data, data_base64) = match &payload.payload {
                Payload::Json(json) => (
                    Some(RawValue::from_string(json.clone()).map_err(encode)?),
                    None,
                ),
                Payload::Text(text) => (
                    Some(
                        RawValue::from_string(serde_json::to_string(text).map_err(encode)?)
                            .map_err(encode)?,
                    ),
                    None,
                ),
                Payload::Bytes(bytes) => (None, Some(STANDARD.encode(bytes))),
            };
            let body = serde_json::to_vec(&Structured {
                specversion: "1.0",
                id: &envelope.id,
                source: &envelope.source,
                kind: &envelope.detail_type,
                time: &envelope.time,
                subject: envelope.resources.first().map(String::as_str),
                datacontenttype,
                dataschema: envelope.dataschema.as_deref(),
                extensions: envelope.extensions().collect(),
                data,
                data_base64,
            })
            .map_err(encode)?;
            headers.set(Header::new("content-type", CLOUDEVENTS_JSON));
            Ok(body)
        }
        Format::PubsubPush => {
            #[derive(Serialize)]
            struct Push<'a> {
                message: Message<'a>,
                subscription: String,
                #[serde(rename = "deliveryAttempt")]
                delivery_attempt: u32,
            }
            // Google sends both spellings of the id and time; receivers read either.
            #[derive(Serialize)]
            struct Message<'a> {
                attributes: BTreeMap<&'a str, &'a str>,
                data: String,
                #[serde(rename = "messageId")]
                message_id_camel: &'a str,
                message_id: &'a str,
                #[serde(rename = "publishTime")]
                publish_time_camel: &'a str,
                publish_time: &'a str,
            }
            headers.set(Header::new("content-type", JSON));
            serde_json::to_vec(&Push {
                message: Message {
                    attributes: attributes(envelope),
                    data: STANDARD.encode(payload.into_bytes()),
                    message_id_camel: &envelope.id,
                    message_id: &envelope.id,
                    publish_time_camel: ingestion_time,
                    publish_time: ingestion_time,
                },
                subscription: pubsub_subscription(attempt),
                delivery_attempt: attempt.attempt,
            })
            .map_err(encode)
        }
        Format::PubsubPushUnwrapped => {
            headers.set(Header::new("content-type", payload.content_type()));
            for (name, value) in attributes(envelope) {
                headers.set(Header::new(name, value));
            }
            headers.set(Header::new(
                "x-goog-pubsub-subscription-name",
                pubsub_subscription(attempt),
            ));
            headers.set(Header::new(
                "x-goog-pubsub-message-id",
                envelope.id.as_str(),
            ));
            headers.set(Header::new("x-goog-pubsub-publish-time", ingestion_time));
            headers.set(Header::new(
                "x-goog-pubsub-delivery-attempt",
                attempt.attempt.to_string(),
            ));
            Ok(payload.into_bytes())
        }
    }
}

/// The Pub/Sub message attributes of an event: a message's own (one published through the
/// Pub/Sub API, or a CloudEvent with data of its own, has exactly its attributes); for any
/// other event, its routing fields and its own attributes, which win over them.
fn attributes<'a>(envelope: &'a Envelope<'_>) -> BTreeMap<&'a str, &'a str> {
    let mut attributes = BTreeMap::new();
    if !envelope.has_raw_data() {
        attributes.insert("detail-type", envelope.detail_type.as_str());
        attributes.insert("source", envelope.source.as_str());
    }
    attributes.extend(
        envelope
            .attributes
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    attributes
}

/// An event as a Pub/Sub consumer gets it, pushed (`pubsub-push`) or pulled through the Pub/Sub
/// API alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubMessage {
    /// The event's own payload when it has one (a Pub/Sub message's bytes, a CloudEvent's
    /// data), else the envelope's JSON: what a REST subscriber would get.
    pub data: Vec<u8>,
    /// See `attributes`.
    pub attributes: BTreeMap<String, String>,
}

/// The Pub/Sub message of a stored envelope.
pub fn pubsub_message(envelope_text: &str) -> Result<PubsubMessage, RenderError> {
    let envelope: Envelope<'_> =
        serde_json::from_str(envelope_text).map_err(|e| RenderError::Envelope(e.to_string()))?;
    let data = if envelope.has_raw_data() {
        envelope.data_payload()?.into_bytes()
    } else {
        envelope_text.as_bytes().to_vec()
    };
    let attributes = attributes(&envelope)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(PubsubMessage { data, attributes })
}

/// Pub/Sub names a subscription `projects/{project}/subscriptions/{name}`; the bus plays the
/// project, so receivers that split on `/` find the subscription's name where they expect it.
fn pubsub_subscription(attempt: &Attempt<'_>) -> String {
    format!(
        "projects/{}/subscriptions/{}",
        attempt.bus, attempt.subscription
    )
}

/// `2026-01-02T03:04:05.678Z`, the form of the envelope's own times.
fn rfc3339_ms(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}
