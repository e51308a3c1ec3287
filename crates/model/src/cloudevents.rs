//! CloudEvents 1.0 in: the HTTP binding's structured, batch and binary modes, mapped onto the
//! event envelope without losing anything (docs/api.md#cloudevents).
//!
//! | CloudEvent | envelope |
//! |---|---|
//! | `id`, `source` | `id`, `source` |
//! | `type` | `detail-type` |
//! | `time` | `time`, as given (checked as RFC 3339, never rounded) |
//! | `subject` | `resources: [subject]` |
//! | `datacontenttype`, `dataschema` | members of the same names |
//! | extension attributes | `attributes` (their string form, as binary mode carries them) |
//! | `data`: a JSON object (JSON or no content type) | `detail` |
//! | `data`: another JSON value, or text of another content type | `data` |
//! | `data_base64`; a binary-mode body that is not JSON | `data_base64` |
//!
//! Owns the parsing and that mapping; the envelope itself is built by `event`, so a CloudEvent
//! meets every rule a REST event meets. Must not: accept a CloudEvent that is not 1.0, an
//! attribute name outside CloudEvents' `[a-z0-9]`, or data that contradicts its content type.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::value::RawValue;

use switchyard_destination::cloudevents::{self, CONTEXT_ATTRIBUTES, is_json_media_type};

use crate::event::{EventParts, PublishRequest, batch, object_fields, single, unique_keys};
use crate::{ModelError, PublishContext, parse_rfc3339_ms};

/// A CloudEvents request, as the HTTP binding delivers it.
#[derive(Debug)]
pub enum CloudEventsBody<'a> {
    /// `application/cloudevents+json`: one event as a JSON object.
    Structured(&'a str),
    /// `application/cloudevents-batch+json`: a JSON array of such objects.
    Batch(&'a str),
    /// Attributes in `ce-*` headers (names without the prefix, values as sent), the data in the
    /// body, its media type in `content-type`.
    Binary {
        /// `(name, value)` of each `ce-*` header, the name without `ce-`, the value still
        /// percent-encoded ([`cloudevents_headers`]).
        attributes: Vec<(String, String)>,
        /// The `content-type` header: the data's media type (`datacontenttype`).
        content_type: Option<&'a str>,
        /// The data, byte for byte.
        body: &'a [u8],
    },
}

/// Parses a CloudEvents request into events, as [`crate::parse_publish_request`] does a REST
/// body: a bad event of a batch fails only its entry; anything else refuses the request.
pub fn parse_cloudevents(
    body: CloudEventsBody<'_>,
    context: &PublishContext,
) -> Result<PublishRequest, ModelError> {
    match body {
        CloudEventsBody::Structured(text) => {
            unique_keys(text)?;
            single(structured(text, "the CloudEvent")?.build(context)?, context)
        }
        CloudEventsBody::Batch(text) => {
            unique_keys(text)?;
            let raw: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| {
                ModelError::invalid("a CloudEvents batch must be a JSON array of CloudEvents")
            })?;
            batch(&raw, "the batch", context, |index, event| {
                structured(event, &format!("CloudEvent {index}")).and_then(|p| p.build(context))
            })
        }
        CloudEventsBody::Binary {
            attributes,
            content_type,
            body,
        } => single(
            binary(attributes, content_type, body)?.build(context)?,
            context,
        ),
    }
}

/// Collects context attributes by name, checking the names and the spec version.
#[derive(Default)]
struct Attributes {
    core: BTreeMap<&'static str, String>,
    extensions: BTreeMap<String, String>,
}

impl Attributes {
    fn insert(&mut self, name: &str, value: String) -> Result<(), ModelError> {
        if !cloudevents::is_attribute_name(name) {
            return Err(ModelError::invalid(format!(
                "CloudEvents attribute name {name:?} must be lowercase letters and digits"
            )));
        }
        match CONTEXT_ATTRIBUTES.iter().find(|core| **core == name) {
            Some(core) => self.core.insert(core, value),
            None => self.extensions.insert(name.to_string(), value),
        };
        Ok(())
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.core.remove(name)
    }

    /// The parts every mode fills alike; the data is the caller's.
    fn into_parts<'a>(mut self) -> Result<EventParts<'a>, ModelError> {
        match self.take("specversion").as_deref() {
            Some("1.0") => {}
            Some(other) => {
                return Err(ModelError::invalid(format!(
                    "CloudEvents specversion {other:?} is not supported; send 1.0"
                )));
            }
            None => return Err(ModelError::invalid("the CloudEvent has no specversion")),
        }
        let mut required = |name: &str| {
            self.take(name)
                .ok_or_else(|| ModelError::invalid(format!("the CloudEvent has no {name}")))
        };
        let id = required("id")?;
        let source = required("source")?;
        let detail_type = required("type")?;
        let time = self.take("time");
        if let Some(time) = &time {
            parse_rfc3339_ms("time", time)?;
        }
        Ok(EventParts {
            id: Some(id),
            source: Some(source),
            detail_type: Some(detail_type),
            time,
            resources: self.take("subject").into_iter().collect(),
            datacontenttype: self.take("datacontenttype"),
            dataschema: self.take("dataschema"),
            attributes: self.extensions,
            ..EventParts::default()
        })
    }
}

fn structured<'a>(text: &'a str, what: &str) -> Result<EventParts<'a>, ModelError> {
    let fields = object_fields(text, what)?;
    let mut attributes = Attributes::default();
    let mut data = None;
    let mut data_base64 = None;
    for (name, value) in &fields {
        match name.as_str() {
            "data" => data = Some(value.get()),
            "data_base64" => {
                data_base64 = Some(serde_json::from_str::<String>(value.get()).map_err(|_| {
                    ModelError::invalid(format!("{what}: data_base64 must be a base64 string"))
                })?);
            }
            _ => {
                let Some(value) = attribute_value(name, value)? else {
                    continue;
                };
                attributes.insert(name, value)?;
            }
        }
    }
    let mut parts = attributes.into_parts()?;
    match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err(ModelError::invalid(format!(
                "{what} has both data and data_base64; send one"
            )));
        }
        (Some("null"), None) | (None, None) => {}
        (Some(data), None) => {
            if is_json_media_type(parts.datacontenttype.as_deref()) && data.starts_with('{') {
                parts.detail = Some(data);
            } else {
                parts.data = Some(data);
            }
        }
        (None, Some(bytes)) => parts.data_base64 = Some(bytes),
    }
    Ok(parts)
}

/// An attribute's value in its string form; `None` for `null`, which the JSON format reads as
/// absent.
fn attribute_value(name: &str, value: &RawValue) -> Result<Option<String>, ModelError> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| ModelError::invalid(format!("CloudEvents attribute {name}: {e}"))),
        Some(b'{' | b'[') => Err(ModelError::invalid(format!(
            "CloudEvents attribute {name} must be a string, a number or a boolean"
        ))),
        _ if text == "null" => Ok(None),
        _ => Ok(Some(text.to_string())),
    }
}

fn binary<'a>(
    headers: Vec<(String, String)>,
    content_type: Option<&str>,
    body: &'a [u8],
) -> Result<EventParts<'a>, ModelError> {
    let mut attributes = Attributes::default();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name == "datacontenttype" || name == "data" || name == "data_base64" {
            return Err(ModelError::invalid(format!(
                "ce-{name} is not a binary-mode header: the data is the body and its type content-type"
            )));
        }
        // HTTP binding §3.1.3.2: values are percent-encoded, and decode to UTF-8.
        let decoded = percent_encoding::percent_decode_str(&value)
            .decode_utf8()
            .map_err(|_| {
                ModelError::invalid(format!("header ce-{name} does not percent-decode to UTF-8"))
            })?;
        attributes.insert(&name, decoded.into_owned())?;
    }
    let mut parts = attributes.into_parts()?;
    parts.datacontenttype = content_type.map(str::to_string);
    if body.is_empty() {
        return Ok(parts);
    }
    // Without a content-type (HTTP: unknown, so octets), a body that parses as JSON is JSON.
    let sniffed_json = content_type.is_none()
        && std::str::from_utf8(body).is_ok_and(|t| serde_json::from_str::<&RawValue>(t).is_ok());
    if content_type.is_some_and(|c| is_json_media_type(Some(c))) || sniffed_json {
        let text = std::str::from_utf8(body).map_err(|_| {
            ModelError::invalid("the body is not UTF-8, though its content-type is JSON")
        })?;
        serde_json::from_str::<&RawValue>(text).map_err(|e| {
            ModelError::invalid(format!(
                "the body is not JSON, though its content-type is: {e}"
            ))
        })?;
        unique_keys(text)?;
        let text = text.trim();
        if text.starts_with('{') {
            parts.detail = Some(text);
        } else {
            parts.data = Some(text);
        }
    } else {
        parts.data_base64 = Some(STANDARD.encode(body));
    }
    Ok(parts)
}

/// The request's `ce-*` headers without the prefix, in the order given.
pub fn cloudevents_headers<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
) -> Result<Vec<(String, String)>, ModelError> {
    let mut attributes = Vec::new();
    for (name, value) in headers {
        let Some(attribute) = name
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("ce-"))
            .map(|_| &name[3..])
        else {
            continue;
        };
        let value = std::str::from_utf8(value)
            .map_err(|_| ModelError::invalid(format!("header {name} is not ASCII")))?;
        attributes.push((attribute.to_string(), value.to_string()));
    }
    Ok(attributes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AwsIdentity, TraceContext};

    fn context() -> PublishContext {
        PublishContext {
            ingested_ms: 1_000,
            max_event_bytes: 1 << 20,
            hops: 0,
            trace: TraceContext::new_root(),
            aws: AwsIdentity::default(),
        }
    }

    fn envelope(body: CloudEventsBody<'_>) -> serde_json::Value {
        let request = parse_cloudevents(body, &context()).unwrap();
        let event = request.entries.into_iter().next().unwrap().unwrap();
        serde_json::from_str(&event.envelope).unwrap()
    }

    fn error(body: CloudEventsBody<'_>) -> String {
        parse_cloudevents(body, &context()).unwrap_err().to_string()
    }

    #[test]
    fn a_structured_event_maps_onto_the_envelope_and_keeps_its_time_as_given() {
        let e = envelope(CloudEventsBody::Structured(
            r#"{"specversion":"1.0","id":"A-1","source":"/shop","type":"order.placed",
                "time":"2026-03-01T10:00:00.123456+02:00","subject":"orders/42",
                "dataschema":"https://schema.example.com/o","traceparentx":"t","priority":3,
                "urgent":true,"nothing":null,"data":{"total": 1.50}}"#,
        ));
        assert_eq!(e["id"], "A-1");
        assert_eq!(e["source"], "/shop");
        assert_eq!(e["detail-type"], "order.placed");
        assert_eq!(e["time"], "2026-03-01T10:00:00.123456+02:00");
        assert_eq!(e["resources"], serde_json::json!(["orders/42"]));
        assert_eq!(e["dataschema"], "https://schema.example.com/o");
        assert_eq!(
            e["attributes"],
            serde_json::json!({"traceparentx": "t", "priority": "3", "urgent": "true"})
        );
        assert_eq!(e["detail"]["total"], 1.5);
        assert!(e.get("data").is_none() && e.get("datacontenttype").is_none());
    }

    #[test]
    fn data_that_is_not_a_json_object_is_kept_as_data_or_bytes() {
        let text = envelope(CloudEventsBody::Structured(
            r#"{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"{not json"}"#,
        ));
        assert_eq!(text["data"], "{not json");
        assert_eq!(text["detail"], serde_json::json!({}));
        let array = envelope(CloudEventsBody::Structured(
            r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":[1,2]}"#,
        ));
        assert_eq!(array["data"], serde_json::json!([1, 2]));
        let bytes = envelope(CloudEventsBody::Structured(
            r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AAEC"}"#,
        ));
        assert_eq!(bytes["data_base64"], "AAEC");
    }

    #[test]
    fn a_binary_event_reads_percent_encoded_headers_and_its_body_by_content_type() {
        let headers = |extra: &[(&str, &str)]| {
            let mut h: Vec<(String, String)> = [
                ("specversion", "1.0"),
                ("id", "b-1"),
                ("source", "/shop"),
                ("type", "order%20placed%20%E2%82%AC"),
            ]
            .iter()
            .chain(extra)
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
            h.sort();
            h
        };
        let json = envelope(CloudEventsBody::Binary {
            attributes: headers(&[("Region", "eu")]),
            content_type: Some("application/json; charset=utf-8"),
            body: br#"{"n": 1}"#,
        });
        assert_eq!(json["detail-type"], "order placed \u{20ac}");
        assert_eq!(json["detail"]["n"], 1);
        assert_eq!(json["attributes"]["region"], "eu");
        assert_eq!(json["datacontenttype"], "application/json; charset=utf-8");
        let raw = envelope(CloudEventsBody::Binary {
            attributes: headers(&[]),
            content_type: Some("application/octet-stream"),
            body: &[0, 159, 146, 150],
        });
        assert_eq!(raw["data_base64"], STANDARD.encode([0, 159, 146, 150]));
        assert!(
            error(CloudEventsBody::Binary {
                attributes: headers(&[]),
                content_type: Some("application/json"),
                body: b"{oops",
            })
            .contains("not JSON")
        );
    }

    #[test]
    fn bad_cloudevents_are_refused_with_what_to_fix() {
        for (body, expected) in [
            (r#"{"id":"1","source":"s","type":"t"}"#, "no specversion"),
            (
                r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#,
                "send 1.0",
            ),
            (r#"{"specversion":"1.0","source":"s","type":"t"}"#, "no id"),
            (
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","Bad-Name":"x"}"#,
                "lowercase",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}"#,
                "time",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}"#,
                "both data and data_base64",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!!"}"#,
                "not base64",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","ext":{"a":1}}"#,
                "a string, a number or a boolean",
            ),
            (
                r#"{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}"#,
                "id",
            ),
        ] {
            let message = error(CloudEventsBody::Structured(body));
            assert!(message.contains(expected), "{body}: {message}");
        }
    }

    #[test]
    fn a_batch_fails_only_its_bad_entries() {
        let request = parse_cloudevents(
            CloudEventsBody::Batch(
                r#"[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"specversion":"1.0","id":"2"}]"#,
            ),
            &context(),
        )
        .unwrap();
        assert!(!request.single);
        assert!(request.entries[0].is_ok());
        assert!(
            request.entries[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("no source")
        );
        assert!(error(CloudEventsBody::Batch("[]")).contains("send 1 to"));
        assert!(error(CloudEventsBody::Batch("{}")).contains("JSON array"));
    }
}
