//! Parsing and validation of one EventBridge pattern into its disjunctive normal form.
//!
//! Owns: the syntax of the language (operators, operands, `$or`), its validation with messages
//! that name the field and the reason, and the limits on size, nesting and `$or` expansion.
//! Must not: look at events, or know how many patterns a matcher holds.
//! Invariants: a compiled pattern is a non-empty list of branches (the `$or` alternatives
//! multiplied out); each branch is a non-empty list of conditions on distinct paths, sorted by
//! path in UTF-16 order (the order the reference visits fields in, which decides what
//! `exists: false` may look at); every operand has been checked, so matching cannot fail.

use std::borrow::Cow;
use std::sync::Arc;

use crate::PatternError;
use crate::json::{self, Json};
use crate::value::{
    Bound, IpRange, NumRange, Number, Wildcard, comparable, fold, parse_cidr, parse_ip,
};

/// Largest pattern text accepted, in bytes. AWS's quota for an event pattern was 2048 characters
/// and is 4096 today; we take the larger so that every pattern AWS accepts is accepted here.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// Deepest JSON nesting accepted in a pattern (objects and arrays together).
pub const MAX_PATTERN_DEPTH: usize = 32;

/// Most branches a pattern may expand to once its `$or`s are multiplied out. Each branch is
/// matched on its own, so this bounds the matcher's size per pattern.
pub const MAX_OR_BRANCHES: usize = 256;

/// One test on one event value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pred {
    /// An exact string, or `{"exactly": ...}`.
    Str(Box<str>),
    /// An exact number: by value, or by literal when the value is not comparable.
    Num(Number),
    Bool(bool),
    Null,
    /// An IP literal written as a plain string (equal addresses in any notation) or a `cidr`.
    Ip(IpRange),
    Prefix(Box<str>),
    /// Operand already folded.
    PrefixIc(Box<str>),
    Suffix(Box<str>),
    SuffixIc(Box<str>),
    EqIc(Box<str>),
    Wildcard(Wildcard),
    Range(NumRange),
    /// `{"exists": true}`: any value.
    Exists,
    NotStr(Vec<Box<str>>),
    NotNum(Vec<f64>),
    NotIc(Vec<Box<str>>),
    NotPrefix(Vec<Box<str>>),
    NotSuffix(Vec<Box<str>>),
    NotWildcard(Vec<Wildcard>),
}

/// The test on one field of one branch: a value at `path` satisfies one of `preds`, or, when
/// `absent` is set, no value is at `path` (`{"exists": false}`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cond {
    pub path: Arc<str>,
    pub preds: Arc<[Pred]>,
    pub absent: bool,
}

/// One conjunction of conditions; a pattern matches if any of its branches does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    pub conds: Vec<Cond>,
}

/// Field names that may not appear inside `$or`: the reference reserves them so that an
/// operator written one level too high is refused instead of read as a field.
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "html",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

fn field_err(field: &str, reason: impl Into<String>) -> PatternError {
    PatternError::Field {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// A branch under construction: fields in the order they were written, so that a later
/// definition of a path replaces an earlier one (the reference's `ruleOverriding`).
type Partial = Vec<(Arc<str>, Arc<[Pred]>, bool)>;

/// Parses and validates a pattern text.
pub(crate) fn compile(text: &str) -> Result<Vec<Branch>, PatternError> {
    if text.len() > MAX_PATTERN_BYTES {
        return Err(PatternError::TooLarge {
            size: text.len(),
            limit: MAX_PATTERN_BYTES,
        });
    }
    let root = json::parse(text, MAX_PATTERN_DEPTH).map_err(|e| PatternError::Syntax {
        offset: e.offset,
        reason: e.what,
    })?;
    let Json::Obj(members) = root else {
        return Err(PatternError::NotAnObject);
    };
    let mut branches: Vec<Partial> = Vec::new();
    let mut prefix = Vec::new();
    object(&members, &mut prefix, false, &mut branches)?;
    Ok(branches.into_iter().map(finish).collect())
}

fn finish(partial: Partial) -> Branch {
    let mut conds: Vec<Cond> = partial
        .into_iter()
        .map(|(path, preds, absent)| Cond {
            path,
            preds,
            absent,
        })
        .collect();
    conds.sort_by(|a, b| a.path.encode_utf16().cmp(b.path.encode_utf16()));
    Branch { conds }
}

fn join(prefix: &[&str], key: &str) -> String {
    let mut s = String::new();
    for p in prefix {
        s.push_str(p);
        s.push('.');
    }
    s.push_str(key);
    s
}

fn object<'a>(
    members: &'a [(Cow<'a, str>, Json<'a>)],
    prefix: &mut Vec<&'a str>,
    in_or: bool,
    branches: &mut Vec<Partial>,
) -> Result<(), PatternError> {
    if members.is_empty() {
        return Err(if prefix.is_empty() {
            PatternError::Empty
        } else {
            field_err(&prefix.join("."), "empty object: name at least one field")
        });
    }
    for (key, value) in members {
        if key == "$or" {
            or(value, prefix, branches)?;
            continue;
        }
        let path = join(prefix, key);
        if in_or && RESERVED_IN_OR.contains(&key.as_ref()) {
            return Err(field_err(
                &path,
                format!("\"{key}\" is an operator name and cannot be used as a field inside $or"),
            ));
        }
        match value {
            Json::Obj(inner) => {
                prefix.push(key);
                object(inner, prefix, in_or, branches)?;
                prefix.pop();
            }
            Json::Arr(items) => {
                let (preds, absent) = field_list(items, &path)?;
                let (path, preds): (Arc<str>, Arc<[Pred]>) = (path.into(), preds.into());
                if branches.is_empty() {
                    branches.push(Vec::new());
                }
                for b in branches.iter_mut() {
                    b.retain(|(p, _, _)| *p != path);
                    b.push((path.clone(), preds.clone(), absent));
                }
            }
            _ => {
                return Err(field_err(
                    &path,
                    "must be an object or a list of values, e.g. [\"value\"]",
                ));
            }
        }
    }
    Ok(())
}

fn or<'a>(
    value: &'a Json<'a>,
    prefix: &mut Vec<&'a str>,
    branches: &mut Vec<Partial>,
) -> Result<(), PatternError> {
    let here = join(prefix, "$or");
    let Json::Arr(alternatives) = value else {
        return Err(field_err(
            &here,
            "$or must be a list of at least two objects",
        ));
    };
    if alternatives.len() < 2 {
        return Err(field_err(
            &here,
            format!(
                "$or needs at least two alternatives, found {}",
                alternatives.len()
            ),
        ));
    }
    let mut current = std::mem::take(branches);
    if current.is_empty() {
        current.push(Vec::new());
    }
    for alt in alternatives {
        let Json::Obj(members) = alt else {
            return Err(field_err(
                &here,
                "every alternative of $or must be an object",
            ));
        };
        let mut forked = current.clone();
        object(members, prefix, true, &mut forked)?;
        branches.extend(forked);
        if branches.len() > MAX_OR_BRANCHES {
            return Err(field_err(
                &here,
                format!("$or expands the pattern to more than {MAX_OR_BRANCHES} alternatives"),
            ));
        }
    }
    Ok(())
}

fn field_list(items: &[Json<'_>], path: &str) -> Result<(Vec<Pred>, bool), PatternError> {
    if items.is_empty() {
        return Err(field_err(path, "empty list: give at least one value"));
    }
    let mut preds = Vec::with_capacity(items.len());
    let mut absent = false;
    for item in items {
        match item {
            Json::Str(s) => preds.push(match parse_ip(s) {
                Some(ip) => Pred::Ip(IpRange { lo: ip, hi: ip }),
                None => Pred::Str(s.as_ref().into()),
            }),
            Json::Num(lit) => preds.push(Pred::Num(Number::new(lit))),
            Json::Bool(b) => preds.push(Pred::Bool(*b)),
            Json::Null => preds.push(Pred::Null),
            Json::Obj(members) => match operator(members, path)? {
                Some(p) => preds.push(p),
                None => absent = true,
            },
            Json::Arr(_) => {
                return Err(field_err(
                    path,
                    "a list value must be a string, number, boolean, null or an operator object, not a list",
                ));
            }
        }
    }
    Ok((preds, absent))
}

fn string_operand<'j>(
    op: &str,
    operand: &'j Json<'_>,
    path: &str,
) -> Result<&'j str, PatternError> {
    match operand {
        Json::Str(s) => Ok(s),
        _ => Err(field_err(path, format!("{op} needs a string operand"))),
    }
}

/// Reads `{"op": operand}`. `None` stands for `{"exists": false}`.
fn operator(
    members: &[(Cow<'_, str>, Json<'_>)],
    path: &str,
) -> Result<Option<Pred>, PatternError> {
    let [(op, operand)] = members else {
        return Err(field_err(
            path,
            if members.is_empty() {
                "empty operator object: expected one of prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists, cidr".to_string()
            } else {
                format!(
                    "an operator object must have exactly one key, found {}",
                    members.len()
                )
            },
        ));
    };
    let op = op.as_ref();
    Ok(Some(match op {
        "exactly" => Pred::Str(string_operand(op, operand, path)?.into()),
        "prefix" | "suffix" => {
            let suffix = op == "suffix";
            match operand {
                Json::Str(s) if suffix => Pred::Suffix(s.as_ref().into()),
                Json::Str(s) => Pred::Prefix(s.as_ref().into()),
                Json::Obj(inner) => match inner.as_slice() {
                    [(k, v)] if k == "equals-ignore-case" => {
                        let s = fold(string_operand("equals-ignore-case", v, path)?);
                        if suffix {
                            Pred::SuffixIc(s.into())
                        } else {
                            Pred::PrefixIc(s.into())
                        }
                    }
                    [(k, _)] => {
                        return Err(field_err(
                            path,
                            format!(
                                "unsupported operator \"{k}\" inside {op}: only equals-ignore-case"
                            ),
                        ));
                    }
                    _ => {
                        return Err(field_err(
                            path,
                            format!("{op} takes a string or {{\"equals-ignore-case\": string}}"),
                        ));
                    }
                },
                _ => {
                    return Err(field_err(
                        path,
                        format!(
                            "{op} needs a string operand or {{\"equals-ignore-case\": string}}"
                        ),
                    ));
                }
            }
        }
        "equals-ignore-case" => Pred::EqIc(fold(string_operand(op, operand, path)?).into()),
        "wildcard" => {
            let w = Wildcard::parse(string_operand(op, operand, path)?)
                .map_err(|e| field_err(path, e))?;
            Pred::Wildcard(w)
        }
        "numeric" => numeric(operand, path)?,
        "anything-but" => anything_but(operand, path)?,
        "exists" => match operand {
            Json::Bool(true) => Pred::Exists,
            Json::Bool(false) => return Ok(None),
            _ => return Err(field_err(path, "exists needs true or false")),
        },
        "cidr" => Pred::Ip(
            parse_cidr(string_operand(op, operand, path)?).map_err(|e| field_err(path, e))?,
        ),
        other => {
            return Err(field_err(
                path,
                format!("unknown operator \"{other}\" (operators are case-sensitive)"),
            ));
        }
    }))
}

fn bound(item: Option<&Json<'_>>, op: &str, path: &str) -> Result<f64, PatternError> {
    match item {
        Some(Json::Num(lit)) => comparable(lit).ok_or_else(|| {
            field_err(
                path,
                format!("numeric operand {lit} of \"{op}\" is out of the range of a double"),
            )
        }),
        _ => Err(field_err(
            path,
            format!("numeric operator \"{op}\" must be followed by a number"),
        )),
    }
}

fn numeric(operand: &Json<'_>, path: &str) -> Result<Pred, PatternError> {
    let Json::Arr(items) = operand else {
        return Err(field_err(
            path,
            "numeric needs a list such as [\">\", 0, \"<=\", 5]",
        ));
    };
    let op_at = |i: usize| -> Result<&str, PatternError> {
        match items.get(i) {
            Some(Json::Str(s)) => Ok(s),
            Some(_) => Err(field_err(
                path,
                "numeric: expected an operator string (=, <, <=, >, >=)",
            )),
            None => Err(field_err(
                path,
                "numeric needs at least an operator and a number",
            )),
        }
    };
    let too_many = || field_err(path, "numeric: too many elements in the range");
    let first = op_at(0)?;
    let v = bound(items.get(1), first, path)?;
    let range = match first {
        "=" => {
            if items.len() > 2 {
                return Err(too_many());
            }
            let b = Some(Bound {
                val: v,
                inclusive: true,
            });
            NumRange { lo: b, hi: b }
        }
        "<" | "<=" => {
            if items.len() > 2 {
                return Err(field_err(
                    path,
                    "numeric: an upper bound must come last; write the lower bound (> or >=) first",
                ));
            }
            NumRange {
                lo: None,
                hi: Some(Bound {
                    val: v,
                    inclusive: first == "<=",
                }),
            }
        }
        ">" | ">=" => {
            let lo = Some(Bound {
                val: v,
                inclusive: first == ">=",
            });
            if items.len() == 2 {
                NumRange { lo, hi: None }
            } else {
                let second = op_at(2)?;
                if second != "<" && second != "<=" {
                    return Err(field_err(
                        path,
                        format!(
                            "numeric: after a lower bound expected < or <=, found \"{second}\""
                        ),
                    ));
                }
                let top = bound(items.get(3), second, path)?;
                if items.len() > 4 {
                    return Err(too_many());
                }
                if v >= top {
                    return Err(field_err(
                        path,
                        format!("numeric range lower bound {v} is not below upper bound {top}"),
                    ));
                }
                NumRange {
                    lo,
                    hi: Some(Bound {
                        val: top,
                        inclusive: second == "<=",
                    }),
                }
            }
        }
        other => {
            return Err(field_err(
                path,
                format!("unknown numeric operator \"{other}\" (use =, <, <=, > or >=)"),
            ));
        }
    };
    Ok(Pred::Range(range))
}

/// The strings of an operand that is a string or a non-empty list of strings.
fn strings<'j>(
    operand: &'j Json<'_>,
    what: &str,
    path: &str,
) -> Result<Vec<&'j str>, PatternError> {
    let bad = || {
        field_err(
            path,
            format!("{what} needs a string or a non-empty list of strings"),
        )
    };
    match operand {
        Json::Str(s) => Ok(vec![s.as_ref()]),
        Json::Arr(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Json::Str(s) => Ok(s.as_ref()),
                _ => Err(bad()),
            })
            .collect(),
        _ => Err(bad()),
    }
}

fn anything_but(operand: &Json<'_>, path: &str) -> Result<Pred, PatternError> {
    let number = |lit: &str| {
        comparable(lit).ok_or_else(|| {
            field_err(
                path,
                format!("anything-but number {lit} is out of the range of a double"),
            )
        })
    };
    Ok(match operand {
        Json::Str(s) => Pred::NotStr(vec![s.as_ref().into()]),
        Json::Num(lit) => Pred::NotNum(vec![number(lit)?]),
        Json::Arr(items) => {
            if items.iter().all(|i| matches!(i, Json::Str(_))) && !items.is_empty() {
                Pred::NotStr(
                    items
                        .iter()
                        .filter_map(|i| match i {
                            Json::Str(s) => Some(s.as_ref().into()),
                            _ => None,
                        })
                        .collect(),
                )
            } else if items.iter().all(|i| matches!(i, Json::Num(_))) && !items.is_empty() {
                let mut nums = Vec::with_capacity(items.len());
                for i in items {
                    if let Json::Num(lit) = i {
                        nums.push(number(lit)?);
                    }
                }
                Pred::NotNum(nums)
            } else {
                return Err(field_err(
                    path,
                    "anything-but list must be non-empty and hold only strings or only numbers",
                ));
            }
        }
        Json::Obj(members) => {
            let [(op, inner)] = members.as_slice() else {
                return Err(field_err(
                    path,
                    "anything-but object must have exactly one key: equals-ignore-case, prefix, suffix or wildcard",
                ));
            };
            let what = format!("anything-but/{op}");
            match op.as_ref() {
                "equals-ignore-case" => Pred::NotIc(
                    strings(inner, &what, path)?
                        .into_iter()
                        .map(|s| fold(s).into())
                        .collect(),
                ),
                "prefix" | "suffix" => {
                    let list = strings(inner, &what, path)?;
                    if list.iter().any(|s| s.is_empty()) {
                        return Err(field_err(
                            path,
                            format!("{what}: an empty {op} is not allowed"),
                        ));
                    }
                    let list = list.into_iter().map(Into::into).collect();
                    if op == "prefix" {
                        Pred::NotPrefix(list)
                    } else {
                        Pred::NotSuffix(list)
                    }
                }
                "wildcard" => Pred::NotWildcard(
                    strings(inner, &what, path)?
                        .into_iter()
                        .map(Wildcard::parse)
                        .collect::<Result<_, _>>()
                        .map_err(|e| field_err(path, e))?,
                ),
                other => {
                    return Err(field_err(
                        path,
                        format!("unsupported operator \"{other}\" inside anything-but"),
                    ));
                }
            }
        }
        _ => {
            return Err(field_err(
                path,
                "anything-but needs a string, a number, a list of either, or an operator object",
            ));
        }
    })
}
