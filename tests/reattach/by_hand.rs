//! `lxcfs-rs reattach [--json] MOUNTPOINT` on a host where nothing is dead: it reports
//! nothing and changes nothing, though another live lxcfs-rs serves containers from a mount
//! with another device number (a live mount is not a dead one, whatever its device).

use std::path::Path;

use crate::common::container::Spec;
use crate::common::loads::{Kept, Loads, Want, loop_script};
use crate::common::scene::{Scene, must, problems};
use crate::common::{Daemon, MIB, describe, fuse_dev, run_bin};
use crate::fleet::fleet;
use crate::namespaces::{Member, Namespaces, changed, namespaces};
use crate::outage::PAUSE;
use crate::report::{reattach_json, report_problems};

/// What is wrong with `lxcfs-rs reattach --json mnt` on a host with nothing dead: it must
/// succeed, name `live` as the live device, list none of our namespaces (and nothing but
/// foreign ones, which are printed), and leave every namespace of ours as it was.
fn nothing_to_do(mnt: &Path, live: &str, members: &[Member]) -> Vec<String> {
    let before: Namespaces = namespaces(members);
    let (report, _) = reattach_json(mnt);
    let after = namespaces(members);
    let mut bad: Vec<String> = changed(&before, &after);
    match report {
        Ok(r) => {
            eprintln!("lxcfs-rs reattach --json {}: {r:?}", mnt.display());
            let others = r.others(&before);
            if !others.is_empty() {
                eprintln!(
                    "warning: the host holds dead lxcfs mounts in namespaces that are not this \
                     test's: {others:?}"
                );
            }
            bad.extend(report_problems(&r, &before, &after, &[], live));
        }
        Err(e) => bad.push(e),
    }
    bad.into_iter()
        .map(|p| format!("{}: {p}", mnt.display()))
        .collect()
}

#[test]
fn reattach_by_hand_with_nothing_dead_reports_and_changes_nothing() {
    let Some(s) = Scene::new() else {
        return;
    };
    let d = Daemon::start_on(&s.mnt, &s.log("daemon"), &[]);
    let other_mnt = s.other_mount_point("other");
    let other = Daemon::start_on(&other_mnt, &s.log("other"), &[]);
    let (dev, other_dev) = (fuse_dev(&s.mnt), fuse_dev(&other_mnt));
    let mut specs = fleet(&s, &s.mnt);
    specs.push((
        Spec::new("other", &s.rootfs, &loop_script("", Kept::Keep))
            .memory(128 * MIB)
            .lxcfs(&other_mnt),
        Want::host().memory(128 * MIB),
    ));
    let loads = Loads::start_specs(&s, specs);
    std::thread::sleep(PAUSE);
    let members: Vec<Member> = loads.containers().map(Member::of).collect();

    let mut bad = nothing_to_do(&s.mnt, &dev, &members);
    bad.extend(nothing_to_do(&other_mnt, &other_dev, &members));
    let plain = run_bin(&["reattach", s.mnt.to_str().expect("utf-8 path")]);
    if !plain.status.success() || plain.stdout.is_empty() {
        bad.push(format!(
            "`lxcfs-rs reattach MNT` should succeed and say what it found: {}",
            describe(&plain)
        ));
    }
    let not_mounted = s.other_mount_point("not-mounted");
    let refused = run_bin(&[
        "reattach",
        "--json",
        not_mounted.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    if refused.status.success() || !stderr.contains(not_mounted.to_str().expect("utf-8")) {
        bad.push(format!(
            "`lxcfs-rs reattach` of a directory that is no live lxcfs mount must fail naming \
             it: {}",
            describe(&refused)
        ));
    }
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("reattach by hand with nothing dead");
    if let Err(e) = stopped.views() {
        bad.push(e);
    }
    if let Err(e) = stopped.no_failures() {
        bad.push(e);
    }
    must(problems(
        "`lxcfs-rs reattach` with nothing dead should report nothing and change nothing",
        bad,
    ));
    drop(other);
    drop(d);
}
