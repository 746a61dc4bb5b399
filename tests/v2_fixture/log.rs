//! The debug log answers "why does this reader see host values?": one line per served read
//! with the request, the pid, the file, the bytes and each fallback taken (which file, which
//! error), from `show` and from the mounted daemon.

use std::process::Command;

use crate::Fixture;
use crate::common::*;
use crate::host::*;

/// `RUST_LOG=debug lxcfs-rs show --host-root <tree> --pid PID FILE`: its stdout and stderr.
fn show_logged(fx: &Fixture, pid: u32, file: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args([
            "show",
            "--host-root",
            &fx.root(),
            "--pid",
            &pid.to_string(),
            file,
        ])
        .env("RUST_LOG", "debug")
        .output()
        .expect("running lxcfs-rs show");
    assert_succeeds(&out, "lxcfs-rs show with RUST_LOG=debug");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one log line of the read of `file` by `pid` (there must be exactly one).
fn read_line<'a>(log: &'a str, pid: u32, file: &str) -> &'a str {
    let needle = format!(" pid={pid} file={file} ");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&needle)).collect();
    assert_eq!(lines.len(), 1, "one line for {needle:?}, log:\n{log}");
    lines[0]
}

#[test]
fn a_missing_cgroup_file_is_named_with_its_error() {
    let fx = Fixture::new();
    fx.tree.remove("sys/fs/cgroup/ctr/child/memory.stat");
    let (meminfo, log) = show_logged(&fx, READER, "proc/meminfo");
    assert_eq!(
        kb(&meminfo, "MemTotal"),
        262144,
        "the limit still applies, read:\n{meminfo}"
    );
    let line = read_line(&log, READER, "proc/meminfo");
    assert!(
        line.contains(&format!(
            "req=0 pid={READER} file=proc/meminfo bytes={} ",
            meminfo.len()
        )),
        "request, pid, file and bytes: {line}"
    );
    let missing = fx.tree.path("sys/fs/cgroup/ctr/child/memory.stat");
    assert!(
        line.contains(&format!(
            "fallbacks=[cannot read {}: No such file or directory",
            missing.display()
        )),
        "the fallback names the file and the error: {line}"
    );
}

#[test]
fn a_reader_whose_cgroups_cannot_be_read_is_named() {
    let fx = Fixture::new();
    fx.tree.remove(&format!("proc/{READER}/cgroup"));
    let (meminfo, log) = show_logged(&fx, READER, "proc/meminfo");
    assert_eq!(meminfo, host_meminfo(), "host values for an unknown cgroup");
    let line = read_line(&log, READER, "proc/meminfo");
    assert!(
        line.contains(&format!("fallbacks=[cgroups of pid {READER}: cannot read "))
            && line.contains(&format!("proc/{READER}/cgroup: No such file or directory")),
        "{line}"
    );
}

#[test]
fn a_read_without_fallbacks_says_so() {
    let fx = Fixture::new();
    let (_, log) = show_logged(&fx, READER, "proc/meminfo");
    let line = read_line(&log, READER, "proc/meminfo");
    assert!(line.ends_with(" fallbacks=[]"), "{line}");
}

/// Through the mount, with `-d`: the line carries the FUSE request's id, and the size read.
#[test]
fn the_mounted_daemon_logs_each_read_with_its_request() {
    require!(fuse);
    let fx = Fixture::new();
    fx.tree.remove("sys/fs/cgroup/ctr/child/cpu.stat");
    let root = fx.root();
    let d = Daemon::start(&["-d", "--host-root", &root]);
    let (pid, out) = fx.read_through(&[d.path("proc/stat")]);
    let log = d.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!(" pid={pid} file=proc/stat ")))
        .collect();
    assert!(
        !lines.is_empty(),
        "no line for the read by {pid}, log:\n{log}"
    );
    let read = lines
        .iter()
        .find(|l| l.contains(&format!(" bytes={} ", out.len())))
        .unwrap_or_else(|| panic!("no line with bytes={}, log:\n{log}", out.len()));
    let req: u64 = read
        .split_once("req=")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request id in {read}"));
    assert!(req > 0, "a FUSE request id, not show's 0: {read}");
    assert!(
        read.contains("ctr/child/cpu.stat: No such file or directory"),
        "the missing cpu.stat is named: {read}"
    );
}
