//! Failures on purpose, for the restart tests: debug builds only (release builds compile
//! every call to nothing). `LXCFS_RS_FAILPOINTS` is a comma list:
//!
//! - `hang:PATH`: the first delivery of a READ of PATH (relative to the mount, e.g.
//!   `proc/uptime`) never returns, so a READ is held in flight when the process is killed;
//!   the same request resent by the kernel (bit 63 of its unique) is served;
//! - `crash:PATH`: every READ of PATH aborts the process (a poison request);
//! - `slow:PATH`: every READ of PATH takes 500 ms more (a request still being served when
//!   another one crashes the process);
//! - `worker:exit`: a worker exits with an error before it serves (one that cannot start).

/// The failpoints set, as (what, where) pairs.
#[cfg(debug_assertions)]
fn points() -> &'static [(String, String)] {
    use std::sync::OnceLock;
    static POINTS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("LXCFS_RS_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_once(':'))
            .map(|(what, path)| (what.to_string(), path.to_string()))
            .collect()
    })
}

/// Whether a starting worker must fail.
#[cfg(debug_assertions)]
pub fn worker_fails_to_start() -> bool {
    points()
        .iter()
        .any(|(what, how)| what == "worker" && how == "exit")
}

/// Release builds have no failpoints.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn worker_fails_to_start() -> bool {
    false
}

/// What a READ of `path` must suffer; `resent` when the kernel delivers it again.
#[cfg(debug_assertions)]
pub fn on_read(path: &str, resent: bool) {
    for (what, at) in points() {
        if at != path {
            continue;
        }
        match what.as_str() {
            "hang" if !resent => {
                log::warn!("failpoint: holding a READ of {path} forever");
                loop {
                    std::thread::park();
                }
            }
            "crash" => {
                log::warn!("failpoint: aborting on a READ of {path}");
                std::process::abort();
            }
            "slow" => std::thread::sleep(std::time::Duration::from_millis(500)),
            _ => {}
        }
    }
}

/// Release builds have no failpoints.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn on_read(_path: &str, _resent: bool) {}
