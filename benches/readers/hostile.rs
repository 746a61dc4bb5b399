//! The hostile reader: one container (a cgroup of its own) opens `--hostile-fds`
//! descriptors of proc/cpuinfo on a daemon's mount, reads 1 byte from each and keeps them
//! open, as a container bent on the daemon's memory would. One process holds them all when
//! it may raise its descriptor limit that far (root with CAP_SYS_RESOURCE, up to
//! fs.nr_open); otherwise, as many processes in the cgroup as the hard limit takes, since to
//! the daemon it is the same: open files of one container. Measured for each daemon that
//! gives readers a view of their own (lxcfs and lxcfs-rs): its RSS while they are held against
//! its idle RSS, and whether another container's reads stay whole and its own meanwhile (a
//! reader in the benchmark's cgroup reads proc/cpuinfo and proc/meminfo to EOF: its view,
//! ending in a newline), with their reads/s before and during.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{ForkResult, Pid, fork};
use serde::{Deserialize, Serialize};

use crate::args::Target;
use crate::bench::{Bench, interrupted, io, verify};
use crate::cgroup::{self, BenchCgroup};
use crate::reader::{child, now_ns, reap};
use crate::readers::{self, Spec, pipe_pair};
use crate::sample;

/// The file the hostile reader holds open.
const HELD: &str = "proc/cpuinfo";

/// Descriptors a hostile process keeps free of the held ones: its standard streams, pipes.
const SPARE_FDS: u64 = 64;

/// What the other container reads while they are held.
const VICTIM_FILES: [&str; 2] = ["proc/cpuinfo", "proc/meminfo"];

/// How long the descriptors may take to open and read: far beyond 100,000 round trips on a
/// slow machine, so only a hung mount runs into it.
const OPEN_GRACE: Duration = Duration::from_secs(20 * 60);

/// How long a daemon may take to settle after the descriptors are closed (their releases
/// reach it asynchronously).
const SETTLE: Duration = Duration::from_secs(30);

/// What the hostile reader did to one daemon.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostileResult {
    /// The target.
    pub target: String,
    /// Its serving process.
    pub pid: i32,
    /// The file held.
    pub file: String,
    /// Descriptors the reader was to hold.
    pub fds_wanted: usize,
    /// Descriptors it held (each opened, 1 byte read).
    pub fds_held: usize,
    /// The processes that held them.
    pub processes: usize,
    /// Why it held fewer, if it did.
    pub open_error: Option<String>,
    /// Seconds the opens and reads took.
    pub open_s: f64,
    /// The daemon's VmRSS before, in MiB.
    pub idle_rss_mib: f64,
    /// Its VmRSS while they were held, in MiB.
    pub held_rss_mib: f64,
    /// `held_rss_mib - idle_rss_mib`.
    pub above_idle_mib: f64,
    /// Its VmRSS once they were closed and it settled, in MiB.
    pub released_rss_mib: f64,
    /// The other container's reads.
    pub victim: Vec<VictimRead>,
}

/// Another container's reads of one file before and while the descriptors were held.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VictimRead {
    /// The file.
    pub file: String,
    /// Reads/s of one reader before.
    pub before_reads_per_s: f64,
    /// Reads/s of one reader while they were held.
    pub during_reads_per_s: f64,
    /// Whether every read while they were held was complete (to EOF, ending in a newline)
    /// and the reader's own view.
    pub content_ok: bool,
    /// What was wrong, if anything.
    pub problem: Option<String>,
}

/// Runs the hostile reader against each daemon of `bench`'s targets that gives readers a
/// view of their own, in a cgroup named after the benchmark's `name`.
pub fn run(bench: &Bench, name: &str, out: &mut dyn Write) -> Result<Vec<HostileResult>, String> {
    let n = bench.args.hostile_fds;
    let cg = BenchCgroup::create(&format!("{name}-hostile"), &cgroup::unlimited()?)?;
    writeln!(
        out,
        "# hostile: cgroup {name}-hostile opens {n} descriptors of {HELD} on each daemon, \
         reads 1 byte from each and holds them; meanwhile one reader in {name} reads {} \
         (reads/s before → during)",
        VICTIM_FILES.join(" and ")
    )
    .map_err(io)?;
    let mut results = Vec::new();
    for t in (bench.args.targets.iter()).filter(|t| t.daemon.is_some() && t.fixed.is_none()) {
        let r = one(bench, &cg, t, n)?;
        let victim: Vec<String> = (r.victim.iter())
            .map(|v| {
                format!(
                    "{} {:.0} → {:.0}/s{}",
                    v.file,
                    v.before_reads_per_s,
                    v.during_reads_per_s,
                    v.problem
                        .as_ref()
                        .map_or(String::new(), |p| format!(" WRONG: {p}"))
                )
            })
            .collect();
        writeln!(
            out,
            "# hostile: {}: {} of {n} held by {} process(es){} in {:.1} s; RSS {:.1} → {:.1} MiB \
             (+{:.1}), {:.1} after closing; {}",
            t.name,
            r.fds_held,
            r.processes,
            r.open_error
                .as_ref()
                .map_or(String::new(), |e| format!(" (then: {e})")),
            r.open_s,
            r.idle_rss_mib,
            r.held_rss_mib,
            r.above_idle_mib,
            r.released_rss_mib,
            victim.join(", ")
        )
        .map_err(io)?;
        results.push(r);
    }
    Ok(results)
}

/// The hostile reader against one daemon.
fn one(bench: &Bench, cg: &BenchCgroup, t: &Target, n: usize) -> Result<HostileResult, String> {
    let pid = t.daemon.expect("a daemon");
    let mut before = Vec::new();
    for file in VICTIM_FILES {
        before.push(reads_per_s(&bench.measure(t, file, 1)?));
    }
    let idle = sample::rss(pid)?;
    let t0 = Instant::now();
    let mut holders: Vec<Hostile> = Vec::new();
    let (mut held, mut open_error) = (0, None);
    // Another process while the last one held all it could, until all are held.
    while held < n && open_error.is_none() {
        let want = n - held;
        holders.push(Hostile::start(cg, &t.path(HELD), want)?);
        let (got, error) = holders.last_mut().expect("one").wait_held()?;
        held += got;
        open_error = error.or_else(|| (got == 0).then(|| "a process could hold none".into()));
    }
    let open_s = t0.elapsed().as_secs_f64();
    let held_rss = sample::rss(pid)?;
    let mut victim = Vec::new();
    for (file, before) in VICTIM_FILES.into_iter().zip(before) {
        victim.push(victim_read(bench, t, file, before)?);
    }
    for h in &mut holders {
        h.release();
    }
    let processes = holders.len();
    drop(holders);
    let released = settle(pid)?;
    Ok(HostileResult {
        target: t.name.clone(),
        pid,
        file: HELD.into(),
        fds_wanted: n,
        fds_held: held,
        processes,
        open_error,
        open_s,
        idle_rss_mib: mib(idle),
        held_rss_mib: mib(held_rss),
        above_idle_mib: mib(held_rss) - mib(idle),
        released_rss_mib: mib(released),
        victim,
    })
}

/// One reader in the benchmark's cgroup reading `file` of `t` for a window while the
/// descriptors are held: its reads/s, and whether what it read was whole and its own.
fn victim_read(bench: &Bench, t: &Target, file: &str, before: f64) -> Result<VictimRead, String> {
    let spec = Spec {
        path: &t.path(file),
        readers: 1,
        warmup: bench.args.warmup(),
        window: bench.args.window(),
        daemon: t.daemon,
    };
    let outcome = readers::run(bench.cg, &spec)?;
    let mut problem = verify(bench.expected, t, file, &outcome).err();
    if problem.is_none() && outcome.contents.iter().any(|c| !c.ends_with(b"\n")) {
        problem = Some(format!("{file} did not end in a newline: cut short"));
    }
    if problem.is_none() && outcome.errors > 0 {
        problem = Some(format!(
            "{} of {} reads failed, the first with: {}",
            outcome.errors,
            outcome.errors + outcome.reads,
            outcome.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok(VictimRead {
        file: file.into(),
        before_reads_per_s: before,
        during_reads_per_s: reads_per_s(&outcome),
        content_ok: problem.is_none(),
        problem,
    })
}

fn reads_per_s(o: &readers::Outcome) -> f64 {
    o.reads as f64 / o.window.as_secs_f64()
}

/// The daemon's RSS once it stops changing (the releases of the closed descriptors reach it
/// after the close), or after [`SETTLE`].
fn settle(pid: i32) -> Result<u64, String> {
    let end = Instant::now() + SETTLE;
    let mut last = sample::rss(pid)?;
    while Instant::now() < end && !interrupted() {
        sleep(Duration::from_secs(1));
        let now = sample::rss(pid)?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

/// The hostile process: killed by pid and reaped when dropped, if it has not been.
struct Hostile {
    pid: Pid,
    /// Its report: how many it holds, then why no more.
    report: File,
    /// One byte on it (or its EOF) makes the process close everything and exit.
    release: Option<OwnedFd>,
    reaped: bool,
}

impl Hostile {
    /// Forks the process, which joins `cg` and opens `path` `n` times.
    fn start(cg: &BenchCgroup, path: &Path, n: usize) -> Result<Hostile, String> {
        let (report_r, report_w) = pipe_pair()?;
        let (release_r, release_w) = pipe_pair()?;
        let parent_only = [report_r.as_raw_fd(), release_w.as_raw_fd()];
        // SAFETY: the benchmark has one thread; the child ends in `_exit` (`child`).
        let pid = match unsafe { fork() } {
            Ok(ForkResult::Child) => child(|| hold(cg, path, n, parent_only, report_w, release_r)),
            Ok(ForkResult::Parent { child }) => child,
            Err(e) => return Err(format!("fork: {e}")),
        };
        drop((report_w, release_r));
        fcntl(&report_r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| format!("making a pipe non-blocking: {e}"))?;
        Ok(Hostile {
            pid,
            report: File::from(report_r),
            release: Some(release_w),
            reaped: false,
        })
    }

    /// Waits for the process to hold its descriptors; returns how many, and why no more.
    fn wait_held(&mut self) -> Result<(usize, Option<String>), String> {
        let deadline = now_ns() + OPEN_GRACE.as_nanos() as u64;
        let mut text = Vec::new();
        let mut chunk = [0u8; 4096];
        // The report is one line, then the process waits: a newline ends it.
        while !text.contains(&b'\n') {
            match self.report.read(&mut chunk) {
                Ok(0) => return Err("the hostile reader died before reporting; see above".into()),
                Ok(k) => text.extend_from_slice(&chunk[..k]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    if interrupted() {
                        return Err("interrupted".into());
                    }
                    if now_ns() > deadline {
                        return Err(format!(
                            "the hostile reader did not hold its descriptors within {} s: is \
                             the mount hung?",
                            OPEN_GRACE.as_secs()
                        ));
                    }
                    sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(format!("reading the hostile reader's report: {e}")),
            }
        }
        let line = String::from_utf8_lossy(&text);
        let (count, error) = line
            .trim_end()
            .split_once(' ')
            .unwrap_or((line.trim_end(), ""));
        let held = count
            .parse()
            .map_err(|_| format!("the hostile reader's report is garbled: {line:?}"))?;
        Ok((held, (!error.is_empty()).then(|| error.to_string())))
    }

    /// Tells the process to close everything and exit, and reaps it.
    fn release(&mut self) {
        if let Some(fd) = self.release.take() {
            let _ = nix::unistd::write(&fd, b"x");
        }
        let _ = reap(self.pid);
        self.reaped = true;
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = reap(self.pid);
        }
    }
}

/// A hostile process: joins `cg`, raises its descriptor limit as far as it may, opens `path`
/// up to `n` times reading 1 byte from each (fewer when its limit stops it, which is no
/// error: the next process goes on), reports `HELD [ERROR]` and holds them until released.
fn hold(
    cg: &BenchCgroup,
    path: &Path,
    n: usize,
    parent_only: [i32; 2],
    report: OwnedFd,
    release: OwnedFd,
) -> i32 {
    for fd in parent_only {
        // SAFETY: this process's copies of the ends only the benchmark may hold, so that
        // the release pipe's EOF (the benchmark gone) reaches this process.
        unsafe { nix::libc::close(fd) };
    }
    let mut report = File::from(report);
    for procs in cg.procs_files() {
        if let Err(e) = std::fs::write(&procs, "0") {
            let _ = writeln!(report, "0 joining {}: {e}", procs.display());
            return 2;
        }
    }
    // Room for the held ones and the few every process has: root with CAP_SYS_RESOURCE may
    // raise the hard limit up to fs.nr_open; without it, the soft limit goes up to the hard.
    let want = n as u64 + SPARE_FDS;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    let limit = if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        want
    } else if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        0
    };
    let room = (limit.saturating_sub(SPARE_FDS) as usize).min(n);
    let mut error = (room == 0).then(|| format!("RLIMIT_NOFILE: cannot raise it to {want}"));
    let mut held = Vec::with_capacity(room);
    let mut byte = [0u8; 1];
    while error.is_none() && held.len() < room && !interrupted() {
        match File::open(path).and_then(|mut f| f.read(&mut byte).map(|_| f)) {
            Ok(f) => held.push(f),
            Err(e) => error = Some(format!("descriptor {}: {e}", held.len() + 1)),
        }
    }
    let _ = writeln!(report, "{} {}", held.len(), error.unwrap_or_default());
    let mut release = File::from(release);
    let _ = release.read(&mut byte);
    0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}
