//! Errors of this crate, in three kinds that call for three different reactions:
//! [`ConfigError`] refuses a configuration (an API 400), [`ResolveError`] means a secret could
//! not be produced at attempt time, and [`RenderError`] means this event cannot be rendered for
//! this destination (a dead letter as an invalid destination: retrying cannot help).
//!
//! No message ever contains a secret's value: they name fields, paths, headers and reasons.

use switchyard_secrets::SecretError;

use crate::standard_webhooks::SecretFormatError;

/// A refused configuration. `field` is the path inside the object being validated
/// (`transform.input_template`, `auth.token_url`); [`ConfigError::under`] prefixes it with the
/// path of that object in a larger document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Dotted path of the refused value (`auth.token_url`, `secrets[0]`); empty when the
    /// document as a whole is at fault.
    pub(crate) field: String,
    /// What is wrong, usually with what is accepted instead; never a secret's value.
    pub(crate) message: String,
}

/// `field "auth.token_url": ...`, or the message alone when no field is at fault (a body that
/// is not JSON at all).
impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field \"{}\": {}", self.field, self.message)
        }
    }
}

/// Parses a JSON document into `T`; a type error names the field at fault
/// (`destination.timeout_ms`), without serde's "at line 1 column 9", which is noise once the
/// field is named. `what` names the document in errors that concern it as a whole.
pub fn parse_json<'de, T: serde::Deserialize<'de>>(
    text: &'de str,
    what: &str,
) -> Result<T, ConfigError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let text = inner.to_string();
        let message = text
            .rfind(" at line ")
            .map_or(text.as_str(), |at| &text[..at])
            .to_string();
        if inner.is_syntax() || inner.is_eof() {
            ConfigError::new("", format!("{what} is not valid JSON: {inner}"))
        } else if path == "." {
            ConfigError::new("", format!("{what}: {message}"))
        } else {
            ConfigError::new(path, message)
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ConfigError::new("", format!("{what} is not valid JSON: {e}")))?;
    Ok(value)
}

impl ConfigError {
    /// A refusal of `field` (empty for the whole document) with `message`.
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error as seen from an enclosing object: `under("destination")` turns field
    /// `transform` into `destination.transform`.
    pub fn under(self, prefix: &str) -> Self {
        let field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        ConfigError { field, ..self }
    }

    /// The text a serde `try_from` conversion reports; serde already names the enclosing field.
    pub(crate) fn relative(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// A secret a destination or connection needs could not be produced at attempt time.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The secret could not be opened (malformed, altered, or sealed under a master key the key
    /// file no longer holds), or its `file:` reference is not allowed or cannot be read.
    #[error("{field}: {source}")]
    Secret {
        /// Where the secret is configured: `auth.password`, `headers.X-Key`,
        /// `signing.secrets[0]`, `client_certificate.key`.
        field: String,
        /// Why the secrets crate could not produce it.
        #[source]
        source: SecretError,
    },
    /// The secret was produced (typically read from a `file:` reference) but has the wrong form.
    #[error("{field}: {message}")]
    Invalid {
        /// Where the secret is configured, as for [`ResolveError::Secret`].
        field: String,
        /// The form expected, never the text found.
        message: String,
    },
    /// A signing secret was produced but is not a Standard Webhooks secret.
    #[error("{field}: {source}")]
    SigningSecret {
        /// Which secret of the destination's list: `signing.secrets[1]`.
        field: String,
        /// Which rule of the secret format it breaks.
        #[source]
        source: SecretFormatError,
    },
}

/// Why one event cannot be rendered for one destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The stored envelope is not the JSON this crate expects; a bug or a corrupted record.
    #[error("the event envelope is invalid: {0}")]
    Envelope(String),
    /// A URL or header template names a value that this event does not have (or has as null).
    #[error("{place}: {path} is missing or null in the event")]
    MissingValue {
        /// The template at fault: `url`, or `header "X-Tenant"`.
        place: String,
        /// The placeholder's JSON path as written: `$.detail.orderId`.
        path: String,
    },
    /// A header value would contain control characters (CR/LF could forge headers).
    #[error("header {name:?}: the value contains control characters")]
    HeaderValue {
        /// The header's name as it would have been sent.
        name: String,
    },
    /// The URL after filling its template is not a valid URL.
    #[error("the rendered URL is invalid: {0}")]
    Url(String),
    /// The input transformer produced text that is not the JSON its template promised.
    #[error("transform: the output is not valid JSON: {0}")]
    Transform(String),
    /// The destination needs a credential that the caller did not pass.
    #[error("{0}")]
    MissingCredential(&'static str),
    /// Two mechanisms want the same `Authorization` header.
    #[error(
        "both the identity token and the connection's {0} auth set the Authorization header; use one"
    )]
    ConflictingAuthorization(&'static str),
    /// The identity token could not be signed.
    #[error("the identity token cannot be signed: {0}")]
    Signing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_field_or_the_document_never_an_empty_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "read only by serde: the test checks its error")]
        struct Doc {
            timeout_ms: u64,
        }
        let type_error = parse_json::<Doc>(r#"{"timeout_ms": "5s"}"#, "the doc")
            .unwrap_err()
            .to_string();
        assert!(
            type_error.starts_with("field \"timeout_ms\": invalid type"),
            "{type_error}"
        );
        assert!(!type_error.contains(" at line "), "{type_error}");
        let syntax = parse_json::<Doc>("{", "the doc").unwrap_err().to_string();
        assert!(syntax.starts_with("the doc is not valid JSON"), "{syntax}");
        let whole = parse_json::<Doc>("7", "the doc").unwrap_err().to_string();
        assert!(whole.starts_with("the doc: invalid type"), "{whole}");
    }
}
