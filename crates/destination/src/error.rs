//! Errors of this crate, in three kinds that call for three different reactions:
//! [`ConfigError`] refuses a configuration (an API 400), [`ResolveError`] means a secret could
//! not be produced at attempt time, and [`RenderError`] means this event cannot be rendered for
//! this destination (a dead letter as an invalid destination: retrying cannot help).
//!
//! No message ever contains a secret's value: they name fields, paths, headers and reasons.

use switchyard_secrets::SecretError;

/// A refused configuration. `field` is the path inside the object being validated
/// (`transform.input_template`, `auth.token_url`); [`ConfigError::under`] prefixes it with the
/// path of that object in a larger document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field \"{field}\": {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
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
    #[error("{field}: {source}")]
    Secret {
        field: String,
        #[source]
        source: SecretError,
    },
    /// The secret was produced (typically read from a `file:` reference) but has the wrong form.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// Why one event cannot be rendered for one destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The stored envelope is not the JSON this crate expects; a bug or a corrupted record.
    #[error("the event envelope is invalid: {0}")]
    Envelope(String),
    /// A URL or header template names a value that this event does not have (or has as null).
    #[error("{place}: {path} is missing or null in the event")]
    MissingValue { place: String, path: String },
    /// A header value would contain control characters (CR/LF could forge headers).
    #[error("header {name:?}: the value contains control characters")]
    HeaderValue { name: String },
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
