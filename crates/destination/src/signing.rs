//! Outgoing signatures by the Standard Webhooks specification: `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//! with one `v1,` entry per secret, space-separated, so a receiver can rotate its secret without
//! downtime.
//!
//! Owns the `whsec_` secret format and the signature. Must not: sign anything but the exact body
//! bytes that are sent, or accept a secret shorter than the specification's 24 bytes.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use ring::hmac;
use serde::{Deserialize, Serialize};
use switchyard_secrets::{Keyring, Secret, SecretRef};

use crate::error::{ConfigError, ResolveError};

const SECRET_PREFIX: &str = "whsec_";
/// The specification's bounds for a symmetric secret: 24 to 64 bytes.
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;
const MAX_SECRETS: usize = 5;
/// Secrets are printed with padding by some tools and without by others; both are the same key.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How outgoing requests are signed. JSON:
/// `{"scheme": "standard-webhooks", "secrets": ["whsec_...", "file:/run/secrets/old"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SigningSpecFields", into = "SigningSpecFields")]
pub struct SigningSpec {
    fields: SigningSpecFields,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSpecFields {
    #[serde(default)]
    pub scheme: SigningScheme,
    /// Every secret signs; the first is the newest. Write-only.
    pub secrets: Vec<SecretRef>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigningScheme {
    #[default]
    StandardWebhooks,
}

impl SigningSpec {
    pub fn new(fields: SigningSpecFields) -> Result<SigningSpec, ConfigError> {
        if fields.secrets.is_empty() || fields.secrets.len() > MAX_SECRETS {
            return Err(ConfigError::new(
                "secrets",
                format!("must list 1 to {MAX_SECRETS} secrets (more than one only while rotating)"),
            ));
        }
        for (index, secret) in fields.secrets.iter().enumerate() {
            if let Some(inline) = secret.inline() {
                SigningSecret::parse(inline)
                    .map_err(|m| ConfigError::new(format!("secrets[{index}]"), m))?;
            }
        }
        Ok(SigningSpec { fields })
    }

    pub fn fields(&self) -> &SigningSpecFields {
        &self.fields
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
                    .map_err(|message| ResolveError::Invalid { field, message })
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

/// One `whsec_` secret, decoded into an HMAC key.
pub struct SigningSecret {
    key: hmac::Key,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(********)")
    }
}

impl SigningSecret {
    /// Parses `whsec_<base64 of 24 to 64 random bytes>`.
    pub fn parse(secret: &Secret) -> Result<SigningSecret, String> {
        let encoded = secret
            .expose()
            .strip_prefix(SECRET_PREFIX)
            .ok_or("a Standard Webhooks secret starts with \"whsec_\"")?;
        let bytes = zeroize::Zeroizing::new(
            LENIENT
                .decode(encoded)
                .map_err(|_| "the part after \"whsec_\" must be base64")?,
        );
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(format!(
                "a Standard Webhooks secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {}",
                bytes.len()
            ));
        }
        Ok(SigningSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
    }
}

/// The `webhook-signature` value: one `v1,<signature>` per secret, space-separated.
pub fn signature_header(
    secrets: &[SigningSecret],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `webhook-id` for an event: its id when that is safe in the signed content (no `.`, which
/// separates the signed parts, and header-safe ASCII), else `msg_` and a hash of it, so the id is
/// stable across retries either way.
pub fn webhook_id(event_id: &str) -> String {
    let safe = !event_id.is_empty() && event_id.bytes().all(|b| b.is_ascii_graphic() && b != b'.');
    if safe {
        return event_id.to_string();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, event_id.as_bytes());
    format!(
        "msg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..18])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (standard-webhooks/standard-webhooks, libraries/*: `test_sign`).
    const VECTOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const VECTOR_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const VECTOR_TIMESTAMP: u64 = 1649367553;
    const VECTOR_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const VECTOR_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn matches_the_specification_test_vector() {
        let secret = SigningSecret::parse(&Secret::new(VECTOR_SECRET)).unwrap();
        assert_eq!(
            signature_header(
                &[secret],
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY.as_bytes()
            ),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn signs_with_every_secret_during_rotation() {
        let new =
            SigningSecret::parse(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        let old = SigningSecret::parse(&Secret::new(VECTOR_SECRET)).unwrap();
        let header = signature_header(
            &[new, old],
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY.as_bytes(),
        );
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("v1,") && parts[0] != VECTOR_SIGNATURE);
        assert_eq!(parts[1], VECTOR_SIGNATURE);
    }

    #[test]
    fn refuses_malformed_secrets_without_echoing_them() {
        for (secret, expected) in [
            ("C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "starts with"),
            ("whsec_not base64!", "base64"),
            ("whsec_dG9vLXNob3J0", "not 9"),
        ] {
            let err = SigningSecret::parse(&Secret::new(secret)).unwrap_err();
            assert!(err.contains(expected), "{secret}: {err}");
            assert!(!err.contains(secret));
        }
        let err = serde_json::from_str::<SigningSpec>(r#"{"secrets":["whsec_dG9vLXNob3J0"]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("secrets[0]: "), "{err}");
        assert!(!err.contains("dG9vLXNob3J0"), "{err}");
        let err = serde_json::from_str::<SigningSpec>(r#"{"secrets":[]}"#).unwrap_err();
        assert!(err.to_string().contains("1 to 5"), "{err}");
    }

    #[test]
    fn webhook_ids_are_stable_and_dot_free() {
        assert_eq!(
            webhook_id("0190c7a2-aaaa-7bbb-8ccc-123456789abc"),
            "0190c7a2-aaaa-7bbb-8ccc-123456789abc"
        );
        let hashed = webhook_id("order.42");
        assert!(hashed.starts_with("msg_") && !hashed.contains('.'));
        assert_eq!(hashed, webhook_id("order.42"));
        assert_ne!(hashed, webhook_id("order.43"));
    }
}
