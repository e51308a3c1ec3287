//! Flow control of one lane: the rate limit (a token bucket) and the circuit breaker.
//!
//! Pure state machines over an explicit clock, so every transition is unit-tested without
//! sleeping. Must not: decide retries (that is [`crate::policy`]); a paused lane only waits.

use std::time::{Duration, Instant};

use switchyard_model::{AttemptClass, CircuitBreaker};

/// At most `per_s` attempts per second, with bursts up to one second's worth.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit {
    per_s: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimit {
    pub(crate) fn new(per_s: u32, now: Instant) -> RateLimit {
        RateLimit {
            per_s: f64::from(per_s.max(1)),
            tokens: 1.0,
            updated: now,
        }
    }

    pub(crate) fn per_s(&self) -> f64 {
        self.per_s
    }

    /// Takes a token, or says when the next one is due.
    pub(crate) fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_s).min(self.per_s.max(1.0));
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(now + Duration::from_secs_f64((1.0 - self.tokens) / self.per_s))
        }
    }
}

/// Where a subscription's circuit breaker stands; the numbers are those of the
/// `switchyard_subscription_circuit_state` gauge and of [`crate::LaneGauges::circuit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Attempts flow; failures in a row are counted.
    Closed = 0,
    /// Attempts are paused for the breaker's `open_ms`; deliveries wait without spending attempts.
    Open = 1,
    /// One probe attempt may go: its success closes the circuit, its failure opens it again.
    HalfOpen = 2,
}

impl CircuitState {
    /// The state's name in the subscription stats of the API (`circuit`).
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    /// The state a gauge number stands for; an unknown number reads as closed.
    pub fn from_u8(value: u8) -> CircuitState {
        match value {
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Circuit {
    config: CircuitBreaker,
    state: CircuitState,
    failures: u32,
    open_until: Instant,
    /// While half-open, whether the one probe attempt is under way.
    probing: bool,
}

/// Whether an attempt's class says the destination is failing (as opposed to answering, even
/// with a 4xx: a configuration error is not an outage).
fn is_failure(class: AttemptClass) -> bool {
    matches!(
        class,
        AttemptClass::Status5xx
            | AttemptClass::Status429
            | AttemptClass::Timeout
            | AttemptClass::Connection
    )
}

impl Circuit {
    pub(crate) fn new(config: CircuitBreaker, now: Instant) -> Circuit {
        Circuit {
            config,
            state: CircuitState::Closed,
            failures: 0,
            open_until: now,
            probing: false,
        }
    }

    pub(crate) fn configure(&mut self, config: CircuitBreaker) {
        self.config = config;
        if config.failure_threshold == 0 {
            self.state = CircuitState::Closed;
            self.failures = 0;
        }
    }

    pub(crate) fn state(&self) -> CircuitState {
        self.state
    }

    /// Ok when an attempt may start now; otherwise when to look again (`None`: when the probe
    /// in flight finishes).
    pub(crate) fn may_attempt(&mut self, now: Instant) -> Result<(), Option<Instant>> {
        match self.state {
            CircuitState::Closed => Ok(()),
            CircuitState::Open if now < self.open_until => Err(Some(self.open_until)),
            CircuitState::Open => {
                self.state = CircuitState::HalfOpen;
                self.probing = false;
                self.may_attempt(now)
            }
            CircuitState::HalfOpen if self.probing => Err(None),
            CircuitState::HalfOpen => Ok(()),
        }
    }

    /// An attempt started; while half-open it is the probe.
    pub(crate) fn started(&mut self) {
        if self.state == CircuitState::HalfOpen {
            self.probing = true;
        }
    }

    /// An attempt ended without a result (its task failed); a probe may start again.
    pub(crate) fn abandoned(&mut self) {
        self.probing = false;
    }

    /// An attempt finished with `class`; returns true when this opened the circuit.
    pub(crate) fn finished(&mut self, class: AttemptClass, now: Instant) -> bool {
        if self.config.failure_threshold == 0 || class == AttemptClass::Invalid {
            // Says nothing about the destination; a probe that ended so lets the next one go.
            self.probing = false;
            return false;
        }
        if !is_failure(class) {
            self.state = CircuitState::Closed;
            self.failures = 0;
            self.probing = false;
            return false;
        }
        self.failures = self.failures.saturating_add(1);
        let opens = match self.state {
            CircuitState::HalfOpen => true,
            CircuitState::Closed => self.failures >= self.config.failure_threshold,
            CircuitState::Open => false,
        };
        if opens {
            self.state = CircuitState::Open;
            self.open_until = now + Duration::from_millis(self.config.open_ms);
            self.probing = false;
        }
        opens
    }
}

#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "any instant will do: the time is passed in, never read"
)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_spaces_attempts() {
        let start = Instant::now();
        let mut rate = RateLimit::new(10, start);
        assert!(rate.try_take(start).is_ok());
        let next = rate.try_take(start).unwrap_err();
        assert_eq!(next - start, Duration::from_millis(100));
        assert!(rate.try_take(start + Duration::from_millis(100)).is_ok());
        // A long pause allows a burst of at most one second's worth.
        let later = start + Duration::from_secs(60);
        let burst = (0..20).take_while(|_| rate.try_take(later).is_ok()).count();
        assert_eq!(burst, 10);
    }

    #[test]
    fn the_circuit_opens_probes_and_closes() {
        let start = Instant::now();
        let mut circuit = Circuit::new(
            CircuitBreaker {
                failure_threshold: 3,
                open_ms: 1_000,
            },
            start,
        );
        assert!(!circuit.finished(AttemptClass::Status5xx, start));
        assert!(!circuit.finished(AttemptClass::Timeout, start));
        assert!(
            circuit.finished(AttemptClass::Connection, start),
            "the third failure in a row opens it"
        );
        assert_eq!(
            circuit.may_attempt(start),
            Err(Some(start + Duration::from_secs(1)))
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(circuit.may_attempt(later), Ok(()));
        assert_eq!(circuit.state(), CircuitState::HalfOpen);
        circuit.started();
        assert_eq!(circuit.may_attempt(later), Err(None), "one probe at a time");
        assert!(
            circuit.finished(AttemptClass::Status5xx, later),
            "a failed probe opens it again"
        );
        let much_later = later + Duration::from_secs(1);
        assert_eq!(circuit.may_attempt(much_later), Ok(()));
        circuit.started();
        assert!(!circuit.finished(AttemptClass::Status2xx, much_later));
        assert_eq!(circuit.state(), CircuitState::Closed);
    }

    #[test]
    fn a_probe_that_says_nothing_about_the_destination_does_not_stall_the_circuit() {
        let start = Instant::now();
        let mut circuit = Circuit::new(
            CircuitBreaker {
                failure_threshold: 1,
                open_ms: 10,
            },
            start,
        );
        circuit.finished(AttemptClass::Status5xx, start);
        let later = start + Duration::from_millis(10);
        assert_eq!(circuit.may_attempt(later), Ok(()));
        circuit.started();
        circuit.finished(AttemptClass::Invalid, later);
        assert_eq!(
            circuit.may_attempt(later),
            Ok(()),
            "the next probe may start"
        );
        circuit.started();
        circuit.abandoned();
        assert_eq!(circuit.may_attempt(later), Ok(()));
    }

    #[test]
    fn answers_and_a_disabled_breaker_keep_it_closed() {
        let start = Instant::now();
        let mut circuit = Circuit::new(
            CircuitBreaker {
                failure_threshold: 2,
                open_ms: 1_000,
            },
            start,
        );
        circuit.finished(AttemptClass::Status5xx, start);
        circuit.finished(AttemptClass::Status4xx, start);
        circuit.finished(AttemptClass::Status5xx, start);
        assert_eq!(
            circuit.state(),
            CircuitState::Closed,
            "a 4xx answer resets the count"
        );
        let mut disabled = Circuit::new(
            CircuitBreaker {
                failure_threshold: 0,
                open_ms: 1_000,
            },
            start,
        );
        for _ in 0..100 {
            assert!(!disabled.finished(AttemptClass::Status5xx, start));
        }
        assert_eq!(disabled.may_attempt(start), Ok(()));
    }
}
