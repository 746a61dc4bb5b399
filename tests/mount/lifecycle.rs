//! Lifecycle: stopping on signals, a stale mount left by a killed daemon, lxcfs's flags,
//! help and version.

use std::fs;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::*;

#[test]
fn sigterm_unmounts_cleanly() {
    require!(mount);
    let mut d = Daemon::start(&[]);
    d.assert_stops_cleanly(Signal::SIGTERM);
}

#[test]
fn sigint_unmounts_cleanly() {
    require!(mount);
    let mut d = Daemon::start(&[]);
    d.assert_stops_cleanly(Signal::SIGINT);
}

#[test]
fn stale_mount_is_detached() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let mut first = Daemon::start_on(&mnt, &dir.join("first.log"), &[]);
    first.kill9();
    // The root's attributes may be cached for the daemon's (short) attribute timeout; after
    // that a stat must reach the dead connection and fail with ENOTCONN.
    let mut last = None;
    let stale = wait_until(Duration::from_secs(3), || {
        let out = Command::new("stat")
            .arg(&mnt)
            .output()
            .expect("running stat");
        let enotconn =
            String::from_utf8_lossy(&out.stderr).contains("Transport endpoint is not connected");
        last = Some(out);
        enotconn
    });
    let out = last.expect("stat ran");
    assert!(
        stale,
        "after SIGKILL `stat` of the mount point should fail with ENOTCONN within 3 s: {}",
        describe(&out)
    );

    let mut second = Daemon::start_on(&mnt, &dir.join("second.log"), &[]);
    let text = fs::read_to_string(second.path("proc/meminfo")).expect("the new daemon serves");
    assert!(
        text.starts_with("MemTotal:"),
        "new daemon on a formerly stale mount point, read:\n{text}"
    );
    assert_eq!(
        mounts_at(&mnt),
        1,
        "the stale mount was detached, so exactly one mount at {}; output:\n{}",
        mnt.display(),
        second.log()
    );
    second.assert_stops_cleanly(Signal::SIGTERM);
    assert_eq!(
        mounts_at(&mnt),
        0,
        "nothing left mounted at {}",
        mnt.display()
    );
}

#[test]
fn accepts_the_lxcfs_flags() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let flags = [
        "-f",
        "-d",
        "--threads",
        "2",
        "-o",
        "allow_other,nonempty",
        "-u",
        "-l",
        "--enable-cfs",
    ];
    let mut d = Daemon::start(&flags);
    let meminfo = cg.read(&d.path("proc/meminfo"));
    assert_eq!(
        kb(&meminfo, "MemTotal"),
        262144,
        "with {flags:?}: expected MemTotal 262144 kB, read:\n{meminfo}"
    );
    assert_eq!(
        kb(&meminfo, "SwapTotal"),
        0,
        "with -u: expected SwapTotal 0, read:\n{meminfo}"
    );
    let swaps = cg.read(&d.path("proc/swaps"));
    assert_eq!(
        swaps.lines().count(),
        1,
        "with -u: expected the swaps header only, read:\n{swaps}"
    );
    d.assert_stops_cleanly(Signal::SIGTERM);
}

#[test]
fn help_and_version() {
    for flag in ["-h", "--help"] {
        let out = run_bin(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for f in [
            "--enable-cfs",
            "--pidfile",
            "--enable-loadavg",
            "--disable-swap",
        ] {
            assert!(
                text.contains(f),
                "{flag} output mentions {f}: {}",
                describe(&out)
            );
        }
    }
    for flag in ["-v", "--version"] {
        let out = run_bin(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(env!("CARGO_PKG_VERSION")),
            "{flag} prints the version: {}",
            describe(&out)
        );
    }
}
