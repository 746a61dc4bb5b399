//! The fixture host: 4 CPUs (0-3), MemTotal 8147416 kB, a 2 GiB swap partition, one cgroup2
//! mount at /sys/fs/cgroup. Reader pid 4242 sits in `/ctr/child` and is the init of its own
//! pid namespace; `ctr` has the limits (256 MiB, 64 MiB swap, half a CPU, cpus 1-2) and the
//! child larger ones or `max`. Pid 4343 sits in the root cgroup in the host pid namespace.

use crate::common::MIB;
use crate::common::fixture_tree::{Fixture as Tree, Proc};

/// The reader: in `/ctr/child`, init of its own pid namespace.
pub(crate) const READER: u32 = 4242;
/// A reader in the root cgroup and the host pid namespace.
pub(crate) const ROOT_READER: u32 = 4343;
/// The host's pid namespace (the fixture's name for it, after the inode number it mimics).
pub(crate) const HOST_NS: &str = "4026531836";
/// The reader's own pid namespace.
pub(crate) const READER_NS: &str = "4026532999";

/// Host meminfo keys and values (kB, or a count where there is no unit).
pub(crate) const HOST_MEMINFO: &[(&str, u64, bool)] = &[
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

/// The host's `/proc/meminfo`, laid out as the kernel does.
pub(crate) fn host_meminfo() -> String {
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

/// The host's `/proc/cpuinfo`: 4 blocks, `core id` and `apicid` equal to the cpu number.
pub(crate) fn host_cpuinfo() -> String {
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
pub(crate) const HOST_CPUS: [(u64, u64, u64); 4] = [
    (4000, 1000, 20000),
    (1000, 500, 10000),
    (2000, 1000, 20000),
    (3000, 1500, 30000),
];

/// The lines of the host's `/proc/stat` after the cpu lines.
pub(crate) const STAT_TAIL: &str = "intr 123456 1 2 3 4 5\nctxt 987654\nbtime 1700000000\nprocesses 4321\n\
procs_running 3\nprocs_blocked 1\nsoftirq 55555 1 2 3 4 5 6 7 8 9 10\n";

/// The host's `/proc/stat`: the cpu lines of [`HOST_CPUS`], then [`STAT_TAIL`].
pub(crate) fn host_stat() -> String {
    let (u, s, i) = HOST_CPUS
        .iter()
        .fold((0, 0, 0), |a, c| (a.0 + c.0, a.1 + c.1, a.2 + c.2));
    let mut out = format!("cpu  {u} 0 {s} {i} 0 0 0 0 0 0\n");
    for (n, (u, s, i)) in HOST_CPUS.iter().enumerate() {
        out.push_str(&format!("cpu{n} {u} 0 {s} {i} 0 0 0 0 0 0\n"));
    }
    out + STAT_TAIL
}

/// The host's `/proc/swaps`: one 2 GiB partition.
pub(crate) const HOST_SWAPS: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
/dev/sda2                               partition\t2097148\t\t97148\t\t-2\n";

/// The host's `/proc/diskstats`.
pub(crate) const HOST_DISKSTATS: &str = concat!(
    "   8       0 sda 5000 100 200000 3000 6000 200 300000 4000 0 5000 7000 0 0 0 0 100 50\n",
    "   8       1 sda1 4000 90 150000 2500 5000 150 250000 3500 0 4500 6000 0 0 0 0 0 0\n",
    "   8      16 sdb 700 10 9000 300 800 20 12000 400 0 600 700 0 0 0 0 10 5\n",
    " 254       0 vda 300 5 4000 100 200 3 3000 50 0 150 150 0 0 0 0 0 0\n",
);

/// The host's `/proc/pressure/*` (the same for all three).
pub(crate) const HOST_PRESSURE: &str = "some avg10=9.99 avg60=9.99 avg300=9.99 total=999999\nfull avg10=8.88 avg60=8.88 avg300=8.88 total=888888\n";
/// The child's `cpu.pressure`.
pub(crate) const CHILD_CPU_PRESSURE: &str = "some avg10=1.00 avg60=2.00 avg300=3.00 total=123456\nfull avg10=0.50 avg60=0.60 avg300=0.70 total=6543\n";
/// The child's `io.pressure`.
pub(crate) const CHILD_IO_PRESSURE: &str = "some avg10=0.10 avg60=0.20 avg300=0.30 total=1111\nfull avg10=0.01 avg60=0.02 avg300=0.03 total=222\n";
/// The child's `memory.pressure`.
pub(crate) const CHILD_MEMORY_PRESSURE: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=33\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n";

/// The host's `/proc/uptime`.
pub(crate) const HOST_UPTIME: &str = "86400.25 300000.50\n";
/// The host's `/proc/loadavg`.
pub(crate) const HOST_LOADAVG: &str = "0.52 0.58 0.59 2/345 6789\n";
/// The host's `/proc/slabinfo`.
pub(crate) const HOST_SLABINFO: &str = "slabinfo - version: 2.1\n# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\nkmalloc-64          1000   1000     64   64    1 : tunables    0    0    0 : slabdata     16     16      0\n";

/// The child's memory.stat (the reader's own cgroup). All values are multiples of 1 kB.
pub(crate) fn child_memory_stat() -> String {
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
pub(crate) fn parent_memory_stat() -> String {
    child_memory_stat()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("k v");
            format!("{k} {}\n", v.parse::<u64>().expect("num") * 2 + 1024)
        })
        .collect()
}

/// Seconds since boot on this machine (CLOCK_BOOTTIME, which the daemon's uptime uses).
pub(crate) fn boottime() -> f64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("clock_gettime");
    ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9
}

/// Age of the reader's pid namespace init in the fixture, in seconds.
pub(crate) const READER_AGE: f64 = 100.0;

/// Writes the fixture host into `fx`.
pub(crate) fn build(fx: &Tree) {
    fx.write("proc/self/mountinfo",
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
         23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n\
         24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n\
         30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
    );
    fx.write("proc/meminfo", &host_meminfo());
    fx.write("proc/cpuinfo", &host_cpuinfo());
    fx.write("proc/stat", &host_stat());
    fx.write("proc/swaps", HOST_SWAPS);
    fx.write("proc/diskstats", HOST_DISKSTATS);
    fx.write("proc/uptime", HOST_UPTIME);
    fx.write("proc/loadavg", HOST_LOADAVG);
    fx.write("proc/slabinfo", HOST_SLABINFO);
    for r in ["cpu", "io", "memory"] {
        fx.write(&format!("proc/pressure/{r}"), HOST_PRESSURE);
    }

    let cpu = "sys/devices/system/cpu";
    for f in ["online", "possible", "present"] {
        fx.write(&format!("{cpu}/{f}"), "0-3\n");
    }
    fx.write(&format!("{cpu}/offline"), "\n");
    fx.write(&format!("{cpu}/kernel_max"), "8191\n");
    for n in 0..4 {
        fx.write(&format!("{cpu}/cpu{n}/topology/core_id"), &format!("{n}\n"));
        if n > 0 {
            fx.write(&format!("{cpu}/cpu{n}/online"), "1\n");
        }
    }

    // The reader: pid 4242, init of its own pid namespace, in /ctr/child, started
    // READER_AGE seconds ago (in 100 Hz ticks).
    let start = ((boottime() - READER_AGE) * 100.0) as u64;
    fx.cgroup(READER, "0::/ctr/child\n");
    fx.process(Proc {
        pid: READER,
        ppid: 4000,
        nspid: &[READER, 1],
        ns: READER_NS,
        state: 'R',
        start,
    });
    // Its parent, in the host pid namespace (not an init).
    fx.cgroup(4000, "0::/\n");
    fx.process(Proc {
        pid: 4000,
        ppid: 1,
        nspid: &[4000],
        ns: HOST_NS,
        state: 'S',
        start: 1000,
    });
    // The host init.
    fx.cgroup(1, "0::/init.scope\n");
    fx.process(Proc {
        pid: 1,
        ppid: 0,
        nspid: &[1],
        ns: HOST_NS,
        state: 'S',
        start: 5,
    });
    // A process of the root cgroup, host pid namespace.
    fx.cgroup(ROOT_READER, "0::/\n");
    fx.process(Proc {
        pid: ROOT_READER,
        ppid: 1,
        nspid: &[ROOT_READER],
        ns: HOST_NS,
        state: 'S',
        start: 2000,
    });

    let cg = "sys/fs/cgroup";
    fx.write(
        &format!("{cg}/cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    fx.write(
        &format!("{cg}/cgroup.subtree_control"),
        "cpuset cpu io memory pids\n",
    );
    fx.write(
        &format!("{cg}/cgroup.procs"),
        &format!("1\n4000\n{ROOT_READER}\n"),
    );
    fx.write(
        &format!("{cg}/cgroup.threads"),
        &format!("1\n4000\n{ROOT_READER}\n"),
    );
    fx.write(&format!("{cg}/cpuset.cpus.effective"), "0-3\n");
    // A real v2 root cgroup has memory.stat but no memory.current or memory.swap.current.
    fx.write(&format!("{cg}/memory.stat"), &parent_memory_stat());

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
        fx.write(&format!("{ctr}/{f}"), &v);
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
        fx.write(&format!("{child}/{f}"), &v);
    }
}
