//! Refused starts: each exits with one error line and mounts nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn pidfile_is_locked() {
    require!(mount);
    let dir = TestDir::new();
    let pidfile = dir.join("lxcfs-rs.pid");
    let pf = pidfile.to_str().expect("utf-8").to_string();
    let first = Daemon::start(&["-p", &pf]);
    let content = read_or_err(&pidfile);
    assert_eq!(
        content.trim(),
        first.pid.to_string(),
        "pidfile holds the daemon's pid {}, read {content:?}",
        first.pid
    );

    let mnt2 = dir.join("mnt2");
    fs::create_dir(&mnt2).expect("mkdir");
    let mut second = Daemon::spawn(&mnt2, &dir.join("second.log"), &["-p", &pf]);
    let st = second
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "second daemon with the same pidfile kept running; output:\n{}",
                second.log()
            )
        });
    assert_eq!(
        st.code(),
        Some(1),
        "second daemon with a locked pidfile: expected exit 1, got {st}; output:\n{}",
        second.log()
    );
    assert_one_error_line(&second.log(), &pf);
    assert!(
        fuse_mount_at(&mnt2).is_none(),
        "the refused daemon must not mount {}",
        mnt2.display()
    );
    assert!(
        fs::read(first.path("proc/meminfo")).is_ok(),
        "the first daemon still serves"
    );
    assert_eq!(
        read_or_err(&pidfile).trim(),
        first.pid.to_string(),
        "the pidfile still names the first daemon"
    );
}

#[test]
fn mount_point_that_is_a_file_fails() {
    require!(mount);
    let dir = TestDir::new();
    let file = dir.join("not-a-dir");
    fs::write(&file, "x").expect("write");
    let out = run_bin(&[file.to_str().expect("utf-8")]);
    assert_fails(&out, 1, file.to_str().expect("utf-8"));
    assert!(
        fuse_mount_at(&file).is_none(),
        "nothing may be mounted on {}",
        file.display()
    );
}

#[test]
fn live_mount_point_is_refused() {
    require!(mount);
    let d = Daemon::start(&[]);
    let mnt = d.mnt.to_str().expect("utf-8").to_string();
    let out = run_bin(&[&mnt]);
    assert_fails(&out, 1, &mnt);
    assert_eq!(mounts_at(&d.mnt), 1, "still exactly one mount at {mnt}");
    assert!(
        fs::read(d.path("proc/meminfo")).is_ok(),
        "the first daemon still serves; its output:\n{}",
        d.log()
    );
}

#[test]
fn unknown_flag_fails() {
    let dir = TestDir::new();
    let out = run_bin(&["--no-such-flag", dir.path().to_str().expect("utf-8")]);
    // clap's exit 2, and one error line naming the flag.
    assert_fails(&out, 2, "--no-such-flag");
    assert!(fuse_mount_at(dir.path()).is_none(), "nothing mounted");
}

/// A daemon in a cgroup namespace whose pid 1 is no way out (a pod without the host's pid
/// namespace) would read other cgroups than its readers': it must refuse to start.
#[test]
fn non_host_cgroup_namespace_fails() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    let out = Command::new("unshare")
        .args(["--cgroup", "--pid", "--fork", "--mount-proc", BIN])
        .arg(&mnt)
        .output()
        .expect("running unshare");
    assert_fails(&out, 1, "cgroup namespace");
    assert!(
        !mnt.exists() || fuse_mount_at(&mnt).is_none(),
        "nothing mounted"
    );
}

#[test]
fn not_root_fails() {
    require!(mount);
    require!(program "setpriv", "setpriv (util-linux) is not installed");
    let dir = TestDir::new();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let mnt = dir.join("mnt");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .arg(&mnt)
        .output()
        .expect("running setpriv");
    assert_fails(&out, 1, "root");
}

#[test]
fn missing_dev_fuse_fails() {
    require!(mount);
    // /dev/fuse hidden by a regular file, in a throwaway private mount namespace only.
    let dir = TestDir::new();
    let fake = dir.join("fake-fuse");
    fs::write(&fake, "").expect("write");
    let mnt = dir.join("mnt");
    let script = "mount --bind \"$1\" /dev/fuse || exit 98; exec \"$2\" \"$3\"";
    let argv = sh_in_private_mount_ns(
        &[],
        script,
        &[
            fake.to_str().expect("utf-8"),
            BIN,
            mnt.to_str().expect("utf-8"),
        ],
    );
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("running unshare");
    if out.status.code() == Some(98) {
        skip(&format!(
            "cannot hide /dev/fuse in a private mount namespace: {}",
            describe(&out)
        ));
        return;
    }
    assert_fails(&out, 1, "/dev/fuse");
}
