//! The small configuration types of a destination: payload format, HTTP method and identity
//! token, and the rules for header names. Their defaults keep the behaviour switchyard had
//! before they existed: the envelope, POSTed as JSON, with no token.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// What the request body is. JSON: `"envelope"` (default), `"detail"`, `"cloudevents-binary"`,
/// `"cloudevents-structured"`, `"pubsub-push"`, `"pubsub-push-unwrapped"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The stored envelope, byte for byte.
    #[default]
    Envelope,
    /// Only the event's `detail` object.
    Detail,
    /// CloudEvents 1.0, HTTP binary mode: attributes in `ce-*` headers, the data as the body.
    CloudeventsBinary,
    /// CloudEvents 1.0, HTTP structured mode: one `application/cloudevents+json` document.
    CloudeventsStructured,
    /// Google Pub/Sub's wrapped push body (`message.data` is the base64 payload).
    PubsubPush,
    /// Google Pub/Sub's unwrapped push: the payload as the body, metadata in
    /// `x-goog-pubsub-*` headers and attributes as headers.
    PubsubPushUnwrapped,
}

impl Format {
    /// The format's name as JSON writes it (`"cloudevents-binary"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Envelope => "envelope",
            Format::Detail => "detail",
            Format::CloudeventsBinary => "cloudevents-binary",
            Format::CloudeventsStructured => "cloudevents-structured",
            Format::PubsubPush => "pubsub-push",
            Format::PubsubPushUnwrapped => "pubsub-push-unwrapped",
        }
    }
}

/// The request method. Every method carries the rendered body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `"POST"`, the default: what receivers got before the method could be configured.
    #[default]
    Post,
    /// `"PUT"`.
    Put,
    /// `"PATCH"`.
    Patch,
    /// `"GET"`, with the body all the same (a receiver that expects none ignores it).
    Get,
    /// `"DELETE"`, with the body.
    Delete,
}

impl HttpMethod {
    /// The method as it goes on the request line, and as JSON writes it: `"POST"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Get => "GET",
            HttpMethod::Delete => "DELETE",
        }
    }
}

const MIN_TTL_S: u64 = 60;
const MAX_TTL_S: u64 = 3600;

/// Send `Authorization: Bearer <JWT>` signed by switchyard's identity key. JSON: `{}` for the
/// defaults, or `{"audience": "https://receiver.example.com", "ttl_s": 300}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "IdentityTokenFields", into = "IdentityTokenFields")]
pub struct IdentityTokenSpec {
    fields: IdentityTokenFields,
}

/// The JSON shape of [`IdentityTokenSpec`], as written, before [`IdentityTokenSpec::new`]
/// checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdentityTokenFields {
    /// The token's `aud`; absent means the rendered request URL, as Pub/Sub does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) audience: Option<String>,
    /// Seconds the token is valid (60 to 3600); short, because it travels with every attempt.
    #[serde(default = "default_ttl_s")]
    pub(crate) ttl_s: u64,
    /// The token's `email` claim (with `email_verified: true`), as Pub/Sub's push tokens name
    /// their service account, for receivers that check it; absent, no such claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
}

fn default_ttl_s() -> u64 {
    300
}

impl IdentityTokenSpec {
    /// Checks the fields: an `audience`, when given, is not blank, and `ttl_s` is 60 to 3600.
    pub(crate) fn new(fields: IdentityTokenFields) -> Result<IdentityTokenSpec, ConfigError> {
        if fields
            .audience
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            return Err(ConfigError::new("audience", "must not be empty when given"));
        }
        if fields
            .email
            .as_deref()
            .is_some_and(|e| e.trim().is_empty() || e.len() > 320)
        {
            return Err(ConfigError::new(
                "email",
                "must be 1 to 320 characters when given",
            ));
        }
        if !(MIN_TTL_S..=MAX_TTL_S).contains(&fields.ttl_s) {
            return Err(ConfigError::new(
                "ttl_s",
                format!("must be {MIN_TTL_S} to {MAX_TTL_S}"),
            ));
        }
        Ok(IdentityTokenSpec { fields })
    }

    /// The `aud` claim configured; `None` means the request URL, without the connection's query
    /// parameters.
    pub fn audience(&self) -> Option<&str> {
        self.fields.audience.as_deref()
    }

    /// The `email` claim configured, if any.
    pub fn email(&self) -> Option<&str> {
        self.fields.email.as_deref()
    }

    /// Seconds from the attempt to the token's `exp`, 60 to 3600 (default 300).
    pub(crate) fn ttl_s(&self) -> u64 {
        self.fields.ttl_s
    }
}

impl TryFrom<IdentityTokenFields> for IdentityTokenSpec {
    type Error = String;
    fn try_from(fields: IdentityTokenFields) -> Result<Self, String> {
        IdentityTokenSpec::new(fields).map_err(|e| e.relative())
    }
}

impl From<IdentityTokenSpec> for IdentityTokenFields {
    fn from(spec: IdentityTokenSpec) -> Self {
        spec.fields
    }
}

/// Checks that a header name is an RFC 9110 token: the rule for every header name a user
/// writes, whether switchyard sends it or reads it (a source's signature header). `field` names
/// it in the error.
pub fn validate_header_token(field: &str, name: &str) -> Result<(), ConfigError> {
    let is_token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !is_token {
        return Err(ConfigError::new(
            field,
            format!("{name:?} is not a valid header name"),
        ));
    }
    Ok(())
}

/// Checks a header name that a user configures on requests switchyard sends: a token, and not
/// one that switchyard or the HTTP framing owns. `field` names it in the error.
pub fn validate_header_name(field: &str, name: &str) -> Result<(), ConfigError> {
    validate_header_token(field, name)?;
    let lower = name.to_ascii_lowercase();
    const RESERVED: [&str; 5] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
    ];
    if lower.starts_with("switchyard-")
        || lower.starts_with("webhook-")
        || RESERVED.contains(&lower.as_str())
    {
        return Err(ConfigError::new(
            field,
            format!("{name:?} is set by switchyard and cannot be configured"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_todays_behaviour() {
        assert_eq!(Format::default(), Format::Envelope);
        assert_eq!(HttpMethod::default(), HttpMethod::Post);
        let spec: IdentityTokenSpec = serde_json::from_str("{}").unwrap();
        assert_eq!((spec.audience(), spec.ttl_s()), (None, 300));
    }

    #[test]
    fn format_names() {
        for format in [
            Format::Envelope,
            Format::Detail,
            Format::CloudeventsBinary,
            Format::CloudeventsStructured,
            Format::PubsubPush,
            Format::PubsubPushUnwrapped,
        ] {
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{}\"", format.as_str()));
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), format);
        }
        let err = serde_json::from_str::<Format>("\"cloudevents\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn refuses_bad_identity_tokens_and_headers() {
        let err = serde_json::from_str::<IdentityTokenSpec>(r#"{"ttl_s": 5}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("ttl_s: must be 60 to 3600"),
            "{err}"
        );
        let err = serde_json::from_str::<IdentityTokenSpec>(r#"{"audience": " "}"#).unwrap_err();
        assert!(err.to_string().starts_with("audience:"), "{err}");
        let err = serde_json::from_str::<IdentityTokenSpec>(r#"{"aud": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(validate_header_name("headers", "X-Tenant").is_ok());
        for bad in ["", "a b", "Host", "switchyard-attempt", "Webhook-Signature"] {
            assert_eq!(
                validate_header_name("headers", bad).unwrap_err().field,
                "headers"
            );
        }
    }
}
