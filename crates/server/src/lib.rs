//! The server: the REST API under `/v1`, webhook sources under `/hooks`, health, metrics, and the
//! publish path.
//!
//! Owns the `catalog` (buses with their compiled matchers, kept in memory for the hot path),
//! the `publish` path shared by the API and `sources`, the HTTP routes, API authentication,
//! the master key's use for sealing secrets, the `schedule` that fires scheduled rules and
//! subscriptions, the declarative `config` file, the loop guard's
//! forward budget, and the [`lint`] that finds delivery loops before they run. It borrows the
//! store and the dispatcher: a publish is validated and matched here, made durable by the store,
//! and only then answered and handed to the dispatcher. Changes (buses, subscriptions, sources,
//! connections) go to the store first and then to memory, on a task of their own so that a client
//! hanging up cannot leave one half applied.
//!
//! Must not: answer a publisher before the store has committed, or hold a lock across an
//! `.await` on the publish path.
//!
//! As in mini-redis, [`run`] takes a bound listener, and [`App::start`] a shutdown token and a
//! task tracker, so the binary controls all three; for HTTPS, the listener is a
//! [`tls::TlsListener`] around the TCP one.
//!
//! The public surface is what the binary needs, re-exported here; everything else is
//! `pub(crate)`, so that the compiler reports what nothing uses.

mod api;
mod app;
mod auth;
mod catalog;
mod cluster;
mod config;
mod console;
mod cpu;
mod dead_letter_bus;
mod error;
mod eventbridge;
mod forwards;
mod http;
pub mod lint;
mod ops;
mod publish;
pub mod pubsub;
mod replay;
mod schedule;
mod sources;
mod stats;
pub mod tls;

pub use app::{ApiConfig, App, run};
pub use auth::{ApiTokens, MIN_TOKEN_LEN};
pub use config::{ConfigFile, DeclaredBus, ServerSettings};
pub use error::ServerError;
pub use http::HttpLimits;
pub use schedule::MIN_SCHEDULE_MINUTE_MS;
