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

#[test]
fn memory_stat_values_are_the_cgroups() {
    require!(mount);
    // A reader whose cgroup holds some page cache: Cached/Active(file)/Inactive(file) come
    // from the cgroup's memory.stat (total_ forms).
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let d = Daemon::start(&[]);
    let stat_path = cg.dir("memory").join("memory.stat");
    let script = "cat \"$1\"; echo ====; cat \"$2\"";
    let out = cg.run(&[
        "sh",
        "-c",
        script,
        "sh",
        &d.arg("proc/meminfo"),
        stat_path.to_str().expect("utf-8"),
    ]);
    let (meminfo, stat) = out.split_once("====\n").expect("two parts");
    let st = key_values(stat);
    let k = |key: &str| {
        st.get(key)
            .copied()
            .unwrap_or_else(|| panic!("no {key} in memory.stat:\n{stat}"))
            / 1024
    };
    let near = |got: u64, want: u64| got.abs_diff(want) <= 1024;
    for (mkey, skey) in [
        ("Cached", "total_cache"),
        ("Active(file)", "total_active_file"),
        ("Inactive(file)", "total_inactive_file"),
        ("Shmem", "total_shmem"),
        ("Mapped", "total_mapped_file"),
    ] {
        let got = kb(meminfo, mkey);
        assert!(
            near(got, k(skey)),
            "{mkey}: expected {skey} = {} kB (±1024), read {got}; memory.stat:\n{stat}\nmeminfo:\n{meminfo}",
            k(skey)
        );
    }
    let free = kb(meminfo, "MemFree");
    let avail = kb(meminfo, "MemAvailable");
    let want = (free + k("total_active_file") + k("total_inactive_file")).min(262144);
    assert!(
        avail.abs_diff(want) <= 1024,
        "MemAvailable = MemFree + active_file + inactive_file (+ slab_reclaimable) = {want} kB (±1024), read {avail}; memory.stat:\n{stat}\nmeminfo:\n{meminfo}"
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
