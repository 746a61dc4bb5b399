//! The goals of issue 14, each measured from a run's results: lxcfs-rs (the target named
//! `ours`) against the C lxcfs (`lxcfs`) and the floor (`floor`), per file and reader count,
//! with the worst and best of those and whether the worst meets the goal. A goal the run
//! did not measure (no io_uring, no scale mode, no hostile reader, a target missing) is
//! listed with the reason instead of a number.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::report::Row;
use crate::results::Results;

/// The target names scripts/bench gives: lxcfs-rs, the C lxcfs and the floor.
const OURS: &str = "ours";
const LXCFS: &str = "lxcfs";
const FLOOR: &str = "floor";

/// The first phase (enable_uring off) and the second (on): scripts/bench's names.
const URING_OFF: &str = "uring-off";
const URING_ON: &str = "uring-on";

/// One goal, as measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Goal {
    /// What is measured, e.g. `reads/s vs the C lxcfs, 8 readers`.
    pub goal: String,
    /// Where: the transport, or the scale or hostile setting.
    pub scope: String,
    /// The goal, e.g. `≥ 3×`.
    pub want: String,
    /// Every value measured.
    pub values: Vec<Measured>,
    /// The value furthest from the goal.
    pub worst: Option<Measured>,
    /// The value nearest to (or furthest past) it.
    pub best: Option<Measured>,
    /// Whether it is met (`None`: not measured).
    pub met: Option<bool>,
    /// Why it was not measured, or what else to know.
    pub note: Option<String>,
}

/// One measured value of a goal.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Measured {
    /// Which file and reader count (or which daemon, or `all files`).
    pub at: String,
    /// The ratio, or MiB.
    pub value: f64,
}

/// Which way a value must lie.
#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

impl Bound {
    fn ok(self, v: f64) -> bool {
        match self {
            Bound::AtLeast(b) => v >= b,
            Bound::AtMost(b) => v <= b,
        }
    }

    /// Orders values from worst to best.
    fn worse(self, a: f64, b: f64) -> std::cmp::Ordering {
        match self {
            Bound::AtLeast(_) => a.total_cmp(&b),
            Bound::AtMost(_) => b.total_cmp(&a),
        }
    }
}

/// A goal with `values` under `bound` (`want` says it in words); unmeasured, with `why`,
/// when there are none.
fn judged(
    goal: &str,
    scope: &str,
    want: &str,
    bound: Bound,
    values: Vec<Measured>,
    why: &str,
) -> Goal {
    let mut sorted = values.clone();
    sorted.sort_by(|a, b| bound.worse(a.value, b.value));
    Goal {
        goal: goal.into(),
        scope: scope.into(),
        want: want.into(),
        met: (!values.is_empty()).then(|| values.iter().all(|m| bound.ok(m.value))),
        worst: sorted.first().cloned(),
        best: sorted.last().cloned(),
        note: values.is_empty().then(|| why.to_string()),
        values,
    }
}

/// Every goal, from `r`.
pub fn evaluate(r: &Results) -> Vec<Goal> {
    let rows = &r.rows;
    let mut goals = Vec::new();
    // The io_uring scope counts only if lxcfs-rs served over io_uring in the second phase.
    let ours_uring = rows
        .iter()
        .any(|x| x.phase == URING_ON && x.target == OURS && x.transport == "io_uring");
    let uring_why = if !r.phases.iter().any(|p| p.name == URING_ON) {
        "not measured: no io_uring phase (--no-uring, or a kernel without FUSE-over-io_uring)"
    } else {
        "not measured: lxcfs-rs served over /dev/fuse with enable_uring=1"
    };
    let mut scopes = vec![(URING_OFF, "/dev/fuse")];
    if ours_uring {
        scopes.push((URING_ON, "io_uring"));
    }
    let ratio = |phase: &str, den: &str, readers: Option<usize>, f: fn(&Row) -> Option<f64>| {
        ratios(rows, phase, OURS, phase, den, readers, f)
    };
    for (phase, scope) in &scopes {
        let v = ratio(phase, LXCFS, Some(8), reads);
        goals.push(judged(
            "reads/s vs the C lxcfs, 8 readers",
            scope,
            "≥ 3×",
            Bound::AtLeast(3.0),
            v,
            "not measured: no lxcfs and ours rows with 8 readers",
        ));
    }
    let v = ratio(URING_OFF, LXCFS, Some(1), reads);
    goals.push(judged(
        "reads/s vs the C lxcfs, 1 reader",
        "/dev/fuse",
        "≥ 2×",
        Bound::AtLeast(2.0),
        v,
        "not measured: no lxcfs and ours rows with 1 reader",
    ));
    let v = if ours_uring {
        ratio(URING_ON, LXCFS, Some(1), reads)
    } else {
        Vec::new()
    };
    goals.push(judged(
        "reads/s vs the C lxcfs, 1 reader",
        "io_uring",
        "≥ 5×",
        Bound::AtLeast(5.0),
        v,
        uring_why,
    ));
    for (phase, scope) in &scopes {
        // The floor counts only on the transport lxcfs-rs used.
        let same = rows
            .iter()
            .any(|x| x.phase == *phase && x.target == FLOOR && x.transport == *scope);
        let v = if same {
            ratio(phase, FLOOR, None, reads)
        } else {
            Vec::new()
        };
        goals.push(judged(
            "reads/s vs the floor (same transport)",
            scope,
            "≥ 0.7×",
            Bound::AtLeast(0.7),
            v,
            "not measured: no floor rows on this transport",
        ));
    }
    for (phase, scope) in &scopes {
        let v = ratio(phase, LXCFS, None, cpu);
        goals.push(judged(
            "daemon CPU per read vs the C lxcfs",
            scope,
            "≤ 1/3",
            Bound::AtMost(1.0 / 3.0),
            v,
            "not measured: no lxcfs and ours rows",
        ));
    }
    for (phase, scope) in &scopes {
        let v = ratio(phase, LXCFS, Some(8), p99);
        goals.push(judged(
            "p99 latency, 8 readers, vs the C lxcfs",
            scope,
            "≤ 1/2",
            Bound::AtMost(0.5),
            v,
            "not measured: no lxcfs and ours rows with 8 readers",
        ));
    }
    goals.extend(scale_goals(r));
    goals.extend(hostile_goals(r));
    goals
}

/// Cost per read with N other cgroups against none, and RSS after their readers.
fn scale_goals(r: &Results) -> Vec<Goal> {
    let why = "not measured: give --scale 1000";
    let (scope, n) = match &r.scale {
        Some(s) => (format!("{} cgroups", s.cgroups), s.cgroups.to_string()),
        None => ("scale mode".to_string(), "N".to_string()),
    };
    let rows = &r.rows;
    let v = ratios(rows, "scaled", OURS, URING_OFF, OURS, None, cpu);
    let cpu_goal = judged(
        &format!("CPU per read with {n} other cgroups vs none"),
        &scope,
        "≤ 1.1×",
        Bound::AtMost(1.1),
        v,
        why,
    );
    let v = ratios(rows, "scaled", OURS, URING_OFF, OURS, None, reads);
    let reads_goal = judged(
        &format!("reads/s with {n} other cgroups vs none"),
        &scope,
        "≥ 0.9×",
        Bound::AtLeast(0.9),
        v,
        why,
    );
    let mut v = Vec::new();
    if let Some(s) = &r.scale {
        let after = |t: &str| {
            s.rss
                .iter()
                .find(|x| x.target == t)
                .map(|x| x.after_rss_mib)
        };
        if let (Some(ours), Some(lxcfs)) = (after(OURS), after(LXCFS)) {
            v.push(Measured {
                at: format!("{ours:.1} / {lxcfs:.1} MiB"),
                value: ours / lxcfs,
            });
        }
    }
    let mut rss_goal = judged(
        &format!("RSS after readers from {n} cgroups vs the C lxcfs's"),
        &scope,
        "≤ 2×",
        Bound::AtMost(2.0),
        v,
        if r.scale.is_some() {
            "not measured: no lxcfs and ours in scale mode"
        } else {
            why
        },
    );
    let failed: usize = (r.scale.iter())
        .flat_map(|s| &s.rss)
        .filter(|x| x.target == OURS)
        .map(|x| x.failures)
        .sum();
    if failed > 0 {
        rss_goal.met = Some(false);
        rss_goal.note = Some(format!("{failed} readers of the cgroups failed"));
    }
    vec![cpu_goal, reads_goal, rss_goal]
}

/// RSS above idle while the hostile reader holds its descriptors, and the other container's
/// reads meanwhile.
fn hostile_goals(r: &Results) -> Vec<Goal> {
    let why = "not measured: --no-hostile";
    let ours = r.hostile.iter().find(|h| h.target == OURS);
    let scope = ours.map_or("hostile reader".to_string(), |h| {
        format!("{} fds of {}", h.fds_wanted, h.file)
    });
    let v: Vec<Measured> = (ours.iter())
        .map(|h| Measured {
            at: format!("{:.1} → {:.1} MiB", h.idle_rss_mib, h.held_rss_mib),
            value: h.above_idle_mib,
        })
        .collect();
    let mut memory = judged(
        "RSS above idle, descriptors held (MiB)",
        &scope,
        "≤ 64",
        Bound::AtMost(64.0),
        v,
        why,
    );
    if let Some(h) = ours.filter(|h| h.fds_held < h.fds_wanted) {
        memory.met = Some(false);
        memory.note = Some(format!(
            "held only {} of {}: {}",
            h.fds_held,
            h.fds_wanted,
            h.open_error.as_deref().unwrap_or("?")
        ));
    }
    // Judged by content: throughput of one reader swings too much between runs on a small
    // machine to tell an effect from noise, so reads/s during/before is shown, not judged.
    let v: Vec<Measured> = (ours.iter())
        .flat_map(|h| &h.victim)
        .map(|v| Measured {
            at: v.file.clone(),
            value: v.during_reads_per_s / v.before_reads_per_s.max(1e-9),
        })
        .collect();
    let mut victim = judged(
        "others' reads while held: whole, own (reads/s during/before)",
        &scope,
        "whole",
        Bound::AtLeast(0.0),
        v,
        why,
    );
    if let Some(h) = ours {
        let wrong: Vec<String> = (h.victim.iter())
            .filter_map(|v| v.problem.clone())
            .collect();
        if !wrong.is_empty() {
            victim.met = Some(false);
            victim.note = Some(wrong.join("; "));
        }
    }
    vec![memory, victim]
}

/// `f(num row) / f(den row)` per file and reader count (all counts, or `readers`), where
/// `num` is target `num_target` in `num_phase` and `den` is `den_target` in `den_phase`.
fn ratios(
    rows: &[Row],
    num_phase: &str,
    num_target: &str,
    den_phase: &str,
    den_target: &str,
    readers: Option<usize>,
    f: fn(&Row) -> Option<f64>,
) -> Vec<Measured> {
    (rows.iter())
        .filter(|x| x.phase == num_phase && x.target == num_target)
        .filter(|x| readers.is_none_or(|n| x.readers == n))
        .filter_map(|num| {
            let den = rows.iter().find(|d| {
                d.phase == den_phase
                    && d.target == den_target
                    && d.file == num.file
                    && d.readers == num.readers
            })?;
            let (a, b) = (f(num)?, f(den)?);
            (b > 0.0).then(|| Measured {
                at: format!("{} n={}", short(&num.file), num.readers),
                value: a / b,
            })
        })
        .collect()
}

fn reads(r: &Row) -> Option<f64> {
    Some(r.reads_per_s)
}

fn cpu(r: &Row) -> Option<f64> {
    r.cpu_ms_per_1k
}

fn p99(r: &Row) -> Option<f64> {
    Some(r.p99_us)
}

/// A file's name short enough for a table cell: `sys/devices/system/cpu/online` →
/// `cpu/online`, `proc/meminfo` → `meminfo`.
pub fn short(file: &str) -> String {
    let parts: Vec<&str> = file.rsplit('/').take(2).collect();
    match parts.as_slice() {
        [last, "proc"] => last.to_string(),
        [last, dir] => format!("{dir}/{last}"),
        _ => file.to_string(),
    }
}

/// The goals as a table: one line each.
pub fn print(out: &mut dyn Write, goals: &[Goal]) -> io::Result<()> {
    writeln!(
        out,
        "# goals: lxcfs-rs (ours) against the C lxcfs and the floor; worst and best over the \
         files and reader counts"
    )?;
    let line = format!(
        "{:<62}{:<28}{:<8}{:<28}{:<28}{}",
        "goal", "scope", "want", "worst", "best", "result"
    );
    writeln!(out, "{line}")?;
    writeln!(out, "{}", "-".repeat(line.chars().count()))?;
    for g in goals {
        let cell = |m: &Option<Measured>| {
            m.as_ref()
                .map_or("-".to_string(), |m| format!("{:.2} {}", m.value, m.at))
        };
        let result = match g.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        let result = match (&g.note, g.met) {
            (Some(n), None) => n.clone(),
            (Some(n), Some(_)) => format!("{result} ({n})"),
            (None, _) => result.to_string(),
        };
        writeln!(
            out,
            "{:<62}{:<28}{:<8}{:<28}{:<28}{result}",
            g.goal,
            g.scope,
            g.want,
            cell(&g.worst),
            cell(&g.best)
        )?;
    }
    out.flush()
}
