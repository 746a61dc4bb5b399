//! Migration from the C lxcfs without restarting a container: lxcfs serves the mount point
//! with the fleet bound to it, is stopped (`systemctl stop lxcfs`: SIGTERM, after which it
//! unmounts and exits), and lxcfs-rs starts on the same mount point.

use std::time::Duration;

use crate::common::scene::{Scene, monotonic_ms, must, problems, stuck};
use crate::common::{Daemon, fuse_dev};
use crate::namespaces::{dead_counts, heal_problems};
use crate::outage::{Fleet, Timeline, has_summary_line, reader_problems, report_recovery};

#[test]
fn the_c_lxcfs_containers_get_lxcfs_rs_files_within_2_s() {
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (scripts/deps.sh test installs it)"
    );
    let Some(s) = Scene::new() else {
        return;
    };
    let mut lxcfs = Daemon::start_c_lxcfs_on(&s.mnt, &s.log("lxcfs"));
    let dead = vec![fuse_dev(&s.mnt)];
    let mut fleet = Fleet::start(&s, &s.mnt);
    let before = fleet.namespaces();

    let killed_at = monotonic_ms();
    // lxcfs unmounts the mount point as it exits, which takes it a few seconds: its mount
    // is gone, so nothing on the host ties the containers' dead binds to this mount point
    // but their type.
    let exit = lxcfs.terminate();
    eprintln!(
        "lxcfs stopped after {} ms: {exit:?}",
        monotonic_ms() - killed_at
    );
    fleet.start_late();
    let started_at = monotonic_ms();
    let new = Daemon::start_replacing(&s.mnt, &s.log("lxcfs-rs"), &[], &dead[0]);
    let live = fuse_dev(&s.mnt);
    let t = Timeline {
        killed_at,
        started_at,
    };
    t.sleep_past_limit(Duration::from_millis(500));
    let after = fleet.namespaces();
    let mut bad = fleet.restarted();
    let stuck = stuck(&[]);
    let stopped = fleet.stop();
    report_recovery("the C lxcfs stopped, lxcfs-rs started", &stopped, &t);
    eprintln!(
        "lxcfs's connection {dead:?}, lxcfs-rs's {live}; after the pass: {:#?}",
        dead_counts(&after, &dead, &live)
    );

    if dead.contains(&live) {
        bad.push(format!(
            "lxcfs-rs's mount has lxcfs's device number {live}: the checks cannot tell them \
             apart"
        ));
    }
    // The first good values were lxcfs's; lxcfs-rs's must agree (the probe flags any
    // change of MemTotal, processors or online list as wrong).
    if let Err(e) = stopped.views() {
        bad.push(e);
    }
    bad.extend(reader_problems(&stopped, &t));
    // Every bind shows lxcfs-rs's connection now: the containers read lxcfs-rs's files.
    bad.extend(heal_problems(&before, &after, &dead, &live));
    if !has_summary_line(&new.log()) {
        bad.push(format!(
            "lxcfs-rs logged no line starting with `reattach:`; its log:\n{}",
            new.log()
        ));
    }
    if !stuck.is_empty() {
        bad.push(format!("stuck in D state: {}", stuck.join("; ")));
    }
    must(problems(
        "after lxcfs was stopped and lxcfs-rs started, the containers did not all get \
         lxcfs-rs's files",
        bad,
    ));
    drop(new);
}
