//! The retry decision: from one attempt's result to delivered, retry at T, or dead letter; and
//! for a pulled delivery leased again, whether it may go out once more.
//!
//! Pure and deterministic given the random source, so that every rule of DESIGN.md's delivery
//! semantics is unit-tested here rather than through timing. Must not: read the clock (the time
//! is passed in), touch the store, or wait longer than the subscription's maximum backoff (a
//! receiver's `Retry-After` is capped there).

use switchyard_model::RetryPolicy;
use switchyard_store::{DeadReason, OutcomeKind};

use crate::DeliveryError;

/// Exponential backoff with full jitter: after the n-th failed attempt, a delay drawn uniformly
/// between `min_backoff_ms` and `min(max_backoff_ms, min_backoff_ms * 2^(n-1))`.
pub(crate) fn backoff_ms(
    policy: &RetryPolicy,
    failed_attempts: u32,
    random: &mut impl FnMut(u64, u64) -> u64,
) -> u64 {
    let exponent = failed_attempts.saturating_sub(1).min(63);
    let ceiling = policy
        .min_backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(policy.max_backoff_ms)
        .max(policy.min_backoff_ms);
    random(policy.min_backoff_ms, ceiling)
}

/// Decides what becomes of a delivery after an attempt. `attempts` counts this attempt.
pub(crate) fn decide(
    result: &Result<u16, DeliveryError>,
    policy: &RetryPolicy,
    attempts: u32,
    pending_since_ms: u64,
    now_ms: u64,
    random: &mut impl FnMut(u64, u64) -> u64,
) -> OutcomeKind {
    let error = match result {
        Ok(_) => return OutcomeKind::Delivered,
        Err(error) => error,
    };
    if !error.is_retryable(&policy.retryable_statuses) {
        let reason = match error.kind {
            crate::ErrorKind::InvalidDestination => DeadReason::InvalidDestination,
            crate::ErrorKind::UnsupportedTarget => DeadReason::UnsupportedTarget,
            _ => DeadReason::NonRetryableStatus,
        };
        return OutcomeKind::Dead { reason };
    }
    if attempts >= policy.max_attempts {
        return OutcomeKind::Dead {
            reason: DeadReason::MaxAttempts,
        };
    }
    let mut delay = backoff_ms(policy, attempts, random);
    // Retry-After is the receiver asking for at least that long; the subscription's maximum
    // backoff still bounds it, so a receiver cannot park a delivery for days.
    if let Some(asked) = error.retry_after_ms() {
        delay = delay.max(asked.min(policy.max_backoff_ms));
    }
    let due_ms = now_ms.saturating_add(delay);
    if due_ms > retry_deadline_ms(policy, pending_since_ms) {
        return OutcomeKind::Dead {
            reason: DeadReason::MaxAge,
        };
    }
    OutcomeKind::Retry { due_ms }
}

/// When retrying ends: `max_age_s` after the delivery became pending.
fn retry_deadline_ms(policy: &RetryPolicy, pending_since_ms: u64) -> u64 {
    pending_since_ms.saturating_add(policy.max_age_s.saturating_mul(1000))
}

/// Whether the retry rules give up on a pulled delivery that was just leased again, and why:
/// `attempts` counts that new lease, so more than `max_attempts` means every allowed lease went
/// unacknowledged; a first lease is never too old.
pub(crate) fn lease_given_up(
    policy: &RetryPolicy,
    attempts: u32,
    pending_since_ms: u64,
    now_ms: u64,
) -> Option<DeadReason> {
    if attempts > policy.max_attempts {
        return Some(DeadReason::MaxAttempts);
    }
    (attempts > 1 && now_ms > retry_deadline_ms(policy, pending_since_ms))
        .then_some(DeadReason::MaxAge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            min_backoff_ms: 100,
            max_backoff_ms: 1_000,
            max_attempts: 5,
            max_age_s: 60,
            ..RetryPolicy::default()
        }
    }

    fn status(status: u16, retry_after_ms: Option<u64>) -> Result<u16, DeliveryError> {
        Err(DeliveryError {
            kind: ErrorKind::Status {
                status,
                retry_after_ms,
            },
            message: String::new(),
        })
    }

    fn highest(_: u64, hi: u64) -> u64 {
        hi
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_never_below_the_minimum() {
        let p = policy();
        let ceilings: Vec<u64> = (1..=6).map(|n| backoff_ms(&p, n, &mut highest)).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff_ms(&p, 4, &mut |lo, _| lo), 100);
        assert_eq!(backoff_ms(&p, u32::MAX, &mut highest), 1_000);
    }

    #[test]
    fn success_delivers_and_4xx_dead_letters_at_once() {
        let p = policy();
        assert_eq!(
            decide(&Ok(204), &p, 1, 0, 0, &mut highest),
            OutcomeKind::Delivered
        );
        assert_eq!(
            decide(&status(400, None), &p, 1, 0, 0, &mut highest),
            OutcomeKind::Dead {
                reason: DeadReason::NonRetryableStatus
            }
        );
    }

    #[test]
    fn retries_until_max_attempts() {
        let p = policy();
        assert_eq!(
            decide(&status(503, None), &p, 4, 0, 0, &mut highest),
            OutcomeKind::Retry { due_ms: 800 }
        );
        assert_eq!(
            decide(&status(503, None), &p, 5, 0, 0, &mut highest),
            OutcomeKind::Dead {
                reason: DeadReason::MaxAttempts
            }
        );
    }

    #[test]
    fn retry_after_is_honoured_within_max_backoff() {
        let p = policy();
        assert_eq!(
            decide(&status(429, Some(700)), &p, 1, 0, 0, &mut highest),
            OutcomeKind::Retry { due_ms: 700 }
        );
        assert_eq!(
            decide(&status(503, Some(5_000)), &p, 1, 0, 0, &mut highest),
            OutcomeKind::Retry { due_ms: 1_000 }
        );
    }

    #[test]
    fn a_retry_past_max_age_is_a_dead_letter() {
        let p = policy();
        assert_eq!(
            decide(&status(503, None), &p, 1, 0, 59_950, &mut highest),
            OutcomeKind::Dead {
                reason: DeadReason::MaxAge
            }
        );
    }

    #[test]
    fn a_lease_beyond_max_attempts_or_max_age_is_given_up() {
        let policy = policy();
        assert_eq!(lease_given_up(&policy, 5, 0, 1_000), None);
        assert_eq!(
            lease_given_up(&policy, 6, 0, 1_000),
            Some(DeadReason::MaxAttempts)
        );
        assert_eq!(lease_given_up(&policy, 2, 0, 60_000), None);
        assert_eq!(
            lease_given_up(&policy, 2, 0, 60_001),
            Some(DeadReason::MaxAge)
        );
        assert_eq!(
            lease_given_up(&policy, 1, 0, 120_000),
            None,
            "a first lease goes out"
        );
    }
}
