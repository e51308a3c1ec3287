//! The vocabulary of switchyard as data: events, buses and subscriptions (and the schedules that
//! make scheduled ones tick, [`Schedule`]), with the rules that make them valid.
//!
//! Everything that enters switchyard (a REST body, the declarative config file, a stored record)
//! is turned into these types through the constructors and `validate` functions here, so the API,
//! the config file and the store agree on every field and every default. This crate does no I/O
//! and knows nothing of HTTP servers, stores or async runtimes.
//!
//! A subscription's [`Destination`] is `switchyard-destination`'s type, re-exported here: that
//! crate renders requests from it, so it owns its shape and the checks of its fields.
//!
//! Invariant: a value of [`SubscriptionSpec`] or [`Event`] that left this crate through a
//! successful validation is well formed; later layers do not re-check it.

mod activity;
mod archive;
mod cloudevents;
mod error;
mod event;
mod filter;
mod name;
mod network;
mod outcome;
mod schedule;
mod subscription;
mod time;
mod trace;

pub use activity::Activity;
pub use archive::{
    ArchiveSpec, ReplaySpec, parse_archive_spec, parse_replay_spec, replayed_envelope,
};
pub use cloudevents::{CloudEventsBody, cloudevents_headers, parse_cloudevents};
pub use error::{ModelError, error_chain};
pub use event::{
    AwsIdentity, DEFAULT_BUS, Event, PUBSUB_MESSAGE_TYPE, PublishContext, PublishRequest,
    parse_publish_request, pubsub_message_event, scheduled_event,
};
pub use filter::{MAX_FILTER_BYTES, filter_to_pattern};
pub use name::{MAX_DESCRIPTION_BYTES, validate_description, validate_name};
pub use network::{Network, embedded_ipv4};
pub use outcome::{AttemptClass, AttemptOutcome, DeadReason};
pub use schedule::Schedule;
pub use subscription::{
    BusSpec, CircuitBreaker, DeliveryMode, Destination, EventBridgeLink, HttpMethod,
    MAX_ACK_DEADLINE_S, RetryPolicy, SubscriptionSpec, parse_bus_spec, parse_subscription_spec,
};
pub use time::{format_rfc3339_ms, now, now_ms, parse_rfc3339_ms};
pub use trace::TraceContext;
