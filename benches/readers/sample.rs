//! What a daemon spends: its CPU time (user + system, all threads, from `/proc/<pid>/stat`)
//! and its resident memory (`VmRSS` from `/proc/<pid>/status`).

use std::time::Duration;

use procfs::process::Process;

/// The CPU time `pid` has used so far (all its threads, live and exited).
pub fn cpu_time(pid: i32) -> Result<Duration, String> {
    let stat = Process::new(pid)
        .and_then(|p| p.stat())
        .map_err(|e| format!("daemon {pid}: reading /proc/{pid}/stat: {e}"))?;
    let ticks = stat.utime + stat.stime;
    Ok(Duration::from_secs_f64(
        ticks as f64 / procfs::ticks_per_second() as f64,
    ))
}

/// The resident memory of `pid`, in bytes.
pub fn rss(pid: i32) -> Result<u64, String> {
    let status = Process::new(pid)
        .and_then(|p| p.status())
        .map_err(|e| format!("daemon {pid}: reading /proc/{pid}/status: {e}"))?;
    status
        .vmrss
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("daemon {pid}: no VmRSS in /proc/{pid}/status"))
}
