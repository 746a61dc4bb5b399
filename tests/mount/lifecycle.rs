//! Lifecycle: stopping on signals, a stale mount left by a killed daemon, lxcfs's flags
//! (and what `-d`, `-o noatime,noexec`, `--enable-pidfd` and the absence of `-p` do), help
//! and version.

use std::fs;
use std::path::PathBuf;
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

/// lxcfs's reload signal (its unit's `ExecReload=/bin/kill -USR1 $MAINPID`), and SIGHUP, which
/// a closing terminal sends: the supervisor re-executes its binary in place, keeping the
/// mount. Neither may end the service; SIGTERM still stops it cleanly.
#[test]
fn sigusr1_and_sighup_reload_in_place_keeping_the_mount() {
    require!(mount);
    let mut d = Daemon::start(&[]);
    let dev = d.dev().expect("mounted").to_string();
    let mut kept = fs::File::open(d.path("proc/stat")).expect("open proc/stat");
    for (round, sig) in [Signal::SIGUSR1, Signal::SIGHUP, Signal::SIGUSR1]
        .into_iter()
        .enumerate()
    {
        signal(d.pid, sig);
        let adopted = wait_until(Duration::from_secs(10), || {
            d.log().matches("adopted the FUSE connection").count() > round
        });
        assert!(adopted, "no re-execution after {sig}:\n{}", d.log());
        assert!(
            d.wait_exit(Duration::from_millis(100)).is_none(),
            "{sig} ended the daemon:\n{}",
            d.log()
        );
        assert_eq!(
            fuse_mount_at(&d.mnt).map(|m| m.dev),
            Some(dev.clone()),
            "the same connection serves after {sig}"
        );
        let mut text = String::new();
        std::io::Seek::rewind(&mut kept).unwrap();
        std::io::Read::read_to_string(&mut kept, &mut text).expect("re-reading an open file");
        assert!(text.starts_with("cpu "), "{text}");
        let meminfo = fs::read_to_string(d.path("proc/meminfo")).expect("a fresh open");
        assert!(meminfo.starts_with("MemTotal:"), "{meminfo}");
    }
    d.assert_stops_cleanly(Signal::SIGTERM);
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

/// `--enable-pidfd`, an lxcfs flag, is accepted: the daemon starts and serves limits as usual.
#[test]
fn enable_pidfd_is_accepted() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let mut d = Daemon::start(&["--enable-pidfd"]);
    let meminfo = cg.read(&d.path("proc/meminfo"));
    assert_eq!(
        kb(&meminfo, "MemTotal"),
        262144,
        "with --enable-pidfd: expected MemTotal 262144 kB, read:\n{meminfo}"
    );
    d.assert_stops_cleanly(Signal::SIGTERM);
}

/// The lines of `log` that are the debug line of a read of `file` by `pid`.
fn debug_lines<'a>(log: &'a str, pid: &str, file: &str) -> Vec<&'a str> {
    let needle = format!(" pid={pid} file={file} ");
    log.lines()
        .filter(|l| l.contains("DEBUG") && l.contains(&needle))
        .collect()
}

/// `-d` logs one line per served read, naming the reader and the bytes; without it there
/// is none (`RUST_LOG`, which would also turn them on, is cleared for both daemons).
#[test]
fn debug_flag_logs_each_read() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    for (flags, logs) in [(&["-d"][..], true), (&[][..], false)] {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("RUST_LOG");
        let d = Daemon::start_cmd(cmd, flags);
        let path = d.arg("proc/meminfo");
        // `$$` is the reader itself (exec keeps the pid).
        let out = cg.run(&["sh", "-c", "echo $$; exec cat \"$1\"", "sh", &path]);
        let (pid, text) = out.split_once('\n').expect("pid line, then meminfo");
        let log = d.log();
        let lines = debug_lines(&log, pid, "proc/meminfo");
        if logs {
            let bytes = format!(" bytes={} ", text.len());
            assert!(
                lines.iter().any(|l| l.contains(&bytes)),
                "with -d: expected a debug line for pid {pid} reading proc/meminfo with{bytes}, log:\n{log}"
            );
        } else {
            assert!(
                lines.is_empty() && !log.contains("DEBUG"),
                "without -d: expected no debug line, log:\n{log}"
            );
        }
    }
}

/// Python's `open()` asks `isatty()` (an IOCTL request) on every file: answered ENOTTY, and
/// without a log line, so a busy node's journal is not flooded (fuser logged a warning each).
#[test]
fn ioctls_from_python_opens_are_answered_quietly() {
    require!(mount);
    require!(program "python3", "python3 reads the files (scripts/deps.sh installs it)");
    let mut cmd = Command::new(BIN);
    cmd.env_remove("RUST_LOG");
    let d = Daemon::start_cmd(cmd, &[]);
    let script = r#"
import os, sys
for _ in range(200):
    with open(sys.argv[1]) as f:
        assert f.read().startswith("MemTotal:")
        assert not f.isatty()
f = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.tcgetpgrp(f)
    sys.exit("tcgetpgrp on a FUSE file succeeded")
except OSError as e:
    print(e.errno)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &d.arg("proc/meminfo")])
        .output()
        .expect("running python3");
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.trim(),
        nix::libc::ENOTTY.to_string(),
        "an ioctl gets ENOTTY"
    );
    let log = d.log();
    assert!(
        log.lines().count() <= 1,
        "200 Python reads must leave the log alone (one start-up line at most):\n{log}"
    );
}

/// The regular files a process holds open, besides its standard streams and kernel files
/// (`/proc`, `/sys`), which no pidfile is.
fn open_files(pid: u32) -> Vec<PathBuf> {
    let dir = format!("/proc/{pid}/fd");
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| !["0", "1", "2"].contains(&n))
        })
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|target| !target.starts_with("/proc") && !target.starts_with("/sys"))
        .filter(|target| target.is_absolute() && fs::metadata(target).is_ok_and(|m| m.is_file()))
        .collect()
}

/// A pidfile is held open (its lock lives as long as the descriptor): without `-p` the
/// daemon holds no file open at all, and lxcfs's default pidfile does not name it. With `-p`
/// the same check finds the pidfile, so it can fail.
#[test]
fn no_pidfile_without_dash_p() {
    require!(mount);
    let d = Daemon::start(&[]);
    let open = open_files(d.pid);
    assert!(
        open.is_empty(),
        "without -p the daemon holds no file open, it holds {open:?}"
    );
    for default in ["/run/lxcfs.pid", "/run/lxcfs-rs.pid"] {
        let text = fs::read_to_string(default).unwrap_or_default();
        assert_ne!(
            text.trim(),
            d.pid.to_string(),
            "{default} names the daemon started without -p"
        );
    }

    let dir = TestDir::new();
    let pidfile = dir.join("lxcfs-rs.pid");
    let with_p = Daemon::start(&["-p", pidfile.to_str().expect("utf-8")]);
    assert_eq!(
        open_files(with_p.pid),
        vec![pidfile.clone()],
        "with -p the check sees the pidfile {}",
        pidfile.display()
    );
}

/// `-o noatime,noexec` reach the kernel: the mount's flags in mountinfo carry them, and a
/// mount without them carries neither (the check can fail).
#[test]
fn dash_o_noatime_noexec_are_applied() {
    require!(mount);
    let flags = |d: &Daemon| {
        let m = fuse_mount_at(&d.mnt).expect("the mount is in mountinfo");
        m.mount_options
            .split(',')
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let with = Daemon::start(&["-o", "noatime,noexec"]);
    let plain = Daemon::start(&[]);
    let (with, plain) = (flags(&with), flags(&plain));
    for flag in ["noatime", "noexec"] {
        assert!(
            with.iter().any(|f| f == flag),
            "-o noatime,noexec: expected {flag} in the mount's flags {with:?}"
        );
        assert!(
            !plain.iter().any(|f| f == flag),
            "without -o: expected no {flag} in the mount's flags {plain:?}"
        );
    }
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
