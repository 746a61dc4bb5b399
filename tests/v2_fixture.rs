//! `lxcfs-rs show --host-root DIR` on a generated pure cgroup v2 host: every file computed
//! from fixture cgroup files, with exact expected values. Needs neither root nor FUSE.
//!
//! The fixture host: 4 CPUs (0-3), MemTotal 8147416 kB, a 2 GiB swap partition, one cgroup2
//! mount at /sys/fs/cgroup. Reader pid 4242 sits in `/ctr/child` and is the init of its own
//! pid namespace; `ctr` has the limits (256 MiB, 64 MiB swap, half a CPU, cpus 1-2) and the
//! child larger ones or `max`. Pid 4343 sits in the root cgroup in the host pid namespace.

#[macro_use]
mod common;

use std::fs;
use std::path::Path;

use common::{
    TestDir, assert_fails, assert_succeeds, field_values, kb, keys, line_of, processors, run_bin,
    stat_cpu_labels,
};

const READER: u32 = 4242;
const ROOT_READER: u32 = 4343;
const MIB: u64 = 1024 * 1024;

/// Host meminfo keys and values (kB, or a count where there is no unit).
const HOST_MEMINFO: &[(&str, u64, bool)] = &[
    ("MemTotal", 8147416, true),
    ("MemFree", 5123456, true),
    ("MemAvailable", 6789012, true),
    ("Buffers", 123456, true),
    ("Cached", 1234567, true),
    ("SwapCached", 1024, true),
    ("Active", 1500000, true),
    ("Inactive", 900000, true),
    ("Active(anon)", 700000, true),
    ("Inactive(anon)", 100000, true),
    ("Active(file)", 800000, true),
    ("Inactive(file)", 800000, true),
    ("Unevictable", 12345, true),
    ("Mlocked", 12345, true),
    ("SwapTotal", 2097148, true),
    ("SwapFree", 2000000, true),
    ("Zswap", 0, true),
    ("Zswapped", 0, true),
    ("Dirty", 100, true),
    ("Writeback", 0, true),
    ("AnonPages", 780000, true),
    ("Mapped", 300000, true),
    ("Shmem", 20000, true),
    ("KReclaimable", 150000, true),
    ("Slab", 250000, true),
    ("SReclaimable", 150000, true),
    ("SUnreclaim", 100000, true),
    ("KernelStack", 12000, true),
    ("PageTables", 20000, true),
    ("SecPageTables", 0, true),
    ("NFS_Unstable", 0, true),
    ("Bounce", 0, true),
    ("WritebackTmp", 0, true),
    ("CommitLimit", 6170856, true),
    ("Committed_AS", 3000000, true),
    ("VmallocTotal", 34359738367, true),
    ("VmallocUsed", 40000, true),
    ("VmallocChunk", 0, true),
    ("Percpu", 5000, true),
    ("HardwareCorrupted", 0, true),
    ("AnonHugePages", 10240, true),
    ("ShmemHugePages", 0, true),
    ("ShmemPmdMapped", 0, true),
    ("FileHugePages", 0, true),
    ("FilePmdMapped", 0, true),
    ("Unaccepted", 0, true),
    ("HugePages_Total", 0, false),
    ("HugePages_Free", 0, false),
    ("HugePages_Rsvd", 0, false),
    ("HugePages_Surp", 0, false),
    ("Hugepagesize", 2048, true),
    ("Hugetlb", 0, true),
    ("DirectMap4k", 200000, true),
    ("DirectMap2M", 8000000, true),
];

fn host_meminfo() -> String {
    HOST_MEMINFO
        .iter()
        .map(|(k, v, unit)| {
            format!(
                "{:<16}{:>8}{}\n",
                format!("{k}:"),
                v,
                if *unit { " kB" } else { "" }
            )
        })
        .collect()
}

fn host_cpuinfo() -> String {
    (0..4)
        .map(|n| {
            format!(
                "processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
                 model name\t: Intel(R) Xeon(R) Fixture CPU @ 2.00GHz\nstepping\t: 7\nmicrocode\t: 0x1\n\
                 cpu MHz\t\t: 2000.000\ncache size\t: 36608 KB\nphysical id\t: 0\nsiblings\t: 4\n\
                 core id\t\t: {n}\ncpu cores\t: 4\napicid\t\t: {n}\ninitial apicid\t: {n}\nfpu\t\t: yes\n\
                 fpu_exception\t: yes\ncpuid level\t: 13\nwp\t\t: yes\nflags\t\t: fpu vme de pse tsc msr\n\
                 bugs\t\t: spectre_v1\nbogomips\t: 4000.00\nclflush size\t: 64\ncache_alignment\t: 64\n\
                 address sizes\t: 46 bits physical, 48 bits virtual\npower management:\n\n"
            )
        })
        .collect()
}

/// Host per-cpu (user, system, idle) ticks; every other column is 0, so "busy" is user +
/// system whatever the exact definition of busy.
const HOST_CPUS: [(u64, u64, u64); 4] = [
    (4000, 1000, 20000),
    (1000, 500, 10000),
    (2000, 1000, 20000),
    (3000, 1500, 30000),
];

const STAT_TAIL: &str = "intr 123456 1 2 3 4 5\nctxt 987654\nbtime 1700000000\nprocesses 4321\n\
procs_running 3\nprocs_blocked 1\nsoftirq 55555 1 2 3 4 5 6 7 8 9 10\n";

fn host_stat() -> String {
    let (u, s, i) = HOST_CPUS
        .iter()
        .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
    let mut out = format!("cpu  {u} 0 {s} {i} 0 0 0 0 0 0\n");
    for (n, (u, s, i)) in HOST_CPUS.iter().enumerate() {
        out.push_str(&format!("cpu{n} {u} 0 {s} {i} 0 0 0 0 0 0\n"));
    }
    out + STAT_TAIL
}

const HOST_SWAPS: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/dev/sda2                               partition\t2097148\t\t97148\t\t-2\n";

const HOST_DISKSTATS: &str = concat!(
    "   8       0 sda 5000 100 200000 3000 6000 200 300000 4000 0 5000 7000 0 0 0 0 100 50\n",
    "   8       1 sda1 4000 90 150000 2500 5000 150 250000 3500 0 4500 6000 0 0 0 0 0 0\n",
    "   8      16 sdb 700 10 9000 300 800 20 12000 400 0 600 700 0 0 0 0 10 5\n",
    " 254       0 vda 300 5 4000 100 200 3 3000 50 0 150 150 0 0 0 0 0 0\n",
);

const HOST_PRESSURE: &str = "some avg10=9.99 avg60=9.99 avg300=9.99 total=999999\nfull avg10=8.88 avg60=8.88 avg300=8.88 total=888888\n";
const CHILD_CPU_PRESSURE: &str = "some avg10=1.00 avg60=2.00 avg300=3.00 total=123456\nfull avg10=0.50 avg60=0.60 avg300=0.70 total=6543\n";
const CHILD_IO_PRESSURE: &str = "some avg10=0.10 avg60=0.20 avg300=0.30 total=1111\nfull avg10=0.01 avg60=0.02 avg300=0.03 total=222\n";
const CHILD_MEMORY_PRESSURE: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=33\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n";

const HOST_UPTIME: &str = "86400.25 300000.50\n";
const HOST_LOADAVG: &str = "0.52 0.58 0.59 2/345 6789\n";
const HOST_SLABINFO: &str = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\nkmalloc-64          1000   1000     64   64    1 : tunables    0    0    0 : slabdata     16     16      0\n";

/// The child's memory.stat (the reader's own cgroup). All values are multiples of 1 kB.
fn child_memory_stat() -> String {
    [
        ("anon", 50 * MIB),
        ("file", 40 * MIB),
        ("kernel", 4 * MIB),
        ("kernel_stack", 320 * 1024),
        ("pagetables", 640 * 1024),
        ("sec_pagetables", 0),
        ("percpu", 64 * 1024),
        ("sock", 0),
        ("vmalloc", 0),
        ("shmem", 4 * MIB),
        ("zswap", 0),
        ("zswapped", 0),
        ("file_mapped", 8 * MIB),
        ("file_dirty", 40 * 1024),
        ("file_writeback", 4 * 1024),
        ("swapcached", 0),
        ("anon_thp", 2 * MIB),
        ("file_thp", 0),
        ("shmem_thp", 0),
        ("inactive_anon", 20 * MIB),
        ("active_anon", 34 * MIB),
        ("inactive_file", 20 * MIB),
        ("active_file", 16 * MIB),
        ("unevictable", MIB),
        ("slab_reclaimable", 2 * MIB),
        ("slab_unreclaimable", MIB),
        ("slab", 3 * MIB),
        ("workingset_refault_anon", 0),
        ("pgfault", 12345),
    ]
    .iter()
    .map(|(k, v)| format!("{k} {v}\n"))
    .collect()
}

/// The parent's memory.stat: every value different from the child's, to catch reading the
/// wrong cgroup.
fn parent_memory_stat() -> String {
    child_memory_stat()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("k v");
            format!("{k} {}\n", v.parse::<u64>().expect("num") * 2 + 1024)
        })
        .collect()
}

/// `/proc/<pid>/stat` of a sleeping-or-running process started at `start` ticks.
fn pid_stat(pid: u32, ppid: u32, state: char, start: u64) -> String {
    // Fields 1..52; field 22 is the start time.
    let mut f: Vec<String> = vec![
        pid.to_string(),
        "(fixture proc)".into(),
        state.to_string(),
        ppid.to_string(),
    ];
    while f.len() < 52 {
        f.push(if f.len() + 1 == 22 {
            start.to_string()
        } else {
            "0".into()
        });
    }
    f.join(" ") + "\n"
}

fn pid_status(pid: u32, ppid: u32, nspids: &str) -> String {
    format!(
        "Name:\tfixture\nUmask:\t0022\nState:\tR (running)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\n\
         TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nNStgid:\t{nspids}\nNSpid:\t{nspids}\nNSpgid:\t{nspids}\n\
         NSsid:\t{nspids}\nThreads:\t1\n"
    )
}

/// Seconds since boot on this machine (CLOCK_BOOTTIME, which the daemon's uptime uses).
fn boottime() -> f64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("clock_gettime");
    ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9
}

/// Age of the reader's pid namespace init in the fixture, in seconds.
const READER_AGE: f64 = 100.0;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir -p");
    fs::write(&p, text).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
}

/// Builds the fixture host tree under `root`.
fn build(root: &Path) {
    write(
        root,
        "proc/self/mountinfo",
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
         23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n\
         24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n\
         30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
    );
    write(root, "proc/meminfo", &host_meminfo());
    write(root, "proc/cpuinfo", &host_cpuinfo());
    write(root, "proc/stat", &host_stat());
    write(root, "proc/swaps", HOST_SWAPS);
    write(root, "proc/diskstats", HOST_DISKSTATS);
    write(root, "proc/uptime", HOST_UPTIME);
    write(root, "proc/loadavg", HOST_LOADAVG);
    write(root, "proc/slabinfo", HOST_SLABINFO);
    for r in ["cpu", "io", "memory"] {
        write(root, &format!("proc/pressure/{r}"), HOST_PRESSURE);
    }

    let cpu = "sys/devices/system/cpu";
    for f in ["online", "possible", "present"] {
        write(root, &format!("{cpu}/{f}"), "0-3\n");
    }
    write(root, &format!("{cpu}/offline"), "\n");
    write(root, &format!("{cpu}/kernel_max"), "8191\n");
    for n in 0..4 {
        write(
            root,
            &format!("{cpu}/cpu{n}/topology/core_id"),
            &format!("{n}\n"),
        );
        if n > 0 {
            write(root, &format!("{cpu}/cpu{n}/online"), "1\n");
        }
    }

    // The reader: pid 4242, init of its own pid namespace, in /ctr/child, started
    // READER_AGE seconds ago (in 100 Hz ticks).
    let start = ((boottime() - READER_AGE) * 100.0) as u64;
    write(root, &format!("proc/{READER}/cgroup"), "0::/ctr/child\n");
    write(
        root,
        &format!("proc/{READER}/status"),
        &pid_status(READER, 4000, &format!("{READER}\t1")),
    );
    write(
        root,
        &format!("proc/{READER}/stat"),
        &pid_stat(READER, 4000, 'R', start),
    );
    write(root, &format!("proc/{READER}/ns/pid"), "pid:[4026532999]\n");
    // Its parent, in the host pid namespace (not an init).
    write(root, "proc/4000/cgroup", "0::/\n");
    write(root, "proc/4000/status", &pid_status(4000, 1, "4000"));
    write(root, "proc/4000/stat", &pid_stat(4000, 1, 'S', 1000));
    write(root, "proc/4000/ns/pid", "pid:[4026531836]\n");
    // The host init.
    write(root, "proc/1/cgroup", "0::/init.scope\n");
    write(root, "proc/1/status", &pid_status(1, 0, "1"));
    write(root, "proc/1/stat", &pid_stat(1, 0, 'S', 5));
    write(root, "proc/1/ns/pid", "pid:[4026531836]\n");
    // A process of the root cgroup, host pid namespace.
    write(root, &format!("proc/{ROOT_READER}/cgroup"), "0::/\n");
    write(
        root,
        &format!("proc/{ROOT_READER}/status"),
        &pid_status(ROOT_READER, 1, &ROOT_READER.to_string()),
    );
    write(
        root,
        &format!("proc/{ROOT_READER}/stat"),
        &pid_stat(ROOT_READER, 1, 'S', 2000),
    );
    write(
        root,
        &format!("proc/{ROOT_READER}/ns/pid"),
        "pid:[4026531836]\n",
    );

    let cg = "sys/fs/cgroup";
    write(
        root,
        &format!("{cg}/cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    write(
        root,
        &format!("{cg}/cgroup.subtree_control"),
        "cpuset cpu io memory pids\n",
    );
    write(
        root,
        &format!("{cg}/cgroup.procs"),
        &format!("1\n4000\n{ROOT_READER}\n"),
    );
    write(
        root,
        &format!("{cg}/cgroup.threads"),
        &format!("1\n4000\n{ROOT_READER}\n"),
    );
    write(root, &format!("{cg}/cpuset.cpus.effective"), "0-3\n");
    // A real v2 root cgroup has memory.stat but no memory.current or memory.swap.current.
    write(root, &format!("{cg}/memory.stat"), &parent_memory_stat());

    let ctr = format!("{cg}/ctr");
    for (f, v) in [
        ("cgroup.controllers", "cpuset cpu io memory pids\n".to_string()),
        ("cgroup.subtree_control", "cpuset cpu io memory pids\n".to_string()),
        ("cgroup.procs", String::new()),
        ("cgroup.threads", String::new()),
        ("memory.max", "268435456\n".to_string()),
        ("memory.swap.max", "67108864\n".to_string()),
        ("memory.current", format!("{}\n", 200 * MIB)),
        ("memory.swap.current", format!("{}\n", 32 * MIB)),
        ("memory.stat", parent_memory_stat()),
        ("cpu.max", "50000 100000\n".to_string()),
        ("cpu.stat", "usage_usec 9000000\nuser_usec 7000000\nsystem_usec 2000000\nnr_periods 10\nnr_throttled 1\nthrottled_usec 5\n".to_string()),
        ("cpuset.cpus", "1-2\n".to_string()),
        ("cpuset.cpus.effective", "1-2\n".to_string()),
        ("io.stat", "8:16 rbytes=9999872 wbytes=9999872 rios=99 wios=99 dbytes=0 dios=0\n8:0 rbytes=512 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n".to_string()),
        ("cpu.pressure", HOST_PRESSURE.replace('9', "7")),
        ("io.pressure", HOST_PRESSURE.replace('9', "6")),
        ("memory.pressure", HOST_PRESSURE.replace('9', "5")),
    ] {
        write(root, &format!("{ctr}/{f}"), &v);
    }
    let child = format!("{ctr}/child");
    for (f, v) in [
        ("cgroup.controllers", "cpuset cpu io memory pids\n".to_string()),
        ("cgroup.subtree_control", String::new()),
        ("cgroup.procs", format!("{READER}\n")),
        ("cgroup.threads", format!("{READER}\n")),
        ("memory.max", "1073741824\n".to_string()),
        ("memory.swap.max", "max\n".to_string()),
        ("memory.current", format!("{}\n", 100 * MIB)),
        ("memory.swap.current", format!("{}\n", 16 * MIB)),
        ("memory.stat", child_memory_stat()),
        ("cpu.max", "max 100000\n".to_string()),
        ("cpu.stat", "usage_usec 4000000\nuser_usec 3000000\nsystem_usec 1000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n".to_string()),
        ("cpuset.cpus", String::new()),
        ("cpuset.cpus.effective", "1-2\n".to_string()),
        ("io.stat", "8:16 rbytes=1048576 wbytes=4194304 rios=12 wios=34 dbytes=0 dios=0\n254:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n".to_string()),
        ("cpu.pressure", CHILD_CPU_PRESSURE.to_string()),
        ("io.pressure", CHILD_IO_PRESSURE.to_string()),
        ("memory.pressure", CHILD_MEMORY_PRESSURE.to_string()),
    ] {
        write(root, &format!("{child}/{f}"), &v);
    }
}

struct Fixture {
    dir: TestDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TestDir::new();
        build(dir.path());
        Fixture { dir }
    }

    /// `lxcfs-rs show --host-root <tree> --pid PID [flags] FILES`, which must succeed.
    fn show(&self, pid: u32, flags: &[&str], files: &[&str]) -> String {
        let root = self.dir.path().to_str().expect("utf-8").to_string();
        let pid = pid.to_string();
        let mut args = vec!["show", "--host-root", &root, "--pid", &pid];
        args.extend_from_slice(flags);
        args.extend_from_slice(files);
        let out = run_bin(&args);
        assert_succeeds(&out, &format!("lxcfs-rs {args:?}"));
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn file(&self, rel: &str) -> String {
        fs::read_to_string(self.dir.join(rel)).expect("fixture file")
    }
}

// ---------------------------------------------------------------------------------------
// meminfo and swaps
// ---------------------------------------------------------------------------------------

#[test]
fn meminfo_from_the_v2_cgroup() {
    let fx = Fixture::new();
    let m = fx.show(READER, &[], &["proc/meminfo"]);
    let host = host_meminfo();
    let expect = |key: &str, want: u64, why: &str| {
        assert_eq!(
            kb(&m, key),
            want,
            "{key}: expected {want} kB ({why}), read:\n{m}"
        );
    };
    expect(
        "MemTotal",
        262144,
        "ctr memory.max 256 MiB, child's 1 GiB is larger",
    );
    assert_eq!(
        line_of(&m, "MemTotal"),
        "MemTotal:         262144 kB",
        "kernel layout kept, read:\n{m}"
    );
    expect(
        "MemFree",
        262144 - 102400,
        "limit - child memory.current (100 MiB)",
    );
    expect(
        "MemAvailable",
        159744 + 16384 + 20480 + 2048,
        "MemFree + active_file + inactive_file + slab_reclaimable",
    );
    expect("Buffers", 0, "no buffers in a cgroup");
    expect("Cached", 40960, "memory.stat file");
    expect("SwapCached", 0, "always 0");
    expect("Active", 34816 + 16384, "active_anon + active_file");
    expect("Inactive", 20480 + 20480, "inactive_anon + inactive_file");
    expect("Active(anon)", 34816, "active_anon");
    expect("Inactive(anon)", 20480, "inactive_anon");
    expect("Active(file)", 16384, "active_file");
    expect("Inactive(file)", 20480, "inactive_file");
    expect("Unevictable", 1024, "unevictable");
    expect("Shmem", 4096, "shmem");
    expect(
        "Mapped",
        8192,
        "file_mapped, NOT file (lxcfs's prefix match reads `file`)",
    );
    expect("Dirty", 40, "file_dirty");
    expect("Writeback", 4, "file_writeback");
    expect("AnonHugePages", 2048, "anon_thp");
    expect("AnonPages", 51200, "anon");
    expect("Slab", 3072, "SReclaimable + SUnreclaim");
    expect("SReclaimable", 2048, "slab_reclaimable");
    expect("SUnreclaim", 1024, "slab_unreclaimable");
    expect("KernelStack", 320, "kernel_stack");
    expect("PageTables", 640, "pagetables");
    expect(
        "SwapTotal",
        65536,
        "ctr memory.swap.max 64 MiB < host SwapTotal",
    );
    expect(
        "SwapFree",
        65536 - 16384,
        "SwapTotal - child memory.swap.current (16 MiB)",
    );
    assert_eq!(
        keys(&m),
        keys(&host),
        "meminfo keeps the host's keys in order; read:\n{m}"
    );
    for key in [
        "VmallocTotal",
        "HugePages_Total",
        "Hugepagesize",
        "CommitLimit",
        "DirectMap2M",
    ] {
        assert_eq!(
            line_of(&m, key),
            line_of(&host, key),
            "{key} is passed through from the host, read:\n{m}"
        );
    }
}

#[test]
fn swaps_from_the_v2_cgroup() {
    let fx = Fixture::new();
    let s = fx.show(READER, &[], &["proc/swaps"]);
    let mut lines = s.lines();
    let header = HOST_SWAPS.lines().next().unwrap_or_default();
    assert_eq!(
        lines.next(),
        Some(header),
        "swaps starts with the host header, read:\n{s}"
    );
    let dev: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        dev,
        ["none", "virtual", "65536", "16384", "0"],
        "one virtual swap of SwapTotal kB with the used kB, read:\n{s}"
    );
    assert_eq!(lines.next(), None, "exactly one swap line, read:\n{s}");
    assert!(s.ends_with('\n'), "final newline, read {s:?}");
}

#[test]
fn disable_swap_hides_swap() {
    let fx = Fixture::new();
    let m = fx.show(READER, &["-u"], &["proc/meminfo"]);
    assert_eq!(
        kb(&m, "SwapTotal"),
        0,
        "-u: expected SwapTotal 0, read:\n{m}"
    );
    assert_eq!(kb(&m, "SwapFree"), 0, "-u: expected SwapFree 0, read:\n{m}");
    assert_eq!(
        kb(&m, "MemTotal"),
        262144,
        "-u changes only swap, read:\n{m}"
    );
    let s = fx.show(READER, &["-u"], &["proc/swaps"]);
    assert_eq!(
        s.lines().count(),
        1,
        "-u: swaps is the header only, read:\n{s}"
    );
    assert!(s.starts_with("Filename"), "-u: swaps header, read:\n{s}");
}

#[test]
fn root_cgroup_reader_sees_the_host() {
    let fx = Fixture::new();
    let m = fx.show(ROOT_READER, &[], &["proc/meminfo"]);
    assert_eq!(
        m,
        fx.file("proc/meminfo"),
        "reader in the root cgroup: expected the host meminfo unchanged"
    );
    let c = fx.show(ROOT_READER, &[], &["proc/cpuinfo"]);
    assert!(
        c == fx.file("proc/cpuinfo"),
        "reader in the root cgroup: expected the host cpuinfo unchanged, read:\n{c}"
    );
    let o = fx.show(ROOT_READER, &[], &["sys/devices/system/cpu/online"]);
    assert_eq!(
        o, "0-3\n",
        "reader in the root cgroup: expected the host online list"
    );
    let s = fx.show(ROOT_READER, &[], &["proc/swaps"]);
    assert_eq!(
        s, HOST_SWAPS,
        "reader in the root cgroup: expected the host swaps"
    );
    let u = fx.show(ROOT_READER, &[], &["proc/uptime"]);
    assert_eq!(
        u, HOST_UPTIME,
        "reader in the host pid namespace: expected the host uptime"
    );
    for r in ["cpu", "io", "memory"] {
        let p = fx.show(ROOT_READER, &[], &[&format!("proc/pressure/{r}")]);
        assert_eq!(
            p, HOST_PRESSURE,
            "reader in the root cgroup: expected the host pressure/{r}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// CPUs
// ---------------------------------------------------------------------------------------

#[test]
fn cpuinfo_renumbers_the_cpuset() {
    let fx = Fixture::new();
    let c = fx.show(READER, &[], &["proc/cpuinfo"]);
    assert_eq!(
        processors(&c),
        ["0", "1"],
        "cpuset 1-2: processors renumbered 0-1, read:\n{c}"
    );
    assert_eq!(
        field_values(&c, "apicid"),
        ["1", "2"],
        "the blocks of host cpus 1 and 2, read:\n{c}"
    );
    assert_eq!(
        field_values(&c, "core id"),
        ["1", "2"],
        "the blocks of host cpus 1 and 2, read:\n{c}"
    );
    assert_eq!(
        field_values(&c, "siblings"),
        ["2", "2"],
        "siblings consistent with 2 cpus, read:\n{c}"
    );
    assert_eq!(
        field_values(&c, "cpu cores"),
        ["2", "2"],
        "cpu cores consistent with 2 cpus, read:\n{c}"
    );
    assert_eq!(
        field_values(&c, "model name").len(),
        2,
        "two whole blocks, read:\n{c}"
    );
    // Every line of a shown block is the host's except the renumbered ones.
    let host = host_cpuinfo();
    for line in c.lines() {
        let key = line.split(':').next().unwrap_or("").trim_end();
        if !["processor", "siblings", "cpu cores"].contains(&key) {
            assert!(
                host.lines().any(|h| h == line),
                "line {line:?} is not from the host cpuinfo; read:\n{c}"
            );
        }
    }

    let q = fx.show(READER, &["--enable-cfs"], &["proc/cpuinfo"]);
    assert_eq!(
        processors(&q),
        ["0"],
        "--enable-cfs with quota 0.5: one cpu, read:\n{q}"
    );
    assert_eq!(
        field_values(&q, "apicid"),
        ["1"],
        "--enable-cfs keeps the first visible cpu (host cpu 1), read:\n{q}"
    );
    assert_eq!(
        field_values(&q, "siblings"),
        ["1"],
        "siblings consistent with 1 cpu, read:\n{q}"
    );
}

#[test]
fn online_list() {
    let fx = Fixture::new();
    for f in ["online", "possible", "present"] {
        let rel = format!("sys/devices/system/cpu/{f}");
        let o = fx.show(READER, &[], &[&rel]);
        assert_eq!(
            o, "1-2\n",
            "{rel}: expected the visible list \"1-2\", read {o:?}"
        );
        let q = fx.show(READER, &["--enable-cfs"], &[&rel]);
        assert_eq!(
            q, "0\n",
            "{rel} with --enable-cfs: expected \"0\" (ceil(50000/100000) = 1 cpu), read {q:?}"
        );
    }
    let off = fx.show(READER, &[], &["sys/devices/system/cpu/offline"]);
    assert_eq!(off.trim(), "", "offline is empty, read {off:?}");
}

/// `(label, columns)` of the cpu lines.
fn cpu_rows(stat: &str) -> Vec<(String, Vec<u64>)> {
    stat.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let mut w = l.split_whitespace();
            let label = w.next().unwrap_or_default().to_string();
            (
                label,
                w.map(|c| c.parse().unwrap_or_else(|e| panic!("{c:?} in {l:?}: {e}")))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn stat_splits_cgroup_time_over_visible_cpus() {
    let fx = Fixture::new();
    let s = fx.show(READER, &[], &["proc/stat"]);
    // cpu.stat: user 3 s, system 1 s = 300 / 100 ticks at USER_HZ 100, split evenly over the
    // 2 visible cpus. idle = host (idle + busy) of that cpu - the cgroup's busy on it:
    // host cpu1: 10000 + 1500 - 200 = 11300; host cpu2: 20000 + 3000 - 200 = 22800.
    let want = vec![
        (
            "cpu".to_string(),
            vec![300, 0, 100, 34100, 0, 0, 0, 0, 0, 0],
        ),
        (
            "cpu0".to_string(),
            vec![150, 0, 50, 11300, 0, 0, 0, 0, 0, 0],
        ),
        (
            "cpu1".to_string(),
            vec![150, 0, 50, 22800, 0, 0, 0, 0, 0, 0],
        ),
    ];
    assert_eq!(
        cpu_rows(&s),
        want,
        "stat cpu lines for cpus 1-2 of the host, read:\n{s}"
    );
    assert!(
        s.starts_with("cpu  "),
        "the cpu line is labelled `cpu  ` as the kernel does, read:\n{s}"
    );
    for key in ["intr ", "ctxt ", "btime ", "processes ", "softirq "] {
        let host = STAT_TAIL
            .lines()
            .find(|l| l.starts_with(key))
            .expect("host line");
        let ours = s.lines().find(|l| l.starts_with(key));
        assert_eq!(ours, Some(host), "{key:?} is the host's line, read:\n{s}");
    }
    assert_eq!(
        s.lines().find(|l| l.starts_with("procs_running ")),
        Some("procs_running 1"),
        "one task of the cgroup in state R, read:\n{s}"
    );
    assert_eq!(
        s.lines().find(|l| l.starts_with("procs_blocked ")),
        Some("procs_blocked 0"),
        "no task of the cgroup in state D, read:\n{s}"
    );

    let q = fx.show(READER, &["--enable-cfs"], &["proc/stat"]);
    assert_eq!(
        stat_cpu_labels(&q),
        ["cpu", "cpu0"],
        "--enable-cfs: one cpu, read:\n{q}"
    );
    let want = vec![
        (
            "cpu".to_string(),
            vec![300, 0, 100, 11100, 0, 0, 0, 0, 0, 0],
        ),
        (
            "cpu0".to_string(),
            vec![300, 0, 100, 11100, 0, 0, 0, 0, 0, 0],
        ),
    ];
    assert_eq!(
        cpu_rows(&q),
        want,
        "--enable-cfs: all cgroup time on the one shown cpu (host cpu1), read:\n{q}"
    );
}

// ---------------------------------------------------------------------------------------
// diskstats, pressure, uptime, loadavg, slabinfo, show itself
// ---------------------------------------------------------------------------------------

#[test]
fn diskstats_from_io_stat() {
    let fx = Fixture::new();
    let d = fx.show(READER, &[], &["proc/diskstats"]);
    let want = concat!(
        "   8      16 sdb 12 0 2048 0 34 0 8192 0 0 0 0 0 0 0 0 0 0\n",
        " 254       0 vda 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
    );
    assert_eq!(
        d, want,
        "diskstats from the child's io.stat (sectors = bytes / 512), names and order from the host"
    );
    let r = fx.show(ROOT_READER, &[], &["proc/diskstats"]);
    assert_eq!(r, HOST_DISKSTATS, "root cgroup reader: the host diskstats");
}

#[test]
fn pressure_is_the_cgroups() {
    let fx = Fixture::new();
    for (r, want) in [
        ("cpu", CHILD_CPU_PRESSURE),
        ("io", CHILD_IO_PRESSURE),
        ("memory", CHILD_MEMORY_PRESSURE),
    ] {
        let p = fx.show(READER, &[], &[&format!("proc/pressure/{r}")]);
        assert_eq!(
            p, want,
            "proc/pressure/{r}: expected the child's {r}.pressure"
        );
    }
}

#[test]
fn uptime_is_the_age_of_the_namespace_init() {
    let fx = Fixture::new();
    let u = fx.show(READER, &[], &["proc/uptime"]);
    let (age, idle) = common::parse_uptime(&u);
    assert!(
        (READER_AGE - 1.0..READER_AGE + 3.0).contains(&age),
        "reader is the init of its pid namespace, started {READER_AGE} s ago: expected uptime ~{READER_AGE}, read {u:?}"
    );
    // idle = age x 2 visible cpus - the cgroup's cpu time (usage_usec 4 s).
    let want_idle = age * 2.0 - 4.0;
    assert!(
        (idle - want_idle).abs() <= 0.1,
        "idle: expected age x 2 - 4 = {want_idle:.2}, read {u:?}"
    );
}

#[test]
fn loadavg_slabinfo_without_flags_are_the_hosts() {
    let fx = Fixture::new();
    let l = fx.show(READER, &[], &["proc/loadavg"]);
    assert_eq!(l, HOST_LOADAVG, "without -l: the host loadavg");
    let s = fx.show(READER, &[], &["proc/slabinfo"]);
    assert_eq!(s, HOST_SLABINFO, "v2: the host slabinfo");
}

#[test]
fn show_prints_headers_and_fails_on_bad_input() {
    let fx = Fixture::new();
    let two = fx.show(
        READER,
        &[],
        &["proc/uptime", "/sys/devices/system/cpu/online"],
    );
    assert!(
        two.starts_with("==> proc/uptime <==\n"),
        "first header, read:\n{two}"
    );
    assert!(
        two.ends_with("\n\n==> sys/devices/system/cpu/online <==\n1-2\n"),
        "second header after a blank line, read:\n{two}"
    );

    let all = fx.show(READER, &[], &[]);
    for f in common::GENERATED {
        assert!(
            all.contains(&format!("==> {f} <==\n")),
            "show with no file names prints {f}; printed:\n{all}"
        );
    }

    let root = fx.dir.path().to_str().expect("utf-8").to_string();
    let out = run_bin(&[
        "show",
        "--host-root",
        &root,
        "--pid",
        "31337",
        "proc/meminfo",
    ]);
    // No such pid: exit 1, and the error names the pid.
    assert_fails(&out, 1, "31337");
    let out = run_bin(&[
        "show",
        "--host-root",
        &root,
        "--pid",
        &READER.to_string(),
        "proc/nonexistent",
    ]);
    // No such file: exit 1, and the error names the file.
    assert_fails(&out, 1, "proc/nonexistent");
}

// ---------------------------------------------------------------------------------------
// The mounted daemon on the fixture host
// ---------------------------------------------------------------------------------------

/// The daemon itself (not only `show`) with its host paths pointed at the v2 fixture: a real
/// process reads through the mount, and the fixture says which cgroup that pid is in.
#[test]
fn mounted_daemon_serves_the_v2_fixture() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    require!(mount);
    let fx = Fixture::new();
    let root = fx.dir.path().to_str().expect("utf-8").to_string();
    let d = common::Daemon::start(&["--host-root", &root, "--enable-cfs"]);
    let files = [
        d.path("proc/meminfo"),
        d.path("sys/devices/system/cpu/online"),
    ];
    // The reader waits for a line on stdin, so that the fixture can name its pid first.
    let mut reader = Command::new("sh")
        // exec: the pid the fixture names is the one that reads.
        .args(["-c", "read go; exec cat \"$1\" \"$2\"", "sh"])
        .args(&files)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the reader");
    let pid = reader.id();
    let host = fx.dir.path();
    write(host, &format!("proc/{pid}/cgroup"), "0::/ctr/child\n");
    write(
        host,
        &format!("proc/{pid}/status"),
        &pid_status(pid, 1, &pid.to_string()),
    );
    write(
        host,
        &format!("proc/{pid}/stat"),
        &pid_stat(pid, 1, 'R', 1000),
    );
    write(host, &format!("proc/{pid}/ns/pid"), "");
    reader
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("releasing the reader");
    let mut out = String::new();
    for line in BufReader::new(reader.stdout.take().expect("stdout")).lines() {
        out.push_str(&line.expect("reader output"));
        out.push('\n');
    }
    assert!(
        reader.wait().expect("reader exit").success(),
        "reader failed; read:\n{out}"
    );
    assert_eq!(
        kb(&out, "MemTotal"),
        262144,
        "MemTotal through the mount for a pid in /ctr/child (ctr memory.max 256 MiB), read:\n{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("0"),
        "online under --enable-cfs with a half-CPU quota (cpus 1-2): expected \"0\" last, read:\n{out}"
    );
}
