//! One reader process and its starter, the processes forked for each reader of a run, and
//! the report a reader sends back. The starter unshares the pid namespace and forks the
//! reader, pid 1 there; the reader joins the cgroup itself, so the cgroup holds the readers
//! alone. Whatever happens, both end with `_exit` and never return into the benchmark's code.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::{ForkResult, Pid, fork};

use crate::bench::interrupted;
use crate::cgroup::BenchCgroup;
use crate::histogram::Histogram;

/// Big enough that every served file is read in one `read` plus the one that sees EOF, as
/// `cat` reads.
const BUFFER: usize = 128 * 1024;

/// Runs `body` in a forked child and ends the child with its exit code, never returning into
/// the parent's code (a panic is exit code 101).
pub fn child(body: impl FnOnce() -> i32) -> ! {
    let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(101);
    // SAFETY: `_exit` only ends the process, skipping the parent's exit handlers and buffers.
    unsafe { nix::libc::_exit(code) }
}

/// The starter: makes a pid namespace, forks the reader as its init and exits with the
/// reader's status. It stays out of the cgroup, so that the cgroup holds the readers alone,
/// as a container's holds its processes (what `proc/stat` and `loadavg` count). `own` is
/// its reader's ready, go and result pipe ends; `others` the descriptors only the benchmark
/// may hold (so that a pipe's EOF means what it should).
pub fn starter(cg: &BenchCgroup, path: &Path, own: [RawFd; 3], others: &[RawFd]) -> i32 {
    for fd in others {
        // SAFETY: the child's copies; the parent's owners are never dropped here (`_exit`).
        unsafe { nix::libc::close(*fd) };
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID) {
        eprintln!("bench: reader: unshare(CLONE_NEWPID): {e}");
        return 2;
    }
    // SAFETY: as above, one thread; the child ends in `_exit`.
    let reader_pid = match unsafe { fork() } {
        Ok(ForkResult::Child) => child(|| reader(cg, path, own)),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("bench: reader: fork: {e}");
            return 2;
        }
    };
    for fd in own {
        // SAFETY: the reader holds these now; the starter must not keep the pipes open.
        unsafe { nix::libc::close(fd) };
    }
    match reap(reader_pid) {
        Ok(WaitStatus::Exited(_, code)) => code,
        Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
        other => {
            eprintln!("bench: reader: waitpid: {other:?}");
            2
        }
    }
}

/// The reader, init of its pid namespace: joins the cgroup, says it is ready, waits for the
/// go, reads in a loop, reports.
fn reader(cg: &BenchCgroup, path: &Path, [ready, go, result]: [RawFd; 3]) -> i32 {
    // SAFETY: descriptors this process alone uses from here on, each wrapped once.
    let (mut ready, mut go, mut result) = unsafe {
        use std::os::fd::FromRawFd;
        (
            File::from_raw_fd(ready),
            File::from_raw_fd(go),
            File::from_raw_fd(result),
        )
    };
    for procs in cg.procs_files() {
        // "0" is the writer itself (its own pid is 1 here, in its pid namespace).
        if let Err(e) = std::fs::write(&procs, "0") {
            eprintln!("bench: reader: joining {}: {e}", procs.display());
            return 2;
        }
    }
    let mut message = [0u8; 16];
    if ready.write_all(b"r").is_err() || go.read_exact(&mut message).is_err() {
        return 3; // the benchmark gave up before the start
    }
    drop((ready, go));
    let at = |bytes: &[u8]| {
        let ns = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        Instant::now() + Duration::from_nanos(ns.saturating_sub(now_ns()))
    };
    let (start, end) = (at(&message[..8]), at(&message[8..]));

    let mut report = ReaderReport::default();
    let mut buf = vec![0u8; BUFFER];
    let mut first = true;
    loop {
        let t0 = Instant::now();
        if (t0 >= end && !first) || interrupted() {
            break;
        }
        let read = read_to_eof(path, &mut buf, first.then_some(&mut report.content));
        let ns = t0.elapsed().as_nanos() as u64;
        first = false;
        if t0 < start || t0 >= end {
            continue;
        }
        match read {
            Ok(_) => {
                report.reads += 1;
                report.latency.record(ns);
            }
            Err(e) => {
                report.errors += 1;
                report.first_error.get_or_insert(e.to_string());
            }
        }
    }
    match result.write_all(&report.encode()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bench: reader: writing its report: {e}");
            4
        }
    }
}

/// One iteration: open, read until EOF, close; returns the bytes read (and keeps them in
/// `keep` when asked).
fn read_to_eof(
    path: &Path,
    buf: &mut [u8],
    mut keep: Option<&mut Vec<u8>>,
) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let mut total = 0;
    loop {
        let n = match file.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if let Some(k) = keep.as_deref_mut() {
            k.extend_from_slice(&buf[..n]);
        }
    }
}

/// What a reader sends back.
#[derive(Default)]
pub struct ReaderReport {
    /// Reads that started in the window and reached EOF.
    pub reads: u64,
    /// Reads that started in the window and failed.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Latencies of the counted reads, in nanoseconds.
    pub latency: Histogram,
    /// What the first read returned.
    pub content: Vec<u8>,
}

impl ReaderReport {
    /// Text lines, then the first read's content as it was (it may hold anything).
    fn encode(&self) -> Vec<u8> {
        let error = self.first_error.as_deref().unwrap_or("").replace('\n', " ");
        let mut out = format!(
            "reads {}\nerrors {}\nerror {error}\nlatency {}\ncontent {}\n",
            self.reads,
            self.errors,
            self.latency.encode(),
            self.content.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.content);
        out
    }

    /// The inverse of `encode`, for the benchmark.
    pub fn decode(bytes: &[u8]) -> Result<ReaderReport, String> {
        let bad = |what: &str| format!("a reader's report is cut short or garbled ({what})");
        let mut r = ReaderReport::default();
        let mut rest = bytes;
        loop {
            let nl = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or_else(|| bad("no header"))?;
            let line = std::str::from_utf8(&rest[..nl]).map_err(|_| bad("header"))?;
            rest = &rest[nl + 1..];
            let (key, value) = line.split_once(' ').ok_or_else(|| bad(line))?;
            let number = || value.parse::<u64>().map_err(|_| bad(line));
            match key {
                "reads" => r.reads = number()?,
                "errors" => r.errors = number()?,
                "error" if !value.is_empty() => r.first_error = Some(value.to_string()),
                "error" => {}
                "latency" => r.latency = Histogram::decode(value)?,
                "content" => {
                    let len = number()? as usize;
                    if rest.len() != len {
                        return Err(bad("content length"));
                    }
                    r.content = rest.to_vec();
                    return Ok(r);
                }
                _ => return Err(bad(line)),
            }
        }
    }
}

/// Waits for `pid` to exit, through signals (the benchmark's handler runs in every process).
pub fn reap(pid: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// The monotonic clock, in nanoseconds: the same in every process, pid namespace or not.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}
