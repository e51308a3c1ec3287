//! Criterion benchmark of the shared matcher: events per second against 1, 100 and 10,000
//! patterns. Reads `events.jsonl` and `patterns-N.jsonl` from `$SWITCHYARD_MATCH_WORKLOAD` when
//! set (made by `python3 shared/bench/match_workload.py DIR 7`); otherwise generates a workload
//! of the same shape in-process, so that the benchmark runs anywhere.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use switchyard_pattern::{MatcherBuilder, Pattern};

/// A small deterministic generator (xorshift64*), enough for a synthetic workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const REGIONS: &[&str] = &[
    "eu-west-1",
    "eu-west-3",
    "us-east-1",
    "us-west-2",
    "ap-northeast-1",
];
const SOURCES: &[&str] = &[
    "shop.orders",
    "shop.payments",
    "shop.shipping",
    "shop.returns",
];
const TYPES: &[&str] = &[
    "Order Placed",
    "Order Cancelled",
    "Parcel Shipped",
    "Refund Issued",
];
const TIERS: &[&str] = &["Bronze", "Silver", "Gold", "Platinum"];
const CHANNELS: &[&str] = &["web", "app", "pos"];

fn event(r: &mut Rng, i: usize) -> String {
    let items: Vec<String> = (0..1 + r.below(4))
        .map(|_| {
            format!(
                r#"{{"sku":"SKU-{}","qty":{},"price":{}.{:02}}}"#,
                1 + r.below(5000),
                1 + r.below(5),
                1 + r.below(300),
                r.below(100)
            )
        })
        .collect();
    format!(
        r#"{{"version":"0","id":"ev-{i}","detail-type":"{}","source":"{}","account":"{}","time":"2026-11-20T10:00:00Z","region":"{}","resources":["urn:shop:order/{}","urn:shop:store/{}"],"detail":{{"orderId":"{}","total":{}.5,"currency":"EUR","items":[{}],"customer":{{"id":"c-{}","tier":"{}","email":"user{}@example.org","ip":"10.{}.{}.{}","country":"FR"}},"channel":"{}","gift":{},"coupon":null,"notes":"{}"}}}}"#,
        r.pick(TYPES),
        r.pick(SOURCES),
        100_000_000_000 + r.below(900_000_000_000),
        r.pick(REGIONS),
        1 + r.below(1_000_000),
        1 + r.below(300),
        1 + r.below(1_000_000),
        r.below(2000),
        items.join(","),
        1 + r.below(100_000),
        r.pick(TIERS),
        1 + r.below(100_000),
        r.below(256),
        r.below(256),
        1 + r.below(254),
        r.pick(CHANNELS),
        r.below(10) == 0,
        "x".repeat(100 + r.below(200) as usize),
    )
}

fn pattern(r: &mut Rng, i: usize) -> String {
    let cid = 1 + r.below(100_000);
    match (i, i % 9) {
        (0..3, _) => format!(
            r#"{{"source":["{}"],"detail-type":["{}"]}}"#,
            r.pick(SOURCES),
            r.pick(TYPES)
        ),
        (_, 0) => format!(
            r#"{{"source":["{}"],"detail":{{"customer":{{"id":["c-{cid}"]}}}}}}"#,
            r.pick(SOURCES)
        ),
        (_, 1) => format!(
            r#"{{"detail":{{"customer":{{"tier":["{}"],"id":["c-{cid}"]}},"total":[{{"numeric":[">",{}]}}]}}}}"#,
            r.pick(TIERS),
            1 + r.below(500)
        ),
        (_, 2) => format!(
            r#"{{"resources":[{{"prefix":"urn:shop:store/{}"}}],"detail":{{"channel":["web"]}},"region":["{}"]}}"#,
            1 + r.below(300),
            r.pick(REGIONS)
        ),
        (_, 3) => format!(
            r#"{{"detail":{{"customer":{{"email":[{{"suffix":"r{}@example.org"}}]}}}}}}"#,
            1 + r.below(100_000)
        ),
        (_, 4) => format!(
            r#"{{"detail":{{"channel":[{{"anything-but":"{}"}}],"orderId":["{}"]}}}}"#,
            r.pick(CHANNELS),
            1 + r.below(1_000_000)
        ),
        (_, 5) => format!(
            r#"{{"detail":{{"customer":{{"ip":[{{"cidr":"10.{}.{}.0/24"}}]}}}}}}"#,
            r.below(256),
            r.below(256)
        ),
        (_, 6) => format!(
            r#"{{"detail":{{"items":{{"sku":["SKU-{}"],"qty":[{{"numeric":[">=",{}]}}]}}}}}}"#,
            1 + r.below(5000),
            3 + r.below(3)
        ),
        (_, 7) => format!(
            r#"{{"$or":[{{"region":["{}"],"detail":{{"customer":{{"id":["c-{cid}"]}}}}}},{{"detail":{{"coupon":[{{"exists":true}}],"orderId":["{}"]}}}}]}}"#,
            r.pick(REGIONS),
            1 + r.below(1_000_000)
        ),
        _ => format!(
            r#"{{"detail-type":[{{"wildcard":"*{}"}}],"detail":{{"customer":{{"id":[{{"equals-ignore-case":"C-{cid}"}}]}}}}}}"#,
            r.pick(&["Placed", "Shipped", "Issued"])
        ),
    }
}

fn workload() -> (Vec<String>, Vec<(usize, Vec<String>)>) {
    let read = |dir: &str, name: &str| -> Option<Vec<String>> {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).ok()?;
        Some(text.lines().map(str::to_string).collect())
    };
    if let Ok(dir) = std::env::var("SWITCHYARD_MATCH_WORKLOAD")
        && let Some(events) = read(&dir, "events.jsonl")
    {
        let sets = [1, 100, 10_000]
            .into_iter()
            .filter_map(|n| read(&dir, &format!("patterns-{n}.jsonl")).map(|p| (n, p)))
            .collect();
        return (events, sets);
    }
    let mut r = Rng(7);
    let events = (0..2000).map(|i| event(&mut r, i)).collect();
    let sets = [1, 100, 10_000]
        .into_iter()
        .map(|n| (n, (0..n).map(|i| pattern(&mut r, i)).collect()))
        .collect();
    (events, sets)
}

fn bench(c: &mut Criterion) {
    let (events, sets) = workload();
    let mut group = c.benchmark_group("matcher");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    for (n, patterns) in sets {
        let mut b = MatcherBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            b.add(i, &Pattern::parse(p).expect("workload patterns are valid"));
        }
        let m = b.build();
        group.bench_function(format!("{n}_patterns"), |bench| {
            bench.iter(|| {
                let mut hits = 0;
                for e in &events {
                    hits += m.matches(black_box(e)).map_or(0, |k| k.len());
                }
                hits
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
