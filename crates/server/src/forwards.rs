//! The forward budget: the part of the loop guard that bounds how many publishes one original
//! event can cause, where `max_hops` bounds only how deep one path goes.
//!
//! Every attempt carries the event's trace id in `traceparent` (a child span in the same trace)
//! and `switchyard-hops`, so a publish with hops >= 1 is a *forward* of an earlier event, and its
//! trace id names the publishes it descends from. Per trace id this keeps the number of original
//! events (hops 0) and of forwarded events accepted; a forward is refused once the trace has
//! used `limit` forwards per original event. With N subscriptions delivering into their own bus,
//! one original event then causes at most N × (limit + 1) deliveries instead of N^max_hops.
//!
//! Per node and in memory: entries expire [`WINDOW_MS`] after they were made, and at most
//! [`MAX_TRACES`] are kept (the oldest go first). A trace whose entry is gone starts a fresh
//! budget, so losing one never refuses a publish wrongly; `max_hops` still bounds every path.
//!
//! Must not: hold its lock across an `.await` (it is taken on the publish path).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// How long a trace's counts are kept: longer than a loop of immediate deliveries takes to run
/// into its budget, short enough that a trace id reused for days does not pile up counts.
pub(crate) const WINDOW_MS: u64 = 10 * 60 * 1000;
/// Traces remembered at once; about 100 bytes each.
pub(crate) const MAX_TRACES: usize = 100_000;

/// A refused forward: the trace has used its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted {
    /// Forwards accepted for the trace so far.
    pub(crate) used: u64,
    /// Forwards the trace may have: the limit times its original events.
    pub(crate) allowed: u64,
}

#[derive(Debug)]
struct Counts {
    originals: u64,
    forwards: u64,
}

#[derive(Debug, Default)]
struct Traces {
    counts: HashMap<String, Counts>,
    /// Trace ids in the order their entries were made, with that time: what expires first.
    order: VecDeque<(String, u64)>,
}

impl Traces {
    fn expire(&mut self, now_ms: u64) {
        while let Some((trace, made)) = self.order.front() {
            let expired = made.saturating_add(WINDOW_MS) <= now_ms;
            if !expired && self.order.len() < MAX_TRACES {
                break;
            }
            self.counts.remove(trace.as_str());
            self.order.pop_front();
        }
    }

    fn entry(&mut self, trace: &str, now_ms: u64) -> &mut Counts {
        self.expire(now_ms);
        // A forward whose trace has no entry descends from an original this node never counted
        // (another node took it, or its entry expired): `forward` assumes one original then.
        self.counts.entry(trace.to_string()).or_insert_with(|| {
            self.order.push_back((trace.to_string(), now_ms));
            Counts {
                originals: 0,
                forwards: 0,
            }
        })
    }
}

#[derive(Debug)]
pub(crate) struct ForwardBudget {
    /// Forwards allowed per original event; 0 refuses every forward.
    limit: u64,
    traces: Mutex<Traces>,
}

impl ForwardBudget {
    pub(crate) fn new(limit: u32) -> ForwardBudget {
        ForwardBudget {
            limit: u64::from(limit),
            traces: Mutex::new(Traces::default()),
        }
    }

    fn traces(&self) -> std::sync::MutexGuard<'_, Traces> {
        self.traces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts `events` original events (hops 0) published in `trace`, each of which may cause
    /// `limit` forwards. Only needed when the trace can have more than one original: a trace
    /// switchyard started for a single event is counted as one when its first forward arrives.
    pub(crate) fn originals(&self, trace: &str, events: u64, now_ms: u64) {
        let mut traces = self.traces();
        let counts = traces.entry(trace, now_ms);
        counts.originals = counts.originals.saturating_add(events);
    }

    /// Takes `events` forwards from `trace`'s budget, or refuses them all when they do not fit.
    pub(crate) fn forward(&self, trace: &str, events: u64, now_ms: u64) -> Result<(), Exhausted> {
        let mut traces = self.traces();
        let counts = traces.entry(trace, now_ms);
        let allowed = self.limit.saturating_mul(counts.originals.max(1));
        let used = counts.forwards;
        if used.saturating_add(events) > allowed {
            return Err(Exhausted { used, allowed });
        }
        counts.forwards = used + events;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_gets_the_limit_per_original_event() {
        let budget = ForwardBudget::new(3);
        for _ in 0..3 {
            budget.forward("t", 1, 0).unwrap();
        }
        assert_eq!(
            budget.forward("t", 1, 0),
            Err(Exhausted {
                used: 3,
                allowed: 3
            })
        );
        budget.forward("other", 2, 0).unwrap();
        // A batch of originals in one trace: each of them may be forwarded as often.
        budget.originals("batch", 10, 0);
        budget.forward("batch", 30, 0).unwrap();
        assert!(budget.forward("batch", 1, 0).is_err());
    }

    #[test]
    fn a_batch_that_does_not_fit_is_refused_whole() {
        let budget = ForwardBudget::new(4);
        budget.forward("t", 3, 0).unwrap();
        assert!(budget.forward("t", 2, 0).is_err());
        budget.forward("t", 1, 0).unwrap();
    }

    #[test]
    fn counts_expire_after_the_window_and_beyond_the_capacity() {
        let budget = ForwardBudget::new(1);
        budget.forward("t", 1, 1_000).unwrap();
        assert!(budget.forward("t", 1, 1_000 + WINDOW_MS - 1).is_err());
        budget.forward("t", 1, 1_000 + WINDOW_MS).unwrap();

        let budget = ForwardBudget::new(1);
        budget.forward("first", 1, 0).unwrap();
        for n in 0..MAX_TRACES {
            budget.forward(&n.to_string(), 1, 0).unwrap();
        }
        assert!(budget.traces().counts.len() <= MAX_TRACES);
        budget
            .forward("first", 1, 0)
            .expect("the oldest entry made room for the others");
    }
}
