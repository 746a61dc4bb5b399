//! One run: N reader processes, each in the benchmark's cgroup and the init of a pid
//! namespace of its own (as a container's processes read), loop open → read to EOF → close
//! on one file for a warmup and then a measured window, while the daemon's CPU time is
//! sampled at the window's edges.
//!
//! The benchmark forks a starter per reader ([`reader`]). Every reader reports ready on one
//! pipe and blocks on another until all are; the benchmark then sends each the window's
//! absolute monotonic-clock bounds, so all share one window however late the CPU quota lets
//! them run. Each reader writes its counts, latency histogram and the content of its first
//! read to a pipe of its own, and exits.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, Pid, fork, pipe};

use crate::bench::interrupted;
use crate::cgroup::BenchCgroup;
use crate::histogram::Histogram;
use crate::reader::{self, ReaderReport, now_ns, reap};
use crate::sample;

/// How long readers may take to get going, and to finish after the window: far beyond any
/// healthy start or read, so only a hung mount runs into it.
const GRACE: Duration = Duration::from_secs(30);

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
        starters.spawn(spec.path, [&ready_w, &go_r], [&ready_r, &go_w])?;
    }
    drop((ready_w, go_r));
    await_ready(ready_r, spec.readers, "readers")?;
    let (start, end) = send_go(go_w, spec)?;
    let mut outcome = sample_daemon(spec, start, end)?;
    starters.collect(end + GRACE.as_nanos() as u64)?;
    for s in &starters.list {
        outcome.add(ReaderReport::decode(&s.received)?);
    }
    Ok(outcome)
}

impl Outcome {
    fn add(&mut self, r: ReaderReport) {
        self.reads += r.reads;
        self.errors += r.errors;
        if self.first_error.is_none() {
            self.first_error = r.first_error;
        }
        self.latency.merge(&r.latency);
        self.contents.push(r.content);
    }
}

/// Sends every reader the window's bounds on the clock they all share, the warmup starting
/// now; returns them.
fn send_go(go: OwnedFd, spec: &Spec) -> Result<(u64, u64), String> {
    let start = now_ns() + spec.warmup.as_nanos() as u64;
    let end = start + spec.window.as_nanos() as u64;
    let mut go = File::from(go);
    let message: Vec<u8> = [start.to_le_bytes(), end.to_le_bytes()].concat();
    for _ in 0..spec.readers {
        go.write_all(&message)
            .map_err(|e| format!("starting the readers: {e}"))?;
    }
    Ok((start, end))
}

/// Waits out the window, sampling the daemon's CPU time at both edges and its RSS at the
/// end.
fn sample_daemon(spec: &Spec, start: u64, end: u64) -> Result<Outcome, String> {
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
    /// Forks a starter for one more reader. `shared` are the ready pipe's write end and the
    /// go pipe's read end, which every reader holds; `parent_only` the ends only the
    /// benchmark may hold, which the starter closes at once (with every other reader's
    /// report pipe), so that each pipe's EOF means what it should.
    fn spawn(
        &mut self,
        path: &Path,
        shared: [&OwnedFd; 2],
        parent_only: [&OwnedFd; 2],
    ) -> Result<(), String> {
        let (result_r, result_w) = pipe_pair()?;
        let own = [shared[0], shared[1], &result_w].map(AsRawFd::as_raw_fd);
        let mut others: Vec<RawFd> = parent_only.iter().map(|fd| fd.as_raw_fd()).collect();
        others.push(result_r.as_raw_fd());
        others.extend(self.list.iter().map(|s| s.results.as_raw_fd()));
        // SAFETY: the benchmark has one thread, so the child can run anything; it never
        // returns into the caller and ends with `_exit` (see `reader::child`).
        let pid = match unsafe { fork() } {
            Ok(ForkResult::Child) => reader::child(|| reader::starter(self.cg, path, own, &others)),
            Ok(ForkResult::Parent { child }) => child,
            Err(e) => return Err(format!("fork: {e}")),
        };
        fcntl(&result_r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| format!("making a pipe non-blocking: {e}"))?;
        self.list.push(Starter {
            pid,
            results: File::from(result_r),
            received: Vec::new(),
            done: false,
            reaped: false,
        });
        Ok(())
    }

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

/// Waits until `n` processes (`what`: readers, tasks) have said they are ready, one byte
/// each; one that died first closes its end of the pipe, so EOF before `n` bytes means one
/// will never be.
pub fn await_ready(ready: OwnedFd, n: usize, what: &str) -> Result<(), String> {
    fcntl(&ready, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|e| format!("making a pipe non-blocking: {e}"))?;
    let mut ready = File::from(ready);
    let deadline = now_ns() + GRACE.as_nanos() as u64;
    let mut seen = 0;
    let mut buf = [0u8; 256];
    while seen < n {
        match ready.read(&mut buf) {
            Ok(0) => return Err(format!("only {seen} of {n} {what} started; see above")),
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

/// A pipe, its read end first.
pub fn pipe_pair() -> Result<(OwnedFd, OwnedFd), String> {
    pipe().map_err(|e| format!("pipe: {e}"))
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
