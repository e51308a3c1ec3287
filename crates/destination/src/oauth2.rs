//! OAuth 2.0 client credentials (RFC 6749 §4.4), the pure halves: building the token request
//! and reading the token response. Sending it, caching the token until shortly before it
//! expires, and fetching a new one after a 401 are the dispatcher's.
//!
//! Must not: put the client secret anywhere but the request's `Authorization` header or body,
//! both marked sensitive, and never in an error.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use switchyard_secrets::{Keyring, Secret, SecretRef};

use crate::error::{ConfigError, ResolveError};
use crate::render::Header;

/// Seconds before `expires_in` runs out at which a token counts as stale, so that a token is
/// never sent in its last moments (clock skew, slow requests).
const EXPIRY_MARGIN_S: u64 = 60;
/// Lifetime assumed when the server omits `expires_in` (RFC 6749 makes it optional).
const DEFAULT_LIFETIME_S: u64 = 300;
/// Characters of an error response's text kept in the error: the server's reason, not a dump.
const MAX_ERROR_TEXT: usize = 200;

/// JSON (inside a connection's `auth`): `{"type": "oauth2_client_credentials", "token_url",
/// "client_id", "client_secret", "scopes": [], "audience", "client_auth": "basic" | "body"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2ClientCredentials {
    /// The token endpoint: an absolute `https://` (or `http://`) URL, which the outbound address
    /// policy also checks when the connection is written.
    pub token_url: String,
    /// Not a secret; must not be empty.
    pub(crate) client_id: String,
    /// Write-only: sealed when stored, opened (or read from its file) for each token request.
    pub client_secret: SecretRef,
    /// Sent space-separated as `scope`, or not at all when empty; each an RFC 6749 §3.3 token.
    pub(crate) scopes: Vec<String>,
    /// Some servers (Auth0 and others) require the API's identifier as `audience`.
    pub(crate) audience: Option<String>,
    /// How the client authenticates to the token endpoint: `basic` (default; RFC 6749 §2.3.1
    /// requires servers to support it) or `body` (`client_id`/`client_secret` form fields).
    pub(crate) client_auth: ClientAuth,
}

/// Where the token request carries the client's id and secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ClientAuth {
    /// In `Authorization: Basic`, each part form-urlencoded first (RFC 6749 §2.3.1).
    #[default]
    Basic,
    /// As the `client_id` and `client_secret` form fields.
    Body,
}

impl OAuth2ClientCredentials {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.token_url)
            .map_err(|e| ConfigError::new("token_url", format!("is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(ConfigError::new(
                "token_url",
                "must be an absolute https:// (or http://) URL",
            ));
        }
        if self.client_id.is_empty() {
            return Err(ConfigError::new("client_id", "must not be empty"));
        }
        if let Some(bad) = self.scopes.iter().find(|s| {
            s.is_empty()
                || s.chars()
                    .any(|c| c == ' ' || c == '"' || c == '\\' || c.is_control())
        }) {
            return Err(ConfigError::new(
                "scopes",
                format!("{bad:?} is not a valid scope (RFC 6749 §3.3)"),
            ));
        }
        Ok(())
    }

    /// The token request, with the client secret opened or read from its file.
    pub fn token_request(&self, key: &Keyring) -> Result<TokenRequest, ResolveError> {
        let secret = self
            .client_secret
            .resolve(key)
            .map_err(|source| ResolveError::Secret {
                field: "auth.client_secret".into(),
                source,
            })?;
        Ok(self.token_request_with(&secret))
    }

    /// The token request for an already resolved client secret.
    pub fn token_request_with(&self, client_secret: &Secret) -> TokenRequest {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !self.scopes.is_empty() {
            form.append_pair("scope", &self.scopes.join(" "));
        }
        if let Some(audience) = &self.audience {
            form.append_pair("audience", audience);
        }
        let mut headers = vec![
            Header::new("content-type", "application/x-www-form-urlencoded"),
            Header::new("accept", "application/json"),
        ];
        let encoded: String =
            url::form_urlencoded::byte_serialize(client_secret.expose().as_bytes()).collect();
        let mut sent_secrets = vec![Secret::new(encoded), client_secret.clone()];
        match self.client_auth {
            ClientAuth::Basic => {
                // RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = zeroize::Zeroizing::new(format!(
                    "{}:{}",
                    encode(&self.client_id),
                    encode(client_secret.expose())
                ));
                let credentials = STANDARD.encode(pair.as_bytes());
                headers.push(Header::sensitive(
                    "authorization",
                    format!("Basic {credentials}"),
                ));
                sent_secrets.insert(0, Secret::new(credentials));
            }
            ClientAuth::Body => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", client_secret.expose());
            }
        }
        TokenRequest {
            url: self.token_url.clone(),
            headers,
            body: zeroize::Zeroizing::new(form.finish().into_bytes()),
            sent_secrets,
        }
    }
}

/// A POST to the token endpoint. Its body and `authorization` header may hold the client secret.
pub struct TokenRequest {
    /// The connection's `token_url`, as configured.
    pub url: String,
    /// `content-type` and `accept`, and with `basic` client auth the sensitive `authorization`.
    pub headers: Vec<Header>,
    body: zeroize::Zeroizing<Vec<u8>>,
    /// The forms the client secret takes in the request, for [`TokenRequest::redact`].
    sent_secrets: Vec<Secret>,
}

impl TokenRequest {
    /// The form body (`application/x-www-form-urlencoded`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// `text` (the token endpoint's answer) with the client secret, in every form the request
    /// carried it, replaced by `********`.
    pub fn redact(&self, text: &str) -> String {
        self.sent_secrets
            .iter()
            .filter(|s| !s.expose().is_empty())
            .fold(text.to_string(), |out, secret| {
                out.replace(secret.expose(), switchyard_secrets::REDACTED)
            })
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &format_args!("{} bytes", self.body.len()))
            .finish()
    }
}

/// An access token and when to stop using it.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// What goes after `Bearer ` in each request's `Authorization` header.
    pub token: Secret,
    /// Unix seconds after which the token must be fetched again (expiry minus a margin).
    pub refresh_at_s: u64,
}

impl AccessToken {
    /// Whether the token may still be sent at `now_s` (Unix seconds), i.e. before
    /// [`AccessToken::refresh_at_s`].
    pub fn is_fresh(&self, now_s: u64) -> bool {
        now_s < self.refresh_at_s
    }
}

/// Why a token response cannot be used. Carries the server's error code and description (RFC
/// 6749 §5.2), never the response's token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint answered with a status other than 2xx.
    #[error("the token endpoint answered HTTP {status}{}", describe(.error, .description))]
    Refused {
        /// The HTTP status of the answer.
        status: u16,
        /// The answer's `error` code (`invalid_client`), cut to 200 characters; `None` when
        /// the body is not JSON or has none.
        error: Option<String>,
        /// The answer's `error_description`, cut to 200 characters; `None` when absent.
        description: Option<String>,
    },
    /// A 2xx answer without a usable token: the fixed reason (not JSON, no `access_token`, a
    /// token that cannot go in a header).
    #[error("the token response is not usable: {0}")]
    Malformed(&'static str),
    /// The answer's `token_type` as sent, when it is not `Bearer` (compared ignoring case).
    #[error("the token endpoint issued a {0:?} token; only Bearer tokens are supported")]
    UnsupportedType(String),
}

fn describe(error: &Option<String>, description: &Option<String>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!(": {e}: {d}"),
        (Some(e), None) => format!(": {e}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

/// Reads the token endpoint's answer.
pub fn parse_token_response(
    status: u16,
    body: &[u8],
    now_s: u64,
) -> Result<AccessToken, TokenError> {
    #[derive(Deserialize)]
    struct Success {
        access_token: Option<String>,
        token_type: Option<String>,
        expires_in: Option<u64>,
    }
    #[derive(Deserialize)]
    struct Failure {
        error: Option<String>,
        error_description: Option<String>,
    }
    if !(200..300).contains(&status) {
        let failure = serde_json::from_slice::<Failure>(body).unwrap_or(Failure {
            error: None,
            error_description: None,
        });
        let clip = |s: String| s.chars().take(MAX_ERROR_TEXT).collect::<String>();
        return Err(TokenError::Refused {
            status,
            error: failure.error.map(clip),
            description: failure.error_description.map(clip),
        });
    }
    let success: Success =
        serde_json::from_slice(body).map_err(|_| TokenError::Malformed("not a JSON object"))?;
    let token = success
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::Malformed("no access_token"))?;
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(TokenError::Malformed(
            "the access_token cannot be sent in a header",
        ));
    }
    match success.token_type {
        Some(kind) if !kind.eq_ignore_ascii_case("bearer") => {
            return Err(TokenError::UnsupportedType(kind));
        }
        _ => {}
    }
    let lifetime = success.expires_in.unwrap_or(DEFAULT_LIFETIME_S);
    Ok(AccessToken {
        token: Secret::new(token),
        refresh_at_s: now_s + lifetime.saturating_sub(EXPIRY_MARGIN_S),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(client_auth: ClientAuth) -> OAuth2ClientCredentials {
        OAuth2ClientCredentials {
            token_url: "https://idp.example.com/oauth/token".into(),
            client_id: "switchyard app".into(),
            client_secret: SecretRef::parse("s3cr3t:&=").unwrap(),
            scopes: vec!["events.write".into(), "events.read".into()],
            audience: Some("https://api.example.com".into()),
            client_auth,
        }
    }

    #[test]
    fn builds_a_basic_authenticated_token_request() {
        let key = Keyring::new(
            switchyard_secrets::MasterKey::from_keys(&[[9u8; 32]]),
            switchyard_secrets::SecretFiles::none(),
        );
        let request = spec(ClientAuth::Basic).token_request(&key).unwrap();
        assert_eq!(request.url, "https://idp.example.com/oauth/token");
        assert_eq!(
            std::str::from_utf8(request.body()).unwrap(),
            "grant_type=client_credentials&scope=events.write+events.read&audience=https%3A%2F%2Fapi.example.com"
        );
        let auth = request
            .headers
            .iter()
            .find(|h| h.name == "authorization")
            .unwrap();
        assert!(auth.sensitive);
        let decoded = STANDARD
            .decode(auth.value.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&decoded).unwrap(),
            "switchyard+app:s3cr3t%3A%26%3D"
        );
        let debug = format!("{request:?}");
        assert!(
            !debug.contains(&auth.value) && !debug.contains("s3cr3t"),
            "{debug}"
        );
    }

    #[test]
    fn can_send_the_client_in_the_body() {
        let request = spec(ClientAuth::Body).token_request_with(&Secret::new("s3cr3t"));
        let body = std::str::from_utf8(request.body()).unwrap();
        assert!(
            body.ends_with("&client_id=switchyard+app&client_secret=s3cr3t"),
            "{body}"
        );
        assert!(request.headers.iter().all(|h| h.name != "authorization"));
    }

    #[test]
    fn parses_tokens_with_expiry() {
        let token = parse_token_response(
            200,
            br#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#,
            1_000,
        )
        .unwrap();
        assert_eq!(token.token.expose(), "tok-1");
        assert_eq!(token.refresh_at_s, 1_000 + 3600 - 60);
        assert!(token.is_fresh(4_539) && !token.is_fresh(4_540));
        let token = parse_token_response(200, br#"{"access_token":"t"}"#, 0).unwrap();
        assert_eq!(token.refresh_at_s, 240);
        assert!(!format!("{token:?}").contains("tok-1"));
    }

    #[test]
    fn reports_refusals_and_bad_responses() {
        let err = parse_token_response(
            401,
            br#"{"error":"invalid_client","error_description":"bad secret"}"#,
            0,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the token endpoint answered HTTP 401: invalid_client: bad secret"
        );
        assert_eq!(
            parse_token_response(503, b"<html>", 0)
                .unwrap_err()
                .to_string(),
            "the token endpoint answered HTTP 503"
        );
        assert_eq!(
            parse_token_response(200, br#"{"token_type":"bearer"}"#, 0).unwrap_err(),
            TokenError::Malformed("no access_token")
        );
        assert_eq!(
            parse_token_response(200, br#"{"access_token":"t","token_type":"mac"}"#, 0)
                .unwrap_err(),
            TokenError::UnsupportedType("mac".into())
        );
    }
}
