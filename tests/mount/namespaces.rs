//! The daemon outside the host's namespaces, and readers it cannot look up: a daemon in a
//! pid namespace of its own warns and serves readers it cannot see (pid 0) the host's
//! values; a daemon in a cgroup namespace of its own joins pid 1's and serves limits; a
//! reader whose `/proc/<pid>` the daemon cannot read (as when it has exited) gets the host's
//! values. Each daemon mounts in a private mount namespace (see `common::ns_daemon`).

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::common::ns_daemon::NsDaemon;
use crate::common::*;
use crate::host;

/// Makes a pid namespace (and, for its /proc, a private mount namespace) and runs the
/// daemon in it as its init; `--kill-child` takes the namespace down if unshare dies.
const NEW_PID_NS: &[&str] = &["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"];

/// `argv` as a command.
fn command(argv: &[&str]) -> Command {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    c
}

/// The host's MemTotal, which readers that fall back get.
fn host_total() -> u64 {
    kb(&host("/proc/meminfo"), "MemTotal")
}

/// Runs `argv` in `cg` after entering the pid and mount namespaces of `d`'s daemon: a reader
/// the daemon sees, by the daemon's own paths.
fn read_inside(cg: &Cgroup, d: &NsDaemon, rel: &str) -> String {
    let pid = d.pid.to_string();
    cg.run(&["nsenter", "-t", &pid, "-p", "-m", "cat", &d.inner_arg(rel)])
}

/// The debug lines of `log` for reads of `file` by `pid`.
fn reads_by<'a>(log: &'a str, pid: &str, file: &str) -> Vec<&'a str> {
    let needle = format!(" pid={pid} file={file} ");
    log.lines().filter(|l| l.contains(&needle)).collect()
}

#[test]
fn outside_the_host_pid_namespace_readers_it_cannot_see_get_host_values() {
    require!(mount);
    require!(program "nsenter", "nsenter (util-linux) is not installed");
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    // The daemon's own cgroup has a limit too, so a reader taken for the daemon's namespace
    // (its init is the daemon) would not pass for the host.
    let daemon_cg = Cgroup::new();
    daemon_cg.set_memory_limit(512 * MIB);
    let d = NsDaemon::start(daemon_cg.command(NEW_PID_NS), &["-d"]);
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("not in the host pid namespace")),
        "expected the warning about the pid namespace, log:\n{log}"
    );

    // A limited reader on the host: the kernel cannot name it in the daemon's namespace.
    let out = cg.run(&[
        "sh",
        "-c",
        "echo $$; exec cat \"$1\"",
        "sh",
        d.path("proc/meminfo").to_str().expect("utf-8"),
    ]);
    let (pid, text) = out.split_once('\n').expect("pid line, then meminfo");
    assert_eq!(
        kb(text, "MemTotal"),
        host_total(),
        "a host reader (pid {pid}, 256 MiB limit) outside the daemon's pid namespace: \
         expected the host's MemTotal, read:\n{text}"
    );
    let log = d.log();
    assert!(
        !reads_by(&log, "0", "proc/meminfo").is_empty()
            && reads_by(&log, pid, "proc/meminfo").is_empty(),
        "the read arrives as pid 0, not as {pid}; log:\n{log}"
    );

    // The same cgroup's reader inside the namespace is seen, and gets its limit.
    let inside = read_inside(&cg, &d, "proc/meminfo");
    assert_eq!(
        kb(&inside, "MemTotal"),
        262144,
        "a reader in the daemon's pid namespace, 256 MiB limit, read:\n{inside}"
    );
}

/// The daemon starts in a cgroup namespace of its own (rooted at a cgroup of its own, so
/// every path it would read from there is wrong) and joins pid 1's. pid 1 is the init of a
/// new pid namespace left in the host's cgroup namespace, as the host's init is for a
/// `hostPID` daemon: the machine's real pid 1 may not be inspected (a sandbox's init refuses
/// `/proc/1/ns/cgroup` even to root), and the test must not depend on it.
#[test]
fn in_another_cgroup_namespace_it_joins_pid_1s_and_serves_limits() {
    require!(mount);
    require!(program "nsenter", "nsenter (util-linux) is not installed");
    let daemon_cg = Cgroup::new();
    let reader_cg = Cgroup::new();
    reader_cg.set_memory_limit(256 * MIB);
    let mut argv = NEW_PID_NS.to_vec();
    // pid 1 stays in the host's cgroup namespace; the daemon, its child, leaves it.
    argv.extend(["sh", "-c", "unshare --cgroup \"$@\" & wait $!", "sh"]);
    let mut d = NsDaemon::start(daemon_cg.command(&argv), &[]);
    let log = d.log();
    assert!(
        log.contains("joined the host cgroup namespace"),
        "expected the daemon to join pid 1's cgroup namespace, log:\n{log}"
    );
    let inside = read_inside(&reader_cg, &d, "proc/meminfo");
    assert_eq!(
        kb(&inside, "MemTotal"),
        262144,
        "a reader with a 256 MiB limit, read:\n{inside}\nlog:\n{}",
        d.log()
    );
    let st = d.stop(nix::sys::signal::Signal::SIGTERM);
    assert!(
        st.is_some_and(|s| s.success()),
        "the daemon stops cleanly: {st:?}, log:\n{}",
        d.log()
    );
}

/// A reader whose `/proc/<pid>` is gone when the daemon looks (it exited mid-request) gets
/// the host's values. The race cannot be staged at will, so the daemon's own view of
/// `/proc/<pid>` is emptied instead: an empty directory bound over it, in the daemon's
/// private mount namespace only, so the reader is alive but unknown to the daemon.
#[test]
fn a_reader_the_daemon_cannot_look_up_gets_host_values() {
    require!(mount);
    require!(program "nsenter", "nsenter (util-linux) is not installed");
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let private_mounts = ["unshare", "--mount", "--propagation", "private"];
    let d = NsDaemon::start(command(&private_mounts), &["-d"]);
    let empty = TestDir::new();
    let meminfo = d.path("proc/meminfo");
    // The reader waits for a line, so that its /proc entry can be hidden first; exec keeps
    // the pid the daemon is told.
    let mut reader = cg
        .command(&[
            "sh",
            "-c",
            "read go; exec cat \"$1\"",
            "sh",
            meminfo.to_str().expect("utf-8"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the reader");
    let pid = reader.id().to_string();
    let hide = Command::new("nsenter")
        .args(["-t", &d.pid.to_string(), "-m", "mount", "--bind"])
        .arg(empty.path())
        .arg(format!("/proc/{pid}"))
        .output()
        .expect("running nsenter");
    assert_succeeds(&hide, "hiding the reader's /proc entry from the daemon");
    reader
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("releasing the reader");
    let mut text = String::new();
    reader
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .expect("reading the reader's output");
    assert!(
        reader.wait().expect("reader").success(),
        "reader failed: {text}"
    );
    assert_eq!(
        kb(&text, "MemTotal"),
        host_total(),
        "a 256 MiB reader (pid {pid}) the daemon cannot look up: expected the host's \
         MemTotal, read:\n{text}"
    );
    let log = d.log();
    let missing = format!("cannot read /proc/{pid}/cgroup: No such file or directory");
    assert!(
        reads_by(&log, &pid, "proc/meminfo")
            .iter()
            .any(|l| l.contains(&missing)),
        "the read by {pid} falls back for want of its cgroups; log:\n{log}"
    );

    // A reader of the same cgroup the daemon can look up gets the limit.
    let seen = cg.read(&meminfo);
    assert_eq!(
        kb(&seen, "MemTotal"),
        262144,
        "a 256 MiB reader the daemon sees, read:\n{seen}"
    );
}
