//! What a node says about itself: its build, its process (the standard `process_*` names that
//! Prometheus's client libraries use, so existing dashboards work), and its store (readiness,
//! size, PostgreSQL connections).
//!
//! Must not: read them. The caller reads `/proc` and asks the store at scrape time and passes
//! the figures in; a figure the caller could not read is `None` and its series is left out
//! (a made-up 0 would look like a real reading to an alert).

use std::fmt::Write;

use crate::{escape, header};

/// The process's figures, read by the caller at scrape time (from `/proc` on Linux).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessGauges {
    /// User and system CPU time used, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory, in bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// File descriptors open now.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// The store's figures at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreGauges {
    /// Whether the store read and committed just now: what `/readyz` answers.
    pub ready: bool,
    /// The store's size in bytes; `None` when the store did not answer.
    pub size_bytes: Option<u64>,
    /// The PostgreSQL store's connection pool; `None` for the embedded store.
    pub pool: Option<PoolGauges>,
}

/// A connection pool's use now.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolGauges {
    /// Connections open and waiting for work.
    pub idle: u64,
    /// Connections taken by a caller (being opened, or running statements).
    pub in_use: u64,
    /// The most connections the pool opens.
    pub max: u64,
}

/// Renders `switchyard_build_info{version}`: 1, so that the version is one join away.
pub fn render_build_info(version: &str) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "switchyard_build_info",
        "gauge",
        "1, labelled with the version of the switchyard binary.",
    );
    let _ = writeln!(
        out,
        "switchyard_build_info{{version=\"{}\"}} 1",
        escape(version)
    );
    out
}

/// Renders the `process_*` series that have a figure.
pub fn render_process(process: &ProcessGauges) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, kind: &str, help: &str, value: Option<String>| {
        if let Some(value) = value {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
    };
    gauge(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        process.cpu_seconds.map(|v| v.to_string()),
    );
    gauge(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        process.resident_memory_bytes.map(|v| v.to_string()),
    );
    gauge(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        process.virtual_memory_bytes.map(|v| v.to_string()),
    );
    gauge(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        process.open_fds.map(|v| v.to_string()),
    );
    gauge(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        process.max_fds.map(|v| v.to_string()),
    );
    gauge(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        process.start_time_seconds.map(|v| v.to_string()),
    );
    out
}

/// Renders the store's readiness, size and pool.
pub fn render_store(store: &StoreGauges) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "switchyard_store_ready",
        "gauge",
        "1 while the store reads and commits (what /readyz checks), 0 while it fails.",
    );
    let _ = writeln!(out, "switchyard_store_ready {}", u8::from(store.ready));
    if let Some(size) = store.size_bytes {
        header(
            &mut out,
            "switchyard_store_size_bytes",
            "gauge",
            "Size of the store: the embedded store's file, or the PostgreSQL store's tables with their indexes.",
        );
        let _ = writeln!(out, "switchyard_store_size_bytes {size}");
    }
    if let Some(pool) = store.pool {
        header(
            &mut out,
            "switchyard_postgres_pool_connections",
            "gauge",
            "Connections of the PostgreSQL store's pool for reads and catalog writes, by state: idle, in_use.",
        );
        let _ = writeln!(
            out,
            "switchyard_postgres_pool_connections{{state=\"idle\"}} {}",
            pool.idle
        );
        let _ = writeln!(
            out,
            "switchyard_postgres_pool_connections{{state=\"in_use\"}} {}",
            pool.in_use
        );
        header(
            &mut out,
            "switchyard_postgres_pool_max_connections",
            "gauge",
            "The most connections the PostgreSQL store's pool opens (in_use reaching it means callers wait).",
        );
        let _ = writeln!(out, "switchyard_postgres_pool_max_connections {}", pool.max);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_that_could_not_be_read_have_no_series() {
        let text = render_process(&ProcessGauges {
            open_fds: Some(12),
            ..ProcessGauges::default()
        });
        assert!(text.contains("# TYPE process_open_fds gauge\nprocess_open_fds 12\n"));
        assert!(!text.contains("process_max_fds"));
        let text = render_store(&StoreGauges::default());
        assert!(text.contains("switchyard_store_ready 0"));
        assert!(!text.contains("switchyard_store_size_bytes"));
        assert!(!text.contains("switchyard_postgres_pool"));
    }

    #[test]
    fn renders_build_store_and_pool() {
        assert!(render_build_info("1.2.3").contains("switchyard_build_info{version=\"1.2.3\"} 1"));
        let text = render_store(&StoreGauges {
            ready: true,
            size_bytes: Some(4096),
            pool: Some(PoolGauges {
                idle: 1,
                in_use: 2,
                max: 4,
            }),
        });
        for line in [
            "switchyard_store_ready 1",
            "switchyard_store_size_bytes 4096",
            "switchyard_postgres_pool_connections{state=\"idle\"} 1",
            "switchyard_postgres_pool_connections{state=\"in_use\"} 2",
            "switchyard_postgres_pool_max_connections 4",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
    }
}
