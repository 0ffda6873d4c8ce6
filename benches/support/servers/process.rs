//! What a server process uses, read from `/proc/PID` (Linux): resident memory from `status`
//! and CPU time from `stat`, both covering every thread of the process.

use std::sync::OnceLock;

/// Resident memory in MB (2^20 bytes); NaN when the process is gone.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// `VmHWM`: the peak resident set since the process started.
    pub peak_mb: f64,
    /// `VmRSS`: the resident set now.
    pub now_mb: f64,
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    Memory {
        peak_mb: field("VmHWM:"),
        now_mb: field("VmRSS:"),
    }
}

/// User + system CPU seconds of the process so far (`utime` + `stime`, fields 14 and 15 of
/// `/proc/PID/stat`); NaN when the process is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    let Some((_, after)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let ticks = |field: usize| fields.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    match (ticks(14), ticks(15)) {
        (Some(user), Some(system)) => (user + system) as f64 / clock_ticks_per_second(),
        _ => f64::NAN,
    }
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once; 100 (Linux's USER_HZ) if that fails.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}
