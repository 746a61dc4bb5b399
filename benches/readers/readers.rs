//! One run: N reader processes, each in the benchmark's cgroup and the init of a pid
//! namespace of its own (as a container's processes read), loop open → read to EOF → close
//! on one file for a warmup and then a measured window, while the daemon's CPU time is
//! sampled at the window's edges.
//!
//! The processes: the benchmark forks a *starter* per reader, which unshares the pid
//! namespace and forks the *reader* (pid 1 there), then waits for it; the reader joins the
//! cgroup, which so holds the readers alone. Every reader reports ready on one pipe and
//! blocks on another until all are; the benchmark then sends each the window's absolute
//! monotonic-clock bounds, so all share one window however late the CPU quota lets them
//! run. Each reader writes its counts, latency histogram and the content of its first read
//! to a pipe of its own, and exits.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::{ForkResult, Pid, fork, pipe};

use crate::bench::interrupted;
use crate::cgroup::BenchCgroup;
use crate::histogram::Histogram;
use crate::sample;

/// How long readers may take to get going, and to finish after the window: far beyond any
/// healthy start or read, so only a hung mount runs into it.
const GRACE: Duration = Duration::from_secs(30);

/// Big enough that every served file is read in one `read` plus the one that sees EOF, as
/// `cat` reads.
const BUFFER: usize = 128 * 1024;

/// What one run measures.
pub struct Spec<'a> {
    /// The file to read.
    pub path: &'a Path,
    /// How many readers read it at once.
    pub readers: usize,
    /// How long they read before the window (not counted).
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
    /// The daemon serving `path`, whose CPU time and RSS are sampled.
    pub daemon: Option<i32>,
}

/// What one run measured, all readers together.
#[derive(Default)]
pub struct Outcome {
    /// Reads that started in the window and reached EOF.
    pub reads: u64,
    /// Reads that started in the window and failed.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Latencies of the counted reads.
    pub latency: Histogram,
    /// What each reader's first read returned (for the content check).
    pub contents: Vec<Vec<u8>>,
    /// The window's length.
    pub window: Duration,
    /// The daemon's CPU time over the window.
    pub daemon_cpu: Option<Duration>,
    /// The daemon's RSS at the window's end, in bytes.
    pub daemon_rss: Option<u64>,
}

/// Runs `spec` with readers in `cg`.
pub fn run(cg: &BenchCgroup, spec: &Spec) -> Result<Outcome, String> {
    let (ready_r, ready_w) = pipe_pair()?;
    let (go_r, go_w) = pipe_pair()?;
    let mut starters = Starters {
        cg,
        list: Vec::new(),
    };
    for _ in 0..spec.readers {
        let (result_r, result_w) = pipe_pair()?;
        let own = [&ready_w, &go_r, &result_w].map(AsRawFd::as_raw_fd);
        let mut others: Vec<RawFd> = vec![ready_r.as_raw_fd(), go_w.as_raw_fd()];
        others.push(result_r.as_raw_fd());
        others.extend(starters.list.iter().map(|s| s.results.as_raw_fd()));
        // SAFETY: the benchmark has one thread, so the child can run anything; it never
        // returns into the caller and ends with `_exit` (see `child`).
        match unsafe { fork() } {
            Ok(ForkResult::Child) => child(|| starter(cg, spec, own, &others)),
            Ok(ForkResult::Parent { child }) => {
                fcntl(&result_r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                    .map_err(|e| format!("making a pipe non-blocking: {e}"))?;
                starters.list.push(Starter {
                    pid: child,
                    results: File::from(result_r),
                    received: Vec::new(),
                    done: false,
                    reaped: false,
                });
            }
            Err(e) => return Err(format!("fork: {e}")),
        }
    }
    drop((ready_w, go_r));
    await_ready(ready_r, spec.readers)?;

    // The window, on the clock every reader shares.
    let start = now_ns() + spec.warmup.as_nanos() as u64;
    let end = start + spec.window.as_nanos() as u64;
    let mut go = File::from(go_w);
    let message: Vec<u8> = [start.to_le_bytes(), end.to_le_bytes()].concat();
    for _ in 0..spec.readers {
        go.write_all(&message)
            .map_err(|e| format!("starting the readers: {e}"))?;
    }
    drop(go);

    sleep_until(start)?;
    let cpu_before = spec.daemon.map(sample::cpu_time).transpose()?;
    sleep_until(end)?;
    let mut outcome = Outcome {
        window: Duration::from_nanos(end - start),
        ..Outcome::default()
    };
    if let (Some(pid), Some(before)) = (spec.daemon, cpu_before) {
        outcome.daemon_cpu = Some(sample::cpu_time(pid)?.saturating_sub(before));
        outcome.daemon_rss = Some(sample::rss(pid)?);
    }
    starters.collect(end + GRACE.as_nanos() as u64)?;
    for s in &starters.list {
        let r = ReaderReport::decode(&s.received)?;
        outcome.reads += r.reads;
        outcome.errors += r.errors;
        if outcome.first_error.is_none() {
            outcome.first_error = r.first_error;
        }
        outcome.latency.merge(&r.latency);
        outcome.contents.push(r.content);
    }
    Ok(outcome)
}

/// The starters of one run: reaped (after their readers are killed, if they are still
/// there) when dropped, so an error midway leaves no process behind.
struct Starters<'a> {
    cg: &'a BenchCgroup,
    list: Vec<Starter>,
}

/// A starter process and the pipe its reader reports on.
struct Starter {
    pid: Pid,
    results: File,
    received: Vec<u8>,
    done: bool,
    reaped: bool,
}

impl Starters<'_> {
    /// Reads every reader's report to EOF, then reaps the starters, which exit with their
    /// reader's status; all by `deadline`.
    fn collect(&mut self, deadline: u64) -> Result<(), String> {
        let mut chunk = vec![0u8; 64 * 1024];
        while self.list.iter().any(|s| !s.done) {
            let mut progress = false;
            for s in self.list.iter_mut().filter(|s| !s.done) {
                match s.results.read(&mut chunk) {
                    Ok(0) => s.done = true,
                    Ok(n) => s.received.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("reading a reader's report: {e}")),
                }
                progress = true;
            }
            if !progress {
                check_deadline(deadline, "finish their last reads")?;
                sleep(Duration::from_millis(5));
            }
        }
        for s in &mut self.list {
            let status = reap(s.pid).map_err(|e| format!("waitpid {}: {e}", s.pid))?;
            s.reaped = true;
            if status != WaitStatus::Exited(s.pid, 0) {
                return Err(format!(
                    "a reader failed ({status:?}); see its message above"
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Starters<'_> {
    fn drop(&mut self) {
        if self.list.iter().any(|s| !s.reaped) {
            self.cg.kill_members();
        }
        for s in self.list.iter().filter(|s| !s.reaped) {
            let _ = reap(s.pid);
        }
    }
}

/// Waits until `n` readers have said they are ready; a reader that died first closes its end
/// of the pipe, so EOF before `n` bytes means one will never be.
fn await_ready(ready: OwnedFd, n: usize) -> Result<(), String> {
    fcntl(&ready, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|e| format!("making a pipe non-blocking: {e}"))?;
    let mut ready = File::from(ready);
    let deadline = now_ns() + GRACE.as_nanos() as u64;
    let mut seen = 0;
    let mut buf = [0u8; 256];
    while seen < n {
        match ready.read(&mut buf) {
            Ok(0) => return Err(format!("only {seen} of {n} readers started; see above")),
            Ok(k) => seen += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                check_deadline(deadline, "start")?;
                sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("waiting for the readers: {e}")),
        }
    }
    Ok(())
}

/// Runs `body` in a forked child and ends the child with its exit code, never returning into
/// the parent's code (a panic is exit code 101).
fn child(body: impl FnOnce() -> i32) -> ! {
    let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(101);
    // SAFETY: `_exit` only ends the process, skipping the parent's exit handlers and buffers.
    unsafe { nix::libc::_exit(code) }
}

/// The starter: makes a pid namespace, forks the reader as its init and exits with the
/// reader's status. It stays out of the cgroup, so that the cgroup holds the readers alone,
/// as a container's holds its processes (what `proc/stat` and `loadavg` count). `own` is
/// its reader's ready, go and result pipe ends; `others` the descriptors only the benchmark
/// may hold (so that a pipe's EOF means what it should).
fn starter(cg: &BenchCgroup, spec: &Spec, own: [RawFd; 3], others: &[RawFd]) -> i32 {
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
        Ok(ForkResult::Child) => child(|| reader(cg, spec, own)),
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
fn reader(cg: &BenchCgroup, spec: &Spec, [ready, go, result]: [RawFd; 3]) -> i32 {
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
        let read = read_to_eof(spec.path, &mut buf, first.then_some(&mut report.content));
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
struct ReaderReport {
    reads: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram,
    content: Vec<u8>,
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

    fn decode(bytes: &[u8]) -> Result<ReaderReport, String> {
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
fn reap(pid: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other,
        }
    }
}

fn pipe_pair() -> Result<(OwnedFd, OwnedFd), String> {
    pipe().map_err(|e| format!("pipe: {e}"))
}

/// The monotonic clock, in nanoseconds: the same in every process, pid namespace or not.
fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

fn sleep_until(t: u64) -> Result<(), String> {
    loop {
        let now = now_ns();
        if now >= t {
            return Ok(());
        }
        if interrupted() {
            return Err("interrupted".into());
        }
        sleep(Duration::from_nanos(t - now).min(Duration::from_millis(50)));
    }
}

fn check_deadline(deadline: u64, what: &str) -> Result<(), String> {
    if interrupted() {
        return Err("interrupted".into());
    }
    if now_ns() > deadline {
        return Err(format!(
            "the readers did not {what} within {} s: is the mount hung?",
            GRACE.as_secs()
        ));
    }
    Ok(())
}
