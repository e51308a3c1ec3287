//! A verified request body as an event's `detail`: a JSON body as it came, form fields as a
//! JSON object, or other text wrapped as `{"body": "..."}`.
//!
//! The JSON text of a JSON object body is kept byte for byte (as the model keeps a publisher's
//! `detail`), so numbers such as 20-digit ids arrive at subscribers exactly as the sender wrote
//! them. Form fields become string fields, except a `payload` field holding JSON (Slack's
//! interactive requests, GitHub's form deliveries), which is parsed so patterns can reach into it.

use serde_json::{Map, Value};

/// A body that parsed. Holds the text it came from where the detail is that text.
pub(crate) enum Body<'a> {
    Json {
        text: &'a str,
        value: Value,
    },
    Form(Map<String, Value>),
    /// Text that is neither JSON nor form fields.
    Text(&'a str),
}

impl<'a> Body<'a> {
    /// Form fields when the content type says so; otherwise JSON if it parses, and other UTF-8
    /// text as a string (senders differ in what they write in the content type, and a verified
    /// sender's delivery is not lost over it). An empty body is `{}`. Refused: a body that
    /// claims JSON but is not, and bytes that are not UTF-8.
    pub(crate) fn parse(content_type: Option<&str>, body: &'a [u8]) -> Result<Body<'a>, String> {
        let media_type = content_type
            .map(switchyard_destination::media_type_essence)
            .unwrap_or_default();
        if media_type == "application/x-www-form-urlencoded" {
            let mut fields = Map::new();
            for (name, value) in form_urlencoded::parse(body) {
                let value = if name == "payload" {
                    serde_json::from_str::<Value>(&value)
                        .ok()
                        .filter(|v| v.is_object() || v.is_array())
                        .unwrap_or_else(|| Value::String(value.into_owned()))
                } else {
                    Value::String(value.into_owned())
                };
                // A repeated field keeps its last value.
                fields.insert(name.into_owned(), value);
            }
            return Ok(Body::Form(fields));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| "the body is neither form fields nor UTF-8 text".to_string())?
            .trim();
        if text.is_empty() {
            return Ok(Body::Json {
                text: "{}",
                value: Value::Object(Map::new()),
            });
        }
        match serde_json::from_str(text) {
            Ok(value) => Ok(Body::Json { text, value }),
            Err(e) if media_type == "application/json" || media_type.ends_with("+json") => {
                Err(format!("the body is not valid JSON: {e}"))
            }
            Err(_) => Ok(Body::Text(text)),
        }
    }

    /// A string field of a JSON object body, or of the object in a form's `payload`.
    pub(crate) fn field(&self, name: &str) -> Option<&str> {
        let object = match self {
            Body::Json { value, .. } => value,
            Body::Form(fields) => fields.get("payload")?,
            Body::Text(_) => return None,
        };
        object.get(name)?.as_str()
    }

    /// A form field's value (always a string but for `payload`).
    pub(crate) fn form_field(&self, name: &str) -> Option<&str> {
        match self {
            Body::Form(fields) => fields.get(name)?.as_str(),
            Body::Json { .. } | Body::Text(_) => None,
        }
    }

    pub(crate) fn is_form(&self) -> bool {
        matches!(self, Body::Form(_))
    }

    /// The event's `detail`: always a JSON object. A JSON body that is not an object (some
    /// senders post arrays of events), and plain text, are wrapped as `{"body": ...}`.
    pub(crate) fn into_detail(self) -> String {
        match self {
            Body::Json { text, value } if value.is_object() => text.to_string(),
            Body::Json { text, .. } => format!("{{\"body\":{text}}}"),
            Body::Form(fields) => Value::Object(fields).to_string(),
            Body::Text(text) => serde_json::json!({ "body": text }).to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");

    #[test]
    fn json_object_is_kept_byte_for_byte() {
        let text = b" {\"type\": \"event_callback\", \"n\": 12345678901234567890} \n";
        let body = Body::parse(Some("application/json"), text).unwrap();
        assert_eq!(body.field("type"), Some("event_callback"));
        assert_eq!(
            body.into_detail(),
            "{\"type\": \"event_callback\", \"n\": 12345678901234567890}"
        );
    }

    #[test]
    fn other_json_and_text_are_wrapped_and_empty_is_an_empty_object() {
        let body = Body::parse(None, b"[1, 2]").unwrap();
        assert_eq!(body.into_detail(), "{\"body\":[1, 2]}");
        let text = Body::parse(Some("text/plain"), b"Hello, \"World\"!").unwrap();
        assert_eq!(text.into_detail(), "{\"body\":\"Hello, \\\"World\\\"!\"}");
        assert_eq!(Body::parse(None, b"").unwrap().into_detail(), "{}");
        assert!(Body::parse(Some("application/json"), b"{nope").is_err());
        assert!(Body::parse(Some("application/cloudevents+json"), b"{nope").is_err());
        assert!(Body::parse(None, b"\xff\xfe").is_err());
    }

    #[test]
    fn form_fields_with_payload_parsed() {
        let body = Body::parse(
            FORM,
            b"command=%2Fjob&text=run+it&payload=%7B%22type%22%3A%22block_actions%22%7D",
        )
        .unwrap();
        assert!(body.is_form());
        assert_eq!(body.form_field("command"), Some("/job"));
        assert_eq!(body.field("type"), Some("block_actions"));
        let detail: Value = serde_json::from_str(&body.into_detail()).unwrap();
        assert_eq!(
            detail,
            serde_json::json!({"command": "/job", "text": "run it", "payload": {"type": "block_actions"}})
        );
    }

    #[test]
    fn a_payload_that_is_not_json_stays_text() {
        let body = Body::parse(FORM, b"payload=hello&payload=42").unwrap();
        assert_eq!(body.form_field("payload"), Some("42"));
        assert_eq!(body.field("type"), None);
    }
}
