//! Small parsers for the files the daemon serves and for cgroup files, and the checks of a
//! v1 reader's meminfo, stat and uptime against the counters they are made of, read before and
//! after ([`Around`]).

use std::collections::BTreeMap;

/// The value of `key` in a meminfo-style text (`Key:   123 kB`).
pub fn kb(text: &str, key: &str) -> u64 {
    try_kb(text, key).unwrap_or_else(|| panic!("no numeric {key:?} line in:\n{text}"))
}

/// The value of `key`, if present.
pub fn try_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// The line of `key` in a meminfo-style text.
pub fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

/// The keys of a meminfo-style text, in order.
pub fn keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

/// The values of the `processor` lines of a cpuinfo text.
pub fn processors(cpuinfo: &str) -> Vec<String> {
    field_values(cpuinfo, "processor")
}

/// The values of every `key : value` line named `key` (cpuinfo style).
pub fn field_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim_end() == key)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The labels (first word) of the `cpu*` lines of a /proc/stat text.
pub fn stat_cpu_labels(stat: &str) -> Vec<String> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

/// The first line of `text` starting with `prefix`.
pub fn line_starting<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

/// Parsed `/proc/loadavg`: `a b c running/total lastpid`, checked against the kernel's format
/// `^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+$`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub loads: [f64; 3],
    pub running: u64,
    pub total: u64,
    pub last_pid: u64,
}

/// Parses a loadavg text, or says what is wrong with it.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, String> {
    let err = |why: &str| format!("loadavg {text:?}: {why}");
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| err("no final newline"))?;
    if body.contains('\n') {
        return Err(err("more than one line"));
    }
    let fields: Vec<&str> = body.split(' ').collect();
    if fields.len() != 5 {
        return Err(err("not 5 space-separated fields"));
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut loads = [0.0; 3];
    for (i, f) in fields[..3].iter().enumerate() {
        let (int, frac) = f
            .split_once('.')
            .ok_or_else(|| err("a load has no decimal point"))?;
        if !digits(int) || frac.len() != 2 || !digits(frac) {
            return Err(err("a load is not \\d+.\\d\\d"));
        }
        loads[i] = f.parse().map_err(|_| err("a load does not parse"))?;
    }
    let (r, t) = fields[3]
        .split_once('/')
        .ok_or_else(|| err("no running/total"))?;
    if !digits(r) || !digits(t) || !digits(fields[4]) {
        return Err(err("running/total or lastpid not numeric"));
    }
    Ok(LoadAvg {
        loads,
        running: r.parse().map_err(|_| err("running"))?,
        total: t.parse().map_err(|_| err("total"))?,
        last_pid: fields[4].parse().map_err(|_| err("lastpid"))?,
    })
}

/// The two fields of an uptime text.
pub fn parse_uptime(text: &str) -> (f64, f64) {
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(f.len(), 2, "uptime should have 2 fields, read {text:?}");
    let p = |s: &str| {
        s.parse::<f64>()
            .unwrap_or_else(|e| panic!("uptime field {s:?} of {text:?}: {e}"))
    };
    for s in &f {
        let frac = s.split_once('.').map(|(_, d)| d.len());
        assert_eq!(
            frac,
            Some(2),
            "uptime fields have two decimals as the kernel prints them, read {text:?}"
        );
    }
    (p(f[0]), p(f[1]))
}

/// The `key value` pairs of a cgroup `memory.stat`-style file.
pub fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Asserts that each of `keys` has the same line in `ours` as in `host` (a meminfo-style line
/// passed through from the host untouched), and that both have it.
#[track_caller]
pub fn assert_lines_from_host(ours: &str, host: &str, keys: &[&str], context: &str) {
    for key in keys {
        assert_eq!(
            line_of(ours, key),
            line_of(host, key),
            "{key} is passed through from the host; {context}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Counters read around a read: the spans a served number must lie in
// ---------------------------------------------------------------------------------------

/// A counter known to lie in `lo..=hi`: read once before and once after the read under test.
/// Counters only grow (or move one way) in the short window between the two reads, so the
/// value the daemon saw in between lies in the span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The smaller read.
    pub lo: u64,
    /// The larger read.
    pub hi: u64,
}

impl Span {
    /// The span of two reads of a counter, in either order.
    pub fn of(a: u64, b: u64) -> Span {
        Span {
            lo: a.min(b),
            hi: a.max(b),
        }
    }

    /// The span of `f` of the counter, for a monotonic `f` (bytes to kB, ns to ticks).
    pub fn map(self, f: impl Fn(u64) -> u64) -> Span {
        Span::of(f(self.lo), f(self.hi))
    }

    /// The span of the sum of two counters.
    pub fn plus(self, other: Span) -> Span {
        Span {
            lo: self.lo + other.lo,
            hi: self.hi + other.hi,
        }
    }

    /// The span of `from` minus the counter (at least 0), as MemFree = limit − usage.
    pub fn subtracted_from(self, from: u64) -> Span {
        Span {
            lo: from.saturating_sub(self.hi),
            hi: from.saturating_sub(self.lo),
        }
    }

    /// Whether `v` lies in the span widened by `slack` on both sides.
    pub fn holds(self, v: u64, slack: u64) -> bool {
        v + slack >= self.lo && v <= self.hi + slack
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..={}", self.lo, self.hi)
    }
}

/// The `memory.stat` and `cpuacct.usage_all` of a v1 cgroup and the host's `/proc/stat` and
/// `/proc/uptime`, as read at one moment: what a v1 reader's meminfo, stat and uptime are made
/// of. Read by [`super::cgroup::Cgroup::read_bracketed`] in the order of
/// [`Counters::FILES`].
#[derive(Debug, Clone)]
pub struct Counters {
    /// `memory.stat`, bytes.
    pub memory_stat: BTreeMap<String, u64>,
    /// `memory.usage_in_bytes`.
    pub memory_usage: u64,
    /// `cpuacct.usage_all`: (user, system) nanoseconds by CPU.
    pub cpuacct: BTreeMap<u32, (u64, u64)>,
    /// The host's `/proc/stat` `cpu` lines: columns by label (`cpu`, `cpu0`, ...).
    pub host_cpus: BTreeMap<String, Vec<u64>>,
    /// The host's `/proc/uptime` first field, in hundredths of a second.
    pub host_uptime_cs: u64,
    /// `cpuacct.usage`, nanoseconds: the scheduler's exact runtime, which the C lxcfs reads
    /// for uptime (`usage_all`'s user/system split is sampled at ticks, and the two drift
    /// apart by several hundredths under load).
    pub cpuacct_usage: u64,
}

impl Counters {
    /// The cgroup files (relative to the memory and cpuacct directories) and host files, in
    /// the order [`Counters::parse`] takes their texts.
    pub const FILES: [&'static str; 6] = [
        "memory/memory.stat",
        "memory/memory.usage_in_bytes",
        "cpuacct/cpuacct.usage_all",
        "/proc/stat",
        "/proc/uptime",
        "cpuacct/cpuacct.usage",
    ];

    /// Parses the texts of [`Counters::FILES`].
    pub fn parse(texts: &[String]) -> Counters {
        assert_eq!(
            texts.len(),
            Counters::FILES.len(),
            "one text per counter file"
        );
        let usage = texts[1].trim();
        Counters {
            memory_stat: key_values(&texts[0]),
            memory_usage: usage
                .parse()
                .unwrap_or_else(|e| panic!("memory.usage_in_bytes {usage:?}: {e}")),
            cpuacct: parse_usage_all(&texts[2]),
            host_cpus: stat_rows(&texts[3]),
            host_uptime_cs: centis(texts[4].split_whitespace().next().unwrap_or_default())
                .unwrap_or_else(|| panic!("host /proc/uptime {:?}", texts[4])),
            cpuacct_usage: texts[5]
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("cpuacct.usage {:?}: {e}", texts[5])),
        }
    }
}

/// `cpuacct.usage_all`: (user, system) nanoseconds by CPU.
pub fn parse_usage_all(text: &str) -> BTreeMap<u32, (u64, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let n: Vec<u64> = l.split_whitespace().map_while(|t| t.parse().ok()).collect();
            (n.len() == 3).then(|| (n[0] as u32, (n[1], n[2])))
        })
        .collect()
}

/// The `cpu` lines of a /proc/stat text: numeric columns by label, in label order.
pub fn stat_rows(stat: &str) -> BTreeMap<String, Vec<u64>> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let label = words.next()?.to_string();
            Some((label, words.map_while(|t| t.parse().ok()).collect()))
        })
        .collect()
}

/// `12.34` as hundredths (1234); `None` unless it has exactly two decimals.
pub fn centis(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.')?;
    (frac.len() == 2).then_some(())?;
    Some(int.parse::<u64>().ok()? * 100 + frac.parse::<u64>().ok()?)
}

/// The start time (field 22, clock ticks since boot) of a `/proc/<pid>/stat` text.
pub fn start_ticks(proc_stat: &str) -> u64 {
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let after = proc_stat
        .rsplit_once(')')
        .unwrap_or_else(|| panic!("no `)` in {proc_stat:?}"))
        .1;
    let field = after.split_whitespace().nth(19);
    field
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no start time in {proc_stat:?}"))
}

/// Clock ticks per second, the unit of `/proc/stat` and of process start times.
pub fn user_hz() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |v| v as u64)
}

/// Nanoseconds as clock ticks, truncated as the kernel does.
pub fn ns_to_ticks(ns: u64, hz: u64) -> u64 {
    (u128::from(ns) * u128::from(hz) / 1_000_000_000) as u64
}

/// The host's time on a CPU of a `/proc/stat` row: user nice system idle iowait irq softirq
/// steal (guest and guest_nice are already inside user and nice).
pub fn cpu_time(cols: &[u64]) -> u64 {
    cols.iter().take(8).sum()
}

/// [`Counters`] read just before and just after a read.
#[derive(Debug, Clone)]
pub struct Around {
    /// Read just before the read under test.
    pub before: Counters,
    /// Read just after it.
    pub after: Counters,
}

impl Around {
    /// The span of a `memory.stat` key, in kB.
    pub fn stat_kb(&self, key: &str) -> Result<Span, String> {
        let get = |c: &Counters| {
            c.memory_stat
                .get(key)
                .copied()
                .ok_or_else(|| format!("no {key} in memory.stat"))
        };
        Ok(Span::of(get(&self.before)?, get(&self.after)?).map(|b| b / 1024))
    }

    /// The span of `memory.usage_in_bytes`, in kB.
    pub fn usage_kb(&self) -> Span {
        Span::of(self.before.memory_usage, self.after.memory_usage).map(|b| b / 1024)
    }

    /// The spans of the cgroup's user and system time on host CPU `cpu`, in ticks (a CPU
    /// missing from `cpuacct.usage_all` counts 0).
    pub fn cpu_ticks(&self, cpu: u32, hz: u64) -> (Span, Span) {
        let get = |c: &Counters| c.cpuacct.get(&cpu).copied().unwrap_or_default();
        let (b, a) = (get(&self.before), get(&self.after));
        (
            Span::of(b.0, a.0).map(|ns| ns_to_ticks(ns, hz)),
            Span::of(b.1, a.1).map(|ns| ns_to_ticks(ns, hz)),
        )
    }

    /// The span of the cgroup's `cpuacct.usage`, in nanoseconds.
    pub fn usage_ns(&self) -> Span {
        Span::of(self.before.cpuacct_usage, self.after.cpuacct_usage)
    }

    /// The span of the cgroup's CPU time, user + system on all CPUs, in nanoseconds.
    pub fn busy_ns(&self) -> Span {
        let sum = |c: &Counters| c.cpuacct.values().map(|(u, s)| u + s).sum();
        Span::of(sum(&self.before), sum(&self.after))
    }

    /// The span of the host's time on host CPU `cpu` ([`cpu_time`]), in ticks.
    pub fn host_cpu_time(&self, cpu: u32) -> Result<Span, String> {
        let label = format!("cpu{cpu}");
        let get = |c: &Counters| {
            c.host_cpus
                .get(&label)
                .map(|cols| cpu_time(cols))
                .ok_or_else(|| format!("no {label} line in the host's /proc/stat"))
        };
        Ok(Span::of(get(&self.before)?, get(&self.after)?))
    }

    /// The span of the host's uptime, in hundredths of a second.
    pub fn uptime_cs(&self) -> Span {
        Span::of(self.before.host_uptime_cs, self.after.host_uptime_cs)
    }
}

/// One served number checked against the span its counters allow.
#[derive(Debug, Clone)]
pub struct Check {
    /// What it is (`MemFree = MemTotal − memory.usage_in_bytes`).
    pub what: String,
    /// The number served (`u64::MAX` when it is missing or does not parse).
    pub got: u64,
    /// Where the counters say it must lie.
    pub want: Span,
    /// How far outside `want` it may be (the kernel's batching and rounding).
    pub slack: u64,
}

impl Check {
    /// Whether the number lies in its span (± slack).
    pub fn ok(&self) -> bool {
        self.want.holds(self.got, self.slack)
    }
}

/// The checks that failed, as `what: read N, expected LO..=HI (±S)` lines; empty if none.
pub fn failures(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| {
            format!(
                "{}: read {}, expected {} (±{})",
                c.what, c.got, c.want, c.slack
            )
        })
        .collect()
}

/// How far a v1 meminfo line may lie outside its counters' span, in kB. The kernel charges
/// memory to a cgroup in per-CPU batches of 64 pages and flushes memory.stat lazily within
/// about the same bound, so a value read in between is exact only to that.
pub const MEM_SLACK_KB: u64 = 1024;

/// The meminfo lines a v1 reader's cgroup makes (docs/semantics.md, proc/meminfo), each
/// checked against the cgroup's counters read around the read: MemTotal = `limit_kb`,
/// MemFree = limit − usage, the `memory.stat` lines from their `total_` keys, and
/// MemAvailable = MemFree + active_file + inactive_file both from the counters and from the
/// file's own lines.
pub fn v1_meminfo_checks(meminfo: &str, limit_kb: u64, around: &Around) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |what: String, key: &str, want: Span, slack: u64| match try_kb(meminfo, key) {
        Some(got) => checks.push(Check {
            what,
            got,
            want,
            slack,
        }),
        None => checks.push(Check {
            what: format!("{what} (no {key} line)"),
            got: u64::MAX,
            want,
            slack,
        }),
    };
    let stat = |key: &str| {
        around
            .stat_kb(key)
            .unwrap_or_else(|e| panic!("{e}; before: {:?}", around.before.memory_stat))
    };
    check(
        "MemTotal = the limit".into(),
        "MemTotal",
        Span::of(limit_kb, limit_kb),
        0,
    );
    let free = around.usage_kb().subtracted_from(limit_kb);
    check(
        "MemFree = MemTotal − memory.usage_in_bytes".into(),
        "MemFree",
        free,
        MEM_SLACK_KB,
    );
    for (line, key) in [
        ("Cached", "total_cache"),
        ("Shmem", "total_shmem"),
        ("Mapped", "total_mapped_file"),
        ("Active(file)", "total_active_file"),
        ("Inactive(file)", "total_inactive_file"),
        ("Active(anon)", "total_active_anon"),
        ("Inactive(anon)", "total_inactive_anon"),
        ("AnonPages", "total_rss"),
    ] {
        check(
            format!("{line} = memory.stat {key}"),
            line,
            stat(key),
            MEM_SLACK_KB,
        );
    }
    let avail = free
        .plus(stat("total_active_file"))
        .plus(stat("total_inactive_file"))
        .map(|v| v.min(limit_kb));
    check(
        "MemAvailable = MemFree + total_active_file + total_inactive_file".into(),
        "MemAvailable",
        avail,
        2 * MEM_SLACK_KB,
    );
    // The same sum from the file's own lines: exact but for rounding each line to kB.
    let own = ["MemFree", "Active(file)", "Inactive(file)"]
        .iter()
        .map(|k| try_kb(meminfo, k).unwrap_or(0))
        .sum::<u64>()
        .min(limit_kb);
    check(
        "MemAvailable = MemFree + Active(file) + Inactive(file) as printed".into(),
        "MemAvailable",
        Span::of(own, own),
        2,
    );
    checks
}

/// The `cpu` lines of a v1 reader's `/proc/stat` (docs/semantics.md, proc/stat), checked
/// against the cgroup's `cpuacct.usage_all` and the host's `/proc/stat` read around the read:
/// the lines are `cpu` and `cpu0`..`cpu<k-1>` for the host CPUs `shown`, in order; each
/// line's user and system columns are the cgroup's time on that CPU in ticks; nice, iowait,
/// irq, softirq, steal, guest and guest_nice are 0; all columns add up to the host's time on
/// that CPU; and `cpu` is the column-wise sum of the others.
pub fn v1_stat_checks(stat: &str, shown: &[u32], hz: u64, around: &Around) -> Vec<Check> {
    let rows = stat_rows(stat);
    let mut checks = Vec::new();
    let mut labels: Vec<String> = vec!["cpu".into()];
    labels.extend((0..shown.len()).map(|i| format!("cpu{i}")));
    let mut got_labels: Vec<&String> = rows.keys().collect();
    got_labels.sort_by_key(|l| l.strip_prefix("cpu").and_then(|n| n.parse::<i64>().ok()));
    let same = got_labels
        .iter()
        .map(|l| l.as_str())
        .eq(labels.iter().map(String::as_str));
    checks.push(Check {
        what: format!("cpu lines {labels:?}, read {got_labels:?}"),
        got: u64::from(same),
        want: Span::of(1, 1),
        slack: 0,
    });
    let mut sum = vec![0u64; rows.get("cpu").map_or(0, Vec::len)];
    for (i, &host_cpu) in shown.iter().enumerate() {
        let label = format!("cpu{i}");
        let Some(cols) = rows.get(&label) else {
            continue;
        };
        for (s, c) in sum.iter_mut().zip(cols) {
            *s += c;
        }
        let col = |n: usize| cols.get(n).copied().unwrap_or(u64::MAX);
        let (user, system) = around.cpu_ticks(host_cpu, hz);
        let what = |s: &str| format!("{label} (host cpu{host_cpu}) {s}");
        checks.push(Check {
            what: what("user = cpuacct.usage_all user in ticks"),
            got: col(0),
            want: user,
            slack: 0,
        });
        checks.push(Check {
            what: what("system = cpuacct.usage_all system in ticks"),
            got: col(2),
            want: system,
            slack: 0,
        });
        for (n, name) in [
            (1, "nice"),
            (4, "iowait"),
            (5, "irq"),
            (6, "softirq"),
            (7, "steal"),
        ]
        .into_iter()
        .chain(
            [(8, "guest"), (9, "guest_nice")]
                .into_iter()
                .filter(|(n, _)| *n < cols.len()),
        ) {
            checks.push(Check {
                what: what(&format!("{name} = 0")),
                got: col(n),
                want: Span::of(0, 0),
                slack: 0,
            });
        }
        // A few ticks of slack: the kernel's iowait and idle of a CPU may step back a
        // little between two reads (NO_HZ accounting).
        let host = around
            .host_cpu_time(host_cpu)
            .unwrap_or_else(|e| panic!("{e}"));
        checks.push(Check {
            what: what("columns add up to the host's time on that CPU"),
            got: cpu_time(cols),
            want: host,
            slack: 5,
        });
    }
    if let Some(total) = rows.get("cpu") {
        let same = *total == sum;
        checks.push(Check {
            what: format!("cpu {total:?} = the column-wise sum of the cpuN lines {sum:?}"),
            got: u64::from(same),
            want: Span::of(1, 1),
            slack: 0,
        });
    }
    checks
}

/// A v1 reader's `/proc/uptime` (docs/semantics.md, proc/uptime), checked against the host's
/// uptime and the cgroup's CPU time read around the read: the age is the host's uptime minus
/// the start of the reader's pid-namespace init (`start_ticks`), and idle = age × `cpus`
/// − the cgroup's busy time (at least 0). In hundredths of a second.
pub fn uptime_checks(
    uptime: &str,
    cpus: u64,
    start_ticks: u64,
    hz: u64,
    around: &Around,
) -> Vec<Check> {
    uptime_checks_with_busy(uptime, cpus, start_ticks, hz, around, around.busy_ns())
}

/// [`uptime_checks`] with the cgroup's CPU time taken from `busy_ns` (for the C lxcfs, which
/// reads `cpuacct.usage`: [`Around::usage_ns`]).
pub fn uptime_checks_with_busy(
    uptime: &str,
    cpus: u64,
    start_ticks: u64,
    hz: u64,
    around: &Around,
    busy_ns: Span,
) -> Vec<Check> {
    let mut f = uptime.split_whitespace().map(centis);
    let (age, idle) = (f.next().flatten(), f.next().flatten());
    let start_cs = start_ticks * 100 / hz;
    // Both uptimes are truncated to hundredths, as is the age the daemon prints, so the
    // printed age lies between the two uptimes minus the start.
    let ages = Span::of(
        around.uptime_cs().lo.saturating_sub(start_cs),
        around.uptime_cs().hi.saturating_sub(start_cs),
    );
    let busy = busy_ns.map(|ns| ns / 10_000_000);
    let idles = Span {
        lo: (ages.lo * cpus).saturating_sub(busy.hi + 1),
        hi: ((ages.hi + 1) * cpus).saturating_sub(busy.lo),
    };
    vec![
        Check {
            what: format!("uptime {uptime:?}: age = host uptime − the init's start, in 1/100 s"),
            got: age.unwrap_or(u64::MAX),
            want: ages,
            slack: 1,
        },
        Check {
            what: format!(
                "uptime {uptime:?}: idle = age × {cpus} CPUs − the cgroup's CPU time {busy} (1/100 s)"
            ),
            got: idle.unwrap_or(u64::MAX),
            want: idles,
            slack: 2,
        },
    ]
}
