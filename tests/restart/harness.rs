//! The harness proven against the daemon as it is, with or without the supervisor:
//! `--takeover` upgrades lose no read, and each check of the other tests is shown to fail
//! when what it guards against happens (a dead connection, another connection, a stall, a task
//! stuck in D state, a wrong content, a binary without one version marker).

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::common::container::open_to_all;
use crate::common::loads::Loads;
use crate::common::status::{kill_supervisor_and_worker, serving_pid, try_status};
use crate::common::{Daemon, Reaped, fuse_dev, signal, wait_timeout, wait_until};
use crate::supervisor::{Build, patch_tag};
use crate::upgrade::upgrades_under_load;
use crate::{PAUSE, Scene, monotonic_ms, must, stuck};

#[test]
fn takeovers_between_identical_builds_lose_no_read() {
    let Some(s) = Scene::new() else {
        return;
    };
    // Needs no version marker and no status (today's daemon has neither): an identical
    // copy at another path stands in for the second build.
    let copy = Build::identical_copy();
    upgrades_under_load(&s, [&Build::original(), &copy], 20, false);
}

/// Killing every process of the daemon (today's is one; a supervisor and its worker without
/// a store keeping the connection) ends the connection, and every read in the containers
/// fails from then on, with ENOTCONN, the kept descriptor's too. A fresh daemon on the same
/// mount point is another connection. (Whether it re-binds itself into the containers is
/// the reattach target's business: the probes stop before it starts.)
#[test]
fn killing_every_daemon_process_fails_reads_with_enotconn() {
    let Some(s) = Scene::new() else {
        return;
    };
    let mut d = Daemon::start_on(&s.mnt, &s.log("daemon"), &[]);
    let dev = fuse_dev(&s.mnt);
    let worker = try_status(&s.mnt).ok().and_then(|st| st.worker_pid);
    // An O_PATH descriptor of the mount's root pins the connection's superblock: once the
    // containers stop and the dead mount is detached, nothing else would, and the kernel
    // could give the fresh mount the same anonymous device number.
    let pin = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH)
        .open(&s.mnt)
        .expect("an O_PATH descriptor of the mount");
    let loads = Loads::start(&s, &s.mnt);
    std::thread::sleep(PAUSE);
    let killed_at = monotonic_ms();
    kill_supervisor_and_worker(&mut d, worker);
    std::thread::sleep(PAUSE);
    let stop_at = monotonic_ms();
    let stopped = loads.stop();
    stopped.report("every daemon process killed");
    let lazy = Command::new("umount")
        .arg("-l")
        .arg(&s.mnt)
        .status()
        .expect("running umount");
    assert!(lazy.success(), "umount -l of the dead mount");
    let fresh = Daemon::start_on(&s.mnt, &s.log("fresh"), &[]);
    let fresh_dev = fuse_dev(&s.mnt);

    must(stopped.views());
    assert!(
        stopped.no_failures().is_err() && stopped.kept_descriptor_read_on().is_err(),
        "the checks must see the failed reads, the kept descriptor's too"
    );
    let by_errno = stopped.failures_by_errno();
    assert!(
        by_errno
            .keys()
            .all(|e| e == "ENOTCONN" || e == "ECONNABORTED")
            && by_errno.get("ENOTCONN").is_some_and(|&n| n > 0),
        "a dead connection fails reads with ENOTCONN (ECONNABORTED for a request in flight), \
         read {by_errno:?}"
    );
    for sum in stopped.summaries() {
        assert!(
            sum.failures > 0 && sum.kept_reads < sum.rounds,
            "container {}: every read fails after the kill, the kept descriptor's too: {sum:?}",
            sum.name
        );
        // The last good round ended by the kill; none came after it.
        assert!(
            sum.max_stall_ms + 50 >= stop_at - killed_at,
            "container {}: a good round after the kill ({} ms before the stop): {sum:?}",
            sum.name,
            stop_at - killed_at
        );
        let early: Vec<_> = sum.events.iter().filter(|e| e.at_ms < killed_at).collect();
        assert!(
            early.is_empty(),
            "container {}: failures before the kill (at {killed_at} ms): {early:?}",
            sum.name
        );
    }
    assert!(
        stopped.stalls_below(PAUSE).is_err(),
        "no good round after the kill is a stall as long as the rest of the run"
    );
    assert_ne!(
        fresh_dev, dev,
        "a fresh mount is another connection, which the same-connection check tells apart"
    );
    drop(fresh);
    drop(pin);
}

/// A stopped server (today's daemon, or the worker) is a stall, not a failure. A reader
/// whose wait on its unanswered request is interrupted by a signal it handles waits on,
/// killable only: state D, which the scan finds; once the server goes on, nothing is stuck.
#[test]
fn a_stopped_server_is_a_stall_and_a_signalled_reader_is_found_in_d_state() {
    require!(
        program "python3",
        "python3 is not installed (scripts/deps.sh test installs it)"
    );
    let Some(s) = Scene::new() else {
        return;
    };
    let d = Daemon::start_on(&s.mnt, &s.log("daemon"), &[]);
    let loads = Loads::start(&s, &s.mnt);
    std::thread::sleep(PAUSE);
    // Well within the watchdog's 10 s, which would replace a stopped worker.
    let server = serving_pid(&d);
    let stopped_at = Instant::now();
    signal(server, Signal::SIGSTOP);
    let reader = Command::new("python3")
        .args([
            "-c",
            "import signal, sys\n\
             signal.signal(signal.SIGUSR1, lambda *_: None)\n\
             sys.exit(0 if open(sys.argv[1], 'rb').read().startswith(b'MemTotal:') else 1)\n",
        ])
        .arg(d.path("proc/meminfo"))
        .stdin(Stdio::null())
        .spawn()
        .expect("starting python3");
    let reader_pid = reader.id();
    let mut reader = Reaped::new(reader);
    // Python may take a while to start on a busy machine: signal it only once it waits for
    // the stopped server's answer, and give the scan a moment to see it in D.
    let waiting = wait_until(Duration::from_secs(5), || {
        fs::read_to_string(format!("/proc/{reader_pid}/wchan"))
            .is_ok_and(|w| w.contains("request_wait_answer"))
    });
    assert!(
        waiting,
        "the reader {reader_pid} never waited on the server"
    );
    signal(reader_pid, Signal::SIGUSR1);
    let mut stuck_while_stopped = Vec::new();
    wait_until(Duration::from_millis(1000), || {
        stuck_while_stopped = stuck(&[]);
        stuck_while_stopped
            .iter()
            .any(|t| t.starts_with(&format!("pid {reader_pid} ")))
    });
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(stopped_at.elapsed()));
    signal(server, Signal::SIGCONT);
    let exited = wait_timeout(reader.child(), Duration::from_secs(10));
    let stuck_after = stuck(&[]);
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("the server stopped for 1.5 s");

    assert!(
        stuck_while_stopped
            .iter()
            .any(|t| t.starts_with(&format!("pid {reader_pid} "))),
        "the signalled reader {reader_pid} should be found in D state; found: \
         {stuck_while_stopped:?}"
    );
    assert!(
        exited.is_some_and(|st| st.success()),
        "the reader reads once the server goes on: {exited:?}"
    );
    assert!(
        stuck_after.is_empty(),
        "stuck after SIGCONT: {stuck_after:?}"
    );
    must(stopped.views());
    must(stopped.no_failures());
    must(stopped.kept_descriptor_read_on());
    assert!(
        stopped.stalls_below(Duration::from_millis(1400)).is_err(),
        "the 1.5 s stop must show as a stall"
    );
    must(stopped.stalls_below(Duration::from_secs(5)));
}

/// The files the probe reads, in a directory of plain files standing in for the mount.
const LOOP_FILES: &[&str] = &[
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/uptime",
    "sys/devices/system/cpu/online",
];

/// The probes see a file's content change (plain files bound in place of the daemon's).
#[test]
fn a_changed_content_is_seen_as_wrong() {
    let Some(s) = Scene::new() else {
        return;
    };
    let fake = s.dir.join("fake");
    let write = |rel: &str, text: &str| {
        let path = fake.join(rel);
        fs::create_dir_all(path.parent().unwrap()).expect("creating a fake directory");
        fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    };
    write(
        "proc/meminfo",
        "MemTotal:       262144 kB\nMemFree:        1000 kB\n",
    );
    write("proc/cpuinfo", "processor\t: 0\n\nprocessor\t: 1\n\n");
    write(
        "proc/stat",
        "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
    );
    write("proc/uptime", "100.00 150.00\n");
    write("sys/devices/system/cpu/online", "0-1\n");
    for dir in [
        "",
        "proc",
        "sys",
        "sys/devices",
        "sys/devices/system",
        "sys/devices/system/cpu",
    ] {
        open_to_all(&fake.join(dir));
    }
    let loads = Loads::start_binding(&s, &fake, LOOP_FILES);
    std::thread::sleep(PAUSE);
    // In place (the same inode stays bound): MemTotal changes, uptime turns into one number.
    write(
        "proc/meminfo",
        "MemTotal:       131072 kB\nMemFree:        1000 kB\n",
    );
    write("proc/uptime", "100.00\n");
    std::thread::sleep(PAUSE);
    let stopped = loads.stop();
    stopped.report("files changed under the probes");

    assert!(
        stopped.no_failures().is_err(),
        "the check must see wrong contents"
    );
    for sum in stopped.summaries() {
        assert_eq!(sum.failures, 0, "plain files never fail: {sum:?}");
        let seen = |path: &str, what: &str| {
            sum.events
                .iter()
                .any(|e| e.errno.is_none() && e.path == path && e.what.starts_with(what))
        };
        assert!(
            seen("/proc/meminfo", "MemTotal 131072, first 262144")
                && seen("/proc/uptime", "not-two-numbers"),
            "container {}: the changed MemTotal and uptime should be wrong: {:?}",
            sum.name,
            sum.failure_lines()
        );
    }
    // The mem container's limit is what the fake meminfo says first; the others' are not.
    let views = stopped.views().unwrap_err();
    assert!(
        views.contains("container cpuset") && views.contains("container userns"),
        "{views}"
    );
}

#[test]
fn the_version_marker_is_patched_only_where_it_occurs_once() {
    let marker = b"@@lxcfs-rs-tag:--------@@";
    let once = [b"head ".as_slice(), marker, b" tail"].concat();
    assert_eq!(
        patch_tag(&once, "upgrade2").as_deref(),
        Ok(
            [b"head ".as_slice(), b"@@lxcfs-rs-tag:upgrade2@@", b" tail"]
                .concat()
                .as_slice()
        )
    );
    let twice = [marker.as_slice(), marker].concat();
    assert!(
        patch_tag(&twice, "upgrade2")
            .unwrap_err()
            .contains("2 times")
    );
    assert!(
        patch_tag(b"no marker", "upgrade2")
            .unwrap_err()
            .contains("0 times")
    );
    assert!(patch_tag(&once, "short").is_err());
    assert!(patch_tag(&once, "up-grade").is_err());
}
