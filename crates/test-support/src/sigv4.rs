//! Signing a request with AWS Signature Version 4 for EventBridge (service `events`), as the AWS
//! SDKs do, so that tests can send signed raw requests to the EventBridge door without Python.
//!
//! Must not: be the code under test. It signs with `aws-sigv4`'s defaults, the client's side;
//! the server verifies on its own path, and its unit tests pin that path to AWS's published
//! vectors.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// An AWS key pair and the region it signs for.
#[derive(Debug, Clone, Copy)]
pub struct AwsKey<'a> {
    /// The token's `aws_access_key_id`.
    pub access_key_id: &'a str,
    /// The token's `aws_secret_access_key`.
    pub secret_access_key: &'a str,
    /// The region of the credential scope, e.g. `us-east-1`.
    pub region: &'a str,
}

/// The headers to add to a request so that it is signed by `key` at `time`: `x-amz-date` and
/// `authorization`. `url` is absolute (`http://127.0.0.1:PORT/`): the signed `host` is its
/// authority unless `headers` has one. `headers` are those the request carries besides these;
/// all are signed except the ones the SDKs leave out (`user-agent`, `transfer-encoding`, …).
pub fn sign_eventbridge(
    key: &AwsKey<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Vec<(String, String)> {
    let identity = Credentials::new(
        key.access_key_id,
        key.secret_access_key,
        None,
        None,
        "switchyard-test-support",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(key.region)
        .name("events")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _signature) = sign(request, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}
