//! Fuzzes the pattern parser and single-pattern matching, and checks that the shared matcher
//! agrees with single-pattern matching. Input: pattern text, a NUL byte, event text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_pattern::{MatcherBuilder, Pattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, event) = text.split_once('\0').unwrap_or((text, "{}"));
    let Ok(p) = Pattern::parse(pattern) else {
        return;
    };
    let single = p.matches(event);
    let mut b = MatcherBuilder::new();
    b.add(0u8, &p);
    let m = b.build();
    let shared = m.matches(event).map(|keys| !keys.is_empty());
    assert_eq!(single, shared, "matcher disagrees with Pattern::matches");
});
