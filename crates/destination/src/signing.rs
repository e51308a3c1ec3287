//! A destination's `signing` setting: which scheme signs its requests and with which secrets,
//! checked when written, sealed for storing and resolved at each attempt.
//!
//! The scheme itself (secret format, signed content, header) is [`crate::standard_webhooks`],
//! shared with the verification of received webhooks. Must not: accept a secret that scheme
//! refuses, or show a secret's value in an error.

use serde::{Deserialize, Serialize};
use switchyard_secrets::{Keyring, SecretRef};

use crate::error::{ConfigError, ResolveError};
use crate::standard_webhooks::SigningSecret;

/// One secret signs; more only while rotating, and every one adds a signature to each request.
const MAX_SECRETS: usize = 5;

/// How outgoing requests are signed. JSON:
/// `{"scheme": "standard-webhooks", "secrets": ["whsec_...", "file:/run/secrets/old"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SigningSpecFields", into = "SigningSpecFields")]
pub struct SigningSpec {
    fields: SigningSpecFields,
}

/// The JSON shape of [`SigningSpec`], as written, before [`SigningSpec`] checks its secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSpecFields {
    /// Standard Webhooks when omitted, and the only scheme so far; stored with every
    /// subscription, so another scheme can be added without changing what existing ones mean.
    #[serde(default)]
    pub scheme: SigningScheme,
    /// Every secret signs; the first is the newest. Write-only.
    pub secrets: Vec<SecretRef>,
}

/// How a request's signature is computed and sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigningScheme {
    /// `"standard-webhooks"`: the symmetric scheme of [`crate::standard_webhooks`].
    #[default]
    StandardWebhooks,
}

impl SigningSpec {
    /// Checks the list: 1 to 5 secrets, and every inline one a `whsec_` Standard Webhooks
    /// secret (a `file:` one is checked when it is read); errors name `secrets[i]`.
    pub(crate) fn new(fields: SigningSpecFields) -> Result<SigningSpec, ConfigError> {
        if fields.secrets.is_empty() || fields.secrets.len() > MAX_SECRETS {
            return Err(ConfigError::new(
                "secrets",
                format!("must list 1 to {MAX_SECRETS} secrets (more than one only while rotating)"),
            ));
        }
        for (index, secret) in fields.secrets.iter().enumerate() {
            if let Some(inline) = secret.inline() {
                SigningSecret::parse(inline)
                    .map_err(|e| ConfigError::new(format!("secrets[{index}]"), e.to_string()))?;
            }
        }
        Ok(SigningSpec { fields })
    }

    /// The secrets as keys, opened or read from their files.
    pub fn resolve(&self, key: &Keyring) -> Result<Vec<SigningSecret>, ResolveError> {
        self.fields
            .secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                let field = format!("signing.secrets[{index}]");
                let value = secret.resolve(key).map_err(|source| ResolveError::Secret {
                    field: field.clone(),
                    source,
                })?;
                SigningSecret::parse(&value)
                    .map_err(|source| ResolveError::SigningSecret { field, source })
            })
            .collect()
    }

    /// Whether resolving reads a `file:` secret (and so blocks on the file system).
    pub fn reads_files(&self) -> bool {
        self.fields.secrets.iter().any(SecretRef::is_file)
    }

    /// Every inline secret sealed, every `file:` one checked against the file policy, for
    /// storing.
    pub fn seal(&self, key: &Keyring) -> Result<SigningSpec, switchyard_secrets::SecretError> {
        let secrets = self
            .fields
            .secrets
            .iter()
            .map(|s| s.seal(key))
            .collect::<Result<_, _>>()?;
        Ok(SigningSpec {
            fields: SigningSpecFields {
                scheme: self.fields.scheme,
                secrets,
            },
        })
    }
}

impl TryFrom<SigningSpecFields> for SigningSpec {
    type Error = String;
    fn try_from(fields: SigningSpecFields) -> Result<Self, String> {
        SigningSpec::new(fields).map_err(|e| e.relative())
    }
}

impl From<SigningSpec> for SigningSpecFields {
    fn from(spec: SigningSpec) -> Self {
        spec.fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_malformed_secret_lists_without_echoing_them() {
        let err = serde_json::from_str::<SigningSpec>(r#"{"secrets":["whsec_dG9vLXNob3J0"]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("secrets[0]: "), "{err}");
        assert!(!err.contains("dG9vLXNob3J0"), "{err}");
        let err = serde_json::from_str::<SigningSpec>(r#"{"secrets":[]}"#).unwrap_err();
        assert!(err.to_string().contains("1 to 5"), "{err}");
    }
}
