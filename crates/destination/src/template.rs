//! URL and header templates: text with `{$.path}` placeholders filled from the event.
//!
//! In a URL, placeholders may stand only in the path and the query (never in the scheme, host
//! or port, so an event can never choose where its delivery goes), and every filled value is
//! percent-encoded as a component (`/`, `\`, `?`, `&`, `=`, `#`, `%` and spaces included), so a
//! value cannot add path segments or query parameters. A filled path segment that is a dot
//! segment (`.` or `..`, also written `%2e`) is refused rather than encoded: URL parsers treat
//! the encoded forms as dots too, and would move the request up the path. In a header value, a
//! filled value is inserted as text and the result must be free of control characters.
//!
//! Invariant: a template that parsed renders to a URL with the configured scheme and host and the
//! template's path segments, or to an error; never to a URL that points elsewhere.

use std::fmt;
use std::ops::Range;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{ConfigError, RenderError};
use crate::json_path::{JsonPath, value_text};

/// Everything but RFC 3986's unreserved characters is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(JsonPath),
}

/// Splits `text` into literal text and `{$...}` placeholders. `{` not followed by `$` is text.
fn pieces(text: &str) -> Result<Vec<(usize, Piece)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{$") {
        if start > 0 {
            out.push((offset, Piece::Text(rest[..start].to_string())));
        }
        let after = &rest[start + 1..];
        let end = after.find('}').ok_or_else(|| {
            format!(
                "the placeholder at {} has no closing \"}}\"",
                offset + start
            )
        })?;
        out.push((
            offset + start,
            Piece::Value(JsonPath::parse(&after[..end])?),
        ));
        rest = &after[end + 1..];
        offset += start + 1 + end + 1;
    }
    if !rest.is_empty() {
        out.push((offset, Piece::Text(rest.to_string())));
    }
    Ok(out)
}

/// A destination URL with placeholders: `https://api.example.com/orders/{$.detail.orderId}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UrlTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl UrlTemplate {
    /// Parses and checks a URL template; errors name the field `url`.
    pub fn parse(text: &str) -> Result<UrlTemplate, ConfigError> {
        let bad = |message: String| ConfigError::new("url", message);
        let authority_start = text
            .find("://")
            .map(|i| i + 3)
            .ok_or_else(|| bad("must be an absolute http:// or https:// URL".into()))?;
        let authority_end = text[authority_start..]
            .find(['/', '?', '#'])
            .map_or(text.len(), |i| authority_start + i);
        let mut parsed = Vec::new();
        // `#` cannot occur inside the authority (it ends it), so its first literal occurrence
        // starts the fragment.
        let mut in_fragment = false;
        for (offset, piece) in pieces(text).map_err(bad)? {
            match &piece {
                Piece::Text(literal) => {
                    in_fragment |= literal.contains('#');
                }
                Piece::Value(_) if offset < authority_end => {
                    return Err(bad(
                        "placeholders may stand only in the path and the query, not in the scheme, host or port".into(),
                    ));
                }
                // A fragment is never sent, so a value there would be silently lost.
                Piece::Value(_) if in_fragment => {
                    return Err(bad("placeholders cannot follow a \"#\" fragment".into()));
                }
                Piece::Value(_) => {}
            }
            parsed.push(piece);
        }
        let template = UrlTemplate {
            text: text.to_string(),
            pieces: parsed,
        };
        let sample = template.fill(|_| Some("x".into())).map_err(bad)?;
        check_url(&sample.text).map_err(bad)?;
        Ok(template)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the URL has placeholders (its value then depends on the event).
    pub fn is_templated(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Value(_)))
    }

    /// The template with every placeholder filled and encoded; the error is the path of a value
    /// that `value` did not give.
    fn fill(
        &self,
        mut value: impl FnMut(&JsonPath) -> Option<String>,
    ) -> Result<Filled<'_>, String> {
        let mut filled = Filled {
            text: String::with_capacity(self.text.len()),
            values: Vec::new(),
        };
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => filled.text.push_str(text),
                Piece::Value(path) => {
                    let text = value(path).ok_or_else(|| path.to_string())?;
                    let start = filled.text.len();
                    filled.text.extend(utf8_percent_encode(&text, COMPONENT));
                    filled.values.push((start..filled.text.len(), path));
                }
            }
        }
        Ok(filled)
    }

    /// The URL for one event.
    pub(crate) fn render(&self, event: &RawValue) -> Result<url::Url, RenderError> {
        let filled = self
            .fill(|path| {
                let json = path.select(event)?;
                value_text(&json).map(|t| t.into_owned())
            })
            .map_err(|path| RenderError::MissingValue {
                place: "url".into(),
                path,
            })?;
        if let Some((segment, path)) = filled.dot_segment() {
            return Err(RenderError::Url(format!(
                "{path} makes the path segment {segment:?}, which would move the request up the path"
            )));
        }
        url::Url::parse(&filled.text).map_err(|e| RenderError::Url(e.to_string()))
    }
}

/// A URL template with its placeholders filled: the text, and where each value landed in it.
struct Filled<'a> {
    text: String,
    values: Vec<(Range<usize>, &'a JsonPath)>,
}

impl Filled<'_> {
    /// The first path segment that a filled value is part of and that URL parsing would remove
    /// as a dot segment, with the value's path. Dot segments are `.` and `..` with any dot
    /// written as `%2e` or `%2E` (the WHATWG URL Standard's single- and double-dot segments).
    /// `?`, `#` and `/` in the text are the template's own: filled values have them encoded.
    fn dot_segment(&self) -> Option<(&str, &JsonPath)> {
        let text = self.text.as_str();
        let authority = text.find("://").map_or(0, |i| i + 3);
        let path_end = text[authority..]
            .find(['?', '#'])
            .map_or(text.len(), |i| authority + i);
        self.values
            .iter()
            .filter(|(range, _)| range.start <= path_end)
            .find_map(|(range, path)| {
                let start = text[..range.start].rfind('/').map_or(0, |i| i + 1);
                let end = text[range.end..path_end]
                    .find('/')
                    .map_or(path_end, |i| range.end + i);
                let segment = &text[start..end];
                let decoded = percent_decode_str(segment).decode_utf8_lossy();
                matches!(decoded.as_ref(), "." | "..").then_some((segment, *path))
            })
    }
}

fn check_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an absolute http:// or https:// URL with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials: they would be readable by anyone who can read the subscription; use a connection".into());
    }
    Ok(url)
}

impl TryFrom<String> for UrlTemplate {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        UrlTemplate::parse(&text).map_err(|e| e.message)
    }
}

impl From<UrlTemplate> for String {
    fn from(template: UrlTemplate) -> String {
        template.text
    }
}

impl fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlTemplate({:?})", self.text)
    }
}

/// A header value with placeholders: `{$.detail.tenant}` or `tenant-{$.detail.tenant}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeaderTemplate {
    text: String,
    pieces: Vec<Piece>,
}

impl HeaderTemplate {
    /// Parses a header value template; the error's field is empty, for the caller to name the
    /// header.
    pub fn parse(text: &str) -> Result<HeaderTemplate, ConfigError> {
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ConfigError::new(
                "",
                "the value contains control characters",
            ));
        }
        let pieces = pieces(text)
            .map_err(|m| ConfigError::new("", m))?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        Ok(HeaderTemplate {
            text: text.to_string(),
            pieces,
        })
    }

    pub(crate) fn render(&self, name: &str, event: &RawValue) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.text.len());
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Value(path) => {
                    let json = path.select(event).ok_or_else(|| missing(name, path))?;
                    let text = value_text(&json).ok_or_else(|| missing(name, path))?;
                    out.push_str(&text);
                }
            }
        }
        Ok(out)
    }
}

fn missing(name: &str, path: &JsonPath) -> RenderError {
    RenderError::MissingValue {
        place: format!("header {name:?}"),
        path: path.as_str().to_string(),
    }
}

impl TryFrom<String> for HeaderTemplate {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        HeaderTemplate::parse(&text).map_err(|e| e.relative())
    }
}

impl From<HeaderTemplate> for String {
    fn from(template: HeaderTemplate) -> String {
        template.text
    }
}

impl fmt::Debug for HeaderTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeaderTemplate({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str =
        r#"{"id":"e/1","detail":{"orderId":"A 1/2?x=y&z#f","n":42,"region":"eu","nothing":null}}"#;

    fn event() -> &'static RawValue {
        serde_json::from_str(EVENT).unwrap()
    }

    #[test]
    fn fills_path_and_query_with_encoded_values() {
        let t = UrlTemplate::parse(
            "https://api.example.com/v1/{$.detail.region}/orders/{$.detail.orderId}?n={$.detail.n}&id={$.id}",
        )
        .unwrap();
        assert!(t.is_templated());
        assert_eq!(
            t.render(event()).unwrap().as_str(),
            "https://api.example.com/v1/eu/orders/A%201%2F2%3Fx%3Dy%26z%23f?n=42&id=e%2F1"
        );
    }

    fn render_with(template: &str, value: &str) -> Result<url::Url, RenderError> {
        let event = serde_json::to_string(&serde_json::json!({"detail": {"t": value}})).unwrap();
        let event: Box<RawValue> = serde_json::from_str(&event).unwrap();
        UrlTemplate::parse(template).unwrap().render(&event)
    }

    #[test]
    fn dot_dot_in_a_url_template_cannot_climb_the_path() {
        for (template, value) in [
            ("https://h/tenants/{$.detail.t}/hook", ".."),
            ("https://h/tenants/{$.detail.t}/hook", "."),
            ("https://h/tenants/{$.detail.t}", ".."),
            ("https://h/tenants/{$.detail.t}", "."),
            ("https://h/tenants/{$.detail.t}?q=1", ".."),
            ("https://h/{$.detail.t}", ".."),
            ("https://h/tenants/.{$.detail.t}/hook", "."),
            ("https://h/tenants/{$.detail.t}./hook", "."),
            ("https://h/tenants/{$.detail.t}{$.detail.t}/hook", "."),
            ("https://h/tenants/%2e{$.detail.t}/hook", "."),
            ("https://h/tenants/%2E{$.detail.t}/hook", ""),
        ] {
            let error = render_with(template, value).unwrap_err();
            assert!(
                matches!(&error, RenderError::Url(m) if m.contains("$.detail.t") && m.contains("up the path")),
                "{template} with {value:?}: {error}"
            );
        }
    }

    #[test]
    fn values_keep_the_path_segments_of_the_template() {
        for (value, path) in [
            ("../x", "/tenants/..%2Fx/hook"),
            ("..\\x", "/tenants/..%5Cx/hook"),
            ("%2e%2e", "/tenants/%252e%252e/hook"),
            ("a/b", "/tenants/a%2Fb/hook"),
            ("...", "/tenants/.../hook"),
            ("..a", "/tenants/..a/hook"),
            ("", "/tenants//hook"),
        ] {
            let url = render_with("https://h/tenants/{$.detail.t}/hook", value).unwrap();
            assert_eq!(url.path(), path, "{value:?}");
            assert_eq!(url.path_segments().unwrap().count(), 3, "{value:?}");
        }
        let url = render_with("https://h/hook?tenant={$.detail.t}&x=.", "..").unwrap();
        assert_eq!(url.as_str(), "https://h/hook?tenant=..&x=.");
    }

    #[test]
    fn a_plain_url_is_a_template_without_placeholders() {
        let t = UrlTemplate::parse("http://127.0.0.1:8080/hook").unwrap();
        assert!(!t.is_templated());
        assert_eq!(
            t.render(event()).unwrap().as_str(),
            "http://127.0.0.1:8080/hook"
        );
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"http://127.0.0.1:8080/hook\""
        );
    }

    #[test]
    fn missing_and_null_values_are_render_errors() {
        let t = UrlTemplate::parse("https://h/{$.detail.absent}").unwrap();
        assert_eq!(
            t.render(event()).unwrap_err(),
            RenderError::MissingValue {
                place: "url".into(),
                path: "$.detail.absent".into()
            }
        );
        let t = UrlTemplate::parse("https://h/{$.detail.nothing}").unwrap();
        assert!(t.render(event()).is_err());
    }

    #[test]
    fn refuses_bad_url_templates() {
        for (text, expected) in [
            (
                "https://{$.detail.host}/x",
                "only in the path and the query",
            ),
            ("https://h:{$.detail.n}/x", "only in the path and the query"),
            ("https://h/x#{$.id}", "fragment"),
            ("https://h/{$.detail", "no closing"),
            ("https://h/{$detail}", "continues with"),
            ("ftp://h/x", "http:// or https://"),
            ("/relative/{$.id}", "absolute"),
            ("https://user:pw@h/x", "credentials"),
        ] {
            let err = UrlTemplate::parse(text).unwrap_err();
            assert_eq!(err.field, "url");
            assert!(err.message.contains(expected), "{text}: {err}");
        }
        let err = serde_json::from_str::<UrlTemplate>("\"https://{$.id}/\"").unwrap_err();
        assert!(err.to_string().contains("only in the path"), "{err}");
    }

    #[test]
    fn header_templates_insert_text_and_refuse_control_characters() {
        let t = HeaderTemplate::parse("order-{$.detail.orderId}; n={$.detail.n}").unwrap();
        assert_eq!(
            t.render("x-order", event()).unwrap(),
            "order-A 1/2?x=y&z#f; n=42"
        );
        let plain = HeaderTemplate::parse("{not a placeholder}").unwrap();
        assert_eq!(plain.render("x", event()).unwrap(), "{not a placeholder}");
        assert!(HeaderTemplate::parse("a\r\nb").is_err());
        let t = HeaderTemplate::parse("{$.detail.absent}").unwrap();
        assert!(matches!(
            t.render("x-a", event()),
            Err(RenderError::MissingValue { .. })
        ));
    }
}
