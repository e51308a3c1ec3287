//! Rendering one delivery attempt for a destination: what switchyard sends, byte for byte.
//!
//! This crate owns [`Destination`], a subscription's destination as it is written and stored,
//! and the settings that shape its requests, with their validation: [`Format`] (envelope,
//! detail, CloudEvents binary/structured, Pub/Sub push wrapped/unwrapped), [`UrlTemplate`] and
//! [`HeaderTemplate`] (`{$.detail.orderId}` placeholders), [`Transform`] (EventBridge's input
//! transformer), [`HttpMethod`], [`SigningSpec`] (Standard Webhooks), [`IdentityTokenSpec`] (a
//! JWT signed by switchyard, verifiable through [`Jwks`]), and [`ConnectionSpec`] (basic, API
//! key or OAuth 2.0 client-credentials auth, extra headers and query parameters). [`render`]
//! turns an event envelope, a destination and resolved [`Credentials`] into a
//! [`RenderedRequest`]. [`standard_webhooks`] is the Standard Webhooks scheme for both
//! directions: it signs here and verifies received webhooks in `switchyard-sources`.
//!
//! It must not do I/O or depend on an async runtime, an HTTP client, the store or the server:
//! rendering is a pure function of its inputs (time included, which the caller passes), so every
//! byte on the wire is unit-tested here. The two exceptions are explicit and live at the edge:
//! `resolve`/`token_request` methods open sealed secrets and read `file:` references through
//! `switchyard-secrets`, and signing draws randomness for ECDSA.
//!
//! Invariants:
//! - a configuration value that deserialised is valid (types validate in `try_from`), except
//!   for what [`Destination::validate`] checks, and every refusal names its field;
//! - omitted settings keep switchyard's earlier behaviour: the envelope, as JSON, by POST;
//! - no `Debug`, `Display`, `Serialize` or error of this crate contains a secret's value;
//! - a URL placeholder can change the path and query of a request, never its scheme or host.

pub mod cloudevents;
pub use cloudevents::media_type_essence;
mod config;
mod connection;
mod destination;
mod error;
mod json_path;
mod jwt;
pub mod oauth2;
mod render;
mod signing;
pub mod standard_webhooks;
mod template;
mod transform;

pub use config::{
    Format, HttpMethod, IdentityTokenSpec, validate_header_name, validate_header_token,
};
pub use connection::{
    ClientCertificate, ConnectionAuth, ConnectionSpec, ParamValue, ResolvedConnection,
    parse_connection_spec,
};
pub use destination::{Destination, DestinationError};
pub use error::{ConfigError, RenderError, ResolveError, parse_json};
pub use jwt::{Claims, IdentityKey, Jwks, JwtError};
pub use render::{
    Attempt, Credentials, Header, Identity, PubsubMessage, RenderedRequest, pubsub_message, render,
};
pub use signing::{SigningScheme, SigningSpec, SigningSpecFields};
pub use template::{HeaderTemplate, UrlTemplate};
pub use transform::{Transform, TransformSpec};
