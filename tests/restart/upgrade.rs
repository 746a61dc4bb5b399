//! Planned changes of the serving binary: `--takeover` upgrades between two builds, SIGUSR1
//! (the supervisor re-executes itself), and SIGUSR2 (the files switch between the readers'
//! views and the host's).

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::container::{Container, Spec};
use crate::common::loads::Loads;
use crate::common::scene::problems;
use crate::common::status::{
    current_worker, read_within, status, status_json, status_lines, wait_new_worker, wait_status,
};
use crate::common::{Daemon, MIB, fuse_dev, kb, read_or_err, signal};
use crate::supervisor::{Build, PKG_VERSION};
use crate::{PAUSE, Scene, must, stuck};

/// How long an old instance may take to hand the mount over and exit.
const HANDOVER_LIMIT: Duration = Duration::from_secs(10);

/// `count` `--takeover` upgrades alternating between `builds` while the three containers
/// read. Asserts: no failed read and no wrong content in any container, each old instance
/// exits 0 and leaves the same FUSE connection mounted, no task of ours stuck in D state,
/// and with `with_status` the supervisor's status names the new instance and its version.
pub(crate) fn upgrades_under_load(s: &Scene, builds: [&Build; 2], count: usize, with_status: bool) {
    let mut current = Daemon::start_cmd_on(builds[0].command(), &s.mnt, &s.log("daemon-0"), &[]);
    let dev = fuse_dev(&s.mnt);
    if with_status {
        let st = status(&s.mnt);
        assert_eq!(
            (st.version.as_str(), st.dev.as_str()),
            (builds[0].version.as_str(), dev.as_str()),
            "the first instance's status: {st:?}"
        );
    }
    let loads = Loads::start(s, &s.mnt);
    let mut bad = Vec::new();
    let mut longest = Duration::ZERO;
    for i in 1..=count {
        std::thread::sleep(PAUSE);
        let build = builds[i % 2];
        let started = Instant::now();
        let log = s.log(&format!("daemon-{i}"));
        let next = Daemon::start_cmd_on(build.command(), &s.mnt, &log, &["--takeover"]);
        let exit = current.wait_exit(HANDOVER_LIMIT).unwrap_or_else(|| {
            panic!(
                "upgrade {i}: the old instance did not exit within {HANDOVER_LIMIT:?}; its \
                 log:\n{}\nthe new one's:\n{}",
                current.log(),
                next.log()
            )
        });
        current.hand_mount_over();
        assert_eq!(
            exit.code(),
            Some(0),
            "upgrade {i}: the old instance's exit; its log:\n{}",
            current.log()
        );
        if let Err(e) = read_within(&s.mnt.join("proc/meminfo"), Duration::from_secs(10)) {
            panic!(
                "upgrade {i}: the new instance does not serve: {e}; its log:\n{}",
                next.log()
            );
        }
        longest = longest.max(started.elapsed());
        let now = fuse_dev(&s.mnt);
        if now != dev {
            bad.push(format!(
                "upgrade {i}: the mount is connection {now}, was {dev}"
            ));
        }
        if with_status {
            let st = status(&s.mnt);
            if st.version != build.version || st.supervisor_pid != next.pid || st.dev != dev {
                bad.push(format!(
                    "upgrade {i} to {} (pid {}): status {st:?}",
                    build.version, next.pid
                ));
            }
        }
        let stuck = stuck(&[]);
        if !stuck.is_empty() {
            bad.push(format!("upgrade {i}: stuck: {}", stuck.join("; ")));
        }
        current = next;
    }
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report(&format!("{count} takeover upgrades"));
    eprintln!("the longest takeover, from the new instance's start to serving: {longest:?}");
    if with_status {
        eprintln!("status after the upgrades: {}", status(&s.mnt).summary());
    }
    must(stopped.views());
    must(stopped.no_failures());
    must(problems("upgrades", bad));
}

#[test]
fn twenty_upgrades_between_two_versions_lose_no_read() {
    let Some(s) = Scene::new() else {
        return;
    };
    let original = Build::original();
    let upgrade = Build::tagged("upgrade2");
    assert_eq!(
        original.reported_version(),
        PKG_VERSION,
        "--version of the original"
    );
    assert_eq!(
        upgrade.reported_version(),
        upgrade.version,
        "--version of the tagged copy"
    );
    upgrades_under_load(&s, [&original, &upgrade], 20, true);
}

#[test]
fn sigusr1_reexecutes_in_place_and_sigusr2_toggles_the_view() {
    let Some(s) = Scene::new() else {
        return;
    };
    let mut d = Daemon::start_on(&s.mnt, &s.log("daemon"), &[]);
    let dev = fuse_dev(&s.mnt);
    let first = status(&s.mnt);
    assert_eq!(first.supervisor_pid, d.pid, "status: {first:?}");
    let plain: Vec<String> = status_lines(&s.mnt).into_keys().collect();
    let mut json: Vec<String> = status_json(&s.mnt)
        .unwrap_or_else(|e| panic!("{e}"))
        .keys()
        .cloned()
        .collect();
    json.sort();
    assert_eq!(plain, json, "the keys of `status` and of `status --json`");

    let loads = Loads::start(&s, &s.mnt);
    let mut bad = Vec::new();
    let mut worker = current_worker(&s.mnt);
    for i in 1..=5 {
        std::thread::sleep(PAUSE);
        signal(d.pid, Signal::SIGUSR1);
        let (new_worker, st) = wait_new_worker(&s.mnt, worker, Duration::from_secs(10));
        if st.supervisor_pid != d.pid {
            bad.push(format!("SIGUSR1 {i}: the supervisor is now {st:?}"));
        }
        assert!(
            d.wait_exit(Duration::ZERO).is_none(),
            "SIGUSR1 {i}: the supervisor exited; its log:\n{}",
            d.log()
        );
        worker = new_worker;
    }
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("5 SIGUSR1 re-executions");
    must(stopped.views());
    must(stopped.no_failures());
    must(problems("SIGUSR1", bad));
    read_within(&d.path("proc/meminfo"), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("after SIGUSR1: {e}"));
    assert_eq!(fuse_dev(&s.mnt), dev, "the same connection after SIGUSR1");

    // SIGUSR2 switches to the host's files and back.
    let host_kb = kb(&read_or_err(Path::new("/proc/meminfo")), "MemTotal");
    let spec = Spec::new("usr2", &s.rootfs, "ready\n")
        .memory(128 * MIB)
        .lxcfs(&s.mnt)
        .barrier(&s.barrier);
    let mut c = s.runc.start(spec);
    s.barrier.wait_ready(&mut [&mut c]);
    let memtotal = |c: &Container| kb(&c.exec(&["probe", "read", "/proc/meminfo"]), "MemTotal");
    assert_eq!(
        memtotal(&c),
        131_072,
        "the container's MemTotal before SIGUSR2"
    );
    for (virtualized, want) in [(false, host_kb), (true, 131_072)] {
        signal(d.pid, Signal::SIGUSR2);
        wait_status(
            &s.mnt,
            Duration::from_secs(5),
            &format!("virtualized {virtualized} after SIGUSR2"),
            |st| st.virtualized == virtualized,
        );
        assert_eq!(
            memtotal(&c),
            want,
            "the container's MemTotal with virtualized {virtualized} (host {host_kb} kB)"
        );
    }
    s.barrier.go();
    c.wait(Duration::from_secs(30));
}
