//! switchyard's event pattern language: Amazon EventBridge's, complete, with the reference
//! semantics of aws/event-ruler (array-consistent matching, later fields overriding earlier
//! ones). This crate owns parsing and validating a pattern ([`Pattern::parse`]), matching one
//! pattern against one event ([`Pattern::matches`], for trying a pattern out), and compiling all
//! the subscriptions of a bus into one shared [`Matcher`] whose cost per event grows far slower
//! than the number of patterns. It is pure: no I/O, no async, no serde; it reads JSON text with
//! its own strict parser so that number literals keep their exact value, and refuses an event
//! that gives a key twice in one object ([`check_unique_keys`], shared with whoever reads request
//! bodies). Nothing that input can reach panics, recurses without bound or allocates without
//! bound, and matching one event against one pattern takes at most a budget of steps
//! proportional to the event's values on the pattern's fields times its fields
//! ([`EventError::TooCostly`] past it).

mod eval;
mod event;
mod json;
mod matcher;
mod pattern;
mod value;

use std::sync::Arc;

pub use eval::{MATCH_STEPS_MIN, MATCH_STEPS_PER_VALUE};
pub use event::MAX_EVENT_DEPTH;
pub use matcher::{Matcher, MatcherBuilder};
pub use pattern::{MAX_OR_BRANCHES, MAX_PATTERN_BYTES, MAX_PATTERN_DEPTH};

use eval::PCond;
use event::{Flat, PathTrie};

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The text is not JSON.
    #[error("pattern is not valid JSON at byte {offset}: {reason}")]
    Syntax {
        /// Where in the text parsing stopped.
        offset: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// The text is longer than [`MAX_PATTERN_BYTES`].
    #[error("pattern is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The text's length in bytes.
        size: usize,
        /// [`MAX_PATTERN_BYTES`].
        limit: usize,
    },
    /// The JSON is not an object.
    #[error("a pattern must be a JSON object")]
    NotAnObject,
    /// The pattern is `{}`.
    #[error("a pattern must name at least one field")]
    Empty,
    /// A field (its dotted path) is wrong, and why.
    #[error("field \"{field}\": {reason}")]
    Field {
        /// The field's dotted path from the pattern's root.
        field: String,
        /// What is wrong with it and what would be accepted.
        reason: String,
    },
}

/// Why an event could not be matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The text is not a JSON object.
    #[error("event is not a valid JSON object at byte {offset}: {reason}")]
    Syntax {
        /// Where in the text parsing stopped.
        offset: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// An object of the event gives one key twice: a filter and a receiver could read different
    /// values of it.
    #[error(transparent)]
    DuplicateKey(#[from] DuplicateKey),
    /// Matching the event against one pattern would take more than `budget` steps
    /// ([`MATCH_STEPS_PER_VALUE`] per value on the pattern's fields and per field, at least
    /// [`MATCH_STEPS_MIN`]). Only events built to defeat array-consistent matching get here.
    #[error(
        "event is too costly to match: over {budget} steps against one pattern; send smaller arrays, and do not spell one field both as a dotted key and as nested objects"
    )]
    TooCostly {
        /// The step budget this event was given.
        budget: u64,
    },
}

impl EventError {
    /// What was wrong, in a few words.
    pub fn reason(&self) -> &'static str {
        match self {
            EventError::Syntax { reason, .. } => reason,
            EventError::DuplicateKey(_) => "a key is given twice in one object",
            EventError::TooCostly { .. } => "too costly to match",
        }
    }
}

/// A JSON text gives one key twice in one object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key \"{path}\" is given twice in one object; give each key once")]
pub struct DuplicateKey {
    /// The key's dotted path from the top of the text, array positions as `[i]`
    /// (`detail.amount`, `entries[2].detail.items[0].sku`).
    pub path: String,
}

/// Refuses JSON text that gives one key twice in one object, at any depth (keys compared once
/// decoded, so `"a"` and `"\u0061"` are the same key). The one check behind every event and
/// request body switchyard reads: events are checked by [`Pattern::matches`] and
/// [`Matcher::matches`] with it too. Text that is not JSON, or nested deeper than a batch of
/// events may be, is for the caller's parser to refuse with its own message: the check stops
/// without an error at the first syntax error or at that depth.
pub fn check_unique_keys(text: &str) -> Result<(), DuplicateKey> {
    // A batch body holds its events two levels down.
    let mut lx = json::Lexer::new(text);
    match json::KeyCheck::default().skip_value(&mut lx, MAX_EVENT_DEPTH + 2) {
        Err(json::ReadError::Duplicate(path)) => Err(DuplicateKey { path }),
        _ => Ok(()),
    }
}

/// Whether JSON text nests objects and arrays more than `max` levels deep (the outermost
/// counted). Linear, allocation-free, and independent of any pattern: an event's depth limit
/// holds whether or not its bus has patterns to match. Text that is not JSON gets an answer
/// about its brackets only; its parser refuses it.
pub fn nesting_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A validated, compiled pattern. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pattern {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    branches: Vec<pattern::Branch>,
    trie: PathTrie,
    paths: usize,
    program: Vec<Vec<PCond>>,
}

impl Pattern {
    /// Parses and validates EventBridge pattern JSON text. The error names the offending field
    /// and why.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let branches = pattern::compile(text)?;
        let mut trie = PathTrie::new();
        let mut ids: Vec<Arc<str>> = Vec::new();
        let mut program = Vec::with_capacity(branches.len());
        for b in &branches {
            let mut conds = Vec::with_capacity(b.conds.len());
            for c in &b.conds {
                let id = match ids.iter().position(|p| *p == c.path) {
                    Some(i) => i,
                    None => {
                        ids.push(c.path.clone());
                        trie.insert(&c.path, (ids.len() - 1) as u32);
                        ids.len() - 1
                    }
                };
                conds.push(PCond {
                    path: id as u32,
                    preds: c.preds.clone(),
                    absent: c.absent,
                });
            }
            program.push(conds);
        }
        trie.seal();
        Ok(Pattern {
            inner: Arc::new(Compiled {
                branches,
                trie,
                paths: ids.len(),
                program,
            }),
        })
    }

    /// Evaluates this one pattern against an event given as JSON text.
    pub fn matches(&self, event_json: &str) -> Result<bool, EventError> {
        let c = &*self.inner;
        let mut flat = Flat::default();
        flat.load(event_json, &c.trie, c.paths)?;
        for conds in &c.program {
            if eval::branch_matches(conds, &flat, event_json)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many alternatives the pattern has once its `$or`s are multiplied out.
    pub fn branch_count(&self) -> usize {
        self.inner.branches.len()
    }

    pub(crate) fn branches(&self) -> &[pattern::Branch] {
        &self.inner.branches
    }
}

#[cfg(test)]
mod depth_tests {
    use super::nesting_exceeds;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(!nesting_exceeds(r#"{"a": [[1]]}"#, 3));
        assert!(nesting_exceeds(r#"{"a": [[[1]]]}"#, 3));
        assert!(!nesting_exceeds(r#"{"a": "[[[[\"[[["}"#, 1));
        assert!(!nesting_exceeds("[]", 1));
    }
}
