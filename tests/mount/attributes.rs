//! Attributes the kernel may keep: a file's attributes are the same for every reader, so the
//! kernel answers an `fstat` within the cache time without asking the daemon; a `cpuN` entry
//! a cpuset may hide is asked about every time. A cached size misleads no reader: files are
//! read to their end whatever `st_size` says, and each reader still gets its own content.

use std::fs::{self, File};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::common::fixture_tree::Fixture as Tree;
use crate::common::*;

/// How long an `fstat` the kernel answers from its cache may take, however loaded the
/// machine: it makes no request.
const CACHED: Duration = Duration::from_millis(500);

/// The daemon's serving process stopped (SIGSTOP) until dropped (SIGCONT), so that a request
/// that reaches it waits: whatever returns meanwhile was answered by the kernel alone.
struct Stopped(u32);

impl Stopped {
    /// Stops `pid` and waits until every thread of it has stopped: `kill` returns before
    /// threads on other CPUs have, and one of them could still take a request.
    fn new(pid: u32) -> Stopped {
        signal(pid, Signal::SIGSTOP);
        let stopped = Stopped(pid);
        let all_stopped = || crate::common::all_threads_stopped(pid);
        assert!(
            wait_until(Duration::from_secs(5), all_stopped),
            "the daemon's process {pid} did not stop within 5 s of SIGSTOP"
        );
        stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, Signal::SIGCONT);
    }
}

/// `fstat` of `file` on a thread of its own (it blocks while the daemon is stopped).
fn fstat_on_a_thread(file: &File) -> JoinHandle<std::io::Result<u64>> {
    let file = file.try_clone().expect("dup of the open file");
    std::thread::spawn(move || file.metadata().map(|m| m.len()))
}

/// Whether an `fstat` of `path`, open and stat'ed just before, returns while the daemon is
/// stopped. Tried up to three times, since the first `fstat` only caches for a second and a
/// loaded machine may take that long between the two.
fn fstat_answered_while_stopped(serving: u32, path: &Path) -> bool {
    let file = File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    for _ in 0..3 {
        file.metadata().expect("fstat with the daemon running");
        let stopped = Stopped::new(serving);
        let fstat = fstat_on_a_thread(&file);
        let answered = wait_until(CACHED, || fstat.is_finished());
        drop(stopped);
        let size = fstat.join().expect("the fstat thread");
        size.unwrap_or_else(|e| panic!("fstat of {}: {e}", path.display()));
        if answered {
            return true;
        }
    }
    false
}

#[test]
fn an_fstat_within_the_cache_time_does_not_reach_the_daemon_but_one_of_a_cpu_entry_does() {
    require!(mount);
    let d = Daemon::start(&[]);
    let serving = d.serving_pid();
    for rel in ["proc/meminfo", "proc/stat", "sys/devices/system/cpu/online"] {
        assert!(
            fstat_answered_while_stopped(serving, &d.path(rel)),
            "{rel}: an fstat right after another waited for the stopped daemon: its \
             attributes are not cached"
        );
    }
    // A cpuN directory exists only for readers shown that CPU: its attributes are asked for
    // every time, so the fstat waits until the daemon runs again, and then succeeds.
    let cpu0 = File::open(d.path("sys/devices/system/cpu/cpu0")).expect("opening cpu0");
    cpu0.metadata().expect("fstat of cpu0");
    let stopped = Stopped::new(serving);
    let fstat = fstat_on_a_thread(&cpu0);
    let answered = wait_until(CACHED, || fstat.is_finished());
    drop(stopped);
    assert!(
        !answered,
        "the fstat of cpu0 returned ({:?}) while the daemon was stopped: a per-reader \
         node's attributes were cached",
        fstat.join()
    );
    assert!(
        wait_until(Duration::from_secs(10), || fstat.is_finished()),
        "the fstat of cpu0 was not answered once the daemon ran again"
    );
    fstat
        .join()
        .expect("the fstat thread")
        .expect("fstat of cpu0");
}

#[test]
fn readers_within_the_cache_time_still_get_their_own_content() {
    require!(mount);
    let limited = Cgroup::new();
    limited.set_memory_limit(256 * MIB);
    let other = Cgroup::new();
    other.set_memory_limit(128 * MIB);
    let d = Daemon::start(&[]);
    let meminfo = d.arg("proc/meminfo");
    // Each shell stats the file (caching its attributes) and reads it; the second within a
    // second of the first.
    let script = r#"stat -c %s "$1" && cat "$1""#;
    let a = limited.run(&["sh", "-c", script, "sh", &meminfo]);
    let b = other.run(&["sh", "-c", script, "sh", &meminfo]);
    let (size_a, text_a) = a.split_once('\n').expect("the size, then the file");
    let (size_b, text_b) = b.split_once('\n').expect("the size, then the file");
    assert_eq!(size_a, size_b, "one size for every reader");
    assert_eq!(kb(text_a, "MemTotal"), 256 * 1024, "read:\n{text_a}");
    assert_eq!(kb(text_b, "MemTotal"), 128 * 1024, "read:\n{text_b}");
}

/// Reads the file named by `argv[1]` as Python's `open().read()` does (`fstat`, a buffer of
/// `st_size + 1`, reads until EOF), then as Go's `os.ReadFile` does (a buffer sized from
/// `st_size`, grown while reads fill it, until a read returns 0), each with the size its
/// `fstat` saw: `size len` per line.
const SIZED_READERS: &str = r#"
import os, sys
p = sys.argv[1]
with open(p) as f:
    size = os.fstat(f.fileno()).st_size
    print(size, len(f.read()))
fd = os.open(p, os.O_RDONLY)
size = os.fstat(fd).st_size
buf = bytearray()
want = size + 512
while True:
    chunk = os.read(fd, want - len(buf))
    if not chunk:
        break
    buf += chunk
    if len(buf) == want:
        want *= 2
os.close(fd)
print(size, len(buf))
"#;

/// A host tree on which the daemon starts and shows it is serving (a cgroup2 mount with
/// nothing in it, the CPU lists and a meminfo), with a passed-through file `growing` of `len`
/// bytes below the CPU directory.
fn host_with_growing_file(len: usize) -> Tree {
    let tree = Tree::new();
    tree.mountinfo("35 31 0:32 / /sys/fs/cgroup rw,relatime shared:19 - cgroup2 cgroup2 rw\n")
        .write("sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
        .write("proc/meminfo", "MemTotal:        1000000 kB\n");
    for list in ["online", "possible", "present"] {
        tree.write(&format!("sys/devices/system/cpu/{list}"), "0-1\n");
    }
    tree.write("sys/devices/system/cpu/growing", &"a".repeat(len));
    tree
}

#[test]
fn content_grown_beyond_a_cached_size_is_read_to_its_end() {
    require!(fuse);
    require!(program "python3", "python3 reads the file (scripts/deps.sh installs it)");
    const GROWN: usize = 10_000;
    let tree = host_with_growing_file(100);
    let root = tree.root().to_str().expect("utf-8 path").to_string();
    let d = Daemon::start(&["--host-root", &root]);
    let file = d.path("sys/devices/system/cpu/growing");
    let before = fs::metadata(&file).expect("stat").len();
    assert_eq!(before, 4096, "100 bytes, one page");
    tree.write("sys/devices/system/cpu/growing", &"b".repeat(GROWN));

    let out = checked(
        {
            let mut cmd = std::process::Command::new("python3");
            cmd.args([
                "-c",
                SIZED_READERS,
                &d.arg("sys/devices/system/cpu/growing"),
            ]);
            cmd
        },
        &["python3", "SIZED_READERS"],
    );
    let seen: Vec<(u64, usize)> = out
        .lines()
        .map(|l| {
            let (size, len) = l.split_once(' ').expect("size len");
            (size.parse().expect("size"), len.parse().expect("len"))
        })
        .collect();
    assert_eq!(seen.len(), 2, "two readers, read:\n{out}");
    for ((size, len), reader) in seen.iter().zip(["open().read()", "os.ReadFile-like loop"]) {
        assert_eq!(*len, GROWN, "{reader} got {len} bytes with st_size {size}");
    }
    assert!(
        seen[0].0 < GROWN as u64,
        "the first reader's fstat saw the size from before the growth ({}), so the read \
         went past it",
        seen[0].0
    );
    let cat = std::process::Command::new("cat")
        .arg(&file)
        .output()
        .expect("running cat");
    assert_eq!(cat.stdout.len(), GROWN, "cat reads to EOF");
}
