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
//! # A consumer of the pull subscriptions of bus orders (pull:BUS, or pull for every bus).
//! # scopes = ["pull:orders"]
//! # Optional, both or neither: an AWS key pair for the EventBridge door, whose SigV4-signed
//! # requests then have this token's scopes.
//! aws_access_key_id = "AKIASHOP0000000000"
//! aws_secret_access_key = "a-long-random-secret-key"
//! ```
//!
//! A file that is not in this form is the older one: one token per line, each meaning `admin`
//! (the server warns at start that it should be rewritten).
//!
//! Owns parsing the file, matching a presented bearer token (in constant time) or a console
//! session cookie ([`ApiTokens::open_session`], [`ApiTokens::by_session`]), finding the
//! token of an AWS access key id ([`ApiTokens::by_access_key`]; the signature itself is checked
//! by `eventbridge::sigv4`), and deciding the scope a request needs ([`Need::of`],
//! [`Need::of_eventbridge`]). Must not: log or answer a token's value or an AWS secret key;
//! errors name tokens by their name or line only.
//!
//! Invariant: every `/v1` route and every EventBridge operation needs a scope (a forward into
//! a bus may show switchyard's own identity token instead: `api::forwarded_into`); only `admin`
//! changes configuration (connections, sources and signing secrets included) or takes a backup;
//! `read` never sees a secret (no answer holds one). An access key id belongs to one token at
//! most; an AWS secret key is held to the same length rule as a token ([`ApiTokens::short`]).

use std::collections::BTreeMap;
use std::fmt;

use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use switchyard_secrets::{Secret, constant_time_eq};

/// Shorter tokens are refused on a listener other people can reach: they can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// The cookie a console session lives in.
pub(crate) const SESSION_COOKIE: &str = "switchyard_session";
/// How long a console session lasts, in seconds: a working day, then the token is asked again.
pub(crate) const SESSION_S: u64 = 12 * 3600;

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Everything.
    Admin,
    /// Publishing: to every bus (`None`) or to the one named.
    Publish(Option<String>),
    /// Consuming pull subscriptions (pull, acknowledge, modify ack deadlines): of every bus
    /// (`None`) or of the one named.
    Pull(Option<String>),
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
            "pull" => Ok(Scope::Pull(None)),
            other => {
                let bus = |bus: &str| {
                    switchyard_model::validate_name("bus", bus)
                        .map(|()| Some(bus.to_string()))
                        .map_err(|e| e.to_string())
                };
                if let Some(name) = other.strip_prefix("publish:") {
                    Ok(Scope::Publish(bus(name)?))
                } else if let Some(name) = other.strip_prefix("pull:") {
                    Ok(Scope::Pull(bus(name)?))
                } else {
                    Err(format!(
                        "unknown scope {other:?}: use admin, publish, publish:BUS, pull, pull:BUS, read or metrics"
                    ))
                }
            }
        }
    }

    fn grants(&self, need: &Need) -> bool {
        match (self, need) {
            (Scope::Admin, _) => true,
            (Scope::Publish(None), Need::Publish(_)) => true,
            (Scope::Publish(Some(allowed)), Need::Publish(bus)) => allowed == bus,
            (Scope::Pull(None), Need::Pull(_)) => true,
            (Scope::Pull(Some(allowed)), Need::Pull(bus)) => allowed == bus,
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
            Scope::Pull(None) => f.write_str("pull"),
            Scope::Pull(Some(bus)) => write!(f, "pull:{bus}"),
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
    Pull(String),
    Read,
    Metrics,
}

impl Need {
    /// The scope a `/v1` request needs, from its method and path.
    pub(crate) fn of(method: &Method, path: &str) -> Need {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        // A copy of the whole store holds every event and sealed secret: no read.
        if segments == ["v1", "backup"] {
            return Need::Admin;
        }
        if *method == Method::GET || *method == Method::HEAD {
            return Need::Read;
        }
        match segments.as_slice() {
            ["v1", "buses", bus, "events"] if *method == Method::POST => {
                Need::Publish((*bus).to_string())
            }
            ["v1", "test-pattern"] if *method == Method::POST => Need::Read,
            [
                "v1",
                "buses",
                bus,
                "subscriptions",
                _,
                "pull" | "ack" | "modify-ack-deadline",
            ] if *method == Method::POST => Need::Pull((*bus).to_string()),
            _ => Need::Admin,
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Admin => f.write_str("admin"),
            Need::Publish(bus) => write!(f, "publish (or publish:{bus})"),
            Need::Pull(bus) => write!(f, "pull (or pull:{bus})"),
            Need::Read => f.write_str("read"),
            Need::Metrics => f.write_str("metrics"),
        }
    }
}

impl Need {
    /// The scopes an EventBridge operation (`X-Amz-Target: AWSEvents.<operation>`) needs, all of
    /// them: `Describe*`, `List*` and `TestEventPattern` read; `PutEvents` publishes to each of
    /// `buses` (the buses its entries name, `default` filled in for an entry naming none, ARNs
    /// resolved to names); everything else, unknown names included, is `admin`. Never empty: a
    /// `PutEvents` naming no bus needs publishing to `default`, so that no request is allowed
    /// for lack of a need.
    pub(crate) fn of_eventbridge(operation: &str, buses: &[String]) -> Vec<Need> {
        if operation == "PutEvents" {
            let mut buses: Vec<&str> = buses.iter().map(String::as_str).collect();
            buses.sort_unstable();
            buses.dedup();
            if buses.is_empty() {
                buses.push("default");
            }
            return buses
                .into_iter()
                .map(|bus| Need::Publish(bus.to_string()))
                .collect();
        }
        let reads = operation.starts_with("Describe")
            || operation.starts_with("List")
            || operation == "TestEventPattern";
        vec![if reads { Need::Read } else { Need::Admin }]
    }
}

/// An AWS access key pair that signs as a token (SigV4, the EventBridge door).
#[derive(Debug, Clone)]
struct AwsKey {
    access_key_id: String,
    secret: Secret,
}

/// One configured token.
#[derive(Debug, Clone)]
pub(crate) struct ApiToken {
    /// Shown in errors and logs instead of the value.
    pub(crate) name: String,
    value: Secret,
    pub(crate) scopes: Vec<Scope>,
    aws: Option<AwsKey>,
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
    aws_access_key_id: Option<String>,
    aws_secret_access_key: Option<Secret>,
}

impl TokenEntry {
    /// The entry's AWS key pair: both fields or neither.
    fn aws_key(&mut self, name: &str) -> Result<Option<AwsKey>, String> {
        match (
            self.aws_access_key_id.take(),
            self.aws_secret_access_key.take(),
        ) {
            (None, None) => Ok(None),
            (Some(access_key_id), Some(secret)) => {
                // It goes into `Credential=ID/DATE/…`: AWS's key ids are word characters.
                let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
                if access_key_id.is_empty() || !access_key_id.chars().all(word) {
                    return Err(format!(
                        "token {name:?}: aws_access_key_id must be letters, digits and '_' only"
                    ));
                }
                if secret.expose().trim().is_empty() {
                    return Err(format!("token {name:?}: aws_secret_access_key is empty"));
                }
                Ok(Some(AwsKey {
                    access_key_id,
                    secret,
                }))
            }
            _ => Err(format!(
                "token {name:?}: aws_access_key_id and aws_secret_access_key go together: give both or neither"
            )),
        }
    }
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
                .map(|(name, mut entry)| {
                    let aws = entry.aws_key(&name)?;
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
                        aws,
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
                    aws: None,
                })
                .collect()
        };
        if tokens.is_empty() {
            return Err("holds no API token".into());
        }
        if let Some(empty) = tokens.iter().find(|t| t.value.expose().trim().is_empty()) {
            return Err(format!("token {:?} is empty", empty.name));
        }
        let mut keys: Vec<(&str, &str)> = tokens
            .iter()
            .filter_map(|t| Some((t.aws.as_ref()?.access_key_id.as_str(), t.name.as_str())))
            .collect();
        keys.sort_unstable();
        if let Some(pair) = keys.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(format!(
                "tokens {:?} and {:?} have the same aws_access_key_id: give each its own key pair",
                pair[0].1, pair[1].1
            ));
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

    /// The names of tokens too short to be safe on a network listener: the token itself, or
    /// its AWS secret key (then named `NAME (aws_secret_access_key)`).
    pub fn short(&self) -> Vec<String> {
        let short = |secret: &Secret| secret.expose().chars().count() < MIN_TOKEN_LEN;
        let mut names = Vec::new();
        for token in &self.tokens {
            if short(&token.value) {
                names.push(token.name.clone());
            }
            if token.aws.as_ref().is_some_and(|key| short(&key.secret)) {
                names.push(format!("{} (aws_secret_access_key)", token.name));
            }
        }
        names
    }

    /// The token an AWS access key id belongs to, and the key's secret, for checking the
    /// request's signature (`eventbridge::sigv4::verify` takes this as its lookup). Key ids are
    /// not secret, so they are compared plainly.
    pub(crate) fn by_access_key(&self, access_key_id: &str) -> Option<(&ApiToken, &Secret)> {
        self.tokens.iter().find_map(|token| {
            let key = token.aws.as_ref()?;
            (key.access_key_id == access_key_id).then_some((token, &key.secret))
        })
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

impl ApiTokens {
    /// A console session for `token`, valid until `now_s + SESSION_S`:
    /// `NAME.EXPIRY.MAC`, the name in base64url and MAC an HMAC-SHA256 of name and expiry keyed
    /// with the token's value. Stateless, so every node with the same tokens file accepts it;
    /// it ends when it expires or when the token's value changes, and it does not hold the
    /// token, so a stolen cookie is not a stolen token.
    pub(crate) fn open_session(&self, token: &ApiToken, now_s: u64) -> String {
        let name = URL_SAFE_NO_PAD.encode(&token.name);
        let expiry = now_s + SESSION_S;
        let mac = session_mac(token, &name, expiry);
        format!("{name}.{expiry}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    }

    /// The token of a console session cookie's value, if the session is one of this server's
    /// tokens' and has not expired.
    pub(crate) fn by_session(&self, session: &str, now_s: u64) -> Option<&ApiToken> {
        let mut parts = session.split('.');
        let (name, expiry, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let expiry: u64 = expiry.parse().ok()?;
        if expiry <= now_s {
            return None;
        }
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(name).ok()?).ok()?;
        let token = self.tokens.iter().find(|t| t.name == decoded)?;
        let presented = URL_SAFE_NO_PAD.decode(mac).ok()?;
        constant_time_eq(session_mac(token, name, expiry).as_ref(), &presented).then_some(token)
    }
}

fn session_mac(token: &ApiToken, name: &str, expiry: u64) -> ring::hmac::Tag {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.value.expose().as_bytes());
    ring::hmac::sign(
        &key,
        format!("switchyard-console-session.{name}.{expiry}").as_bytes(),
    )
}

/// The credentials of `Bearer <token>`, the scheme in any case.
pub(crate) fn bearer(header: &str) -> Option<&str> {
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

[tokens.worker]
token = "worker-token-0123456789"
scopes = ["pull:orders"]
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
        let worker = tokens.find(Some("Bearer worker-token-0123456789")).unwrap();
        assert!(worker.allows(&Need::Pull("orders".into())));
        assert!(!worker.allows(&Need::Pull("payments".into())));
        assert!(!worker.allows(&Need::Publish("orders".into())) && !worker.allows(&Need::Read));
        assert!(!shop.allows(&Need::Pull("orders".into())));
        let pull = Need::of(&Method::POST, "/v1/buses/orders/subscriptions/jobs/ack");
        assert_eq!(pull, Need::Pull("orders".into()));
        let deadline = "/v1/buses/orders/subscriptions/jobs/modify-ack-deadline";
        assert_eq!(
            Need::of(&Method::POST, deadline),
            Need::Pull("orders".into())
        );
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

    const AWS_FILE: &str = r#"
[tokens.deployer]
token = "admin-token-0123456789"
scopes = ["admin"]

[tokens.shop]
token = "shop-token-0123456789"
scopes = ["publish:orders", "read"]
aws_access_key_id = "AKIASHOP0000000000"
aws_secret_access_key = "shop-aws-secret-0123456789"

[tokens.ci]
token = "ci-token-0123456789ab"
scopes = ["read"]
aws_access_key_id = "AKIACI000000000000"
aws_secret_access_key = "short"
"#;

    #[test]
    fn an_access_key_finds_its_token_and_secret() {
        let tokens = ApiTokens::parse(AWS_FILE).unwrap();
        let (shop, secret) = tokens.by_access_key("AKIASHOP0000000000").unwrap();
        assert_eq!(shop.name, "shop");
        assert_eq!(secret.expose(), "shop-aws-secret-0123456789");
        assert!(shop.allows(&Need::Publish("orders".into())));
        assert!(tokens.by_access_key("AKIAUNKNOWN0000000").is_none());
        assert!(tokens.by_access_key("").is_none());
        // A token without a key pair is not found by any id; its bearer token still works.
        assert!(tokens.find(Some("Bearer admin-token-0123456789")).is_some());
        // The AWS secret is held to the token length rule, and named as such.
        assert_eq!(tokens.short(), vec!["ci (aws_secret_access_key)"]);
    }

    #[test]
    fn access_keys_come_in_pairs_and_belong_to_one_token() {
        let entry = |name: &str, extra: &str| {
            format!(
                "[tokens.{name}]\ntoken = \"secret-value-{name}-123456\"\nscopes = [\"read\"]\n{extra}\n"
            )
        };
        for (text, expected) in [
            (
                entry("a", "aws_access_key_id = \"AKIAA0000000000000\""),
                "token \"a\": aws_access_key_id and aws_secret_access_key go together",
            ),
            (
                entry("a", "aws_secret_access_key = \"secret-value-aws-0123456\""),
                "token \"a\": aws_access_key_id and aws_secret_access_key go together",
            ),
            (
                entry(
                    "a",
                    "aws_access_key_id = \"AKIA/A\"\naws_secret_access_key = \"secret-value-aws-0123456\"",
                ),
                "letters, digits",
            ),
            (
                entry(
                    "a",
                    "aws_access_key_id = \"AKIAA0000000000000\"\naws_secret_access_key = \" \"",
                ),
                "aws_secret_access_key is empty",
            ),
            (
                entry(
                    "a",
                    "aws_access_key_id = \"AKIASAME0000000000\"\naws_secret_access_key = \"secret-value-aws-0123456\"",
                ) + &entry(
                    "b",
                    "aws_access_key_id = \"AKIASAME0000000000\"\naws_secret_access_key = \"secret-value-aws-6543210\"",
                ),
                "tokens \"a\" and \"b\" have the same aws_access_key_id",
            ),
        ] {
            let error = ApiTokens::parse(&text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains("secret-value"), "{error}");
            assert!(!error.contains("AKIA"), "{error}");
        }
    }

    #[test]
    fn each_eventbridge_operation_needs_its_scope() {
        let need = |operation: &str, buses: &[&str]| {
            let buses: Vec<String> = buses.iter().map(|b| b.to_string()).collect();
            Need::of_eventbridge(operation, &buses)
        };
        for read in [
            "DescribeRule",
            "DescribeEventBus",
            "ListRules",
            "ListTargetsByRule",
            "ListTagsForResource",
            "TestEventPattern",
        ] {
            assert_eq!(need(read, &[]), vec![Need::Read], "{read}");
        }
        for admin in [
            "PutRule",
            "PutTargets",
            "DeleteRule",
            "CreateConnection",
            "StartReplay",
            "TagResource",
            "NoSuchOperation",
            "",
        ] {
            assert_eq!(need(admin, &["orders"]), vec![Need::Admin], "{admin}");
        }
        assert_eq!(
            need("PutEvents", &["payments", "orders", "payments"]),
            vec![
                Need::Publish("orders".into()),
                Need::Publish("payments".into())
            ]
        );
        assert_eq!(
            need("PutEvents", &[]),
            vec![Need::Publish("default".into())]
        );
        // A publish:orders token may put events to orders only, and read.
        let tokens = ApiTokens::parse(AWS_FILE).unwrap();
        let (shop, _) = tokens.by_access_key("AKIASHOP0000000000").unwrap();
        let allowed = |needs: Vec<Need>| needs.iter().all(|n| shop.allows(n));
        assert!(allowed(need("PutEvents", &["orders"])));
        assert!(!allowed(need("PutEvents", &["orders", "payments"])));
        assert!(allowed(need("ListRules", &[])));
        assert!(!allowed(need("PutRule", &[])));
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
        assert_eq!(need(Method::GET, "/v1/backup"), Need::Admin);
    }

    #[test]
    fn a_console_session_is_its_tokens_until_it_expires_or_the_token_changes() {
        let tokens = ApiTokens::parse(FILE).unwrap();
        let shop = tokens.find(Some("Bearer shop-token-0123456789")).unwrap();
        let session = tokens.open_session(shop, 1_000);
        assert!(
            !session.contains("shop-token"),
            "the cookie must not hold the token"
        );
        assert_eq!(tokens.by_session(&session, 1_001).unwrap().name, "shop");
        assert!(tokens.by_session(&session, 1_000 + SESSION_S).is_none());
        let (name, rest) = session.split_once('.').unwrap();
        let (expiry, mac) = rest.split_once('.').unwrap();
        let admin = URL_SAFE_NO_PAD.encode("deployer");
        for forged in [
            format!("{admin}.{expiry}.{mac}"),
            format!("{name}.{}.{mac}", expiry.parse::<u64>().unwrap() + 1),
            format!("{name}.{expiry}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            format!("{name}.{expiry}"),
            format!("{session}.x"),
            String::new(),
        ] {
            assert!(tokens.by_session(&forged, 1_001).is_none(), "{forged}");
        }
        let rotated =
            ApiTokens::parse(&FILE.replace("shop-token-0123456789", "shop-token-rotated-01"))
                .unwrap();
        assert!(rotated.by_session(&session, 1_001).is_none());
    }
}
