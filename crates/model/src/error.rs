//! The one error type of the model: bad input, with a message that says what to fix.

/// Why an input was refused. `code()` is the stable machine-readable code of the API's error
/// shape; the `Display` text is the human message and always names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The input is not the JSON it claims to be, or has a wrong shape or type.
    #[error("{0}")]
    Invalid(String),
    /// The pattern is not a valid EventBridge event pattern.
    #[error("invalid pattern: {0}")]
    InvalidPattern(String),
    /// An event is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
}

impl ModelError {
    /// The `code` of the API's error shape: `invalid`, `invalid_pattern` or `too_large`.
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::Invalid(_) => "invalid",
            ModelError::InvalidPattern(_) => "invalid_pattern",
            ModelError::TooLarge(_) => "too_large",
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ModelError::Invalid(message.into())
    }
}

/// An error and its causes on one line, outermost first. Libraries' own messages ("builder
/// error", "error connecting to server") leave out why; the causes say it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    std::iter::successors(Some(error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
