//! The Standard Webhooks symmetric scheme (<https://www.standardwebhooks.com>, specification
//! 1.0.0) in both directions: switchyard signs deliveries with it (a destination's `signing`) and
//! verifies received webhooks with it (the `standard-webhooks` preset of `switchyard-sources`).
//! Both sides use this module, so what switchyard sends is what it would accept.
//!
//! Owns: the secret's format and its rules, the signed content `{id}.{timestamp}.{body}`, the
//! `webhook-signature` value in both directions (`v1,<base64 HMAC-SHA256>` entries,
//! space-separated, one per secret while rotating), the three header names, and the `webhook-id`
//! of an event. Must not: read a clock, judge a timestamp's age, or decide what a missing header
//! means; those are the receiver's policy (tolerance, refusal codes), and the sources crate,
//! which compares every presented credential in constant time with one helper, compares the
//! entries read here with the signature computed here.
//!
//! # One set of rules for a secret
//! A secret is the base64 of 24 to 64 bytes (the specification's "at least 24 bytes (192 bits),
//! 512 maximum"), padded or not (tools print both; they are the same key), on both sides:
//! verifying holds senders to the bounds the specification sets them, which every conforming
//! sender meets (Svix's keys are 24 bytes), and a shorter key is refused when the source is
//! written, naming the field, rather than trusted. The `whsec_` mark is the specification's
//! serialization "when presented to customers". A secret switchyard signs with must carry it
//! ([`SigningSecret::parse`]): that is the form receivers and their libraries are handed, and
//! an unmarked value is more likely a secret pasted into the wrong field than a key. A secret
//! switchyard verifies with may leave it out ([`SigningSecret::parse_from_sender`]): the
//! receiver copies what the sender shows, and the reference verifiers (standard-webhooks
//! `libraries/*`, Svix) strip the mark only when present. This is the one difference, and the
//! tests of both sides hold it: the destination's refuse an unmarked signing secret, the source
//! preset's verify the specification's vector with the bare key.
//!
//! # Where this module lives
//! In `switchyard-destination`, beside the signing configuration that resolves its secrets, and
//! used by `switchyard-sources` directly. Sources already depended on this crate through the
//! model, so the direct edge adds no crate to its build and no cycle; the lower alternative,
//! `switchyard-secrets`, owns keeping secrets, not HTTP signature schemes, and a crate of its own
//! for one module would add a build unit for nothing.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use ring::hmac;
use switchyard_secrets::Secret;

/// The message's id, the same for every attempt of it: the receiver's idempotency key.
pub const ID_HEADER: &str = "webhook-id";
/// Unix seconds of the attempt; signed, so that a captured request ages.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// `v1,<base64 HMAC-SHA256>` entries, space-separated, one per secret (see [`signature_header`]).
pub const SIGNATURE_HEADER: &str = "webhook-signature";

const SECRET_PREFIX: &str = "whsec_";
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;
/// The symmetric scheme's entry tag; `v1a` (asymmetric) entries are not ours to check.
const V1: &str = "v1,";
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret is not a Standard Webhooks secret. No message contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretFormatError {
    /// A secret to sign with lacks the `whsec_` mark, which only a sender's secret may leave
    /// out (see the module's doc).
    #[error("a Standard Webhooks secret starts with \"whsec_\"")]
    Unmarked,
    /// The key, after any `whsec_` mark, is not standard base64 (with or without padding).
    #[error("the part after \"whsec_\" must be base64")]
    NotBase64,
    /// The key decodes to this many bytes, outside 24 to 64.
    #[error(
        "a Standard Webhooks secret holds {min} to {max} bytes, not {0}",
        min = MIN_SECRET_BYTES,
        max = MAX_SECRET_BYTES
    )]
    Length(usize),
}

/// One secret, decoded into its HMAC key: what signs a delivery, or what checks a received one.
pub struct SigningSecret {
    key: hmac::Key,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(********)")
    }
}

impl SigningSecret {
    /// A secret switchyard signs with: `whsec_<base64 of 24 to 64 bytes>`.
    pub fn parse(secret: &Secret) -> Result<SigningSecret, SecretFormatError> {
        let encoded = secret
            .expose()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretFormatError::Unmarked)?;
        SigningSecret::decode(encoded)
    }

    /// A sender's secret that switchyard verifies with: the same rules, with the `whsec_` mark
    /// optional (see the module's doc).
    pub fn parse_from_sender(secret: &Secret) -> Result<SigningSecret, SecretFormatError> {
        let text = secret.expose();
        SigningSecret::decode(text.strip_prefix(SECRET_PREFIX).unwrap_or(text))
    }

    fn decode(encoded: &str) -> Result<SigningSecret, SecretFormatError> {
        let bytes = zeroize::Zeroizing::new(
            LENIENT
                .decode(encoded)
                .map_err(|_| SecretFormatError::NotBase64)?,
        );
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(SecretFormatError::Length(bytes.len()));
        }
        Ok(SigningSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// The signature of one message: HMAC-SHA256 of `{id}.{timestamp}.{body}`, with the
    /// timestamp as the header's text (a receiver signs what it was sent, not a re-formatting).
    pub fn signature(&self, id: &str, timestamp: &str, body: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(id.as_bytes());
        context.update(b".");
        context.update(timestamp.as_bytes());
        context.update(b".");
        context.update(body);
        context.sign()
    }
}

/// The `webhook-signature` value: one `v1,<signature>` per secret, space-separated.
pub fn signature_header(
    secrets: &[SigningSecret],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .map(|s| {
            let tag = s.signature(id, &timestamp, body);
            format!("{V1}{}", STANDARD.encode(tag.as_ref()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The signatures a `webhook-signature` value presents for the symmetric scheme, decoded;
/// `None` for an entry that is not base64, which can match nothing but is still counted, so a
/// caller that compares every candidate takes the same time whatever the entries hold.
pub fn presented_signatures(value: &str) -> impl Iterator<Item = Option<Vec<u8>>> + '_ {
    value
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix(V1))
        .map(|encoded| STANDARD.decode(encoded).ok())
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
            let err = SigningSecret::parse(&Secret::new(secret))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{secret}: {err}");
            assert!(!err.contains(secret));
        }
    }

    #[test]
    fn a_senders_secret_follows_the_same_rules_with_the_mark_optional() {
        let bare = VECTOR_SECRET.trim_start_matches(SECRET_PREFIX);
        for secret in [VECTOR_SECRET, bare] {
            let secret = SigningSecret::parse_from_sender(&Secret::new(secret)).unwrap();
            let signed = signature_header(
                &[secret],
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY.as_bytes(),
            );
            assert_eq!(signed, VECTOR_SIGNATURE);
        }
        for (secret, expected) in [
            ("whsec_dG9vLXNob3J0", SecretFormatError::Length(9)),
            ("dG9vLXNob3J0", SecretFormatError::Length(9)),
            ("whsec_", SecretFormatError::Length(0)),
            ("whsec_%%%", SecretFormatError::NotBase64),
        ] {
            let err = SigningSecret::parse_from_sender(&Secret::new(secret)).unwrap_err();
            assert_eq!(err, expected, "{secret}");
        }
    }

    #[test]
    fn unpadded_secrets_are_the_same_key() {
        let padded = format!("whsec_{}", STANDARD.encode([7u8; 25]));
        let unpadded = padded.trim_end_matches('=');
        assert_ne!(padded, unpadded);
        let sign = |secret: &str| {
            let secret = SigningSecret::parse(&Secret::new(secret)).unwrap();
            signature_header(&[secret], VECTOR_ID, VECTOR_TIMESTAMP, b"{}")
        };
        assert_eq!(sign(&padded), sign(unpadded));
    }

    #[test]
    fn presented_signatures_are_the_v1_entries() {
        let signature = VECTOR_SIGNATURE.trim_start_matches(V1);
        let value = format!("v1,bm9wZQ== v1a,c2lnbmVk v1,not-base64! {VECTOR_SIGNATURE}");
        let presented: Vec<Option<Vec<u8>>> = presented_signatures(&value).collect();
        assert_eq!(
            presented,
            [
                Some(b"nope".to_vec()),
                None,
                Some(STANDARD.decode(signature).unwrap())
            ]
        );
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
