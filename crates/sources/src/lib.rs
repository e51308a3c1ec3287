//! Sources: inbound webhook endpoints that verify their senders and turn each request into an
//! event, as pure functions.
//!
//! This crate owns a source's configuration ([`SourceSpec`], the body of
//! `PUT /v1/sources/{name}` and the config file's `[sources.NAME]`), the verification presets
//! (`slack`, `github`, `stripe`, `standard-webhooks`, `hmac`, `basic`, `api_key`) and the network
//! allow-list, and the decision for one received request ([`Source::receive`]): refuse it (with
//! a status and a reason code), answer a handshake, or publish an event and answer the sender.
//!
//! It must not do I/O: no sockets, files, clocks, stores or async runtimes. The caller passes
//! the request, the peer address and the time, publishes the event, and answers only once the
//! event is durable.
//!
//! Invariants:
//! - A secret never leaves through `Debug`, `Serialize`, an error or a refusal message; only
//!   [`Secret::expose`] gives its text.
//! - Every signature and credential comparison runs in constant time.
//! - Nothing of a request's body is parsed before its sender is verified.
//! - [`Outcome::Publish`]'s `detail` is always a JSON object, as text.

mod body;
mod error;
mod receive;
mod spec;
mod verify;

pub use error::SourceError;
pub use receive::{Answer, EventFields, Outcome, Reason, Refusal, Source, Webhook};
pub use spec::{
    ApiKeyVerify, BasicVerify, DEFAULT_TOLERANCE_S, EventSpec, GithubVerify, HmacAlgorithm,
    HmacVerify, ResponseSpec, SignatureEncoding, SlackVerify, SourceSpec, StandardWebhooksVerify,
    StripeVerify, VerifySpec, parse_source_spec,
};
pub use switchyard_secrets::Secret;
