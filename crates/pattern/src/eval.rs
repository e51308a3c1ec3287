//! Deciding whether one branch of a pattern matches a flattened event, array-consistently.
//!
//! Owns: the meaning of each operator on an event value, and the search for one value per
//! condition such that all chosen values agree on every array they share.
//! Must not: allocate on the common path, or take time exponential in the event on any input.
//! Invariants: conditions are visited in path order, and `exists: false` only looks at values
//! consistent with those chosen so far, as the reference does. The search prunes a value that
//! adds no array constraint (if it failed, every other choice fails too, unless an `exists: false`
//! follows; past a few steps, constraints on arrays no later condition can see do not count)
//! and, past a step budget, memoises failed (condition, relevant constraints) states, which bounds
//! its work by the number of distinct relevant array positions rather than by the number of
//! value combinations.

use std::collections::HashSet;
use std::sync::Arc;

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
/// constraints on other arrays are ignored by the pruning and the memo.
const RELEVANCE_AFTER_STEPS: u32 = 64;

/// Steps after which failed states start being remembered.
const MEMO_AFTER_STEPS: u32 = 4096;

/// A condition index and the relevant (array, index) constraints under which it failed.
type FailedState = (usize, Vec<(u32, u32)>);

struct Search<'a> {
    conds: &'a [PCond],
    flat: &'a Flat,
    text: &'a str,
    /// The (array, index) constraints of the values chosen so far; each array at most once.
    merged: Vec<(u32, u32)>,
    steps: u32,
    /// Index of the last `exists: false` condition: more constraints make absence easier, so
    /// the pruning below is only sound after it.
    last_absent: Option<usize>,
    /// `relevant[i]`: sorted ids of the arrays holding any value of conditions `i..`; only
    /// constraints on those can change the outcome from condition `i` on.
    relevant: Option<Vec<Vec<u32>>>,
    /// Created only once memoising starts: most searches never get there.
    failed: Option<HashSet<FailedState>>,
}

#[inline]
fn consistent(mem: &[(u32, u32)], merged: &[(u32, u32)]) -> bool {
    mem.iter().all(|&(a, i)| {
        merged
            .iter()
            .find(|&&(b, _)| b == a)
            .is_none_or(|&(_, j)| i == j)
    })
}

impl Search<'_> {
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
            .copied()
            .filter(|&(a, _)| self.matters(at, a))
            .collect();
        key.sort_unstable();
        key
    }

    fn go(&mut self, at: usize) -> bool {
        let Some(c) = self.conds.get(at) else {
            return true;
        };
        self.steps = self.steps.saturating_add(1);
        if self.steps == RELEVANCE_AFTER_STEPS {
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
        if !ok && memo {
            let key = self.memo_key(at);
            self.failed.get_or_insert_default().insert((at, key));
        }
        ok
    }

    fn try_cond(&mut self, c: &PCond, at: usize) -> bool {
        let flat = self.flat;
        let mut any_consistent = false;
        for v in flat.at(c.path) {
            let mem = flat.membership(v);
            if !consistent(mem, &self.merged) {
                continue;
            }
            any_consistent = true;
            if !c.preds.iter().any(|p| pred_matches(p, v, flat, self.text)) {
                continue;
            }
            let before = self.merged.len();
            let mut added = false;
            for &(a, i) in mem {
                if !self.merged[..before].iter().any(|&(b, _)| b == a) {
                    self.merged.push((a, i));
                    added |= self.matters(at + 1, a);
                }
            }
            let ok = self.go(at + 1);
            self.merged.truncate(before);
            if ok {
                return true;
            }
            if !added && self.last_absent.is_none_or(|l| l <= at) {
                // Every other value would constrain the rest at least as much as this one did.
                return false;
            }
        }
        c.absent && !any_consistent && self.go(at + 1)
    }
}

/// Does the branch made of `conds` (sorted by path) match the event?
pub(crate) fn branch_matches(conds: &[PCond], flat: &Flat, text: &str) -> bool {
    let mut s = Search {
        conds,
        flat,
        text,
        merged: Vec::new(),
        steps: 0,
        last_absent: conds.iter().rposition(|c| c.absent),
        relevant: None,
        failed: None,
    };
    s.go(0)
}
