//! The process's CPU time, memory, file descriptors and start time, read from `/proc/self`
//! (Linux) at scrape time, as Prometheus's client libraries read them. Where `/proc` is missing
//! (other systems) or a file does not parse, that figure is `None` and its series is left out.
//!
//! Blocking (a few small reads of `/proc`, and one directory listing as long as the open
//! descriptors): run it on the blocking pool.

use std::sync::OnceLock;

use switchyard_metrics::ProcessGauges;

/// Clock ticks per second of `/proc/self/stat`'s times: the kernel's `USER_HZ`, which is 100
/// on every architecture Rust builds switchyard for (it is fixed by the ABI, unlike `HZ`).
const USER_HZ: f64 = 100.0;

pub(super) fn read() -> ProcessGauges {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name, which is in parentheses and may hold spaces: the first
    // one here is field 3 (state) of proc(5).
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |number: usize| fields.get(number - 3).and_then(|f| f.parse::<u64>().ok());
    let cpu_seconds = field(14)
        .zip(field(15))
        .map(|(user, system)| (user + system) as f64 / USER_HZ);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let resident_memory_bytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(kilobytes);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count() as u64);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits.lines().find_map(|line| {
                line.strip_prefix("Max open files")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|soft| soft.parse().ok())
            })
        });
    ProcessGauges {
        cpu_seconds,
        resident_memory_bytes,
        virtual_memory_bytes: field(23),
        open_fds,
        max_fds,
        start_time_seconds: start_time(field(22)),
    }
}

/// "  1234 kB" in bytes.
fn kilobytes(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_suffix("kB")
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|n| n * 1024)
}

/// The start time in seconds since the epoch: the boot time (`btime` of `/proc/stat`) plus the
/// ticks from boot to the start. It never changes, so it is worked out once.
fn start_time(ticks_after_boot: Option<u64>) -> Option<f64> {
    static START: OnceLock<Option<f64>> = OnceLock::new();
    *START.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| {
                line.strip_prefix("btime ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })?;
        Some(boot as f64 + ticks_after_boot? as f64 / USER_HZ)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilobytes_of_proc_status() {
        assert_eq!(kilobytes("\t    1936 kB"), Some(1936 * 1024));
        assert_eq!(kilobytes("1936"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_every_figure_on_linux() {
        let process = read();
        assert!(process.resident_memory_bytes.is_some_and(|b| b > 0));
        assert!(process.virtual_memory_bytes >= process.resident_memory_bytes);
        assert!(process.open_fds.is_some_and(|n| n >= 3));
        assert!(process.max_fds >= process.open_fds);
        assert!(process.cpu_seconds.is_some());
        // After 2020 and not in the future (a wrong tick rate would be off by a factor).
        let start = process.start_time_seconds.unwrap();
        let now = switchyard_model::now_ms() as f64 / 1000.0;
        assert!(start > 1.6e9 && start <= now, "{start} vs {now}");
    }
}
