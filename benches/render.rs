//! Criterion micro-benchmarks of the pure, per-read work: the renderers of `src/render/`
//! (host text plus cgroup values in, bytes out) and the parsing half of the cgroup readers
//! (`memory.stat`, `cpu.max`, cpusets, `/proc/<pid>/cgroup`, mountinfo), on the fixture texts
//! of `tests/fixtures/`. No file is read while timing.
//!
//! Run: `cargo bench --bench render` (add e.g. `-- meminfo` to run one group, or
//! `-- --warm-up-time 0.5 --measurement-time 1` for a quick pass).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use lxcfs_rs::cgroup::{self, Hierarchies};
use lxcfs_rs::host::HostPaths;
use lxcfs_rs::model::{CpuTime, CpuUsage, LoadAvg, MemStat, MemoryLimits, TaskCounts};
use lxcfs_rs::render::{cpu_list, cpuinfo, loadavg, meminfo, stat, uptime};
use lxcfs_rs::{cpulist, mounts};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/",
            $name
        ))
    };
}

const MEMINFO: &str = fixture!("render/meminfo");
const MEMINFO_SWAP: &str = fixture!("render/meminfo-swap");
const CPUINFO_2: &str = fixture!("render/cpuinfo-2cpu");
const CPUINFO_4: &str = fixture!("render/cpuinfo-4cpu");
const STAT_2: &str = fixture!("render/stat-2cpu");
const STAT_4: &str = fixture!("render/stat-4cpu");
const MEMORY_STAT_V1: &str = fixture!("cgroup/memory.stat-v1");
const MEMORY_STAT_V2: &str = fixture!("cgroup/memory.stat-v2");
const MOUNTINFO_V1: &str = fixture!("cgroup/mountinfo-v1");
const MOUNTINFO_V2: &str = fixture!("cgroup/mountinfo-v2");
const GIB: u64 = 1 << 30;

/// A container limited to 1 GiB, using 300 MiB, swap limited to 512 MiB.
fn limits() -> MemoryLimits {
    MemoryLimits {
        limit: Some(GIB),
        usage: Some(300 << 20),
        swap_limit: Some(GIB / 2),
        swap_usage: Some(16 << 20),
        stat: cgroup::parse_memory_stat_v2(MEMORY_STAT_V2),
    }
}

fn meminfo(c: &mut Criterion) {
    let mem = limits();
    let mut g = c.benchmark_group("meminfo");
    g.bench_function("limited", |b| {
        b.iter(|| meminfo::render(black_box(MEMINFO), &mem, true))
    });
    g.bench_function("limited_swap", |b| {
        b.iter(|| meminfo::render(black_box(MEMINFO_SWAP), &mem, true))
    });
    let none = MemoryLimits {
        stat: MemStat::default(),
        ..MemoryLimits::default()
    };
    g.bench_function("unlimited", |b| {
        b.iter(|| meminfo::render(black_box(MEMINFO), &none, true))
    });
    g.finish();
}

fn cpuinfo(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpuinfo");
    g.bench_function("2cpu_show_1", |b| {
        b.iter(|| cpuinfo::render(black_box(CPUINFO_2), &[1]))
    });
    g.bench_function("4cpu_show_2", |b| {
        b.iter(|| cpuinfo::render(black_box(CPUINFO_4), &[1, 3]))
    });
    g.bench_function("4cpu_show_all", |b| {
        b.iter(|| cpuinfo::render(black_box(CPUINFO_4), &[0, 1, 2, 3]))
    });
    g.finish();
}

fn stat(c: &mut Criterion) {
    let t = |s: u64| CpuTime {
        user_ns: s * 1_000_000_000,
        system_ns: s * 400_000_000,
    };
    let per_cpu = CpuUsage::PerCpu(BTreeMap::from([(1, t(30)), (3, t(20))]));
    let total = CpuUsage::Total(t(50));
    let tasks = Some(TaskCounts {
        running: 2,
        blocked: 0,
        total: 40,
    });
    let mut g = c.benchmark_group("stat");
    g.bench_function("2cpu_total", |b| {
        b.iter(|| stat::render(black_box(STAT_2), &[0, 1], &total, tasks, 100))
    });
    g.bench_function("4cpu_per_cpu_show_2", |b| {
        b.iter(|| stat::render(black_box(STAT_4), &[1, 3], &per_cpu, tasks, 100))
    });
    g.finish();
}

fn small(c: &mut Criterion) {
    let load = LoadAvg {
        avenrun: [1234, 2345, 3456],
    };
    let mut g = c.benchmark_group("small");
    g.bench_function("uptime", |b| {
        b.iter(|| uptime::render(black_box(86_400.25), 2, Some(black_box(1234.5))))
    });
    g.bench_function("loadavg", |b| {
        b.iter(|| loadavg::render(black_box(&load), 2, 40, 12345))
    });
    g.bench_function("cpu_online_list", |b| {
        b.iter(|| cpu_list::render(black_box(&[0, 1, 2, 3, 8, 9, 10, 11]), true))
    });
    g.finish();
}

fn cgroup_parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("cgroup");
    g.bench_function("memory_stat_v1", |b| {
        b.iter(|| cgroup::parse_memory_stat_v1(black_box(MEMORY_STAT_V1)))
    });
    g.bench_function("memory_stat_v2", |b| {
        b.iter(|| cgroup::parse_memory_stat_v2(black_box(MEMORY_STAT_V2)))
    });
    g.bench_function("cpu_max", |b| {
        b.iter(|| cgroup::parse_cpu_max(black_box("150000 100000\n")))
    });
    g.bench_function("cpuset", |b| {
        b.iter(|| cpulist::parse(black_box("0-3,8-11,16-31,63\n")))
    });

    // Membership: a hybrid-style v1 host (no file read), and a pure v2 host whose root
    // `cgroup.controllers` is read once here, outside the timing.
    let v1_host = HostPaths::default();
    let v1 = Hierarchies::from_mountinfo(&v1_host, MOUNTINFO_V1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cg2 = dir.path().join("sys/fs/cgroup");
    std::fs::create_dir_all(&cg2).unwrap();
    std::fs::write(
        cg2.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    let v2 = Hierarchies::from_mountinfo(&HostPaths::under(dir.path()), MOUNTINFO_V2).unwrap();
    let file = Path::new("/proc/4242/cgroup");
    let v1_text = "9:name=systemd:/docker/abc\n8:pids:/docker/abc\n7:blkio:/docker/abc\n\
                   6:freezer:/docker/abc\n5:devices:/docker/abc\n4:memory:/docker/abc\n\
                   3:cpuset:/docker/abc\n2:cpuacct:/docker/abc\n1:cpu:/docker/abc\n0::/\n";
    let v2_text = "0::/system.slice/docker-abc.scope\n";
    g.bench_function("membership_v1", |b| {
        b.iter(|| v1.resolve(file, black_box(v1_text)).unwrap())
    });
    g.bench_function("membership_v2", |b| {
        b.iter(|| v2.resolve(file, black_box(v2_text)).unwrap())
    });
    g.bench_function("mountinfo_hierarchies_v1", |b| {
        b.iter(|| Hierarchies::from_mountinfo(&v1_host, black_box(MOUNTINFO_V1)).unwrap())
    });
    g.bench_function("mountinfo_parse_v2", |b| {
        b.iter(|| mounts::parse_mounts(black_box(MOUNTINFO_V2)).count())
    });
    g.finish();
}

criterion_group!(benches, meminfo, cpuinfo, stat, small, cgroup_parsing);
criterion_main!(benches);
