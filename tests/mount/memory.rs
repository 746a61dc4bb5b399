//! `proc/meminfo` and `proc/swaps` for readers under memory limits, and `show` beside the
//! mount.

use crate::common::*;
use crate::host;

#[test]
fn memory_limit_256m() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let d = Daemon::start(&[]);
    let meminfo = cg.read(&d.path("proc/meminfo"));
    let total = kb(&meminfo, "MemTotal");
    assert_eq!(
        total, 262144,
        "MemTotal of a 256 MiB cgroup: expected 262144 kB, read:\n{meminfo}"
    );
    assert_eq!(
        line_of(&meminfo, "MemTotal"),
        "MemTotal:         262144 kB",
        "MemTotal line layout as the kernel's, read:\n{meminfo}"
    );
    let free = kb(&meminfo, "MemFree");
    let avail = kb(&meminfo, "MemAvailable");
    assert!(
        free <= total,
        "expected MemFree {free} <= MemTotal {total}, read:\n{meminfo}"
    );
    assert!(
        avail <= total,
        "expected MemAvailable {avail} <= MemTotal {total}, read:\n{meminfo}"
    );
    assert!(
        avail >= free,
        "expected MemAvailable {avail} >= MemFree {free}, read:\n{meminfo}"
    );
    let host_meminfo = host("/proc/meminfo");
    assert_eq!(
        keys(&meminfo),
        keys(&host_meminfo),
        "meminfo keeps the host's keys in order; read:\n{meminfo}"
    );
    assert_eq!(kb(&meminfo, "Buffers"), 0, "Buffers is 0, read:\n{meminfo}");

    let swaps = cg.read(&d.path("proc/swaps"));
    let host_swaps = host("/proc/swaps");
    let header = host_swaps
        .lines()
        .next()
        .expect("host /proc/swaps has a header")
        .to_string()
        + "\n";
    if kb(&host_meminfo, "SwapTotal") == 0 {
        assert_eq!(
            kb(&meminfo, "SwapTotal"),
            0,
            "host has no swap: expected SwapTotal 0, read:\n{meminfo}"
        );
        assert_eq!(
            kb(&meminfo, "SwapFree"),
            0,
            "host has no swap: expected SwapFree 0, read:\n{meminfo}"
        );
        assert_eq!(
            swaps, header,
            "host has no swap: expected /proc/swaps to be the header only, read:\n{swaps}"
        );
    } else {
        let st = kb(&meminfo, "SwapTotal");
        assert!(
            st <= kb(&host_meminfo, "SwapTotal"),
            "SwapTotal {st} capped at the host's, read:\n{meminfo}"
        );
        assert!(
            swaps.starts_with(&header),
            "swaps starts with the host header, read:\n{swaps}"
        );
    }
}

#[test]
fn nested_cgroup_parent_limit_wins() {
    require!(mount);
    let parent = Cgroup::new();
    parent.set_memory_limit(128 * MIB);
    let child = parent.child("child");
    child.set_memory_limit(512 * MIB);
    let d = Daemon::start(&[]);
    let meminfo = child.read(&d.path("proc/meminfo"));
    assert_eq!(
        kb(&meminfo, "MemTotal"),
        131072,
        "child (512 MiB) of a 128 MiB parent: expected MemTotal 131072 kB (the parent's), read:\n{meminfo}"
    );
    assert!(
        kb(&meminfo, "MemFree") <= 131072,
        "MemFree <= MemTotal, read:\n{meminfo}"
    );
    assert!(
        kb(&meminfo, "MemAvailable") <= 131072,
        "MemAvailable <= MemTotal, read:\n{meminfo}"
    );
    let parent_view = parent.read(&d.path("proc/meminfo"));
    assert_eq!(
        kb(&parent_view, "MemTotal"),
        131072,
        "parent reader: expected MemTotal 131072 kB, read:\n{parent_view}"
    );
}

/// The daemon keeps the descriptors of the cgroup files it reads. A container removed and
/// made again under the same cgroup path (a restarted pod, a recreated LXC container) must
/// get its new limit, not an error turned into the host's values: the kept descriptor of the
/// removed cgroup answers ENODEV and the path is opened again. One serving thread, so the
/// second read meets the descriptor the first one kept.
#[test]
fn a_cgroup_made_again_under_the_same_path_shows_its_new_limit() {
    require!(mount);
    let parent = Cgroup::new();
    let d = Daemon::start(&["--threads", "1"]);
    for limit_mib in [256, 128, 64] {
        let child = parent.child("again");
        child.set_memory_limit(limit_mib * MIB);
        let meminfo = child.read(&d.path("proc/meminfo"));
        assert_eq!(
            kb(&meminfo, "MemTotal"),
            limit_mib * 1024,
            "a cgroup at a path that held another with another limit, read:\n{meminfo}"
        );
    }
}

/// The meminfo lines made from `memory.stat` against the cgroup's own counters, with MiBs of
/// shmem, page cache and mapped file in it: an empty cgroup has 0 in all of them, which a line
/// read from the wrong key, or lxcfs's MemAvailable, would match as well.
///
/// The ballast sits in a child cgroup and the reader in its parent, so the parent's own
/// counters (`shmem`, `cache`, `mapped_file`) hold none of it while the `total_` forms, which
/// include children, hold it all: a line read from the local key is off by the ballast.
#[test]
fn memory_stat_values_are_the_cgroups() {
    require!(mount);
    require!(
        program "gcc",
        "gcc builds the process that keeps the ballast's file mapped (scripts/deps.sh installs it)"
    );
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let child = cg.child("ballast");
    let _ballast = Ballast::charge(&child);
    let d = Daemon::start(&[]);
    let r = cg.read_bracketed("", &[d.arg("proc/meminfo")], false);
    let meminfo = &r.texts[0];
    Ballast::assert_held(&r.around);
    for key in ["shmem", "cache", "mapped_file"] {
        let own = r.around.stat_kb(key).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            own.hi < BALLAST_MAPPED_MIB * 1024,
            "the reader's cgroup itself holds no ballast, so its own {key} ({own} kB) should \
             be below {BALLAST_MAPPED_MIB} MiB"
        );
    }
    let checks = v1_meminfo_checks(meminfo, 262144, &r.around);
    let failed = failures(&checks);
    assert!(
        failed.is_empty(),
        "meminfo lines off the cgroup's counters:\n{}\nmeminfo:\n{meminfo}\nmemory.stat before:\n{}",
        failed.join("\n"),
        r.raw_before[0]
    );

    // Shown able to fail: lxcfs's MemAvailable (MemFree + all page cache, shmem included)
    // computed from the same file is off by the shmem ballast.
    let cached = kb(meminfo, "Cached");
    let lxcfs_avail = kb(meminfo, "MemFree") + cached;
    let broken = meminfo.replace(
        line_of(meminfo, "MemAvailable"),
        &format!("MemAvailable:   {lxcfs_avail:>8} kB"),
    );
    let failed = failures(&v1_meminfo_checks(&broken, 262144, &r.around));
    assert!(
        failed.iter().any(|f| f.starts_with("MemAvailable")),
        "MemAvailable = MemFree + Cached ({lxcfs_avail} kB) should fail the check; it passed:\n{broken}"
    );
}

#[test]
fn show_matches_the_mount() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB).set_cpus("0");
    let d = Daemon::start(&[]);
    let pid = cg.spawn(&["sleep", "30"]);
    let mounted = cg.read(&d.path("proc/meminfo"));
    let out = run_bin(&["show", "--pid", &pid.to_string(), "proc/meminfo"]);
    assert_succeeds(&out, &format!("show --pid {pid} proc/meminfo"));
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        kb(&shown, "MemTotal"),
        262144,
        "show for a 256 MiB reader: expected MemTotal 262144 kB, printed:\n{shown}"
    );
    assert_eq!(
        line_of(&shown, "MemTotal"),
        line_of(&mounted, "MemTotal"),
        "show and the mount disagree on MemTotal; show:\n{shown}\nmount:\n{mounted}"
    );
    assert_eq!(
        keys(&shown),
        keys(&mounted),
        "show and the mount have different keys; show:\n{shown}\nmount:\n{mounted}"
    );

    // Several files: `==> FILE <==` headers, as head prints them.
    let out = run_bin(&[
        "show",
        "--pid",
        &pid.to_string(),
        "proc/meminfo",
        "sys/devices/system/cpu/online",
    ]);
    assert_succeeds(&out, "show with two files");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("==> proc/meminfo <==\n"),
        "expected a first header, printed:\n{text}"
    );
    assert!(
        text.ends_with("\n==> sys/devices/system/cpu/online <==\n0\n"),
        "expected the online file (cpuset 0: \"0\") after its header, printed:\n{text}"
    );

    // With --enable-cfs and no quota the cpus stay the cpuset's.
    let out = run_bin(&[
        "show",
        "--pid",
        &pid.to_string(),
        "--enable-cfs",
        "proc/cpuinfo",
    ]);
    assert_succeeds(&out, "show --enable-cfs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        processors(&text),
        ["0"],
        "show cpuinfo for cpuset 0: expected one processor 0, printed:\n{text}"
    );

    // A missing pid: exit 1 and one error line naming it.
    let out = run_bin(&["show", "--pid", "999999999", "proc/meminfo"]);
    assert_fails(&out, 1, "999999999");
}
