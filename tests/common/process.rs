//! Waiting, running commands to completion, signalling the processes the tests started, and
//! checking how a command failed.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::BIN;

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether every thread of `pid` is stopped (state `T`).
pub fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        let stat = fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()) == Some('T')
    })
}

/// Joins a reader thread that was told to stop, failing the test if it is still blocked
/// after `timeout`: a read that never returns is a request nobody answered. (A hang here
/// would stall the whole run; the test's mounts are torn down as it unwinds, which ends
/// the blocked read.)
pub fn join_reader<T>(reader: std::thread::JoinHandle<T>, timeout: Duration) -> T {
    if !wait_until(timeout, || reader.is_finished()) {
        let ring = std::env::var_os(super::IO_URING_ENV).is_some();
        panic!(
            "a reader is still blocked {timeout:?} after it was told to stop: a request \
             was never answered{}",
            if ring {
                " (over io_uring: a request the kernel put in a ring entry of a worker \
                 that is gone cannot be resent; README, FUSE-over-io_uring)"
            } else {
                ""
            }
        );
    }
    reader.join().expect("the reader thread")
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Sends `sig` to a process the tests started.
pub fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// Describes a command's result for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `lxcfs-rs ARGS` run to completion (for error cases and `show`), with a 30 s limit.
pub fn run_bin(args: &[&str]) -> Output {
    run_bin_with_input(args, None)
}

/// `lxcfs-rs ARGS` with `input` on its stdin (as a runtime hands a hook the OCI state), run
/// to completion with a 30 s limit.
pub fn run_bin_with_stdin(args: &[&str], input: &[u8]) -> Output {
    run_bin_with_input(args, Some(input))
}

fn run_bin_with_input(args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A binary that exits without reading everything closes the pipe: not our failure.
        let _ = stdin.write_all(input);
    }
    let pid = child.id();
    // Read the pipes on a thread so a hung binary is caught by the timeout below.
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let end = Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() {
        if Instant::now() > end {
            signal(pid, Signal::SIGKILL);
            let out = waiter.join().expect("waiter").expect("wait");
            panic!(
                "lxcfs-rs {args:?} did not finish within 30 s (killed it): {}",
                describe(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    waiter
        .join()
        .expect("waiter thread")
        .expect("waiting for lxcfs-rs")
}

/// Runs `cmd` to completion, panicking with its output unless it exits 0.
pub fn checked(mut cmd: Command, what: &[&str]) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what:?}: {e}"));
    if out.status.code() == Some(97) {
        panic!(
            "{what:?}: could not join the test cgroup: {}",
            describe(&out)
        );
    }
    assert!(out.status.success(), "{what:?} failed: {}", describe(&out));
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{what:?} printed non-UTF-8: {e}"))
}

/// Asserts the stderr of a failed command: exactly one line (blank lines count too),
/// starting `lxcfs-rs: `, and mentioning `needle`.
#[track_caller]
pub fn assert_one_error_line(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr, read:\n{stderr}"
    );
    assert!(
        lines[0].starts_with("lxcfs-rs: "),
        "expected the error line to start with \"lxcfs-rs: \", read:\n{stderr}"
    );
    assert!(
        lines[0].contains(needle),
        "expected the error line to mention {needle:?}, read:\n{stderr}"
    );
}

/// Asserts that a command of ours failed as it should: exit code `code`, and on stderr
/// exactly one line, starting `lxcfs-rs: ` and mentioning `needle` (see
/// [`assert_one_error_line`]).
#[track_caller]
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code} with an error naming {needle:?}: {}",
        describe(out)
    );
    assert_one_error_line(&String::from_utf8_lossy(&out.stderr), needle);
}

/// Asserts that a command exited 0; the message names `what` and shows its output.
#[track_caller]
pub fn assert_succeeds(out: &Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", describe(out));
}

/// Reads a file ignoring errors (for messages).
pub fn read_or_err(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(error reading {}: {e})", path.display()))
}

/// The OS error of an io result, for assertions.
pub fn errno_of<T>(r: &io::Result<T>) -> Option<i32> {
    r.as_ref().err().and_then(io::Error::raw_os_error)
}

/// A child process the test started, killed (by its pid) and reaped when dropped unless it
/// was waited for: a failing assertion leaves no reader behind.
pub struct Reaped(Option<Child>);

impl Reaped {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Reaped {
        Reaped(Some(child))
    }

    /// The child, to use its pipes.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is still in charge")
    }

    /// Waits for the child to exit, which then needs no killing.
    pub fn wait(mut self) -> io::Result<ExitStatus> {
        self.0.take().expect("the child is still in charge").wait()
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            signal(child.id(), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// A user-space task (thread) found in state `D`, uninterruptible sleep: a reader waiting on
/// a FUSE request its server will never answer stays there, immune to SIGKILL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DTask {
    /// Its process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// Its parent process.
    pub ppid: u32,
    /// `comm`.
    pub comm: String,
    /// Where it sleeps in the kernel (`/proc/PID/task/TID/wchan`), e.g. `request_wait_answer`.
    pub wchan: String,
    /// `/proc/PID/cgroup`, one line per hierarchy joined by `;`.
    pub cgroup: String,
}

/// One `/proc/PID/task/TID/stat`: (state, ppid, flags).
fn task_stat(path: &Path) -> Option<(char, u32, u64)> {
    let text = fs::read_to_string(path).ok()?;
    // comm may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(6)?.parse().ok()?,
    ))
}

/// Every user-space task now in state `D` (kernel threads, which sleep in D by design, left
/// out), from `/proc/*/task/*/stat`.
pub fn d_state_tasks() -> Vec<DTask> {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let mut out = Vec::new();
    let numbered = |dir: &Path| -> Vec<u32> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    for pid in numbered(Path::new("/proc")) {
        for tid in numbered(Path::new(&format!("/proc/{pid}/task"))) {
            let dir = format!("/proc/{pid}/task/{tid}");
            let Some((state, ppid, flags)) = task_stat(Path::new(&format!("{dir}/stat"))) else {
                continue; // gone meanwhile
            };
            if state != 'D' || flags & PF_KTHREAD != 0 {
                continue;
            }
            let read = |f: &str| fs::read_to_string(format!("{dir}/{f}")).unwrap_or_default();
            out.push(DTask {
                pid,
                tid,
                ppid,
                comm: read("comm").trim().to_string(),
                wchan: read("wchan").trim().to_string(),
                cgroup: fs::read_to_string(format!("/proc/{pid}/cgroup"))
                    .unwrap_or_default()
                    .trim()
                    .replace('\n', ";"),
            });
        }
    }
    out
}

/// The tasks `ours` accepts that are in state `D` now and still `grace` later (a task that
/// passes through D, a disk read say, is not stuck). Other tests and other programs on the
/// machine may have tasks in D of their own: `ours` keeps the scan to what a test made.
pub fn stuck_tasks(grace: Duration, ours: impl Fn(&DTask) -> bool) -> Vec<DTask> {
    let first: Vec<DTask> = d_state_tasks().into_iter().filter(|t| ours(t)).collect();
    if first.is_empty() {
        return first;
    }
    std::thread::sleep(grace);
    let again = d_state_tasks();
    first
        .into_iter()
        .filter(|t| again.iter().any(|a| a.tid == t.tid && a.pid == t.pid))
        .collect()
}

/// Every live process that descends from `root` (its children, theirs, ...), `root` included.
pub fn descendants_of(root: u32) -> std::collections::BTreeSet<u32> {
    let mut parent = std::collections::BTreeMap::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((_, ppid, _)) = task_stat(&e.path().join("stat")) {
            parent.insert(pid, ppid);
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&pid| {
            let mut p = pid;
            // A pid chain ends at 1 (or 0); the bound guards a chain read mid-change.
            for _ in 0..64 {
                if p == root {
                    return true;
                }
                match parent.get(&p) {
                    Some(&pp) if pp != p && pp != 0 => p = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// The resident memory of process `pid` (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS line in {path}:\n{status}"))
}

/// The parent of process `pid`, from `/proc/PID/stat`; `None` when it is gone.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// What process `pid` has open: the target of each of its descriptors (none if it is gone).
pub fn open_files(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|t| t.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
