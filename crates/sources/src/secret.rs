//! Secret values (signing secrets, passwords, API keys) as a type that cannot leak by accident.
//!
//! A [`Secret`] has no `Display`, no `Serialize`, and a `Debug` that prints a placeholder, so a
//! `{:?}` of a spec, an error or a log field never shows one. The only way to the text is
//! [`Secret::expose`], which is easy to find in a review.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string. Deserializes from a JSON string; never serializes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret the caller holds, e.g. one just decrypted from the store.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret's text, for the caller that must encrypt or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(<redacted>))");
        assert_eq!(secret.expose(), "hunter2");
    }
}
