//! The one error type of this crate: a source configuration that cannot be used.
//!
//! Messages name the offending field (`verify.tolerance_s`, `allowed_networks[2]`) and never
//! contain a secret's value, so they can go verbatim into an API answer or a log line.

/// Why a source's configuration was refused. Refusals of *requests* are not errors: they are
/// an ordinary [`crate::Outcome::Refused`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The configuration is malformed or incomplete; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// A header name that is not an RFC 9110 token, by the rule every switchyard header name
    /// follows; the message names the field.
    #[error(transparent)]
    HeaderName(#[from] switchyard_destination::ConfigError),
}

impl SourceError {
    /// The stable machine-readable code for the API's error shape (`{"error": {"code", ...}}`),
    /// the same as the model's code for bad input.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Invalid(_) | SourceError::HeaderName(_) => "invalid",
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        SourceError::Invalid(message.into())
    }
}
