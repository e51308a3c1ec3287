//! EventBridge's input transformer: `input_paths` names values of the event by JSON path, and
//! `input_template` is the payload to send, with `<name>` where a value goes.
//!
//! The template is JSON when it starts (after spaces) with `{`, `[` or `"`, and plain text
//! otherwise. The quoting rules follow EventBridge:
//! - in a JSON template, a placeholder outside quotes is replaced by the value's JSON (`"text"`,
//!   `42`, `{...}`); a missing value becomes `null`;
//! - inside a quoted JSON string, a string value is inserted without its quotes (escaped so the
//!   string stays valid), any other value as its JSON text escaped the same way, and a missing
//!   value as nothing;
//! - in a plain-text template, a string value is inserted as its text, anything else as its JSON
//!   text, and a missing value as nothing.
//!
//! Predefined names (EventBridge's, so templates can be moved over unchanged):
//! `aws.events.event.json` (the whole envelope), `aws.events.event` (the envelope without
//! `detail`), `aws.events.rule-name` (the rule's name, or the subscription's) and
//! `aws.events.event.ingestion-time` (when switchyard accepted the event, RFC 3339).
//!
//! Instead of a template, `input_path` (EventBridge's `InputPath`) sends the JSON of the one
//! value a path selects (`$.detail`), or `null` when the event has no such value. A transform has
//! exactly one of `input_template` and `input_path`.
//!
//! Must not: produce invalid JSON from a JSON template. Validation fills every placeholder and
//! parses the result, which also refuses a placeholder used as an object key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ConfigError, RenderError};
use crate::json_path::{JsonPath, object_members, value_text};

const MAX_PATHS: usize = 100;
const MAX_TEMPLATE_BYTES: usize = 8192;
const EVENT_JSON: &str = "aws.events.event.json";
const EVENT_WITHOUT_DETAIL: &str = "aws.events.event";
const RULE_NAME: &str = "aws.events.rule-name";
const INGESTION_TIME: &str = "aws.events.event.ingestion-time";
const PREDEFINED: [&str; 4] = [EVENT_JSON, EVENT_WITHOUT_DETAIL, RULE_NAME, INGESTION_TIME];

/// The JSON form: `{"input_paths": {"id": "$.detail.id"}, "input_template": "{\"order\": <id>}"}`,
/// or `{"input_path": "$.detail"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// Placeholder name to the JSON path of its value (`"id": "$.detail.id"`): at most 100;
    /// names of letters, digits, `.`, `_` and `-`, and none starting with `aws.`, which the
    /// predefined names own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_paths: BTreeMap<String, String>,
    /// The payload with `<name>` placeholders, not blank and at most 8,192 bytes: JSON when it
    /// starts (after spaces) with `{`, `[` or `"`, plain text otherwise. Required unless
    /// `input_path` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_template: Option<String>,
    /// The JSON path (`$.detail`) of the value whose JSON is the whole payload; exclusive with
    /// `input_template` and `input_paths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_path: Option<String>,
}

/// A validated input transformer, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TransformSpec", into = "TransformSpec")]
pub struct Transform {
    spec: TransformSpec,
    paths: BTreeMap<String, JsonPath>,
    /// The template, or `input_path` compiled.
    shape: Shape,
}

/// How a transform makes its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Template { text: String, json: bool },
    Path(JsonPath),
}

/// What a delivery carries: JSON text or plain text (what a transform produces, or an event's
/// own data), or bytes (an event's `data_base64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    Json(String),
    Text(String),
    Bytes(Vec<u8>),
}

impl Payload {
    /// The bytes that are sent.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self {
            Payload::Json(text) | Payload::Text(text) => text.into_bytes(),
            Payload::Bytes(bytes) => bytes,
        }
    }
}

/// What the predefined names stand for in one attempt.
pub(crate) struct Predefined<'a> {
    pub envelope: &'a str,
    pub rule: &'a str,
    pub ingestion_time: &'a str,
}

impl Transform {
    /// Checks `spec` and compiles its paths: every placeholder is in `input_paths` or
    /// predefined, and a JSON template is valid JSON once filled (so no placeholder is an object
    /// key). Errors name `input_paths.{name}`, `input_template` or `input_path`.
    pub(crate) fn new(spec: TransformSpec) -> Result<Transform, ConfigError> {
        let template = match (&spec.input_template, &spec.input_path) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "input_path",
                    "cannot be given with input_template: a transform has one of them",
                ));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "input_template",
                    "is required unless input_path is given",
                ));
            }
            (None, Some(path)) => {
                if !spec.input_paths.is_empty() {
                    return Err(ConfigError::new(
                        "input_paths",
                        "applies only with input_template; input_path sends the value it selects",
                    ));
                }
                let path = JsonPath::parse(path).map_err(|m| ConfigError::new("input_path", m))?;
                return Ok(Transform {
                    spec,
                    paths: BTreeMap::new(),
                    shape: Shape::Path(path),
                });
            }
            (Some(template), None) => template.clone(),
        };
        if spec.input_paths.len() > MAX_PATHS {
            return Err(ConfigError::new(
                "input_paths",
                format!(
                    "has {} entries; at most {MAX_PATHS}",
                    spec.input_paths.len()
                ),
            ));
        }
        let mut paths = BTreeMap::new();
        for (name, path) in &spec.input_paths {
            let field = format!("input_paths.{name}");
            if !is_name(name) {
                return Err(ConfigError::new(
                    field,
                    "a name is letters, digits, '.', '_' and '-'",
                ));
            }
            if name.starts_with("aws.") {
                return Err(ConfigError::new(
                    field,
                    "names starting with \"aws.\" are reserved for the predefined values",
                ));
            }
            paths.insert(
                name.clone(),
                JsonPath::parse(path).map_err(|m| ConfigError::new(field, m))?,
            );
        }
        let template = &template;
        let bad = |message: String| ConfigError::new("input_template", message);
        if template.trim().is_empty() || template.len() > MAX_TEMPLATE_BYTES {
            return Err(bad(format!("must be 1 to {MAX_TEMPLATE_BYTES} bytes")));
        }
        for segment in segments(template) {
            if let Segment::Placeholder(name) = segment
                && !paths.contains_key(name)
                && !PREDEFINED.contains(&name)
            {
                return Err(bad(format!(
                    "<{name}> is neither in input_paths nor a predefined name ({})",
                    PREDEFINED.join(", ")
                )));
            }
        }
        let json = template.trim_start().starts_with(['{', '[', '"']);
        let transform = Transform {
            spec: spec.clone(),
            paths,
            shape: Shape::Template {
                text: template.clone(),
                json,
            },
        };
        if json {
            // Fill with the shapes that can break JSON: a value outside quotes, text inside.
            let sample = Transform::fill(template, json, |_| Some("null".into()));
            serde_json::from_str::<&RawValue>(&sample).map_err(|e| {
                bad(format!(
                    "is not valid JSON once its placeholders are filled ({e}); a placeholder cannot be an object key"
                ))
            })?;
        }
        Ok(transform)
    }

    /// The payload for one event. `event` is the envelope parsed as a raw JSON value.
    pub(crate) fn apply(
        &self,
        event: &RawValue,
        predefined: &Predefined<'_>,
    ) -> Result<Payload, RenderError> {
        let (template, json) = match &self.shape {
            Shape::Path(path) => {
                let value = path.select(event).map_or("null".into(), |v| v.into_owned());
                return Ok(Payload::Json(value));
            }
            Shape::Template { text, json } => (text, *json),
        };
        let without_detail = envelope_without_detail(event);
        let output = Transform::fill(template, json, |name| match name {
            EVENT_JSON => Some(predefined.envelope.to_string()),
            EVENT_WITHOUT_DETAIL => Some(without_detail.clone()),
            RULE_NAME => Some(json_string(predefined.rule)),
            INGESTION_TIME => Some(json_string(predefined.ingestion_time)),
            _ => self
                .paths
                .get(name)
                .and_then(|path| path.select(event))
                .map(|json| json.into_owned()),
        });
        if !json {
            return Ok(Payload::Text(output));
        }
        serde_json::from_str::<&RawValue>(&output)
            .map_err(|e| RenderError::Transform(e.to_string()))?;
        Ok(Payload::Json(output))
    }

    /// Fills the template; `value` gives a name's JSON text, `None` when the event lacks it.
    fn fill(
        template: &str,
        is_json: bool,
        mut value: impl FnMut(&str) -> Option<String>,
    ) -> String {
        let mut out = String::with_capacity(template.len());
        let mut in_string = false;
        let mut escaped = false;
        for segment in segments(template) {
            match segment {
                Segment::Text(text) => {
                    out.push_str(text);
                    if is_json {
                        for c in text.chars() {
                            match (escaped, c) {
                                (true, _) => escaped = false,
                                (false, '\\') if in_string => escaped = true,
                                (false, '"') => in_string = !in_string,
                                _ => {}
                            }
                        }
                    }
                }
                Segment::Placeholder(name) => {
                    let json = value(name);
                    match (is_json, in_string, json) {
                        (true, false, Some(json)) => out.push_str(&json),
                        (true, false, None) => out.push_str("null"),
                        (true, true, Some(json)) => out.push_str(&string_content(&json)),
                        (false, _, Some(json)) => {
                            if let Some(text) = value_text(&json) {
                                out.push_str(&text);
                            }
                        }
                        (_, _, None) => {}
                    }
                }
            }
        }
        out
    }
}

impl TryFrom<TransformSpec> for Transform {
    type Error = String;
    fn try_from(spec: TransformSpec) -> Result<Self, String> {
        Transform::new(spec).map_err(|e| e.relative())
    }
}

impl From<Transform> for TransformSpec {
    fn from(transform: Transform) -> TransformSpec {
        transform.spec
    }
}

enum Segment<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// Splits a template at `<name>` placeholders. A `<` not followed by a name and `>` is text.
fn segments(template: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) if is_name(&after[..end]) => {
                if start > 0 {
                    out.push(Segment::Text(&rest[..start]));
                }
                out.push(Segment::Placeholder(&after[..end]));
                rest = &after[end + 1..];
            }
            _ => {
                out.push(Segment::Text(&rest[..=start]));
                rest = after;
            }
        }
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    out
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A value's JSON text as the inside of a JSON string: a string loses its quotes (its escapes
/// stay valid), anything else is escaped as text.
fn string_content(json: &str) -> String {
    if json.len() >= 2 && json.starts_with('"') && json.ends_with('"') {
        return json[1..json.len() - 1].to_string();
    }
    let quoted = json_string(json);
    quoted[1..quoted.len() - 1].to_string()
}

fn json_string(text: &str) -> String {
    // Serialising a &str cannot fail.
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// The envelope without its `detail` member, as EventBridge's `aws.events.event`.
fn envelope_without_detail(event: &RawValue) -> String {
    let Some(entries) = object_members(event) else {
        return "null".into();
    };
    let parts: Vec<String> = entries
        .into_iter()
        .filter(|(k, _)| k != "detail")
        .map(|(k, v)| format!("{}:{}", json_string(&k), v.get()))
        .collect();
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = r#"{"version":"0","id":"e1","detail-type":"Order Placed","source":"shop","time":"2026-01-01T00:00:00Z","resources":[],"detail":{"id":12345678901234567890,"status":"PAID","note":"say \"hi\"","tags":["a","b"],"total":{"eur":9.5}}}"#;

    fn apply(paths: &[(&str, &str)], template: &str) -> Result<Payload, RenderError> {
        let spec = TransformSpec {
            input_paths: paths
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            input_template: Some(template.into()),
            input_path: None,
        };
        let event: &RawValue = serde_json::from_str(ENVELOPE).unwrap();
        Transform::new(spec).unwrap().apply(
            event,
            &Predefined {
                envelope: ENVELOPE,
                rule: "orders-to-crm",
                ingestion_time: "2026-01-01T00:00:01.000Z",
            },
        )
    }

    #[test]
    fn whole_value_substitution_keeps_json_types_and_digits() {
        let out = apply(
            &[
                ("id", "$.detail.id"),
                ("status", "$.detail.status"),
                ("total", "$.detail.total"),
                ("gone", "$.detail.gone"),
            ],
            r#"{"id": <id>, "status": <status>, "total": <total>, "gone": <gone>}"#,
        )
        .unwrap();
        assert_eq!(
            out,
            Payload::Json(
                r#"{"id": 12345678901234567890, "status": "PAID", "total": {"eur":9.5}, "gone": null}"#
                    .into()
            )
        );
    }

    #[test]
    fn values_inside_quotes_are_inserted_as_escaped_text() {
        let out = apply(
            &[
                ("status", "$.detail.status"),
                ("note", "$.detail.note"),
                ("tags", "$.detail.tags"),
                ("gone", "$.detail.gone"),
            ],
            r#"{"text": "order is <status>: <note> <tags><gone>", "esc": "a \"<status>\""}"#,
        )
        .unwrap();
        let Payload::Json(json) = out else { panic!() };
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["text"], r#"order is PAID: say "hi" ["a","b"]"#);
        assert_eq!(value["esc"], r#"a "PAID""#);
    }

    #[test]
    fn plain_text_templates_insert_text() {
        let out = apply(
            &[("status", "$.detail.status"), ("id", "$.detail.id")],
            "order <id> is <status> <gone-not-defined-is-text",
        );
        assert_eq!(
            out.unwrap(),
            Payload::Text("order 12345678901234567890 is PAID <gone-not-defined-is-text".into())
        );
    }

    #[test]
    fn a_quoted_template_is_a_json_string() {
        let out = apply(&[("status", "$.detail.status")], r#""state <status>""#).unwrap();
        assert_eq!(out, Payload::Json(r#""state PAID""#.into()));
    }

    #[test]
    fn predefined_names() {
        let out = apply(
            &[],
            r#"{"rule": <aws.events.rule-name>, "at": "<aws.events.event.ingestion-time>", "event": <aws.events.event>, "whole": <aws.events.event.json>}"#,
        )
        .unwrap();
        let Payload::Json(json) = out else { panic!() };
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["rule"], "orders-to-crm");
        assert_eq!(value["at"], "2026-01-01T00:00:01.000Z");
        assert_eq!(value["event"]["id"], "e1");
        assert!(value["event"].get("detail").is_none());
        assert_eq!(value["whole"]["detail"]["status"], "PAID");
    }

    #[test]
    fn refuses_bad_transforms_naming_the_field() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str, &'a str);
        let cases: [Case; 6] = [
            (&[], "", "input_template", "1 to 8192"),
            (&[("x", "$.a")], "{<x>: 1}", "input_template", "object key"),
            (
                &[("x", "$.a")],
                r#"{"a": <x>"#,
                "input_template",
                "not valid JSON",
            ),
            (&[], "<nope>", "input_template", "<nope> is neither"),
            (&[("x", "a.b")], "<x>", "input_paths.x", "must start with"),
            (
                &[("aws.mine", "$.a")],
                "<aws.mine>",
                "input_paths.aws.mine",
                "reserved",
            ),
        ];
        for (paths, template, field, expected) in cases {
            let spec = TransformSpec {
                input_paths: paths
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                input_template: Some(template.into()),
                input_path: None,
            };
            let err = Transform::new(spec).unwrap_err();
            assert_eq!(err.field, field, "{template}");
            assert!(err.message.contains(expected), "{template}: {err}");
        }
        let err = serde_json::from_str::<Transform>(r#"{"input_template":"<x>"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("input_template: <x> is neither"),
            "{err}"
        );
    }

    #[test]
    fn input_path_sends_the_selected_value_or_null() {
        let event: &RawValue = serde_json::from_str(ENVELOPE).unwrap();
        let predefined = Predefined {
            envelope: ENVELOPE,
            rule: "s",
            ingestion_time: "2026-01-01T00:00:01.000Z",
        };
        let transform: Transform =
            serde_json::from_str(r#"{"input_path":"$.detail.total"}"#).unwrap();
        assert_eq!(
            transform.apply(event, &predefined).unwrap(),
            Payload::Json(r#"{"eur":9.5}"#.into())
        );
        let missing: Transform = serde_json::from_str(r#"{"input_path":"$.detail.gone"}"#).unwrap();
        assert_eq!(
            missing.apply(event, &predefined).unwrap(),
            Payload::Json("null".into())
        );
        assert_eq!(
            serde_json::to_string(&transform).unwrap(),
            r#"{"input_path":"$.detail.total"}"#
        );
    }

    #[test]
    fn a_transform_has_exactly_one_of_template_and_path() {
        for (body, expected) in [
            (
                r#"{"input_template":"x","input_path":"$.detail"}"#,
                "input_path: cannot be given with input_template",
            ),
            (r#"{}"#, "input_template: is required unless input_path"),
            (
                r#"{"input_paths":{"a":"$.a"}}"#,
                "input_template: is required unless input_path",
            ),
            (
                r#"{"input_paths":{"a":"$.a"},"input_path":"$.detail"}"#,
                "input_paths: applies only with input_template",
            ),
            (
                r#"{"input_path":"detail"}"#,
                "input_path: JSON path \"detail\" must start with",
            ),
        ] {
            let err = serde_json::from_str::<Transform>(body).unwrap_err();
            assert!(err.to_string().starts_with(expected), "{body}: {err}");
        }
        // A transform stored before input_path existed still reads.
        let stored: Transform =
            serde_json::from_str(r#"{"input_paths":{"id":"$.detail.id"},"input_template":"<id>"}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            r#"{"input_paths":{"id":"$.detail.id"},"input_template":"<id>"}"#
        );
    }
}
