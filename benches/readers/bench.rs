//! The benchmark itself: the readers' cgroup, the content checks, the rounds and the table,
//! then the scale and hostile measurements, the results written and the goals.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::args::{Args, Target};
use crate::cgroup::{BenchCgroup, Limits};
use crate::check::{self, Expected};
use crate::readers::{self, Outcome, Spec};
use crate::report::{self, Row};
use crate::results::{Phase, Results};
use crate::sleepers::Sleepers;
use crate::{goals, hostile, scale};

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

/// Runs the phase of the benchmark `args` describes, printing the table to `out` as it
/// goes: the table of every file, reader count and target; in a run's first phase, the scale
/// and hostile measurements when asked for; then the results of every phase so far are
/// written (JSON, chart) and, after the last phase, the goals printed. Returns them.
pub fn run(args: &Args, out: &mut dyn Write) -> Result<Results, String> {
    args.validate()?;
    if !nix::unistd::geteuid().is_root() {
        return Err("run as root: the benchmark creates cgroups".into());
    }
    let mut results = Results::start(args)?;
    let first_phase = results.phases.is_empty();
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
    results.phases.push(Phase::of(args));
    let bench = Bench {
        cg: &cg,
        expected: &expected,
        args,
    };
    let rows = bench.table(out, &args.phase, &args.targets)?;
    results.rows.extend(rows);
    checkpoint(&mut results, args)?;
    if first_phase && args.scale > 0 {
        let (scale, rows) = scale::run(&bench, &name, out)?;
        results.scale = Some(scale);
        results.rows.extend(rows);
        checkpoint(&mut results, args)?;
    }
    if first_phase && !args.no_hostile {
        results.hostile = hostile::run(&bench, &name, out)?;
        checkpoint(&mut results, args)?;
    }
    results.goals = goals::evaluate(&results);
    results.save_store(args)?;
    let (json, png) = results.write(args)?;
    if !args.more {
        goals::print(out, &results.goals).map_err(io)?;
        writeln!(out, "# JSON: {}", json.display()).map_err(io)?;
        match png {
            Ok(path) => writeln!(out, "# chart: {}", path.display()),
            Err(e) => writeln!(out, "# chart: not drawn: {e}"),
        }
        .map_err(io)?;
    }
    Ok(results)
}

/// What every measurement of one phase shares: the readers' cgroup, what a reader must see
/// in it, and the flags.
pub struct Bench<'a> {
    /// The readers' cgroup.
    pub cg: &'a BenchCgroup,
    /// What a reader in it must read.
    pub expected: &'a Expected,
    /// The flags.
    pub args: &'a Args,
}

impl Bench<'_> {
    /// The table of `targets` in `phase`: every file and reader count, the targets taking
    /// turns within each round, the median of the rounds printed as soon as it is known.
    pub fn table(
        &self,
        out: &mut dyn Write,
        phase: &str,
        targets: &[Target],
    ) -> Result<Vec<Row>, String> {
        let args = self.args;
        let mut rows = Vec::new();
        for file in &args.files {
            for &n in &args.readers {
                let mut runs: Vec<Vec<Outcome>> = targets.iter().map(|_| Vec::new()).collect();
                for _ in 0..args.rounds {
                    for (t, target_runs) in targets.iter().zip(&mut runs) {
                        target_runs.push(self.measure(t, file, n)?);
                    }
                }
                let summary = report::summarize(phase, file, n, targets, &runs);
                for row in &summary {
                    report::row(out, row).map_err(io)?;
                }
                rows.extend(summary);
            }
        }
        Ok(rows)
    }

    /// One timed run of `n` readers on `file` of `t`, its readers' first reads checked too
    /// (a mount can break between runs).
    pub fn measure(&self, t: &Target, file: &str, n: usize) -> Result<Outcome, String> {
        let spec = Spec {
            path: &t.path(file),
            readers: n,
            warmup: self.args.warmup(),
            window: self.args.window(),
            daemon: t.daemon,
        };
        let outcome = readers::run(self.cg, &spec)?;
        verify(self.expected, t, file, &outcome)?;
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
}

/// Refuses a target that shows a reader in the cgroup the wrong content: MemTotal (always,
/// since the memory limit is what tells a daemon's view from the host's) and each file; for a
/// target of fixed content, the size of each.
/// Writes what was measured so far (the store for the next phase, the JSON and the chart),
/// so that a run cut short by a later failure keeps it.
fn checkpoint(results: &mut Results, args: &Args) -> Result<(), String> {
    results.goals = goals::evaluate(results);
    results.save_store(args)?;
    results.write(args).map(|_| ())
}

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

/// Refuses what a reader in the cgroup read from `file` of `t` unless it is what `t` must
/// show there (the cgroup's view, or its fixed size).
pub fn verify(
    expected: &Expected,
    t: &Target,
    file: &str,
    outcome: &Outcome,
) -> Result<(), String> {
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

/// A failed write of the output, as the benchmark's error.
pub fn io(e: std::io::Error) -> String {
    format!("writing the table: {e}")
}
