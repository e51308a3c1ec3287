//! API tokens and their scopes: who may call what.
//!
//! The tokens file (`serve --api-tokens-file`) names each token and what it may do:
//!
//! ```toml
//! [tokens.deployer]
//! token = "a-long-random-string"
//! scopes = ["admin"]
//!
//! [tokens.shop]
//! token = "another-long-random-string"
//! scopes = ["publish:orders", "read"]
//! ```
//!
//! A file that is not in this form is the older one: one token per line, each meaning `admin`
//! (the server warns at start that it should be rewritten).
//!
//! Owns parsing the file, matching a presented bearer token (in constant time), and deciding the
//! scope a request needs ([`Need::of`]). Must not: log or answer a token's value; errors name
//! tokens by their name or line only.
//!
//! Invariant: every `/v1` route needs a scope; only `admin` changes configuration (connections,
//! sources and signing secrets included); `read` never sees a secret (no answer holds one).

use std::collections::BTreeMap;
use std::fmt;

use axum::http::Method;
use serde::Deserialize;
use switchyard_secrets::{Secret, constant_time_eq};

/// Shorter tokens are refused on a listener other people can reach: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Everything.
    Admin,
    /// Publishing: to every bus (`None`) or to the one named.
    Publish(Option<String>),
    /// Every `GET` of `/v1`, plus the side-effect-free `POST /v1/test-pattern`.
    Read,
    /// `GET /metrics`.
    Metrics,
}

impl Scope {
    fn parse(text: &str) -> Result<Scope, String> {
        match text {
            "admin" => Ok(Scope::Admin),
            "publish" => Ok(Scope::Publish(None)),
            "read" => Ok(Scope::Read),
            "metrics" => Ok(Scope::Metrics),
            other => match other.strip_prefix("publish:") {
                Some(bus) => {
                    switchyard_model::validate_name("bus", bus).map_err(|e| e.to_string())?;
                    Ok(Scope::Publish(Some(bus.to_string())))
                }
                None => Err(format!(
                    "unknown scope {other:?}: use admin, publish, publish:BUS, read or metrics"
                )),
            },
        }
    }

    fn grants(&self, need: &Need) -> bool {
        match (self, need) {
            (Scope::Admin, _) => true,
            (Scope::Publish(None), Need::Publish(_)) => true,
            (Scope::Publish(Some(allowed)), Need::Publish(bus)) => allowed == bus,
            (Scope::Read, Need::Read) => true,
            (Scope::Metrics, Need::Metrics) => true,
            _ => false,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Publish(None) => f.write_str("publish"),
            Scope::Publish(Some(bus)) => write!(f, "publish:{bus}"),
            Scope::Read => f.write_str("read"),
            Scope::Metrics => f.write_str("metrics"),
        }
    }
}

/// The scope one request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    Admin,
    Publish(String),
    Read,
    Metrics,
}

impl Need {
    /// The scope a `/v1` request needs, from its method and path.
    pub(crate) fn of(method: &Method, path: &str) -> Need {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if *method == Method::GET || *method == Method::HEAD {
            return Need::Read;
        }
        match segments.as_slice() {
            ["v1", "buses", bus, "events"] if *method == Method::POST => {
                Need::Publish((*bus).to_string())
            }
            ["v1", "test-pattern"] if *method == Method::POST => Need::Read,
            _ => Need::Admin,
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Admin => f.write_str("admin"),
            Need::Publish(bus) => write!(f, "publish (or publish:{bus})"),
            Need::Read => f.write_str("read"),
            Need::Metrics => f.write_str("metrics"),
        }
    }
}

/// One configured token.
#[derive(Debug, Clone)]
pub(crate) struct ApiToken {
    /// Shown in errors and logs instead of the value.
    pub(crate) name: String,
    value: Secret,
    pub(crate) scopes: Vec<Scope>,
}

impl ApiToken {
    pub(crate) fn allows(&self, need: &Need) -> bool {
        self.scopes.iter().any(|scope| scope.grants(need))
    }
}

/// Every configured token. Empty means the API is open (allowed on loopback only).
#[derive(Debug, Clone, Default)]
pub struct ApiTokens {
    tokens: Vec<ApiToken>,
    /// The file was the older one-token-per-line form: every token is `admin`.
    pub legacy: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: BTreeMap<String, TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: Secret,
    scopes: Vec<String>,
}

impl ApiTokens {
    /// Parses the tokens file: the named form when it has a `[tokens.NAME]` table, else one
    /// token per line (blank lines and `#` comments skipped). Errors never quote a token.
    pub fn parse(text: &str) -> Result<ApiTokens, String> {
        let named = text
            .lines()
            .any(|line| line.trim_start().starts_with("[tokens."));
        let tokens = if named {
            let file: TokensFile = toml::from_str(text).map_err(|e| {
                // toml's message quotes the offending line, which may hold a token.
                let line = e.span().map(|s| text[..s.start].lines().count().max(1));
                format!(
                    "not a valid tokens file{}: {}",
                    line.map(|l| format!(" (line {l})")).unwrap_or_default(),
                    e.message()
                )
            })?;
            file.tokens
                .into_iter()
                .map(|(name, entry)| {
                    if entry.scopes.is_empty() {
                        return Err(format!("token {name:?} has no scopes"));
                    }
                    let scopes = entry
                        .scopes
                        .iter()
                        .map(|s| Scope::parse(s).map_err(|e| format!("token {name:?}: {e}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(ApiToken {
                        name,
                        value: entry.token,
                        scopes,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?
        } else {
            text.lines()
                .map(str::trim)
                .enumerate()
                .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
                .map(|(index, line)| ApiToken {
                    name: format!("line {}", index + 1),
                    value: Secret::new(line),
                    scopes: vec![Scope::Admin],
                })
                .collect()
        };
        if tokens.is_empty() {
            return Err("holds no API token".into());
        }
        if let Some(empty) = tokens.iter().find(|t| t.value.expose().trim().is_empty()) {
            return Err(format!("token {:?} is empty", empty.name));
        }
        Ok(ApiTokens {
            tokens,
            legacy: !named,
        })
    }

    /// Whether no token is configured: then the API is open, which `serve` allows only on a
    /// loopback listener.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The names of tokens too short to be safe on a network listener.
    pub fn short(&self) -> Vec<&str> {
        self.tokens
            .iter()
            .filter(|t| t.value.expose().chars().count() < MIN_TOKEN_LEN)
            .map(|t| t.name.as_str())
            .collect()
    }

    /// The token an `Authorization` header presents, if it is one of these. The scheme is
    /// matched case-insensitively (RFC 9110 §11.1); every token is compared, in constant time,
    /// so the answer's timing does not tell which one nearly matched.
    pub(crate) fn find(&self, authorization: Option<&str>) -> Option<&ApiToken> {
        let presented = authorization.and_then(bearer)?;
        let mut found = None;
        for token in &self.tokens {
            if constant_time_eq(token.value.expose().as_bytes(), presented.as_bytes())
                && found.is_none()
            {
                found = Some(token);
            }
        }
        found
    }
}

/// The credentials of `Bearer <token>`, the scheme in any case.
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[tokens.deployer]
token = "admin-token-0123456789"
scopes = ["admin"]

[tokens.shop]
token = "shop-token-0123456789"
scopes = ["publish:orders", "read"]

[tokens.prometheus]
token = "short"
scopes = ["metrics"]
"#;

    #[test]
    fn named_tokens_carry_their_scopes() {
        let tokens = ApiTokens::parse(FILE).unwrap();
        assert!(!tokens.legacy);
        let shop = tokens.find(Some("Bearer shop-token-0123456789")).unwrap();
        assert_eq!(shop.name, "shop");
        assert!(shop.allows(&Need::Publish("orders".into())));
        assert!(!shop.allows(&Need::Publish("payments".into())));
        assert!(shop.allows(&Need::Read));
        assert!(!shop.allows(&Need::Admin));
        assert!(!shop.allows(&Need::Metrics));
        let admin = tokens.find(Some("bearer admin-token-0123456789")).unwrap();
        assert!(admin.allows(&Need::Admin) && admin.allows(&Need::Metrics));
        assert_eq!(tokens.short(), vec!["prometheus"]);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_is_accepted() {
        let tokens = ApiTokens::parse(FILE).unwrap();
        for header in [
            "Bearer admin-token-0123456789",
            "bearer admin-token-0123456789",
            "BEARER  admin-token-0123456789 ",
        ] {
            assert!(tokens.find(Some(header)).is_some(), "{header:?}");
        }
        for header in [
            "Basic admin-token-0123456789",
            "Bearer",
            "Bearer admin-token-012345678",
            "admin-token-0123456789",
        ] {
            assert!(tokens.find(Some(header)).is_none(), "{header:?}");
        }
        assert!(tokens.find(None).is_none());
    }

    #[test]
    fn the_one_token_per_line_file_means_admin() {
        let tokens = ApiTokens::parse("# ops\nfirst-token-0123456789\n\nsecond\n").unwrap();
        assert!(tokens.legacy);
        let second = tokens.find(Some("Bearer second")).unwrap();
        assert_eq!(second.name, "line 4");
        assert!(second.allows(&Need::Admin));
        assert_eq!(tokens.short(), vec!["line 4"]);
    }

    #[test]
    fn bad_files_are_refused_without_quoting_a_token() {
        for (text, expected) in [
            ("", "holds no API token"),
            ("# nothing\n", "holds no API token"),
            (
                "[tokens.a]\ntoken = \"secret-value-123456\"\nscopes = [\"root\"]\n",
                "unknown scope \"root\"",
            ),
            (
                "[tokens.a]\ntoken = \"secret-value-123456\"\nscopes = []\n",
                "no scopes",
            ),
            (
                "[tokens.a]\ntoken = \"secret-value-123456\"\nscope = [\"admin\"]\n",
                "line",
            ),
            (
                "[tokens.a]\ntoken = \"secret-value-123456\"\nscopes = [\"publish:no such\"]\n",
                "bus",
            ),
        ] {
            let error = ApiTokens::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains("secret-value"), "{error}");
        }
    }

    #[test]
    fn each_route_needs_its_scope() {
        let need = |method: Method, path: &str| Need::of(&method, path);
        assert_eq!(need(Method::GET, "/v1/connections/x"), Need::Read);
        assert_eq!(
            need(Method::POST, "/v1/buses/orders/events"),
            Need::Publish("orders".into())
        );
        assert_eq!(need(Method::POST, "/v1/test-pattern"), Need::Read);
        assert_eq!(need(Method::PUT, "/v1/connections/x"), Need::Admin);
        assert_eq!(need(Method::PUT, "/v1/buses/orders"), Need::Admin);
        assert_eq!(
            need(
                Method::POST,
                "/v1/buses/o/subscriptions/s/dead-letters/redrive"
            ),
            Need::Admin
        );
        assert_eq!(need(Method::DELETE, "/v1/replays/r"), Need::Admin);
    }
}
