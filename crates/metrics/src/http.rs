//! API requests by route, method and status: `switchyard_http_requests_total` and
//! `switchyard_http_request_duration_seconds`.
//!
//! Owns the closed set of the `method` label and the per-route handles. Must not: take a route
//! that is not a route template (a path as sent has ids and names in it); the caller passes
//! the router's template, or [`UNMATCHED_ROUTE`]. With that, every label is bounded: routes by
//! the router, methods by [`HttpMethod`], statuses by HTTP.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::{Histogram, escape, header};

/// The `route` label of a request that no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A request's method as the `method` label: HTTP's usual methods, and `other` for the rest
/// (a method is any token a client sends, so it cannot be a label as sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// Any other method.
    Other,
}

impl HttpMethod {
    /// Every member, in declaration order: `method as usize` indexes a route's handles.
    pub const ALL: [HttpMethod; 8] = [
        HttpMethod::Get,
        HttpMethod::Head,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
        HttpMethod::Options,
        HttpMethod::Other,
    ];

    /// The member for a method as sent (methods are case-sensitive).
    pub fn of(method: &str) -> HttpMethod {
        HttpMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == method)
            .unwrap_or(HttpMethod::Other)
    }

    /// The label value: the method's own spelling, or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Other => "other",
        }
    }
}

/// One route and method: its latencies and its answers by status.
#[derive(Debug, Default)]
struct Handle {
    duration: Histogram,
    statuses: Mutex<BTreeMap<u16, u64>>,
}

/// The handles of one route, one per method.
#[derive(Debug, Default)]
struct Route {
    methods: [Handle; HttpMethod::ALL.len()],
}

/// Every route that answered a request since the start.
#[derive(Debug, Default)]
pub(crate) struct HttpMetrics {
    routes: RwLock<BTreeMap<String, Arc<Route>>>,
}

impl HttpMetrics {
    pub(crate) fn record(&self, route: &str, method: HttpMethod, status: u16, took: Duration) {
        let found = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
            .cloned();
        let route = found.unwrap_or_else(|| {
            let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
            Arc::clone(routes.entry(route.to_string()).or_default())
        });
        let handle = &route.methods[method as usize];
        handle.duration.observe(took);
        *handle
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub(crate) fn render(&self, out: &mut String) {
        let routes: Vec<(String, Arc<Route>)> = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        // Only the methods a route was asked with: the others would be series of zeros.
        let used = || {
            routes.iter().flat_map(|(route, r)| {
                HttpMethod::ALL
                    .iter()
                    .zip(&r.methods)
                    .filter(|(_, h)| h.duration.count() > 0)
                    .map(move |(method, h)| {
                        (
                            format!("route=\"{}\",method=\"{}\"", escape(route), method.as_str()),
                            h,
                        )
                    })
            })
        };
        header(
            out,
            "switchyard_http_requests_total",
            "counter",
            "API requests answered, by route template, method and status.",
        );
        for (labels, handle) in used() {
            for (status, count) in handle
                .statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                let _ = writeln!(
                    out,
                    "switchyard_http_requests_total{{{labels},status=\"{status}\"}} {count}"
                );
            }
        }
        header(
            out,
            "switchyard_http_request_duration_seconds",
            "histogram",
            "From a request's arrival at its route to its answer's head, by route template and method.",
        );
        for (labels, handle) in used() {
            handle
                .duration
                .render(out, "switchyard_http_request_duration_seconds", &labels);
        }
    }
}

impl Histogram {
    /// Observations so far.
    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_index_their_handles_and_unknown_ones_are_other() {
        for (index, method) in HttpMethod::ALL.iter().enumerate() {
            assert_eq!(*method as usize, index);
            assert_eq!(HttpMethod::of(method.as_str()), *method);
        }
        assert_eq!(HttpMethod::of("BREW"), HttpMethod::Other);
        assert_eq!(HttpMethod::of("get"), HttpMethod::Other);
    }

    #[test]
    fn renders_requests_by_status_and_latency_by_route_and_method() {
        let http = HttpMetrics::default();
        let route = "/v1/buses/{bus}/events";
        http.record(route, HttpMethod::Post, 200, Duration::from_millis(2));
        http.record(route, HttpMethod::Post, 200, Duration::from_millis(20));
        http.record(route, HttpMethod::Post, 413, Duration::from_millis(1));
        http.record(UNMATCHED_ROUTE, HttpMethod::Other, 404, Duration::ZERO);
        let mut text = String::new();
        http.render(&mut text);
        let labels = "route=\"/v1/buses/{bus}/events\",method=\"POST\"";
        for line in [
            format!("switchyard_http_requests_total{{{labels},status=\"200\"}} 2"),
            format!("switchyard_http_requests_total{{{labels},status=\"413\"}} 1"),
            "switchyard_http_requests_total{route=\"unmatched\",method=\"other\",status=\"404\"} 1"
                .to_string(),
            format!("switchyard_http_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 2"),
            format!("switchyard_http_request_duration_seconds_count{{{labels}}} 3"),
        ] {
            assert!(text.contains(&line), "missing {line}\n{text}");
        }
        assert!(
            !text.contains("method=\"GET\""),
            "unused methods have no series"
        );
    }
}
