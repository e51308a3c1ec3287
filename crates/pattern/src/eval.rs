//! Deciding whether one branch of a pattern matches a flattened event, array-consistently.
//!
//! Owns: the meaning of each operator on an event value, the search for one value per
//! condition such that all chosen values agree on every array they share, and the budget that
//! bounds that search.
//! Must not: allocate on the common path, or take more steps than its budget on any input.
//! Invariants: conditions are visited in path order, and `exists: false` only looks at values
//! consistent with those chosen so far, as the reference does. The values consistent with the
//! choices so far are found by range, never by scanning the others: values are in document
//! order, so what a chosen element of an array rules out is the rest of that array, two ranges.
//! The search prunes a value that adds no array constraint (if it failed, every other choice
//! fails too, unless an `exists: false` follows; past a few steps, constraints on arrays no later
//! condition can see do not count), remembers each operator verdict, and, past a few more steps,
//! memoises failed (condition, relevant constraints) states. When arrays nest along the keys of
//! the event, the relevant constraints of a condition are the elements of the arrays it shares
//! with earlier ones, so the work is a few steps per value and condition: linear in the event.
//! Arrays reached both through a dotted key (`{"a.b": [...]}`) and through nested objects
//! (`{"a": {"b": [...]}}`) are different arrays on the same paths, and then array-consistent
//! matching can encode satisfiability; the budget bounds the search there, and an event that
//! exhausts it is refused rather than matched or dropped.

use std::collections::HashSet;
use std::sync::Arc;

use crate::EventError;
use crate::event::{Flat, Kind, Val};
use crate::pattern::Pred;
use crate::value::{fold, parse_ip};

/// A condition with its path interned.
#[derive(Debug, Clone)]
pub(crate) struct PCond {
    pub path: u32,
    pub preds: Arc<[Pred]>,
    pub absent: bool,
}

/// Does one event value satisfy one operator?
pub(crate) fn pred_matches(p: &Pred, v: &Val, flat: &Flat, text: &str) -> bool {
    let s = flat.str_of(v, text);
    match p {
        Pred::Str(x) => s == Some(&**x),
        Pred::Num(n) => v.kind == Kind::Num && n.matches(flat.lit_of(v, text), v.num),
        Pred::Bool(b) => v.kind == if *b { Kind::True } else { Kind::False },
        Pred::Null => v.kind == Kind::Null,
        Pred::Ip(r) => s.and_then(parse_ip).is_some_and(|ip| r.contains(ip)),
        Pred::Prefix(x) => s.is_some_and(|s| s.starts_with(&**x)),
        Pred::Suffix(x) => s.is_some_and(|s| s.ends_with(&**x)),
        Pred::PrefixIc(x) => s.is_some_and(|s| fold(s).starts_with(&**x)),
        Pred::SuffixIc(x) => s.is_some_and(|s| fold(s).ends_with(&**x)),
        Pred::EqIc(x) => s.is_some_and(|s| *fold(s) == **x),
        Pred::Wildcard(w) => s.is_some_and(|s| w.matches(s)),
        Pred::Range(r) => v.num.is_some_and(|n| r.contains(n)),
        Pred::Exists => true,
        Pred::NotStr(xs) => !s.is_some_and(|s| xs.iter().any(|x| **x == *s)),
        Pred::NotNum(xs) => !v.num.is_some_and(|n| xs.contains(&n)),
        Pred::NotIc(xs) => !s.is_some_and(|s| {
            let f = fold(s);
            xs.iter().any(|x| **x == *f)
        }),
        Pred::NotPrefix(xs) => !s.is_some_and(|s| xs.iter().any(|x| s.starts_with(&**x))),
        Pred::NotSuffix(xs) => !s.is_some_and(|s| xs.iter().any(|x| s.ends_with(&**x))),
        Pred::NotWildcard(ws) => !s.is_some_and(|s| ws.iter().any(|w| w.matches(s))),
    }
}

/// Steps after which the arrays that later conditions can see are worked out, so that
/// constraints on other arrays are ignored by the pruning and the memo, and verdicts start being
/// remembered.
const RELEVANCE_AFTER_STEPS: u64 = 64;

/// Steps after which failed states start being remembered.
const MEMO_AFTER_STEPS: u64 = 1024;

/// Matching steps allowed per value the event holds on a branch's paths, per condition of the
/// branch. A step is one value looked at or one condition entered; on events whose arrays nest
/// along their keys the search takes a few steps per value and condition (see the module's
/// invariants), so only an event built to defeat it reaches this.
pub const MATCH_STEPS_PER_VALUE: u64 = 16;

/// Matching steps always allowed for one branch, however small the event.
pub const MATCH_STEPS_MIN: u64 = 10_000;

/// A condition index and the relevant (array, index) constraints under which it failed.
type FailedState = (usize, Vec<(u32, u32)>);

/// A constraint from a chosen value: `array` at element `index`. The values inside the array are
/// `vals[whole.0..whole.1]`, and inside that element `vals[elem.0..elem.1]`.
#[derive(Debug, Clone, Copy)]
struct Pin {
    array: u32,
    index: u32,
    whole: (u32, u32),
    elem: (u32, u32),
}

/// A verdict of a condition's operators on one value, once known.
const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;

struct Search<'a> {
    conds: &'a [PCond],
    flat: &'a Flat,
    text: &'a str,
    /// The constraints of the values chosen so far; each array at most once, and with every
    /// array its enclosing arrays (a value's membership lists them all).
    merged: Vec<Pin>,
    /// The ranges of `flat.vals` consistent with `merged`, pushed by each level of the search
    /// above those of the levels below it.
    regions: Vec<(u32, u32)>,
    excluded: Vec<(u32, u32)>,
    steps: u64,
    budget: u64,
    over: bool,
    /// Index of the last `exists: false` condition: more constraints make absence easier, so
    /// the pruning below is only sound after it.
    last_absent: Option<usize>,
    /// `relevant[i]`: sorted ids of the arrays holding any value of conditions `i..`; only
    /// constraints on those can change the outcome from condition `i` on.
    relevant: Option<Vec<Vec<u32>>>,
    /// Created only once memoising starts: most searches never get there.
    failed: Option<HashSet<FailedState>>,
    /// Where each condition's verdicts start, and the verdicts (by position of the value among
    /// its path's values), so that no operator runs twice on one value, however long.
    verdicts: Option<(Vec<usize>, Vec<u8>)>,
}

impl Search<'_> {
    /// Counts one step; false once the budget is spent.
    #[inline]
    fn tick(&mut self) -> bool {
        self.steps += 1;
        if self.steps > self.budget {
            self.over = true;
        }
        !self.over
    }

    fn compute_relevance(&mut self) {
        let mut acc: Vec<u32> = Vec::new();
        let mut out = vec![Vec::new(); self.conds.len() + 1];
        for (i, c) in self.conds.iter().enumerate().rev() {
            for v in self.flat.at(c.path) {
                acc.extend(self.flat.membership(v).iter().map(|&(a, _)| a));
            }
            acc.sort_unstable();
            acc.dedup();
            if let Some(slot) = out.get_mut(i) {
                slot.clone_from(&acc);
            }
        }
        self.relevant = Some(out);
        let mut starts = Vec::with_capacity(self.conds.len());
        let mut total = 0;
        for c in self.conds {
            starts.push(total);
            total += self.flat.indices_at(c.path).len();
        }
        self.verdicts = Some((starts, vec![UNKNOWN; total]));
    }

    /// Does a constraint on `array` matter from condition `at` on?
    fn matters(&self, at: usize, array: u32) -> bool {
        match &self.relevant {
            Some(r) => r
                .get(at)
                .is_some_and(|arrays| arrays.binary_search(&array).is_ok()),
            None => true,
        }
    }

    fn memo_key(&self, at: usize) -> Vec<(u32, u32)> {
        let mut key: Vec<(u32, u32)> = self
            .merged
            .iter()
            .filter(|p| self.matters(at, p.array))
            .map(|p| (p.array, p.index))
            .collect();
        key.sort_unstable();
        key
    }

    fn go(&mut self, at: usize) -> bool {
        let Some(c) = self.conds.get(at) else {
            return true;
        };
        if !self.tick() {
            return false;
        }
        if self.steps >= RELEVANCE_AFTER_STEPS && self.relevant.is_none() {
            self.compute_relevance();
        }
        let memo = self.steps > MEMO_AFTER_STEPS;
        if memo
            && let Some(failed) = &self.failed
            && failed.contains(&(at, self.memo_key(at)))
        {
            return false;
        }
        let ok = self.try_cond(c, at);
        if !ok && memo && !self.over {
            let key = self.memo_key(at);
            self.failed.get_or_insert_default().insert((at, key));
        }
        ok
    }

    /// Pushes the ranges of values consistent with `merged`: everything but, for each
    /// constraint, the rest of its array. Returns where they start in `regions`.
    fn push_regions(&mut self) -> usize {
        let base = self.regions.len();
        self.excluded.clear();
        for p in &self.merged {
            if p.whole.0 < p.elem.0 {
                self.excluded.push((p.whole.0, p.elem.0));
            }
            if p.elem.1 < p.whole.1 {
                self.excluded.push((p.elem.1, p.whole.1));
            }
        }
        self.excluded.sort_unstable();
        let mut from = 0u32;
        for &(start, end) in &self.excluded {
            if start > from {
                self.regions.push((from, start));
            }
            from = from.max(end);
        }
        let n = self.flat.vals.len() as u32;
        if from < n {
            self.regions.push((from, n));
        }
        base
    }

    /// Do `c`'s operators accept `v`, the value at position `pos` among its path's values?
    fn accepts(&mut self, c: &PCond, at: usize, pos: usize, v: &Val) -> bool {
        let slot = self
            .verdicts
            .as_ref()
            .and_then(|(starts, _)| starts.get(at))
            .map(|&s| s + pos);
        if let Some(i) = slot
            && let Some((_, known)) = &self.verdicts
            && let Some(&known) = known.get(i)
            && known != UNKNOWN
        {
            return known == YES;
        }
        let yes = c
            .preds
            .iter()
            .any(|p| pred_matches(p, v, self.flat, self.text));
        if let Some(i) = slot
            && let Some((_, known)) = &mut self.verdicts
            && let Some(known) = known.get_mut(i)
        {
            *known = if yes { YES } else { NO };
        }
        yes
    }

    fn try_cond(&mut self, c: &PCond, at: usize) -> bool {
        let flat = self.flat;
        let values = flat.indices_at(c.path);
        let base = self.push_regions();
        let end = self.regions.len();
        let mut any_consistent = false;
        let mut decided = None;
        'regions: for r in base..end {
            let Some(&(lo, hi)) = self.regions.get(r) else {
                break;
            };
            let mut pos = values.partition_point(|&i| i < lo);
            while let Some(&vi) = values.get(pos).filter(|&&i| i < hi) {
                pos += 1;
                if !self.tick() {
                    decided = Some(false);
                    break 'regions;
                }
                any_consistent = true;
                let Some(v) = flat.vals.get(vi as usize) else {
                    continue;
                };
                if !self.accepts(c, at, pos - 1, v) {
                    continue;
                }
                let before = self.merged.len();
                let mut added = false;
                for &(array, index) in flat.membership(v) {
                    if !self.merged[..before].iter().any(|p| p.array == array) {
                        let (whole, elem) = flat.element(array, index);
                        self.merged.push(Pin {
                            array,
                            index,
                            whole,
                            elem,
                        });
                        added |= self.matters(at + 1, array);
                    }
                }
                let ok = self.go(at + 1);
                self.merged.truncate(before);
                if ok {
                    decided = Some(true);
                    break 'regions;
                }
                if self.over || (!added && self.last_absent.is_none_or(|l| l <= at)) {
                    // Every other value would constrain the rest at least as much as this one did.
                    decided = Some(false);
                    break 'regions;
                }
            }
        }
        self.regions.truncate(base);
        match decided {
            Some(ok) => ok,
            None => c.absent && !any_consistent && self.go(at + 1),
        }
    }
}

/// Does the branch made of `conds` (sorted by path) match the event? An event that would take
/// the search past its budget (`MATCH_STEPS_PER_VALUE` steps per value on the branch's paths
/// and condition, and at least `MATCH_STEPS_MIN`) is refused instead.
pub(crate) fn branch_matches(conds: &[PCond], flat: &Flat, text: &str) -> Result<bool, EventError> {
    let (ok, s) = search(conds, flat, text);
    if s.over {
        Err(EventError::TooCostly { budget: s.budget })
    } else {
        Ok(ok)
    }
}

fn search<'a>(conds: &'a [PCond], flat: &'a Flat, text: &'a str) -> (bool, Search<'a>) {
    let values: u64 = conds
        .iter()
        .map(|c| flat.indices_at(c.path).len() as u64)
        .sum();
    let budget = MATCH_STEPS_MIN.max(
        MATCH_STEPS_PER_VALUE
            .saturating_mul(values + 1)
            .saturating_mul(conds.len() as u64),
    );
    let mut s = Search {
        conds,
        flat,
        text,
        merged: Vec::new(),
        regions: Vec::new(),
        excluded: Vec::new(),
        steps: 0,
        budget,
        over: false,
        last_absent: conds.iter().rposition(|c| c.absent),
        relevant: None,
        failed: None,
        verdicts: None,
    };
    let ok = s.go(0);
    (ok, s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pattern;

    /// Steps the search takes on an event whose `field` is an array of `count` copies of
    /// `element` (all branches of the pattern, which must not match).
    fn steps(pattern: &str, element: &str, count: usize) -> u64 {
        let items = vec![element; count].join(",");
        let event = format!(r#"{{"rows":[{items}]}}"#);
        let p = Pattern::parse(pattern).expect("valid");
        let c = &*p.inner;
        let mut flat = Flat::default();
        flat.load(&event, &c.trie, c.paths).expect("valid event");
        c.program
            .iter()
            .map(|conds| {
                let (ok, s) = search(conds, &flat, &event);
                assert!(!ok && !s.over, "{pattern}");
                s.steps
            })
            .sum()
    }

    /// The work, counted in steps, grows with the array, not with its square (it was quadratic:
    /// each element chosen for one field scanned every element for the next).
    #[test]
    fn steps_grow_linearly_with_an_array_of_objects() {
        for (pattern, element) in [
            (
                r#"{"rows":{"sku":["A"],"status":["shipped"]}}"#,
                r#"{"sku":"A","status":"pending"}"#,
            ),
            (
                r#"{"rows":{"a":[{"prefix":"p"}],"b":[{"suffix":"s"}],"c":[{"wildcard":"*x*"}],"d":[{"anything-but":"n"}],"e":[{"numeric":[">",1]}],"f":[{"equals-ignore-case":"AB"}],"g":[{"cidr":"10.0.0.0/8"}],"h":["last"]}}"#,
                r#"{"a":"p1","b":"1s","c":"axb","d":"y","e":5,"f":"ab","g":"10.0.0.1","h":"no"}"#,
            ),
            (
                r#"{"rows":{"$or":[{"kind":["x"],"code":[{"prefix":"E"}]},{"kind":["y"],"zflag":[{"exists":false}]}]}}"#,
                r#"{"kind":"y","code":"E1","zflag":1}"#,
            ),
            (
                r#"{"rows":{"tags":{"k":["env"],"v":["prod"]}}}"#,
                r#"{"tags":[{"k":"env","v":"dev"},{"k":"team","v":"prod"},{"k":"env","v":"qa"}]}"#,
            ),
        ] {
            let small = steps(pattern, element, 5_000);
            let large = steps(pattern, element, 20_000);
            assert!(
                large <= 4 * small + 100,
                "{pattern}: {small} then {large} steps"
            );
            let fields = pattern.matches("\":[").count() as u64;
            assert!(large <= 4 * 20_000 * fields, "{pattern}: {large} steps");
        }
    }
}
