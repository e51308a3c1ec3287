//! `switchyard bench-match`: how fast the shared pattern matcher is on a given workload.
//!
//! Owns: reading patterns and events (JSON lines), compiling the patterns into one matcher,
//! and timing matching on one thread after a warm-up round.
//! Must not: touch the store, the network or other threads; its figures are for one core.
//! Invariants: every event is matched in every round; a pattern or event that does not parse
//! fails the run with its file and line, rather than being skipped and flattering the figures.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use switchyard_pattern::{MatcherBuilder, Pattern};

/// Timed rounds over all events, after one untimed warm-up round.
const ROUNDS: u32 = 5;

/// What one benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchMatchReport {
    pub patterns: usize,
    pub events: usize,
    /// Parsing and compiling all patterns into one matcher.
    pub build: Duration,
    pub rounds: u32,
    /// Time of all timed rounds together.
    pub elapsed: Duration,
    pub events_per_sec: f64,
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
pub fn run(patterns: &Path, events: &Path) -> Result<BenchMatchReport> {
    let pattern_lines = lines(patterns)?;
    let event_lines = lines(events)?;
    anyhow::ensure!(
        !event_lines.is_empty(),
        "{} holds no events",
        events.display()
    );

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
    for (line, text) in &event_lines {
        matched += matcher
            .matches(text)
            .with_context(|| format!("{}:{line}: invalid event", events.display()))?
            .len();
    }

    let start = Instant::now();
    let mut sink = 0usize;
    for _ in 0..ROUNDS {
        for (_, text) in &event_lines {
            sink += matcher.matches(text).map_or(0, |m| m.len());
        }
    }
    let elapsed = start.elapsed();
    std::hint::black_box(sink);

    let total = event_lines.len() as f64 * f64::from(ROUNDS);
    Ok(BenchMatchReport {
        patterns: pattern_lines.len(),
        events: event_lines.len(),
        build,
        rounds: ROUNDS,
        elapsed,
        events_per_sec: total / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
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
        write!(f, "matches per event: {:.3}", self.matches_per_event)
    }
}
