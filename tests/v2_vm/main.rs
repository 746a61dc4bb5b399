//! lxcfs-rs on a real pure cgroup v2 kernel: a stock Debian kernel booted under qemu with
//! `cgroup_no_v1=all` (`scripts/v2vm/vm`), running `scripts/v2vm/payload` from a busybox
//! initramfs that carries the binary under test.
//!
//! Inside the VM (3 CPUs, swap on a virtual disk), cgroup `A` has `memory.max` 256 MiB,
//! `memory.swap.max` 64 MiB, `cpu.max` half a CPU and `cpuset.cpus` 1-2; after A's own
//! readers are done, `A/child` gets `memory.max` 128 MiB. Readers in A, in A/child, in the
//! root cgroup and as the init of a new pid namespace in A read every file from a mount of
//! `lxcfs-rs -l` and a few from `lxcfs-rs -l --enable-cfs`, with the cgroup's and the kernel's
//! own files read just before and after. Everything is checked here, against
//! docs/semantics.md.
//!
//! Needs only Debian packages (kernel and qemu are unpacked under the target dir, never
//! installed); when they cannot be had the tests skip, or fail when CI is set. One boot
//! serves every test of this file.
//!
//! Then, on the same kernel (6.1: no `FUSE_NOTIFY_RESEND`), the payload kills the worker of a
//! daemon five times while reads are in flight; `restart.rs` checks what readers saw against
//! the README's kernel matrix.
//!
//! `vm.rs` boots the VM and holds what it sent back; `readers.rs` names the payload's readers,
//! what each must see, and parsers for what they read.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod readers;
mod restart;
mod vm;

use std::collections::{BTreeMap, BTreeSet};

use common::{
    assert_busybox_cat_takes_sendfile, assert_lines_from_host, find_program, kb, key_values, keys,
    parse_loadavg, parse_uptime, processors, stat_cpu_labels,
};
use readers::*;
use vm::vm;

const KIB: u64 = 1024;
// What scripts/v2vm/payload sets (checked against the cgroup files it sends back): A's
// limits, with cpus 1-2 rather than 0 so that renumbering shows, and the child's memory.max.
const A_MEMORY_MAX: u64 = 256 * 1024 * KIB;
const A_SWAP_MAX: u64 = 64 * 1024 * KIB;
const A_CPU_MAX: &str = "50000 100000";
const A_CPUS: &[u32] = &[1, 2];
const CHILD_MEMORY_MAX: u64 = 128 * 1024 * KIB;
/// CPUs the VM has (`-smp 3`).
const HOST_CPUS: &[u32] = &[0, 1, 2];
/// The kernel charges memory to a cgroup in per-CPU batches of 64 pages (MEMCG_CHARGE_BATCH)
/// and flushes memory.stat lazily within the same bound, so `memory.current` and
/// `memory.stat` are exact only to 64 pages x 3 CPUs = 768 kB. A value the daemon read must
/// lie within the cgroup's before/after range widened by this much.
const SLACK_KB: u64 = 1024;
// The payload's ballast (tmpfs file, anonymous memory) in A and in the child, in MiB.
const A_BALLAST: (u64, u64) = (8, 12);
const CHILD_BALLAST: (u64, u64) = (4, 6);

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn readers_sit_in_their_cgroups_of_a_pure_v2_host() {
    let Some(vm) = vm() else { return };
    for r in READERS {
        assert_eq!(
            vm.file(&format!("{}/self.cgroup", r.name)),
            format!("0::{}\n", r.cgroup),
            "reader {}: /proc/self/cgroup should be one cgroup v2 line (cgroup_no_v1=all)",
            r.name
        );
    }
    assert_eq!(vm.number("A/cg.before/memory.max"), A_MEMORY_MAX);
    assert_eq!(vm.number("A/cg.before/memory.swap.max"), A_SWAP_MAX);
    assert_eq!(vm.file("A/cg.before/cpu.max").trim(), A_CPU_MAX);
    assert_eq!(
        vm.file("A/cg.before/cpuset.cpus.effective").trim(),
        cpu_list(A_CPUS)
    );
    assert_eq!(vm.number("child/cg.before/memory.max"), CHILD_MEMORY_MAX);
    assert_eq!(
        vm.file("host/sys/devices/system/cpu/online").trim(),
        cpu_list(HOST_CPUS),
        "the VM should have the CPUs the test expects"
    );
    for d in ["daemon", "daemon-cfs"] {
        assert_eq!(
            vm.number(&format!("{d}.exit")),
            0,
            "lxcfs-rs should exit 0 on SIGTERM; its log:\n{}",
            vm.file(&format!("{d}.log"))
        );
    }
}

#[test]
fn meminfo_follows_the_cgroup_hierarchy() {
    let Some(vm) = vm() else { return };
    let host_swap_kb = kb(&vm.file("root/host.before/proc/meminfo"), "SwapTotal");
    assert!(
        host_swap_kb > A_SWAP_MAX / KIB,
        "the VM's swap ({host_swap_kb} kB) should be larger than A's memory.swap.max"
    );
    for (r, (shmem_mib, anon_mib)) in [(&A, A_BALLAST), (&CHILD, CHILD_BALLAST)] {
        let m = r.lxcfs(vm, "proc/meminfo");
        let ctx = format!("reader in {}, its proc/meminfo:\n{m}", r.cgroup);
        let limit = r.mem_kb.expect("limited reader");
        // Without the payload's ballast, lines from the wrong key would agree within the slack.
        for (key, mib) in [("shmem", shmem_mib), ("anon", anon_mib)] {
            let (lo, _) = r.cg_kb_range(vm, "memory.stat", key);
            assert!(
                lo >= mib * 1024,
                "{}'s memory.stat {key} should hold the payload's {mib} MiB, read {lo} kB",
                r.cgroup
            );
        }
        assert_eq!(
            kb(&m, "MemTotal"),
            limit,
            "MemTotal: the smallest memory.max of {} and its ancestors; {ctx}",
            r.cgroup
        );
        assert_eq!(
            kb(&m, "SwapTotal"),
            A_SWAP_MAX / KIB,
            "SwapTotal: min(A's memory.swap.max, host SwapTotal); {ctx}"
        );
        assert_eq!(
            keys(&m),
            keys(&r.host(vm, "proc/meminfo", false)),
            "meminfo keeps the host's keys in order; {ctx}"
        );
        for key in ["Buffers", "SwapCached"] {
            assert_eq!(kb(&m, key), 0, "{key} is 0 in a cgroup; {ctx}");
        }
        let current = r.cg_kb_range(vm, "memory.current", "");
        assert_within(
            "MemFree = MemTotal - memory.current",
            kb(&m, "MemFree"),
            (
                limit.saturating_sub(current.1),
                limit.saturating_sub(current.0),
            ),
            SLACK_KB,
            &ctx,
        );
        for (key, stat) in [
            ("Cached", "file"),
            ("Active(anon)", "active_anon"),
            ("Inactive(anon)", "inactive_anon"),
            ("Active(file)", "active_file"),
            ("Inactive(file)", "inactive_file"),
            ("Unevictable", "unevictable"),
            ("Shmem", "shmem"),
            ("Mapped", "file_mapped"),
            ("AnonPages", "anon"),
            ("SReclaimable", "slab_reclaimable"),
            ("SUnreclaim", "slab_unreclaimable"),
            ("KernelStack", "kernel_stack"),
            ("PageTables", "pagetables"),
        ] {
            assert_within(
                &format!("{key} = memory.stat {stat}"),
                kb(&m, key),
                r.cg_kb_range(vm, "memory.stat", stat),
                SLACK_KB,
                &ctx,
            );
        }
        // Lines made of others: exact within the one file (±1 kB per byte-to-kB rounding).
        let v = |k: &str| kb(&m, k);
        let sums = [
            ("Active", v("Active(anon)") + v("Active(file)"), 1),
            ("Inactive", v("Inactive(anon)") + v("Inactive(file)"), 1),
            ("Slab", v("SReclaimable") + v("SUnreclaim"), 0),
            (
                "MemAvailable",
                (v("MemFree") + v("Active(file)") + v("Inactive(file)") + v("SReclaimable"))
                    .min(limit),
                2,
            ),
        ];
        for (key, want, tolerance) in sums {
            assert!(
                v(key).abs_diff(want) <= tolerance,
                "{key}: expected {want} from the other lines, read {}; {ctx}",
                v(key)
            );
        }
        let swap_used = r.cg_kb_range(vm, "memory.swap.current", "");
        assert_within(
            "SwapFree = SwapTotal - memory.swap.current",
            kb(&m, "SwapFree"),
            (
                (A_SWAP_MAX / KIB).saturating_sub(swap_used.1),
                (A_SWAP_MAX / KIB).saturating_sub(swap_used.0),
            ),
            0,
            &ctx,
        );
        let host = r.host(vm, "proc/meminfo", false);
        assert_lines_from_host(
            &m,
            &host,
            &[
                "VmallocTotal",
                "Hugepagesize",
                "HugePages_Total",
                "DirectMap2M",
            ],
            &ctx,
        );
    }
    // Outside any limit: the host's file.
    let m = ROOT.lxcfs(vm, "proc/meminfo");
    let (before, after) = (
        ROOT.host(vm, "proc/meminfo", false),
        ROOT.host(vm, "proc/meminfo", true),
    );
    let ctx = format!("reader in the root cgroup, its proc/meminfo:\n{m}");
    assert_eq!(keys(&m), keys(&before), "host keys; {ctx}");
    for key in ["MemTotal", "SwapTotal"] {
        assert_eq!(kb(&m, key), kb(&before, key), "{key}: the host's; {ctx}");
    }
    let free = (kb(&before, "MemFree"), kb(&after, "MemFree"));
    assert_within(
        "MemFree: the host's",
        kb(&m, "MemFree"),
        (free.0.min(free.1), free.0.max(free.1)),
        SLACK_KB,
        &ctx,
    );
}

#[test]
fn swaps_shows_the_swap_limit() {
    let Some(vm) = vm() else { return };
    let host = vm.file("host/proc/swaps");
    let header = host.lines().next().expect("host swaps header");
    for r in LIMITED {
        let s = r.lxcfs(vm, "proc/swaps");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some(header),
            "reader in {}: swaps starts with the host's header, read:\n{s}",
            r.cgroup
        );
        let used = r.cg_kb_range(vm, "memory.swap.current", "");
        let fields: Vec<&str> = lines
            .get(1)
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        assert!(
            lines.len() == 2
                && fields.len() == 5
                && fields[..3] == ["none", "virtual", &(A_SWAP_MAX / KIB).to_string()]
                && fields[4] == "0"
                && fields[3]
                    .parse::<u64>()
                    .is_ok_and(|u| (used.0..=used.1).contains(&u)),
            "reader in {}: expected one line `none virtual {} <memory.swap.current kB, {}..={}> 0`, read:\n{s}",
            r.cgroup,
            A_SWAP_MAX / KIB,
            used.0,
            used.1
        );
    }
}

/// On a real v2 kernel the root cgroup has `memory.stat` but no `memory.current` or
/// `memory.swap.current`: a reader there must still get the host's swaps, as its meminfo
/// shows the host's swap lines.
#[test]
fn swaps_outside_any_limit_is_the_hosts() {
    let Some(vm) = vm() else { return };
    assert_eq!(
        ROOT.lxcfs(vm, "proc/swaps"),
        vm.file("host/proc/swaps"),
        "reader in the root cgroup: the host's swaps"
    );
}

#[test]
fn cpuinfo_and_cpu_lists_follow_cpuset_and_quota() {
    let Some(vm) = vm() else { return };
    let host = vm.file("host/proc/cpuinfo");
    let host_blocks = cpuinfo_blocks(&host);
    // Block n is host CPU n: the indexing below relies on it.
    assert_eq!(
        processors(&host),
        HOST_CPUS.iter().map(u32::to_string).collect::<Vec<_>>(),
        "the VM's cpuinfo:\n{host}"
    );
    assert_eq!(
        host_blocks.len(),
        HOST_CPUS.len(),
        "the VM's cpuinfo:\n{host}"
    );
    let cpu = "sys/devices/system/cpu";
    let host_ls: Vec<String> = vm.file("host/cpu.ls").lines().map(str::to_string).collect();
    let non_cpu: Vec<&String> = host_ls.iter().filter(|n| !is_cpu_dir(n)).collect();
    for r in LIMITED {
        let cpus = r.cpus.expect("limited reader");
        let k = cpus.len();
        let c = r.lxcfs(vm, "proc/cpuinfo");
        let want: String = cpus
            .iter()
            .enumerate()
            .map(|(i, &id)| renumbered(&host_blocks[id as usize], i, k))
            .collect();
        assert_eq!(
            c,
            want,
            "reader in {}: cpuinfo should be the host blocks of cpus {} renumbered 0..{k} with siblings and cpu cores {k}",
            r.cgroup,
            cpu_list(cpus)
        );
        assert_eq!(
            vm.file(&format!("{}/chunked/proc/cpuinfo", r.name)),
            c,
            "reader in {}: cpuinfo read 7 bytes at a time should equal one big read",
            r.cgroup
        );
        for f in ["online", "possible", "present"] {
            assert_eq!(
                r.lxcfs(vm, &format!("{cpu}/{f}")),
                format!("{}\n", cpu_list(cpus)),
                "reader in {}: {cpu}/{f} should list cpuset.cpus.effective",
                r.cgroup
            );
        }
        assert_eq!(
            r.lxcfs(vm, &format!("{cpu}/offline")),
            "\n",
            "reader in {}: {cpu}/offline is empty",
            r.cgroup
        );
        let ls = r.lxcfs(vm, "cpu.ls");
        let mut want_ls: Vec<String> = cpus.iter().map(|n| format!("cpu{n}")).collect();
        want_ls.extend(non_cpu.iter().map(|s| s.to_string()));
        want_ls.sort();
        let mut got_ls: Vec<String> = ls.lines().map(str::to_string).collect();
        got_ls.sort();
        assert_eq!(
            got_ls, want_ls,
            "reader in {}: `ls {cpu}` shows cpuN for the visible CPUs only, the rest as the host's",
            r.cgroup
        );

        // --enable-cfs: half a CPU of quota shows ceil(0.5) = 1 CPU, the first visible one.
        let q = r.cfs(vm, "proc/cpuinfo");
        assert_eq!(
            q,
            renumbered(&host_blocks[cpus[0] as usize], 0, 1),
            "reader in {} with --enable-cfs (cpu.max {A_CPU_MAX}): one CPU, host cpu{}",
            r.cgroup,
            cpus[0]
        );
        for f in ["online", "possible", "present"] {
            assert_eq!(
                r.cfs(vm, &format!("{cpu}/{f}")),
                "0\n",
                "reader in {} with --enable-cfs: {cpu}/{f} is 0-(k-1) for k = 1",
                r.cgroup
            );
        }
        let q_ls: Vec<String> = vm
            .file(&format!("{}/cfs/cpu.ls", r.name))
            .lines()
            .filter(|n| is_cpu_dir(n))
            .map(str::to_string)
            .collect();
        assert_eq!(
            q_ls,
            [format!("cpu{}", cpus[0])],
            "reader in {} with --enable-cfs: one cpuN directory, of the first visible CPU",
            r.cgroup
        );
    }
    assert_eq!(
        ROOT.lxcfs(vm, "proc/cpuinfo"),
        host,
        "reader in the root cgroup: the host's cpuinfo"
    );
    assert_eq!(
        ROOT.cfs(vm, "proc/cpuinfo"),
        host,
        "reader in the root cgroup, --enable-cfs: the host's cpuinfo"
    );
    for f in ["online", "possible", "present", "offline"] {
        assert_eq!(
            ROOT.lxcfs(vm, &format!("{cpu}/{f}")),
            vm.file(&format!("host/{cpu}/{f}")),
            "reader in the root cgroup: the host's {cpu}/{f}"
        );
    }
    assert_eq!(
        ROOT.lxcfs(vm, "cpu.ls").lines().collect::<Vec<_>>(),
        host_ls,
        "reader in the root cgroup: the host's {cpu} entries"
    );
}

#[test]
fn stat_shows_the_cgroups_cpu_time_on_its_cpus() {
    let Some(vm) = vm() else { return };
    for r in LIMITED {
        let cpus = r.cpus.expect("limited reader");
        for (mount, shown) in [("lxcfs", cpus), ("cfs", &cpus[..1])] {
            let s = vm.file(&format!("{}/{mount}/proc/stat", r.name));
            let ctx = format!(
                "reader in {} ({mount} mount), its proc/stat:\n{s}",
                r.cgroup
            );
            let mut want_labels = vec!["cpu".to_string()];
            want_labels.extend((0..shown.len()).map(|i| format!("cpu{i}")));
            assert_eq!(stat_cpu_labels(&s), want_labels, "cpu lines; {ctx}");
            let rows = cpu_rows(&s);
            let (host_b, host_a) = (
                cpu_rows(&r.host(vm, "proc/stat", false)),
                cpu_rows(&r.host(vm, "proc/stat", true)),
            );
            let width = host_b["cpu"].len();
            let mut sum = vec![0u64; width];
            for (i, &id) in shown.iter().enumerate() {
                let row = &rows[&format!("cpu{i}")];
                assert_eq!(
                    row.len(),
                    width,
                    "cpu{i} has the host's column count; {ctx}"
                );
                for (c, v) in row.iter().enumerate() {
                    sum[c] += v;
                    if ![0, 2, 3].contains(&c) {
                        assert_eq!(
                            *v, 0,
                            "cpu{i} column {c} is 0 (only user, system and idle are known); {ctx}"
                        );
                    }
                }
                // user + system + idle = the host's time on that CPU.
                let host_time = |rows: &BTreeMap<String, Vec<u64>>| -> u64 {
                    rows[&format!("cpu{id}")].iter().take(8).sum()
                };
                assert_within(
                    &format!("cpu{i}: user + system + idle = host cpu{id}'s time"),
                    row[0] + row[2] + row[3],
                    (host_time(&host_b), host_time(&host_a)),
                    0,
                    &ctx,
                );
            }
            assert_eq!(
                rows["cpu"], sum,
                "the cpu line is the sum of the cpuN lines; {ctx}"
            );
            for (col, key) in [(0, "user_usec"), (2, "system_usec")] {
                let usec = |after| {
                    *key_values(&r.cg(vm, "cpu.stat", after))
                        .get(key)
                        .unwrap_or_else(|| panic!("no {key} in {}'s cpu.stat", r.name))
                };
                // USER_HZ 100: a tick is 10000 µs, truncated.
                assert_within(
                    &format!("{key} / 10000 over the cpuN lines (column {col})"),
                    sum[col],
                    (usec(false) / 10000, usec(true) / 10000),
                    0,
                    &ctx,
                );
            }
            let host = r.host(vm, "proc/stat", false);
            assert_eq!(
                stat_line(&s, "btime"),
                stat_line(&host, "btime"),
                "btime is the host's; {ctx}"
            );
            for key in [
                "intr",
                "ctxt",
                "processes",
                "softirq",
                "procs_running",
                "procs_blocked",
            ] {
                assert!(stat_line(&s, key).is_some(), "a {key} line; {ctx}");
            }
        }
    }
    let s = ROOT.lxcfs(vm, "proc/stat");
    let host = ROOT.host(vm, "proc/stat", false);
    assert_eq!(
        stat_cpu_labels(&s),
        stat_cpu_labels(&host),
        "reader in the root cgroup: the host's cpu lines, read:\n{s}"
    );
    assert_eq!(stat_line(&s, "btime"), stat_line(&host, "btime"));
}

#[test]
fn diskstats_shows_the_cgroups_io_stat() {
    let Some(vm) = vm() else { return };
    let host = ROOT.host(vm, "proc/diskstats", false);
    let vda = host
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("vda"))
        .unwrap_or_else(|| panic!("no vda in the VM's diskstats:\n{host}"));
    let w: Vec<&str> = vda.split_whitespace().collect();
    let (major, minor) = (w[0], w[1]);
    let columns = w.len() - 3;
    let dev = format!("{major}:{minor}");
    for r in LIMITED {
        let done = io_done(vm, r);
        let io = r.cg(vm, "io.stat", false);
        let stat = io_stat_of(&io, &dev)
            .unwrap_or_else(|| panic!("no {dev} (vda) in {}'s io.stat:\n{io}", r.cgroup));
        for (key, want) in &done {
            assert_eq!(
                stat.get(key),
                Some(want),
                "{}'s io.stat {key} for {dev}: the payload's direct I/O; io.stat:\n{io}",
                r.cgroup
            );
        }
        assert_eq!(
            r.cg(vm, "io.stat", true),
            io,
            "{}'s io.stat should not change while its reader reads",
            r.cgroup
        );
        let mut want = format!(
            "{major:>4} {minor:>7} vda {} 0 {} 0 {} 0 {}",
            done["rios"],
            done["rbytes"] / 512,
            done["wios"],
            done["wbytes"] / 512
        );
        for _ in 7..columns {
            want.push_str(" 0");
        }
        want.push('\n');
        assert_eq!(
            r.lxcfs(vm, "proc/diskstats"),
            want,
            "reader in {}: diskstats from its io.stat (reads, sectors read, writes, sectors written; other columns 0)",
            r.cgroup
        );
    }
    let d = ROOT.lxcfs(vm, "proc/diskstats");
    assert!(
        d == host || d == ROOT.host(vm, "proc/diskstats", true),
        "reader in the root cgroup: the host's diskstats, read:\n{d}\nhost:\n{host}"
    );
}

#[test]
fn pressure_files_are_the_cgroups() {
    let Some(vm) = vm() else { return };
    for r in READERS {
        for res in ["cpu", "io", "memory"] {
            let p = r.lxcfs(vm, &format!("proc/pressure/{res}"));
            let (src, before, after) = if r.limited() {
                (
                    format!("{}/{res}.pressure", r.cgroup),
                    r.cg(vm, &format!("{res}.pressure"), false),
                    r.cg(vm, &format!("{res}.pressure"), true),
                )
            } else {
                (
                    format!("/proc/pressure/{res}"),
                    r.host(vm, &format!("proc/pressure/{res}"), false),
                    r.host(vm, &format!("proc/pressure/{res}"), true),
                )
            };
            let got = pressure_totals(&p);
            let (b, a) = (pressure_totals(&before), pressure_totals(&after));
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                b.keys().collect::<Vec<_>>(),
                "reader in {}: proc/pressure/{res} has the lines of {src}, read:\n{p}",
                r.cgroup
            );
            for (kind, total) in &got {
                assert_within(
                    &format!("reader in {}: proc/pressure/{res} {kind} total", r.cgroup),
                    *total,
                    (b[kind], a[kind]),
                    0,
                    &format!(
                        "it should be {src}'s, read before:\n{before}read:\n{p}read after:\n{after}"
                    ),
                );
            }
        }
    }
    // A's busy loops stalled A on CPU, never the child: the child's numbers are its own.
    let a = pressure_totals(&A.cg(vm, "cpu.pressure", true))["some"];
    let c = pressure_totals(&CHILD.cg(vm, "cpu.pressure", false))["some"];
    assert!(
        a > c,
        "A's cpu pressure ({a}) should exceed its child's ({c}), else the test cannot tell them apart"
    );
}

#[test]
fn uptime_is_the_age_of_the_readers_pid_namespace() {
    let Some(vm) = vm() else { return };
    // Readers in the host pid namespace: the host's file.
    for r in READERS {
        let u = r.lxcfs(vm, "proc/uptime");
        let (age, idle) = parse_uptime(&u);
        let (b, a) = (
            parse_uptime(&r.host(vm, "proc/uptime", false)),
            parse_uptime(&r.host(vm, "proc/uptime", true)),
        );
        assert!(
            (b.0..=a.0).contains(&age) && (b.1..=a.1).contains(&idle),
            "reader in {} (host pid namespace): the host's uptime, between {b:?} and {a:?}; read {u:?}",
            r.cgroup
        );
    }
    // The init of a new pid namespace in A: its own age.
    let u = vm.file("A-ns/lxcfs/proc/uptime");
    let (age, idle) = parse_uptime(&u);
    assert_eq!(
        vm.number("A-ns/self.pid"),
        1,
        "the reader is its namespace's init"
    );
    let start = vm
        .file("A-ns/init.stat")
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse::<f64>().ok())
        .expect("start time (field 22) in A-ns/init.stat")
        / 100.0;
    let kernel = |f: &str| parse_uptime(&vm.file(f)).0;
    let (lo, hi) = (
        kernel("A-ns/kernel.uptime.before") - start,
        kernel("A-ns/kernel.uptime.after") - start,
    );
    assert!(
        age >= lo - 0.02 && age <= hi + 0.02,
        "reader initing its own pid namespace: uptime = now - its start ({start:.2} s after boot), {lo:.2}..={hi:.2}; read {u:?}"
    );
    assert!(
        age < kernel("A-ns/kernel.uptime.before") - 1.0,
        "the namespace started well after boot, so its uptime is not the host's; read {u:?}"
    );
    let usage = |after| {
        let text = vm.file(&format!(
            "A-ns/cg.{}/cpu.stat",
            if after { "after" } else { "before" }
        ));
        key_values(&text)["usage_usec"] as f64 / 1e6
    };
    let cpus = A_CPUS.len() as f64;
    let idle_range = (
        (lo * cpus - usage(true)).max(0.0),
        (hi * cpus - usage(false)).max(0.0),
    );
    assert!(
        idle >= idle_range.0 - 0.05 && idle <= idle_range.1 + 0.05,
        "idle = max(0, age x {cpus} CPUs - A's cpu.stat usage): expected {idle_range:.2?}, read {u:?}"
    );
}

#[test]
fn loadavg_counts_the_cgroups_tasks() {
    let Some(vm) = vm() else { return };
    for name in ["A", "child", "A-ns"] {
        let text = vm.file(&format!("{name}/loadavg"));
        let l = parse_loadavg(&text).unwrap_or_else(|e| panic!("reader {name}: {e}"));
        let pid = vm.number(&format!("{name}/loadavg.pid"));
        let threads = vm.file(&format!("{name}/loadavg.threads")).lines().count() as u64;
        assert_eq!(
            l.last_pid, pid,
            "reader {name}: lastpid is the newest task of the cgroup, the reader itself (pid {pid} in its own pid namespace); read {text:?}"
        );
        assert_eq!(
            l.total, threads,
            "reader {name}: total is the cgroup's thread count ({threads} in cgroup.threads as a reader started the same way saw it); read {text:?}"
        );
        assert!(
            l.running <= l.total,
            "reader {name}: running <= total; read {text:?}"
        );
    }
    for r in READERS {
        let text = r.lxcfs(vm, "proc/loadavg");
        parse_loadavg(&text).unwrap_or_else(|e| panic!("reader in {}: {e}", r.cgroup));
    }
}

#[test]
fn slabinfo_is_the_hosts() {
    let Some(vm) = vm() else { return };
    let names = |t: &str| -> BTreeSet<String> {
        t.lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let host = vm.file("host/proc/slabinfo");
    let head: Vec<&str> = host.lines().take(2).collect();
    for r in READERS {
        let s = r.lxcfs(vm, "proc/slabinfo");
        assert_eq!(
            s.lines().take(2).collect::<Vec<_>>(),
            head,
            "reader in {}: slabinfo has the host's header",
            r.cgroup
        );
        assert_eq!(
            names(&s),
            names(&host),
            "reader in {}: slabinfo lists the host's caches",
            r.cgroup
        );
    }
}

#[test]
fn sendfile_readers_get_their_own_view() {
    let Some(vm) = vm() else { return };
    // The payload reads with the host's busybox (scripts/v2vm/vm copies `command -v busybox`
    // into the VM): unless its `cat` copies with sendfile, these were read(2) reads.
    require!(mount);
    let busybox = find_program("busybox").expect("the VM was built, so busybox is on PATH");
    assert_busybox_cat_takes_sendfile(&busybox);
    let host_total = kb(&vm.file("root/host.before/proc/meminfo"), "MemTotal");
    let host_keys = keys(&vm.file("root/host.before/proc/meminfo"));
    // In the order the payload read them: A, root, child, root again, each through the
    // page cache of the same inode.
    for (name, who, want) in [
        ("A", "/A", A_MEMORY_MAX / KIB),
        ("root", "/", host_total),
        ("child", "/A/child", CHILD_MEMORY_MAX / KIB),
        ("root2", "/ (after the child)", host_total),
    ] {
        let m = vm.file(&format!("{name}/sendfile/proc/meminfo"));
        assert_eq!(
            keys(&m),
            host_keys,
            "sendfile reader in {who}: a whole meminfo, read:\n{m}"
        );
        assert_eq!(
            kb(&m, "MemTotal"),
            want,
            "sendfile reader in {who}: MemTotal, read:\n{m}"
        );
    }
}
