//! CPU time of processes and of the machine from `/proc`, for the load
//! tools (`rate-load`, `ws-load`) that report what a benchmark cost.

use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat` and `/proc/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) a process used so far, from `/proc/PID/stat`
/// (`pid` may be `self`).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime = fields.get(11)?.parse::<u64>().ok()?;
    let stime = fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64((utime + stime) as f64 / USER_HZ))
}

/// CPU time all cores spent busy so far (`/proc/stat`: everything but
/// idle and iowait).
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(Duration::from_secs_f64(busy as f64 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_time("self").expect("own stat");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let after = cpu_time("self").expect("own stat");
        assert!(after > before, "{before:?} -> {after:?}");
        assert!(machine_busy().is_some_and(|b| b > Duration::ZERO));
        assert!(cpu_time("no-such-pid").is_none());
    }
}
