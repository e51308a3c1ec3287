//! The closed sets that describe what became of an attempt: its class, what it meant for the
//! delivery, and why a delivery was dead-lettered.
//!
//! Owns each set's members and their one spelling ([`AttemptClass::as_str`] and the like). That
//! spelling is a public contract several times over: the store keeps it (embedded JSON records,
//! PostgreSQL text columns), `/metrics` uses it as label values, the API and `switchyard tail`
//! show it, and logs carry it. The serde encoding of every type is its `as_str` spelling.
//!
//! They live here, in the vocabulary crate, because the store, the dispatcher, the metrics and
//! the API all name them, and this is the lowest crate all of them may depend on.
//!
//! Invariant: `ALL` lists every member once, in declaration order, so that `member as usize`
//! indexes an array of `ALL.len()` (the metrics' label sets), and `parse(x.as_str()) == Some(x)`.

use serde::{Deserialize, Serialize};

/// The class of one attempt's result, as stats, metrics and the attempt log group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttemptClass {
    /// Delivered.
    #[serde(rename = "2xx")]
    Status2xx,
    /// A redirect, which is not followed.
    #[serde(rename = "3xx")]
    Status3xx,
    /// A 4xx other than 429.
    #[serde(rename = "4xx")]
    Status4xx,
    /// Too many requests: the receiver asks to slow down.
    #[serde(rename = "429")]
    Status429,
    /// The receiver failed.
    #[serde(rename = "5xx")]
    Status5xx,
    /// No complete answer within the destination's timeout.
    #[serde(rename = "timeout")]
    Timeout,
    /// Could not connect, or the connection broke.
    #[serde(rename = "connection")]
    Connection,
    /// The request could not be built from the destination.
    #[serde(rename = "invalid")]
    Invalid,
    /// A consumer acknowledged a pulled delivery: a pull subscription's delivered attempt.
    #[serde(rename = "acked")]
    Acked,
}

impl AttemptClass {
    /// Every member, in declaration order.
    pub const ALL: [AttemptClass; 9] = [
        AttemptClass::Status2xx,
        AttemptClass::Status3xx,
        AttemptClass::Status4xx,
        AttemptClass::Status429,
        AttemptClass::Status5xx,
        AttemptClass::Timeout,
        AttemptClass::Connection,
        AttemptClass::Invalid,
        AttemptClass::Acked,
    ];

    /// The one spelling: stored, shown, and used as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptClass::Status2xx => "2xx",
            AttemptClass::Status3xx => "3xx",
            AttemptClass::Status4xx => "4xx",
            AttemptClass::Status429 => "429",
            AttemptClass::Status5xx => "5xx",
            AttemptClass::Timeout => "timeout",
            AttemptClass::Connection => "connection",
            AttemptClass::Invalid => "invalid",
            AttemptClass::Acked => "acked",
        }
    }

    /// The class whose [`AttemptClass::as_str`] spelling this is.
    pub fn parse(text: &str) -> Option<AttemptClass> {
        AttemptClass::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// What an attempt meant for its delivery, as the attempt log and `tail` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Done: the receiver answered 2xx.
    Delivered,
    /// Another attempt follows.
    Retry,
    /// Dead-lettered: no attempt follows.
    Dead,
}

impl AttemptOutcome {
    /// Every member, in declaration order.
    pub const ALL: [AttemptOutcome; 3] = [
        AttemptOutcome::Delivered,
        AttemptOutcome::Retry,
        AttemptOutcome::Dead,
    ];

    /// The one spelling: stored, shown, and used as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Dead => "dead",
        }
    }

    /// The outcome whose [`AttemptOutcome::as_str`] spelling this is.
    pub fn parse(text: &str) -> Option<AttemptOutcome> {
        AttemptOutcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// Why a delivery will not be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// A 3xx or 4xx that the subscription does not list as retryable.
    NonRetryableStatus,
    /// The subscription's `max_attempts` were made.
    MaxAttempts,
    /// The next retry would fall after the subscription's `max_age_s`.
    MaxAge,
    /// The destination cannot be called at all (e.g. its URL no longer resolves to a request).
    InvalidDestination,
    /// The subscription stands for an EventBridge target switchyard cannot invoke (a Lambda
    /// function, an SQS queue, …): kept so that existing definitions apply, never attempted.
    UnsupportedTarget,
}

impl DeadReason {
    /// Every member, in declaration order.
    pub const ALL: [DeadReason; 5] = [
        DeadReason::NonRetryableStatus,
        DeadReason::MaxAttempts,
        DeadReason::MaxAge,
        DeadReason::InvalidDestination,
        DeadReason::UnsupportedTarget,
    ];

    /// The one spelling: stored, shown, and used as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::NonRetryableStatus => "non_retryable_status",
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::MaxAge => "max_age",
            DeadReason::InvalidDestination => "invalid_destination",
            DeadReason::UnsupportedTarget => "unsupported_target",
        }
    }

    /// The reason whose [`DeadReason::as_str`] spelling this is.
    pub fn parse(text: &str) -> Option<DeadReason> {
        DeadReason::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the module's invariant for one set: `ALL` in declaration order, `parse` the inverse
    /// of `as_str`, and serde spelling each member as `as_str` does.
    fn check<T>(
        all: &[T],
        index: impl Fn(T) -> usize,
        as_str: impl Fn(T) -> &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) where
        T: Copy + PartialEq + std::fmt::Debug + Serialize + serde::de::DeserializeOwned,
    {
        for (i, member) in all.iter().copied().enumerate() {
            assert_eq!(index(member), i, "{member:?} is out of declaration order");
            let text = as_str(member);
            assert_eq!(parse(text), Some(member));
            let json = serde_json::to_string(&member).unwrap();
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), member);
        }
        assert_eq!(parse("unknown"), None);
    }

    #[test]
    fn every_member_round_trips_through_its_spelling() {
        check(
            &AttemptClass::ALL,
            |c| c as usize,
            AttemptClass::as_str,
            AttemptClass::parse,
        );
        check(
            &AttemptOutcome::ALL,
            |o| o as usize,
            AttemptOutcome::as_str,
            AttemptOutcome::parse,
        );
        check(
            &DeadReason::ALL,
            |r| r as usize,
            DeadReason::as_str,
            DeadReason::parse,
        );
    }

    #[test]
    fn spellings_are_the_stored_and_published_ones() {
        let classes: Vec<&str> = AttemptClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            classes,
            [
                "2xx",
                "3xx",
                "4xx",
                "429",
                "5xx",
                "timeout",
                "connection",
                "invalid",
                "acked"
            ]
        );
        let outcomes: Vec<&str> = AttemptOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(outcomes, ["delivered", "retry", "dead"]);
        let reasons: Vec<&str> = DeadReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "non_retryable_status",
                "max_attempts",
                "max_age",
                "invalid_destination",
                "unsupported_target"
            ]
        );
    }
}
