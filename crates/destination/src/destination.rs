//! A destination as a subscription holds it: where deliveries go and how each request is shaped,
//! authenticated and signed. [`render`](fn@crate::render) renders an attempt straight from it.
//!
//! Owns the destination's JSON shape and defaults, which are also how the store keeps it
//! (subscriptions are stored as JSON): a field renamed or a default changed here changes every
//! stored subscription, so neither may change without a migration. The field types validate
//! themselves as they are parsed; [`Destination::validate`] checks what they cannot. The
//! connection is only named here: what a valid name is belongs to the model, which names every
//! resource, and what the connection holds is resolved by the caller into
//! [`crate::Credentials`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Format, HttpMethod, IdentityTokenSpec, validate_header_name};
use crate::error::ConfigError;
use crate::signing::SigningSpec;
use crate::template::{HeaderTemplate, UrlTemplate};
use crate::transform::Transform;

/// Five minutes: longer than any receiver that answers at all takes, short enough that a hung
/// one does not hold a lane's slot for long.
const MAX_TIMEOUT_MS: u64 = 300_000;

/// Where and how deliveries are sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// `https://api.example.com/orders/{$.detail.orderId}`: placeholders in the path and query
    /// are filled from the event, URL-encoded.
    pub url: UrlTemplate,
    /// The request's method; POST unless configured.
    #[serde(default)]
    pub method: HttpMethod,
    /// Sent with every attempt; values may use placeholders. `switchyard-*`, `webhook-*`, `host`
    /// and framing headers are ours to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderTemplate>,
    /// Milliseconds one attempt may take, from connecting until the answer's body is read: 1 to
    /// 300,000, default 5,000. An attempt that runs out counts as a timeout, which is retried.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The body's shape: `envelope` (default), `detail`, CloudEvents or Pub/Sub push.
    #[serde(default)]
    pub format: Format,
    /// An EventBridge input transformer, applied before the format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    /// Standard Webhooks signatures; the secrets are sealed before the subscription is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningSpec>,
    /// Sends `Authorization: Bearer <JWT>` signed by switchyard's key (published at
    /// `/.well-known/jwks.json`), as Pub/Sub push does with OIDC tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<IdentityTokenSpec>,
    /// The name of a connection: how to authenticate (basic, API key, OAuth client credentials)
    /// and extra headers and query parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

fn default_timeout_ms() -> u64 {
    5_000
}

/// Why [`Destination::validate`] refused a destination. The texts name fields as a subscription
/// writes them (`destination.timeout_ms`): a destination is only ever written there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// `timeout_ms` is 0 or more than five minutes.
    #[error("field \"destination.timeout_ms\" must be 1 to {max}", max = MAX_TIMEOUT_MS)]
    Timeout,
    /// The connection's name breaks the naming rule; the text is the rule's own message.
    #[error("field \"destination.connection\": {0}")]
    ConnectionName(String),
    /// A name in `headers` is not a valid header name, or one switchyard sets itself; the
    /// error's field is `destination.headers`.
    #[error(transparent)]
    Header(ConfigError),
}

impl Destination {
    /// Checks what the field types cannot, in this order: the timeout's range, the connection's
    /// name by `valid_name` (the caller's naming rule, see the module's doc), the header names.
    pub fn validate<E: std::fmt::Display>(
        &self,
        valid_name: impl FnOnce(&str) -> Result<(), E>,
    ) -> Result<(), DestinationError> {
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(DestinationError::Timeout);
        }
        if let Some(name) = &self.connection {
            valid_name(name).map_err(|e| DestinationError::ConnectionName(e.to_string()))?;
        }
        for name in self.headers.keys() {
            validate_header_name("headers", name)
                .map_err(|e| DestinationError::Header(e.under("destination")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Destination {
        serde_json::from_str(json).unwrap()
    }

    fn no_name_rule(_: &str) -> Result<(), &'static str> {
        Ok(())
    }

    #[test]
    fn omitted_fields_take_their_defaults_and_are_not_written_back() {
        let destination = parse(r#"{"url":"http://127.0.0.1:9/x"}"#);
        assert_eq!(destination.method, HttpMethod::Post);
        assert_eq!(destination.timeout_ms, 5_000);
        assert_eq!(destination.format, Format::Envelope);
        assert_eq!(
            serde_json::to_string(&destination).unwrap(),
            r#"{"url":"http://127.0.0.1:9/x","method":"POST","timeout_ms":5000,"format":"envelope"}"#
        );
    }

    #[test]
    fn validation_names_the_field_as_a_subscription_writes_it() {
        let slow = parse(r#"{"url":"http://h/","timeout_ms":0}"#);
        assert_eq!(
            slow.validate(no_name_rule).unwrap_err().to_string(),
            "field \"destination.timeout_ms\" must be 1 to 300000"
        );
        let reserved = parse(r#"{"url":"http://h/","headers":{"Host":"x"}}"#);
        assert_eq!(
            reserved.validate(no_name_rule).unwrap_err().to_string(),
            "field \"destination.headers\": \"Host\" is set by switchyard and cannot be configured"
        );
        let named = parse(r#"{"url":"http://h/","connection":"a/b","headers":{"Host":"x"}}"#);
        assert_eq!(
            named.validate(|_| Err("bad name")).unwrap_err().to_string(),
            "field \"destination.connection\": bad name"
        );
    }
}
