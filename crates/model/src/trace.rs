//! W3C trace context (`traceparent`, `tracestate`) as switchyard carries it.
//!
//! An event keeps the trace context it was published with (or a new one), and every attempt
//! sends a child of it: the same trace id with a new span id, so a tracing backend shows each
//! delivery under the publish that caused it. Invalid headers are ignored and a new trace is
//! started, as the W3C specification asks of receivers.

use std::fmt::Write;

/// A validated trace context: version `00`, trace id, parent span id and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: String,
    span_id: String,
    flags: String,
    /// Vendor state, passed along untouched (bounded in length).
    pub tracestate: Option<String>,
}

/// The W3C limit on `tracestate` is 32 list members; 512 bytes bounds what we store per event.
const MAX_TRACESTATE: usize = 512;

fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    loop {
        out.clear();
        for _ in 0..bytes {
            let _ = write!(out, "{:02x}", fastrand::u8(..));
        }
        // All-zero ids are invalid in the specification.
        if out.bytes().any(|b| b != b'0') {
            return out;
        }
    }
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: random_hex(16),
            span_id: random_hex(8),
            flags: "01".into(),
            tracestate: None,
        }
    }

    /// Parses the publisher's headers; `None` when `traceparent` is absent or invalid.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = version == "00"
            && parts.next().is_none()
            && is_lower_hex(trace_id, 32)
            && trace_id.bytes().any(|b| b != b'0')
            && is_lower_hex(span_id, 16)
            && span_id.bytes().any(|b| b != b'0')
            && is_lower_hex(flags, 2);
        valid.then(|| TraceContext {
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            flags: flags.to_string(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| {
                    !s.is_empty()
                        && s.len() <= MAX_TRACESTATE
                        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
                })
                .map(str::to_string),
        })
    }

    /// The trace's id, 32 lowercase hex digits: shared by the publish and all its attempts.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// `traceparent` of this context itself.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }

    /// The span this context names: the publisher's, or the root switchyard started.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// A new span id for a child span (one attempt).
    pub fn new_span_id() -> String {
        random_hex(8)
    }

    /// `traceparent` for the child span `span_id` of this context.
    pub fn child_traceparent(&self, span_id: &str) -> String {
        format!("00-{}-{}-{}", self.trace_id, span_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn keeps_a_valid_context_and_makes_children_in_the_same_trace() {
        let context = TraceContext::parse(SAMPLE, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(context.traceparent(), SAMPLE);
        assert_eq!(context.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        let child = context.child_traceparent(&TraceContext::new_span_id());
        assert!(
            child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && child.ends_with("-01")
        );
        assert_ne!(child, SAMPLE);
        assert!(TraceContext::parse(&child, None).is_some());
    }

    #[test]
    fn refuses_malformed_headers() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f35-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad}");
        }
        let fresh = TraceContext::new_root();
        assert!(TraceContext::parse(&fresh.traceparent(), None).is_some());
    }
}
