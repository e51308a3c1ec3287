//! Events: parsing a publish request and building the envelope that is stored, matched and sent.
//!
//! The envelope is built once, at publish, as JSON text; the store keeps that text and the
//! dispatcher sends it byte for byte. `detail` is carried as the publisher's raw JSON text, so
//! numbers such as `3.0e2` or 20-digit integers arrive at subscribers exactly as published.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{ModelError, TraceContext, format_rfc3339_ms, parse_rfc3339_ms};

/// EventBridge's limits for the same fields, so that events move freely between the two.
const MAX_SOURCE_LEN: usize = 256;
const MAX_DETAIL_TYPE_LEN: usize = 128;
const MAX_ID_LEN: usize = 256;
const MAX_RESOURCES: usize = 100;
/// As PutEvents: one request carries at most this many entries.
pub(crate) const MAX_ENTRIES: usize = 500;

/// A validated event, ready to be matched and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The publisher's `id`, or a new UUIDv7 (time-ordered, so ids sort roughly by publish time).
    pub id: String,
    /// `{"version":"0","id",...,"detail"}` as JSON text: what patterns see and subscribers get.
    pub envelope: String,
    /// When switchyard accepted the event; retry age and pending age count from here.
    pub ingested_ms: u64,
    /// How many switchyard deliveries led to this publish (the publisher's `switchyard-hops`):
    /// the loop guard refuses a publish at the limit.
    pub hops: u32,
    /// The publish's trace context; every attempt is sent as a child span of it.
    pub trace: TraceContext,
    /// Events of one key are delivered in publish order to subscriptions with `ordered: true`.
    pub ordering_key: Option<String>,
    /// Whether the publisher chose the id: only such events are de-duplicated (a generated id
    /// is new by construction). Not stored.
    pub explicit_id: bool,
}

/// What a publish request says besides its body.
#[derive(Debug, Clone)]
pub struct PublishContext {
    /// When switchyard accepted the request, in Unix ms: every event of it gets this time.
    pub ingested_ms: u64,
    /// The largest envelope accepted, in bytes; a larger event refuses the whole request.
    pub max_event_bytes: usize,
    /// The request's `switchyard-hops` header (0 when absent), given to each of its events.
    pub hops: u32,
    /// The request's `traceparent`/`tracestate`, or a new root trace when they are absent or
    /// invalid.
    pub trace: TraceContext,
    /// The `account` and `region` every envelope carries.
    pub aws: AwsIdentity,
}

/// The `account` and `region` of every envelope and of every ARN switchyard issues: EventBridge
/// patterns and receivers read them, so they are always there (`serve --aws-account-id` and
/// `--aws-region`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsIdentity {
    /// Twelve digits, as an ARN's account must be.
    pub account: Arc<str>,
    /// A region name such as `us-east-1`.
    pub region: Arc<str>,
}

impl Default for AwsIdentity {
    fn default() -> Self {
        AwsIdentity {
            account: Arc::from("000000000000"),
            region: Arc::from("us-east-1"),
        }
    }
}

impl AwsIdentity {
    /// Checks the account and region as an ARN needs them.
    pub fn new(account: &str, region: &str) -> Result<AwsIdentity, ModelError> {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ModelError::invalid(format!(
                "the AWS account id must be 12 digits, not {account:?}"
            )));
        }
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ModelError::invalid(format!(
                "the AWS region must be lowercase letters, digits and '-' (like us-east-1), not {region:?}"
            )));
        }
        Ok(AwsIdentity {
            account: Arc::from(account),
            region: Arc::from(region),
        })
    }

    /// The ARN of rule `name` on `bus`: EventBridge leaves the bus out for the `default` bus. It
    /// is also what a scheduled event names in `resources`.
    pub fn rule_arn(&self, bus: &str, name: &str) -> String {
        let prefix = format!("arn:aws:events:{}:{}:rule/", self.region, self.account);
        if bus == DEFAULT_BUS {
            format!("{prefix}{name}")
        } else {
            format!("{prefix}{bus}/{name}")
        }
    }
}

/// The bus that always exists for the EventBridge API, whose rules' ARNs carry no bus name.
pub const DEFAULT_BUS: &str = "default";

/// EventBridge's "Scheduled Event" for one tick of a schedule: `source` `aws.events`,
/// `detail-type` "Scheduled Event", `time` the tick, `resources` the rule that ticked, `detail`
/// `{}`. It starts a trace of its own.
pub fn scheduled_event(
    tick_ms: u64,
    rule_arn: &str,
    context: &PublishContext,
) -> Result<Event, ModelError> {
    EventParts {
        source: Some("aws.events".into()),
        detail_type: Some("Scheduled Event".into()),
        time: Some(format_rfc3339_ms(tick_ms)),
        resources: vec![rule_arn.to_string()],
        ..EventParts::default()
    }
    .build(context)
}

/// A message published through the Pub/Sub API, as an event (docs/pubsub.md): `source` is the
/// topic as Eventarc names it (`//pubsub.googleapis.com/projects/P/topics/T`), `detail-type`
/// Eventarc's `google.cloud.pubsub.topic.v1.messagePublished`, the data its bytes
/// (`data_base64`, delivered byte for byte), the attributes and ordering key its own.
pub fn pubsub_message_event(
    topic: &str,
    data: &[u8],
    attributes: BTreeMap<String, String>,
    ordering_key: Option<String>,
    context: &PublishContext,
) -> Result<Event, ModelError> {
    EventParts {
        source: Some(format!("//pubsub.googleapis.com/{topic}")),
        detail_type: Some(PUBSUB_MESSAGE_TYPE.into()),
        data_base64: Some(STANDARD.encode(data)),
        attributes,
        ordering_key,
        ..EventParts::default()
    }
    .build(context)
}

/// The `detail-type` of a message published through the Pub/Sub API: Eventarc's CloudEvents
/// type for it.
pub const PUBSUB_MESSAGE_TYPE: &str = "google.cloud.pubsub.topic.v1.messagePublished";

/// A publish body: either `{"entries": [...]}` or one bare event object.
#[derive(Debug)]
pub struct PublishRequest {
    /// One result per entry, in request order: the event, or why that entry was refused.
    pub entries: Vec<Result<Event, ModelError>>,
    /// True for a bare event object, whose refusal is the whole request's refusal.
    pub single: bool,
}

/// Parses a publish body. An error here refuses the whole request (malformed JSON, wrong shape,
/// too many entries, an event over `max_event_bytes`); a bad entry inside a batch only fails that
/// entry, as EventBridge's PutEvents does.
pub fn parse_publish_request(
    body: &str,
    context: &PublishContext,
) -> Result<PublishRequest, ModelError> {
    unique_keys(body)?;
    let fields = object_fields(body, "the request body")?;
    let Some(entries) = fields.get("entries") else {
        return single(build_event(&fields, context)?, context);
    };
    if fields.len() > 1 {
        let extra: Vec<&str> = fields
            .keys()
            .filter(|k| *k != "entries")
            .map(|k| k.as_str())
            .collect();
        return Err(ModelError::invalid(format!(
            "a batch body has only the field \"entries\"; unexpected: {extra:?}"
        )));
    }
    let raw_entries: Vec<&RawValue> = serde_json::from_str(entries.get())
        .map_err(|_| ModelError::invalid("\"entries\" must be an array of event objects"))?;
    batch(&raw_entries, "\"entries\"", context, |index, raw| {
        object_fields(raw, &format!("entries[{index}]"))
            .and_then(|fields| build_event(&fields, context))
    })
}

/// Refuses a JSON text that gives a key twice: serde_json keeps the last of two equal keys and
/// `detail` travels as raw text with both, so a filter could read one value and the receiver
/// the other.
pub(crate) fn unique_keys(text: &str) -> Result<(), ModelError> {
    switchyard_pattern::check_unique_keys(text).map_err(|e| ModelError::invalid(e.to_string()))
}

/// A request of one bare event, whose refusal (its size included) is the request's.
pub(crate) fn single(event: Event, context: &PublishContext) -> Result<PublishRequest, ModelError> {
    check_size(&event, 0, context.max_event_bytes)?;
    Ok(PublishRequest {
        entries: vec![Ok(event)],
        single: true,
    })
}

/// A batch of 1 to [`MAX_ENTRIES`] events, each built by `build` from its JSON text: a bad
/// event fails its entry only, one over the size limit the whole request.
pub(crate) fn batch(
    raw: &[&RawValue],
    what: &str,
    context: &PublishContext,
    build: impl Fn(usize, &str) -> Result<Event, ModelError>,
) -> Result<PublishRequest, ModelError> {
    if raw.is_empty() || raw.len() > MAX_ENTRIES {
        return Err(ModelError::invalid(format!(
            "{what} has {} events; send 1 to {MAX_ENTRIES}",
            raw.len()
        )));
    }
    let mut entries = Vec::with_capacity(raw.len());
    for (index, event) in raw.iter().enumerate() {
        let entry = build(index, event.get());
        if let Ok(event) = &entry {
            check_size(event, index, context.max_event_bytes)?;
        }
        entries.push(entry);
    }
    Ok(PublishRequest {
        entries,
        single: false,
    })
}

/// The limits every event meets on every path, whatever its bus's patterns: size and depth.
pub(crate) fn check_size(
    event: &Event,
    index: usize,
    max_event_bytes: usize,
) -> Result<(), ModelError> {
    if event.envelope.len() > max_event_bytes {
        return Err(ModelError::TooLarge(format!(
            "event {index} is {} bytes, over the limit of {max_event_bytes} bytes",
            event.envelope.len()
        )));
    }
    let max_depth = switchyard_pattern::MAX_EVENT_DEPTH;
    if switchyard_pattern::nesting_exceeds(&event.envelope, max_depth) {
        return Err(ModelError::invalid(format!(
            "event {index} nests objects and arrays more than {max_depth} levels deep"
        )));
    }
    Ok(())
}

pub(crate) fn object_fields<'a>(
    text: &'a str,
    what: &str,
) -> Result<BTreeMap<String, &'a RawValue>, ModelError> {
    serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ModelError::invalid(format!("{what} is not valid JSON: {e}"))
        } else {
            ModelError::invalid(format!("{what} must be a JSON object"))
        }
    })
}

fn field<'de, T: serde::Deserialize<'de>>(
    fields: &BTreeMap<String, &'de RawValue>,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ModelError> {
    match fields.get(name) {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| ModelError::invalid(format!("field \"{name}\" must be {expected}"))),
    }
}

fn build_event(
    fields: &BTreeMap<String, &RawValue>,
    context: &PublishContext,
) -> Result<Event, ModelError> {
    // `version`, `account` and `region` are accepted so that an envelope switchyard delivered
    // can be published as is (bus-to-bus forwarding); `account` and `region` are this server's
    // whatever the publisher says, as in EventBridge. So are the members only some events
    // carry (`attributes`, `data`, ...: a CloudEvent's or a Pub/Sub message's).
    const KNOWN: [&str; 15] = [
        "source",
        "detail-type",
        "detail",
        "resources",
        "time",
        "id",
        "version",
        "ordering-key",
        "account",
        "region",
        "attributes",
        "data",
        "data_base64",
        "datacontenttype",
        "dataschema",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ModelError::invalid(format!(
            "unknown field \"{unknown}\"; an event has {KNOWN:?}"
        )));
    }
    if let Some(version) = fields.get("version")
        && version.get() != "\"0\""
    {
        return Err(ModelError::invalid(
            "field \"version\" must be \"0\" when given",
        ));
    }
    let detail = fields.get("detail").map(|raw| raw.get());
    let data = fields.get("data").map(|raw| raw.get());
    let data_base64 = field::<String>(fields, "data_base64", "a base64 string")?;
    if (data.is_some() || data_base64.is_some()) && detail.is_some_and(|d| !is_empty_object(d)) {
        return Err(ModelError::invalid(
            "an event with \"data\" or \"data_base64\" has no \"detail\" (or only {})",
        ));
    }
    let time = field::<String>(fields, "time", "an RFC 3339 time string")?
        .map(|text| canonical_time(&text))
        .transpose()?;
    EventParts {
        id: field(fields, "id", "a string")?,
        source: field(fields, "source", "a string")?,
        detail_type: field(fields, "detail-type", "a string")?,
        time,
        resources: field(fields, "resources", "an array of strings")?.unwrap_or_default(),
        detail: detail.filter(|_| data.is_none() && data_base64.is_none()),
        data,
        data_base64,
        datacontenttype: field(fields, "datacontenttype", "a string")?,
        dataschema: field(fields, "dataschema", "a string")?,
        attributes: field(fields, "attributes", "an object of strings")?.unwrap_or_default(),
        ordering_key: field(fields, "ordering-key", "a string")?,
    }
    .build(context)
}

/// An event before its envelope is built: what every way in fills (the REST body, a
/// CloudEvent, a Pub/Sub message), so that one function checks every field and builds every
/// envelope. Texts of JSON (`detail`, `data`) are the publisher's, kept byte for byte.
#[derive(Debug, Default)]
pub(crate) struct EventParts<'a> {
    /// `None`: a new UUIDv7.
    pub(crate) id: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) detail_type: Option<String>,
    /// The final text; `None`: the ingestion time.
    pub(crate) time: Option<String>,
    pub(crate) resources: Vec<String>,
    /// A JSON object's text; `None`: `{}`.
    pub(crate) detail: Option<&'a str>,
    /// A payload that is not a JSON object: another JSON value, or a string of text.
    pub(crate) data: Option<&'a str>,
    /// A payload of bytes, base64.
    pub(crate) data_base64: Option<String>,
    pub(crate) datacontenttype: Option<String>,
    pub(crate) dataschema: Option<String>,
    /// Pub/Sub attributes and CloudEvents extension attributes.
    pub(crate) attributes: BTreeMap<String, String>,
    pub(crate) ordering_key: Option<String>,
}

/// As Pub/Sub: at most this many attributes, with keys and values this long.
const MAX_ATTRIBUTES: usize = 100;
const MAX_ATTRIBUTE_KEY_LEN: usize = 256;
const MAX_ATTRIBUTE_VALUE_LEN: usize = 1024;
/// `datacontenttype` and `dataschema`: a media type and a URI, which need no more.
const MAX_DATA_ATTRIBUTE_LEN: usize = 1024;

impl EventParts<'_> {
    /// Checks every field and builds the envelope.
    pub(crate) fn build(self, context: &PublishContext) -> Result<Event, ModelError> {
        let source = checked_text("source", self.source, MAX_SOURCE_LEN)?;
        let detail_type = checked_text("detail-type", self.detail_type, MAX_DETAIL_TYPE_LEN)?;
        let detail = match self.detail {
            None => "{}",
            Some(raw) if raw.starts_with('{') => raw,
            Some(_) => {
                return Err(ModelError::invalid(
                    "field \"detail\" must be a JSON object",
                ));
            }
        };
        if self.resources.len() > MAX_RESOURCES {
            return Err(ModelError::invalid(format!(
                "field \"resources\" has {} entries; at most {MAX_RESOURCES}",
                self.resources.len()
            )));
        }
        let explicit_id = self.id.is_some();
        let id = match self.id {
            None => uuid::Uuid::now_v7().to_string(),
            Some(id) => checked_text("id", Some(id), MAX_ID_LEN)?,
        };
        let ordering_key = self
            .ordering_key
            .map(|key| checked_text("ordering-key", Some(key), MAX_ID_LEN))
            .transpose()?;
        if let Some(data) = &self.data_base64
            && STANDARD.decode(data).is_err()
        {
            return Err(ModelError::invalid(
                "field \"data_base64\" is not base64 (RFC 4648, with padding)",
            ));
        }
        for (name, value) in [
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
        ] {
            if let Some(value) = value {
                checked_text(name, Some(value.clone()), MAX_DATA_ATTRIBUTE_LEN)?;
            }
        }
        check_attributes(&self.attributes)?;
        let time = self
            .time
            .unwrap_or_else(|| format_rfc3339_ms(context.ingested_ms));
        let envelope = Envelope {
            version: "0",
            id: &id,
            detail_type: &detail_type,
            source: &source,
            account: &context.aws.account,
            time: &time,
            region: &context.aws.region,
            resources: &self.resources,
            detail: raw(detail)?,
            datacontenttype: self.datacontenttype.as_deref(),
            dataschema: self.dataschema.as_deref(),
            data: self.data.map(raw).transpose()?,
            data_base64: self.data_base64.as_deref(),
            attributes: &self.attributes,
        };
        let envelope = serde_json::to_string(&envelope)
            .map_err(|e| ModelError::invalid(format!("event cannot be encoded: {e}")))?;
        Ok(Event {
            id,
            envelope,
            ingested_ms: context.ingested_ms,
            hops: context.hops,
            trace: context.trace.clone(),
            ordering_key,
            explicit_id,
        })
    }
}

fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<(), ModelError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(ModelError::invalid(format!(
            "the event has {} attributes; at most {MAX_ATTRIBUTES}",
            attributes.len()
        )));
    }
    for (key, value) in attributes {
        if key.is_empty() || key.len() > MAX_ATTRIBUTE_KEY_LEN || key.chars().any(char::is_control)
        {
            return Err(ModelError::invalid(format!(
                "attribute name {key:?} must be 1 to {MAX_ATTRIBUTE_KEY_LEN} bytes without control characters"
            )));
        }
        if value.len() > MAX_ATTRIBUTE_VALUE_LEN {
            return Err(ModelError::invalid(format!(
                "attribute {key:?} is {} bytes; at most {MAX_ATTRIBUTE_VALUE_LEN}",
                value.len()
            )));
        }
    }
    Ok(())
}

fn is_empty_object(text: &str) -> bool {
    serde_json::from_str::<BTreeMap<String, &RawValue>>(text).is_ok_and(|m| m.is_empty())
}

/// Field order as EventBridge's envelope, which some receivers log or diff verbatim; the
/// members after `detail` are there only when the event has them.
#[derive(Serialize)]
struct Envelope<'a> {
    version: &'static str,
    id: &'a str,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    source: &'a str,
    account: &'a str,
    time: &'a str,
    region: &'a str,
    resources: &'a [String],
    detail: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    datacontenttype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataschema: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attributes: &'a BTreeMap<String, String>,
}

fn raw(text: &str) -> Result<&RawValue, ModelError> {
    serde_json::from_str(text).map_err(|e| ModelError::invalid(format!("field \"detail\": {e}")))
}

/// A required text field of 1 to `max_len` bytes without control characters.
fn checked_text(name: &str, value: Option<String>, max_len: usize) -> Result<String, ModelError> {
    match value {
        None => Err(ModelError::invalid(format!("field \"{name}\" is required"))),
        Some(v) if v.is_empty() || v.len() > max_len || v.chars().any(char::is_control) => {
            Err(ModelError::invalid(format!(
                "field \"{name}\" must be 1 to {max_len} characters without control characters"
            )))
        }
        Some(v) => Ok(v),
    }
}

/// Accepts any RFC 3339 time and stores it in UTC with milliseconds, the format of times switchyard
/// assigns itself, so patterns and receivers see one format.
fn canonical_time(text: &str) -> Result<String, ModelError> {
    Ok(format_rfc3339_ms(parse_rfc3339_ms("time", text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn context(max_event_bytes: usize, ingested_ms: u64) -> PublishContext {
        PublishContext {
            ingested_ms,
            max_event_bytes,
            hops: 0,
            trace: TraceContext::new_root(),
            aws: AwsIdentity::default(),
        }
    }

    fn single(body: &str) -> Result<Event, ModelError> {
        let request = parse_publish_request(body, &context(MIB, 1_000))?;
        assert!(request.single);
        request.entries.into_iter().next().unwrap()
    }

    #[test]
    fn builds_the_envelope_with_detail_kept_verbatim() {
        let event = single(r#"{"source":"shop","detail-type":"Order Placed","detail":{"n":3.0e2,"big":123456789012345678901234}}"#).unwrap();
        assert!(event.envelope.starts_with(r#"{"version":"0","id":""#));
        assert!(
            event
                .envelope
                .contains(r#""detail":{"n":3.0e2,"big":123456789012345678901234}"#)
        );
        assert!(
            event
                .envelope
                .contains(r#""time":"1970-01-01T00:00:01.000Z""#)
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        for (body, path) in [
            (
                r#"{"source":"s","detail-type":"t","detail":{"amount":5,"amount":1000000}}"#,
                "detail.amount",
            ),
            (r#"{"source":"s","source":"t","detail-type":"t"}"#, "source"),
            (
                r#"{"entries":[{"source":"s","detail-type":"t"},{"source":"s","detail-type":"t","detail":{"a":[{"b":1,"\u0062":2}]}}]}"#,
                "entries[1].detail.a[0].b",
            ),
        ] {
            let error = parse_publish_request(body, &context(MIB, 1_000)).unwrap_err();
            assert_eq!(error.code(), "invalid");
            assert!(
                error
                    .to_string()
                    .contains(&format!("\"{path}\" is given twice")),
                "{body}: {error}"
            );
        }
        assert!(
            single(r#"{"source":"s","detail-type":"t","detail":{"a":{"k":1},"b":{"k":1}}}"#)
                .is_ok()
        );
    }

    #[test]
    fn keeps_publisher_id_and_normalises_time_to_utc() {
        let event = single(
            r#"{"source":"s","detail-type":"t","id":"abc","time":"2026-01-01T12:00:00.5+02:00"}"#,
        )
        .unwrap();
        assert_eq!(event.id, "abc");
        assert!(
            event
                .envelope
                .contains(r#""time":"2026-01-01T10:00:00.500Z""#)
        );
    }

    #[test]
    fn refuses_bad_fields_with_their_names() {
        let cases = [
            (r#"{"detail-type":"t"}"#, "\"source\" is required"),
            (
                r#"{"source":5,"detail-type":"t"}"#,
                "\"source\" must be a string",
            ),
            (
                r#"{"source":"s","detail-type":"t","detail":[1]}"#,
                "\"detail\" must be a JSON object",
            ),
            (
                r#"{"source":"s","detail-type":"t","resources":"x"}"#,
                "\"resources\" must be an array",
            ),
            (
                r#"{"source":"s","detail-type":"t","time":"yesterday"}"#,
                "RFC 3339",
            ),
            (
                r#"{"source":"s","detail-type":"t","detail_type":"x"}"#,
                "unknown field \"detail_type\"",
            ),
            (
                r#"{"source":"","detail-type":"t"}"#,
                "\"source\" must be 1 to 256",
            ),
        ];
        for (body, expected) in cases {
            let err = single(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn an_envelope_can_be_published_again() {
        let first = single(r#"{"source":"s","detail-type":"t","detail":{"a":1}}"#).unwrap();
        let again = single(&first.envelope).unwrap();
        assert_eq!(again.envelope, first.envelope);
        let err = single(r#"{"version":"1","source":"s","detail-type":"t"}"#).unwrap_err();
        assert!(err.to_string().contains("\"version\""), "{err}");
    }

    #[test]
    fn an_envelope_with_attributes_and_data_publishes_again_unchanged() {
        let first = single(
            r#"{"source":"s","detail-type":"t","attributes":{"tenant":"acme"},
                "data_base64":"AAEC","datacontenttype":"application/octet-stream"}"#,
        )
        .unwrap();
        assert!(
            first
                .envelope
                .ends_with(r#""detail":{},"datacontenttype":"application/octet-stream","data_base64":"AAEC","attributes":{"tenant":"acme"}}"#),
            "{}",
            first.envelope
        );
        assert_eq!(single(&first.envelope).unwrap().envelope, first.envelope);
        for (body, says) in [
            (
                r#"{"source":"s","detail-type":"t","detail":{"a":1},"data":[1]}"#,
                "has no \"detail\"",
            ),
            (
                r#"{"source":"s","detail-type":"t","data_base64":"***"}"#,
                "not base64",
            ),
            (
                r#"{"source":"s","detail-type":"t","attributes":{"k":7}}"#,
                "an object of strings",
            ),
            (
                r#"{"source":"s","detail-type":"t","attributes":{"":"v"}}"#,
                "attribute name",
            ),
        ] {
            let message = single(body).unwrap_err().to_string();
            assert!(message.contains(says), "{body}: {message}");
        }
    }

    #[test]
    fn batch_entries_fail_one_by_one() {
        let body = r#"{"entries":[{"source":"s","detail-type":"t"},{"source":"s"},7]}"#;
        let request = parse_publish_request(body, &context(MIB, 0)).unwrap();
        assert!(!request.single);
        assert!(request.entries[0].is_ok());
        assert!(
            request.entries[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("detail-type")
        );
        assert!(
            request.entries[2]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("entries[2]")
        );
    }

    #[test]
    fn refuses_whole_request_for_bad_json_shape_and_size() {
        assert!(
            parse_publish_request("{", &context(MIB, 0))
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
        assert!(
            parse_publish_request("[1]", &context(MIB, 0))
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
        assert!(parse_publish_request(r#"{"entries":[]}"#, &context(MIB, 0)).is_err());
        let big = format!(
            r#"{{"source":"s","detail-type":"t","detail":{{"x":"{}"}}}}"#,
            "a".repeat(2000)
        );
        let err = parse_publish_request(&big, &context(1000, 0)).unwrap_err();
        assert_eq!(err.code(), "too_large");
    }
}
