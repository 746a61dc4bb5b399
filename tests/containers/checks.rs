//! What a container should see, and the checks of its report against it.

use std::collections::BTreeMap;

use crate::common::container::{Report, Rootfs, rootfs_busybox};
use crate::common::{
    assert_busybox_cat_takes_sendfile, kb, line_of, parse_loadavg, parse_uptime, processors,
    stat_cpu_labels,
};
use crate::host;

/// What the host itself shows, to tell "the host's value" from "the container's".
pub(crate) struct HostView {
    /// `/proc/meminfo`.
    pub(crate) meminfo: String,
    /// `/sys/devices/system/cpu/online`.
    pub(crate) online: String,
    /// How many processors `/proc/cpuinfo` lists.
    pub(crate) processors: usize,
    /// The labels of the `cpu*` lines of `/proc/stat`.
    pub(crate) stat_labels: Vec<String>,
    /// `/proc/swaps`.
    pub(crate) swaps: String,
    /// What the probe's `sysconf` printed on the host.
    pub(crate) sysconf: BTreeMap<String, i64>,
}

impl HostView {
    /// Reads the host's files, and the probe's `sysconf` run on the host.
    pub(crate) fn read(rootfs: &Rootfs) -> HostView {
        let sysconf = rootfs
            .probe_on_host(&["sysconf"])
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        HostView {
            meminfo: host("/proc/meminfo"),
            online: host("/sys/devices/system/cpu/online"),
            processors: processors(&host("/proc/cpuinfo")).len(),
            stat_labels: stat_cpu_labels(&host("/proc/stat")),
            swaps: host("/proc/swaps"),
            sysconf,
        }
    }

    /// The host's MemTotal, in kB.
    pub(crate) fn mem_total(&self) -> u64 {
        kb(&self.meminfo, "MemTotal")
    }
}

/// What a container with our files should see.
pub(crate) struct Want {
    /// MemTotal in kB.
    pub(crate) mem_kb: u64,
    /// The online list, without the newline.
    pub(crate) online: &'static str,
    /// CPUs in cpuinfo, stat and `sysconf(_SC_NPROCESSORS_ONLN)`.
    pub(crate) cpus: usize,
    /// CPUs in the cpuset (what `nproc`, i.e. `sched_getaffinity`, counts).
    pub(crate) cpuset_cpus: usize,
}

impl Want {
    /// A container whose cpuset is the one CPU `online`, with `mem_kb` of memory.
    pub(crate) fn one_cpu(mem_kb: u64, online: &'static str) -> Want {
        Want {
            mem_kb,
            online,
            cpus: 1,
            cpuset_cpus: 1,
        }
    }
}

/// The labels of the `cpu*` lines of a stat showing `n` CPUs.
pub(crate) fn cpu_labels(n: usize) -> Vec<String> {
    std::iter::once("cpu".to_string())
        .chain((0..n).map(|i| format!("cpu{i}")))
        .collect()
}

/// `0`, `1`, ... `n - 1`.
pub(crate) fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// MemTotal is the container's limit, and MemFree <= MemAvailable <= MemTotal.
pub(crate) fn check_memory(r: &Report, want: &Want) {
    let name = &r.name;
    let meminfo = r.get("meminfo");
    let total = kb(meminfo, "MemTotal");
    assert_eq!(
        total, want.mem_kb,
        "container {name}: expected MemTotal {} kB (its memory limit), read:\n{meminfo}",
        want.mem_kb
    );
    let free = kb(meminfo, "MemFree");
    let avail = kb(meminfo, "MemAvailable");
    assert!(
        free <= total && avail <= total && avail >= free,
        "container {name}: expected MemFree {free} <= MemAvailable {avail} <= MemTotal {total}, read:\n{meminfo}"
    );
}

/// The probe touched 100 MiB and read MemAvailable while holding it.
pub(crate) fn check_touch(r: &Report, want: &Want) {
    let name = &r.name;
    let t = r.numbers("touch");
    let (total, before, after) = (t["total"], t["before"], t["after"]);
    assert_eq!(
        total, want.mem_kb as i64,
        "container {name}: the probe read MemTotal {total} kB, expected {} kB",
        want.mem_kb
    );
    assert!(
        before <= total && after >= 0,
        "container {name}: MemAvailable before {before} kB must be within MemTotal {total} kB, \
         after {after} kB not negative"
    );
    assert!(
        before - after >= 80 * 1024,
        "container {name}: after touching 100 MiB, MemAvailable should fall by at least 80 MiB \
         (81920 kB), but it went from {before} kB to {after} kB (a fall of {} kB)",
        before - after
    );
}

/// SwapTotal within the host's, and /proc/swaps showing it.
pub(crate) fn check_swap(r: &Report, host: &HostView) {
    let name = &r.name;
    let meminfo = r.get("meminfo");
    let swaps = r.get("swaps");
    let header = format!(
        "{}\n",
        host.swaps
            .lines()
            .next()
            .expect("the host's /proc/swaps has a header")
    );
    let total = kb(meminfo, "SwapTotal");
    if kb(&host.meminfo, "SwapTotal") == 0 {
        assert_eq!(
            (total, kb(meminfo, "SwapFree")),
            (0, 0),
            "container {name}: the host has no swap, expected SwapTotal and SwapFree 0, read:\n{meminfo}"
        );
        assert_eq!(
            swaps, header,
            "container {name}: the host has no swap, expected /proc/swaps to be the header only"
        );
    } else {
        assert!(
            total <= kb(&host.meminfo, "SwapTotal"),
            "container {name}: SwapTotal {total} kB above the host's, read:\n{meminfo}"
        );
        assert!(
            swaps.starts_with(&header),
            "container {name}: /proc/swaps starts with the host's header, read:\n{swaps}"
        );
        let sizes: Vec<&str> = swaps
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(2))
            .collect();
        let want: Vec<String> = if total > 0 {
            vec![total.to_string()]
        } else {
            vec![]
        };
        assert_eq!(
            sizes, want,
            "container {name}: /proc/swaps shows SwapTotal {total} kB of meminfo, read:\n{swaps}"
        );
    }
}

/// cpuinfo, stat, online, sysconf and nproc show the container's CPUs.
pub(crate) fn check_cpus(r: &Report, want: &Want) {
    let name = &r.name;
    let cpuinfo = r.get("cpuinfo");
    assert_eq!(
        processors(cpuinfo),
        numbered(want.cpus),
        "container {name}: expected {} processors numbered from 0 in /proc/cpuinfo, read:\n{cpuinfo}",
        want.cpus
    );
    let stat = r.get("stat");
    assert_eq!(
        stat_cpu_labels(stat),
        cpu_labels(want.cpus),
        "container {name}: expected the cpu lines of {} CPUs in /proc/stat, read:\n{stat}",
        want.cpus
    );
    assert_eq!(
        r.get("online"),
        format!("{}\n", want.online),
        "container {name}: /sys/devices/system/cpu/online"
    );
    assert_eq!(
        r.number("sysconf", "onln"),
        want.cpus as i64,
        "container {name}: glibc sysconf(_SC_NPROCESSORS_ONLN) (reads the online file); \
         probe printed:\n{}",
        r.get("sysconf")
    );
    // nproc asks sched_getaffinity: the kernel's cpuset, never the quota.
    assert_eq!(
        r.get("nproc").trim(),
        want.cpuset_cpus.to_string(),
        "container {name}: busybox nproc (sched_getaffinity) counts the cpuset"
    );
}

/// Uptime of a container with its own pid namespace: its own age.
pub(crate) fn check_fresh_uptime(r: &Report, cpus: usize) {
    let name = &r.name;
    let text = r.get("uptime");
    let (up, idle) = parse_uptime(text);
    let bound = r.elapsed.as_secs_f64() + 0.01;
    assert!(
        up < 30.0 && up <= bound,
        "container {name}: uptime {up} s should be the container's age: under 30 s and at most \
         {bound:.2} s (the time since runc run started it), read {text:?}"
    );
    assert!(
        idle >= 0.0 && idle <= up * cpus as f64 + 0.02,
        "container {name}: idle {idle} s should be within 0..=uptime x {cpus} CPUs, read {text:?}"
    );
}

/// The probe printed its own pid, then read /proc/loadavg (daemon run with `-l`).
pub(crate) fn check_loadavg(r: &Report) {
    let name = &r.name;
    let text = r.get("loadavg");
    let (pid_line, file) = text.split_once('\n').expect("pid line, then the file");
    let pid: u64 = pid_line
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("container {name}: no pid line in {text:?}"));
    let load = parse_loadavg(file)
        .unwrap_or_else(|e| panic!("container {name}: not the kernel's loadavg format: {e}"));
    // The container holds only its shell and the probe (the host has hundreds of tasks).
    assert!(
        (1..=5).contains(&load.total) && load.running <= load.total,
        "container {name}: running/total should count the container's few tasks, read {file:?}"
    );
    assert_eq!(
        load.last_pid, pid,
        "container {name}: the last pid should be the newest task, the reading probe, as the \
         reader's pid namespace numbers it ({pid}), read {file:?}"
    );
}

/// What tools inside the container show, beyond the files themselves.
pub(crate) fn check_tools(r: &Report, want: &Want, host: &HostView) {
    let name = &r.name;
    // busybox top reads /proc/meminfo: fixed.
    let top = r.get("top");
    let mem = top
        .lines()
        .find(|l| l.starts_with("Mem: "))
        .unwrap_or_else(|| panic!("container {name}: no Mem: line from top:\n{top}"));
    // `Mem: 604K used, 261540K free, ...`: the number before `word`.
    let k = |word: &str| -> u64 {
        let w: Vec<&str> = mem.split_whitespace().collect();
        w.iter()
            .position(|x| x.trim_end_matches(',') == word)
            .filter(|&i| i > 0)
            .and_then(|i| w[i - 1].trim_end_matches('K').parse().ok())
            .unwrap_or_else(|| panic!("container {name}: no \"NK {word}\" in top's {mem:?}"))
    };
    assert_eq!(
        k("used") + k("free"),
        want.mem_kb,
        "container {name}: busybox top's used + free should be the container's MemTotal, printed:\n{mem}"
    );
    // busybox free takes total from sysinfo(2), and glibc's _SC_PHYS_PAGES too: the host's.
    let free = r.get("free");
    let column = |i: usize| -> u64 {
        free.lines()
            .find(|l| l.starts_with("Mem:"))
            .and_then(|l| l.split_whitespace().nth(i)?.parse().ok())
            .unwrap_or_else(|| panic!("container {name}: no Mem: column {i} from free:\n{free}"))
    };
    let (total, available) = (column(1), column(6));
    assert_eq!(
        total,
        host.mem_total(),
        "container {name}: busybox free's total comes from sysinfo(2), which no bind mount \
         changes; expected the host's MemTotal, printed:\n{free}"
    );
    assert!(
        available <= want.mem_kb,
        "container {name}: busybox free's available column comes from /proc/meminfo: expected \
         at most the container's {} kB, printed:\n{free}",
        want.mem_kb
    );
    assert_eq!(
        r.number("sysconf", "phys_kb"),
        host.mem_total() as i64,
        "container {name}: sysconf(_SC_PHYS_PAGES) comes from sysinfo(2): expected the host's MemTotal"
    );
}

/// glibc's `_SC_NPROCESSORS_CONF` counts the `cpuN` directories, which a bind mount of the
/// `online` file alone leaves as the host's.
pub(crate) fn check_conf_is_hosts(r: &Report, host: &HostView) {
    assert_eq!(
        r.number("sysconf", "conf"),
        host.sysconf["conf"],
        "container {}: with only the online file bound, sysconf(_SC_NPROCESSORS_CONF) should \
         still be the host's (it counts the cpuN directories)",
        r.name
    );
}

/// Every busybox `cat` read of the splice loop gave the container's own view, and that `cat`
/// copies with sendfile (else the loop would read with read(2) only).
pub(crate) fn check_splice(r: &Report, want: &Want, rounds: usize) {
    assert_busybox_cat_takes_sendfile(rootfs_busybox());
    let name = &r.name;
    let meminfo = r.get("meminfo");
    let expected: BTreeMap<&str, String> = [
        ("online-pipe", want.online.to_string()),
        ("online-file", want.online.to_string()),
        ("memtotal-file", line_of(meminfo, "MemTotal").to_string()),
        (
            "meminfo-lines-file",
            meminfo
                .lines()
                .filter(|l| l.contains(':'))
                .count()
                .to_string(),
        ),
        ("processors-pipe", want.cpus.to_string()),
        ("stat-cpus-pipe", (want.cpus + 1).to_string()),
    ]
    .into_iter()
    .collect();
    let tally = r.tally("splice");
    for (kind, value) in &expected {
        let seen = tally.get(*kind).cloned().unwrap_or_default();
        let want_seen: BTreeMap<String, usize> = [(value.clone(), rounds)].into_iter().collect();
        assert_eq!(
            seen, want_seen,
            "container {name}: busybox cat ({kind}) read {rounds} times should always give {value:?} \
             (value -> times seen)"
        );
    }
}

/// The files bound from our daemon, whatever the container's pid namespace: meminfo, swaps,
/// the CPU files and loadavg (the daemon run with `-l`).
pub(crate) fn check_files(r: &Report, want: &Want, host: &HostView) {
    check_memory(r, want);
    check_swap(r, host);
    check_cpus(r, want);
    check_loadavg(r);
}

/// Everything a container with its own pid namespace and our files checks: the files, its
/// own uptime, and what tools show.
pub(crate) fn check_limited(r: &Report, want: &Want, host: &HostView) {
    check_files(r, want, host);
    check_fresh_uptime(r, want.cpus);
    check_tools(r, want, host);
}
