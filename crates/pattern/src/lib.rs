//! switchyard's event pattern language: Amazon EventBridge's, complete, with the reference
//! semantics of aws/event-ruler (array-consistent matching, later fields overriding earlier
//! ones). This crate owns parsing and validating a pattern ([`Pattern::parse`]), matching one
//! pattern against one event ([`Pattern::matches`], for trying a pattern out), and compiling all
//! the subscriptions of a bus into one shared [`Matcher`] whose cost per event grows far slower
//! than the number of patterns. It is pure: no I/O, no async, no serde; it reads JSON text with
//! its own strict parser so that number literals keep their exact value. Nothing that input can
//! reach panics, recurses without bound or allocates without bound.

mod eval;
mod event;
mod json;
mod matcher;
mod pattern;
mod value;

use std::sync::Arc;

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
    Syntax { offset: usize, reason: &'static str },
    /// The text is longer than [`MAX_PATTERN_BYTES`].
    #[error("pattern is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The JSON is not an object.
    #[error("a pattern must be a JSON object")]
    NotAnObject,
    /// The pattern is `{}`.
    #[error("a pattern must name at least one field")]
    Empty,
    /// A field (its dotted path) is wrong, and why.
    #[error("field \"{field}\": {reason}")]
    Field { field: String, reason: String },
}

/// Why an event could not be matched: its text is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event is not a valid JSON object at byte {offset}: {reason}")]
pub struct EventError {
    offset: usize,
    reason: &'static str,
}

impl EventError {
    /// Byte offset in the event text where reading failed.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What was wrong there.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
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
        Ok(c.program
            .iter()
            .any(|conds| eval::branch_matches(conds, &flat, event_json)))
    }

    /// How many alternatives the pattern has once its `$or`s are multiplied out.
    pub fn branch_count(&self) -> usize {
        self.inner.branches.len()
    }

    pub(crate) fn branches(&self) -> &[pattern::Branch] {
        &self.inner.branches
    }
}
