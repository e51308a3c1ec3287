//! Delivery loops, found from the configuration before they run (`GET /v1/lint`,
//! `switchyard lint`, and the `warnings` of a subscription PUT).
//!
//! A subscription *forwards* when its destination is this server itself: a `POST` to
//! `/v1/buses/{bus}/events` or to `/hooks/{source}` at one of this server's addresses
//! ([`Origin`]: the listen address, the public URL, and `localhost` or any loopback address when
//! the listener is on loopback or on every address). Forwards are the edges of a graph of buses;
//! every cycle in it is a possible loop, and is reported unless the patterns on it provably
//! cannot match the events the cycle carries.
//!
//! What is proven is about the two names every event has, `source` and `detail-type`, and nothing
//! else (so a finding may be a loop that the `detail` of real events never closes):
//! - a forward of the envelope as it is (format `envelope`, no transform) keeps both names; a
//!   forward into a source gets the source's `source` and its fixed `detail-type`, if it has
//!   one; any other forward may carry any names;
//! - a pattern constrains a name only through its top-level key of that name; a name constrained
//!   to a list of exact strings takes only those values from there on, until a forward changes
//!   it. Other keys, `$or`, and anything but exact strings are taken as "may match".
//!
//! A cycle is not reported when, going round it (to a fixed point), some name has no value left
//! that every pattern on the cycle accepts.
//!
//! Pure: no I/O (no DNS lookups: a host name other than `localhost` counts as this server only
//! when it is the public URL's), no clock. Bounded: at most `MAX_CYCLES` (10 000) cycles are
//! examined and `MAX_FINDINGS` (100) reported; the graph is walked without recursion.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::value::RawValue;
use switchyard_destination::{Format, HttpMethod};
use switchyard_model::SubscriptionSpec;
use switchyard_pattern::Pattern;
use switchyard_sources::SourceSpec;

use crate::{App, ConfigFile};

/// Cycles examined at most; a graph with more is reported only in part.
pub(crate) const MAX_CYCLES: usize = 10_000;
/// Findings reported at most.
pub(crate) const MAX_FINDINGS: usize = 100;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `loop`: subscriptions that deliver round a cycle of this server's own buses.
    pub kind: &'static str,
    /// The subscriptions on the cycle, as `bus/subscription`, in delivery order.
    pub subscriptions: Vec<String>,
    /// For a person: the cycle of buses, the subscriptions on it, and how to break it.
    pub message: String,
}

/// What a configuration declares, borrowed from the catalog or a config file.
#[derive(Debug, Default)]
pub(crate) struct Setup<'a> {
    buses: BTreeSet<&'a str>,
    subscriptions: Vec<(&'a str, &'a str, &'a SubscriptionSpec)>,
    sources: BTreeMap<&'a str, &'a SourceSpec>,
}

impl<'a> Setup<'a> {
    pub(crate) fn bus(&mut self, name: &'a str) {
        self.buses.insert(name);
    }

    pub(crate) fn subscription(&mut self, bus: &'a str, name: &'a str, spec: &'a SubscriptionSpec) {
        self.subscriptions.push((bus, name, spec));
    }

    pub(crate) fn source(&mut self, name: &'a str, spec: &'a SourceSpec) {
        self.sources.insert(name, spec);
    }
}

/// The addresses at which a destination URL reaches this server.
#[derive(Debug, Clone)]
pub struct Origin {
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone)]
struct Endpoint {
    host: Host,
    port: u16,
    /// A path the public URL puts in front of the API's (behind a proxy), without a trailing `/`.
    prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Ip(IpAddr),
    /// A listener on loopback or on every address: reached at loopback addresses of its family
    /// (an IPv6 listener on every address also takes IPv4) and at `localhost`.
    Loopback {
        v4: bool,
        v6: bool,
    },
}

impl Origin {
    /// This server as it listens on `listen` (when known) and as `public_url` names it.
    pub fn new(listen: Option<SocketAddr>, public_url: &str) -> Origin {
        let mut endpoints = Vec::new();
        if let Some(listen) = listen {
            let ip = listen.ip().to_canonical();
            let host = if ip.is_loopback() || ip.is_unspecified() {
                Host::Loopback {
                    v4: ip.is_ipv4() || ip.is_unspecified(),
                    v6: ip.is_ipv6(),
                }
            } else {
                Host::Ip(ip)
            };
            endpoints.push(Endpoint {
                host,
                port: listen.port(),
                prefix: String::new(),
            });
        }
        if let Ok(url) = url::Url::parse(public_url)
            && let (Some(host), Some(port)) = (target_host(&url), url.port_or_known_default())
        {
            endpoints.push(Endpoint {
                host,
                port,
                prefix: url.path().trim_end_matches('/').to_string(),
            });
        }
        Origin { endpoints }
    }

    /// A running server: where it listens and its `--public-url`.
    pub(crate) fn of_app(app: &App) -> Origin {
        Origin::new(app.listen(), &app.config().public_url)
    }

    /// The path of `url` in this server's API, when `url` reaches this server.
    fn local_path(&self, url: &url::Url) -> Option<String> {
        let host = target_host(url)?;
        let port = url.port_or_known_default()?;
        self.endpoints
            .iter()
            .filter(|e| e.port == port && reaches(&host, &e.host))
            .find_map(|e| {
                let rest = url.path().strip_prefix(e.prefix.as_str())?;
                rest.starts_with('/').then(|| rest.to_string())
            })
    }
}

/// A URL's host as an endpoint would be: loopback addresses and `localhost` (RFC 6761) as
/// loopback, and so `0.0.0.0` and `::` (connecting to them reaches this host).
fn target_host(url: &url::Url) -> Option<Host> {
    let ip = match url.host()? {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            return Some(if name == "localhost" || name.ends_with(".localhost") {
                Host::Loopback { v4: true, v6: true }
            } else {
                Host::Name(name)
            });
        }
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
    }
    .to_canonical();
    Some(if ip.is_loopback() || ip.is_unspecified() {
        Host::Loopback {
            v4: ip.is_ipv4(),
            v6: ip.is_ipv6(),
        }
    } else {
        Host::Ip(ip)
    })
}

/// Whether a destination host reaches an endpoint's host.
fn reaches(target: &Host, endpoint: &Host) -> bool {
    match (target, endpoint) {
        (Host::Loopback { v4, v6 }, Host::Loopback { v4: e4, v6: e6 }) => {
            (*v4 && *e4) || (*v6 && *e6)
        }
        (target, endpoint) => target == endpoint,
    }
}

/// Which values a name (`source` or `detail-type`) can have.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    Any,
    Only(BTreeSet<String>),
}

/// The names an event on the cycle can have: `source`, `detail-type`.
type Names = [Values; 2];
const NAMES: [&str; 2] = ["source", "detail-type"];

/// What a pattern says about one name: the pattern's top-level key for it, alone.
#[derive(Debug)]
struct Constraint {
    pattern: Pattern,
    /// The exact strings it lists, when it lists nothing else.
    exact: Option<BTreeSet<String>>,
}

impl Constraint {
    /// The constraints of a pattern on each name; `None` where it has none that can be read.
    fn of(pattern: Option<&RawValue>) -> [Option<Constraint>; 2] {
        // Later keys override earlier ones, as in the pattern language itself.
        let keys: BTreeMap<String, Box<RawValue>> = pattern
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        NAMES.map(|name| {
            let raw = keys.get(name)?;
            let pattern =
                Pattern::parse(&format!("{{{}:{}}}", json_string(name), raw.get())).ok()?;
            let exact = serde_json::from_str::<Vec<serde_json::Value>>(raw.get())
                .ok()
                .and_then(|list| {
                    list.into_iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<BTreeSet<String>>>()
                });
            Some(Constraint { pattern, exact })
        })
    }

    fn accepts(&self, name: &str, value: &str) -> bool {
        let probe = format!("{{{}:{}}}", json_string(name), json_string(value));
        // An event the matcher cannot read proves nothing: it may match.
        self.pattern.matches(&probe).unwrap_or(true)
    }

    fn pass(&self, name: &str, values: &Values) -> Values {
        let keep = |set: &BTreeSet<String>| {
            Values::Only(
                set.iter()
                    .filter(|v| self.accepts(name, v))
                    .cloned()
                    .collect(),
            )
        };
        match (values, &self.exact) {
            (Values::Only(set), _) => keep(set),
            (Values::Any, Some(exact)) => keep(exact),
            (Values::Any, None) => Values::Any,
        }
    }
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// What a forward does to the names of the events it carries.
#[derive(Debug, Clone)]
enum Carry {
    /// The envelope as it is: names kept.
    Keep,
    /// Into a source, which names the events itself; `None`: from the request, so any.
    Set(String, Option<String>),
    /// Transformed or reshaped: any names.
    Any,
}

impl Carry {
    fn apply(&self, names: Names) -> Names {
        match self {
            Carry::Keep => names,
            Carry::Set(source, detail_type) => [
                Values::Only(BTreeSet::from([source.clone()])),
                detail_type
                    .as_ref()
                    .map_or(Values::Any, |d| Values::Only(BTreeSet::from([d.clone()]))),
            ],
            Carry::Any => [Values::Any, Values::Any],
        }
    }
}

/// A subscription that delivers into one of this server's buses.
#[derive(Debug)]
struct Forward {
    label: String,
    from: usize,
    to: usize,
    constraints: [Option<Constraint>; 2],
    carry: Carry,
}

impl Forward {
    /// The names of the events it forwards, given the names of the events on its bus; `None`
    /// when its pattern accepts none of them.
    fn apply(&self, names: &Names) -> Option<Names> {
        let passed = [0, 1].map(|i| match &self.constraints[i] {
            Some(c) => c.pass(NAMES[i], &names[i]),
            None => names[i].clone(),
        });
        let none = passed
            .iter()
            .any(|v| matches!(v, Values::Only(set) if set.is_empty()));
        (!none).then(|| self.carry.apply(passed))
    }
}

/// Where a subscription delivers, when that is one of this server's buses, and what the forward
/// does to names. A URL with placeholders in its path is not followed: its target depends on
/// the event.
fn target<'a>(
    setup: &Setup<'a>,
    origin: &Origin,
    spec: &SubscriptionSpec,
) -> Option<(&'a str, Carry)> {
    let destination = spec.destination.as_ref()?;
    if destination.method != HttpMethod::Post {
        return None;
    }
    let text = destination.url.as_str();
    let fixed = match text.split_once('?') {
        Some((before, _)) => before,
        None => text,
    };
    if destination.url.is_templated() && fixed.contains('{') {
        return None;
    }
    let url = url::Url::parse(fixed).ok()?;
    let path = origin.local_path(&url)?;
    let segments: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["v1", "buses", bus, "events"] => {
            let bus = setup.buses.get(*bus).copied()?;
            let keep = destination.format == Format::Envelope && destination.transform.is_none();
            Some((bus, if keep { Carry::Keep } else { Carry::Any }))
        }
        ["hooks", name] => {
            let (name, source) = setup.sources.get_key_value(*name)?;
            let bus = setup.buses.get(source.bus.as_str()).copied()?;
            let event_source = source
                .event
                .source
                .clone()
                .unwrap_or_else(|| name.to_string());
            Some((
                bus,
                Carry::Set(event_source, source.event.detail_type.clone()),
            ))
        }
        _ => None,
    }
}

/// Every delivery loop the setup has, as far as it can be proven (see the module's rules).
pub(crate) fn loops(setup: &Setup, origin: &Origin) -> Vec<Finding> {
    let buses: Vec<&str> = setup.buses.iter().copied().collect();
    let index = |bus: &str| buses.binary_search(&bus).ok();
    let mut forwards = Vec::new();
    for (bus, name, spec) in &setup.subscriptions {
        let (Some(from), Some((to, carry))) = (index(bus), target(setup, origin, spec)) else {
            continue;
        };
        let Some(to) = index(to) else { continue };
        forwards.push(Forward {
            label: format!("{bus}/{name}"),
            from,
            to,
            constraints: Constraint::of(spec.pattern.as_deref()),
            carry,
        });
    }
    forwards.sort_by(|a, b| a.label.cmp(&b.label));
    let mut findings = Vec::new();
    for cycle in cycles(buses.len(), &forwards) {
        let on_cycle: Vec<&Forward> = cycle.iter().map(|&i| &forwards[i]).collect();
        if !can_go_round(&on_cycle) {
            continue;
        }
        let mut path: Vec<&str> = on_cycle.iter().map(|f| buses[f.from]).collect();
        path.push(buses[on_cycle[0].from]);
        let subscriptions: Vec<String> = on_cycle.iter().map(|f| f.label.clone()).collect();
        findings.push(Finding {
            kind: "loop",
            message: format!(
                "delivery loop {}: {} deliver{} into this server's own buses, and the patterns can match the events forwarded, so such an event goes round until the loop guard refuses it; narrow a pattern so that it cannot match what the previous subscription forwards, or deliver elsewhere",
                path.join(" -> "),
                subscriptions.join(", "),
                if subscriptions.len() == 1 { "s" } else { "" },
            ),
            subscriptions,
        });
        if findings.len() == MAX_FINDINGS {
            break;
        }
    }
    findings
}

/// Whether events can keep going round: the names that survive a round, from any names, until
/// a round changes nothing; no value left for a name means no event passes every pattern.
fn can_go_round(cycle: &[&Forward]) -> bool {
    let mut names: Names = [Values::Any, Values::Any];
    // Sets only shrink round by round, so this ends; the bound is for safety alone.
    for _ in 0..64 {
        let mut next = names.clone();
        for forward in cycle {
            match forward.apply(&next) {
                Some(forwarded) => next = forwarded,
                None => return false,
            }
        }
        if next == names {
            break;
        }
        names = next;
    }
    true
}

/// The elementary cycles of the graph of forwards (indices into `forwards`), each once: from its
/// first bus, through buses after it only. Iterative, and at most [`MAX_CYCLES`].
fn cycles(buses: usize, forwards: &[Forward]) -> Vec<Vec<usize>> {
    let mut out_of: Vec<Vec<usize>> = vec![Vec::new(); buses];
    for (i, forward) in forwards.iter().enumerate() {
        out_of[forward.from].push(i);
    }
    let mut found = Vec::new();
    for start in 0..buses {
        let mut on_path = vec![false; buses];
        on_path[start] = true;
        // The forwards taken so far, and for each bus on the path the next of its forwards to try.
        let mut path: Vec<usize> = Vec::new();
        let mut next: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some((bus, tried)) = next.last_mut() {
            let Some(&edge) = out_of[*bus].get(*tried) else {
                next.pop();
                if let Some(edge) = path.pop() {
                    on_path[forwards[edge].to] = false;
                }
                continue;
            };
            *tried += 1;
            let to = forwards[edge].to;
            if to == start {
                let mut cycle = path.clone();
                cycle.push(edge);
                found.push(cycle);
                if found.len() == MAX_CYCLES {
                    return found;
                }
            } else if to > start && !on_path[to] {
                on_path[to] = true;
                path.push(edge);
                next.push((to, 0));
            }
        }
    }
    found
}

/// The loops of a running server's catalog and sources, as it is now.
pub(crate) fn running(app: &App) -> Vec<Finding> {
    let buses = app.catalog().buses();
    let sources = app.sources().list();
    let mut setup = Setup::default();
    for index in &buses {
        setup.bus(&index.record.name);
        for subscription in index.subscriptions() {
            setup.subscription(&subscription.bus, &subscription.name, &subscription.spec);
        }
    }
    for live in &sources {
        setup.source(&live.record.name, &live.spec);
    }
    loops(&setup, &Origin::of_app(app))
}

/// The loops of what a config file declares, for a server at `origin`.
pub fn of_config(file: &ConfigFile, origin: &Origin) -> Vec<Finding> {
    let mut setup = Setup::default();
    for (bus, declared) in &file.buses {
        setup.bus(bus);
        for (name, spec) in &declared.subscriptions {
            setup.subscription(bus, name, spec);
        }
    }
    for (name, spec) in &file.sources {
        setup.source(name, spec);
    }
    loops(&setup, origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_model::parse_subscription_spec;
    use switchyard_sources::parse_source_spec;

    const SELF: &str = "http://127.0.0.1:8700";

    fn origin() -> Origin {
        Origin::new(Some("127.0.0.1:8700".parse().unwrap()), SELF)
    }

    fn forward(url: &str, pattern: Option<serde_json::Value>) -> SubscriptionSpec {
        let mut spec = json!({"destination": {"url": url}});
        if let Some(pattern) = pattern {
            spec["pattern"] = pattern;
        }
        parse_subscription_spec(&spec.to_string()).unwrap()
    }

    fn into_bus(bus: &str, pattern: Option<serde_json::Value>) -> SubscriptionSpec {
        forward(&format!("{SELF}/v1/buses/{bus}/events"), pattern)
    }

    /// The findings of subscriptions `(bus, name, spec)` on buses `a`, `b`, `c`.
    fn lint(subscriptions: &[(&str, &str, &SubscriptionSpec)], origin: &Origin) -> Vec<Finding> {
        let mut setup = Setup::default();
        for bus in ["a", "b", "c"] {
            setup.bus(bus);
        }
        for (bus, name, spec) in subscriptions {
            setup.subscription(bus, name, spec);
        }
        loops(&setup, origin)
    }

    fn names(findings: &[Finding]) -> Vec<Vec<&str>> {
        findings
            .iter()
            .map(|f| f.subscriptions.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn two_buses_forwarding_into_each_other_are_a_loop() {
        let to_b = into_bus("b", Some(json!({"source": ["shop"]})));
        let to_a = into_bus("a", None);
        let findings = lint(&[("a", "to-b", &to_b), ("b", "to-a", &to_a)], &origin());
        assert_eq!(names(&findings), [["a/to-b", "b/to-a"]]);
        assert_eq!(findings[0].kind, "loop");
        assert!(
            findings[0].message.contains("a -> b -> a"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn a_forward_whose_pattern_cannot_match_the_forwarded_events_is_no_loop() {
        // The envelope keeps its source: what a/to-b forwards has source "shop", never "never".
        let to_b = into_bus("b", Some(json!({"source": ["shop"], "detail": {"n": [1]}})));
        let to_a = into_bus("a", Some(json!({"source": ["never"]})));
        assert_eq!(
            lint(&[("a", "to-b", &to_b), ("b", "to-a", &to_a)], &origin()),
            []
        );
        // ... but with a detail-type the other cannot have, just as well.
        let to_a = into_bus("a", Some(json!({"detail-type": [{"prefix": "x"}]})));
        let to_b = into_bus("b", Some(json!({"detail-type": ["Order Placed"]})));
        assert_eq!(
            lint(&[("a", "to-b", &to_b), ("b", "to-a", &to_a)], &origin()),
            []
        );
        // Unprovable ones are reported: a prefix both can satisfy, or a condition on the detail.
        let to_a = into_bus("a", Some(json!({"source": [{"prefix": "sh"}]})));
        let to_b = into_bus("b", Some(json!({"source": ["shop"], "detail": {"n": [1]}})));
        assert_eq!(
            lint(&[("a", "to-b", &to_b), ("b", "to-a", &to_a)], &origin()).len(),
            1
        );
    }

    #[test]
    fn a_transformed_forward_may_carry_any_names() {
        let transformed = |bus, pattern| {
            let mut spec = into_bus(bus, Some(pattern));
            spec.destination.as_mut().unwrap().transform = Some(
                serde_json::from_value(
                    json!({"input_template": "{\"source\": \"never\", \"detail\": {}}"}),
                )
                .unwrap(),
            );
            spec
        };
        // As envelopes these could not loop (see above); transformed, they may.
        let to_b = transformed("b", json!({"source": ["shop"]}));
        let to_a = transformed("a", json!({"source": ["never"]}));
        assert_eq!(
            lint(&[("a", "to-b", &to_b), ("b", "to-a", &to_a)], &origin()).len(),
            1
        );
    }

    #[test]
    fn a_forward_into_a_source_gets_the_source_name() {
        let source = parse_source_spec(
            &json!({"bus": "a", "verify": {"type": "api_key", "key": "k"}}).to_string(),
        )
        .unwrap();
        let lint_with = |pattern| {
            let spec = forward(&format!("{SELF}/hooks/echo"), Some(pattern));
            let mut setup = Setup::default();
            setup.bus("a");
            setup.source("echo", &source);
            setup.subscription("a", "to-hook", &spec);
            loops(&setup, &origin())
        };
        assert_eq!(
            names(&lint_with(json!({"source": ["echo"]}))),
            [["a/to-hook"]]
        );
        assert_eq!(lint_with(json!({"source": ["shop"]})), []);
    }

    #[test]
    fn this_server_is_found_by_every_name_that_reaches_it() {
        let origin = Origin::new(
            Some("0.0.0.0:8700".parse().unwrap()),
            "https://events.example.com/switchyard/",
        );
        for url in [
            "http://127.0.0.1:8700/v1/buses/a/events",
            "http://127.0.0.9:8700/v1/buses/a/events",
            "http://localhost:8700/v1/buses/a/events",
            "http://LOCALHOST.:8700/v1/buses/%61/events",
            "http://0.0.0.0:8700/v1/buses/a/events",
            "http://[::ffff:127.0.0.1]:8700/v1/buses/a/events",
            "https://events.example.com/switchyard/v1/buses/a/events",
            "https://events.example.com:443/switchyard/v1/buses/a/events?x={$.id}",
        ] {
            let spec = forward(url, None);
            assert_eq!(lint(&[("a", "s", &spec)], &origin).len(), 1, "{url}");
        }
        for url in [
            "http://127.0.0.1:8701/v1/buses/a/events",
            "http://[::1]:8700/v1/buses/a/events",
            "http://other.example.com:8700/v1/buses/a/events",
            "https://events.example.com/v1/buses/a/events",
            "http://127.0.0.1:8700/v1/buses/a/events/",
            "http://127.0.0.1:8700/v1/buses/nope/events",
            "http://127.0.0.1:8700/v1/buses/{$.detail.bus}/events",
        ] {
            let spec = forward(url, None);
            assert_eq!(lint(&[("a", "s", &spec)], &origin), [], "{url}");
        }
        let mut put = forward("http://127.0.0.1:8700/v1/buses/a/events", None);
        put.destination.as_mut().unwrap().method = HttpMethod::Put;
        assert_eq!(lint(&[("a", "s", &put)], &origin), []);
    }

    #[test]
    fn every_cycle_is_reported_once() {
        let (to_a, to_b, to_c) = (
            into_bus("a", None),
            into_bus("b", None),
            into_bus("c", None),
        );
        let findings = lint(
            &[
                ("a", "ab", &to_b),
                ("b", "bc", &to_c),
                ("c", "ca", &to_a),
                ("b", "ba", &to_a),
                ("c", "cc", &to_c),
            ],
            &origin(),
        );
        assert_eq!(
            names(&findings),
            vec![
                vec!["a/ab", "b/ba"],
                vec!["a/ab", "b/bc", "c/ca"],
                vec!["c/cc"]
            ]
        );
    }
}
