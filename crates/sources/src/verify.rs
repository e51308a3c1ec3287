//! Sender verification: the compiled check of each preset, run against a request's headers and
//! raw body.
//!
//! Every comparison of a presented signature or credential with the expected one runs in
//! constant time ([`ct_eq`], or `ring::hmac::verify`), so an attacker cannot find a valid
//! signature byte by byte from response times. Refusals carry a reason code and a message that
//! names the header at fault; neither ever contains a secret or the expected signature.
//!
//! Standard Webhooks' secret rules, signed content and signature entries are
//! `switchyard_destination::standard_webhooks`, the module switchyard signs its own deliveries
//! with; this module adds only the receiver's part: headers, tolerance, refusals, comparison.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;
use switchyard_destination::standard_webhooks::{
    ID_HEADER, SIGNATURE_HEADER, SecretFormatError, SigningSecret, TIMESTAMP_HEADER,
    presented_signatures,
};

use crate::receive::{Reason, Refusal};
use crate::spec::{HmacAlgorithm, Part, SignatureEncoding, VerifySpec, parse_template};
use crate::{Secret, SourceError};

/// The request's headers: name/value pairs as received, names in any case.
#[derive(Clone, Copy)]
pub(crate) struct Headers<'a>(pub(crate) &'a [(&'a str, &'a [u8])]);

impl<'a> Headers<'a> {
    /// The first value of a header. A repeated signature header gains an attacker nothing:
    /// every candidate must still match the secret.
    pub(crate) fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The first value as text; a value that is not UTF-8 reads as absent, because no preset
    /// sends one and no parse of it could succeed.
    pub(crate) fn text(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// A preset's check, with keys decoded and templates parsed once, when the source is loaded.
pub(crate) enum Check {
    /// Slack, GitHub and the generic `hmac` preset: one signature in one header.
    Hmac(HmacCheck),
    /// `Stripe-Signature: t=...,v1=...,v1=...`.
    Stripe { key: hmac::Key, tolerance_s: u64 },
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,... v1,...`.
    StandardWebhooks {
        secret: SigningSecret,
        tolerance_s: u64,
    },
    /// `basic` and `api_key`: a shared credential after a prefix in a header.
    Credential {
        header: String,
        prefix: String,
        expected: Credential,
    },
}

pub(crate) struct HmacCheck {
    key: hmac::Key,
    header: String,
    prefix: String,
    encoding: SignatureEncoding,
    /// The timestamp header and the tolerance, when the timestamp is signed.
    timestamp: Option<(String, u64)>,
    template: Vec<Part>,
}

const SLACK_SIGNATURE: &str = "X-Slack-Signature";
const SLACK_TIMESTAMP: &str = "X-Slack-Request-Timestamp";
const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
const STRIPE_SIGNATURE: &str = "Stripe-Signature";
const AUTHORIZATION: &str = "Authorization";

impl Check {
    /// Compiles the preset with its secret. `secret_field` names the secret in messages.
    pub(crate) fn new(
        verify: &VerifySpec,
        secret: &Secret,
        secret_field: &str,
    ) -> Result<Check, SourceError> {
        let raw_key = |algorithm| hmac::Key::new(algorithm, secret.expose().as_bytes());
        let check = match verify {
            VerifySpec::Slack(slack) => Check::Hmac(HmacCheck {
                key: raw_key(hmac::HMAC_SHA256),
                header: SLACK_SIGNATURE.into(),
                prefix: "v0=".into(),
                encoding: SignatureEncoding::Hex,
                timestamp: Some((SLACK_TIMESTAMP.into(), slack.tolerance_s)),
                template: parse_template(Some("v0:{timestamp}:{body}"), true)?,
            }),
            VerifySpec::Github(_) => Check::Hmac(HmacCheck {
                key: raw_key(hmac::HMAC_SHA256),
                header: GITHUB_SIGNATURE.into(),
                prefix: "sha256=".into(),
                encoding: SignatureEncoding::Hex,
                timestamp: None,
                template: vec![Part::Body],
            }),
            VerifySpec::Stripe(stripe) => Check::Stripe {
                key: raw_key(hmac::HMAC_SHA256),
                tolerance_s: stripe.tolerance_s,
            },
            VerifySpec::StandardWebhooks(standard) => {
                // A value that is no base64 at all keeps the preset's message, which says what
                // the secret looks like; a key of the wrong size gets the scheme's, with its size.
                let secret = SigningSecret::parse_from_sender(secret).map_err(|e| match e {
                    SecretFormatError::Length(_) => {
                        SourceError::invalid(format!("field \"{secret_field}\": {e}"))
                    }
                    SecretFormatError::Unmarked | SecretFormatError::NotBase64 => {
                        SourceError::invalid(format!(
                            "field \"{secret_field}\" must be \"whsec_\" followed by the base64 of the key"
                        ))
                    }
                })?;
                Check::StandardWebhooks {
                    secret,
                    tolerance_s: standard.tolerance_s,
                }
            }
            VerifySpec::Hmac(spec) => Check::Hmac(HmacCheck {
                key: raw_key(match spec.algorithm {
                    HmacAlgorithm::Sha256 => hmac::HMAC_SHA256,
                    HmacAlgorithm::Sha384 => hmac::HMAC_SHA384,
                    HmacAlgorithm::Sha512 => hmac::HMAC_SHA512,
                    HmacAlgorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                }),
                header: spec.header.clone(),
                prefix: spec.prefix.clone(),
                encoding: spec.encoding,
                timestamp: spec
                    .timestamp_header
                    .clone()
                    .map(|header| (header, spec.tolerance_s)),
                template: parse_template(
                    spec.signed_payload.as_deref(),
                    spec.timestamp_header.is_some(),
                )?,
            }),
            VerifySpec::Basic(basic) => {
                let pair = format!("{}:{}", basic.username, secret.expose());
                Check::Credential {
                    header: AUTHORIZATION.into(),
                    prefix: "Basic ".into(),
                    // Senders pad canonically, so comparing the encoded form is exact.
                    expected: Credential::new(BASE64.encode(pair).as_bytes()),
                }
            }
            VerifySpec::ApiKey(api_key) => Check::Credential {
                header: api_key.header.clone(),
                prefix: api_key.prefix.clone(),
                expected: Credential::new(secret.expose().as_bytes()),
            },
        };
        Ok(check)
    }

    /// Whether the request comes from the sender; `now_s` is Unix seconds.
    pub(crate) fn verify(&self, headers: Headers, body: &[u8], now_s: i64) -> Result<(), Refusal> {
        match self {
            Check::Hmac(check) => check.verify(headers, body, now_s),
            Check::Stripe { key, tolerance_s } => {
                verify_stripe(key, *tolerance_s, headers, body, now_s)
            }
            Check::StandardWebhooks {
                secret,
                tolerance_s,
            } => verify_standard_webhooks(secret, *tolerance_s, headers, body, now_s),
            Check::Credential {
                header,
                prefix,
                expected,
            } => {
                let Some(value) = headers.get(header) else {
                    return Err(Refusal::new(
                        Reason::MissingCredentials,
                        format!("header {header} is missing"),
                    ));
                };
                let presented = strip_prefix_ignore_case(value, prefix.as_bytes());
                match presented {
                    Some(presented) if expected.matches(presented) => Ok(()),
                    _ => Err(Refusal::new(
                        Reason::BadCredentials,
                        format!("the credentials in header {header} are not the configured ones"),
                    )),
                }
            }
        }
    }
}

impl HmacCheck {
    fn verify(&self, headers: Headers, body: &[u8], now_s: i64) -> Result<(), Refusal> {
        let Some(presented) = headers.get(&self.header) else {
            return Err(missing_signature(&self.header));
        };
        let timestamp = match &self.timestamp {
            None => None,
            Some((header, tolerance_s)) => {
                Some(timestamp_from_header(headers, header, *tolerance_s, now_s)?)
            }
        };
        let mut context = hmac::Context::with_key(&self.key);
        for part in &self.template {
            match part {
                Part::Text(text) => context.update(text.as_bytes()),
                Part::Timestamp => context.update(timestamp.unwrap_or_default().as_bytes()),
                Part::Body => context.update(body),
            }
        }
        let expected = context.sign();
        let decoded = std::str::from_utf8(presented)
            .ok()
            .and_then(|text| text.trim().strip_prefix(self.prefix.as_str()))
            .and_then(|encoded| match self.encoding {
                SignatureEncoding::Hex => decode_hex(encoded),
                SignatureEncoding::Base64 => BASE64.decode(encoded).ok(),
            });
        match decoded {
            Some(signature) if ct_eq(&signature, expected.as_ref()) => Ok(()),
            _ => Err(bad_signature(&self.header)),
        }
    }
}

fn verify_stripe(
    key: &hmac::Key,
    tolerance_s: u64,
    headers: Headers,
    body: &[u8],
    now_s: i64,
) -> Result<(), Refusal> {
    let Some(value) = headers.get(STRIPE_SIGNATURE) else {
        return Err(missing_signature(STRIPE_SIGNATURE));
    };
    let value = std::str::from_utf8(value).map_err(|_| bad_signature(STRIPE_SIGNATURE))?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            Some(("v1", signature)) => candidates.push(signature),
            // `v0` (test mode's legacy scheme) and future schemes are ignored, as Stripe's own
            // libraries do.
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(Refusal::new(
            Reason::MissingTimestamp,
            format!("header {STRIPE_SIGNATURE} has no t= timestamp"),
        ));
    };
    if candidates.is_empty() {
        return Err(Refusal::new(
            Reason::MissingSignature,
            format!("header {STRIPE_SIGNATURE} has no v1= signature"),
        ));
    }
    check_timestamp(timestamp, STRIPE_SIGNATURE, tolerance_s, now_s)?;
    let mut context = hmac::Context::with_key(key);
    context.update(timestamp.as_bytes());
    context.update(b".");
    context.update(body);
    let expected = context.sign();
    if any_matches(candidates.iter().map(|c| decode_hex(c)), expected.as_ref()) {
        Ok(())
    } else {
        Err(bad_signature(STRIPE_SIGNATURE))
    }
}

fn verify_standard_webhooks(
    secret: &SigningSecret,
    tolerance_s: u64,
    headers: Headers,
    body: &[u8],
    now_s: i64,
) -> Result<(), Refusal> {
    let Some(signatures) = headers.get(SIGNATURE_HEADER) else {
        return Err(missing_signature(SIGNATURE_HEADER));
    };
    let Some(id) = headers.text(ID_HEADER) else {
        return Err(missing_signature(ID_HEADER));
    };
    let timestamp = timestamp_from_header(headers, TIMESTAMP_HEADER, tolerance_s, now_s)?;
    let signatures =
        std::str::from_utf8(signatures).map_err(|_| bad_signature(SIGNATURE_HEADER))?;
    let expected = secret.signature(id, timestamp, body);
    if any_matches(presented_signatures(signatures), expected.as_ref()) {
        Ok(())
    } else {
        Err(bad_signature(SIGNATURE_HEADER))
    }
}

/// Checks every candidate, even after a match, so the time taken does not say which one
/// matched.
fn any_matches(candidates: impl Iterator<Item = Option<Vec<u8>>>, expected: &[u8]) -> bool {
    candidates.fold(false, |found, candidate| {
        let matches = candidate.is_some_and(|c| ct_eq(&c, expected));
        found | matches
    })
}

/// The timestamp header's text (what the sender signed), once it is within the tolerance.
fn timestamp_from_header<'a>(
    headers: Headers<'a>,
    header: &str,
    tolerance_s: u64,
    now_s: i64,
) -> Result<&'a str, Refusal> {
    let Some(value) = headers.get(header) else {
        return Err(Refusal::new(
            Reason::MissingTimestamp,
            format!("header {header} is missing"),
        ));
    };
    let text = std::str::from_utf8(value).map_err(|_| bad_timestamp(header))?;
    check_timestamp(text, header, tolerance_s, now_s)?;
    Ok(text)
}

/// Refuses a timestamp that is not Unix seconds, or further than the tolerance from now in
/// either direction: a request from the future is as replayable as one from the past.
fn check_timestamp(text: &str, header: &str, tolerance_s: u64, now_s: i64) -> Result<(), Refusal> {
    let digits = !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit());
    let Some(timestamp) = digits.then(|| text.parse::<i64>().ok()).flatten() else {
        return Err(bad_timestamp(header));
    };
    if now_s.abs_diff(timestamp) > tolerance_s {
        return Err(Refusal::new(
            Reason::StaleTimestamp,
            format!("the timestamp in header {header} is more than {tolerance_s} s from now"),
        ));
    }
    Ok(())
}

fn missing_signature(header: &str) -> Refusal {
    Refusal::new(
        Reason::MissingSignature,
        format!("header {header} is missing"),
    )
}

fn bad_signature(header: &str) -> Refusal {
    Refusal::new(
        Reason::BadSignature,
        format!("the signature in header {header} does not match the request"),
    )
}

fn bad_timestamp(header: &str) -> Refusal {
    Refusal::new(
        Reason::BadTimestamp,
        format!("header {header} is not a Unix time in seconds"),
    )
}

/// A shared credential, kept as its HMAC under itself: comparing a presented value is then a
/// constant-time tag comparison that reveals neither the credential's bytes nor its length.
pub(crate) struct Credential {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl Credential {
    fn new(expected: &[u8]) -> Credential {
        let key = hmac::Key::new(hmac::HMAC_SHA256, expected);
        let tag = hmac::sign(&key, expected);
        Credential { key, tag }
    }

    fn matches(&self, presented: &[u8]) -> bool {
        hmac::verify(&self.key, presented, self.tag.as_ref()).is_ok()
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &value[prefix.len()..])
}

/// Signatures are compared in constant time (their lengths are public: the algorithm's output).
pub(crate) use switchyard_secrets::constant_time_eq as ct_eq;

/// Hex in either case; `None` for anything else, including an odd length.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_constant_time_equality() {
        assert_eq!(decode_hex("00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(decode_hex(""), Some(vec![]));
        for bad in ["0", "0g", "zz", "+1"] {
            assert_eq!(decode_hex(bad), None, "{bad}");
        }
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn credentials_compare_whole_values() {
        let credential = Credential::new(b"key-1");
        assert!(credential.matches(b"key-1"));
        assert!(!credential.matches(b"key-"));
        assert!(!credential.matches(b"key-12"));
        assert!(!credential.matches(b""));
    }

    #[test]
    fn timestamps_within_tolerance_either_way() {
        assert!(check_timestamp("1000", "T", 300, 1300).is_ok());
        assert!(check_timestamp("1000", "T", 300, 700).is_ok());
        let stale = check_timestamp("1000", "T", 300, 1301).unwrap_err();
        assert_eq!(stale.reason, Reason::StaleTimestamp);
        let future = check_timestamp("1000", "T", 300, 699).unwrap_err();
        assert_eq!(future.reason, Reason::StaleTimestamp);
        for bad in ["", "-5", "1e3", " 1000", "99999999999999999999"] {
            let refusal = check_timestamp(bad, "T", 300, 1000).unwrap_err();
            assert_eq!(refusal.reason, Reason::BadTimestamp, "{bad:?}");
        }
    }
}
