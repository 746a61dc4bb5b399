//! "Never panics on input": every parser and renderer fed thousands of mangled versions of
//! real files (bytes replaced, lines cut, duplicated or dropped, junk and CRLF inserted) and
//! extreme values, through the public paths a FUSE read takes. A deterministic generator
//! keeps failures reproducible without a fuzzing crate.

use std::collections::BTreeMap;
use std::path::Path;

use crate::fs::{Caller, Provider};
use crate::model::{CpuTime, CpuUsage, IoStat, MemStat, MemoryLimits, TaskCounts};
use crate::render;
use crate::testutil::Fixture;
use crate::view::{View, ViewOptions, generated_files};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const JUNK: &[&str] = &[
    "",
    " ",
    "\n",
    "\r\n",
    "\t",
    ":",
    "-",
    ",",
    "0",
    "-1",
    "max",
    "18446744073709551615",
    "99999999999999999999999",
    "9223372036854771712",
    "é",
    "\u{0}",
    "(",
    ")",
    " kB",
    "cpu",
    "processor\t: 7",
    "MemTotal:",
    "Read",
    "rbytes=",
    "=",
    "..",
    "/..",
];

/// One mangled version of `text`.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    for _ in 0..=rng.below(4) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            }
            2 => lines.truncate(i),
            3 => {
                // Cut the line at a char boundary and put junk there.
                let cut = lines[i]
                    .char_indices()
                    .map(|(p, _)| p)
                    .nth(rng.below(lines[i].len() + 1));
                let mut line = lines[i][..cut.unwrap_or(lines[i].len())].to_string();
                line.push_str(JUNK[rng.below(JUNK.len())]);
                lines[i] = line;
            }
            4 => lines[i] = lines[i].replace(char::is_numeric, JUNK[rng.below(JUNK.len())]),
            5 => lines[i] = lines[i].replace('\n', "\r\n"),
            _ => lines.insert(
                i,
                format!(
                    "{} {}\n",
                    JUNK[rng.below(JUNK.len())],
                    JUNK[rng.below(JUNK.len())]
                ),
            ),
        }
    }
    lines.concat()
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/render")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn extreme_memory(rng: &mut Rng) -> MemoryLimits {
    let mut pick = || {
        [
            None,
            Some(0),
            Some(1),
            Some(4096),
            Some(256 << 20),
            Some(u64::MAX),
        ][rng.below(6)]
    };
    MemoryLimits {
        limit: pick(),
        usage: pick(),
        swap_limit: pick(),
        swap_usage: pick(),
        stat: MemStat {
            file: pick(),
            active_file: pick(),
            inactive_file: pick(),
            slab_reclaimable: pick(),
            mapped: pick(),
            anon: pick(),
            ..MemStat::default()
        },
    }
}

#[test]
fn renderers_survive_mangled_host_files_and_extreme_values() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let (meminfo, cpuinfo, stat, diskstats, swaps) = (
        fixture("meminfo-swap"),
        fixture("cpuinfo-4cpu"),
        fixture("stat-4cpu"),
        fixture("diskstats"),
        fixture("swaps-two"),
    );
    let per_cpu: BTreeMap<u32, CpuTime> = [
        (
            0,
            CpuTime {
                user_ns: u64::MAX,
                system_ns: 1,
            },
        ),
        (9, CpuTime::default()),
    ]
    .into_iter()
    .collect();
    let usages = [
        CpuUsage::Unknown,
        CpuUsage::PerCpu(per_cpu),
        CpuUsage::Total(CpuTime {
            user_ns: u64::MAX,
            system_ns: u64::MAX,
        }),
    ];
    let io = [IoStat {
        major: 8,
        minor: 0,
        read_bytes: u64::MAX,
        write_bytes: 1,
        reads: u64::MAX,
        writes: 0,
    }];
    for _ in 0..3000 {
        let mem = extreme_memory(&mut rng);
        let swap_view = rng.below(2) == 0;
        let m = mutate(&mut rng, &meminfo);
        let out = render::meminfo::render(&m, &mem, swap_view);
        if let Err(e) = check_meminfo(&m, &out) {
            panic!("{e}; limits {mem:?}, host:\n{m}\nrendered:\n{out}");
        }
        let swap = render::swap::shown(&m, &mem, swap_view);
        render::swaps::render(&mutate(&mut rng, &swaps), swap);
        render::swaps::render(
            &mutate(&mut rng, &swaps),
            Some(render::swap::sizes(&m, &mem, swap_view)),
        );
        let shown: Vec<u32> = (0..rng.below(6) as u32).map(|i| i * 2).collect();
        render::cpuinfo::render(&mutate(&mut rng, &cpuinfo), &shown);
        let tasks = TaskCounts {
            running: u64::MAX,
            blocked: 0,
            total: u64::MAX,
        };
        let usage = &usages[rng.below(usages.len())];
        render::stat::render(
            &mutate(&mut rng, &stat),
            &shown,
            usage,
            Some(tasks),
            [0, 1, 100, 1000][rng.below(4)],
        );
        render::diskstats::render(&mutate(&mut rng, &diskstats), &io[..rng.below(2)]);
        crate::cpulist::parse(&mutate(&mut rng, "0-3,6\n")).ok();
        render::cpu_list::render(&shown, rng.below(2) == 0);
    }
    for age in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300] {
        for busy in [None, Some(f64::NAN), Some(-5.0), Some(1e300)] {
            render::uptime::render(age, usize::MAX, busy);
        }
    }
    let mut load = crate::model::LoadAvg::default();
    for active in [0, 1, u64::from(u32::MAX), 7] {
        load.sample(active);
        render::loadavg::render(&load, u64::MAX, u64::MAX, u32::MAX);
    }
}

/// A v1 + v2 host whose every file is a mangled copy of a valid one; pid 42 in
/// `/a/b` on every hierarchy, in its own pid namespace under init 41.
fn mangled_host(rng: &mut Rng, fx: &Fixture) {
    let mut m = |text: &str| {
        if rng.below(3) == 0 {
            text.to_string()
        } else {
            mutate(rng, text)
        }
    };
    fx.write(
        "proc/self/mountinfo",
        &m("30 24 0:26 / /cg/memory rw - cgroup cgroup rw,memory\n\
        31 24 0:27 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n32 24 0:28 / /cg/cpuset rw - cgroup cgroup rw,cpuset\n\
        33 24 0:29 / /cg/blkio rw - cgroup cgroup rw,blkio\n34 24 0:30 / /cg/unified rw - cgroup2 cgroup2 rw\n"),
    );
    fx.write(
        "proc/42/cgroup",
        &m("5:memory:/a/b\n4:cpu,cpuacct:/a/b\n3:cpuset:/a/b\n2:blkio:/a/b\n0::/a/b\n"),
    );
    fx.write(
        "proc/42/status",
        &m("Name:\tsh\nPid:\t42\nPPid:\t41\nNSpid:\t42\t2\n"),
    );
    fx.write(
        "proc/41/status",
        &m("Name:\tinit\nPid:\t41\nPPid:\t1\nNSpid:\t41\t1\n"),
    );
    fx.write(
        "proc/42/stat",
        &m("42 (s h) R 41 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 500 0 0\n"),
    );
    fx.write(
        "proc/41/stat",
        &m("41 (init) S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 400 0 0\n"),
    );
    fx.write("proc/42/ns/pid", "");
    fx.write("proc/41/ns/pid", "");
    for (name, text) in [
        ("meminfo", fixture("meminfo-swap")),
        ("cpuinfo", fixture("cpuinfo-4cpu")),
        ("stat", fixture("stat-4cpu")),
        ("diskstats", fixture("diskstats")),
        ("swaps", fixture("swaps-two")),
        ("uptime", "100.00 300.00\n".into()),
        ("loadavg", "0.1 0.2 0.3 1/2 3\n".into()),
        ("slabinfo", "slabinfo - version: 2.1\n".into()),
        (
            "pressure/cpu",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n".into(),
        ),
        ("pressure/io", "x\n".into()),
        ("pressure/memory", "x\n".into()),
    ] {
        fx.write(&format!("proc/{name}"), &m(&text));
    }
    fx.write("sys/devices/system/cpu/online", &m("0-3\n"));
    fx.write("cg/unified/cgroup.controllers", &m("cpu io memory\n"));
    for dir in ["cg/memory/a", "cg/memory/a/b"] {
        fx.write(&format!("{dir}/memory.limit_in_bytes"), &m("268435456\n"));
        fx.write(
            &format!("{dir}/memory.memsw.limit_in_bytes"),
            &m("9223372036854771712\n"),
        );
    }
    fx.write("cg/memory/a/b/memory.usage_in_bytes", &m("1048576\n"));
    fx.write("cg/memory/a/b/memory.memsw.usage_in_bytes", &m("2097152\n"));
    fx.write(
        "cg/memory/a/b/memory.stat",
        &m(
            "cache 1\nrss 2\ntotal_cache 4096\ntotal_rss 8192\ntotal_mapped_file 10\ntotal_active_file 5\n",
        ),
    );
    fx.write("cg/memory/a/b/tasks", &m("42\n41\n"));
    fx.write("cg/cpu,cpuacct/a/cpu.cfs_quota_us", &m("50000\n"));
    fx.write("cg/cpu,cpuacct/a/cpu.cfs_period_us", &m("100000\n"));
    fx.write(
        "cg/cpu,cpuacct/a/b/cpuacct.usage_all",
        &m("cpu user system\n0 100 200\n1 300 400\n"),
    );
    fx.write("cg/cpu,cpuacct/a/b/tasks", &m("42\n"));
    fx.write("cg/cpuset/a/b/cpuset.effective_cpus", &m("1-2\n"));
    fx.write(
        "cg/blkio/a/b/blkio.throttle.io_service_bytes_recursive",
        &m("8:0 Read 4096\n8:0 Write 512\nTotal 4608\n"),
    );
    fx.write(
        "cg/blkio/a/b/blkio.throttle.io_serviced_recursive",
        &m("8:0 Read 1\n8:0 Write 1\nTotal 2\n"),
    );
    fx.write("cg/unified/a/b/memory.max", &m("max\n"));
    fx.write(
        "cg/unified/a/b/io.stat",
        &m("8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n"),
    );
}

#[test]
fn every_file_survives_mangled_cgroup_and_proc_files() {
    let mut rng = Rng(0xC0FF_EE00_1234_5678);
    for round in 0..150 {
        let fx = Fixture::new();
        mangled_host(&mut rng, &fx);
        let opts = ViewOptions {
            cpus_from_quota: round % 2 == 0,
            show_swap: round % 3 != 0,
            cgroup_loadavg: round % 4 == 0,
        };
        // A mountinfo mangled past use is a start-up error, which is fine; a panic is not.
        let Ok(view) = View::new(fx.host.clone(), opts) else {
            continue;
        };
        let host_meminfo = std::fs::read_to_string(fx.root().join("proc/meminfo"))
            .expect("the mangled host meminfo");
        for file in generated_files() {
            for pid in [42, 41, 0, 7] {
                // Errors are allowed (a host file mangled to nothing readable); panics are not,
                // and a served meminfo keeps the rules of `check_meminfo`.
                if let Ok(bytes) = view.content(file, Caller { pid, request: 0 })
                    && file == "proc/meminfo"
                {
                    let text = String::from_utf8_lossy(&bytes);
                    if let Err(e) = check_meminfo(&host_meminfo, &text) {
                        panic!(
                            "round {round}, pid {pid}: {e}; host:\n{host_meminfo}\nserved:\n{text}"
                        );
                    }
                }
            }
        }
    }
}

/// Checks a served meminfo against the host text it was made from: never a partial file
/// (the same lines, each with the host line's key and line ending), and never MemTotal 0
/// unless the host's line says 0 too (`ps` dies of SIGFPE on it). `Err` says what is wrong.
fn check_meminfo(host: &str, served: &str) -> Result<(), String> {
    let host_lines: Vec<&str> = host.split_inclusive('\n').collect();
    let served_lines: Vec<&str> = served.split_inclusive('\n').collect();
    if host_lines.len() != served_lines.len() {
        return Err(format!(
            "{} lines served, the host's file has {}",
            served_lines.len(),
            host_lines.len()
        ));
    }
    for (i, (h, s)) in host_lines.iter().zip(&served_lines).enumerate() {
        let key = |line: &str| line.split_once(':').map(|(k, _)| k.to_string());
        if key(h) != key(s) || (key(h).is_none() && h != s) {
            return Err(format!("line {i} is {s:?}, made from the host's {h:?}"));
        }
        if ending(h) != ending(s) {
            return Err(format!("line {i} {s:?} does not end as the host's {h:?}"));
        }
        if key(s).is_some_and(|k| k.trim() == "MemTotal")
            && meminfo_value(s) == Some(0)
            && meminfo_value(h) != Some(0)
        {
            return Err(format!(
                "MemTotal 0 in line {i} {s:?}, from the host's {h:?}"
            ));
        }
    }
    Ok(())
}

/// The line ending (any run of `\r` and `\n` at the end).
fn ending(line: &str) -> &str {
    &line[line.trim_end_matches(['\r', '\n']).len()..]
}

/// The number a `Key: value` line starts its value with, whatever the padding.
fn meminfo_value(line: &str) -> Option<u64> {
    let (_, value) = line.split_once(':')?;
    let value = value.trim_start_matches([' ', '\t']);
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

#[test]
fn meminfo_check_catches_a_zero_and_a_partial_file() {
    let host = "MemTotal:       24684084 kB\nMemFree:         1000 kB\nodd line\n";
    assert_eq!(check_meminfo(host, host), Ok(()));
    let limited = "MemTotal:         262144 kB\nMemFree:         1000 kB\nodd line\n";
    assert_eq!(check_meminfo(host, limited), Ok(()));
    for bad in [
        "MemTotal: 0 kB\nMemFree:         1000 kB\nodd line\n",
        "MemTotal:\t00 kB\nMemFree:         1000 kB\nodd line\n",
        "MemTotal:         262144 kB\nMemFree:         1000 kB\nodd line",
        "MemTotal:         262144 kB\nMemFree:         1000 kB\n",
        "MemTotal:         262144 kB\nMemFree:         1000 kB\nodd lin\n",
        "MemTotal:         262144 kB\nMemFree:         1000 kB\r\nodd line\n",
        "MemTotal:         262144 kB\nMemFre:         1000 kB\nodd line\n",
        "",
    ] {
        assert!(check_meminfo(host, bad).is_err(), "{bad:?} passed");
    }
    let zero = "MemTotal:              0 kB\n";
    assert_eq!(check_meminfo(zero, "MemTotal: 0 kB\n"), Ok(()));
}
