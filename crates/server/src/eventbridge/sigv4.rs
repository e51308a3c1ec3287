//! AWS Signature Version 4 verification of the EventBridge door's requests
//! (docs/design/eventbridge.md §6).
//!
//! Owns reading `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`,
//! checking its scope and time, and deciding whether the signature is right. It verifies by
//! re-signing with `aws-sigv4` (the canonicalization is the crate's, where hand-rolled versions
//! go wrong) over exactly the headers the client says it signed, and compares in constant time.
//! Which key ids exist, and what a key may do, is the caller's: [`verify`] takes a lookup and
//! returns what it found.
//!
//! Must not: put a secret, a session token or the expected signature into an error, a log or
//! an answer (the client's own signature is no secret, but is not echoed either); accept
//! query-string (presigned) authentication, which would let a URL leaked to a log or a referrer
//! stand in for a signature; trust a payload hash the client sends instead of hashing the body.
//!
//! Invariants: the body is always hashed (`x-amz-content-sha256`, when signed, is one more
//! header whose value must be the true hash); the signed headers include `host` and
//! `x-amz-date`; the scope is `DATE/REGION/events/aws4_request` with DATE the day of
//! `X-Amz-Date`, which is within [`MAX_SKEW_S`] of the server's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, Uri};
use switchyard_secrets::{Secret, constant_time_eq};

/// The only algorithm accepted (SigV4a's `AWS4-ECDSA-P256-SHA256` is not).
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in the scope of a request to EventBridge.
const SERVICE: &str = "events";
/// How far `X-Amz-Date` may be from the server's clock, either way: AWS's 15 minutes.
const MAX_SKEW_S: u64 = 15 * 60;
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
/// Query parameters of presigned (query-string) authentication.
const PRESIGN_PARAMS: [&str; 3] = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"];

/// The parts of a received request that its signature covers. `uri` is the one the client sent
/// (behind a nested router, axum's `OriginalUri`), `body` all of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedRequest<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

/// Why a request's signature is not accepted. Each maps to the EventBridge error type of
/// [`SigV4Error::aws_type`]; the message says what to fix and holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SigV4Error {
    /// No `Authorization` header, or one of another scheme.
    #[error(
        "the request is not signed: sign it with AWS Signature Version 4 (Authorization: AWS4-HMAC-SHA256 …), \
         using the aws_access_key_id and aws_secret_access_key of a token in the server's tokens file"
    )]
    Missing,
    /// The access key id of the credential is not one of the configured keys.
    #[error(
        "the access key id {0:?} is not known here: use the aws_access_key_id of a token in the server's tokens file"
    )]
    UnknownKey(String),
    /// Malformed, out of scope, expired, presigned, or the signature does not match.
    #[error("{0}")]
    Invalid(String),
}

impl SigV4Error {
    /// The EventBridge exception name, for `__type` and `x-amzn-ErrorType`.
    pub(crate) fn aws_type(&self) -> &'static str {
        match self {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::UnknownKey(_) => "UnrecognizedClientException",
            SigV4Error::Invalid(_) => "InvalidSignatureException",
        }
    }
}

fn invalid(message: impl Into<String>) -> SigV4Error {
    SigV4Error::Invalid(message.into())
}

/// Verifies `request`'s SigV4 signature for EventBridge at `now_ms` (Unix milliseconds).
/// `lookup` is asked once, for the access key id of the credential, and answers the key's
/// owner (returned on success) and secret, or `None` for a key it does not know.
pub(crate) fn verify<'k, K>(
    request: &SignedRequest<'_>,
    lookup: impl FnOnce(&str) -> Option<(K, &'k Secret)>,
    now_ms: u64,
) -> Result<K, SigV4Error> {
    verify_for(SERVICE, request, lookup, now_ms)
}

/// [`verify`] for any service name, so that AWS's published test vectors (service `service`)
/// can check the whole path.
fn verify_for<'k, K>(
    service: &str,
    request: &SignedRequest<'_>,
    lookup: impl FnOnce(&str) -> Option<(K, &'k Secret)>,
    now_ms: u64,
) -> Result<K, SigV4Error> {
    if is_presigned(request.uri) {
        return Err(invalid(
            "query-string (presigned) authentication is not accepted: sign the request's headers \
             (Authorization: AWS4-HMAC-SHA256 …) instead",
        ));
    }
    let header = one_header(request.headers, AUTHORIZATION.as_str())?.ok_or(SigV4Error::Missing)?;
    let auth = Authorization::parse(header)?;
    if auth.service != service || auth.terminator != "aws4_request" {
        return Err(invalid(format!(
            "the credential scope must end in /{service}/aws4_request, not /{}/{}: sign for the service \"{service}\"",
            auth.service, auth.terminator
        )));
    }
    let (owner, secret) = lookup(auth.access_key_id)
        .ok_or_else(|| SigV4Error::UnknownKey(auth.access_key_id.into()))?;

    let amz_date = one_header(request.headers, X_AMZ_DATE)?.ok_or_else(|| {
        invalid("the X-Amz-Date header is missing: a signed request carries its signing time")
    })?;
    let signed_s = parse_amz_date(amz_date).ok_or_else(|| {
        invalid(format!(
            "X-Amz-Date {amz_date:?} is not a time of the form 20150830T123600Z (UTC)"
        ))
    })?;
    if auth.date != &amz_date[..8] {
        return Err(invalid(format!(
            "the credential scope's date {} is not the day of X-Amz-Date {amz_date}: sign with one time",
            auth.date
        )));
    }
    let now_s = now_ms / 1000;
    if now_s.abs_diff(signed_s) > MAX_SKEW_S {
        return Err(invalid(format!(
            "Signature expired: X-Amz-Date {amz_date} is more than 15 minutes from the server's time {}; \
             check the client's clock and sign again",
            format_amz_date(now_s)
        )));
    }
    let session_token = one_header(request.headers, X_AMZ_SECURITY_TOKEN)?;

    let (signed_headers, expected) = resign(
        service,
        request,
        &auth,
        secret,
        UNIX_EPOCH + Duration::from_secs(signed_s),
        session_token,
    )?;
    if signed_headers != auth.signed_headers {
        return Err(invalid(format!(
            "SignedHeaders is {:?}, but this request signs {signed_headers:?}: sign exactly the headers sent, \
             X-Amz-Date and (when sent) X-Amz-Security-Token included, names lowercase and sorted",
            auth.signed_headers
        )));
    }
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(invalid(
            "the request signature does not match: check the secret access key, and that the method, path, query, \
             signed headers and body are sent exactly as signed",
        ));
    }
    Ok(owner)
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=HEX`.
struct Authorization<'h> {
    access_key_id: &'h str,
    date: &'h str,
    region: &'h str,
    service: &'h str,
    terminator: &'h str,
    signed_headers: &'h str,
    signature: &'h str,
}

impl<'h> Authorization<'h> {
    fn parse(header: &'h str) -> Result<Authorization<'h>, SigV4Error> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme != ALGORITHM {
            return Err(SigV4Error::Missing);
        }
        let form = "expected Authorization: AWS4-HMAC-SHA256 Credential=KEY_ID/YYYYMMDD/REGION/events/aws4_request, \
                    SignedHeaders=host;x-amz-date;…, Signature=HEX";
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                invalid(format!("the Authorization header is incomplete: {form}"))
            })?;
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                other => {
                    return Err(invalid(format!(
                        "the Authorization header has an unknown part {other:?}: {form}"
                    )));
                }
            };
            if slot.replace(value).is_some() {
                return Err(invalid(format!(
                    "the Authorization header has {name} twice: {form}"
                )));
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(invalid(format!(
                "the Authorization header lacks Credential, SignedHeaders or Signature: {form}"
            )));
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = scope[..] else {
            return Err(invalid(format!(
                "the Credential is not KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request: {form}"
            )));
        };
        if access_key_id.is_empty() || region.is_empty() {
            return Err(invalid(format!(
                "the Credential's key id and region must not be empty: {form}"
            )));
        }
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!(
                "the Credential's date {date:?} is not YYYYMMDD"
            )));
        }
        let names_ok = signed_headers
            .split(';')
            .all(|name| !name.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()));
        if !names_ok {
            return Err(invalid(format!(
                "SignedHeaders {signed_headers:?} must be lowercase header names separated by ';'"
            )));
        }
        for required in ["host", X_AMZ_DATE] {
            if !signed_headers.split(';').any(|name| name == required) {
                return Err(invalid(format!(
                    "SignedHeaders must include {required}, and it does not: {signed_headers:?}"
                )));
            }
        }
        if signature.len() != 64
            || !signature
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(invalid(
                "the Signature is not 64 lowercase hexadecimal digits",
            ));
        }
        Ok(Authorization {
            access_key_id,
            date,
            region,
            service,
            terminator,
            signed_headers,
            signature,
        })
    }
}

/// Signs the request again as the client should have: its method, path and query, exactly the
/// headers it lists (the signer adds `x-amz-date` from `time` and `x-amz-security-token` from
/// the credentials itself), and the hash of the body. Answers the signed-header list the signer
/// produced and the signature.
fn resign(
    service: &str,
    request: &SignedRequest<'_>,
    auth: &Authorization<'_>,
    secret: &Secret,
    time: SystemTime,
    session_token: Option<&str>,
) -> Result<(String, String), SigV4Error> {
    let mut headers = Vec::new();
    for name in auth.signed_headers.split(';') {
        if name == X_AMZ_DATE || name == X_AMZ_SECURITY_TOKEN {
            continue;
        }
        let mut values = request.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            return Err(invalid(format!(
                "the signed header {name} is not in the request: send every header that SignedHeaders lists"
            )));
        }
        for value in values {
            let value = value
                .to_str()
                .map_err(|_| invalid(format!("the signed header {name} is not visible ASCII")))?;
            headers.push((name, value));
        }
    }
    let cannot = |e: aws_sigv4::http_request::SigningError| {
        invalid(format!(
            "the request cannot be canonicalized for signing: {e}"
        ))
    };
    let identity = Credentials::new(
        auth.access_key_id,
        secret.expose(),
        session_token.map(str::to_owned),
        None,
        "switchyard tokens file",
    )
    .into();
    let mut settings = SigningSettings::default();
    // The client chose what to sign; the defaults would drop e.g. a signed user-agent.
    settings.excluded_headers = Some(Vec::new());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| {
            invalid(format!(
                "the credential scope cannot be used for signing: {e}"
            ))
        })?
        .into();
    let path_and_query = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let signable = SignableRequest::new(
        request.method.as_str(),
        path_and_query,
        headers.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(cannot)?;
    let (instructions, signature) = sign(signable, &params).map_err(cannot)?.into_parts();
    let signed_headers = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case(AUTHORIZATION.as_str()))
        .and_then(|(_, value)| {
            value
                .split(", ")
                .find_map(|part| part.strip_prefix("SignedHeaders="))
        })
        .map(str::to_owned)
        // aws-sigv4 always writes the header it signed with; without it nothing can match.
        .ok_or_else(|| invalid("the request cannot be signed again for checking"))?;
    Ok((signed_headers, signature))
}

/// The value of the one header `name`, if present; two of them, or one that is not visible
/// ASCII, is refused.
fn one_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, SigV4Error> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid(format!(
            "the request has more than one {name} header"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| invalid(format!("the {name} header is not visible ASCII")))
}

fn is_presigned(uri: &Uri) -> bool {
    uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            PRESIGN_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p))
        })
    })
}

/// `20150830T123600Z` (UTC) as Unix seconds; `None` for anything else, or before 1970.
fn parse_amz_date(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let digits_at = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    if bytes.len() != 16
        || bytes[8] != b'T'
        || bytes[15] != b'Z'
        || !digits_at(0..8)
        || !digits_at(9..15)
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text[range].parse::<u8>().ok();
    let date = time::Date::from_calendar_date(
        text[0..4].parse().ok()?,
        time::Month::try_from(number(4..6)?).ok()?,
        number(6..8)?,
    )
    .ok()?;
    let clock = time::Time::from_hms(number(9..11)?, number(11..13)?, number(13..15)?).ok()?;
    u64::try_from(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
    .ok()
}

/// Unix seconds in X-Amz-Date's form, for messages.
fn format_amz_date(seconds: u64) -> String {
    let Some(t) = i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
    else {
        return format!("{seconds}s after 1970");
    };
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::{HeaderName, HeaderValue};

    const KEY_ID: &str = "AKIASHOP0000000000";
    const SECRET: &str = "shop-secret-key-0123456789abcdefghijklmn";
    /// 2026-12-02T18:00:00Z.
    const NOW_S: u64 = 1_796_234_400;
    const BODY: &[u8] =
        br#"{"Entries":[{"Source":"shop","DetailType":"order.created","Detail":"{\"id\":\"o-1\"}"}]}"#;

    /// A request to `POST /`, as boto3 sends it: the headers botocore signs, and a user-agent
    /// that it does not.
    struct Sent {
        uri: Uri,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Sent {
        fn request(&self) -> SignedRequest<'_> {
            SignedRequest {
                method: &Method::POST,
                uri: &self.uri,
                headers: &self.headers,
                body: &self.body,
            }
        }
    }

    /// What a client does: sign with aws-sigv4's defaults (which skip user-agent) and add the
    /// headers it answers. The verifier never sees this code path's output except as headers.
    fn signed(service: &str, key_id: &str, at_s: u64, session_token: Option<&str>) -> Sent {
        let base = [
            ("host", "127.0.0.1:8700"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "AWSEvents.PutEvents"),
            ("user-agent", "Boto3/1.44.0 md/Botocore#1.44.0"),
        ];
        let identity = Credentials::new(
            key_id,
            SECRET,
            session_token.map(str::to_owned),
            None,
            "test",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(UNIX_EPOCH + Duration::from_secs(at_s))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let signable =
            SignableRequest::new("POST", "/", base.into_iter(), SignableBody::Bytes(BODY)).unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut headers = HeaderMap::new();
        for (name, value) in base.into_iter().chain(instructions.headers()) {
            headers.append(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::try_from(value).unwrap(),
            );
        }
        Sent {
            uri: Uri::from_static("/"),
            headers,
            body: BODY.to_vec(),
        }
    }

    fn check(sent: &Sent, now_s: u64) -> Result<&'static str, SigV4Error> {
        let secret = Secret::new(SECRET);
        verify(
            &sent.request(),
            |id| (id == KEY_ID).then_some(("shop", &secret)),
            now_s * 1000,
        )
    }

    fn invalid_message(result: Result<&'static str, SigV4Error>) -> String {
        match result {
            Err(SigV4Error::Invalid(message)) => {
                assert!(!message.contains(SECRET), "{message}");
                message
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_request_signed_as_boto3_signs_verifies_and_answers_the_keys_owner() {
        let sent = signed("events", KEY_ID, NOW_S, None);
        let authorization = sent.headers[AUTHORIZATION].to_str().unwrap();
        assert!(
            authorization.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target,"),
            "{authorization}"
        );
        assert_eq!(check(&sent, NOW_S), Ok("shop"));
        // Within 15 minutes either way, the clocks may differ.
        assert_eq!(check(&sent, NOW_S + MAX_SKEW_S), Ok("shop"));
        assert_eq!(check(&sent, NOW_S - MAX_SKEW_S), Ok("shop"));
    }

    #[test]
    fn one_changed_body_byte_is_an_invalid_signature_without_the_expected_one_in_the_message() {
        let mut sent = signed("events", KEY_ID, NOW_S, None);
        let last = sent.body.len() - 3;
        sent.body[last] = b'2';
        let message = invalid_message(check(&sent, NOW_S));
        assert!(message.contains("does not match"), "{message}");
        assert!(!message.contains(&signed_over(&sent)), "{message}");
    }

    /// The signature a client would send for `sent`'s body, for checking it is not leaked.
    fn signed_over(sent: &Sent) -> String {
        let identity = Credentials::new(KEY_ID, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("events")
            .time(UNIX_EPOCH + Duration::from_secs(NOW_S))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = ["host", "content-type", "x-amz-target"]
            .map(|name| (name, sent.headers[name].to_str().unwrap()));
        let signable = SignableRequest::new(
            "POST",
            "/",
            headers.into_iter(),
            SignableBody::Bytes(&sent.body),
        )
        .unwrap();
        sign(signable, &params).unwrap().into_parts().1
    }

    #[test]
    fn an_unknown_key_id_is_an_unrecognized_client() {
        let sent = signed("events", "AKIAOTHER000000000", NOW_S, None);
        let error = check(&sent, NOW_S).unwrap_err();
        assert_eq!(error, SigV4Error::UnknownKey("AKIAOTHER000000000".into()));
        assert_eq!(error.aws_type(), "UnrecognizedClientException");
    }

    #[test]
    fn a_signature_older_than_15_minutes_has_expired() {
        let sent = signed("events", KEY_ID, NOW_S - MAX_SKEW_S - 1, None);
        let message = invalid_message(check(&sent, NOW_S));
        assert!(message.starts_with("Signature expired"), "{message}");
        assert!(message.contains("20261202T180000Z"), "{message}");
        // And one from the future, as far.
        let sent = signed("events", KEY_ID, NOW_S + MAX_SKEW_S + 1, None);
        assert!(invalid_message(check(&sent, NOW_S)).starts_with("Signature expired"));
    }

    #[test]
    fn an_unsigned_request_is_missing_authentication() {
        let mut sent = signed("events", KEY_ID, NOW_S, None);
        sent.headers.remove(AUTHORIZATION);
        let error = check(&sent, NOW_S).unwrap_err();
        assert_eq!(error, SigV4Error::Missing);
        assert_eq!(error.aws_type(), "MissingAuthenticationTokenException");
        for other in [
            "Bearer some-token",
            "AWS4-ECDSA-P256-SHA256 Credential=x",
            "AWS AKID:sig",
        ] {
            sent.headers
                .insert(AUTHORIZATION, HeaderValue::from_static(other));
            assert_eq!(check(&sent, NOW_S), Err(SigV4Error::Missing), "{other}");
        }
    }

    #[test]
    fn a_scope_for_another_service_is_invalid() {
        let sent = signed("sqs", KEY_ID, NOW_S, None);
        let error = check(&sent, NOW_S).unwrap_err();
        assert_eq!(error.aws_type(), "InvalidSignatureException");
        let message = invalid_message(Err(error));
        assert!(message.contains("/events/aws4_request"), "{message}");
    }

    #[test]
    fn a_scope_dated_another_day_than_x_amz_date_is_invalid() {
        let mut sent = signed("events", KEY_ID, NOW_S, None);
        let authorization = sent.headers[AUTHORIZATION]
            .to_str()
            .unwrap()
            .replace("/20261202/", "/20261201/");
        sent.headers
            .insert(AUTHORIZATION, HeaderValue::try_from(authorization).unwrap());
        let message = invalid_message(check(&sent, NOW_S));
        assert!(message.contains("20261201"), "{message}");
    }

    #[test]
    fn a_session_token_is_part_of_the_signature() {
        let sent = signed("events", KEY_ID, NOW_S, Some("session-token-value"));
        assert!(sent.headers.contains_key(X_AMZ_SECURITY_TOKEN));
        assert_eq!(check(&sent, NOW_S), Ok("shop"));
        // Dropped on the way: the signed-header lists differ, and the message says how.
        let mut dropped = signed("events", KEY_ID, NOW_S, Some("session-token-value"));
        dropped.headers.remove(X_AMZ_SECURITY_TOKEN);
        let message = invalid_message(check(&dropped, NOW_S));
        assert!(message.contains("SignedHeaders"), "{message}");
        assert!(!message.contains("session-token-value"), "{message}");
        // Changed on the way.
        let mut changed = signed("events", KEY_ID, NOW_S, Some("session-token-value"));
        changed.headers.insert(
            X_AMZ_SECURITY_TOKEN,
            HeaderValue::from_static("session-token-valuf"),
        );
        assert!(invalid_message(check(&changed, NOW_S)).contains("does not match"));
    }

    #[test]
    fn a_signed_header_that_is_not_sent_or_was_changed_is_invalid() {
        let mut sent = signed("events", KEY_ID, NOW_S, None);
        sent.headers.remove("x-amz-target");
        assert!(
            invalid_message(check(&sent, NOW_S)).contains("x-amz-target is not in the request")
        );
        let mut sent = signed("events", KEY_ID, NOW_S, None);
        sent.headers.insert(
            "x-amz-target",
            HeaderValue::from_static("AWSEvents.DeleteRule"),
        );
        assert!(invalid_message(check(&sent, NOW_S)).contains("does not match"));
        // An unsigned header may change: user-agent is not signed.
        let mut sent = signed("events", KEY_ID, NOW_S, None);
        sent.headers
            .insert("user-agent", HeaderValue::from_static("curl/8"));
        assert_eq!(check(&sent, NOW_S), Ok("shop"));
    }

    #[test]
    fn presigned_query_authentication_is_refused() {
        let mut sent = signed("events", KEY_ID, NOW_S, None);
        sent.uri = Uri::from_static(
            "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIASHOP0000000000%2F20261202%2Fus-east-1%2Fevents%2Faws4_request&X-Amz-Signature=00",
        );
        sent.headers.remove(AUTHORIZATION);
        assert!(invalid_message(check(&sent, NOW_S)).contains("presigned"));
    }

    #[test]
    fn malformed_authorization_headers_are_invalid_and_say_the_form() {
        let good = "Credential=AKIASHOP0000000000/20261202/us-east-1/events/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
        let hex = "0".repeat(64);
        for (header, expected) in [
            ("AWS4-HMAC-SHA256".to_string(), "incomplete"),
            ("AWS4-HMAC-SHA256 Credential=a/b".to_string(), "lacks"),
            (
                format!("AWS4-HMAC-SHA256 {good}{hex}, Extra=1"),
                "unknown part",
            ),
            (
                format!("AWS4-HMAC-SHA256 {good}{hex}, Signature={hex}"),
                "twice",
            ),
            (format!("AWS4-HMAC-SHA256 {good}ABC"), "hexadecimal"),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIASHOP0000000000/20261202/us-east-1/events, SignedHeaders=host;x-amz-date, Signature={hex}"
                ),
                "KEY_ID/YYYYMMDD",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIASHOP0000000000/2026-12-0/us-east-1/events/aws4_request, SignedHeaders=host;x-amz-date, Signature={hex}"
                ),
                "not YYYYMMDD",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIASHOP0000000000/20261202/us-east-1/events/aws4_request, SignedHeaders=x-amz-date, Signature={hex}"
                ),
                "must include host",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIASHOP0000000000/20261202/us-east-1/events/aws4_request, SignedHeaders=Host;x-amz-date, Signature={hex}"
                ),
                "lowercase",
            ),
        ] {
            let mut sent = signed("events", KEY_ID, NOW_S, None);
            sent.headers.insert(
                AUTHORIZATION,
                HeaderValue::try_from(header.as_str()).unwrap(),
            );
            let message = invalid_message(check(&sent, NOW_S));
            assert!(message.contains(expected), "{header}: {message}");
        }
    }

    #[test]
    fn a_bad_x_amz_date_is_invalid() {
        for (date, expected) in [
            (None, "X-Amz-Date header is missing"),
            (Some("2026-12-02T18:00:00Z"), "not a time"),
            (Some("20261302T180000Z"), "not a time"),
            (Some("20261202T180000"), "not a time"),
        ] {
            let mut sent = signed("events", KEY_ID, NOW_S, None);
            sent.headers.remove(X_AMZ_DATE);
            if let Some(date) = date {
                sent.headers
                    .insert(X_AMZ_DATE, HeaderValue::from_static(date));
            }
            let message = invalid_message(check(&sent, NOW_S));
            assert!(message.contains(expected), "{date:?}: {message}");
        }
    }

    /// AWS's SigV4 test suite (`aws-sig-v4-test-suite`, also shipped with scratchstack's and
    /// smithy's signers): requests and signatures computed by AWS, so these prove the
    /// canonicalization without trusting aws-sigv4 to agree with itself. Service `service`,
    /// region us-east-1, key AKIDEXAMPLE, time 20150830T123600Z.
    #[test]
    fn aws_published_test_vectors_verify() {
        const VECTOR_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        const AT_S: u64 = 1_440_938_160;
        let scope = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
        /// One case: its name in the suite, the path and query, the headers but X-Amz-Date,
        /// the body, and what AWS signed.
        type Vector = (
            &'static str,
            &'static str,
            Vec<(&'static str, &'static str)>,
            &'static [u8],
            &'static str,
            &'static str,
        );
        let cases: [Vector; 4] = [
            (
                "get-vanilla",
                "/",
                vec![("host", "example.amazonaws.com")],
                b"",
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "post-vanilla-query",
                "/?Param1=value1",
                vec![("host", "example.amazonaws.com")],
                b"",
                "host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            ),
            (
                "get-vanilla-with-session-token",
                "/",
                vec![
                    ("host", "example.amazonaws.com"),
                    (
                        "x-amz-security-token",
                        "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
                    ),
                ],
                b"",
                "host;x-amz-date;x-amz-security-token",
                "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            ),
            (
                "post-x-www-form-urlencoded",
                "/",
                vec![
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("host", "example.amazonaws.com"),
                    ("content-length", "13"),
                    (
                        "x-amz-content-sha256",
                        "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                    ),
                ],
                b"Param1=value1",
                "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
            ),
        ];
        let secret = Secret::new(VECTOR_SECRET);
        for (name, uri, headers, body, signed_headers, signature) in cases {
            let method = if name.starts_with("get") {
                Method::GET
            } else {
                Method::POST
            };
            let uri: Uri = uri.parse().unwrap();
            let mut map = HeaderMap::new();
            for (header, value) in headers
                .into_iter()
                .chain([("x-amz-date", "20150830T123600Z")])
            {
                map.append(
                    HeaderName::try_from(header).unwrap(),
                    HeaderValue::try_from(value).unwrap(),
                );
            }
            let authorization = format!(
                "AWS4-HMAC-SHA256 {scope}, SignedHeaders={signed_headers}, Signature={signature}"
            );
            map.insert(AUTHORIZATION, HeaderValue::try_from(authorization).unwrap());
            let request = SignedRequest {
                method: &method,
                uri: &uri,
                headers: &map,
                body,
            };
            let verified = verify_for(
                "service",
                &request,
                |id| (id == "AKIDEXAMPLE").then_some(((), &secret)),
                AT_S * 1000,
            );
            assert_eq!(verified, Ok(()), "{name}");
            // The same request under `events` is out of scope: the service is checked.
            assert!(
                matches!(
                    verify(&request, |_| Some(((), &secret)), AT_S * 1000),
                    Err(SigV4Error::Invalid(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn amz_dates_parse_and_format_as_utc() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(parse_amz_date(&format_amz_date(NOW_S)), Some(NOW_S));
        for bad in [
            "19691231T235959Z",
            "20150830T246000Z",
            "+0150830T123600Z",
            "20150830T12360Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
