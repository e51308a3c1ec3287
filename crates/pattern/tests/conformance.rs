//! The shared EventBridge conformance suite (`shared/conformance/eventbridge-patterns.json`):
//! every match vector must give its recorded outcome, every invalid pattern must be refused, and
//! the shared matcher must agree with single-pattern matching on every (pattern, event) pair.
//! The file is read with the crate's own JSON reader, so number literals stay exact.

#![allow(
    clippy::print_stderr,
    reason = "a failing vector is reported before the assertion that counts them"
)]

#[path = "../src/json.rs"]
#[allow(
    dead_code,
    reason = "the suite uses the JSON reader, not all of the module"
)]
mod json;

use std::collections::{BTreeMap, BTreeSet};

use json::Json;
use switchyard_pattern::{MatcherBuilder, Pattern, PatternError};

const SUITE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/eventbridge-patterns.json"
));

fn field<'a>(obj: &'a Json<'a>, name: &str) -> Option<&'a Json<'a>> {
    match obj {
        Json::Obj(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
        _ => None,
    }
}

fn text<'a>(obj: &'a Json<'a>, name: &str) -> &'a str {
    match field(obj, name) {
        Some(Json::Str(s)) => s,
        _ => panic!("vector without string field {name}"),
    }
}

fn vectors<'a>(root: &'a Json<'a>, name: &str) -> &'a [Json<'a>] {
    match field(root, name) {
        Some(Json::Arr(items)) => items,
        _ => panic!("suite without {name}"),
    }
}

fn suite() -> Json<'static> {
    json::parse(SUITE, 16).expect("the conformance suite is valid JSON")
}

#[test]
fn every_match_vector_gives_its_recorded_outcome() {
    let root = suite();
    let vs = vectors(&root, "match_vectors");
    assert_eq!(vs.len(), 4354);
    let mut failures = Vec::new();
    for (i, v) in vs.iter().enumerate() {
        let pattern = text(v, "pattern");
        let event = text(v, "event");
        let expected = matches!(field(v, "should_match"), Some(Json::Bool(true)));
        let got = match Pattern::parse(pattern) {
            Ok(p) => p.matches(event).map_err(|e| e.to_string()),
            Err(e) => Err(format!("refused: {e}")),
        };
        if got != Ok(expected) {
            failures.push(i);
            if failures.len() <= 40 {
                eprintln!(
                    "vector {i} ({}): expected {expected}, got {got:?}\n  pattern: {pattern}\n  event: {}",
                    text(v, "source"),
                    event.chars().take(300).collect::<String>()
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} match vectors fail: {failures:?}",
        failures.len(),
        vs.len()
    );
}

/// The two vectors recorded by event-ruler's `testWithRuleOverride` with `ruleOverriding=false`
/// (a path given twice is refused only in that mode). The match vectors were recorded with
/// `ruleOverriding=true`, in which later definitions replace earlier ones, and they contain the
/// first of these very patterns as valid (vectors 2987 and 2988); the second lost its duplicate
/// key when it was recorded and is an ordinary valid pattern. switchyard follows
/// `ruleOverriding=true`, like AWS (vector 117), so both are accepted.
fn only_invalid_without_overriding(v: &Json<'_>) -> bool {
    matches!(field(v, "withOverriding"), Some(Json::Bool(false)))
}

#[test]
fn every_invalid_pattern_is_refused_with_a_reason() {
    let root = suite();
    let vs = vectors(&root, "invalid_pattern_vectors");
    assert_eq!(vs.len(), 138);
    let mut failures = Vec::new();
    let mut overriding = 0;
    for (i, v) in vs.iter().enumerate() {
        let pattern = text(v, "pattern");
        let got = Pattern::parse(pattern);
        if only_invalid_without_overriding(v) {
            overriding += 1;
            if got.is_err() {
                failures.push(i);
                eprintln!(
                    "invalid vector {i}: valid with ruleOverriding=true but refused: {got:?}"
                );
            }
            continue;
        }
        match got {
            Ok(_) => {
                failures.push(i);
                eprintln!("invalid vector {i} accepted: {pattern}");
            }
            Err(PatternError::Field { field, reason }) => {
                assert!(!reason.is_empty(), "vector {i}: empty reason for {field}");
            }
            Err(_) => {}
        }
    }
    assert_eq!(overriding, 2);
    assert!(
        failures.is_empty(),
        "{} of {} invalid vectors fail: {failures:?}",
        failures.len(),
        vs.len()
    );
}

/// One matcher holding every distinct pattern of the suite answers, for every distinct event,
/// exactly the set of patterns that match it one by one.
#[test]
fn shared_matcher_agrees_with_single_patterns() {
    let root = suite();
    let vs = vectors(&root, "match_vectors");
    let mut patterns: BTreeMap<&str, usize> = BTreeMap::new();
    let mut events: BTreeSet<&str> = BTreeSet::new();
    for v in vs {
        let n = patterns.len();
        patterns.entry(text(v, "pattern")).or_insert(n);
        events.insert(text(v, "event"));
    }
    let compiled: Vec<(usize, Pattern)> = patterns
        .iter()
        .filter_map(|(t, &i)| Pattern::parse(t).ok().map(|p| (i, p)))
        .collect();
    let mut b = MatcherBuilder::new();
    for (i, p) in &compiled {
        b.add(*i, p);
    }
    let m = b.build();
    let mut disagreements = Vec::new();
    for e in &events {
        let Ok(got) = m.matches(e) else { continue };
        let got: BTreeSet<usize> = got.into_iter().collect();
        let want: BTreeSet<usize> = compiled
            .iter()
            .filter(|(_, p)| p.matches(e) == Ok(true))
            .map(|(i, _)| *i)
            .collect();
        if got != want {
            disagreements.push((e.chars().take(200).collect::<String>(), got, want));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} events where the matcher disagrees: {:?}",
        disagreements.len(),
        disagreements.iter().take(5).collect::<Vec<_>>()
    );
}
