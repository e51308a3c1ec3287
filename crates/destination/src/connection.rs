//! Connections: how to authenticate to a destination, shared by any number of subscriptions.
//! JSON body of `PUT /v1/connections/{name}`:
//!
//! ```json
//! {"auth": {"type": "basic", "username": "svc", "password": "..."},
//!  "headers": {"X-Team": "payments", "X-Client-Key": {"secret": "..."}},
//!  "query": {"tenant": "acme"},
//!  "body": {"source": "switchyard", "token": {"secret": "..."}},
//!  "client_certificate": {"certificate": "-----BEGIN CERTIFICATE-----...", "key": "file:/etc/switchyard/client.key"}}
//! ```
//!
//! `auth` is one of `basic`, `api_key` and `oauth2_client_credentials`, or absent. Extra header,
//! query and body values are plain strings (shown in answers) or `{"secret": ...}` (write-only).
//! `body` members (EventBridge's `InvocationHttpParameters.BodyParameters`) are added, as JSON
//! strings, to a request body that is a JSON object; any other body is sent as it is.
//! `client_certificate` is presented in the TLS handshake (mutual TLS): the certificate chain is
//! shown in answers, its private key is a write-only secret like the others.
//!
//! Owns the connection's shape, validation and applying resolved credentials to a request. Must
//! not: fetch OAuth tokens or cache them (see [`crate::oauth2`] for the pure halves; the HTTP
//! call and the cache are the dispatcher's), or keep a resolved secret longer than an attempt.

use std::collections::BTreeMap;
use std::fmt;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use switchyard_secrets::{Keyring, Secret, SecretError, SecretRef};

use crate::config::validate_header_name;
use crate::error::{ConfigError, ResolveError, parse_json};
use crate::oauth2::{ClientAuth, OAuth2ClientCredentials};

const MAX_PARAMS: usize = 50;

/// A connection as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// Free text for the people who manage the connection, shown in answers; the model's
    /// description rule (at most 1,024 bytes) is checked when the connection is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How requests authenticate; `None` sends no credentials of the connection's own (its
    /// headers, query parameters and client certificate still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectionAuth>,
    /// Added to every request; applied after the destination's own headers, so they win.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, ParamValue>,
    /// Added to every request's query string.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, ParamValue>,
    /// Members set (as JSON strings) in every request body that is a JSON object, replacing a
    /// member of the same name, as the connection's headers replace the destination's; a body
    /// that is not an object is left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub body: BTreeMap<String, ParamValue>,
    /// Presented in the TLS handshake when the destination (or the token endpoint) asks for
    /// one; `None` for no mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_certificate: Option<ClientCertificate>,
}

/// A client certificate for mutual TLS with the destination (and the OAuth token endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificate {
    /// PEM: the client certificate, then any intermediates the destination needs.
    pub certificate: String,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1); write-only.
    pub key: SecretRef,
}

impl ClientCertificate {
    fn validate(&self) -> Result<(), ConfigError> {
        let field = "client_certificate.certificate";
        let certs = CertificateDer::pem_slice_iter(self.certificate.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new(field, format!("not a PEM certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(ConfigError::new(
                field,
                "holds no \"-----BEGIN CERTIFICATE-----\" block; give the client certificate as PEM",
            ));
        }
        match self.key.inline() {
            Some(key) => {
                check_private_key(key).map_err(|m| ConfigError::new("client_certificate.key", m))
            }
            None => Ok(()),
        }
    }

    /// The certificate chain and the opened key, one PEM text.
    fn resolve(&self, key: &Keyring) -> Result<Secret, ResolveError> {
        let field = "client_certificate.key";
        let private = self
            .key
            .resolve(key)
            .map_err(|source| ResolveError::Secret {
                field: field.to_string(),
                source,
            })?;
        check_private_key(&private).map_err(|message| ResolveError::Invalid {
            field: field.to_string(),
            message,
        })?;
        Ok(Secret::new(format!(
            "{}\n{}\n",
            self.certificate.trim_end(),
            private.expose().trim_end()
        )))
    }
}

/// The message never quotes the text: it is a secret, and pem errors would show part of it.
fn check_private_key(pem: &Secret) -> Result<(), String> {
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes())
        .map(drop)
        .map_err(|_| {
            "not a PEM private key: give \"-----BEGIN PRIVATE KEY-----\" (PKCS#8), \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\""
                .to_string()
        })
}

/// How a connection authenticates. JSON: an object with `"type"` and that type's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AuthFields", into = "AuthFields")]
pub enum ConnectionAuth {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// Not a secret (shown in answers); non-empty, without `:` (RFC 7617) or control
        /// characters.
        username: String,
        /// Write-only: sealed before the connection is stored, opened at each attempt.
        password: SecretRef,
    },
    /// `{header}: {value}`, such as `X-API-Key: ...`.
    ApiKey {
        /// The header's name: a token, and not one switchyard sets itself.
        header: String,
        /// Write-only; sent as the header's whole value, marked sensitive.
        value: SecretRef,
    },
    /// `Authorization: Bearer <token>` from an OAuth 2.0 client-credentials grant.
    OAuth2ClientCredentials(OAuth2ClientCredentials),
}

impl ConnectionAuth {
    fn kind(&self) -> &'static str {
        match self {
            ConnectionAuth::Basic { .. } => "basic",
            ConnectionAuth::ApiKey { .. } => "api_key",
            ConnectionAuth::OAuth2ClientCredentials(_) => "oauth2_client_credentials",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthType {
    Basic,
    ApiKey,
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials,
}

/// The JSON shape of [`ConnectionAuth`]: one flat object, so that serde can name the field of
/// any error inside it (an internally tagged enum would lose the path).
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFields {
    #[serde(rename = "type")]
    kind: Option<AuthType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_auth: Option<ClientAuth>,
}

impl TryFrom<AuthFields> for ConnectionAuth {
    type Error = String;
    fn try_from(f: AuthFields) -> Result<Self, String> {
        let kind = f
            .kind
            .ok_or("missing field \"type\" (basic, api_key or oauth2_client_credentials)")?;
        let name = match kind {
            AuthType::Basic => "basic",
            AuthType::ApiKey => "api_key",
            AuthType::OAuth2ClientCredentials => "oauth2_client_credentials",
        };
        let present = [
            ("username", f.username.is_some(), AuthType::Basic),
            ("password", f.password.is_some(), AuthType::Basic),
            ("header", f.header.is_some(), AuthType::ApiKey),
            ("value", f.value.is_some(), AuthType::ApiKey),
            (
                "token_url",
                f.token_url.is_some(),
                AuthType::OAuth2ClientCredentials,
            ),
            (
                "client_id",
                f.client_id.is_some(),
                AuthType::OAuth2ClientCredentials,
            ),
            (
                "client_secret",
                f.client_secret.is_some(),
                AuthType::OAuth2ClientCredentials,
            ),
            (
                "scopes",
                f.scopes.is_some(),
                AuthType::OAuth2ClientCredentials,
            ),
            (
                "audience",
                f.audience.is_some(),
                AuthType::OAuth2ClientCredentials,
            ),
            (
                "client_auth",
                f.client_auth.is_some(),
                AuthType::OAuth2ClientCredentials,
            ),
        ];
        if let Some((field, ..)) = present
            .iter()
            .find(|(_, set, owner)| *set && *owner != kind)
        {
            return Err(format!(
                "field \"{field}\" does not apply to type \"{name}\""
            ));
        }
        let need = |field: &str| format!("type \"{name}\" needs field \"{field}\"");
        Ok(match kind {
            AuthType::Basic => ConnectionAuth::Basic {
                username: f.username.ok_or_else(|| need("username"))?,
                password: f.password.ok_or_else(|| need("password"))?,
            },
            AuthType::ApiKey => ConnectionAuth::ApiKey {
                header: f.header.ok_or_else(|| need("header"))?,
                value: f.value.ok_or_else(|| need("value"))?,
            },
            AuthType::OAuth2ClientCredentials => {
                ConnectionAuth::OAuth2ClientCredentials(OAuth2ClientCredentials {
                    token_url: f.token_url.ok_or_else(|| need("token_url"))?,
                    client_id: f.client_id.ok_or_else(|| need("client_id"))?,
                    client_secret: f.client_secret.ok_or_else(|| need("client_secret"))?,
                    scopes: f.scopes.unwrap_or_default(),
                    audience: f.audience,
                    client_auth: f.client_auth.unwrap_or_default(),
                })
            }
        })
    }
}

impl From<ConnectionAuth> for AuthFields {
    fn from(auth: ConnectionAuth) -> AuthFields {
        match auth {
            ConnectionAuth::Basic { username, password } => AuthFields {
                kind: Some(AuthType::Basic),
                username: Some(username),
                password: Some(password),
                ..AuthFields::default()
            },
            ConnectionAuth::ApiKey { header, value } => AuthFields {
                kind: Some(AuthType::ApiKey),
                header: Some(header),
                value: Some(value),
                ..AuthFields::default()
            },
            ConnectionAuth::OAuth2ClientCredentials(o) => AuthFields {
                kind: Some(AuthType::OAuth2ClientCredentials),
                token_url: Some(o.token_url),
                client_id: Some(o.client_id),
                client_secret: Some(o.client_secret),
                scopes: Some(o.scopes).filter(|s| !s.is_empty()),
                audience: o.audience,
                client_auth: Some(o.client_auth),
                ..AuthFields::default()
            },
        }
    }
}

/// An extra header or query value: a plain string, or `{"secret": "..."}` for a write-only one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// Not a secret: sent, and shown in answers, as written.
    Plain(String),
    /// Write-only: sealed when stored, never shown; as a header it is marked sensitive, as a
    /// query value it is masked in [`crate::RenderedRequest::url_for_logs`].
    Secret(SecretRef),
}

impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Plain(text) => serializer.serialize_str(text),
            ParamValue::Secret(secret) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("secret", secret)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for ParamValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamVisitor;
        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = ParamValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or {\"secret\": \"...\"} for a write-only value")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ParamValue, E> {
                Ok(ParamValue::Plain(text.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParamValue, A::Error> {
                let mut secret = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "secret" || secret.is_some() {
                        return Err(de::Error::custom(
                            "a write-only value is an object with the one field \"secret\"",
                        ));
                    }
                    secret = Some(map.next_value::<SecretRef>()?);
                }
                secret
                    .map(ParamValue::Secret)
                    .ok_or_else(|| de::Error::custom("missing field \"secret\""))
            }
        }
        deserializer.deserialize_any(ParamVisitor)
    }
}

/// Parses and validates a connection body; errors name the field (`field "auth.token_url": ...`).
pub fn parse_connection_spec(text: &str) -> Result<ConnectionSpec, ConfigError> {
    let spec: ConnectionSpec = parse_json(text, "the connection")?;
    spec.validate()?;
    Ok(spec)
}

impl ConnectionSpec {
    /// Checks what the types cannot; every error names its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.auth {
            // RFC 7617: the user-id of Basic auth cannot contain ':'.
            Some(ConnectionAuth::Basic { username, .. })
                if username.is_empty()
                    || username.contains(':')
                    || username.chars().any(char::is_control) =>
            {
                return Err(ConfigError::new(
                    "auth.username",
                    "must be non-empty, without ':' or control characters",
                ));
            }
            None | Some(ConnectionAuth::Basic { .. }) => {}
            Some(ConnectionAuth::ApiKey { header, value }) => {
                validate_header_name("auth.header", header)?;
                check_header_secret("auth.value", value)?;
            }
            Some(ConnectionAuth::OAuth2ClientCredentials(oauth)) => {
                oauth.validate().map_err(|e| e.under("auth"))?;
            }
        }
        if let Some(certificate) = &self.client_certificate {
            certificate.validate()?;
        }
        for (what, params) in [
            ("headers", &self.headers),
            ("query", &self.query),
            ("body", &self.body),
        ] {
            if params.len() > MAX_PARAMS {
                return Err(ConfigError::new(
                    what,
                    format!("at most {MAX_PARAMS} entries"),
                ));
            }
            for (name, value) in params {
                let field = format!("{what}.{name}");
                if what == "headers" {
                    validate_header_name(&field, name)?;
                } else if name.is_empty() {
                    let kind = if what == "query" {
                        "query parameter"
                    } else {
                        "body member"
                    };
                    return Err(ConfigError::new(what, format!("a {kind} needs a name")));
                }
                match value {
                    ParamValue::Plain(text) if what == "headers" && has_control(text) => {
                        return Err(ConfigError::new(
                            field,
                            "the value contains control characters",
                        ));
                    }
                    ParamValue::Secret(secret) if what == "headers" => {
                        check_header_secret(&field, secret)?
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Every inline secret sealed under the current master key, every `file:` one checked
    /// against the file policy: the form to store.
    pub fn seal(&self, key: &Keyring) -> Result<ConnectionSpec, SecretError> {
        let mut sealed = self.clone();
        match &mut sealed.auth {
            None => {}
            Some(ConnectionAuth::Basic {
                password: secret, ..
            })
            | Some(ConnectionAuth::ApiKey { value: secret, .. }) => *secret = secret.seal(key)?,
            Some(ConnectionAuth::OAuth2ClientCredentials(oauth)) => {
                oauth.client_secret = oauth.client_secret.seal(key)?;
            }
        }
        for value in sealed
            .headers
            .values_mut()
            .chain(sealed.query.values_mut())
            .chain(sealed.body.values_mut())
        {
            if let ParamValue::Secret(secret) = value {
                *secret = secret.seal(key)?;
            }
        }
        if let Some(certificate) = &mut sealed.client_certificate {
            certificate.key = certificate.key.seal(key)?;
        }
        Ok(sealed)
    }

    /// Whether resolving reads a `file:` secret (and so blocks on the file system).
    pub fn reads_files(&self) -> bool {
        let auth = match &self.auth {
            None => None,
            Some(ConnectionAuth::Basic { password: s, .. })
            | Some(ConnectionAuth::ApiKey { value: s, .. }) => Some(s),
            Some(ConnectionAuth::OAuth2ClientCredentials(oauth)) => Some(&oauth.client_secret),
        };
        let params = self
            .headers
            .values()
            .chain(self.query.values())
            .chain(self.body.values());
        let client_key = self.client_certificate.as_ref().map(|c| &c.key);
        auth.is_some_and(SecretRef::is_file)
            || client_key.is_some_and(SecretRef::is_file)
            || params
                .filter_map(|v| match v {
                    ParamValue::Secret(secret) => Some(secret),
                    ParamValue::Plain(_) => None,
                })
                .any(SecretRef::is_file)
    }

    /// The credentials for one attempt (opens sealed secrets and reads `file:` ones). The OAuth
    /// access token is not part of it: the dispatcher gets it with [`crate::oauth2`] and passes
    /// it to [`crate::render`].
    pub fn resolve(&self, key: &Keyring) -> Result<ResolvedConnection, ResolveError> {
        let open = |field: &str, secret: &SecretRef| {
            secret.resolve(key).map_err(|source| ResolveError::Secret {
                field: field.to_string(),
                source,
            })
        };
        let auth = match &self.auth {
            None => ResolvedAuth::None,
            Some(ConnectionAuth::Basic { username, password }) => ResolvedAuth::Basic {
                username: username.clone(),
                password: open("auth.password", password)?,
            },
            Some(ConnectionAuth::ApiKey { header, value }) => ResolvedAuth::ApiKey {
                header: header.clone(),
                value: open("auth.value", value)?,
            },
            Some(ConnectionAuth::OAuth2ClientCredentials(_)) => ResolvedAuth::OAuth2,
        };
        let resolve_params = |what: &str, params: &BTreeMap<String, ParamValue>| {
            params
                .iter()
                .map(|(name, value)| {
                    Ok(match value {
                        ParamValue::Plain(text) => Param {
                            name: name.clone(),
                            value: Secret::new(text.clone()),
                            secret: false,
                        },
                        ParamValue::Secret(secret) => Param {
                            name: name.clone(),
                            value: open(&format!("{what}.{name}"), secret)?,
                            secret: true,
                        },
                    })
                })
                .collect::<Result<Vec<_>, ResolveError>>()
        };
        let headers = resolve_params("headers", &self.headers)?;
        let query = resolve_params("query", &self.query)?;
        let body = resolve_params("body", &self.body)?;
        let client_identity = self
            .client_certificate
            .as_ref()
            .map(|c| c.resolve(key))
            .transpose()?;
        Ok(ResolvedConnection {
            auth,
            kind: self.auth.as_ref().map_or("none", ConnectionAuth::kind),
            headers,
            query,
            body,
            client_identity,
        })
    }
}

fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

fn check_header_secret(field: &str, secret: &SecretRef) -> Result<(), ConfigError> {
    if secret.inline().is_some_and(|s| has_control(s.expose())) {
        return Err(ConfigError::new(
            field,
            "the value contains control characters",
        ));
    }
    Ok(())
}

/// A connection's credentials for one attempt. Holds secrets: keep it for the attempt only.
#[derive(Debug)]
pub struct ResolvedConnection {
    pub(crate) auth: ResolvedAuth,
    pub(crate) kind: &'static str,
    pub(crate) headers: Vec<Param>,
    pub(crate) query: Vec<Param>,
    pub(crate) body: Vec<Param>,
    client_identity: Option<Secret>,
}

#[derive(Debug)]
pub(crate) enum ResolvedAuth {
    None,
    Basic { username: String, password: Secret },
    ApiKey { header: String, value: Secret },
    OAuth2,
}

#[derive(Debug)]
pub(crate) struct Param {
    pub name: String,
    pub value: Secret,
    pub secret: bool,
}

impl ResolvedConnection {
    /// True when requests need an OAuth access token.
    pub fn needs_access_token(&self) -> bool {
        matches!(self.auth, ResolvedAuth::OAuth2)
    }

    /// The client certificate chain followed by its private key, as one PEM text (the form
    /// `reqwest::Identity::from_pem` takes); `None` without a client certificate.
    pub fn client_identity(&self) -> Option<&Secret> {
        self.client_identity.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_auth_type_and_params() {
        let spec = parse_connection_spec(
            r#"{"auth":{"type":"basic","username":"svc","password":"pw"},"headers":{"X-Team":"payments","X-Key":{"secret":"k"}},"query":{"tenant":"acme"}}"#,
        )
        .unwrap();
        assert!(matches!(spec.auth, Some(ConnectionAuth::Basic { .. })));
        assert_eq!(spec.headers["X-Team"], ParamValue::Plain("payments".into()));
        let spec = parse_connection_spec(
            r#"{"auth":{"type":"api_key","header":"X-API-Key","value":"k"}}"#,
        )
        .unwrap();
        assert!(matches!(spec.auth, Some(ConnectionAuth::ApiKey { .. })));
        let spec = parse_connection_spec(
            r#"{"auth":{"type":"oauth2_client_credentials","token_url":"https://idp.example.com/token","client_id":"c","client_secret":"s","scopes":["events.write"]}}"#,
        )
        .unwrap();
        assert!(matches!(
            spec.auth,
            Some(ConnectionAuth::OAuth2ClientCredentials(_))
        ));
    }

    #[test]
    fn answers_never_contain_secrets() {
        let spec = parse_connection_spec(
            r#"{"auth":{"type":"basic","username":"svc","password":"hunter2"},"headers":{"X-Key":{"secret":"k-123"}},"query":{"key":{"secret":"q-456"}}}"#,
        )
        .unwrap();
        let key = Keyring::new(
            switchyard_secrets::MasterKey::from_keys(&[[3u8; 32]]),
            switchyard_secrets::SecretFiles::none(),
        );
        for text in [
            serde_json::to_string(&spec).unwrap(),
            format!("{spec:?}"),
            serde_json::to_string(&spec.seal(&key).unwrap()).unwrap(),
            format!("{:?}", spec.resolve(&key).unwrap()),
        ] {
            for secret in ["hunter2", "k-123", "q-456"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        assert!(
            serde_json::to_string(&spec)
                .unwrap()
                .contains(r#""X-Key":{"secret":"********"}"#)
        );
        let stored = serde_json::to_string(&spec.seal(&key).unwrap()).unwrap();
        let back = parse_connection_spec(&stored).unwrap();
        let resolved = back.resolve(&key).unwrap();
        let ResolvedAuth::Basic { password, .. } = &resolved.auth else {
            panic!()
        };
        assert_eq!(password.expose(), "hunter2");
    }

    #[test]
    fn a_client_certificate_key_is_write_only_and_checked() {
        let generated = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
        let (cert, key_pem) = (generated.cert.pem(), generated.signing_key.serialize_pem());
        let body = serde_json::json!({"client_certificate": {"certificate": cert, "key": key_pem}});
        let spec = parse_connection_spec(&body.to_string()).unwrap();
        let key = Keyring::new(
            switchyard_secrets::MasterKey::from_keys(&[[3u8; 32]]),
            switchyard_secrets::SecretFiles::none(),
        );
        let sealed = spec.seal(&key).unwrap();
        let secret_line = key_pem.lines().nth(1).unwrap();
        for text in [
            serde_json::to_string(&spec).unwrap(),
            format!("{spec:?}"),
            serde_json::to_string(&sealed).unwrap(),
        ] {
            assert!(!text.contains(secret_line), "the key in {text}");
            assert!(
                text.contains("BEGIN CERTIFICATE"),
                "the certificate is shown"
            );
        }
        let back = parse_connection_spec(&serde_json::to_string(&sealed).unwrap()).unwrap();
        let resolved = back.resolve(&key).unwrap();
        let identity = resolved.client_identity().unwrap().expose();
        assert!(identity.starts_with(cert.trim_end()) && identity.contains(secret_line));
        assert!(!format!("{resolved:?}").contains(secret_line));

        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "a certificate, not its key").unwrap();
        let reference = format!("file:{}", file.path().display());
        let bad_key =
            serde_json::json!({"client_certificate": {"certificate": cert, "key": reference}});
        let files = Keyring::new(
            switchyard_secrets::MasterKey::from_keys(&[[3u8; 32]]),
            switchyard_secrets::SecretFiles::new(&[file.path().parent().unwrap().into()], &[])
                .unwrap(),
        );
        let err = parse_connection_spec(&bad_key.to_string())
            .unwrap()
            .resolve(&files)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("client_certificate.key: not a PEM private key"),
            "{err}"
        );
    }

    #[test]
    fn refuses_bad_connections_naming_the_field() {
        for (body, field, expected) in [
            (
                r#"{"auth":{"type":"digest"}}"#,
                "auth.type",
                "unknown variant",
            ),
            (
                r#"{"auth":{"type":"basic","username":"a:b","password":"p"}}"#,
                "auth.username",
                "':'",
            ),
            (
                r#"{"auth":{"type":"basic","username":"a"}}"#,
                "auth",
                "needs field \"password\"",
            ),
            (
                r#"{"auth":{"type":"basic","username":"a","password":"p","header":"X"}}"#,
                "auth",
                "\"header\" does not apply",
            ),
            (
                r#"{"auth":{"username":"a"}}"#,
                "auth",
                "missing field \"type\"",
            ),
            (
                r#"{"auth":{"type":"basic","username":"a","pasword":"p"}}"#,
                "auth.pasword",
                "unknown field",
            ),
            (
                r#"{"auth":{"type":"api_key","header":"Host","value":"k"}}"#,
                "auth.header",
                "set by switchyard",
            ),
            (
                r#"{"auth":{"type":"api_key","header":"X-K","value":"a\nb"}}"#,
                "auth.value",
                "control",
            ),
            (
                r#"{"auth":{"type":"basic","username":"u","password":"********"}}"#,
                "auth.password",
                "how switchyard shows",
            ),
            (
                r#"{"headers":{"X-A":{"secret":"s","other":1}}}"#,
                "headers.X-A",
                "one field",
            ),
            (r#"{"headers":{"X-A":7}}"#, "headers.X-A", "a string, or"),
            (r#"{"query":{"":"x"}}"#, "query", "needs a name"),
            (
                r#"{"auth":{"type":"oauth2_client_credentials","token_url":"ftp://x","client_id":"c","client_secret":"s"}}"#,
                "auth.token_url",
                "https://",
            ),
            (r#"{"auths":{}}"#, "auths", "unknown field `auths`"),
            (
                r#"{"client_certificate":{"certificate":"hello","key":"k"}}"#,
                "client_certificate.certificate",
                "holds no",
            ),
            (
                r#"{"client_certificate":{"certificate":"-----BEGIN CERTIFICATE-----\nAAAA","key":"k"}}"#,
                "client_certificate.certificate",
                "not a PEM certificate chain",
            ),
            (
                r#"{"client_certificate":{"certificate":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n","key":"secret-text"}}"#,
                "client_certificate.key",
                "not a PEM private key",
            ),
            (
                r#"{"client_certificate":{"certificate":"x"}}"#,
                "client_certificate",
                "missing field `key`",
            ),
        ] {
            let err = parse_connection_spec(body).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
            assert!(err.message.contains(expected), "{body}: {err}");
        }
    }
}
