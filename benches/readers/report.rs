//! The table: one row per file, reader count and target, each the median of its rounds.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::args::{Args, Target};
use crate::cgroup::Limits;
use crate::readers::Outcome;

/// One line of the table, and of the JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The phase it was measured in: `uring-off`, `uring-on` (scripts/bench's phases) or
    /// `scaled` (scale mode).
    pub phase: String,
    /// How requests reached the target: `kernel`, `/dev/fuse` or `io_uring`.
    pub transport: String,
    /// The file read.
    pub file: String,
    /// How many readers read it at once.
    pub readers: usize,
    /// The target's name.
    pub target: String,
    /// Completed reads per second, all readers together.
    pub reads_per_s: f64,
    /// Median latency of a read (open to close), in µs.
    pub p50_us: f64,
    /// 99th percentile latency, in µs.
    pub p99_us: f64,
    /// 99.9th percentile latency, in µs.
    pub p999_us: f64,
    /// The daemon's CPU time per 1000 reads, in ms, which is µs per read (`None` for the
    /// kernel).
    #[serde(rename = "cpu_us_per_read")]
    pub cpu_ms_per_1k: Option<f64>,
    /// The daemon's RSS after the last round, in MiB.
    pub rss_mib: Option<f64>,
    /// `reads_per_s` over that of the first daemon target.
    pub ratio: Option<f64>,
}

/// The lines above the table: what is compared, and how.
pub fn header(out: &mut dyn Write, args: &Args, cgroup: &str, limits: &Limits) -> io::Result<()> {
    let targets: Vec<String> = (args.targets.iter())
        .map(|t| {
            let via = format!("{}: {}", t.transport, t.transport_source);
            match (t.daemon, t.fixed) {
                (Some(pid), Some(size)) => format!(
                    "{}={} (daemon pid {pid}, fixed {size}-byte files, {via})",
                    t.name,
                    t.root.display()
                ),
                (Some(pid), None) => {
                    format!("{}={} (daemon pid {pid}, {via})", t.name, t.root.display())
                }
                (None, _) => format!("{}={} (the kernel)", t.name, t.root.display()),
            }
        })
        .collect();
    let uring = crate::transport::enable_uring().map_or("not in this kernel".to_string(), |v| {
        format!("enable_uring={v}")
    });
    writeln!(out, "# phase {}: FUSE-over-io_uring {uring}", args.phase)?;
    writeln!(out, "# targets: {}", targets.join(", "))?;
    if args.threads > 0 {
        writeln!(
            out,
            "# {} sleeping threads held in the readers' cgroup",
            args.threads
        )?;
    }
    writeln!(
        out,
        "# readers: processes, each the init of its own pid namespace, in cgroup {cgroup} \
         (memory {} MiB, cpuset {}, quota {} CPU); warmup {} s, window {} s, {} round(s), \
         median shown; {} CPUs",
        limits.mem >> 20,
        limits.cpus,
        limits.quota,
        args.warmup,
        args.duration,
        args.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )?;
    columns(out)
}

/// The table's column names and rule.
pub fn columns(out: &mut dyn Write) -> io::Result<()> {
    let line = format!(
        "{:<30}{:>4} {:<8}{:<10}{:>11}{:>9}{:>9}{:>10}{:>11}{:>9}{:>8}",
        "file",
        "n",
        "target",
        "via",
        "reads/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "CPU ms/1k",
        "RSS MiB",
        "ratio"
    );
    writeln!(out, "{line}")?;
    writeln!(out, "{}", "-".repeat(line.chars().count()))?;
    out.flush()
}

/// One row, as soon as its file and reader count are done.
pub fn row(out: &mut dyn Write, r: &Row) -> io::Result<()> {
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    writeln!(
        out,
        "{:<30}{:>4} {:<8}{:<10}{:>11.0}{:>9.1}{:>9.1}{:>10.1}{:>11}{:>9}{:>8}",
        r.file,
        r.readers,
        r.target,
        if r.transport == "kernel" {
            "-"
        } else {
            &r.transport
        },
        r.reads_per_s,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        opt(r.cpu_ms_per_1k, 1),
        opt(r.rss_mib, 1),
        r.ratio.map_or("-".to_string(), |x| format!("×{x:.2}"))
    )?;
    out.flush()
}

/// The rows of one file and reader count in `phase`: `runs[i]` holds target `i`'s rounds.
pub fn summarize(
    phase: &str,
    file: &str,
    readers: usize,
    targets: &[Target],
    runs: &[Vec<Outcome>],
) -> Vec<Row> {
    let mut rows: Vec<Row> = targets
        .iter()
        .zip(runs)
        .map(|(t, rounds)| {
            let per_round =
                |f: &dyn Fn(&Outcome) -> Option<f64>| median(rounds.iter().filter_map(f).collect());
            let quantile = |q: f64| per_round(&|o| Some(o.latency.quantile(q)? / 1000.0));
            Row {
                phase: phase.to_string(),
                transport: t.transport.clone(),
                file: file.to_string(),
                readers,
                target: t.name.clone(),
                reads_per_s: per_round(&|o| Some(o.reads as f64 / o.window.as_secs_f64()))
                    .unwrap_or(0.0),
                p50_us: quantile(0.5).unwrap_or(0.0),
                p99_us: quantile(0.99).unwrap_or(0.0),
                p999_us: quantile(0.999).unwrap_or(0.0),
                cpu_ms_per_1k: per_round(&|o| {
                    let cpu = o.daemon_cpu?.as_secs_f64() * 1000.0;
                    Some(cpu / o.reads.max(1) as f64 * 1000.0)
                }),
                rss_mib: rounds
                    .last()
                    .and_then(|o| o.daemon_rss)
                    .map(|b| b as f64 / 1048576.0),
                ratio: None,
            }
        })
        .collect();
    let base = targets
        .iter()
        .position(|t| t.daemon.is_some())
        .map(|i| rows[i].reads_per_s)
        .filter(|b| *b > 0.0);
    if let Some(base) = base {
        for r in &mut rows {
            r.ratio = Some(r.reads_per_s / base);
        }
    }
    rows
}

/// The median (the mean of the middle two for an even count); `None` for no values.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}
