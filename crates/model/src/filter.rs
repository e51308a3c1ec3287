//! Pub/Sub's subscription filter language, compiled into an EventBridge pattern over the event's
//! `attributes`, so that a filter runs in the same matcher as every pattern (docs/pubsub.md).
//!
//! The language: `attributes:KEY` (has the attribute), `attributes.KEY = "v"`,
//! `attributes.KEY != "v"`, `hasPrefix(attributes.KEY, "p")`, joined by `AND`, `OR` and `NOT`
//! with parentheses; `AND` and `OR` are not mixed without them, as in Pub/Sub. A key other than
//! letters, digits, `-` and `_` is a string literal (`attributes."a.b"`). `!=`, like `NOT`, is
//! true of a message without the attribute.
//!
//! Compiling pushes `NOT` down to the conditions (De Morgan), takes the disjunctive normal form
//! and writes each conjunction as one pattern object, several as `$or`. Must not: accept what it
//! cannot translate exactly (two different conditions on one key joined by `AND`, or a form too
//! large); such a filter is refused with why.

use serde_json::{Value, json};

use crate::ModelError;

/// Pub/Sub's longest filter, in bytes.
pub const MAX_FILTER_BYTES: usize = 256;
/// Conjunctions a compiled filter may have: a bound on what `AND` of `OR`s expands to.
const MAX_TERMS: usize = 64;

/// Compiles a filter into the JSON text of an equivalent pattern.
pub fn filter_to_pattern(filter: &str) -> Result<String, ModelError> {
    let bad = |message: String| ModelError::invalid(format!("field \"filter\": {message}"));
    if filter.len() > MAX_FILTER_BYTES {
        return Err(bad(format!(
            "is {} bytes; a filter is at most {MAX_FILTER_BYTES}",
            filter.len()
        )));
    }
    let tokens = lex(filter).map_err(bad)?;
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.expr().map_err(bad)?;
    if parser.at != parser.tokens.len() {
        return Err(bad(format!(
            "unexpected {} after the expression",
            parser.tokens[parser.at].describe()
        )));
    }
    let terms = dnf(&expr, false).map_err(bad)?;
    let mut objects = Vec::with_capacity(terms.len());
    for term in terms {
        let mut attributes = serde_json::Map::new();
        for (key, condition) in term {
            match attributes.get(&key) {
                None => {
                    attributes.insert(key, json!([condition]));
                }
                Some(existing) if existing[0] == condition => {}
                // A value, a prefix or "anything but" all mean the attribute exists.
                Some(_) if condition == json!({"exists": true}) => {}
                Some(existing) if existing[0] == json!({"exists": true}) => {
                    attributes.insert(key, json!([condition]));
                }
                Some(_) => {
                    return Err(bad(format!(
                        "two different conditions on attribute {key:?} joined by AND cannot be compiled; write them as one"
                    )));
                }
            }
        }
        objects.push(json!({ "attributes": attributes }));
    }
    let pattern = match objects.len() {
        1 => objects.remove(0),
        _ => json!({ "$or": objects }),
    };
    Ok(pattern.to_string())
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Dot,
    Colon,
    Eq,
    Ne,
    Comma,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(word) => format!("{word:?}"),
            Token::Str(text) => format!("the string {text:?}"),
            Token::Dot => "'.'".into(),
            Token::Colon => "':'".into(),
            Token::Eq => "'='".into(),
            Token::Ne => "'!='".into(),
            Token::Comma => "','".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '.' | ':' | '=' | ',' | '(' | ')' => {
                chars.next();
                tokens.push(match c {
                    '.' => Token::Dot,
                    ':' => Token::Colon,
                    '=' => Token::Eq,
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    _ => Token::Close,
                });
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err("'!' must be followed by '=' (write NOT to negate)".into());
                }
                tokens.push(Token::Ne);
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a string literal is not closed".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(escaped @ ('\\' | '"' | '\'')) => value.push(escaped),
                            _ => {
                                return Err(
                                    "a string literal has an escape other than \\\\, \\\", \\n or \\t"
                                        .into(),
                                );
                            }
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Str(value));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Ident(word));
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(tokens)
}

#[derive(Debug)]
enum Expr {
    Has(String),
    Eq(String, String),
    Prefix(String, String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect(&mut self, token: &Token) -> Result<(), String> {
        match self.next() {
            Some(found) if &found == token => Ok(()),
            Some(found) => Err(format!(
                "expected {}, found {}",
                token.describe(),
                found.describe()
            )),
            None => Err(format!("expected {}, found the end", token.describe())),
        }
    }

    fn keyword(&self) -> Option<&str> {
        match self.peek() {
            Some(Token::Ident(word)) if word == "AND" || word == "OR" => Some(word),
            _ => None,
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let first = self.term()?;
        let Some(op) = self.keyword().map(str::to_string) else {
            return Ok(first);
        };
        let mut terms = vec![first];
        while let Some(next) = self.keyword() {
            if next != op {
                return Err("AND and OR are mixed without parentheses: group them".into());
            }
            self.at += 1;
            terms.push(self.term()?);
        }
        Ok(if op == "AND" {
            Expr::And(terms)
        } else {
            Expr::Or(terms)
        })
    }

    fn term(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Ident(word)) if word == "NOT" => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.term()?)))
            }
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.expr()?;
                self.expect(&Token::Close)?;
                Ok(inner)
            }
            Some(Token::Ident(word)) if word == "hasPrefix" => {
                self.at += 1;
                self.expect(&Token::Open)?;
                let key = self.attribute_key()?;
                self.expect(&Token::Comma)?;
                let prefix = self.string()?;
                self.expect(&Token::Close)?;
                Ok(Expr::Prefix(key, prefix))
            }
            Some(Token::Ident(word)) if word == "attributes" => {
                self.at += 1;
                match self.next() {
                    Some(Token::Colon) => Ok(Expr::Has(self.key()?)),
                    Some(Token::Dot) => {
                        let key = self.key()?;
                        match self.next() {
                            Some(Token::Eq) => Ok(Expr::Eq(key, self.string()?)),
                            Some(Token::Ne) => {
                                Ok(Expr::Not(Box::new(Expr::Eq(key, self.string()?))))
                            }
                            _ => Err(format!(
                                "attributes.{key} must be followed by = or != and a string"
                            )),
                        }
                    }
                    _ => Err("attributes must be followed by :KEY or .KEY".into()),
                }
            }
            Some(other) => Err(format!(
                "expected a condition (attributes…, hasPrefix(…), NOT, or '('), found {}",
                other.describe()
            )),
            None => Err("the filter ends where a condition is expected".into()),
        }
    }

    /// `attributes.KEY` inside `hasPrefix`.
    fn attribute_key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(word)) if word == "attributes" => {}
            _ => return Err("hasPrefix takes attributes.KEY first".into()),
        }
        self.expect(&Token::Dot)?;
        self.key()
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(key) | Token::Str(key)) if !key.is_empty() => Ok(key),
            _ => Err("an attribute key is missing".into()),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(text)) => Ok(text),
            Some(other) => Err(format!(
                "expected a string literal in double quotes, found {}",
                other.describe()
            )),
            None => Err("expected a string literal, found the end".into()),
        }
    }
}

/// One conjunction: (key, pattern condition) pairs.
type Term = Vec<(String, Value)>;

/// The disjunctive normal form of `expr`, negated when `negate`.
fn dnf(expr: &Expr, negate: bool) -> Result<Vec<Term>, String> {
    let single = |key: &str, condition: Value| vec![vec![(key.to_string(), condition)]];
    Ok(match (expr, negate) {
        (Expr::Has(key), false) => single(key, json!({"exists": true})),
        (Expr::Has(key), true) => single(key, json!({"exists": false})),
        (Expr::Eq(key, value), false) => single(key, json!(value)),
        (Expr::Prefix(key, prefix), false) => single(key, json!({"prefix": prefix})),
        // Without the attribute, or with another value.
        (Expr::Eq(key, value), true) => vec![
            vec![(key.clone(), json!({"exists": false}))],
            vec![(key.clone(), json!({"anything-but": value}))],
        ],
        (Expr::Prefix(key, prefix), true) => vec![
            vec![(key.clone(), json!({"exists": false}))],
            vec![(key.clone(), json!({"anything-but": {"prefix": prefix}}))],
        ],
        (Expr::Not(inner), negate) => dnf(inner, !negate)?,
        (Expr::And(items), false) | (Expr::Or(items), true) => {
            let mut terms: Vec<Term> = vec![Vec::new()];
            for item in items {
                let alternatives = dnf(item, negate)?;
                let mut next = Vec::with_capacity(terms.len() * alternatives.len());
                for term in &terms {
                    for alternative in &alternatives {
                        let mut joined = term.clone();
                        joined.extend(alternative.iter().cloned());
                        next.push(joined);
                    }
                }
                if next.len() > MAX_TERMS {
                    return Err(format!(
                        "expands to more than {MAX_TERMS} alternatives; simplify it"
                    ));
                }
                terms = next;
            }
            terms
        }
        (Expr::Or(items), false) | (Expr::And(items), true) => {
            let mut terms = Vec::new();
            for item in items {
                terms.extend(dnf(item, negate)?);
                if terms.len() > MAX_TERMS {
                    return Err(format!(
                        "expands to more than {MAX_TERMS} alternatives; simplify it"
                    ));
                }
            }
            terms
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_pattern::Pattern;

    fn matches(filter: &str, attributes: Value) -> bool {
        let pattern = Pattern::parse(&filter_to_pattern(filter).unwrap()).unwrap();
        let event =
            json!({"source": "s", "detail-type": "t", "detail": {}, "attributes": attributes});
        pattern.matches(&event.to_string()).unwrap()
    }

    #[test]
    fn each_operator_means_what_pubsub_says() {
        let cases: &[(&str, Value, bool)] = &[
            ("attributes:kind", json!({"kind": "x"}), true),
            ("attributes:kind", json!({"other": "x"}), false),
            ("NOT attributes:kind", json!({"other": "x"}), true),
            (r#"attributes.kind = "bulk""#, json!({"kind": "bulk"}), true),
            (
                r#"attributes.kind = "bulk""#,
                json!({"kind": "keyed"}),
                false,
            ),
            (
                r#"attributes.kind != "bulk""#,
                json!({"kind": "keyed"}),
                true,
            ),
            (r#"attributes.kind != "bulk""#, json!({}), true),
            (
                r#"attributes.kind != "bulk""#,
                json!({"kind": "bulk"}),
                false,
            ),
            (
                r#"hasPrefix(attributes.region, "eu-")"#,
                json!({"region": "eu-west"}),
                true,
            ),
            (
                r#"hasPrefix(attributes.region, "eu-")"#,
                json!({"region": "us-east"}),
                false,
            ),
            (
                r#"NOT hasPrefix(attributes.region, "eu-")"#,
                json!({"region": "us-east"}),
                true,
            ),
            (
                r#"NOT hasPrefix(attributes.region, "eu-")"#,
                json!({}),
                true,
            ),
            (r#"attributes."a.b" = "1""#, json!({"a.b": "1"}), true),
        ];
        for (filter, attributes, expected) in cases {
            assert_eq!(
                matches(filter, attributes.clone()),
                *expected,
                "{filter} on {attributes}"
            );
        }
    }

    #[test]
    fn boolean_operators_compose_with_de_morgan() {
        let filter = r#"attributes.kind = "bulk" AND (attributes:urgent OR hasPrefix(attributes.region, "eu"))"#;
        assert!(matches(filter, json!({"kind": "bulk", "urgent": "1"})));
        assert!(matches(filter, json!({"kind": "bulk", "region": "eu-1"})));
        assert!(!matches(filter, json!({"kind": "bulk", "region": "us-1"})));
        assert!(!matches(filter, json!({"kind": "keyed", "urgent": "1"})));
        let negated = format!("NOT ({filter})");
        assert!(matches(&negated, json!({"kind": "keyed", "urgent": "1"})));
        assert!(!matches(&negated, json!({"kind": "bulk", "urgent": "1"})));
        assert!(matches(
            r#"attributes:kind AND attributes.kind = "x""#,
            json!({"kind": "x"})
        ));
    }

    #[test]
    fn what_cannot_be_compiled_is_refused_with_why() {
        for (filter, says) in [
            (
                r#"attributes.a = "1" AND attributes.b = "2" OR attributes:c"#,
                "mixed",
            ),
            ("attributes.a = 1", "string literal"),
            (
                r#"attributes.a = "x" AND attributes.a = "y""#,
                "two different conditions",
            ),
            ("attributes", ":KEY or .KEY"),
            (r#"data = "x""#, "expected a condition"),
            (r#"attributes.a = "x" )"#, "unexpected"),
            (r#"attributes.a = "x"#, "not closed"),
            ("", "ends where a condition"),
        ] {
            let message = filter_to_pattern(filter).unwrap_err().to_string();
            assert!(message.contains(says), "{filter}: {message}");
        }
        let long = format!(r#"attributes.a = "{}""#, "x".repeat(300));
        assert!(
            filter_to_pattern(&long)
                .unwrap_err()
                .to_string()
                .contains("at most 256")
        );
        let wide = (0..7)
            .map(|i| format!("(attributes:a{i} OR attributes:b{i})"))
            .collect::<Vec<_>>()
            .join(" AND ");
        assert!(
            filter_to_pattern(&wide)
                .unwrap_err()
                .to_string()
                .contains("simplify")
        );
    }
}
