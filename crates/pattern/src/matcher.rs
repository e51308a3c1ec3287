//! One shared matcher for all the patterns of a bus.
//!
//! Owns: compiling many patterns into one structure, and matching an event against all of them
//! at once. The event is read once, keeping only values on paths some pattern names; each value
//! is looked up in its path's value index (hash tables for exact and case-folded values, tables
//! keyed by length for prefixes and suffixes, network tables per prefix length for addresses,
//! range lists for numbers), which yields the few branches anchored on it; only those branches
//! are then verified in full.
//! Must not: evaluate every pattern per event, or mutate after `build` (it is shared between
//! threads and swapped whole).
//! Invariants: every branch is anchored on exactly one of its conditions that needs a value
//! (the one expected to be the most selective), or, if it has none, is verified for every
//! event; the anchor's index entries cover every value that satisfies the anchor, so a branch
//! that is never a candidate cannot match. Verification is the same code as single-pattern
//! matching, so the two cannot disagree.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;

use crate::eval::{PCond, branch_matches};
use crate::event::{Flat, FxMap, PathTrie};
use crate::pattern::Pred;
use crate::value::{Ip, NumRange, fold, num_key, parse_ip};
use crate::{EventError, Pattern};

/// Collects patterns under keys, then compiles them into a [`Matcher`].
pub struct MatcherBuilder<K> {
    entries: Vec<(K, Pattern)>,
}

impl<K: Clone + Eq + Hash> Default for MatcherBuilder<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> MatcherBuilder<K> {
    /// A builder with no patterns.
    pub fn new() -> Self {
        MatcherBuilder {
            entries: Vec::new(),
        }
    }

    /// Adds one pattern under `key`. One key may be added with several patterns (OR).
    pub fn add(&mut self, key: K, pattern: &Pattern) {
        self.entries.push((key, pattern.clone()));
    }

    /// Compiles every added pattern into one matcher.
    pub fn build(self) -> Matcher<K> {
        let mut keys: Vec<K> = Vec::new();
        let mut key_ids: HashMap<K, u32> = HashMap::new();
        let mut paths: FxMap<std::sync::Arc<str>, u32> = FxMap::default();
        let mut trie = PathTrie::new();
        let mut branches: Vec<MBranch> = Vec::new();
        for (key, pattern) in self.entries {
            let key_id = *key_ids.entry(key.clone()).or_insert_with(|| {
                keys.push(key);
                (keys.len() - 1) as u32
            });
            for b in pattern.branches() {
                let conds = b
                    .conds
                    .iter()
                    .map(|c| {
                        let next = paths.len() as u32;
                        let path = *paths.entry(c.path.clone()).or_insert_with(|| {
                            trie.insert(&c.path, next);
                            next
                        });
                        PCond {
                            path,
                            preds: c.preds.clone(),
                            absent: c.absent,
                        }
                    })
                    .collect();
                branches.push(MBranch { conds, key: key_id });
            }
        }
        trie.seal();
        let n_paths = paths.len();

        // How many branches could anchor on each index entry: the rarer, the more selective.
        let mut popularity: FxMap<(u32, Anchor), u32> = FxMap::default();
        for b in &branches {
            for c in b.conds.iter().filter(|c| !c.absent) {
                for p in c.preds.iter() {
                    *popularity.entry((c.path, anchor(p))).or_default() += 1;
                }
            }
        }
        let mut index: Vec<PathIndex> = (0..n_paths).map(|_| PathIndex::default()).collect();
        let mut always = Vec::new();
        for (bi, b) in branches.iter().enumerate() {
            let best = b
                .conds
                .iter()
                .filter(|c| !c.absent)
                .map(|c| {
                    let cost: u64 = c
                        .preds
                        .iter()
                        .map(|p| {
                            let a = anchor(p);
                            let n = popularity.get(&(c.path, a.clone())).copied().unwrap_or(1);
                            a.cost(n)
                        })
                        .sum();
                    (cost, c)
                })
                .min_by_key(|&(cost, _)| cost);
            match best {
                Some((_, c)) => {
                    if let Some(ix) = index.get_mut(c.path as usize) {
                        for p in c.preds.iter() {
                            ix.register(p, bi as u32);
                        }
                    }
                }
                None => always.push(bi as u32),
            }
        }
        for ix in &mut index {
            ix.seal();
        }
        Matcher {
            keys,
            trie,
            n_paths,
            branches,
            index,
            always,
        }
    }
}

struct MBranch {
    conds: Vec<PCond>,
    key: u32,
}

/// What a predicate is indexed under, for counting how selective it is.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Anchor {
    Str(Box<str>),
    Num(u64),
    Lit(Box<str>),
    Bool(bool),
    Null,
    Folded(Box<str>),
    Prefix(Box<str>),
    PrefixIc(Box<str>),
    Suffix(Box<str>),
    SuffixIc(Box<str>),
    Net(Ip, u8),
    Range,
    Present,
}

impl Anchor {
    /// Expected cost of anchoring on this entry, shared by `n` branches.
    fn cost(&self, n: u32) -> u64 {
        let n = u64::from(n);
        // A short prefix or suffix matches many values whatever its popularity.
        let affix = |s: &str| n + (64u64 >> s.len().min(6));
        match self {
            Anchor::Str(_)
            | Anchor::Num(_)
            | Anchor::Lit(_)
            | Anchor::Bool(_)
            | Anchor::Null
            | Anchor::Folded(_) => n,
            Anchor::Prefix(s) | Anchor::PrefixIc(s) | Anchor::Suffix(s) | Anchor::SuffixIc(s) => {
                affix(s)
            }
            Anchor::Net(_, bits) => n + 64u64.saturating_sub(u64::from(*bits) / 2),
            Anchor::Range => 1_000 + n,
            Anchor::Present => 1_000_000 + n,
        }
    }
}

/// The network of `ip` and its prefix length, if `r` is a CIDR block (addresses from patterns
/// always are).
fn cidr_of(lo: Ip, hi: Ip) -> Option<(Ip, u8)> {
    match (lo, hi) {
        (Ip::V4(lo), Ip::V4(hi)) => {
            let host = lo ^ hi;
            (host.wrapping_add(1) & host == 0 && lo & host == 0)
                .then(|| (Ip::V4(lo), (32 - host.count_ones()) as u8))
        }
        (Ip::V6(lo), Ip::V6(hi)) => {
            let host = lo ^ hi;
            (host.wrapping_add(1) & host == 0 && lo & host == 0)
                .then(|| (Ip::V6(lo), (128 - host.count_ones()) as u8))
        }
        _ => None,
    }
}

fn mask(ip: Ip, bits: u8) -> Ip {
    match ip {
        Ip::V4(a) => Ip::V4(if bits == 0 {
            0
        } else {
            a & (u32::MAX << (32 - u32::from(bits.min(32))))
        }),
        Ip::V6(a) => Ip::V6(if bits == 0 {
            0
        } else {
            a & (u128::MAX << (128 - u32::from(bits.min(128))))
        }),
    }
}

fn anchor(p: &Pred) -> Anchor {
    match p {
        Pred::Str(s) => Anchor::Str(s.clone()),
        Pred::Num(n) => match n.val {
            Some(v) => Anchor::Num(num_key(v)),
            None => Anchor::Lit(n.lit.clone()),
        },
        Pred::Bool(b) => Anchor::Bool(*b),
        Pred::Null => Anchor::Null,
        Pred::EqIc(s) => Anchor::Folded(s.clone()),
        Pred::Prefix(s) => Anchor::Prefix(s.clone()),
        Pred::PrefixIc(s) => Anchor::PrefixIc(s.clone()),
        Pred::Suffix(s) => Anchor::Suffix(s.clone()),
        Pred::SuffixIc(s) => Anchor::SuffixIc(s.clone()),
        Pred::Wildcard(w) => {
            // A wildcard's literal ends are a prefix and a suffix every match must have.
            if w.is_literal() {
                Anchor::Str(w.head().into())
            } else if !w.head().is_empty() {
                Anchor::Prefix(w.head().into())
            } else if !w.tail().is_empty() {
                Anchor::Suffix(w.tail().into())
            } else {
                Anchor::Present
            }
        }
        Pred::Ip(r) => match cidr_of(r.lo, r.hi) {
            Some((net, bits)) => Anchor::Net(net, bits),
            None => Anchor::Present,
        },
        Pred::Range(_) => Anchor::Range,
        Pred::Exists
        | Pred::NotStr(_)
        | Pred::NotNum(_)
        | Pred::NotIc(_)
        | Pred::NotPrefix(_)
        | Pred::NotSuffix(_)
        | Pred::NotWildcard(_) => Anchor::Present,
    }
}

/// Entries keyed by their length, so that a value is looked up once per distinct length.
type Table = FxMap<Box<str>, Vec<u32>>;

#[derive(Default)]
struct Affixes {
    by_len: Vec<(usize, Table)>,
}

impl Affixes {
    fn add(&mut self, s: &str, branch: u32) {
        let len = s.len();
        let i = match self.by_len.iter().position(|(l, _)| *l == len) {
            Some(i) => i,
            None => {
                self.by_len.push((len, FxMap::default()));
                self.by_len.len() - 1
            }
        };
        if let Some((_, m)) = self.by_len.get_mut(i) {
            m.entry(s.into()).or_default().push(branch);
        }
    }

    fn seal(&mut self) {
        self.by_len.sort_by_key(|(l, _)| *l);
    }

    fn is_empty(&self) -> bool {
        self.by_len.is_empty()
    }

    fn prefixes(&self, s: &str, out: &mut impl FnMut(&[u32])) {
        for (len, m) in &self.by_len {
            if *len > s.len() {
                break;
            }
            if let Some(bs) = s.get(..*len).and_then(|k| m.get(k)) {
                out(bs);
            }
        }
    }

    fn suffixes(&self, s: &str, out: &mut impl FnMut(&[u32])) {
        for (len, m) in &self.by_len {
            if *len > s.len() {
                break;
            }
            if let Some(bs) = s.get(s.len() - *len..).and_then(|k| m.get(k)) {
                out(bs);
            }
        }
    }
}

/// The value index of one path.
#[derive(Default)]
struct PathIndex {
    strs: FxMap<Box<str>, Vec<u32>>,
    nums: FxMap<u64, Vec<u32>>,
    lits: FxMap<Box<str>, Vec<u32>>,
    trues: Vec<u32>,
    falses: Vec<u32>,
    nulls: Vec<u32>,
    folded: FxMap<Box<str>, Vec<u32>>,
    prefix: Affixes,
    prefix_ic: Affixes,
    suffix: Affixes,
    suffix_ic: Affixes,
    /// Per prefix length, networks to branches; IPv4 and IPv6 apart.
    nets: Vec<(u8, FxMap<Ip, Vec<u32>>)>,
    ranges: Vec<(NumRange, Vec<u32>)>,
    present: Vec<u32>,
    needs_fold: bool,
}

impl PathIndex {
    fn register(&mut self, p: &Pred, b: u32) {
        match anchor(p) {
            Anchor::Str(s) => self.strs.entry(s).or_default().push(b),
            Anchor::Num(k) => self.nums.entry(k).or_default().push(b),
            Anchor::Lit(s) => self.lits.entry(s).or_default().push(b),
            Anchor::Bool(true) => self.trues.push(b),
            Anchor::Bool(false) => self.falses.push(b),
            Anchor::Null => self.nulls.push(b),
            Anchor::Folded(s) => self.folded.entry(s).or_default().push(b),
            Anchor::Prefix(s) => self.prefix.add(&s, b),
            Anchor::PrefixIc(s) => self.prefix_ic.add(&s, b),
            Anchor::Suffix(s) => self.suffix.add(&s, b),
            Anchor::SuffixIc(s) => self.suffix_ic.add(&s, b),
            Anchor::Net(net, bits) => {
                let i = match self.nets.iter().position(|(l, _)| *l == bits) {
                    Some(i) => i,
                    None => {
                        self.nets.push((bits, FxMap::default()));
                        self.nets.len() - 1
                    }
                };
                if let Some((_, m)) = self.nets.get_mut(i) {
                    m.entry(net).or_default().push(b);
                }
            }
            Anchor::Range => {
                if let Pred::Range(r) = p {
                    match self.ranges.iter_mut().find(|(q, _)| q == r) {
                        Some((_, bs)) => bs.push(b),
                        None => self.ranges.push((r.clone(), vec![b])),
                    }
                }
            }
            Anchor::Present => self.present.push(b),
        }
    }

    fn seal(&mut self) {
        self.prefix.seal();
        self.prefix_ic.seal();
        self.suffix.seal();
        self.suffix_ic.seal();
        self.needs_fold =
            !self.folded.is_empty() || !self.prefix_ic.is_empty() || !self.suffix_ic.is_empty();
    }

    /// Calls `out` with every list of branches whose anchor this value may satisfy.
    fn candidates(
        &self,
        s: Option<&str>,
        v: &crate::event::Val,
        lit: &str,
        out: &mut impl FnMut(&[u32]),
    ) {
        use crate::event::Kind;
        if !self.present.is_empty() {
            out(&self.present);
        }
        match v.kind {
            Kind::Str | Kind::Decoded => {
                let Some(s) = s else { return };
                if !self.strs.is_empty()
                    && let Some(bs) = self.strs.get(s)
                {
                    out(bs);
                }
                self.prefix.prefixes(s, out);
                self.suffix.suffixes(s, out);
                if self.needs_fold {
                    let f = fold(s);
                    if let Some(bs) = self.folded.get(&*f) {
                        out(bs);
                    }
                    self.prefix_ic.prefixes(&f, out);
                    self.suffix_ic.suffixes(&f, out);
                }
                if !self.nets.is_empty()
                    && let Some(ip) = parse_ip(s)
                {
                    for (bits, m) in &self.nets {
                        if let Some(bs) = m.get(&mask(ip, *bits)) {
                            out(bs);
                        }
                    }
                }
            }
            Kind::Num => {
                if let Some(n) = v.num {
                    if !self.nums.is_empty()
                        && let Some(bs) = self.nums.get(&num_key(n))
                    {
                        out(bs);
                    }
                    for (r, bs) in &self.ranges {
                        if r.contains(n) {
                            out(bs);
                        }
                    }
                }
                if !self.lits.is_empty()
                    && let Some(bs) = self.lits.get(lit)
                {
                    out(bs);
                }
            }
            Kind::True => out(&self.trues),
            Kind::False => out(&self.falses),
            Kind::Null => out(&self.nulls),
        }
    }
}

/// All the patterns of a bus, compiled. Immutable, `Send + Sync`.
pub struct Matcher<K> {
    keys: Vec<K>,
    trie: PathTrie,
    n_paths: usize,
    branches: Vec<MBranch>,
    index: Vec<PathIndex>,
    always: Vec<u32>,
}

/// Per-thread working memory, so that matching allocates nothing in the steady state.
#[derive(Default)]
struct Scratch {
    flat: Flat,
    candidates: Vec<u32>,
    branch_seen: Vec<u32>,
    key_seen: Vec<u32>,
    generation: u32,
}

impl Scratch {
    fn begin(&mut self, branches: usize, keys: usize) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.branch_seen.iter_mut().for_each(|s| *s = 0);
            self.key_seen.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        if self.branch_seen.len() < branches {
            self.branch_seen.resize(branches, 0);
        }
        if self.key_seen.len() < keys {
            self.key_seen.resize(keys, 0);
        }
        self.candidates.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl<K: Clone + Eq + Hash> Matcher<K> {
    /// Keys whose pattern matches the event (JSON text of the full envelope object), each key at
    /// most once.
    pub fn matches(&self, event_json: &str) -> Result<Vec<K>, EventError> {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => self.run(&mut s, event_json),
            Err(_) => self.run(&mut Scratch::default(), event_json),
        })
    }

    /// True when no pattern was added: nothing can match.
    pub fn is_empty(&self) -> bool {
        self.branches.is_empty()
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    fn run(&self, s: &mut Scratch, text: &str) -> Result<Vec<K>, EventError> {
        s.flat.load(text, &self.trie, self.n_paths)?;
        s.begin(self.branches.len(), self.keys.len());
        let Scratch {
            flat,
            candidates,
            branch_seen,
            key_seen,
            generation,
        } = s;
        let generation = *generation;
        let mut push = |bs: &[u32]| {
            for &b in bs {
                if let Some(seen) = branch_seen.get_mut(b as usize)
                    && *seen != generation
                {
                    *seen = generation;
                    candidates.push(b);
                }
            }
        };
        push(&self.always);
        for v in &flat.vals {
            if let Some(ix) = self.index.get(v.path as usize) {
                ix.candidates(flat.str_of(v, text), v, flat.lit_of(v, text), &mut push);
            }
        }
        let mut out = Vec::new();
        for &b in candidates.iter() {
            let Some(br) = self.branches.get(b as usize) else {
                continue;
            };
            let Some(seen) = key_seen.get_mut(br.key as usize) else {
                continue;
            };
            if *seen == generation {
                continue;
            }
            if branch_matches(&br.conds, flat, text)? {
                *seen = generation;
                if let Some(k) = self.keys.get(br.key as usize) {
                    out.push(k.clone());
                }
            }
        }
        Ok(out)
    }
}
