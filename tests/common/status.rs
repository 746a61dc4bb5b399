//! The daemon as a supervisor and its worker, as the restart contract describes them: the
//! `status` command, both processes killed, and reads the host holds in flight.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Deserialize;

use super::{Daemon, describe, run_bin, signal, wait_until};

/// What `lxcfs-rs status MNT --json` prints: one object; every key of the contract is
/// required, more are allowed.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    /// The process the test started: it holds the connection and runs the worker.
    pub supervisor_pid: u32,
    /// The process serving requests now; `null` between a worker's death and its
    /// successor's start.
    pub worker_pid: Option<u32>,
    /// The serving binary's version (`0.1.0`, `0.1.0+upgrade2`).
    pub version: String,
    /// The serving generation.
    pub generation: u64,
    /// Whether the worker asked the kernel to resend requests in flight.
    pub resend: bool,
    /// Requests waiting for an answer (fusectl `waiting`).
    pub waiting: u64,
    /// Workers started after the first.
    pub worker_restarts: u64,
    /// READs answered.
    pub reads: u64,
    /// Reads answered with the host's file.
    pub fallbacks: u64,
    /// Whether the files show the readers' views (SIGUSR2 toggles it).
    pub virtualized: bool,
    /// `major:minor` of the FUSE connection.
    pub dev: String,
}

impl Status {
    /// The counters, for a test's report.
    pub fn summary(&self) -> String {
        format!(
            "version {}, generation {}, resend {}, worker restarts {}, reads {}, fallbacks {}, \
             waiting {}, virtualized {}",
            self.version,
            self.generation,
            self.resend,
            self.worker_restarts,
            self.reads,
            self.fallbacks,
            self.waiting,
            self.virtualized
        )
    }
}

/// The supervisor's status for the mount at `mnt`; panics with the command's output when it
/// cannot be had.
#[track_caller]
pub fn status(mnt: &Path) -> Status {
    try_status(mnt).unwrap_or_else(|e| panic!("{e}"))
}

/// The supervisor's status, or why there is none (the command failed, or printed something
/// else than the contract's object).
pub fn try_status(mnt: &Path) -> Result<Status, String> {
    let object = status_json(mnt)?;
    serde_json::from_value(serde_json::Value::Object(object.clone())).map_err(|e| {
        format!("`lxcfs-rs status --json` printed no status of the contract ({e}): {object:?}")
    })
}

/// What `lxcfs-rs status MNT --json` printed, as a JSON object.
pub fn status_json(mnt: &Path) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mnt = mnt.to_str().expect("utf-8 path");
    let out = run_bin(&["status", mnt, "--json"]);
    if !out.status.success() {
        return Err(format!(
            "`lxcfs-rs status {mnt} --json` (the supervisor's status of the restart contract) \
             failed: {}",
            describe(&out)
        ));
    }
    match serde_json::from_slice(&out.stdout) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        other => Err(format!(
            "`lxcfs-rs status --json` printed no JSON object ({other:?}): {}",
            describe(&out)
        )),
    }
}

/// The plain `lxcfs-rs status MNT`: its `key: value` lines.
#[track_caller]
pub fn status_lines(mnt: &Path) -> BTreeMap<String, String> {
    let mnt = mnt.to_str().expect("utf-8 path");
    let out = run_bin(&["status", mnt]);
    assert!(out.status.success(), "lxcfs-rs status: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("status line {l:?} is not `key: value`"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// Polls the status until `cond` holds (up to `timeout`); panics with the last status, or
/// the last reason there was none. A status that cannot be had meanwhile is polled on: a
/// supervisor re-executing itself (SIGUSR1) does not answer for that moment.
#[track_caller]
pub fn wait_status(
    mnt: &Path,
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut(&Status) -> bool,
) -> Status {
    let mut last = Err("no status asked".to_string());
    let ok = wait_until(timeout, || {
        last = try_status(mnt);
        last.as_ref().is_ok_and(&mut cond)
    });
    match last {
        Ok(st) if ok => st,
        Ok(st) => panic!("{what} within {timeout:?}; the last status: {st:?}"),
        Err(e) => panic!("{what} within {timeout:?}; the last status asked: {e}"),
    }
}

/// The worker serving now (waiting up to 5 s for one, should none run at this moment).
#[track_caller]
pub fn current_worker(mnt: &Path) -> u32 {
    let st = wait_status(mnt, Duration::from_secs(5), "a worker", |st| {
        st.worker_pid.is_some()
    });
    st.worker_pid.expect("a worker")
}

/// A worker other than `old` serving (the supervisor replaced it): its pid, and the status
/// that named it.
#[track_caller]
pub fn wait_new_worker(mnt: &Path, old: u32, timeout: Duration) -> (u32, Status) {
    let st = wait_status(mnt, timeout, &format!("a worker other than {old}"), |st| {
        st.worker_pid.is_some_and(|w| w != old)
    });
    (st.worker_pid.expect("a worker"), st)
}

/// The process that serves the mount of `d`: the worker its status names, or `d` itself
/// when there is no status (a daemon of one process, as before the supervisor).
pub fn serving_pid(d: &Daemon) -> u32 {
    try_status(&d.mnt)
        .ok()
        .and_then(|st| st.worker_pid)
        .unwrap_or(d.pid)
}

/// SIGKILLs supervisor `d` and its `worker` and waits until the worker is gone. The
/// supervisor is frozen first, so that it cannot start a worker in place of the one killed.
pub fn kill_supervisor_and_worker(d: &mut Daemon, worker: Option<u32>) {
    signal(d.pid, Signal::SIGSTOP);
    if let Some(w) = worker {
        signal(w, Signal::SIGKILL);
    }
    d.kill9();
    if let Some(w) = worker {
        assert!(
            wait_until(Duration::from_secs(5), || gone(w)),
            "the worker {w} outlived SIGKILL"
        );
    }
}

/// Whether process `pid` is gone (or a zombie waiting for whoever reaps it).
pub fn gone(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .is_none_or(|state| state == 'Z' || state == 'X')
}

/// A read of one file from the host, on a thread of its own, held in flight as long as the
/// daemon does not answer it.
pub struct HeldRead {
    path: PathBuf,
    started: Instant,
    thread: JoinHandle<(io::Result<Vec<u8>>, Instant)>,
}

impl HeldRead {
    /// Starts reading `path`.
    pub fn start(path: PathBuf) -> HeldRead {
        let p = path.clone();
        let thread = std::thread::spawn(move || (fs::read(&p), Instant::now()));
        HeldRead {
            path,
            started: Instant::now(),
            thread,
        }
    }

    /// Whether the read has returned.
    pub fn done(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits up to `timeout` for the read: its result and when it returned; `Err` naming the
    /// file if it is still held (the thread is left to end with the connection).
    pub fn wait(self, timeout: Duration) -> Result<(io::Result<Vec<u8>>, Instant), String> {
        if !wait_until(timeout, || self.thread.is_finished()) {
            return Err(format!(
                "the host's read of {} has waited {:?} for an answer",
                self.path.display(),
                self.started.elapsed()
            ));
        }
        Ok(self.thread.join().expect("the reader thread"))
    }
}

/// `path` read from the host within `timeout`, or an error saying why not (an unserved FUSE
/// mount would hold a plain read for good).
pub fn read_within(path: &Path, timeout: Duration) -> Result<String, String> {
    let (r, _) = HeldRead::start(path.to_path_buf()).wait(timeout)?;
    r.map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("reading {}: {e}", path.display()))
}
