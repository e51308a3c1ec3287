//! What every operation's request and answer share: reading a request into its shape, paging
//! (`Limit`, `NextToken`), tags, and times as epoch seconds (how AWS JSON 1.1 carries a
//! timestamp).
//!
//! Lenient on input: members the door does not know are ignored, because newer SDKs send
//! members older servers lack. A member of the wrong type is a `SerializationException`, as
//! EventBridge answers it.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EbError;

/// Reads a request (or a member of one) into its shape.
pub(crate) fn parse<T: DeserializeOwned>(input: Value) -> Result<T, EbError> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        EbError::client(
            "SerializationException",
            format!("member {path}: {}", e.into_inner()),
        )
    })
}

/// A request that names one resource: `{"Name": …}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Named {
    pub(crate) name: Option<String>,
}

/// A required member, or the `ValidationException` that names it.
pub(crate) fn required<T>(value: Option<T>, member: &str) -> Result<T, EbError> {
    value.ok_or_else(|| {
        EbError::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// EventBridge's names of rules, targets, buses, connections, API destinations, archives and
/// replays: `[.\-_A-Za-z0-9]+`, 1 to 64 characters (256 for buses, which switchyard's own names
/// limit further).
pub(crate) fn check_name(member: &str, name: &str) -> Result<(), EbError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        switchyard_model::validate_name(member, name).map_err(EbError::from)
    } else {
        Err(EbError::validation(format!(
            "1 validation error detected: Value {name:?} at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+ and have length 1 to 64"
        )))
    }
}

/// An answer's time: seconds since the epoch, with milliseconds.
pub(crate) fn epoch_s(ms: u64) -> Value {
    serde_json::json!(ms as f64 / 1000.0)
}

/// A request's time in ms, from epoch seconds (botocore sends a number).
pub(crate) fn ms_of(seconds: f64, member: &str) -> Result<u64, EbError> {
    if (0.0..1e13).contains(&seconds) {
        Ok((seconds * 1000.0).round() as u64)
    } else {
        Err(EbError::validation(format!(
            "{member} must be a time in seconds since 1970"
        )))
    }
}

/// `Limit` and `NextToken` of a `List*` call, whose results are in name order.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Paging {
    limit: Option<i64>,
    next_token: Option<String>,
}

/// The most a page holds, and what it holds unless `Limit` says less.
const MAX_LIMIT: i64 = 100;

impl Paging {
    /// Keeps this page of `items` (sorted by `name` here) and returns the `NextToken` of the
    /// next page, if there is one. The token is the last name returned, hex-encoded: opaque to
    /// clients, and stable across nodes and restarts.
    pub(crate) fn page<R>(
        &self,
        items: &mut Vec<R>,
        name: impl Fn(&R) -> &str,
    ) -> Result<Option<String>, EbError> {
        let limit = match self.limit {
            None => MAX_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => {
                return Err(EbError::validation(format!(
                    "Limit must be 1 to {MAX_LIMIT}, not {n}"
                )));
            }
        } as usize;
        items.sort_by(|a, b| name(a).cmp(name(b)));
        if let Some(token) = &self.next_token {
            let after = decode_token(token)
                .ok_or_else(|| EbError::validation("NextToken is not one this server gave"))?;
            items.retain(|item| name(item) > after.as_str());
        }
        let more = items.len() > limit;
        items.truncate(limit);
        Ok(more
            .then(|| items.last().map(|item| encode_token(name(item))))
            .flatten())
    }
}

fn encode_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || token.len() > 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// Puts `NextToken` into an answer when there is a next page.
pub(crate) fn with_token(mut answer: Value, token: Option<String>) -> Value {
    if let (Some(token), Some(object)) = (token, answer.as_object_mut()) {
        object.insert("NextToken".into(), Value::String(token));
    }
    answer
}

/// One tag as EventBridge writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tag {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// At most this many tags on one resource, as in EventBridge.
pub(crate) const MAX_TAGS: usize = 50;

/// Tags as a map, checked: keys 1 to 128 characters, values at most 256.
pub(crate) fn tag_map(
    current: BTreeMap<String, String>,
    tags: Vec<Tag>,
) -> Result<BTreeMap<String, String>, EbError> {
    let mut map = current;
    for tag in tags {
        if tag.key.is_empty() || tag.key.len() > 128 || tag.value.len() > 256 {
            return Err(EbError::validation(
                "a tag's Key must be 1 to 128 characters and its Value at most 256",
            ));
        }
        map.insert(tag.key, tag.value);
    }
    if map.len() > MAX_TAGS {
        return Err(EbError::limit_exceeded(format!(
            "a resource has at most {MAX_TAGS} tags; this would make {}",
            map.len()
        )));
    }
    Ok(map)
}

/// Tags in an answer.
pub(crate) fn tag_list(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_each_other_without_gaps() {
        let paging: Paging = parse(serde_json::json!({"Limit": 2})).unwrap();
        let mut names = vec!["c", "a", "b", "d", "e"];
        let token = paging.page(&mut names, |n| n).unwrap().unwrap();
        assert_eq!(names, ["a", "b"]);
        let next: Paging = parse(serde_json::json!({"Limit": 2, "NextToken": token})).unwrap();
        let mut names = vec!["c", "a", "b", "d", "e"];
        let token = next.page(&mut names, |n| n).unwrap().unwrap();
        assert_eq!(names, ["c", "d"]);
        let last: Paging = parse(serde_json::json!({"Limit": 2, "NextToken": token})).unwrap();
        let mut names = vec!["c", "a", "b", "d", "e"];
        assert_eq!(last.page(&mut names, |n| n).unwrap(), None);
        assert_eq!(names, ["e"]);
    }

    #[test]
    fn a_limit_out_of_range_or_a_foreign_token_is_a_validation_error() {
        for input in [
            serde_json::json!({"Limit": 0}),
            serde_json::json!({"Limit": 101}),
            serde_json::json!({"NextToken": "zz"}),
        ] {
            let paging: Paging = parse(input).unwrap();
            let error = paging.page(&mut vec!["a"], |n| n).unwrap_err();
            assert_eq!(error.kind, "ValidationException");
        }
    }
}
