//! Scale mode (`--scale N`): a host with N other containers. It creates N cgroups (under one
//! parent of the benchmark's, in every hierarchy the readers' cgroup uses), each with limits
//! of its own and one live task, then
//! - reads every file once through each daemon from a reader in each of them, the init of
//!   a pid namespace of its own as a container's first process is, and records each
//!   daemon's RSS before and after ("RSS after readers from N distinct cgroups");
//! - measures the daemons again, with the same instances and readers as the table ("cost
//!   per read with N other cgroups against none": the `scaled` rows against the table's).
//!
//! Everything is removed at the end: the tasks killed by pid and reaped, then the cgroups.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, Pid, fork};
use serde::{Deserialize, Serialize};

use crate::args::Target;
use crate::bench::{Bench, interrupted, io};
use crate::cgroup::{self, BenchCgroup, Limits};
use crate::reader::{child, reap};
use crate::readers::{await_ready, pipe_pair};
use crate::report::{self, Row};
use crate::sample;

/// The smallest memory limit of a scale cgroup; each gets its own above it (up to 255 MiB
/// more), so that no two neighbours show the same MemTotal.
const BASE_LIMIT: u64 = 64 << 20;

/// A scale cgroup's CFS quota, in CPUs: what the daemons' CPU views read.
const QUOTA: f64 = 0.5;

/// What scale mode measured, beside its `scaled` rows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScaleResult {
    /// How many cgroups, each with one live task.
    pub cgroups: usize,
    /// Seconds it took to create them and start their tasks.
    pub setup_s: f64,
    /// Seconds the readers of all the cgroups took.
    pub sweep_s: f64,
    /// Each daemon's memory before and after those readers.
    pub rss: Vec<SweepRss>,
}

/// One daemon's memory around the readers of the N cgroups.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SweepRss {
    /// The target.
    pub target: String,
    /// Its serving process.
    pub pid: i32,
    /// VmRSS before, in MiB.
    pub idle_rss_mib: f64,
    /// VmRSS after every cgroup's reader read every file once, in MiB.
    pub after_rss_mib: f64,
    /// Readers whose reads failed or showed another cgroup's MemTotal.
    pub failures: usize,
    /// What the first of them saw.
    pub first_failure: Option<String>,
}

/// Runs scale mode with `bench`'s flags, the cgroups named after the benchmark's `name`;
/// returns its result and its `scaled` rows.
pub fn run(
    bench: &Bench,
    name: &str,
    out: &mut dyn Write,
) -> Result<(ScaleResult, Vec<Row>), String> {
    let n = bench.args.scale;
    let parent = format!("{name}-scale");
    writeln!(
        out,
        "# scale: {n} cgroups under {parent}, each with one live task, a memory limit of its own \
         and a {QUOTA}-CPU quota"
    )
    .map_err(io)?;
    let t0 = Instant::now();
    let scale = Scale::create(&parent, n)?;
    let setup_s = t0.elapsed().as_secs_f64();
    // The daemons that give each cgroup its own view; the floor has none to give.
    let viewers: Vec<&Target> = (bench.args.targets.iter())
        .filter(|t| t.daemon.is_some() && t.fixed.is_none())
        .collect();
    let t0 = Instant::now();
    let rss = scale.sweep(&viewers, &bench.args.files)?;
    let sweep_s = t0.elapsed().as_secs_f64();
    writeln!(
        out,
        "# scale: created in {setup_s:.1} s; a reader in each cgroup read every file once through \
         each daemon in {sweep_s:.1} s"
    )
    .map_err(io)?;
    for r in &rss {
        writeln!(
            out,
            "# scale: {} RSS {:.1} → {:.1} MiB after the readers of {n} cgroups{}",
            r.target,
            r.idle_rss_mib,
            r.after_rss_mib,
            match &r.first_failure {
                Some(e) => format!(" ({} readers failed, the first: {e})", r.failures),
                None => String::new(),
            }
        )
        .map_err(io)?;
    }
    writeln!(
        out,
        "# scale: every daemon again with the {n} cgroups and their tasks present (phase scaled)"
    )
    .map_err(io)?;
    report::columns(out).map_err(io)?;
    let daemons: Vec<Target> = (bench.args.targets.iter())
        .filter(|t| t.daemon.is_some())
        .cloned()
        .collect();
    let rows = bench.table(out, "scaled", &daemons)?;
    drop(scale);
    let result = ScaleResult {
        cgroups: n,
        setup_s,
        sweep_s,
        rss,
    };
    Ok((result, rows))
}

/// The N cgroups and their tasks; dropping it kills the tasks (by pid), reaps them and
/// removes the cgroups.
struct Scale {
    /// One live task per cgroup, forked by us, blocked on `hold`.
    tasks: Vec<Pid>,
    /// The write end of the pipe the tasks read: its EOF ends them should we die first.
    hold: Option<OwnedFd>,
    /// The cgroups and their memory limits; dropped (removed) before their parent, as
    /// fields drop in order.
    cgroups: Vec<(BenchCgroup, u64)>,
    /// Their parent.
    _parent: BenchCgroup,
}

impl Scale {
    /// Creates `parent` and `n` cgroups in it, each with a task.
    fn create(parent: &str, n: usize) -> Result<Scale, String> {
        let open = cgroup::unlimited()?;
        let parent_cg = BenchCgroup::create(parent, &open)?;
        let (hold_r, hold_w) = pipe_pair()?;
        let (ready_r, ready_w) = pipe_pair()?;
        let mut scale = Scale {
            tasks: Vec::with_capacity(n),
            hold: Some(hold_w),
            cgroups: Vec::with_capacity(n),
            _parent: parent_cg,
        };
        for i in 0..n {
            if interrupted() {
                return Err("interrupted".into());
            }
            let limits = Limits {
                mem: BASE_LIMIT + ((i as u64 % 256) << 20),
                cpus: open.cpus.clone(),
                quota: QUOTA,
            };
            let cg = BenchCgroup::create(&format!("{parent}/c{i:05}"), &limits)?;
            let hold_w = scale.hold.as_ref().expect("held").as_raw_fd();
            // SAFETY: the benchmark has one thread; the child ends in `_exit` (`child`).
            match unsafe { fork() } {
                Ok(ForkResult::Child) => child(|| task(&cg, &hold_r, hold_w, &ready_w)),
                Ok(ForkResult::Parent { child }) => scale.tasks.push(child),
                Err(e) => return Err(format!("fork: {e}")),
            }
            let limit = cg.memory_limit()?;
            scale.cgroups.push((cg, limit));
        }
        drop((hold_r, ready_w));
        await_ready(ready_r, n, "scale tasks")?;
        Ok(scale)
    }

    /// A reader in each cgroup reads each of `files` once through each of `targets`, and
    /// each daemon's RSS is taken before and after.
    fn sweep(&self, targets: &[&Target], files: &[String]) -> Result<Vec<SweepRss>, String> {
        let mut rss = Vec::new();
        for t in targets {
            let pid = t.daemon.expect("a daemon");
            rss.push(SweepRss {
                target: t.name.clone(),
                pid,
                idle_rss_mib: mib(sample::rss(pid)?),
                ..SweepRss::default()
            });
        }
        for (cg, limit) in &self.cgroups {
            if interrupted() {
                return Err("interrupted".into());
            }
            let codes = sweep_reader(cg, *limit, targets, files)?;
            for (r, code) in rss.iter_mut().zip(codes) {
                if code != 0 {
                    r.failures += 1;
                    r.first_failure
                        .get_or_insert_with(|| failure(code).to_string());
                }
            }
        }
        for r in &mut rss {
            r.after_rss_mib = mib(sample::rss(r.pid)?);
        }
        Ok(rss)
    }
}

impl Drop for Scale {
    fn drop(&mut self) {
        drop(self.hold.take());
        for pid in &self.tasks {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        for pid in &self.tasks {
            let _ = reap(*pid);
        }
    }
}

/// A scale cgroup's task: joins `cg`, says so, and waits for EOF on the hold pipe (the
/// benchmark closing it, or dying). It touches nearly nothing, so N of them cost little.
fn task(cg: &BenchCgroup, hold: &OwnedFd, hold_w: i32, ready: &OwnedFd) -> i32 {
    // SAFETY: this process's copy of the write end; only the benchmark may hold it, so that
    // its EOF reaches the tasks.
    unsafe { nix::libc::close(hold_w) };
    for procs in cg.procs_files() {
        if std::fs::write(&procs, "0").is_err() {
            return 2;
        }
    }
    if nix::unistd::write(ready, b"r").is_err() {
        return 3;
    }
    // SAFETY: this process's copy, not used again: the benchmark may then see EOF on the
    // ready pipe should a task die before saying it is ready.
    unsafe { nix::libc::close(ready.as_raw_fd()) };
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(hold, &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return 0,
        }
    }
}

/// Forks one reader, the init of a new pid namespace, that joins `cg` and reads each of
/// `files` through each of `targets`; returns an exit code per target (0: every read
/// complete, and MemTotal the cgroup's `limit`).
fn sweep_reader(
    cg: &BenchCgroup,
    limit: u64,
    targets: &[&Target],
    files: &[String],
) -> Result<Vec<i32>, String> {
    let mut codes = Vec::new();
    for t in targets {
        // SAFETY: one thread; the child never returns into the benchmark (`child`).
        let starter = match unsafe { fork() } {
            Ok(ForkResult::Child) => child(|| sweep_starter(cg, limit, &t.root, files)),
            Ok(ForkResult::Parent { child }) => child,
            Err(e) => return Err(format!("fork: {e}")),
        };
        codes.push(match reap(starter) {
            Ok(WaitStatus::Exited(_, code)) => code,
            other => return Err(format!("a scale reader: {other:?}")),
        });
    }
    Ok(codes)
}

/// The reader's starter: a new pid namespace, the reader its init.
fn sweep_starter(cg: &BenchCgroup, limit: u64, root: &Path, files: &[String]) -> i32 {
    if unshare(CloneFlags::CLONE_NEWPID).is_err() {
        return 20;
    }
    // SAFETY: as above.
    let pid = match unsafe { fork() } {
        Ok(ForkResult::Child) => child(|| sweep_read(cg, limit, root, files)),
        Ok(ForkResult::Parent { child }) => child,
        Err(_) => return 20,
    };
    match reap(pid) {
        Ok(WaitStatus::Exited(_, code)) => code,
        _ => 21,
    }
}

/// The reader itself: joins the cgroup, reads every file once.
fn sweep_read(cg: &BenchCgroup, limit: u64, root: &Path, files: &[String]) -> i32 {
    for procs in cg.procs_files() {
        if std::fs::write(&procs, "0").is_err() {
            return 10;
        }
    }
    for file in files {
        let Ok(content) = std::fs::read(root.join(file)) else {
            return 11;
        };
        if content.is_empty() {
            return 12;
        }
        if file == "proc/meminfo" {
            let text = String::from_utf8_lossy(&content);
            if crate::check::mem_total_kb(&text) != Some(limit / 1024) {
                return 13;
            }
        }
    }
    0
}

/// What a scale reader's exit code means.
fn failure(code: i32) -> &'static str {
    match code {
        10 => "could not join its cgroup",
        11 => "a read failed",
        12 => "a file was empty",
        13 => "proc/meminfo did not show its cgroup's memory limit",
        20 | 21 => "could not start in a pid namespace of its own",
        _ => "died",
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}
