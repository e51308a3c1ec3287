//! Fuzzes the event walker and the shared matcher with arbitrary event text against a fixed
//! set of patterns that name many paths and use every operator, checking agreement with
//! single-pattern matching.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchyard_pattern::{Matcher, MatcherBuilder, Pattern};

const PATTERNS: &[&str] = &[
    r#"{"source":["a"],"detail":{"x":[1,"1",null,true]}}"#,
    r#"{"detail":{"x":[{"prefix":"a"},{"suffix":"z"},{"equals-ignore-case":"AbC"}]}}"#,
    r#"{"detail":{"x":[{"prefix":{"equals-ignore-case":"Ab"}},{"suffix":{"equals-ignore-case":"yZ"}}]}}"#,
    r#"{"detail":{"x":[{"wildcard":"a*b*c"}],"y":[{"exists":false}]}}"#,
    r#"{"detail":{"x":[{"anything-but":["a","b"]}],"y":[{"anything-but":{"prefix":"q"}}]}}"#,
    r#"{"detail":{"x":[{"numeric":[">",0,"<=",5]}],"y":[{"anything-but":[1,2]}]}}"#,
    r#"{"detail":{"x":[{"cidr":"10.0.0.0/8"},{"cidr":"2001:db8::/32"},"192.168.0.1"]}}"#,
    r#"{"a":{"b":[{"exists":true}],"c":["v"]}}"#,
    r#"{"a.b":[1],"a":{"c":[{"exists":false}]}}"#,
    r#"{"$or":[{"a":{"b":["x"]}},{"a":{"c":[{"numeric":["=",3]}]}},{"detail":{"$or":[{"x":["q"]},{"y":["r"]}]}}]}"#,
    r#"{"detail":{"x":[{"anything-but":{"wildcard":"*x*"}}],"z":[{"anything-but":{"equals-ignore-case":["Q"]}}]}}"#,
    r#"{"detail":{"x":[{"anything-but":{"suffix":"s"}}],"y":[{"wildcard":"*"}]}}"#,
];

fn compiled() -> &'static (Matcher<usize>, Vec<Pattern>) {
    static M: OnceLock<(Matcher<usize>, Vec<Pattern>)> = OnceLock::new();
    M.get_or_init(|| {
        let ps: Vec<Pattern> = PATTERNS
            .iter()
            .map(|t| Pattern::parse(t).expect("fixed patterns are valid"))
            .collect();
        let mut b = MatcherBuilder::new();
        for (i, p) in ps.iter().enumerate() {
            b.add(i, p);
        }
        (b.build(), ps)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = std::str::from_utf8(data) else {
        return;
    };
    let (m, ps) = compiled();
    let shared = m.matches(event).map(|mut keys| {
        keys.sort_unstable();
        keys
    });
    let single: Result<Vec<usize>, _> = ps
        .iter()
        .enumerate()
        .map(|(i, p)| p.matches(event).map(|ok| ok.then_some(i)))
        .collect::<Result<Vec<_>, _>>()
        .map(|v| v.into_iter().flatten().collect());
    assert_eq!(shared, single, "matcher disagrees with Pattern::matches");
});
