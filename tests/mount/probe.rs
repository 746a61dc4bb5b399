//! `lxcfs-rs probe`: a served mount passes; nothing mounted, another FUSE filesystem, a
//! stale mount and a wedged one each fail with exit 1 and one line saying which.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::status::kill_supervisor_and_worker;
use crate::common::*;

/// `lxcfs-rs probe MNT`, given a generous 20 s to exit (a probe that touched a wedged mount
/// would never exit: that is a failure, reported with what it printed so far).
fn probe(mnt: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("probe")
        .arg(mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting lxcfs-rs probe");
    let status = wait_timeout(&mut child, Duration::from_secs(20));
    let elapsed = started.elapsed();
    if status.is_none() {
        signal(child.id(), nix::sys::signal::Signal::SIGKILL);
    }
    let out = child
        .wait_with_output()
        .expect("collecting the probe's output");
    assert!(
        status.is_some(),
        "lxcfs-rs probe {} did not exit within 20 s: {}",
        mnt.display(),
        describe(&out)
    );
    (out, elapsed)
}

#[test]
fn a_served_mount_passes_with_one_line() {
    require!(fuse);
    let d = Daemon::start(&[]);
    let (out, _) = probe(&d.mnt);
    assert_succeeds(&out, "probe of a served mount");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one line:\n{stdout}");
    let want = format!(
        "lxcfs-rs probe: {} serves (lxcfs-rs {}",
        d.mnt.display(),
        d.status()["version"].as_str().expect("a version")
    );
    assert!(stdout.starts_with(&want), "{want:?} in:\n{stdout}");
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn nothing_mounted_fails_saying_so() {
    let dir = TestDir::new();
    let (out, _) = probe(dir.path());
    assert_fails(&out, 1, "not mounted");
    let (out, _) = probe(&dir.join("missing"));
    assert_fails(&out, 1, "not mounted");
}

/// A FUSE mount of another filesystem (`fuse.other`, source `other`) whose descriptor this
/// test holds and never serves: anything that looked at it (a `stat`, an open) would block
/// for good, so a probe that exits at all judged it from mountinfo alone.
#[test]
fn another_fuse_filesystem_is_refused_from_mountinfo() {
    require!(fuse);
    let dir = TestDir::new();
    let mnt = dir.join("other");
    fs::create_dir(&mnt).unwrap();
    let fuse = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .expect("opening /dev/fuse");
    let data = format!(
        "fd={},rootmode=40000,user_id=0,group_id=0",
        fuse.as_raw_fd()
    );
    nix::mount::mount(
        Some("other"),
        &mnt,
        Some("fuse.other"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .expect("mounting an unserved FUSE filesystem");
    // Detached (no daemon is needed for that) before the descriptor closes, pass or fail.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(&mnt);
    let (out, elapsed) = probe(&mnt);
    assert_fails(&out, 1, "not lxcfs (a fuse.other mount, source other)");
    assert!(
        elapsed < Duration::from_secs(5),
        "refused after {elapsed:?}: it must not wait on the mount"
    );
    drop(fuse);
}

#[test]
fn a_stale_mount_is_told_from_a_missing_one() {
    require!(fuse);
    let mut d = Daemon::start(&[]);
    let worker = d.worker_pid();
    kill_supervisor_and_worker(&mut d, Some(worker));
    let (out, _) = probe(&d.mnt);
    assert_fails(&out, 1, "stale, Transport endpoint is not connected");
}

/// The `hang:proc/meminfo` failpoint holds every first delivery of a READ of meminfo
/// forever: the probe gives up after 1 s and exits, though its read is still held.
#[test]
fn a_wedged_mount_fails_within_a_few_seconds() {
    require!(fuse);
    if !cfg!(debug_assertions) {
        skip("the daemon's failpoints exist in debug builds only (run without --release)");
        return;
    }
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env("LXCFS_RS_FAILPOINTS", "hang:proc/meminfo");
    // Not `start`: its readiness check reads meminfo, which would hang.
    let mut d = Daemon::spawn_cmd_on(cmd, &mnt, &dir.join("daemon.log"), &[]);
    d.wait_mounted_reading("proc/uptime");
    let (out, elapsed) = probe(&mnt);
    assert_fails(&out, 1, "too slow, no answer within 1s");
    assert!(
        elapsed < Duration::from_secs(3),
        "the probe took {elapsed:?}; it must give up after 1 s"
    );
    // Ends the held read with the connection (the mount is detached when `d` drops).
    let worker = d.worker_pid();
    kill_supervisor_and_worker(&mut d, Some(worker));
}

/// A connection aborted through fusectl ends what was in flight with ECONNABORTED (as an
/// io_uring connection being torn down does for a while), then answers ENOTCONN: stale,
/// told after a second read. The probe's READ of meminfo is held by the `hang:` failpoint
/// when the abort comes.
#[test]
fn a_connection_aborted_under_a_read_is_stale() {
    require!(fuse);
    if !cfg!(debug_assertions) {
        skip("the daemon's failpoints exist in debug builds only (run without --release)");
        return;
    }
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.env("LXCFS_RS_FAILPOINTS", "hang:proc/meminfo");
    let mut d = Daemon::spawn_cmd_on(cmd, &mnt, &dir.join("daemon.log"), &[]);
    d.wait_mounted_reading("proc/uptime");
    let (major, minor) = d
        .dev()
        .and_then(|dev| dev.split_once(':'))
        .map(|(a, b)| (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap()))
        .expect("the mount's device");
    let worker = d.worker_pid();
    let abort = lxcfs_rs::mounts::fusectl_dir(major, minor).join("abort");
    let aborter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        fs::write(abort, "1").expect("aborting the connection");
    });
    let (out, _) = probe(&mnt);
    aborter.join().unwrap();
    assert_fails(&out, 1, "stale, Transport endpoint is not connected");
    // The daemon may already have exited (its mount lost); these are ours either way.
    kill_supervisor_and_worker(&mut d, Some(worker));
}
