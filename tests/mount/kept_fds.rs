//! The host files the daemon keeps open and re-reads from offset 0 (`src/kfile/kept.rs`),
//! seen from outside: a kept descriptor read again gives the new value, a reader that moved to
//! another cgroup and a new process under a reused pid get their own cgroup's numbers, and a
//! removed cgroup's descriptors are let go while the daemon is idle. Each daemon serves with
//! one thread, so a second read meets what the first one kept. (A cgroup removed and made
//! again under the same path: `memory::a_cgroup_made_again_under_the_same_path_shows_its_new_limit`.)

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Whether the daemon's serving process `pid` has a file below `dir` open.
fn keeps_below(pid: u32, dir: &Path) -> bool {
    let dir = format!("{}/", dir.display());
    open_files(pid).iter().any(|f| f.starts_with(&dir))
}

/// Holds 128 MiB of anonymous memory, written (so charged), until killed.
const HOLD_MEMORY: &str = r#"
import time
held = bytearray(b"\x01") * (128 << 20)
time.sleep(3600)
"#;

#[test]
fn a_kept_descriptor_read_again_gives_the_new_usage() {
    require!(mount);
    require!(program "python3", "python3 holds the memory (scripts/deps.sh installs it)");
    let cg = Cgroup::new();
    cg.set_memory_limit(512 * MIB);
    let d = Daemon::start(&["--threads", "1"]);
    let serving = d.serving_pid();
    let meminfo = d.path("proc/meminfo");
    let before = cg.read(&meminfo);
    assert!(
        keeps_below(serving, cg.dir("memory")),
        "the read left the cgroup's memory files open; open files: {:?}",
        open_files(serving)
    );
    let usage = || -> u64 {
        let text = cg.read_file("memory", "memory.usage_in_bytes");
        text.trim().parse().expect("memory.usage_in_bytes")
    };
    let used = usage();
    cg.spawn(&["python3", "-c", HOLD_MEMORY]);
    assert!(
        wait_until(Duration::from_secs(30), || usage() >= used + 128 * MIB),
        "the process did not charge 128 MiB within 30 s (usage {})",
        usage()
    );
    let after = cg.read(&meminfo);
    for key in ["MemFree", "MemAvailable"] {
        let (was, is) = (kb(&before, key), kb(&after, key));
        assert!(
            is + 120 * 1024 <= was,
            "{key} should fall by about 128 MiB once a process in the cgroup holds it: \
             {was} kB, then {is} kB; read:\n{after}"
        );
    }
}

/// Reads the meminfo named by `argv[1]`, moves itself to the cgroups whose `cgroup.procs`
/// files follow, and reads it again: the two `MemTotal` lines. One process, one pid.
const MOVE_AND_READ: &str = r#"
import sys
def total():
    with open(sys.argv[1]) as f:
        return next(l for l in f if l.startswith("MemTotal:"))
first = total()
for procs in sys.argv[2:]:
    with open(procs, "w") as f:
        f.write("0")
print(first, total(), sep="", end="")
"#;

#[test]
fn a_reader_that_moved_to_another_cgroup_gets_that_cgroups_limit() {
    require!(mount);
    require!(program "python3", "python3 reads and moves (scripts/deps.sh installs it)");
    let first = Cgroup::new();
    first.set_memory_limit(256 * MIB);
    let second = Cgroup::new();
    second.set_memory_limit(128 * MIB);
    let d = Daemon::start(&["--threads", "1"]);
    let procs = second.procs_files();
    let mut argv = vec!["python3", "-c", MOVE_AND_READ];
    let meminfo = d.arg("proc/meminfo");
    argv.push(&meminfo);
    argv.extend(procs.split(' '));
    let out = first.run(&argv);
    let totals: Vec<u64> = out.lines().map(|l| kb(l, "MemTotal")).collect();
    assert_eq!(
        totals,
        [256 * 1024, 128 * 1024],
        "the same process before and after its move, read:\n{out}"
    );
}

/// `argv[1]` a pid, `argv[2]` `cgroup.procs` files (space separated), then a command: runs
/// the command with exactly that pid (clone3 with `set_tid`, root only), in those cgroups,
/// and exits with its status; exit status 17 when the pid is taken.
const WITH_PID: &str = r#"
import ctypes, errno, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
pid, procs, argv = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]
tid = (ctypes.c_int32 * 1)(pid)
# struct clone_args: flags pidfd child_tid parent_tid exit_signal stack stack_size tls
# set_tid set_tid_size cgroup
args = ctypes.create_string_buffer(
    struct.pack("11Q", 0, 0, 0, 0, 17, 0, 0, 0, ctypes.addressof(tid), 1, 0), 88)
child = libc.syscall(435, args, ctypes.c_size_t(88))
if child < 0:
    err = ctypes.get_errno()
    sys.exit(17 if err == errno.EEXIST else f"clone3: {os.strerror(err)}")
if child == 0:
    for p in procs:
        with open(p, "w") as f:
            f.write("0")
    os.execvp(argv[0], argv)
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// What `cat path`, run as pid `pid` in the cgroups of `procs`, printed; `None` when `pid`
/// was taken.
fn cat_as_pid(pid: u32, procs: &str, path: &str) -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", WITH_PID, &pid.to_string(), procs, "cat", path])
        .output()
        .expect("running python3");
    if out.status.code() == Some(17) {
        return None;
    }
    assert!(out.status.success(), "cat as pid {pid}: {}", describe(&out));
    Some(String::from_utf8(out.stdout).expect("utf-8"))
}

#[test]
fn a_new_process_under_a_reused_pid_never_gets_the_old_ones_cgroup() {
    require!(mount);
    require!(program "python3", "python3 makes the processes (scripts/deps.sh installs it)");
    let old = Cgroup::new();
    old.set_memory_limit(256 * MIB);
    let new = Cgroup::new();
    new.set_memory_limit(128 * MIB);
    let d = Daemon::start(&["--threads", "1"]);
    let meminfo = d.arg("proc/meminfo");
    let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("pid_max");
    // A high pid nobody uses (the kernel hands pids out from low up, wrapping rarely).
    let free = (0..1000)
        .map(|i| pid_max - 1000 - (std::process::id() % 1000) * 7 - i)
        .filter(|p| !Path::new(&format!("/proc/{p}")).exists());
    for pid in free {
        let Some(first) = cat_as_pid(pid, &old.procs_files(), &meminfo) else {
            continue;
        };
        // The first process has exited and been reaped: its pid is free for the second.
        let Some(second) = cat_as_pid(pid, &new.procs_files(), &meminfo) else {
            continue;
        };
        assert_eq!(kb(&first, "MemTotal"), 256 * 1024, "read:\n{first}");
        assert_eq!(
            kb(&second, "MemTotal"),
            128 * 1024,
            "pid {pid} again, in another cgroup: that cgroup's limit, read:\n{second}"
        );
        return;
    }
    panic!("no free pid near pid_max {pid_max} to run two processes under");
}

#[test]
fn a_removed_cgroups_files_are_let_go_while_nobody_reads() {
    require!(mount);
    let parent = Cgroup::new();
    let d = Daemon::start(&["--threads", "1"]);
    let serving = d.serving_pid();
    let child = parent.child("gone");
    child.set_memory_limit(128 * MIB);
    let dir = child.dir("memory").to_path_buf();
    child.read(&d.path("proc/meminfo"));
    assert!(
        keeps_below(serving, &dir),
        "the read left the cgroup's memory files open; open files: {:?}",
        open_files(serving)
    );
    drop(child);
    assert!(!dir.exists(), "the cgroup was removed");
    // No read from here on: only the sweeper can close them, once idle for 10 s (it looks
    // every 5 s).
    assert!(
        wait_until(Duration::from_secs(30), || !keeps_below(serving, &dir)),
        "30 s after the last read, the daemon still holds files of the removed cgroup \
         (keeping it in kernel memory): {:?}",
        open_files(serving)
    );
}
