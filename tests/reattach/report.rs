//! What `lxcfs-rs reattach --json MOUNTPOINT` prints, and whether it says what the containers'
//! mountinfo shows.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

use serde::Deserialize;

use crate::common::{describe, run_bin};
use crate::namespaces::{Namespaces, dead_counts};

/// The report of one pass: one JSON object; every key of the contract is required, more
/// are allowed.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Reattach {
    /// `major:minor` of the live mount the pass re-bound from.
    pub(crate) live_dev: String,
    /// Each mount namespace that held a dead lxcfs mount.
    pub(crate) namespaces: Vec<NsReport>,
    /// Dead mounts found, in all namespaces.
    pub(crate) dead: u64,
    /// Dead mounts replaced (the live one moved beneath, the dead top unmounted).
    pub(crate) fixed: u64,
    /// Dead mounts a live one was mounted on top of (locked: they stay underneath).
    pub(crate) on_top: u64,
    /// Dead mounts left as they were.
    pub(crate) failed: u64,
}

/// One namespace of a [`Reattach`] report.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct NsReport {
    /// The inode of its `/proc/<pid>/ns/mnt`.
    pub(crate) ns: u64,
    /// A process in it.
    pub(crate) pid: u32,
    /// Dead mounts found in it.
    pub(crate) dead: u64,
    /// Of those, replaced.
    pub(crate) fixed: u64,
    /// Of those, covered by a live mount on top.
    pub(crate) on_top: u64,
    /// Of those, left as they were: `"<mountpoint>: <reason>"`.
    pub(crate) failed: Vec<String>,
}

/// `lxcfs-rs reattach --json MNT`, run: its report, or why there is none (the command failed
/// or printed something else than the contract's object), with what it printed.
pub(crate) fn reattach_json(mnt: &Path) -> (Result<Reattach, String>, Output) {
    let mnt = mnt.to_str().expect("utf-8 path");
    let out = run_bin(&["reattach", "--json", mnt]);
    let report = if !out.status.success() {
        Err(format!(
            "`lxcfs-rs reattach --json {mnt}` failed: {}",
            describe(&out)
        ))
    } else {
        serde_json::from_slice::<Reattach>(&out.stdout).map_err(|e| {
            format!(
                "`lxcfs-rs reattach --json {mnt}` printed no report of the contract ({e}): {}",
                describe(&out)
            )
        })
    };
    (report, out)
}

impl Reattach {
    /// The totals are the sums of the namespaces' counts, and each namespace's dead mounts
    /// were fixed, covered or failed.
    pub(crate) fn consistency_problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        let sum = |f: fn(&NsReport) -> u64| self.namespaces.iter().map(f).sum::<u64>();
        let sums = (
            sum(|n| n.dead),
            sum(|n| n.fixed),
            sum(|n| n.on_top),
            sum(|n| n.failed.len() as u64),
        );
        if sums != (self.dead, self.fixed, self.on_top, self.failed) {
            bad.push(format!(
                "the totals (dead, fixed, on_top, failed) {:?} are not the namespaces' sums \
                 {sums:?}",
                (self.dead, self.fixed, self.on_top, self.failed)
            ));
        }
        for n in &self.namespaces {
            if n.dead != n.fixed + n.on_top + n.failed.len() as u64 {
                bad.push(format!(
                    "namespace {}: {} dead is not {} fixed + {} on top + {} failed",
                    n.ns,
                    n.dead,
                    n.fixed,
                    n.on_top,
                    n.failed.len()
                ));
            }
            if n.dead == 0 {
                bad.push(format!("namespace {} is listed with nothing dead", n.ns));
            }
        }
        bad
    }

    /// The entries for namespaces that are not in `ours` (another test's, or the host's),
    /// for messages.
    pub(crate) fn others(&self, ours: &Namespaces) -> Vec<&NsReport> {
        self.namespaces
            .iter()
            .filter(|n| !ours.contains_key(&n.ns))
            .collect()
    }
}

/// What is wrong with `report` of a pass over our namespaces, given what mountinfo showed
/// `at_pass` (just before it) and `after` it: the live device is `live`; every namespace of
/// ours that held mounts of a `dead` connection is listed with that many dead, as many on
/// top as dead mounts are covered by live ones after the pass, the rest fixed, none failed;
/// a namespace of ours without dead mounts is not listed; each entry's pid is in its
/// namespace.
pub(crate) fn report_problems(
    report: &Reattach,
    at_pass: &Namespaces,
    after: &Namespaces,
    dead: &[String],
    live: &str,
) -> Vec<String> {
    let mut bad = report.consistency_problems();
    if report.live_dev != live {
        bad.push(format!(
            "live_dev is {}, the live mount is {live}",
            report.live_dev
        ));
    }
    let listed: BTreeMap<u64, &NsReport> = report.namespaces.iter().map(|n| (n.ns, n)).collect();
    for (ino, ns) in at_pass {
        let found = ns.of_devs(dead).count() as u64;
        let covered = after
            .get(ino)
            .map_or(0, |a| a.covered_by_live(dead, live) as u64);
        match (found, listed.get(ino)) {
            (0, None) => {}
            (0, Some(n)) => bad.push(format!(
                "{}: listed ({n:?}), but it held no dead lxcfs mount",
                ns.label()
            )),
            (_, None) => bad.push(format!(
                "{}: not listed, but it held {found} dead lxcfs mounts",
                ns.label()
            )),
            (_, Some(n)) => {
                let want = (found, found - covered.min(found), covered, 0);
                let got = (n.dead, n.fixed, n.on_top, n.failed.len() as u64);
                if got != want {
                    bad.push(format!(
                        "{}: reported (dead, fixed, on_top, failed) {got:?} ({:?}), mountinfo \
                         shows {want:?}",
                        ns.label(),
                        n.failed
                    ));
                }
                let pid_ns = fs::metadata(format!("/proc/{}/ns/mnt", n.pid)).map(|m| m.ino());
                if pid_ns.as_ref().is_ok_and(|&i| i != *ino) {
                    bad.push(format!(
                        "{}: the reported pid {} is in another namespace",
                        ns.label(),
                        n.pid
                    ));
                }
            }
        }
    }
    if !bad.is_empty() {
        bad.push(format!(
            "(what mountinfo showed before the pass: {:?}; after: {:?})",
            dead_counts(at_pass, dead, live),
            dead_counts(after, dead, live)
        ));
    }
    bad
}
