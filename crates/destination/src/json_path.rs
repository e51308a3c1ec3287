//! The JSON path subset that EventBridge's input transformer and switchyard's templates accept:
//! `$`, `.name` (letters, digits, `-`, `_`, `/` and other characters except `.[]{}<>` and
//! whitespace), `[n]`, and the wildcards `.*` / `[*]`.
//!
//! Evaluation works on the event's JSON text through [`RawValue`], never through
//! `serde_json::Value`, so a selected number keeps its exact digits (a 20-digit id stays one).
//! Must not allocate a parsed copy of the whole event.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Wildcard,
}

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<JsonPath, String> {
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(format!("JSON path {text:?} must start with \"$\""));
        };
        let bad = |why: &str| format!("JSON path {text:?} {why}");
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    return Err(bad("has an empty name after \".\""));
                }
                if name
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "]{}<>\"".contains(c))
                {
                    return Err(bad("has a name with a character paths cannot use"));
                }
                steps.push(if name == "*" {
                    Step::Wildcard
                } else {
                    Step::Key(name.to_string())
                });
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| bad("has a \"[\" without \"]\""))?;
                let inside = &after[..end];
                steps.push(if inside == "*" {
                    Step::Wildcard
                } else {
                    Step::Index(inside.parse().map_err(|_| {
                        bad("uses brackets for something other than an index or \"*\" (use dot notation for names)")
                    })?)
                });
                rest = &after[end + 1..];
            } else {
                return Err(bad(
                    "continues with something other than \".name\" or \"[n]\"",
                ));
            }
        }
        Ok(JsonPath {
            text: text.to_string(),
            steps,
        })
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// The selected value as JSON text, or `None` when the path selects nothing. A path with a
    /// wildcard always selects an array (possibly empty) of what matched, in document order.
    pub(crate) fn select<'a>(&self, root: &'a RawValue) -> Option<Cow<'a, str>> {
        let mut nodes: Vec<&'a RawValue> = vec![root];
        let mut many = false;
        for step in &self.steps {
            let mut next = Vec::new();
            for node in nodes {
                match step {
                    Step::Key(key) => {
                        if let Some(entries) = object_members(node) {
                            // The last duplicate wins, as serde_json's own maps do.
                            if let Some((_, value)) =
                                entries.into_iter().rev().find(|(k, _)| k == key)
                            {
                                next.push(value);
                            }
                        }
                    }
                    Step::Index(index) => {
                        if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(node.get())
                            && let Some(item) = items.get(*index)
                        {
                            next.push(*item);
                        }
                    }
                    Step::Wildcard => {
                        many = true;
                        if let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(node.get()) {
                            next.extend(items);
                        } else if let Some(entries) = object_members(node) {
                            next.extend(entries.into_iter().map(|(_, v)| v));
                        }
                    }
                }
            }
            nodes = next;
        }
        if many {
            let items: Vec<&str> = nodes.iter().map(|n| n.get()).collect();
            return Some(Cow::Owned(format!("[{}]", items.join(","))));
        }
        nodes.first().map(|n| Cow::Borrowed(n.get()))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An object's members in document order, or `None` if `node` is not an object.
pub(crate) fn object_members(node: &RawValue) -> Option<Vec<(String, &RawValue)>> {
    if !node.get().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Entries<'_>>(node.get())
        .ok()
        .map(|e| e.0)
}

struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A selected value as text for a URL, a header or a plain-text template: a string's content
/// without quotes or escapes, anything else as its JSON text. `None` for JSON null.
pub(crate) fn value_text(json: &str) -> Option<Cow<'_, str>> {
    if json == "null" {
        return None;
    }
    if json.starts_with('"') {
        // A string selected from valid JSON always parses; fall back to the raw text if not.
        return Some(
            serde_json::from_str::<String>(json)
                .map(Cow::Owned)
                .unwrap_or(Cow::Borrowed(json)),
        );
    }
    Some(Cow::Borrowed(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"id":"e1","detail":{"order":{"id":12345678901234567890123,"lines":[{"sku":"a"},{"sku":"b"},{"qty":1}]},"k-e_y/x":"v","dup":1,"dup":2}}"#;

    fn select(path: &str) -> Option<String> {
        let root: &RawValue = serde_json::from_str(EVENT).unwrap();
        JsonPath::parse(path)
            .unwrap()
            .select(root)
            .map(|c| c.into_owned())
    }

    #[test]
    fn selects_keys_indices_and_wildcards_keeping_number_text() {
        assert_eq!(select("$.id").as_deref(), Some("\"e1\""));
        assert_eq!(
            select("$.detail.order.id").as_deref(),
            Some("12345678901234567890123")
        );
        assert_eq!(
            select("$.detail.order.lines[1]").as_deref(),
            Some(r#"{"sku":"b"}"#)
        );
        assert_eq!(
            select("$.detail.order.lines[*].sku").as_deref(),
            Some(r#"["a","b"]"#)
        );
        assert_eq!(select("$.detail.k-e_y/x").as_deref(), Some("\"v\""));
        assert_eq!(select("$.detail.dup").as_deref(), Some("2"));
        assert_eq!(select("$").as_deref(), Some(EVENT));
        assert_eq!(select("$.detail.missing"), None);
        assert_eq!(select("$.detail.order.lines[9]"), None);
        assert_eq!(select("$.id.deeper"), None);
    }

    #[test]
    fn refuses_unsupported_syntax() {
        for bad in ["detail", "$..x", "$.a[", "$['a']", "$.a b", "$.", "$x"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_of_values() {
        assert_eq!(value_text(r#""a\"b""#).as_deref(), Some("a\"b"));
        assert_eq!(value_text("12").as_deref(), Some("12"));
        assert_eq!(value_text("null"), None);
    }
}
