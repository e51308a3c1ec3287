//! Flattening an event into the (path, value, array position) tuples that patterns can test.
//!
//! Owns: the trie of field paths a set of patterns names, and the walk over an event's JSON text
//! that records only values on those paths and skips everything else without building it.
//! Must not: evaluate patterns, or allocate per value (strings without escapes are kept as byte
//! ranges into the event text), or cost anything per path the event does not have.
//! Invariants: a path is the event's keys joined with `.`, and the trie is keyed by the
//! `.`-separated segments of that joined name, so `{"a.b": 1}` and `{"a": {"b": 1}}` both reach
//! path `a.b`, as in the reference. Each array met on a named path gets a fresh id, and each
//! value records, outermost first, the (array id, element index) pairs it sits in; two values
//! are array-consistent when they agree on the index of every array they share. Values are kept
//! in document order, so the values inside one array, or one element of it, are a contiguous
//! range: the matcher finds the values consistent with a choice by range, not by scanning.
//! Every key of the event is checked, named path or not: an event that gives a key twice in one
//! object is refused whatever the patterns.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::json::{KeyCheck, Lexer, ReadError, ReadResult};
use crate::value::comparable;
use crate::{DuplicateKey, EventError};

/// Deepest JSON nesting accepted in an event.
pub const MAX_EVENT_DEPTH: usize = 128;

/// A small, fast, non-cryptographic hasher. The keys hashed are field names and operand values
/// taken from patterns, which the operator controls; event text only ever looks keys up.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w) ^ (rest.len() as u64) << 59)
                .wrapping_mul(K);
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Children are scanned linearly up to this many; beyond, they are hashed.
const LINEAR_CHILDREN: usize = 8;

#[derive(Default, Debug, Clone)]
struct TrieNode {
    children: Vec<(Box<str>, u32)>,
    map: Option<FxMap<Box<str>, u32>>,
    path: Option<u32>,
}

/// The paths a set of patterns names, as a trie of key segments.
#[derive(Debug, Clone)]
pub(crate) struct PathTrie {
    nodes: Vec<TrieNode>,
}

impl PathTrie {
    pub(crate) fn new() -> Self {
        PathTrie {
            nodes: vec![TrieNode::default()],
        }
    }

    /// Registers `path` under `id`.
    pub(crate) fn insert(&mut self, path: &str, id: u32) {
        let mut node = 0usize;
        for seg in path.split('.') {
            let found = self.nodes[node]
                .children
                .iter()
                .find(|(k, _)| **k == *seg)
                .map(|&(_, n)| n as usize);
            node = match found {
                Some(n) => n,
                None => {
                    let n = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].children.push((seg.into(), n as u32));
                    n
                }
            };
        }
        self.nodes[node].path = Some(id);
    }

    /// Switches wide nodes to hashed lookup; call once all paths are in.
    pub(crate) fn seal(&mut self) {
        for n in &mut self.nodes {
            if n.children.len() > LINEAR_CHILDREN {
                n.map = Some(n.children.iter().cloned().collect());
            }
        }
    }

    #[inline]
    fn child(&self, node: u32, seg: &str) -> Option<u32> {
        let n = self.nodes.get(node as usize)?;
        match &n.map {
            Some(m) => m.get(seg).copied(),
            None => n
                .children
                .iter()
                .find(|(k, _)| {
                    // Length and first byte reject most siblings without a call to memcmp.
                    k.len() == seg.len()
                        && k.as_bytes().first() == seg.as_bytes().first()
                        && k.as_bytes() == seg.as_bytes()
                })
                .map(|&(_, c)| c),
        }
    }

    /// The node reached from `node` by an event key, which may itself contain dots.
    #[inline]
    fn step(&self, node: u32, key: &str) -> Option<u32> {
        // Segments never contain a dot, so a whole-key hit is final and only a miss needs the
        // (rare) check for a dotted key.
        self.child(node, key).or_else(|| {
            if key.bytes().any(|b| b == b'.') {
                key.split('.').try_fold(node, |n, seg| self.child(n, seg))
            } else {
                None
            }
        })
    }

    #[inline]
    fn path(&self, node: u32) -> Option<u32> {
        self.nodes.get(node as usize).and_then(|n| n.path)
    }

    #[inline]
    fn has_children(&self, node: u32) -> bool {
        self.nodes
            .get(node as usize)
            .is_some_and(|n| !n.children.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string without escapes: `start..end` is in the event text.
    Str,
    /// A string with escapes: `start..end` is in the decoded buffer.
    Decoded,
    /// A number: `start..end` is its literal in the event text.
    Num,
    True,
    False,
    Null,
}

/// One scalar of the event on a named path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Val {
    pub path: u32,
    pub kind: Kind,
    start: u32,
    end: u32,
    /// The value of a comparable number.
    pub num: Option<f64>,
    mem_start: u32,
    mem_len: u32,
}

/// An array met on a named path. Values are recorded in document order, so the values inside it
/// are exactly `vals[start..end]`, and each of its elements is a contiguous run of those.
#[derive(Debug, Clone, Copy)]
struct ArraySpan {
    start: u32,
    end: u32,
    /// Its place in the memberships of the values inside it.
    depth: u32,
}

/// Where the values of one path lie in `Flat::by_path`, valid for one generation.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    generation: u32,
    start: u32,
    len: u32,
}

/// A flattened event, reused from one event to the next to keep its allocations.
#[derive(Default)]
pub(crate) struct Flat {
    pub vals: Vec<Val>,
    mem: Vec<(u32, u32)>,
    decoded: String,
    stack: Vec<(u32, u32)>,
    arrays: Vec<ArraySpan>,
    keys: KeyCheck,
    /// Per path id; stamped with a generation so that an event costs nothing for the paths it
    /// does not have, however many paths the patterns name.
    slots: Vec<Slot>,
    touched: Vec<u32>,
    /// Indices into `vals`, grouped by path, each group in document order.
    by_path: Vec<u32>,
    generation: u32,
}

impl Flat {
    /// Flattens `text`, keeping the values on the paths of `trie` (ids below `n_paths`), and
    /// refusing it if it is not one JSON object or gives a key twice in one object anywhere.
    pub(crate) fn load(
        &mut self,
        text: &str,
        trie: &PathTrie,
        n_paths: usize,
    ) -> Result<(), EventError> {
        self.vals.clear();
        self.mem.clear();
        self.decoded.clear();
        self.stack.clear();
        self.arrays.clear();
        self.touched.clear();
        self.keys.reset();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.iter_mut().for_each(|s| s.generation = 0);
            self.generation = 1;
        }
        if self.slots.len() < n_paths {
            self.slots.resize(n_paths, Slot::default());
        }
        let mut lx = Lexer::new(text);
        if lx.peek() != Some(b'{') {
            return Err(EventError::Syntax {
                offset: lx.pos,
                reason: "an event must be a JSON object",
            });
        }
        let walked = self
            .walk(&mut lx, trie, 0, MAX_EVENT_DEPTH)
            .and_then(|()| Ok(lx.end()?));
        walked.map_err(|e| match e {
            ReadError::Syntax(e) => EventError::Syntax {
                offset: e.offset,
                reason: e.what,
            },
            ReadError::Duplicate(path) => EventError::DuplicateKey(DuplicateKey { path }),
        })?;
        self.group_by_path();
        Ok(())
    }

    /// Fills `by_path`: a counting sort of the values by path, which keeps document order.
    fn group_by_path(&mut self) {
        let mut at = 0u32;
        for &p in &self.touched {
            if let Some(slot) = self.slots.get_mut(p as usize) {
                slot.start = at;
                at += slot.len;
                slot.len = 0;
            }
        }
        self.by_path.clear();
        self.by_path.resize(self.vals.len(), 0);
        for (i, v) in self.vals.iter().enumerate() {
            if let Some(slot) = self.slots.get_mut(v.path as usize)
                && let Some(out) = self.by_path.get_mut((slot.start + slot.len) as usize)
            {
                *out = i as u32;
                slot.len += 1;
            }
        }
    }

    fn walk(
        &mut self,
        lx: &mut Lexer<'_>,
        trie: &PathTrie,
        node: u32,
        depth: usize,
    ) -> ReadResult<()> {
        match lx.peek() {
            Some(b'{') => {
                if depth == 0 {
                    return Ok(lx.err("nesting too deep")?);
                }
                if !trie.has_children(node) {
                    return self.keys.skip_value(lx, depth);
                }
                lx.pos += 1;
                if lx.eat(b'}') {
                    return Ok(());
                }
                self.keys.open_object();
                loop {
                    lx.ws();
                    let key = self.keys.key(lx)?;
                    lx.expect(b':', "expected ':' after an object key")?;
                    match trie.step(node, self.keys.text(lx.src(), key)) {
                        Some(child) => self.walk(lx, trie, child, depth - 1)?,
                        None => self.keys.skip_value(lx, depth - 1)?,
                    }
                    if lx.eat(b',') {
                        continue;
                    }
                    lx.expect(b'}', "expected ',' or '}' in an object")?;
                    return self.keys.close_object(lx.src());
                }
            }
            Some(b'[') => {
                if depth == 0 {
                    return Ok(lx.err("nesting too deep")?);
                }
                lx.pos += 1;
                let id = self.arrays.len();
                let here = self.vals.len() as u32;
                self.arrays.push(ArraySpan {
                    start: here,
                    end: here,
                    depth: self.stack.len() as u32,
                });
                if lx.eat(b']') {
                    return Ok(());
                }
                self.keys.open_array();
                let mut index = 0u32;
                loop {
                    self.stack.push((id as u32, index));
                    let r = self.walk(lx, trie, node, depth - 1);
                    self.stack.pop();
                    r?;
                    index = index.wrapping_add(1);
                    if lx.eat(b',') {
                        self.keys.next_element();
                        continue;
                    }
                    lx.expect(b']', "expected ',' or ']' in an array")?;
                    self.keys.close_array();
                    let end = self.vals.len() as u32;
                    if let Some(a) = self.arrays.get_mut(id) {
                        a.end = end;
                    }
                    return Ok(());
                }
            }
            Some(b) => {
                let Some(path) = trie.path(node) else {
                    return self.keys.skip_value(lx, 0);
                };
                let (kind, start, end, num) = match b {
                    b'"' => {
                        let s = lx.string()?;
                        if let std::borrow::Cow::Owned(s) = s {
                            let start = self.decoded.len();
                            self.decoded.push_str(&s);
                            (Kind::Decoded, start, self.decoded.len(), None)
                        } else {
                            // Borrowed means no escapes: the text lies just inside the quotes.
                            (Kind::Str, lx.pos - 1 - s.len(), lx.pos - 1, None)
                        }
                    }
                    b't' | b'f' | b'n' => {
                        let kind = match b {
                            b't' => Kind::True,
                            b'f' => Kind::False,
                            _ => Kind::Null,
                        };
                        lx.scalar()?;
                        (kind, 0, 0, None)
                    }
                    b'-' | b'0'..=b'9' => {
                        let start = lx.pos;
                        let lit = lx.number()?;
                        (Kind::Num, start, lx.pos, comparable(lit))
                    }
                    // The same message as when the value is skipped, so that an event's error
                    // does not depend on which patterns are loaded.
                    _ => return Ok(lx.err("expected a JSON value")?),
                };
                let mem_start = self.mem.len() as u32;
                self.mem.extend_from_slice(&self.stack);
                if let Some(slot) = self.slots.get_mut(path as usize) {
                    if slot.generation != self.generation {
                        *slot = Slot {
                            generation: self.generation,
                            start: 0,
                            len: 0,
                        };
                        self.touched.push(path);
                    }
                    slot.len += 1;
                }
                self.vals.push(Val {
                    path,
                    kind,
                    start: start as u32,
                    end: end as u32,
                    num,
                    mem_start,
                    mem_len: self.stack.len() as u32,
                });
                Ok(())
            }
            None => Ok(lx.err("unexpected end of input")?),
        }
    }

    /// Indices into `vals` of the values at `path`, in document order.
    #[inline]
    pub(crate) fn indices_at(&self, path: u32) -> &[u32] {
        match self.slots.get(path as usize) {
            Some(s) if s.generation == self.generation => self
                .by_path
                .get(s.start as usize..(s.start + s.len) as usize)
                .unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The values at `path`, last first.
    #[inline]
    pub(crate) fn at(&self, path: u32) -> impl Iterator<Item = &Val> {
        self.indices_at(path)
            .iter()
            .rev()
            .filter_map(|&i| self.vals.get(i as usize))
    }

    /// The range of `vals` inside `array`, and inside its element `index`.
    pub(crate) fn element(&self, array: u32, index: u32) -> ((u32, u32), (u32, u32)) {
        let Some(a) = self.arrays.get(array as usize) else {
            return ((0, 0), (0, 0));
        };
        let inside = self
            .vals
            .get(a.start as usize..a.end as usize)
            .unwrap_or(&[]);
        let at = |v: &Val| {
            self.membership(v)
                .get(a.depth as usize)
                .map_or(0, |&(_, i)| i)
        };
        let lo = inside.partition_point(|v| at(v) < index) as u32;
        let hi = inside.partition_point(|v| at(v) <= index) as u32;
        ((a.start, a.end), (a.start + lo, a.start + hi))
    }

    /// The text of a string value.
    #[inline]
    pub(crate) fn str_of<'t>(&'t self, v: &Val, text: &'t str) -> Option<&'t str> {
        let range = v.start as usize..v.end as usize;
        match v.kind {
            Kind::Str => text.get(range),
            Kind::Decoded => self.decoded.get(range),
            _ => None,
        }
    }

    /// The literal of a number value.
    #[inline]
    pub(crate) fn lit_of<'t>(&self, v: &Val, text: &'t str) -> &'t str {
        text.get(v.start as usize..v.end as usize).unwrap_or("")
    }

    /// The arrays a value sits in, outermost first.
    #[inline]
    pub(crate) fn membership(&self, v: &Val) -> &[(u32, u32)] {
        let s = v.mem_start as usize;
        self.mem.get(s..s + v.mem_len as usize).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str, paths: &[&str]) -> (Flat, PathTrie) {
        let mut trie = PathTrie::new();
        for (i, p) in paths.iter().enumerate() {
            trie.insert(p, i as u32);
        }
        trie.seal();
        let mut f = Flat::default();
        assert_eq!(f.load(text, &trie, paths.len()), Ok(()));
        (f, trie)
    }

    #[test]
    fn keeps_only_named_paths_and_joins_dotted_keys() {
        let text = r#"{"a":{"b":1,"skip":{"x":[1,2,{"y":"z"}]}},"a.c":"v\n","d":"no"}"#;
        let (f, _) = flat(text, &["a.b", "a.c"]);
        assert_eq!(f.vals.len(), 2);
        let b: Vec<_> = f.at(0).collect();
        assert_eq!(b.len(), 1);
        assert_eq!(f.lit_of(b[0], text), "1");
        let c: Vec<_> = f.at(1).collect();
        assert_eq!(f.str_of(c[0], text), Some("v\n"));
    }

    #[test]
    fn records_array_membership() {
        let text = r#"{"a":[{"b":1,"c":2},{"b":3}]}"#;
        let (f, _) = flat(text, &["a.b", "a.c"]);
        let bs: Vec<_> = f.at(0).map(|v| f.membership(v).to_vec()).collect();
        assert_eq!(bs, vec![vec![(0, 1)], vec![(0, 0)]]);
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        let trie = PathTrie::new();
        let mut f = Flat::default();
        for bad in ["[]", "1", "", "{", "{\"a\":}", "{} {}", "{\"a\":1,}"] {
            assert!(f.load(bad, &trie, 0).is_err(), "{bad:?}");
        }
    }
}
