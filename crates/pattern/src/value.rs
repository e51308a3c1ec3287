//! The scalar semantics of the language: number comparison, IP addresses, wildcards, case folding.
//!
//! Owns: how one pattern operand is compared with one event value.
//! Must not: know about paths, arrays or patterns as a whole.
//! Invariants: a number is "comparable" only if its literal converts to a finite double without
//! underflowing to zero, which is what the reference accepts in numeric patterns; anything else
//! can still be matched by its exact literal.

use std::borrow::Cow;

/// A number literal and, when it is comparable, its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Number {
    pub lit: Box<str>,
    pub val: Option<f64>,
}

impl Number {
    pub(crate) fn new(lit: &str) -> Self {
        Number {
            lit: lit.into(),
            val: comparable(lit),
        }
    }

    /// Exact matching of numbers: the same value, or, for numbers too big or too small to
    /// compare, the same literal.
    pub(crate) fn matches(&self, lit: &str, val: Option<f64>) -> bool {
        match (self.val, val) {
            (Some(a), Some(b)) => a == b,
            _ => *self.lit == *lit,
        }
    }
}

/// The value of a JSON number literal if it is a finite double that did not underflow to zero.
/// `-0` is folded into `0` so that hashing agrees with `==`.
pub(crate) fn comparable(lit: &str) -> Option<f64> {
    let v: f64 = lit.parse().ok()?;
    if !v.is_finite() {
        return None;
    }
    if v == 0.0 {
        let mantissa = lit.split(['e', 'E']).next().unwrap_or(lit);
        if mantissa.bytes().any(|b| matches!(b, b'1'..=b'9')) {
            return None;
        }
        return Some(0.0);
    }
    Some(v)
}

/// Key under which a comparable number is hashed.
pub(crate) fn num_key(v: f64) -> u64 {
    (v + 0.0).to_bits()
}

/// One end of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bound {
    pub val: f64,
    pub inclusive: bool,
}

/// A numeric range; `None` ends are unbounded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NumRange {
    pub lo: Option<Bound>,
    pub hi: Option<Bound>,
}

impl NumRange {
    pub(crate) fn contains(&self, v: f64) -> bool {
        let above = match self.lo {
            None => true,
            Some(b) => v > b.val || (b.inclusive && v == b.val),
        };
        let below = match self.hi {
            None => true,
            Some(b) => v < b.val || (b.inclusive && v == b.val),
        };
        above && below
    }
}

/// An IP address; IPv4-mapped IPv6 addresses are IPv4, as the reference's address parser makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Ip {
    V4(u32),
    V6(u128),
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpRange {
    pub lo: Ip,
    pub hi: Ip,
}

impl IpRange {
    pub(crate) fn contains(&self, ip: Ip) -> bool {
        match (self.lo, self.hi, ip) {
            (Ip::V4(lo), Ip::V4(hi), Ip::V4(x)) => lo <= x && x <= hi,
            (Ip::V6(lo), Ip::V6(hi), Ip::V6(x)) => lo <= x && x <= hi,
            _ => false,
        }
    }
}

/// Does the text have the shape of an IP literal? Only such strings are treated as addresses:
/// dotted quads of digits, or hex digits and colons with at least one colon.
fn looks_like_ip(s: &str) -> bool {
    looks_like_v4(s) || looks_like_v6(s)
}

fn looks_like_v4(s: &str) -> bool {
    let mut dots = 0;
    let mut run = 0;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' => run += 1,
            b'.' if run > 0 => {
                dots += 1;
                run = 0;
            }
            _ => return false,
        }
    }
    dots == 3 && run > 0
}

fn looks_like_v6(s: &str) -> bool {
    s.contains(':') && s.bytes().all(|b| b == b':' || b.is_ascii_hexdigit())
}

/// Parses an IP literal. `None` if the text is not one.
pub(crate) fn parse_ip(s: &str) -> Option<Ip> {
    let first = *s.as_bytes().first()?;
    if !first.is_ascii_hexdigit() && first != b':' {
        return None;
    }
    if looks_like_v4(s) {
        let mut v = 0u32;
        let mut octet = 0u32;
        for b in s.bytes() {
            if b == b'.' {
                v = (v << 8) | octet;
                octet = 0;
            } else {
                // Leading zeros are decimal, not octal, however many there are.
                octet = octet * 10 + u32::from(b - b'0');
                if octet > 255 {
                    return None;
                }
            }
        }
        return Some(Ip::V4((v << 8) | octet));
    }
    if !looks_like_v6(s) {
        return None;
    }
    let (head, tail, compressed) = match s.find("::") {
        Some(i) => (&s[..i], &s[i + 2..], true),
        None => (s, "", false),
    };
    if compressed && tail.contains("::") {
        return None;
    }
    // Each side of "::" folded into a number, with its count of 16-bit groups.
    let side = |part: &str| -> Option<(u128, u32)> {
        let mut v = 0u128;
        let mut n = 0u32;
        if part.is_empty() {
            return Some((0, 0));
        }
        for g in part.split(':') {
            if g.is_empty() || g.len() > 4 || n == 8 {
                return None;
            }
            v = (v << 16) | u128::from(u16::from_str_radix(g, 16).ok()?);
            n += 1;
        }
        Some((v, n))
    };
    let (hv, hn) = side(head)?;
    let (tv, tn) = side(tail)?;
    let total = hn + tn;
    if (compressed && total > 7) || (!compressed && total != 8) {
        return None;
    }
    let v = hv.checked_shl(16 * (8 - hn)).unwrap_or(0) | tv;
    if v >> 32 == 0xffff {
        return Some(Ip::V4(v as u32));
    }
    Some(Ip::V6(v))
}

/// Why a `cidr` operand is refused.
pub(crate) fn parse_cidr(s: &str) -> Result<IpRange, String> {
    let mut it = s.split('/');
    let (Some(addr), Some(bits), None) = (it.next(), it.next(), it.next()) else {
        return Err(format!("malformed CIDR {s:?}: exactly one '/' is required"));
    };
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "malformed CIDR {s:?}: mask bits must be a non-negative integer"
        ));
    }
    let bits: u32 = bits
        .parse()
        .map_err(|_| format!("malformed CIDR {s:?}: mask bits must be an integer"))?;
    if !looks_like_ip(addr) {
        return Err(format!(
            "malformed CIDR {s:?}: {addr:?} is not an IP address"
        ));
    }
    match parse_ip(addr) {
        Some(Ip::V4(a)) => {
            if bits > 32 {
                return Err(format!(
                    "malformed CIDR {s:?}: IPv4 mask bits must be at most 32"
                ));
            }
            let host = if bits == 0 {
                u32::MAX
            } else {
                u32::MAX >> bits
            };
            Ok(IpRange {
                lo: Ip::V4(a & !host),
                hi: Ip::V4(a | host),
            })
        }
        Some(Ip::V6(a)) => {
            if bits > 128 {
                return Err(format!(
                    "malformed CIDR {s:?}: IPv6 mask bits must be at most 128"
                ));
            }
            let host = if bits == 0 {
                u128::MAX
            } else {
                u128::MAX >> bits
            };
            Ok(IpRange {
                lo: Ip::V6(a & !host),
                hi: Ip::V6(a | host),
            })
        }
        None => Err(format!(
            "malformed CIDR {s:?}: {addr:?} is not a valid IP address"
        )),
    }
}

/// Case folding for the `equals-ignore-case` family: both sides are lower-cased, character by
/// character, so that the comparison is a plain byte comparison afterwards.
pub(crate) fn fold(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| !b.is_ascii_uppercase() && b < 0x80) {
        Cow::Borrowed(s)
    } else if s.is_ascii() {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Owned(s.chars().flat_map(char::to_lowercase).collect())
    }
}

/// The most `*` a wildcard operand may hold. The reference library has no fixed limit, but the
/// AWS service refuses operands such as `*:*:*:*:*:event-bus/*` as too complex; five keeps every
/// pattern AWS documents and bounds the matching cost.
pub(crate) const MAX_WILDCARD_STARS: usize = 5;

/// A wildcard operand: literal segments separated by `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wildcard {
    /// Always at least one segment; `n` stars make `n + 1` segments, some possibly empty.
    pub segments: Vec<Box<str>>,
}

impl Wildcard {
    /// Parses `\*` (a literal star) and `\\` (a literal backslash); any other escape, `**`, and
    /// more than [`MAX_WILDCARD_STARS`] stars are refused.
    pub(crate) fn parse(s: &str) -> Result<Wildcard, String> {
        let mut segments = Vec::new();
        let mut cur = String::new();
        let mut chars = s.chars().peekable();
        let mut pos = 0usize;
        let mut prev_star = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('*' | '\\')) => {
                        cur.push(e);
                        pos += 1;
                        prev_star = false;
                    }
                    Some(e) => {
                        return Err(format!(
                            "wildcard {s:?}: invalid escape '\\{e}' at position {pos} (only \\* and \\\\ are allowed)"
                        ));
                    }
                    None => {
                        return Err(format!("wildcard {s:?}: dangling '\\' at the end"));
                    }
                },
                '*' => {
                    if prev_star {
                        return Err(format!("wildcard {s:?}: consecutive '*' at position {pos}"));
                    }
                    prev_star = true;
                    segments.push(std::mem::take(&mut cur).into_boxed_str());
                }
                c => {
                    cur.push(c);
                    prev_star = false;
                }
            }
            pos += 1;
        }
        segments.push(cur.into_boxed_str());
        if segments.len() - 1 > MAX_WILDCARD_STARS {
            return Err(format!(
                "wildcard {s:?} is too complex: more than {MAX_WILDCARD_STARS} '*'"
            ));
        }
        Ok(Wildcard { segments })
    }

    /// The literal text before the first star, if the operand has a star.
    pub(crate) fn head(&self) -> &str {
        self.segments.first().map_or("", |s| s)
    }

    pub(crate) fn is_literal(&self) -> bool {
        self.segments.len() == 1
    }

    /// The literal text after the last star.
    pub(crate) fn tail(&self) -> &str {
        self.segments.last().map_or("", |s| s)
    }

    /// Glob matching with `*` only: anchor both ends, then find the middle segments leftmost
    /// first, which is optimal for this kind of pattern and linear in the text.
    pub(crate) fn matches(&self, s: &str) -> bool {
        match self.segments.as_slice() {
            [] => s.is_empty(),
            [only] => **only == *s,
            [head, middle @ .., tail] => {
                if s.len() < head.len() + tail.len()
                    || !s.starts_with(&**head)
                    || !s.ends_with(&**tail)
                {
                    return false;
                }
                let mut rest = &s[head.len()..s.len() - tail.len()];
                for seg in middle {
                    match rest.find(&**seg) {
                        Some(i) => rest = &rest[i + seg.len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value_with_full_double_precision() {
        let n = Number::new("300");
        assert!(n.matches("3.0e2", comparable("3.0e2")));
        assert!(n.matches("300.0", comparable("300.0")));
        assert!(!n.matches("300.0000000001", comparable("300.0000000001")));
        assert_eq!(comparable("1E309"), None);
        assert_eq!(comparable("1E-325"), None);
        assert_eq!(comparable("0e-999"), Some(0.0));
        assert_eq!(num_key(comparable("-0.0").unwrap_or(1.0)), num_key(0.0));
        let big = Number::new("1e400");
        assert!(big.matches("1e400", None));
        assert!(!big.matches("1E400", None));
    }

    #[test]
    fn ip_literals_and_cidrs() {
        assert_eq!(parse_ip("10.0.0.1"), Some(Ip::V4(0x0A00_0001)));
        assert_eq!(parse_ip("010.000.0.1"), Some(Ip::V4(0x0A00_0001)));
        assert_eq!(parse_ip("256.0.0.1"), None);
        assert_eq!(parse_ip("::1"), Some(Ip::V6(1)));
        assert_eq!(parse_ip("::ffff:a00:1"), Some(Ip::V4(0x0A00_0001)));
        assert_eq!(parse_ip("1:2:3:4:5:6:7:8:9"), None);
        assert_eq!(parse_ip("1::2::3"), None);
        assert_eq!(parse_ip("hello"), None);
        let r = parse_cidr("220.160.154.255/24").unwrap_or(IpRange {
            lo: Ip::V4(1),
            hi: Ip::V4(0),
        });
        assert!(r.contains(Ip::V4(0xDCA0_9A00)));
        assert!(r.contains(Ip::V4(0xDCA0_9AFF)));
        assert!(!r.contains(Ip::V4(0xDCA0_9B00)));
        assert!(parse_cidr("bad-filter").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("xxxx:db8:1234:1a00::/64").is_err());
        assert!(parse_cidr("2001:db8:1234:1a00::/64").is_ok());
    }

    #[test]
    fn wildcards() {
        let w = |s: &str| Wildcard::parse(s).unwrap_or(Wildcard { segments: vec![] });
        assert!(w("*/dir/*").matches("a/dir/b"));
        assert!(!w("*/dir/*").matches("a/dur/b"));
        assert!(w("a*a").matches("aa"));
        assert!(!w("aa*aa").matches("aaa"));
        assert!(w(r"a\*b").matches("a*b"));
        assert!(!w(r"a\*b").matches("axb"));
        assert!(w(r"a\\*").matches(r"a\bc"));
        assert!(w("").matches(""));
        assert!(Wildcard::parse("a**b").is_err());
        assert!(Wildcard::parse(r"a\d").is_err());
        assert!(Wildcard::parse("a\\").is_err());
        assert!(Wildcard::parse("*:*:*:*:*:event-bus/*").is_err());
    }
}
