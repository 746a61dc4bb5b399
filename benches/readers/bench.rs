//! The benchmark itself: the readers' cgroup, the content checks, the rounds and the table.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::args::{Args, Target};
use crate::cgroup::{BenchCgroup, Limits};
use crate::check::{self, Expected};
use crate::readers::{self, Outcome, Spec};
use crate::report::{self, Row};
use crate::sleepers::Sleepers;

/// Set by SIGINT, SIGTERM or SIGHUP: the benchmark stops at its next wait and unwinds, so
/// the cgroup and the readers are removed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the benchmark was asked to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Turns SIGINT, SIGTERM and SIGHUP into [`interrupted`] (the readers inherit it). System
/// calls restart, so only the loops that poll the flag notice the signal.
pub fn stop_on_interrupt() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Runs the whole benchmark `args` describes, printing the table to `out` as it goes, and
/// returns its rows.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Vec<Row>, String> {
    args.validate()?;
    if !nix::unistd::geteuid().is_root() {
        return Err("run as root: the benchmark creates cgroups".into());
    }
    let limits = Limits {
        mem: args.mem,
        cpus: args.cpus.clone(),
        quota: args.quota,
    };
    let name = format!("lxcfs-rs-bench-{}", std::process::id());
    let cg = BenchCgroup::create(&name, &limits)?;
    // Dropped before the cgroup, which cannot go while they are in it.
    let _sleepers = match args.threads {
        0 => None,
        n => Some(Sleepers::start(&cg, n)?),
    };
    let expected = Expected::new(cg.memory_limit()?, &cg.cpus()?, limits.quota)?;
    for t in &args.targets {
        preflight(&cg, &expected, t, &args.files)?;
    }
    report::header(out, args, &name, &limits).map_err(io)?;
    let mut rows = Vec::new();
    for file in &args.files {
        for &n in &args.readers {
            let mut runs: Vec<Vec<Outcome>> = args.targets.iter().map(|_| Vec::new()).collect();
            for _ in 0..args.rounds {
                for (t, target_runs) in args.targets.iter().zip(&mut runs) {
                    target_runs.push(measure(&cg, &expected, t, file, n, args)?);
                }
            }
            let summary = report::summarize(file, n, &args.targets, &runs);
            for row in &summary {
                report::row(out, row).map_err(io)?;
            }
            rows.extend(summary);
        }
    }
    Ok(rows)
}

/// Refuses a target that shows a reader in the cgroup the wrong content: MemTotal (always,
/// since the memory limit is what tells a daemon's view from the host's) and each file; for a
/// target of fixed content, the size of each.
fn preflight(
    cg: &BenchCgroup,
    expected: &Expected,
    t: &Target,
    files: &[String],
) -> Result<(), String> {
    let mut all = vec!["proc/meminfo".to_string()];
    all.extend(files.iter().filter(|f| *f != "proc/meminfo").cloned());
    for file in &all {
        let spec = Spec {
            path: &t.path(file),
            readers: 1,
            warmup: Default::default(),
            window: Default::default(),
            daemon: None,
        };
        let outcome = readers::run(cg, &spec)?;
        verify(expected, t, file, &outcome)?;
    }
    Ok(())
}

/// One timed run of `n` readers on `file` of `t`, its readers' first reads checked too (a
/// mount can break between runs).
fn measure(
    cg: &BenchCgroup,
    expected: &Expected,
    t: &Target,
    file: &str,
    n: usize,
    args: &Args,
) -> Result<Outcome, String> {
    let spec = Spec {
        path: &t.path(file),
        readers: n,
        warmup: args.warmup(),
        window: args.window(),
        daemon: t.daemon,
    };
    let outcome = readers::run(cg, &spec)?;
    verify(expected, t, file, &outcome)?;
    if outcome.errors > 0 {
        return Err(format!(
            "target {}: {} of {} reads of {file} failed, the first with: {}",
            t.name,
            outcome.errors,
            outcome.errors + outcome.reads,
            outcome.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok(outcome)
}

fn verify(expected: &Expected, t: &Target, file: &str, outcome: &Outcome) -> Result<(), String> {
    for content in &outcome.contents {
        let checked = match t.fixed {
            Some(size) => check::fixed(file, size, content),
            None => expected.check(file, t.daemon.is_some(), content),
        };
        checked.map_err(|e| {
            format!(
                "target {} ({}) is not fit to benchmark: a reader in the cgroup read {e}",
                t.name,
                t.root.display()
            )
        })?;
    }
    Ok(())
}

fn io(e: std::io::Error) -> String {
    format!("writing the table: {e}")
}
