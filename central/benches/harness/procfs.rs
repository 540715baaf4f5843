//! Process figures from `/proc`: CPU seconds (utime + stime) and resident memory (VmRSS).

/// Clock ticks per second of `/proc/*/stat` times (USER_HZ: 100 on every Linux build in use).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) used so far by process `pid` ("self" for this one).
pub fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of stat(5) are at 11 and 12 here (state is field 3).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// Resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: &str) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|kb| kb * 1024)
}

/// The anonymous part of the resident set (`RssAnon`): the process's own memory, without the
/// pages of its executable and libraries (on some filesystems the whole executable is resident).
pub fn rss_anon_bytes(pid: &str) -> Option<u64> {
    status_kib(pid, "RssAnon:").map(|kb| kb * 1024)
}

fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
