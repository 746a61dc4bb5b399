//! `/proc/stat`: per-CPU time as the cgroup used its own CPUs, host counters otherwise
//! (`docs/semantics.md#proc-stat`).
//!
//! `top` and friends compute usage from the deltas of these columns, so each shown CPU's
//! columns must add up to the real elapsed time on that CPU: the cgroup's busy time plus
//! everything else counted as idle.

use std::collections::BTreeMap;

use super::text::split_ending;
use crate::model::{CpuTime, CpuUsage, TaskCounts};

/// Columns of a `cpu` line that partition the CPU's time: user nice system idle iowait irq
/// softirq steal. The `guest` and `guest_nice` columns after them are already counted in
/// user and nice, so adding them would count guest time twice.
const TIME_COLUMNS: usize = 8;

/// The fewest columns any kernel printed (user nice system idle), so user, system and idle
/// always have a place even in a truncated host line.
const MIN_COLUMNS: usize = 4;

const USER: usize = 0;
const SYSTEM: usize = 2;
const IDLE: usize = 3;

/// Renders `/proc/stat`.
///
/// `cpu` and `cpuN` lines for the CPUs in `shown` (host ids; ids the host has no line for
/// are skipped) renumbered `0..k-1`, in USER_HZ ticks; user and system from `usage` (per
/// CPU, or a total split evenly over the shown CPUs), idle = the host's time on that CPU
/// minus the cgroup's busy time (at least 0), other columns 0; `cpu` is their column-wise
/// sum. With `CpuUsage::Unknown` the host's lines of the shown CPUs are kept as they are.
/// The host's column count is kept. Other lines pass through, except `procs_running` /
/// `procs_blocked` which become the cgroup's counts when `tasks` is known.
///
/// The host text is returned unchanged when `shown` is empty or the host has no line for
/// any shown CPU, rather than serving a `/proc/stat` without CPUs.
pub fn render(
    host_stat: &str,
    shown: &[u32],
    usage: &CpuUsage,
    tasks: Option<TaskCounts>,
    user_hz: u64,
) -> String {
    let host = HostCpus::parse(host_stat);
    let rows: Vec<(u32, &[u64])> = shown
        .iter()
        .filter_map(|&id| host.per_cpu.get(&id).map(|cols| (id, cols.as_slice())))
        .collect();
    if rows.is_empty() {
        return host_stat.to_string();
    }
    let width = host.width.max(MIN_COLUMNS);
    let cpus = cgroup_rows(&rows, usage, user_hz, width);
    let mut out = String::with_capacity(host_stat.len());
    let mut cpu_lines_done = false;
    for line in host_stat.split_inclusive('\n') {
        let (body, ending) = split_ending(line);
        if cpu_id(body).is_some() {
            if !cpu_lines_done {
                push_cpu_lines(&mut out, &cpus);
                cpu_lines_done = true;
            }
            continue;
        }
        match task_count(body, tasks) {
            Some((key, n)) => {
                out.push_str(&format!("{key} {n}"));
                out.push_str(ending);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Nanoseconds to USER_HZ ticks, truncated as the kernel's `nsec_to_clock_t` does.
pub(crate) fn ns_to_ticks(ns: u64, user_hz: u64) -> u64 {
    let ticks = u128::from(ns) * u128::from(user_hz) / 1_000_000_000;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// The host's `cpu` lines, parsed.
struct HostCpus {
    /// Columns of each `cpuN` line, by host CPU id (the first line for an id wins).
    per_cpu: BTreeMap<u32, Vec<u64>>,
    /// Column count of the aggregate `cpu` line, else of the first `cpuN` line.
    width: usize,
}

impl HostCpus {
    fn parse(text: &str) -> Self {
        let mut per_cpu = BTreeMap::new();
        let mut total_width = None;
        let mut first_cpu_width = None;
        for line in text.lines() {
            let Some(id) = cpu_id(line) else { continue };
            let cols = columns(line);
            match id {
                CpuLine::Total => {
                    total_width.get_or_insert(cols.len());
                }
                CpuLine::Cpu(n) => {
                    first_cpu_width.get_or_insert(cols.len());
                    per_cpu.entry(n).or_insert(cols);
                }
            }
        }
        HostCpus {
            per_cpu,
            width: total_width.or(first_cpu_width).unwrap_or(0),
        }
    }
}

/// Which `cpu` line a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CpuLine {
    /// The aggregate `cpu` line.
    Total,
    /// `cpuN`.
    Cpu(u32),
}

/// The kind of `cpu` line `body` is, `None` for any other line. A `cpuN` line with an
/// unparsable number still counts as a CPU line so it is never passed through.
fn cpu_id(body: &str) -> Option<CpuLine> {
    let first = body.split_ascii_whitespace().next()?;
    let suffix = first.strip_prefix("cpu")?;
    if suffix.is_empty() {
        return Some(CpuLine::Total);
    }
    if !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(CpuLine::Cpu(suffix.parse().unwrap_or(u32::MAX)))
}

/// The numeric columns after the line's first word, up to the first non-number.
fn columns(body: &str) -> Vec<u64> {
    body.split_ascii_whitespace()
        .skip(1)
        .map_while(|t| t.parse().ok())
        .collect()
}

/// The `cpuN` rows to show, `width` columns each, in the order of `rows`.
fn cgroup_rows(
    rows: &[(u32, &[u64])],
    usage: &CpuUsage,
    user_hz: u64,
    width: usize,
) -> Vec<Vec<u64>> {
    let k = rows.len() as u64;
    let ticks = |t: &CpuTime| {
        (
            ns_to_ticks(t.user_ns, user_hz),
            ns_to_ticks(t.system_ns, user_hz),
        )
    };
    rows.iter()
        .enumerate()
        .map(|(i, &(id, host))| match usage {
            CpuUsage::Unknown => {
                let mut cols = host.to_vec();
                cols.resize(width, 0);
                cols
            }
            CpuUsage::PerCpu(map) => cgroup_row(
                host,
                ticks(&map.get(&id).copied().unwrap_or_default()),
                width,
            ),
            CpuUsage::Total(t) => cgroup_row(host, split_total(ticks(t), i as u64, k), width),
        })
        .collect()
}

/// CPU `i` of `k`'s share of a total (user, system) in ticks: ticks are split, not
/// nanoseconds, so the shares add up to exactly the total (the first CPUs take the remainder).
fn split_total((user, system): (u64, u64), i: u64, k: u64) -> (u64, u64) {
    let share = |ticks: u64| ticks / k + u64::from(i < ticks % k);
    (share(user), share(system))
}

/// One CPU's row: the cgroup's (user, system) ticks and the rest of the host's time as idle.
fn cgroup_row(host: &[u64], (user, system): (u64, u64), width: usize) -> Vec<u64> {
    let host_time = host
        .iter()
        .take(TIME_COLUMNS)
        .fold(0u64, |a, &b| a.saturating_add(b));
    let mut cols = vec![0; width];
    cols[USER] = user;
    cols[SYSTEM] = system;
    cols[IDLE] = host_time.saturating_sub(user.saturating_add(system));
    cols
}

/// Writes the aggregate `cpu` line (the column-wise sum) and the renumbered `cpuN` lines, in
/// the kernel's spacing (`cpu` is followed by two spaces so its columns line up).
fn push_cpu_lines(out: &mut String, rows: &[Vec<u64>]) {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let sum: Vec<u64> = (0..width)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .fold(0u64, |a, &b| a.saturating_add(b))
        })
        .collect();
    push_row(out, "cpu ", &sum);
    for (i, row) in rows.iter().enumerate() {
        push_row(out, &format!("cpu{i}"), row);
    }
}

fn push_row(out: &mut String, label: &str, cols: &[u64]) {
    out.push_str(label);
    for c in cols {
        out.push(' ');
        out.push_str(&c.to_string());
    }
    out.push('\n');
}

/// The replacement for a `procs_running` / `procs_blocked` line when the cgroup's task
/// counts are known.
fn task_count(body: &str, tasks: Option<TaskCounts>) -> Option<(&'static str, u64)> {
    let tasks = tasks?;
    match body.split_ascii_whitespace().next()? {
        "procs_running" => Some(("procs_running", tasks.running)),
        "procs_blocked" => Some(("procs_blocked", tasks.blocked)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST2: &str = include_str!("../../tests/fixtures/render/stat-2cpu");
    const HOST4: &str = include_str!("../../tests/fixtures/render/stat-4cpu");
    /// user..steal of each cpuN line of `HOST4`.
    const HOST4_CPU_TIME: u64 = 10000 + 100 + 3000 + 200000 + 500 + 75 + 25;

    fn line<'a>(text: &'a str, first: &str) -> &'a str {
        text.lines()
            .find(|l| l.split_ascii_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no {first} line in {text}"))
    }

    fn non_cpu_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| cpu_id(l).is_none()).collect()
    }

    fn time(user_ns: u64, system_ns: u64) -> CpuTime {
        CpuTime { user_ns, system_ns }
    }

    #[test]
    fn ns_to_ticks_truncates_and_never_overflows() {
        assert_eq!(ns_to_ticks(1_999_999_999, 100), 199);
        assert_eq!(ns_to_ticks(9_999_999, 100), 0);
        assert_eq!(ns_to_ticks(10_000_000, 100), 1);
        assert_eq!(ns_to_ticks(1_500_000_000, 1000), 1500);
        assert_eq!(ns_to_ticks(u64::MAX, 100), u64::MAX / 10_000_000);
        assert_eq!(ns_to_ticks(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(ns_to_ticks(5, 0), 0);
    }

    #[test]
    fn per_cpu_usage_of_non_contiguous_cpus() {
        let usage = CpuUsage::PerCpu(BTreeMap::from([
            (0, time(9_000_000_000, 0)),
            (1, time(25_999_999_999, 3_000_000_000)),
            (3, time(100_000_000_000, 50_010_000_000)),
        ]));
        let out = render(HOST4, &[1, 3], &usage, None, 100);
        let idle1 = HOST4_CPU_TIME - 2599 - 300;
        let idle3 = HOST4_CPU_TIME - 10000 - 5001;
        let expected_cpus = format!(
            "cpu  {} 0 {} {} 0 0 0 0 0 0\ncpu0 2599 0 300 {idle1} 0 0 0 0 0 0\ncpu1 10000 0 5001 {idle3} 0 0 0 0 0 0\n",
            2599 + 10000,
            300 + 5001,
            idle1 + idle3
        );
        assert!(out.starts_with(&expected_cpus), "{out}");
        assert_eq!(non_cpu_lines(&out), non_cpu_lines(HOST4));
        assert_eq!(out.lines().count(), HOST4.lines().count() - 2);
    }

    #[test]
    fn per_cpu_usage_missing_a_cpu_counts_it_idle() {
        let usage = CpuUsage::PerCpu(BTreeMap::from([(1, time(1_000_000_000, 0))]));
        let out = render(HOST4, &[0, 1], &usage, None, 100);
        assert_eq!(
            line(&out, "cpu0"),
            format!("cpu0 0 0 0 {HOST4_CPU_TIME} 0 0 0 0 0 0")
        );
        assert_eq!(
            line(&out, "cpu1"),
            format!("cpu1 100 0 0 {} 0 0 0 0 0 0", HOST4_CPU_TIME - 100)
        );
    }

    #[test]
    fn total_usage_is_split_evenly_in_ticks() {
        // 1.019 s user = 101 ticks over 3 CPUs: 34 34 33; 0.02 s system = 2 ticks: 1 1 0.
        let usage = CpuUsage::Total(time(1_019_000_000, 20_000_000));
        let out = render(HOST4, &[0, 2, 3], &usage, None, 100);
        assert_eq!(
            line(&out, "cpu0"),
            format!("cpu0 34 0 1 {} 0 0 0 0 0 0", HOST4_CPU_TIME - 35)
        );
        assert_eq!(
            line(&out, "cpu1"),
            format!("cpu1 34 0 1 {} 0 0 0 0 0 0", HOST4_CPU_TIME - 35)
        );
        assert_eq!(
            line(&out, "cpu2"),
            format!("cpu2 33 0 0 {} 0 0 0 0 0 0", HOST4_CPU_TIME - 33)
        );
        assert_eq!(
            line(&out, "cpu"),
            format!("cpu  101 0 2 {} 0 0 0 0 0 0", 3 * HOST4_CPU_TIME - 103)
        );
        assert!(!out.contains("cpu3"));
    }

    #[test]
    fn busy_beyond_host_time_gives_idle_zero() {
        let usage = CpuUsage::Total(time(10_000_000_000_000, 0));
        let out = render(HOST4, &[0], &usage, None, 100);
        assert_eq!(line(&out, "cpu0"), "cpu0 1000000 0 0 0 0 0 0 0 0 0");
    }

    #[test]
    fn user_hz_other_than_100() {
        let usage = CpuUsage::Total(time(1_234_567_890, 0));
        let out = render(HOST4, &[0], &usage, None, 1000);
        assert!(line(&out, "cpu0").starts_with("cpu0 1234 0 0 "));
    }

    #[test]
    fn guest_time_is_not_counted_twice() {
        let host = "cpu  1000 0 0 9000 0 0 0 0 400 100\ncpu0 1000 0 0 9000 0 0 0 0 400 100\n";
        let out = render(
            host,
            &[0],
            &CpuUsage::Total(time(2_000_000_000, 0)),
            None,
            100,
        );
        assert_eq!(
            out,
            "cpu  200 0 0 9800 0 0 0 0 0 0\ncpu0 200 0 0 9800 0 0 0 0 0 0\n"
        );
    }

    #[test]
    fn unknown_usage_keeps_host_lines_of_shown_cpus() {
        let out = render(HOST2, &[1], &CpuUsage::Unknown, None, 100);
        let expected =
            "cpu  4299 0 1490 32326 338 0 34 52 0 0\ncpu0 4299 0 1490 32326 338 0 34 52 0 0\nintr ";
        assert!(out.starts_with(expected), "{out}");
        assert_eq!(non_cpu_lines(&out), non_cpu_lines(HOST2));
    }

    #[test]
    fn unknown_usage_of_all_cpus_sums_them() {
        let out = render(HOST2, &[0, 1], &CpuUsage::Unknown, None, 100);
        assert_eq!(line(&out, "cpu"), "cpu  8103 0 2700 65762 419 0 39 93 0 0");
        assert_eq!(line(&out, "cpu0"), line(HOST2, "cpu0"));
        assert_eq!(line(&out, "cpu1"), line(HOST2, "cpu1"));
    }

    #[test]
    fn task_counts_replace_procs_lines_only_when_known() {
        let tasks = TaskCounts {
            running: 2,
            blocked: 5,
            total: 40,
        };
        let out = render(HOST4, &[0], &CpuUsage::Unknown, Some(tasks), 100);
        assert_eq!(line(&out, "procs_running"), "procs_running 2");
        assert_eq!(line(&out, "procs_blocked"), "procs_blocked 5");
        for key in ["intr", "ctxt", "btime", "processes", "softirq"] {
            assert_eq!(line(&out, key), line(HOST4, key), "{key}");
        }
        let out = render(HOST4, &[0], &CpuUsage::Unknown, None, 100);
        assert_eq!(line(&out, "procs_running"), "procs_running 3");
        assert_eq!(line(&out, "procs_blocked"), "procs_blocked 1");
    }

    #[test]
    fn host_column_count_is_kept() {
        let host = "cpu  10 0 5 100 1 0 0 0\ncpu0 10 0 5 100 1 0 0 0\nctxt 5\n";
        let out = render(
            host,
            &[0],
            &CpuUsage::Total(time(30_000_000, 20_000_000)),
            None,
            100,
        );
        assert_eq!(
            out,
            "cpu  3 0 2 111 0 0 0 0\ncpu0 3 0 2 111 0 0 0 0\nctxt 5\n"
        );
        let short = "cpu  1 2\ncpu0 1 2\n";
        let out = render(short, &[0], &CpuUsage::Total(time(0, 0)), None, 100);
        assert_eq!(out, "cpu  0 0 0 3\ncpu0 0 0 0 3\n");
    }

    #[test]
    fn falls_back_to_host_text() {
        let usage = CpuUsage::Total(time(1, 1));
        assert_eq!(render(HOST4, &[], &usage, None, 100), HOST4);
        assert_eq!(render(HOST4, &[8], &usage, None, 100), HOST4);
        assert_eq!(render("", &[0], &usage, None, 100), "");
    }

    #[test]
    fn crlf_and_garbage_do_not_panic_or_leak_host_cpus() {
        let host = "cpu  1 0 1 10\r\ncpu0 1 0 1 10\r\ncpu1 x y\r\ncpux 5\r\nprocs_running 9\r\ngarbage\r\n";
        let tasks = TaskCounts {
            running: 1,
            blocked: 0,
            total: 1,
        };
        let out = render(host, &[0, 1], &CpuUsage::Unknown, Some(tasks), 100);
        assert_eq!(
            out,
            "cpu  1 0 1 10\ncpu0 1 0 1 10\ncpu1 0 0 0 0\ncpux 5\r\nprocs_running 1\r\ngarbage\r\n"
        );
        for odd in [
            "cpu",
            "cpu0",
            "cpu99999999999999 1 2",
            "\n\n",
            "cpu0 18446744073709551615 18446744073709551615 5",
        ] {
            let _ = render(
                odd,
                &[0, u32::MAX],
                &CpuUsage::Total(time(u64::MAX, u64::MAX)),
                None,
                100,
            );
        }
    }
}
