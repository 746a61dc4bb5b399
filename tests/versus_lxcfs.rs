//! Side by side with the C lxcfs (5.0.3): both mounted, the same reader in the same cgroup
//! reads both, and the numbers where docs/semantics.md agrees with lxcfs must match. Where
//! docs/semantics.md deliberately differs, OUR value is checked against the cgroup's files instead.
//!
//! lxcfs takes the cgroup of the init of the reader's pid namespace, so every reader here is
//! the init of a new pid namespace created after joining the cgroup, as in a container.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::{
    Cgroup, Daemon, MIB, fuse_mount_at, kb, key_values, parse_loadavg, parse_uptime, processors,
    stat_cpu_labels,
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

/// What one reader (init of a fresh pid namespace in `cg`) reads: each file of `FILES` from
/// both mounts, and the cgroup's memory.stat right after our meminfo.
struct Reads {
    ours: BTreeMap<&'static str, String>,
    theirs: BTreeMap<&'static str, String>,
    memory_stat: String,
}

fn read_both(cg: &Cgroup, ours: &Daemon, theirs: &Daemon) -> Reads {
    let stat_path = cg.dir("memory").join("memory.stat");
    let mut args: Vec<String> = Vec::new();
    args.push(ours.arg("proc/meminfo"));
    args.push(stat_path.to_str().expect("utf-8").to_string());
    for f in FILES {
        args.push(ours.arg(f));
    }
    for f in FILES {
        args.push(theirs.arg(f));
    }
    // NUL after each file, so contents without a final newline still split cleanly.
    let script = r#"for f in "$@"; do cat "$f" || exit 1; printf '\0'; done"#;
    let mut argv: Vec<&str> = vec!["sh", "-c", script, "sh"];
    argv.extend(args.iter().map(String::as_str));
    let out = cg.run_in_pidns(&argv);
    let parts: Vec<&str> = out.split('\0').collect();
    assert_eq!(
        parts.len(),
        args.len() + 1,
        "expected {} NUL-separated files, read:\n{out}",
        args.len()
    );
    let n = FILES.len();
    Reads {
        memory_stat: parts[1].to_string(),
        ours: FILES
            .iter()
            .copied()
            .zip(parts[2..2 + n].iter().map(|s| s.to_string()))
            .collect(),
        theirs: FILES
            .iter()
            .copied()
            .zip(parts[2 + n..2 + 2 * n].iter().map(|s| s.to_string()))
            .collect(),
    }
}

fn compare(cg: &Cgroup, want_mem_kb: u64, want_cpus: usize, want_online: &str) {
    let theirs = Daemon::start_c_lxcfs();
    let ours = Daemon::start(&["-l", "--enable-cfs"]);
    let r = read_both(cg, &ours, &theirs);
    let both = |f: &str| format!("ours ({f}):\n{}\nlxcfs ({f}):\n{}", r.ours[f], r.theirs[f]);

    // meminfo: the same MemTotal and SwapTotal.
    let (om, tm) = (&r.ours["proc/meminfo"], &r.theirs["proc/meminfo"]);
    assert_eq!(
        kb(om, "MemTotal"),
        want_mem_kb,
        "our MemTotal: expected {want_mem_kb} kB; {}",
        both("proc/meminfo")
    );
    assert_eq!(
        kb(om, "MemTotal"),
        kb(tm, "MemTotal"),
        "MemTotal differs from lxcfs; {}",
        both("proc/meminfo")
    );
    assert_eq!(
        kb(om, "SwapTotal"),
        kb(tm, "SwapTotal"),
        "SwapTotal differs from lxcfs; {}",
        both("proc/meminfo")
    );

    // MemAvailable deliberately differs: lxcfs adds all page cache (tmpfs/shmem too); we add
    // only reclaimable file pages (+ reclaimable slab, which v1 memory.stat does not have).
    // Check ours against the cgroup's memory.stat read right after it (usage moves a little
    // between the two reads: 1 MiB tolerance).
    let st = key_values(&r.memory_stat);
    let stat_kb = |key: &str| {
        st.get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in memory.stat:\n{}", r.memory_stat))
            / 1024
    };
    let free = kb(om, "MemFree");
    let avail = kb(om, "MemAvailable");
    let total = kb(om, "MemTotal");
    let want = (free + stat_kb("total_active_file") + stat_kb("total_inactive_file")).min(total);
    assert!(
        avail <= total,
        "our MemAvailable {avail} > MemTotal {total}; {}",
        both("proc/meminfo")
    );
    assert!(
        avail.abs_diff(want) <= 1024,
        "our MemAvailable: expected MemFree + total_active_file + total_inactive_file = {want} kB (±1024), read {avail}; memory.stat:\n{}\n{}",
        r.memory_stat,
        both("proc/meminfo")
    );
    // Mapped deliberately differs on v2 (lxcfs reads `file_mapped` as `file`); on v1 both
    // take total_mapped_file. Ours must be the cgroup's.
    let mapped = kb(om, "Mapped");
    assert!(
        mapped.abs_diff(stat_kb("total_mapped_file")) <= 1024,
        "our Mapped: expected total_mapped_file {} kB (±1024), read {mapped}; memory.stat:\n{}\n{}",
        stat_kb("total_mapped_file"),
        r.memory_stat,
        both("proc/meminfo")
    );

    // CPUs: same count, same online list, same stat cpu labels.
    let (oc, tc) = (&r.ours["proc/cpuinfo"], &r.theirs["proc/cpuinfo"]);
    assert_eq!(
        processors(oc).len(),
        want_cpus,
        "our cpuinfo: expected {want_cpus} processors; {}",
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
    let (os, ts) = (&r.ours["proc/stat"], &r.theirs["proc/stat"]);
    // The idle columns deliberately differ (ours: host idle + busy − the cgroup's busy), so
    // only the set of cpu lines is compared.
    assert_eq!(
        stat_cpu_labels(os),
        stat_cpu_labels(ts),
        "stat cpu lines differ from lxcfs; {}",
        both("proc/stat")
    );
    assert_eq!(
        stat_cpu_labels(os).len(),
        want_cpus + 1,
        "our stat: expected cpu + {want_cpus} cpuN lines; {}",
        both("proc/stat")
    );

    // uptime: both the age of the reader's pid namespace init (just started).
    let (ou, _) = parse_uptime(&r.ours["proc/uptime"]);
    let tu: f64 = r.theirs["proc/uptime"]
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(
        ou < 5.0,
        "our uptime for a fresh pid namespace: expected < 5 s; {}",
        both("proc/uptime")
    );
    assert!(
        (ou - tu).abs() <= 1.0,
        "uptime differs from lxcfs by more than 1 s; {}",
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

    // swaps: no swap on the host, or a limit: compare the number of lines.
    let (ow, tw) = (&r.ours["proc/swaps"], &r.theirs["proc/swaps"]);
    if kb(om, "SwapTotal") == 0 {
        assert_eq!(
            ow.lines().count(),
            1,
            "our swaps with SwapTotal 0: header only; {}",
            both("proc/swaps")
        );
        assert_eq!(
            tw.lines().count(),
            1,
            "lxcfs swaps with SwapTotal 0: header only; {}",
            both("proc/swaps")
        );
    }
}

#[test]
fn memory_256m_cpuset_0() {
    require!(mount);
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (apt-get install lxcfs fuse3)"
    );
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB).set_cpus("0");
    compare(&cg, 262144, 1, "0");
}

#[test]
fn memory_256m_cpuset_0_1_half_cpu_quota() {
    require!(mount);
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (apt-get install lxcfs fuse3)"
    );
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB)
        .set_cpus("0-1")
        .set_quota(50000, 100000);
    compare(&cg, 262144, 1, "0");
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
