//! The harness proven while lxcfs-rs does not re-bind by itself: a reference pass done by the
//! test heals every container and every check passes; left unhealed, every check sees it;
//! the mountinfo and report comparisons on made-up tables.

use std::path::PathBuf;

use crate::common::parse_mountinfo;
use crate::heal::{Old, Outcome, Pass, must_heal, outage};
use crate::namespaces::{Namespaces, Ns, heal_problems};
use crate::outage::{has_summary_line, reader_problems};
use crate::report::{NsReport, Reattach, report_problems};

/// The test's own re-bind (open_tree, setns, move_mount beneath, unmount the dead top, or
/// mount on top of a locked one) after a fresh start heals every container of the fleet in
/// time: what the checks of [`crate::heal`] ask of lxcfs-rs is possible on this kernel, and
/// the checks pass when it is done. (Once lxcfs-rs re-binds by itself, the reference pass
/// waits for its summary line and finds only the covered mounts left.)
#[test]
fn a_reference_pass_heals_every_container_and_the_checks_pass() {
    must_heal(Old::LxcfsRs, Pass::Reference);
}

/// The same for the migration from the C lxcfs: its dead mounts (of another filesystem
/// than lxcfs-rs's, a read-write one) can be replaced by lxcfs-rs's in time.
#[test]
fn a_reference_pass_heals_the_c_lxcfs_containers_and_the_checks_pass() {
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (scripts/deps.sh test installs it)"
    );
    must_heal(Old::CLxcfs, Pass::Reference);
}

/// Killed, and no daemon started: every check sees the containers broken. Each reader is
/// reported as never recovering, each namespace's dead mounts as still there, and a report
/// claiming they were fixed is refused. No container restarted.
#[test]
fn the_checks_see_containers_left_broken() {
    let Some(Outcome {
        stopped,
        before,
        after,
        dead,
        t,
        restarted,
        ..
    }) = outage(Old::LxcfsRs, Pass::Nobody)
    else {
        return;
    };
    assert!(restarted.is_empty(), "{restarted:?}");
    // Every probe saw its view before the kill, but the late one, which never read a good
    // value.
    let views = stopped.views().unwrap_err();
    assert_eq!(
        views
            .lines()
            .filter(|l| l.starts_with("  container"))
            .count(),
        1,
        "{views}"
    );
    assert!(views.contains("container late:"), "{views}");
    let readers = reader_problems(&stopped, &t);
    for sum in stopped.summaries() {
        let never = format!("container {}: its reads never recovered", sum.name);
        assert!(
            readers.iter().any(|p| p.starts_with(&never)),
            "the reader check must see container {} broken: {readers:#?}",
            sum.name
        );
    }
    let mounts = heal_problems(&before, &after, &dead, "0:0");
    let mut held = 0;
    for ns in before.values() {
        let points = ns.points_of(&dead);
        if points.is_empty() {
            continue;
        }
        held += 1;
        let line = mounts
            .iter()
            .find(|p| p.starts_with(&ns.name()) && p.contains("still the dead connection at"));
        for (point, _) in &points {
            assert!(
                line.is_some_and(|l| l.contains(&point.display().to_string())),
                "{}: its dead mount at {} must be seen: {mounts:#?}",
                ns.label(),
                point.display()
            );
        }
    }
    // Six containers, and the nested and locked ones hold a second namespace each.
    assert!(
        held >= 8,
        "namespaces holding the binds: {held}: {before:#?}"
    );
    let claimed = Reattach {
        live_dev: "0:0".into(),
        namespaces: after
            .values()
            .filter_map(|ns| {
                let n = ns.of_devs(&dead).count() as u64;
                (n > 0).then(|| NsReport {
                    ns: ns.ns,
                    pid: ns.pids[0],
                    dead: n,
                    fixed: n,
                    on_top: 0,
                    failed: Vec::new(),
                })
            })
            .collect(),
        dead: 0,
        fixed: 0,
        on_top: 0,
        failed: 0,
    };
    let refused = report_problems(&claimed, &after, &after, &dead, "0:0");
    assert!(
        refused.iter().any(|p| p.contains("totals")),
        "wrong totals must be seen: {refused:#?}"
    );
    let alone = Reattach {
        namespaces: Vec::new(),
        ..claimed
    };
    let refused = report_problems(&alone, &after, &after, &dead, "0:0");
    assert_eq!(
        refused
            .iter()
            .filter(|p| p.contains("not listed, but it held"))
            .count(),
        held,
        "an unlisted namespace holding dead mounts must be seen: {refused:#?}"
    );
}

/// A made-up namespace: `/proc/meminfo` left dead on top, `/proc/stat` dead under a live
/// mount (locked), `/proc/uptime` re-bound, `/proc/cpuinfo` taken by another connection.
fn made_up() -> (Namespaces, Namespaces) {
    let ns = |text: &str| {
        let mounts = parse_mountinfo(text);
        Namespaces::from([(
            7,
            Ns {
                ns: 7,
                container: "made-up".into(),
                pids: vec![0],
                raw: text.to_string(),
                mounts,
            },
        )])
    };
    let before = ns("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
         10 1 0:50 /proc/meminfo /proc/meminfo ro - fuse.lxcfs lxcfs ro\n\
         11 1 0:50 /proc/stat /proc/stat ro - fuse.lxcfs lxcfs ro\n\
         12 1 0:50 /proc/uptime /proc/uptime ro - fuse.lxcfs lxcfs ro\n\
         13 1 0:50 /proc/cpuinfo /proc/cpuinfo ro - fuse.lxcfs lxcfs ro\n");
    let after = ns("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
         10 1 0:50 /proc/meminfo /proc/meminfo ro - fuse.lxcfs lxcfs ro\n\
         11 1 0:50 /proc/stat /proc/stat ro - fuse.lxcfs lxcfs ro\n\
         20 11 0:60 /proc/stat /proc/stat ro - fuse.lxcfs lxcfs ro\n\
         21 1 0:60 /proc/uptime /proc/uptime ro - fuse.lxcfs lxcfs ro\n\
         22 1 0:70 /proc/cpuinfo /proc/cpuinfo ro - fuse.lxcfs lxcfs ro\n");
    (before, after)
}

#[test]
fn mountinfo_shows_dead_covered_and_foreign_mounts() {
    let (before, after) = made_up();
    let dead = vec!["0:50".to_string()];
    let ns = &after[&7];
    let (exposed, covered) = ns.dead_split(&dead);
    let at = |ms: Vec<&crate::common::MountLine>| -> Vec<PathBuf> {
        ms.into_iter().map(|m| m.mount_point.clone()).collect()
    };
    assert_eq!(at(exposed), [PathBuf::from("/proc/meminfo")]);
    assert_eq!(at(covered), [PathBuf::from("/proc/stat")]);
    assert_eq!(ns.covered_by_live(&dead, "0:60"), 1);
    let bad = heal_problems(&before, &after, &dead, "0:60");
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(
        bad[0].contains("/proc/cpuinfo shows fuse.lxcfs 0:70"),
        "{bad:#?}"
    );
    assert!(
        bad[1].ends_with("still the dead connection at /proc/meminfo"),
        "{bad:#?}"
    );
    // A dead mount on top where none was before is seen too.
    let (mut before, after) = (before, after);
    before.get_mut(&7).unwrap().mounts.retain(|m| m.id != 10);
    let bad = heal_problems(&before, &after, &dead, "0:60");
    assert!(
        bad.iter()
            .any(|p| p.contains("a dead lxcfs mount is left on top at /proc/meminfo")),
        "{bad:#?}"
    );
}

#[test]
fn a_report_must_say_what_mountinfo_shows() {
    let (_, after) = made_up();
    let dead = vec!["0:50".to_string()];
    let entry = |fixed, on_top, failed: &[&str]| NsReport {
        ns: 7,
        pid: 0,
        dead: 2,
        fixed,
        on_top,
        failed: failed.iter().map(|f| f.to_string()).collect(),
    };
    let report = |n: NsReport| Reattach {
        live_dev: "0:60".into(),
        dead: n.dead,
        fixed: n.fixed,
        on_top: n.on_top,
        failed: n.failed.len() as u64,
        namespaces: vec![n],
    };
    // Two dead mounts at the pass: meminfo (left on top, so not fixed) and stat (covered).
    let honest = report(entry(0, 1, &["/proc/meminfo: EINVAL"]));
    let bad = report_problems(&honest, &after, &after, &dead, "0:60");
    assert!(
        bad.iter()
            .any(|p| p.contains("(2, 0, 1, 1)") && p.contains("(2, 1, 1, 0)")),
        "a failed mount is a problem even when reported: {bad:#?}"
    );
    let hidden = report(entry(2, 0, &[]));
    let bad = report_problems(&hidden, &after, &after, &dead, "0:60");
    assert!(
        bad.iter().any(|p| p.contains("(2, 2, 0, 0)")),
        "a covered mount reported as fixed: {bad:#?}"
    );
    let mut wrong_dev = report(entry(1, 1, &[]));
    wrong_dev.live_dev = "0:61".into();
    let bad = report_problems(&wrong_dev, &after, &after, &dead, "0:60");
    assert!(
        bad.iter().any(|p| p.contains("live_dev is 0:61")),
        "{bad:#?}"
    );
    assert!(report_problems(&report(entry(1, 1, &[])), &after, &after, &dead, "0:60").is_empty());
}

#[test]
fn the_summary_line_is_found_after_the_log_prefix() {
    assert!(has_summary_line(
        "[2026-12-02T19:08:43Z INFO  lxcfs_rs::daemon::reattach] reattach: 3 namespaces\n"
    ));
    assert!(has_summary_line("reattach: nothing dead\n"));
    assert!(!has_summary_line(
        "[2026-12-02T19:08:43Z INFO  lxcfs_rs::daemon] serving /mnt; reattach: later\n"
    ));
}
