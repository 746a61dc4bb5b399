//! Re-attach: after the FUSE connection was lost (every process holding it gone: `systemctl
//! stop`, a pod deleted, the C lxcfs stopped to switch to lxcfs-rs), every container that bound
//! the old files reads "Transport endpoint is not connected" until it restarts. When lxcfs-rs
//! mounts afresh it finds those dead binds in every mount namespace of the host and replaces
//! each with the live file (`lxcfs-rs reattach` does the same by hand).
//!
//! - [`scan`]: dead LXCFS mounts in a mount table (pure);
//! - [`rebind`]: replacing them inside one namespace (a single-threaded helper process).
//!
//! Dead mounts are found from `/proc/*/mountinfo`, grouped by mount namespace, and never
//! `stat`ed or opened (that fails or blocks). Each namespace is handled by its own helper
//! process (`lxcfs-rs reattach --pid PID`), so a failure or a hang in one never stops the
//! others or the daemon.

pub mod rebind;
pub mod scan;

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::mounts;
use rebind::How;

/// How long one namespace's helper may take.
const HELPER_PATIENCE: Duration = Duration::from_secs(5);

/// Why a pass could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReattachError {
    /// Nothing live to bind from.
    #[error("{0} is not a live lxcfs mount (start lxcfs-rs on it first)")]
    NotLive(PathBuf),
    /// The helper for one namespace could not even be asked.
    #[error("cannot re-attach in the mount namespace of pid {pid}")]
    Namespace {
        /// The pid.
        pid: u32,
        /// What went wrong.
        source: io::Error,
    },
}

/// What happened in one mount namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsReport {
    /// The namespace (its `ns/mnt` inode).
    pub ns: u64,
    /// A process in it (whose mount table was read).
    pub pid: u32,
    /// Dead LXCFS mounts found.
    pub dead: usize,
    /// Replaced (atomically where the kernel can).
    pub fixed: usize,
    /// Locked, so covered by a live one instead (the dead one stays beneath); counted apart
    /// from `fixed`.
    pub on_top: usize,
    /// Not replaced: `target: why`.
    pub failed: Vec<String>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The live mount's device (`major:minor`).
    pub live_dev: String,
    /// Every namespace that held dead mounts.
    pub namespaces: Vec<NsReport>,
}

impl Report {
    /// The JSON `lxcfs-rs reattach --json` prints: the namespaces and the totals.
    pub fn to_json(&self) -> serde_json::Value {
        let sum = |f: fn(&NsReport) -> usize| self.namespaces.iter().map(f).sum::<usize>();
        serde_json::json!({
            "live_dev": self.live_dev,
            "namespaces": self.namespaces,
            "dead": sum(|n| n.dead),
            "fixed": sum(|n| n.fixed),
            "on_top": sum(|n| n.on_top),
            "failed": sum(|n| n.failed.len()),
        })
    }

    /// One line for the log: `reattach: ...`.
    pub fn summary(&self) -> String {
        let j = self.to_json();
        format!(
            "reattach: {} mount namespace(s) held {} dead lxcfs mount(s): {} re-bound, {} locked \
             ones covered on top, {} failed",
            self.namespaces.len(),
            j["dead"],
            j["fixed"],
            j["on_top"],
            j["failed"]
        )
    }
}

impl NsReport {
    /// One line for the log.
    pub fn line(&self) -> String {
        let mut line = format!(
            "reattach: mount namespace {} (pid {}): {} dead, {} re-bound, {} on top",
            self.ns, self.pid, self.dead, self.fixed, self.on_top
        );
        for f in &self.failed {
            line.push_str(&format!("; failed {f}"));
        }
        line
    }
}

/// The live LXCFS mount at `mountpoint`: its device.
fn live_dev(mountpoint: &Path) -> Result<String, ReattachError> {
    let absolute = mounts::absolute(mountpoint);
    match mounts::mount_at(&absolute) {
        Some((fs_type, major, minor)) if scan::is_lxcfs(&fs_type, Some("lxcfs")) => {
            Ok(format!("{major}:{minor}"))
        }
        _ => Err(ReattachError::NotLive(mountpoint.to_path_buf())),
    }
}

/// The mount namespace of `pid` (its inode).
fn namespace_of(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("mnt:[")?.strip_suffix(']')?.parse().ok()
}

/// Which LXCFS devices are dead: those mounted in some namespace but not in ours (the host's,
/// where every serving daemon's mount lives; a dead one there was detached before mounting
/// afresh), plus `known_dead` (the ones detached), never `live`. Liveness is judged from the
/// mount tables alone: a dead FUSE mount fails or blocks whoever looks into it.
fn dead_devices(tables: &[String], live: &str, known_dead: &[String]) -> BTreeSet<String> {
    let ours = std::fs::read_to_string(crate::host::own::MOUNTINFO).unwrap_or_default();
    let served = scan::lxcfs_devices(&ours);
    tables
        .iter()
        .flat_map(|t| scan::lxcfs_devices(t))
        .filter(|d| !served.contains(d))
        .chain(known_dead.iter().cloned())
        .filter(|d| d != live)
        .collect()
}

/// One process per mount namespace on the host, in pid order, with its namespace and mount
/// table.
fn namespaces() -> Vec<(u64, u32, String)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Some(ns) = namespace_of(pid) else {
            continue;
        };
        if !seen.insert(ns) {
            continue;
        }
        // A process gone meanwhile is skipped; the next in its namespace would be too
        // (seen), which is fine: a namespace with no process left has no reader either.
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        out.push((ns, pid, text));
    }
    out
}

/// Runs `exe reattach --pid PID --dead DEVS --json MOUNTPOINT` and reads its report, giving
/// it [`HELPER_PATIENCE`].
fn ask_helper(exe: &Path, mountpoint: &Path, dead: &str, ns: u64, pid: u32) -> NsReport {
    let failed = |why: String| NsReport {
        ns,
        pid,
        failed: vec![why],
        ..NsReport::default()
    };
    let child = Command::new(exe)
        .arg("reattach")
        .arg("--pid")
        .arg(pid.to_string())
        .arg("--dead")
        .arg(dead)
        .arg("--json")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return failed(format!("starting the helper: {e}")),
    };
    let deadline = Instant::now() + HELPER_PATIENCE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return failed(format!("the helper took over {HELPER_PATIENCE:?}"));
            }
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return failed(format!("reading the helper: {e}")),
    };
    match serde_json::from_slice::<NsReport>(&out.stdout) {
        Ok(r) => r,
        Err(_) => failed(format!(
            "the helper failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Finds every mount namespace with dead LXCFS mounts and has a helper (`exe`, this binary)
/// re-bind the live `mountpoint`'s files over them. `known_dead`: devices known dead besides
/// those judged from the mount tables (a dead mount detached from `mountpoint` at start).
pub fn reattach(
    mountpoint: &Path,
    exe: &Path,
    known_dead: &[String],
) -> Result<Report, ReattachError> {
    let live = live_dev(mountpoint)?;
    let mountpoint = mounts::absolute(mountpoint);
    let all = namespaces();
    let tables: Vec<String> = all.iter().map(|(_, _, t)| t.clone()).collect();
    let dead = dead_devices(&tables, &live, known_dead);
    let list = dead.iter().cloned().collect::<Vec<_>>().join(",");
    let namespaces = all
        .iter()
        .filter(|(_, _, table)| !scan::dead_mounts(table, &dead).is_empty())
        .map(|&(ns, pid, _)| ask_helper(exe, &mountpoint, &list, ns, pid))
        .collect();
    Ok(Report {
        live_dev: live,
        namespaces,
    })
}

/// The helper's work: re-binds the live `mountpoint`'s files over the mounts of the `dead`
/// devices in `pid`'s mount namespace. Call only from a single-threaded process, which ends
/// up in that namespace.
pub fn reattach_namespace_of(
    pid: u32,
    mountpoint: &Path,
    dead: &[String],
) -> Result<NsReport, ReattachError> {
    let live = live_dev(mountpoint)?;
    let ns_err = |source| ReattachError::Namespace { pid, source };
    // Before anything is read about the process: the pidfd tells, at the end, whether every
    // file read was still this process's.
    let pidfd = rebind::pidfd(pid).map_err(ns_err)?;
    let ns = namespace_of(pid).ok_or_else(|| ns_err(io::Error::from(io::ErrorKind::NotFound)))?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).map_err(ns_err)?;
    let dead: BTreeSet<String> = dead.iter().filter(|d| **d != live).cloned().collect();
    let dead = scan::dead_mounts(&text, &dead);
    let mountpoint = mounts::absolute(mountpoint);
    let outcomes = rebind::rebind(pid, &pidfd, ns, &mountpoint, &dead).map_err(ns_err)?;
    let mut report = NsReport {
        ns,
        pid,
        dead: dead.len(),
        ..NsReport::default()
    };
    for (d, how) in dead.iter().zip(outcomes) {
        match how {
            How::Beneath | How::Replaced => report.fixed += 1,
            How::OnTop => report.on_top += 1,
            How::Failed(why) => report.failed.push(format!("{}: {why}", d.target.display())),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_sums_its_namespaces() {
        let r = Report {
            live_dev: "0:60".into(),
            namespaces: vec![
                NsReport {
                    ns: 1,
                    pid: 10,
                    dead: 3,
                    fixed: 2,
                    on_top: 1,
                    failed: vec![],
                },
                NsReport {
                    ns: 2,
                    pid: 20,
                    dead: 2,
                    fixed: 1,
                    on_top: 0,
                    failed: vec!["/proc/stat: gone".into()],
                },
            ],
        };
        let j = r.to_json();
        assert_eq!(
            (j["dead"].as_u64(), j["fixed"].as_u64()),
            (Some(5), Some(3))
        );
        assert_eq!(
            (j["on_top"].as_u64(), j["failed"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(
            r.summary(),
            "reattach: 2 mount namespace(s) held 5 dead lxcfs mount(s): 3 re-bound, 1 locked ones covered on top, 1 failed"
        );
        assert!(
            r.namespaces[1]
                .line()
                .ends_with("; failed /proc/stat: gone")
        );
        let empty = Report::default().to_json();
        assert_eq!(empty["namespaces"], serde_json::json!([]));
        assert_eq!(empty["dead"], 0);
    }

    #[test]
    fn a_mount_point_nothing_serves_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            reattach(dir.path(), Path::new("/bin/false"), &[]),
            Err(ReattachError::NotLive(_))
        ));
    }
}
