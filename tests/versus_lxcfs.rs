//! Side by side with the C lxcfs (5.0.3): both mounted, the same reader in the same cgroup
//! reads both, with the cgroup's counters (`memory.stat`, `memory.usage_in_bytes`,
//! `cpuacct.usage_all`) and the host's `/proc/stat` and `/proc/uptime` read by that reader just
//! before and just after. Where docs/semantics.md agrees with lxcfs both must match those
//! counters; where it deliberately differs, ours must match them and lxcfs's must not, which
//! shows that the check can tell the two apart.
//!
//! The cgroup holds real ballast (shmem, page cache, a mapped file) and burns CPU first: in an
//! empty, idle cgroup lxcfs's MemAvailable and ours are the same number, and so are a
//! cpuacct-based stat and one that is not.
//!
//! lxcfs takes the cgroup of the init of the reader's pid namespace, so every reader here is
//! the init of a new pid namespace created after joining the cgroup, as in a container.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::{
    BALLAST_SHMEM_MIB, Ballast, Bracketed, Cgroup, Check, Daemon, MEM_SLACK_KB, MIB, failures,
    fuse_mount_at, kb, parse_loadavg, processors, stat_cpu_labels, uptime_checks,
    uptime_checks_with_busy, user_hz, v1_meminfo_checks, v1_stat_checks,
};

/// The files read from each mount.
const FILES: &[&str] = &[
    "proc/meminfo",
    "proc/cpuinfo",
    "proc/stat",
    "proc/uptime",
    "proc/loadavg",
    "proc/swaps",
    "sys/devices/system/cpu/online",
];

/// CPU time the cgroup burns before the reads, in nanoseconds.
const BURN_NS: u64 = 500_000_000;

/// The meminfo lines where docs/semantics.md agrees with lxcfs on v1: both must lie within the
/// cgroup's counters. (MemAvailable deliberately differs; AnonPages is lxcfs's
/// active_anon + inactive_anon − shmem, close to `total_rss` but not bound to it.)
const MEMINFO_AGREED: &[&str] = &[
    "MemTotal",
    "MemFree",
    "Cached",
    "Shmem",
    "Mapped",
    "Active(file)",
    "Inactive(file)",
    "Active(anon)",
    "Inactive(anon)",
];

/// What one reader (init of a fresh pid namespace in `cg`, after burning CPU) reads: each file
/// of `FILES` from both mounts, with the counters around.
struct Reads {
    ours: BTreeMap<&'static str, String>,
    theirs: BTreeMap<&'static str, String>,
    r: Bracketed,
}

fn read_both(cg: &Cgroup, ours: &Daemon, theirs: &Daemon) -> Reads {
    let paths: Vec<String> = FILES
        .iter()
        .map(|f| ours.arg(f))
        .chain(FILES.iter().map(|f| theirs.arg(f)))
        .collect();
    // Idle a second after the burn, so that the idle time of uptime is not 0 (it would be the
    // same number for every formula).
    let setup = format!("{}; sleep 1", cg.burn_script(BURN_NS, 2));
    let r = cg.read_bracketed(&setup, &paths, true);
    let n = FILES.len();
    let files = |texts: &[String]| {
        FILES
            .iter()
            .copied()
            .zip(texts.iter().cloned())
            .collect::<BTreeMap<_, _>>()
    };
    Reads {
        ours: files(&r.texts[..n]),
        theirs: files(&r.texts[n..]),
        r,
    }
}

/// The checks whose description starts with one of the meminfo `keys`.
fn about(checks: &[Check], keys: &[&str]) -> Vec<Check> {
    checks
        .iter()
        .filter(|c| keys.iter().any(|k| c.what.starts_with(&format!("{k} "))))
        .cloned()
        .collect()
}

/// Compares both mounts for a reader in `cg`, which shows the host CPUs `shown` and the
/// online list `want_online`.
fn compare(cg: &Cgroup, want_mem_kb: u64, shown: &[u32], want_online: &str) {
    let theirs = Daemon::start_c_lxcfs();
    let ours = Daemon::start(&["-l", "--enable-cfs"]);
    let _ballast = Ballast::charge(cg);
    let reads = read_both(cg, &ours, &theirs);
    let (r, around) = (&reads, &reads.r.around);
    Ballast::assert_held(around);
    let both = |f: &str| format!("ours ({f}):\n{}\nlxcfs ({f}):\n{}", r.ours[f], r.theirs[f]);
    let report = |checks: &[Check]| failures(checks).join("\n");

    // meminfo: ours within the cgroup's counters; lxcfs's too where it agrees.
    let (om, tm) = (&r.ours["proc/meminfo"], &r.theirs["proc/meminfo"]);
    let ours_checks = v1_meminfo_checks(om, want_mem_kb, around);
    assert!(
        failures(&ours_checks).is_empty(),
        "our meminfo off the cgroup's counters:\n{}\n{}",
        report(&ours_checks),
        both("proc/meminfo")
    );
    let theirs_checks = v1_meminfo_checks(tm, want_mem_kb, around);
    let agreed = about(&theirs_checks, MEMINFO_AGREED);
    assert!(
        agreed.len() >= MEMINFO_AGREED.len() && failures(&agreed).is_empty(),
        "lxcfs's meminfo should agree with the cgroup's counters on {MEMINFO_AGREED:?}:\n{}\n{}",
        report(&agreed),
        both("proc/meminfo")
    );
    assert_eq!(
        kb(om, "SwapTotal"),
        kb(tm, "SwapTotal"),
        "SwapTotal differs from lxcfs (no swap limit); {}",
        both("proc/meminfo")
    );
    // MemAvailable deliberately differs: lxcfs adds all page cache, shmem included. The shmem
    // ballast cannot be reclaimed, and lxcfs counts it as available.
    let mem_available = about(&theirs_checks, &["MemAvailable"]);
    assert!(
        !failures(&mem_available).is_empty(),
        "lxcfs's MemAvailable should fail the check ours passes; {}",
        both("proc/meminfo")
    );
    let (oa, ta) = (kb(om, "MemAvailable"), kb(tm, "MemAvailable"));
    assert!(
        ta + 2 * MEM_SLACK_KB >= oa + BALLAST_SHMEM_MIB * 1024,
        "lxcfs's MemAvailable {ta} kB should exceed ours {oa} kB by the {BALLAST_SHMEM_MIB} MiB \
         of shmem it counts as available; {}",
        both("proc/meminfo")
    );

    // CPUs: same count, same online list, same stat cpu labels.
    let (oc, tc) = (&r.ours["proc/cpuinfo"], &r.theirs["proc/cpuinfo"]);
    assert_eq!(
        processors(oc).len(),
        shown.len(),
        "our cpuinfo: expected {} processors; {}",
        shown.len(),
        both("proc/cpuinfo")
    );
    assert_eq!(
        processors(oc).len(),
        processors(tc).len(),
        "processor count differs from lxcfs; {}",
        both("proc/cpuinfo")
    );
    let (oo, to) = (
        &r.ours["sys/devices/system/cpu/online"],
        &r.theirs["sys/devices/system/cpu/online"],
    );
    assert_eq!(
        oo.trim(),
        want_online,
        "our online: expected {want_online:?}; {}",
        both("sys/devices/system/cpu/online")
    );
    assert_eq!(
        oo.trim(),
        to.trim(),
        "online differs from lxcfs; {}",
        both("sys/devices/system/cpu/online")
    );

    // stat: the same cpu lines; ours has the cgroup's cpuacct time on each shown CPU and the
    // rest of the host's time as idle. lxcfs's CPU view (--enable-cfs) counts the cgroup's
    // time from its own first read of the cgroup, so its numbers cannot pass.
    let (os, ts) = (&r.ours["proc/stat"], &r.theirs["proc/stat"]);
    assert_eq!(
        stat_cpu_labels(os),
        stat_cpu_labels(ts),
        "stat cpu lines differ from lxcfs; {}",
        both("proc/stat")
    );
    let hz = user_hz();
    let checks = v1_stat_checks(os, shown, hz, around);
    assert!(
        failures(&checks).is_empty(),
        "our stat off the cgroup's cpuacct.usage_all:\n{}\n{}",
        report(&checks),
        both("proc/stat")
    );
    assert!(
        !failures(&v1_stat_checks(ts, shown, hz, around)).is_empty(),
        "lxcfs's stat (--enable-cfs) should fail the check ours passes; {}",
        both("proc/stat")
    );

    // uptime: the age of the reader's pid-namespace init for both. Idle: ours is
    // age × shown CPUs − the cgroup's CPU time, lxcfs's age − that time, the same number
    // only when one CPU is shown.
    let k = shown.len() as u64;
    let start = r.r.start_ticks;
    let checks = uptime_checks(&r.ours["proc/uptime"], k, start, hz, around);
    assert!(
        failures(&checks).is_empty(),
        "our uptime:\n{}\n{}",
        report(&checks),
        both("proc/uptime")
    );
    // lxcfs rounds where the kernel truncates: one hundredth more is its rounding. Its busy
    // time is `cpuacct.usage`, not usage_all's tick-sampled sum, which runs ahead of it by
    // several hundredths on a loaded machine.
    let theirs_up = failures(&uptime_checks_with_busy(
        &r.theirs["proc/uptime"],
        k,
        start,
        hz,
        around,
        around.usage_ns(),
    ));
    assert_eq!(
        theirs_up.is_empty(),
        k == 1,
        "lxcfs's uptime should agree with the counters exactly when one CPU is shown ({k} \
         are):\n{}\n{}",
        theirs_up.join("\n"),
        both("proc/uptime")
    );

    // loadavg with -l: both in the kernel's format. (lastpid deliberately differs: lxcfs
    // prints a host pid, we number it in the reader's pid namespace.)
    let ol = parse_loadavg(&r.ours["proc/loadavg"]).unwrap_or_else(|e| panic!("ours: {e}"));
    parse_loadavg(&r.theirs["proc/loadavg"]).unwrap_or_else(|e| panic!("lxcfs: {e}"));
    assert!(
        ol.total >= 1 && ol.total < 20,
        "our loadavg counts only the cgroup's tasks; {}",
        both("proc/loadavg")
    );

    // swaps without a swap limit (tests/swap.rs sets one): the same number of lines.
    let (ow, tw) = (&r.ours["proc/swaps"], &r.theirs["proc/swaps"]);
    assert_eq!(
        ow.lines().count(),
        tw.lines().count(),
        "swaps line count differs from lxcfs; {}",
        both("proc/swaps")
    );
}

/// What a side-by-side comparison needs: mounting, the C lxcfs, and gcc for the ballast.
macro_rules! require_comparison {
    () => {
        require!(mount);
        require!(
            program "lxcfs",
            "the C lxcfs is not installed (apt-get install lxcfs fuse3)"
        );
        require!(
            program "gcc",
            "gcc builds the process that keeps the ballast's file mapped (scripts/deps.sh installs it)"
        );
    };
}

#[test]
fn memory_256m_cpuset_0() {
    require_comparison!();
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB).set_cpus("0");
    compare(&cg, 262144, &[0], "0");
}

#[test]
fn memory_256m_cpuset_0_1_half_cpu_quota() {
    require_comparison!();
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB)
        .set_cpus("0-1")
        .set_quota(50000, 100000);
    compare(&cg, 262144, &[0], "0");
}

/// Two CPUs shown: lxcfs's uptime idle (age − busy) is then not the two CPUs' idle time.
#[test]
fn memory_256m_cpuset_0_1() {
    require_comparison!();
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB).set_cpus("0-1");
    compare(&cg, 262144, &[0, 1], "0-1");
}

/// Scripts and tools written for lxcfs find mounts by type (`findmnt -t fuse.lxcfs`, `grep
/// fuse.lxcfs /proc/mounts` in Kubernetes remount scripts): ours must look the same.
#[test]
fn mounted_as_the_same_filesystem_type_and_source() {
    require!(mount);
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (apt-get install lxcfs fuse3)"
    );
    let ours = Daemon::start(&[]);
    let theirs = Daemon::start_c_lxcfs();
    let a = fuse_mount_at(&ours.mnt).expect("our mount");
    let b = fuse_mount_at(&theirs.mnt).expect("lxcfs's mount");
    assert_eq!(
        (a.fstype.as_str(), a.source.as_str()),
        ("fuse.lxcfs", "lxcfs")
    );
    assert_eq!((&a.fstype, &a.source), (&b.fstype, &b.source));
    let ro = |m: &str| m.split(',').any(|o| o == "ro");
    assert!(ro(&a.mount_options), "{}", a.mount_options);
    assert!(
        a.super_options.contains("allow_other"),
        "{}",
        a.super_options
    );
}
