//! Strict RFC 8259 JSON reading, our own, so that number literals keep their exact text.
//!
//! Owns: the byte-level lexer shared by the pattern parser (which builds a small tree) and the
//! event walker (which skips what no pattern names without building anything), and the check
//! that an event gives no key twice in one object ([`KeyCheck`]), which everything that reads an
//! event or a request body shares.
//! Must not: allocate for strings without escapes, recurse deeper than the caller's limit, or
//! panic on any input.
//! Invariants: the input is a `&str`, so it is valid UTF-8; the lexer only ever stops on ASCII
//! bytes, so every slice it takes lies on character boundaries.

use std::borrow::Cow;
use std::fmt;

/// A parsed JSON value. Numbers stay as their literal text: equality of numbers is decided later,
/// by the code that knows whether it wants the literal or the value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Num(&'a str),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// Members in document order; duplicates are kept so that the caller can refuse them.
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// Where and why a text is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.what)
    }
}

pub(crate) type JsonResult<T> = Result<T, SyntaxError>;

pub(crate) struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn src(&self) -> &'a str {
        self.src
    }

    pub(crate) fn new(src: &'a str) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
        }
    }

    pub(crate) fn err<T>(&self, what: &'static str) -> JsonResult<T> {
        Err(SyntaxError {
            offset: self.pos,
            what,
        })
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if b == b' ' || b == b'\n' || b == b'\r' || b == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Next significant byte, after whitespace, without consuming it.
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, c: u8, what: &'static str) -> JsonResult<()> {
        if self.eat(c) { Ok(()) } else { self.err(what) }
    }

    /// After the top-level value only whitespace may follow.
    pub(crate) fn end(&mut self) -> JsonResult<()> {
        self.ws();
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            self.err("unexpected text after the JSON value")
        }
    }

    /// Reads a string; the cursor must be on its opening quote.
    pub(crate) fn string(&mut self) -> JsonResult<Cow<'a, str>> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.pos += 1;
        let start = self.pos;
        // Fast path: most strings have no escapes and are returned as a borrowed slice.
        loop {
            self.skip_plain();
            match self.bytes.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    let s = &self.src[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(&b) if b < 0x20 => return self.err("control character in string"),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.src[start..self.pos]);
        loop {
            let run = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.src[run..self.pos]);
            match self.bytes.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => return self.err("control character in string"),
            }
        }
    }

    /// Skips a string without building it; the cursor must be on its opening quote.
    pub(crate) fn skip_string(&mut self) -> JsonResult<()> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.pos += 1;
        loop {
            self.skip_plain();
            match self.bytes.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape()?;
                }
                Some(&b) if b < 0x20 => return self.err("control character in string"),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Advances over string bytes that need no attention, eight at a time while none of them is
    /// a quote, a backslash or a control character: long free-text fields are the bulk of what
    /// the matcher reads.
    #[inline]
    fn skip_plain(&mut self) {
        while let Some(chunk) = self.bytes.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let special = special_bytes(u64::from_le_bytes(word));
            if special != 0 {
                // The lowest flagged byte is exact (borrows only propagate upwards).
                self.pos += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.pos += 8;
        }
    }

    /// Decodes one escape; the cursor is just after the backslash.
    fn escape(&mut self) -> JsonResult<char> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return self.err("unterminated string");
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xD800..0xDC00).contains(&hi) {
                    if self.bytes.get(self.pos) != Some(&b'\\')
                        || self.bytes.get(self.pos + 1) != Some(&b'u')
                    {
                        return self.err("unpaired surrogate in \\u escape");
                    }
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return self.err("unpaired surrogate in \\u escape");
                    }
                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    match char::from_u32(c) {
                        Some(c) => c,
                        None => return self.err("invalid \\u escape"),
                    }
                } else {
                    match char::from_u32(hi) {
                        Some(c) => c,
                        None => return self.err("unpaired surrogate in \\u escape"),
                    }
                }
            }
            _ => {
                self.pos -= 1;
                return self.err("invalid escape in string");
            }
        })
    }

    fn hex4(&mut self) -> JsonResult<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return self.err("truncated \\u escape");
            };
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return self.err("invalid hex digit in \\u escape"),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    /// Reads a number literal and returns its exact text.
    pub(crate) fn number(&mut self) -> JsonResult<&'a str> {
        let start = self.pos;
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.err("invalid number"),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
                return self.err("invalid number: digit expected after '.'");
            }
            self.digits();
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
                return self.err("invalid number: digit expected in exponent");
            }
            self.digits();
        }
        Ok(&self.src[start..self.pos])
    }

    fn digits(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8], what: &'static str) -> JsonResult<()> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// Reads a scalar at the cursor (after whitespace); `None` if the next value is a container.
    pub(crate) fn scalar(&mut self) -> JsonResult<Option<Json<'a>>> {
        match self.peek() {
            Some(b'"') => Ok(Some(Json::Str(self.string()?))),
            Some(b't') => self
                .literal(b"true", "invalid literal")
                .map(|()| Some(Json::Bool(true))),
            Some(b'f') => self
                .literal(b"false", "invalid literal")
                .map(|()| Some(Json::Bool(false))),
            Some(b'n') => self
                .literal(b"null", "invalid literal")
                .map(|()| Some(Json::Null)),
            Some(b'-' | b'0'..=b'9') => Ok(Some(Json::Num(self.number()?))),
            Some(b'{' | b'[') => Ok(None),
            Some(_) => self.err("expected a JSON value"),
            None => self.err("unexpected end of input"),
        }
    }

    /// Builds a tree of one value. `depth` is the nesting still allowed.
    pub(crate) fn value(&mut self, depth: usize) -> JsonResult<Json<'a>> {
        if let Some(v) = self.scalar()? {
            return Ok(v);
        }
        if depth == 0 {
            return self.err("nesting too deep");
        }
        if self.eat(b'[') {
            let mut items = Vec::new();
            if self.eat(b']') {
                return Ok(Json::Arr(items));
            }
            loop {
                items.push(self.value(depth - 1)?);
                if self.eat(b',') {
                    continue;
                }
                self.expect(b']', "expected ',' or ']' in an array")?;
                return Ok(Json::Arr(items));
            }
        }
        self.expect(b'{', "expected a JSON value")?;
        let mut members = Vec::new();
        if self.eat(b'}') {
            return Ok(Json::Obj(members));
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.expect(b':', "expected ':' after an object key")?;
            let v = self.value(depth - 1)?;
            members.push((key, v));
            if self.eat(b',') {
                continue;
            }
            self.expect(b'}', "expected ',' or '}' in an object")?;
            return Ok(Json::Obj(members));
        }
    }
}

/// Why an event could not be read: bad JSON, or a key given twice in one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    Syntax(SyntaxError),
    /// The dotted path of the repeated key, array positions as `[i]`.
    Duplicate(String),
}

impl From<SyntaxError> for ReadError {
    fn from(e: SyntaxError) -> Self {
        ReadError::Syntax(e)
    }
}

pub(crate) type ReadResult<T> = Result<T, ReadError>;

/// A key's text: in the source, or in [`KeyCheck`]'s buffer of decoded keys (it had escapes).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Span {
    Source(u32, u32),
    Decoded(u32, u32),
}

#[derive(Debug, Clone, Copy)]
enum Frame {
    /// An open object, whose keys are `keys[first..]`; `current` is the key being read.
    Object { first: u32, current: Option<Span> },
    /// An open array, reading element `index`.
    Array { index: u32 },
}

/// A key's fingerprint for the duplicate check: its length and its bytes folded eight at a time
/// (FxHash's multiply-rotate), cheap for the short keys events have. Not a defence against
/// collisions on purpose: equal fingerprints are only where the texts are compared.
fn fingerprint(key: &str) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut hash = key.len() as u64;
    let mut chunks = key.as_bytes().chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    (hash.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K)
}

/// Objects with up to this many keys are checked as each key arrives; wider ones are sorted
/// when they close, so that the check stays `O(n log n)` in the number of keys.
const CHECK_ON_ARRIVAL: usize = 32;

/// Refuses an object that gives the same key twice (once decoded: `"a"` and `"\u0061"` are the
/// same key), at any depth, and names the key by its path. Reused from one text to the next to
/// keep its allocations. One document must have one meaning: a filter that reads the first of
/// two keys and a receiver that reads the last would disagree about the same event.
#[derive(Debug, Default)]
pub(crate) struct KeyCheck {
    keys: Vec<Span>,
    /// `fingerprint` of each key in `keys`: two keys are compared byte by byte only when these
    /// are equal, which in a real object is only for the duplicate itself.
    fingerprints: Vec<u64>,
    decoded: String,
    frames: Vec<Frame>,
    order: Vec<u32>,
}

impl KeyCheck {
    pub(crate) fn reset(&mut self) {
        self.keys.clear();
        self.fingerprints.clear();
        self.decoded.clear();
        self.frames.clear();
    }

    pub(crate) fn text<'t>(&'t self, src: &'t str, span: Span) -> &'t str {
        let (text, start, end) = match span {
            Span::Source(s, e) => (src, s, e),
            Span::Decoded(s, e) => (self.decoded.as_str(), s, e),
        };
        text.get(start as usize..end as usize).unwrap_or("")
    }

    pub(crate) fn open_object(&mut self) {
        self.frames.push(Frame::Object {
            first: self.keys.len() as u32,
            current: None,
        });
    }

    /// Reads the key the cursor is on (a string) and checks it against the object's others.
    pub(crate) fn key(&mut self, lx: &mut Lexer<'_>) -> ReadResult<Span> {
        let span = match lx.string()? {
            Cow::Borrowed(s) => Span::Source((lx.pos - 1 - s.len()) as u32, (lx.pos - 1) as u32),
            Cow::Owned(s) => {
                let start = self.decoded.len() as u32;
                self.decoded.push_str(&s);
                Span::Decoded(start, self.decoded.len() as u32)
            }
        };
        let Some(Frame::Object { first, current }) = self.frames.last_mut() else {
            return Ok(span);
        };
        *current = Some(span);
        let first = *first as usize;
        let src = lx.src();
        let key = self.text(src, span);
        let print = fingerprint(key);
        if self.keys.len() - first < CHECK_ON_ARRIVAL {
            let mut earlier = self.keys[first..].iter().zip(&self.fingerprints[first..]);
            if earlier.any(|(&k, &p)| p == print && self.text(src, k) == key) {
                return Err(ReadError::Duplicate(self.path(src, None)));
            }
        }
        self.keys.push(span);
        self.fingerprints.push(print);
        Ok(span)
    }

    /// Closes the innermost object, checking a wide one's keys all at once.
    pub(crate) fn close_object(&mut self, src: &str) -> ReadResult<()> {
        let Some(&Frame::Object { first, .. }) = self.frames.last() else {
            return Ok(());
        };
        let first = first as usize;
        if self.keys.len() - first > CHECK_ON_ARRIVAL {
            let mut order = std::mem::take(&mut self.order);
            order.clear();
            order.extend(first as u32..self.keys.len() as u32);
            let key = |i: u32| {
                (
                    self.fingerprints[i as usize],
                    self.text(src, self.keys[i as usize]),
                )
            };
            // By fingerprint first: the texts are compared only where fingerprints tie.
            order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
            let repeated = order
                .windows(2)
                .find(|w| key(w[0]) == key(w[1]))
                .map(|w| self.keys[w[0] as usize]);
            self.order = order;
            if let Some(span) = repeated {
                return Err(ReadError::Duplicate(self.path(src, Some(span))));
            }
        }
        self.frames.pop();
        self.keys.truncate(first);
        self.fingerprints.truncate(first);
        // Keys with escapes are rare; their buffer is emptied once no object holds one.
        if self.keys.is_empty() {
            self.decoded.clear();
        }
        Ok(())
    }

    pub(crate) fn open_array(&mut self) {
        self.frames.push(Frame::Array { index: 0 });
    }

    pub(crate) fn next_element(&mut self) {
        if let Some(Frame::Array { index }) = self.frames.last_mut() {
            *index = index.wrapping_add(1);
        }
    }

    pub(crate) fn close_array(&mut self) {
        self.frames.pop();
    }

    /// The path to the key being read, or to `last` in the innermost object.
    fn path(&self, src: &str, last: Option<Span>) -> String {
        let mut out = String::new();
        let n = self.frames.len();
        for (i, frame) in self.frames.iter().enumerate() {
            match *frame {
                Frame::Array { index } => out.push_str(&format!("[{index}]")),
                Frame::Object { current, .. } => {
                    let span = if i + 1 == n {
                        last.or(current)
                    } else {
                        current
                    };
                    if let Some(span) = span {
                        if !out.is_empty() {
                            out.push('.');
                        }
                        out.push_str(self.text(src, span));
                    }
                }
            }
        }
        out
    }

    /// Skips one value of any kind, checking its syntax and its keys. `depth` is the nesting
    /// still allowed.
    pub(crate) fn skip_value(&mut self, lx: &mut Lexer<'_>, depth: usize) -> ReadResult<()> {
        match lx.peek() {
            Some(b'"') => Ok(lx.skip_string()?),
            Some(b'{') => {
                if depth == 0 {
                    return Ok(lx.err("nesting too deep")?);
                }
                lx.pos += 1;
                if lx.eat(b'}') {
                    return Ok(());
                }
                self.open_object();
                loop {
                    lx.ws();
                    self.key(lx)?;
                    lx.expect(b':', "expected ':' after an object key")?;
                    self.skip_value(lx, depth - 1)?;
                    if lx.eat(b',') {
                        continue;
                    }
                    lx.expect(b'}', "expected ',' or '}' in an object")?;
                    return self.close_object(lx.src());
                }
            }
            Some(b'[') => {
                if depth == 0 {
                    return Ok(lx.err("nesting too deep")?);
                }
                lx.pos += 1;
                if lx.eat(b']') {
                    return Ok(());
                }
                self.open_array();
                loop {
                    self.skip_value(lx, depth - 1)?;
                    if lx.eat(b',') {
                        self.next_element();
                        continue;
                    }
                    lx.expect(b']', "expected ',' or ']' in an array")?;
                    self.close_array();
                    return Ok(());
                }
            }
            _ => Ok(lx.scalar().map(drop)?),
        }
    }
}

/// Flags (high bit of each byte) the bytes of `w` that are `"`, `\` or below 0x20, using the
/// classic SWAR zero-byte test; in little-endian order the lowest flag is always exact.
#[inline]
fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let quote = zero_in(w ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(w ^ (ONES * u64::from(b'\\')));
    // A byte below 0x20 is one whose value minus 0x20 borrows; bytes >= 0x80 are excluded.
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    quote | backslash | control
}

/// Parses a whole text into a tree.
pub(crate) fn parse(src: &str, max_depth: usize) -> JsonResult<Json<'_>> {
    let mut lx = Lexer::new(src);
    let v = lx.value(max_depth)?;
    lx.end()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_text() {
        assert_eq!(parse("3.0e2", 4), Ok(Json::Num("3.0e2")));
        assert_eq!(parse(" -0.0 ", 4), Ok(Json::Num("-0.0")));
    }

    #[test]
    fn rejects_what_rfc_8259_rejects() {
        for bad in [
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "[1,]",
            "{\"a\":1,}",
            "{'a':1}",
            "\"\\x\"",
            "\"a\tb\"",
            "[1 2]",
            "nul",
            "{} x",
            "",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "NaN",
            "-",
        ] {
            assert!(parse(bad, 8).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn decodes_escapes_and_surrogate_pairs() {
        assert_eq!(
            parse(r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#, 1),
            Ok(Json::Str(Cow::Owned("a\"\\/\u{8}\u{c}\n\r\té😀".into())))
        );
    }

    /// The check as the event reader and publish bodies run it.
    fn duplicate(text: &str) -> Option<String> {
        match KeyCheck::default().skip_value(&mut Lexer::new(text), 16) {
            Err(ReadError::Duplicate(path)) => Some(path),
            Ok(()) => None,
            Err(other) => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn a_key_given_twice_is_found_in_objects_of_every_width() {
        // Both sides of CHECK_ON_ARRIVAL, keys of every length around a fingerprint's eight
        // bytes, the repeat first, last and escaped.
        for width in [2, 7, 8, 9, 31, 32, 33, 100, 1_000] {
            let keys: Vec<String> = (0..width)
                .map(|i| format!("k{}", "x".repeat(i % 19) + &i.to_string()))
                .collect();
            let object = |extra: &str| {
                let members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
                format!("{{\"outer\":{{{}{extra}}}}}", members.join(","))
            };
            assert_eq!(duplicate(&object("")), None, "{width} distinct keys");
            let first = &keys[0];
            let last = &keys[width - 1];
            assert_eq!(
                duplicate(&object(&format!(",\"{first}\":2"))),
                Some(format!("outer.{first}")),
                "{width}"
            );
            assert_eq!(
                duplicate(&object(&format!(",\"{last}\":2"))),
                Some(format!("outer.{last}")),
                "{width}"
            );
            let escaped = format!("\\u{:04x}{}", first.as_bytes()[0], &first[1..]);
            assert_eq!(
                duplicate(&object(&format!(",\"{escaped}\":2"))),
                Some(format!("outer.{first}")),
                "{width}"
            );
        }
    }

    #[test]
    fn depth_is_limited() {
        assert!(parse("[[[1]]]", 3).is_ok());
        assert!(parse("[[[1]]]", 2).is_err());
        let mut lx = Lexer::new("[[[1]]]");
        assert!(KeyCheck::default().skip_value(&mut lx, 2).is_err());
    }

    #[test]
    fn skip_string_finds_specials_in_long_strings() {
        for s in [
            "\"0123456789abcdef\"",
            "\"0123456789\\\"abcdef\"",
            "\"0123456789abcdé\\u0041\"",
        ] {
            let mut lx = Lexer::new(s);
            assert_eq!(lx.skip_string(), Ok(()), "{s}");
            assert_eq!(lx.pos, s.len());
        }
        let mut lx = Lexer::new("\"0123456789\u{1}abcdef\"");
        assert!(lx.skip_string().is_err());
    }
}
