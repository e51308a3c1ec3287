//! The lanes' time: one seam through which a lane and its attempts read the clock.
//!
//! A lane needs two readings of the same moment: Unix milliseconds, because due times and
//! ingestion times are stored and compared in them (across nodes, for a shared store), and a
//! monotonic instant for the flow control ([`crate::flow`]) and the lane's timers. Must not: be
//! bypassed by the lane, its queue or its runner (`now_ms()`, `Instant::now()`), or a test that
//! drives the lane's time would see two clocks disagree. The HTTP send behind the production
//! `Transport` (`attempt`, `connections`) reads wall time itself, for what leaves the node
//! (signature timestamps, token lifetimes, an HTTP-date `Retry-After`); the lane's tests replace
//! that send.
//!
//! Invariant: the instant comes from tokio's clock, so that under paused time (tests) the
//! timers a lane sleeps on and the instants it compares agree.

use std::time::Instant;

/// One reading of the clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Unix milliseconds, as the store keeps times.
    pub(crate) ms: u64,
    /// The same moment on the monotonic clock.
    pub(crate) at: Instant,
}

/// Where a lane and its attempts read the time.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Now;
}

/// The clock of production: wall time for the store's times, tokio's monotonic clock for timers.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Now {
        Now {
            ms: switchyard_model::now_ms(),
            at: tokio::time::Instant::now().into_std(),
        }
    }
}
