//! `switchyard bench-match`: how fast the shared pattern matcher is on a given workload.
//!
//! Owns: reading patterns and events (JSON lines) or generating the adversarial workload,
//! compiling the patterns into one matcher, and timing matching on one thread after a warm-up
//! round.
//! Must not: touch the store, the network or other threads; its figures are for one core.
//! Invariants: every event is matched in every round; a pattern or event that does not parse
//! fails the run with its file and line, rather than being skipped and flattering the figures.

#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark client: it measures wall-clock time and runs its senders and sink as tasks that end with the run"
)]

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use switchyard_pattern::{MatcherBuilder, Pattern};

/// Timed rounds over all events, after one untimed warm-up round.
const ROUNDS: u32 = 5;

/// What one benchmark run measured.
#[derive(Debug, Clone)]
pub(crate) struct BenchMatchReport {
    pub patterns: usize,
    pub events: usize,
    /// Parsing and compiling all patterns into one matcher.
    pub build: Duration,
    pub rounds: u32,
    /// Time of all timed rounds together.
    pub elapsed: Duration,
    pub events_per_sec: f64,
    /// Matching time per KiB of event text: the figure that shows whether cost grows linearly
    /// with the size of events.
    pub us_per_kib: f64,
    pub matches_per_event: f64,
}

fn lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect())
}

/// Compiles the patterns of `patterns` into one matcher and measures matching the events of
/// `events` against it.
pub(crate) fn run(patterns: &Path, events: &Path) -> Result<BenchMatchReport> {
    let event_lines = lines(events)?;
    anyhow::ensure!(
        !event_lines.is_empty(),
        "{} holds no events",
        events.display()
    );
    measure(&lines(patterns)?, &event_lines, patterns, events)
}

/// Measures the adversarial workload with arrays of `elements` elements.
pub(crate) fn run_adversarial(elements: usize) -> Result<BenchMatchReport> {
    let (patterns, events) = adversarial(elements);
    let numbered = |v: Vec<String>| v.into_iter().enumerate().map(|(i, t)| (i + 1, t)).collect();
    let patterns: Vec<(usize, String)> = numbered(patterns);
    let events: Vec<(usize, String)> = numbered(events);
    let name = Path::new("<adversarial>");
    measure(&patterns, &events, name, name)
}

/// Events built to be expensive for an array-consistent matcher, one per pattern: `elements`
/// array elements that each satisfy every condition of the pattern but the last, so that a
/// matcher trying the elements of one field against those of the next does the most work, and
/// one element in the middle that satisfies all of them (each event matches exactly one pattern,
/// a check that two versions of the matcher agree; in the middle, so that neither the order in
/// which a matcher tries elements nor its luck decides the figure). The last pattern puts a long string under a
/// wildcard with five stars whose last literal only occurs at its very end.
fn adversarial(elements: usize) -> (Vec<String>, Vec<String>) {
    let patterns = [
        r#"{"detail":{"items":{"sku":["A"],"status":["shipped"]}}}"#,
        r#"{"detail":{"rows":{"a":[{"prefix":"pre-"}],"b":[{"suffix":"-post"}],"c":[{"wildcard":"w*x*y"}],"d":[{"anything-but":["no"]}],"e":[{"numeric":[">",10,"<=",1000]}],"f":[{"exists":true}],"g":[{"equals-ignore-case":"MiXeD"}],"h":[{"cidr":"10.0.0.0/8"}],"i":["last"]}}}"#,
        r#"{"detail":{"entries":{"$or":[{"kind":["x"],"code":[{"prefix":"E"}]},{"kind":["y"],"zflag":[{"exists":false}]}]}}}"#,
        r#"{"detail":{"text":[{"wildcard":"*a*b*c*z*"}]}}"#,
    ];
    let array = |element: &dyn Fn(bool) -> String| {
        let mut items: Vec<String> = (0..elements).map(|_| element(false)).collect();
        items.insert(elements / 2, element(true));
        items.join(",")
    };
    let events = vec![
        format!(
            r#"{{"source":"adversarial","detail":{{"items":[{}]}}}}"#,
            array(&|matching| format!(
                r#"{{"sku":"A","status":"{}"}}"#,
                if matching { "shipped" } else { "pending" }
            ))
        ),
        format!(
            r#"{{"source":"adversarial","detail":{{"rows":[{}]}}}}"#,
            array(&|matching| format!(
                r#"{{"a":"pre-1","b":"1-post","c":"w-x-y","d":"yes","e":500,"f":true,"g":"mixed","h":"10.1.2.3","i":"{}"}}"#,
                if matching { "last" } else { "not-last" }
            ))
        ),
        format!(
            r#"{{"source":"adversarial","detail":{{"entries":[{}]}}}}"#,
            array(&|matching| if matching {
                r#"{"kind":"y","code":"W1"}"#.to_string()
            } else {
                r#"{"kind":"y","code":"E1","zflag":1}"#.to_string()
            })
        ),
        format!(
            r#"{{"source":"adversarial","detail":{{"text":"{}z"}}}}"#,
            "abcd ".repeat(elements * 8)
        ),
    ];
    (patterns.iter().map(|p| p.to_string()).collect(), events)
}

fn measure(
    pattern_lines: &[(usize, String)],
    event_lines: &[(usize, String)],
    patterns: &Path,
    events: &Path,
) -> Result<BenchMatchReport> {
    let start = Instant::now();
    let mut builder = MatcherBuilder::new();
    for (i, (line, text)) in pattern_lines.iter().enumerate() {
        let p = Pattern::parse(text)
            .with_context(|| format!("{}:{line}: invalid pattern", patterns.display()))?;
        builder.add(i, &p);
    }
    let matcher = builder.build();
    let build = start.elapsed();

    let mut matched = 0usize;
    for (line, text) in event_lines {
        matched += matcher
            .matches(text)
            .with_context(|| format!("{}:{line}: invalid event", events.display()))?
            .len();
    }

    let start = Instant::now();
    let mut sink = 0usize;
    for _ in 0..ROUNDS {
        for (_, text) in event_lines {
            sink += matcher.matches(text).map_or(0, |m| m.len());
        }
    }
    let elapsed = start.elapsed();
    std::hint::black_box(sink);

    let total = event_lines.len() as f64 * f64::from(ROUNDS);
    let kib: f64 = event_lines.iter().map(|(_, t)| t.len() as f64).sum::<f64>() / 1024.0;
    Ok(BenchMatchReport {
        patterns: pattern_lines.len(),
        events: event_lines.len(),
        build,
        rounds: ROUNDS,
        elapsed,
        events_per_sec: total / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        us_per_kib: elapsed.as_secs_f64() * 1e6 / (kib * f64::from(ROUNDS)).max(f64::MIN_POSITIVE),
        matches_per_event: matched as f64 / event_lines.len() as f64,
    })
}

impl fmt::Display for BenchMatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "patterns:          {} (parsed and compiled in {:.3} s)",
            self.patterns,
            self.build.as_secs_f64()
        )?;
        writeln!(
            f,
            "events:            {} x {} rounds on one thread, after a warm-up round",
            self.events, self.rounds
        )?;
        writeln!(
            f,
            "throughput:        {:.0} events/s ({:.2} us per event; {:.3} s timed)",
            self.events_per_sec,
            1e6 / self.events_per_sec.max(f64::MIN_POSITIVE),
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "cost per size:     {:.3} us per KiB of event",
            self.us_per_kib
        )?;
        write!(f, "matches per event: {:.3}", self.matches_per_event)
    }
}
