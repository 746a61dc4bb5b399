//! `--host-mount-ns`: a daemon started in a mount namespace of its own (as in a container)
//! mounts in the host's, where the test runs, and re-executes itself there on SIGUSR1 though
//! the path it was started by exists only in its own namespace.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::status::gone;
use crate::common::*;

/// `unshare -m` into a private mount namespace where `DIR/private` is a tmpfs holding a copy
/// of the binary (so its path names nothing in the test's namespace), which is run with
/// `args` and the mount point appended by [`Daemon`].
fn in_own_mount_ns(dir: &Path, args: &[&str]) -> Command {
    let private = dir.join("private");
    fs::create_dir(&private).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"set -e; mount -t tmpfs tmpfs "$1"; cp "$2" "$1/lxcfs-rs"; p=$1; shift 2
               exec "$p/lxcfs-rs" "$@""#,
        )
        .arg("sh")
        .arg(&private)
        .arg(BIN)
        .args(args);
    cmd
}

#[test]
fn a_daemon_in_its_own_mount_namespace_mounts_in_the_hosts() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut d = Daemon::start_cmd_on(
        in_own_mount_ns(dir.path(), &["--host-mount-ns"]),
        &mnt,
        &dir.join("daemon.log"),
        &[],
    );
    // Mounted and served in this (the host's) namespace: `start_cmd_on` read it here.
    let dev = d.dev().expect("mounted").to_string();
    assert!(
        fs::read_dir(dir.join("private")).unwrap().next().is_none(),
        "the copy of the binary must exist only in the daemon's own namespace"
    );
    // The process started stays in its own namespace as the first process (as a container's
    // must, for `docker exec`); its child is the supervisor, whose handoff socket is in this
    // namespace's /run/lxcfs-rs.
    let supervisor = d.status()["supervisor_pid"].as_u64().expect("a supervisor") as u32;
    assert_eq!(parent_of(supervisor), Some(d.pid));
    let ns = |pid: u32| {
        fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .map(|m| m.ino())
            .ok()
    };
    assert_eq!(
        ns(supervisor),
        ns(std::process::id()),
        "the supervisor is in ours"
    );
    assert_ne!(
        ns(d.pid),
        ns(std::process::id()),
        "the first process in its own"
    );
    let out = run_bin(&["--host-mount-ns", "probe", mnt.to_str().unwrap()]);
    assert_succeeds(&out, "lxcfs-rs --host-mount-ns probe");

    // SIGUSR1, passed on by the first process, re-executes the running binary: the path it
    // was started by is not here.
    signal(d.pid, Signal::SIGUSR1);
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log()
            .contains("adopted the FUSE connection")),
        "no re-execution after SIGUSR1:\n{}",
        d.log()
    );
    assert!(!d.log().contains("cannot execute"), "{}", d.log());
    assert_eq!(
        d.status()["supervisor_pid"].as_u64(),
        Some(u64::from(supervisor))
    );
    assert_eq!(fuse_mount_at(&mnt).map(|m| m.dev), Some(dev));
    assert!(
        kb(
            &fs::read_to_string(mnt.join("proc/meminfo")).unwrap(),
            "MemTotal"
        ) > 0
    );
    // SIGTERM to the first process stops the daemon cleanly, and it exits 0 after it.
    d.assert_stops_cleanly(Signal::SIGTERM);
    assert!(gone(supervisor));
}

// No control run without the flag: a daemon mounting afresh in a private mount namespace
// takes every lxcfs mount made on the host after that namespace was copied for a dead one
// (it is not in its namespace) and re-binds its own files over it, which would break the
// daemons of the tests running beside this one.

#[test]
fn host_mount_ns_as_pid_1_of_its_own_pid_namespace_is_refused() {
    require!(mount);
    let out = Command::new("unshare")
        .args([
            "-p",
            "-f",
            "--mount-proc",
            BIN,
            "--host-mount-ns",
            "probe",
            "/",
        ])
        .output()
        .expect("running unshare");
    assert_fails(&out, 1, "--pid=host --privileged");
}
