//! CPUs: cpusets and CFS quotas in `proc/cpuinfo`, `proc/stat` and
//! `sys/devices/system/cpu`.

use crate::common::*;

/// The `cpu*` lines of a stat text.
fn cpu_lines(stat: &str) -> Vec<&str> {
    stat.lines().filter(|l| l.starts_with("cpu")).collect()
}

/// The numeric columns of a `cpu` line.
fn columns(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .map(|c| {
            c.parse()
                .unwrap_or_else(|e| panic!("column {c:?} of {line:?}: {e}"))
        })
        .collect()
}

#[test]
fn cpuset_of_cpu0() {
    require!(mount);
    require!(cpus_0_and_1);
    let cg = Cgroup::new();
    cg.set_cpus("0");
    let d = Daemon::start(&[]);

    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    let proc_lines: Vec<&str> = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .collect();
    assert_eq!(
        proc_lines.len(),
        1,
        "cpuset 0: expected exactly one processor line, read:\n{cpuinfo}"
    );
    assert_eq!(
        processors(&cpuinfo),
        ["0"],
        "cpuset 0: expected `processor : 0`, read:\n{cpuinfo}"
    );
    for key in ["siblings", "cpu cores"] {
        for v in field_values(&cpuinfo, key) {
            assert_eq!(v, "1", "cpuset 0: expected {key} 1, read:\n{cpuinfo}");
        }
    }

    for f in ["online", "possible", "present"] {
        let text = cg.read(&d.path(&format!("sys/devices/system/cpu/{f}")));
        assert_eq!(
            text, "0\n",
            "cpuset 0: expected sys/devices/system/cpu/{f} \"0\\n\", read {text:?}"
        );
    }
    let offline = cg.read(&d.path("sys/devices/system/cpu/offline"));
    assert_eq!(offline.trim(), "", "offline is empty, read {offline:?}");

    let stat = cg.read(&d.path("proc/stat"));
    let lines = cpu_lines(&stat);
    assert_eq!(
        lines.len(),
        2,
        "cpuset 0: expected exactly the cpu and cpu0 lines, read:\n{stat}"
    );
    assert!(
        lines[0].starts_with("cpu "),
        "first line `cpu `, read:\n{stat}"
    );
    assert!(
        lines[1].starts_with("cpu0 "),
        "second line `cpu0 `, read:\n{stat}"
    );
    assert_eq!(
        columns(lines[0]),
        columns(lines[1]),
        "the cpu line is the sum of the single cpu0 line, read:\n{stat}"
    );
    for key in [
        "intr ",
        "ctxt ",
        "btime ",
        "processes ",
        "procs_running ",
        "procs_blocked ",
    ] {
        assert!(
            stat.lines().any(|l| l.starts_with(key)),
            "stat keeps its {key:?} line, read:\n{stat}"
        );
    }

    let dir = d.arg("sys/devices/system/cpu");
    let listing = cg.run(&["ls", "-1", &dir]);
    let names: Vec<&str> = listing.lines().collect();
    assert!(
        names.contains(&"cpu0"),
        "cpuset 0: expected cpu0 in sys/devices/system/cpu, listed:\n{listing}"
    );
    assert!(
        !names.contains(&"cpu1"),
        "cpuset 0: expected no cpu1 in sys/devices/system/cpu, listed:\n{listing}"
    );
    assert!(
        names.contains(&"online"),
        "expected online in sys/devices/system/cpu, listed:\n{listing}"
    );
    let probe =
        "for f in \"$@\"; do if [ -e \"$f\" ]; then echo present; else echo absent; fi; done";
    let cpu0 = d.arg("sys/devices/system/cpu/cpu0");
    let cpu1 = d.arg("sys/devices/system/cpu/cpu1");
    let seen = cg.run(&["sh", "-c", probe, "sh", &cpu0, &cpu1]);
    assert_eq!(
        seen, "present\nabsent\n",
        "cpuset 0: cpu0 exists and cpu1 does not for the reader, got {seen:?}"
    );
}

#[test]
fn cfs_quota_without_enable_cfs() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_cpus("0-1").set_quota(50000, 100000);
    let d = Daemon::start(&[]);
    let online = cg.read(&d.path("sys/devices/system/cpu/online"));
    assert_eq!(
        online, "0-1\n",
        "quota 0.5 CPU without --enable-cfs: expected online \"0-1\\n\" (the cpuset), read {online:?}"
    );
    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    assert_eq!(
        processors(&cpuinfo),
        ["0", "1"],
        "without --enable-cfs: expected processors 0 and 1, read:\n{cpuinfo}"
    );
}

#[test]
fn cfs_quota_with_enable_cfs() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_cpus("0-1").set_quota(50000, 100000);
    let d = Daemon::start(&["--enable-cfs"]);
    let online = cg.read(&d.path("sys/devices/system/cpu/online"));
    assert_eq!(
        online, "0\n",
        "quota 0.5 CPU with --enable-cfs: expected online \"0\\n\" (ceil(0.5) = 1 CPU), read {online:?}"
    );
    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    assert_eq!(
        processors(&cpuinfo),
        ["0"],
        "with --enable-cfs: expected one processor 0, read:\n{cpuinfo}"
    );
    let stat = cg.read(&d.path("proc/stat"));
    assert_eq!(
        stat_cpu_labels(&stat),
        ["cpu", "cpu0"],
        "with --enable-cfs: expected cpu and cpu0 lines, read:\n{stat}"
    );

    // A cpuset not starting at 0: under the quota view online is renumbered `0-(k-1)`.
    let other = Cgroup::new();
    other.set_cpus("1").set_quota(50000, 100000);
    let online = other.read(&d.path("sys/devices/system/cpu/online"));
    assert_eq!(
        online, "0\n",
        "cpuset 1, quota 0.5 CPU, --enable-cfs: expected online \"0\\n\" (0-(k-1), k = 1), read {online:?}"
    );
    let cpuinfo = other.read(&d.path("proc/cpuinfo"));
    assert_eq!(
        processors(&cpuinfo),
        ["0"],
        "cpuset 1 with --enable-cfs: expected one processor 0, read:\n{cpuinfo}"
    );
}

/// CPU time the cgroup burns before its reads, in nanoseconds: enough that a column taken
/// from the wrong counter, or an idle that ignores it, is off by far more than the spans.
const BURN_NS: u64 = 1_000_000_000;

/// v1 `proc/stat` and `proc/uptime` against the cgroup's `cpuacct.usage_all` and the host's
/// `/proc/stat` and `/proc/uptime`, all read by the same reader just before and just after:
/// the init of a pid namespace that burns a second of CPU on two loops, then idles a second.
#[test]
fn stat_and_uptime_follow_cpuacct() {
    require!(mount);
    let cg = Cgroup::new();
    let d = Daemon::start(&[]);
    let shown = cpu_list(&cg.read_file("cpuset", "cpuset.effective_cpus"));
    require!(
        shown.len() >= 2,
        "the host has one online CPU, where idle = age × CPUs − busy cannot tell CPUs apart"
    );
    let setup = format!("{}; sleep 1", cg.burn_script(BURN_NS, 2));
    let r = cg.read_bracketed(&setup, &[d.arg("proc/stat"), d.arg("proc/uptime")], true);
    let (stat, uptime) = (&r.texts[0], &r.texts[1]);
    let busy = r.around.busy_ns();
    assert!(
        busy.lo >= BURN_NS,
        "the cgroup should have burnt {BURN_NS} ns of CPU before the reads, cpuacct says {busy}"
    );
    let hz = user_hz();

    let failed = failures(&v1_stat_checks(stat, &shown, hz, &r.around));
    assert!(
        failed.is_empty(),
        "proc/stat off the cgroup's cpuacct.usage_all:\n{}\nread:\n{stat}\ncpuacct.usage_all before:\n{}\nhost /proc/stat before:\n{}",
        failed.join("\n"),
        r.raw_before[2],
        r.raw_before[3]
    );
    // Shown able to fail: the host's own /proc/stat, read just before, does not pass.
    assert!(
        !failures(&v1_stat_checks(&r.raw_before[3], &shown, hz, &r.around)).is_empty(),
        "the host's /proc/stat should fail the check of a cgroup's stat:\n{}",
        r.raw_before[3]
    );

    let k = shown.len() as u64;
    let failed = failures(&uptime_checks(uptime, k, r.start_ticks, hz, &r.around));
    assert!(
        failed.is_empty(),
        "proc/uptime of the pid-namespace init (started at tick {}):\n{}",
        r.start_ticks,
        failed.join("\n")
    );
    // Shown able to fail: the same age with an idle that ignores the cgroup's CPU time
    // (age × CPUs), or lxcfs's (age − busy, not counting CPUs).
    let (age, idle) = parse_uptime(uptime);
    let busy_secs = busy.lo as f64 / 1e9;
    for (what, wrong) in [
        ("age × CPUs", age * k as f64),
        ("age − busy (lxcfs)", (age - busy_secs).max(0.0)),
    ] {
        let text = format!("{age:.2} {wrong:.2}\n");
        assert!(
            !failures(&uptime_checks(&text, k, r.start_ticks, hz, &r.around)).is_empty(),
            "an idle of {what} ({text:?}) should fail the check that {uptime:?} (idle {idle}) passed"
        );
    }
}

/// A CPU list (`0-1,3`) as host ids.
fn cpu_list(text: &str) -> Vec<u32> {
    text.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            let n = |s: &str| {
                s.parse::<u32>()
                    .unwrap_or_else(|e| panic!("CPU list {text:?}: {e}"))
            };
            n(a)..=n(b)
        })
        .collect()
}
