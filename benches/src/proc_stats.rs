//! Peak resident memory and CPU time of a process, read from `/proc` (Linux only; elsewhere the
//! readings are `None`).

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux x86-64
/// and arm64).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Peak resident set size of this process in KiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_kib() -> Option<u64> {
    status_field("VmHWM:")
}

/// Current resident set size of this process in KiB (`VmRSS`).
pub fn rss_kib() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// User plus system CPU seconds used so far by process `pid` (all its threads); `None` if it
/// is gone or `/proc` is unavailable.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start with field 3 (state), so utime and stime (fields 14 and 15) are at 11 and 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / CLOCK_TICKS_PER_SECOND)
}

/// [`cpu_seconds`] of this process.
pub fn own_cpu_seconds() -> Option<f64> {
    cpu_seconds(std::process::id())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        if cfg!(target_os = "linux") {
            assert!(super::peak_rss_kib().unwrap() > 0);
            assert!(super::own_cpu_seconds().is_some());
        }
    }
}
