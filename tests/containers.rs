//! End to end with real OCI containers run by `runc`: a busybox root filesystem built on the
//! fly, the daemon's files bind-mounted over the container's `/proc/...` and
//! `/sys/devices/system/cpu/online` as `docker run -v` does, and every check made from inside
//! the containers (a static C probe reading with read(2) and calling `sysconf`, busybox tools,
//! busybox `cat` for sendfile readers). Also readers in a user namespace, readers that entered
//! with setns (`runc exec`, a container joining another's pid namespace), a fresh container
//! whose pid namespace reuses a dead one's inode number, a pid namespace nested inside a
//! container, and a container in the host pid namespace. Needs root, /dev/fuse, runc,
//! busybox-static and gcc (skipped otherwise, failing when CI is set).

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::sync::RwLock;
use std::time::Duration;

use common::container::{Barrier, Report, Rootfs, Runc, Spec, can_run_containers};
use common::{Daemon, kb, line_of, parse_loadavg, parse_uptime, processors, skip, stat_cpu_labels};

const MIB: u64 = 1024 * 1024;

/// How long a container may take from `runc run` to its exit.
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// Rounds of the busybox `cat` loop in each container.
const SPLICE_ROUNDS: usize = 150;

/// Tests take this shared, except the one that needs the kernel to hand a dead container's
/// pid-namespace inode number to the next container: other tests' containers would take it.
static NAMESPACES: RwLock<()> = RwLock::new(());

fn shared_namespaces() -> std::sync::RwLockReadGuard<'static, ()> {
    NAMESPACES.read().unwrap_or_else(|e| e.into_inner())
}

/// [`can_run_containers`], and CPUs 0 and 1 online: the cpusets below use both.
fn can_run() -> bool {
    if !can_run_containers() {
        return false;
    }
    let online = host("/sys/devices/system/cpu/online");
    let has = |cpu: u32| {
        online.trim().split(',').any(|range| {
            let (lo, hi) = range.split_once('-').unwrap_or((range, range));
            let (lo, hi) = (lo.parse::<u32>(), hi.parse::<u32>());
            lo.is_ok_and(|lo| lo <= cpu) && hi.is_ok_and(|hi| cpu <= hi)
        })
    };
    if has(0) && has(1) {
        return true;
    }
    skip(&format!(
        "the container tests need CPUs 0 and 1 online; online is {:?}",
        online.trim()
    ))
}

fn host(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn host_uptime() -> f64 {
    parse_uptime(&host("/proc/uptime")).0
}

/// What the host itself shows, to tell "the host's value" from "the container's".
struct HostView {
    meminfo: String,
    online: String,
    processors: usize,
    stat_labels: Vec<String>,
    swaps: String,
    sysconf: BTreeMap<String, i64>,
}

impl HostView {
    fn read(rootfs: &Rootfs) -> HostView {
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

    fn mem_total(&self) -> u64 {
        kb(&self.meminfo, "MemTotal")
    }
}

/// What a container with our files should see.
struct Want {
    mem_kb: u64,
    /// The online list, without the newline.
    online: &'static str,
    /// CPUs in cpuinfo, stat and `sysconf(_SC_NPROCESSORS_ONLN)`.
    cpus: usize,
    /// CPUs in the cpuset (what `nproc`, i.e. `sched_getaffinity`, counts).
    cpuset_cpus: usize,
}

fn cpu_labels(n: usize) -> Vec<String> {
    std::iter::once("cpu".to_string())
        .chain((0..n).map(|i| format!("cpu{i}")))
        .collect()
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Checks on a container's report
// ---------------------------------------------------------------------------------------

fn check_memory(r: &Report, want: &Want) {
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
fn check_touch(r: &Report, want: &Want) {
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

fn check_swap(r: &Report, host: &HostView) {
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

fn check_cpus(r: &Report, want: &Want) {
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
fn check_fresh_uptime(r: &Report, cpus: usize) {
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
fn check_loadavg(r: &Report) {
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
fn check_tools(r: &Report, want: &Want, host: &HostView) {
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
fn check_conf_is_hosts(r: &Report, host: &HostView) {
    assert_eq!(
        r.number("sysconf", "conf"),
        host.sysconf["conf"],
        "container {}: with only the online file bound, sysconf(_SC_NPROCESSORS_CONF) should \
         still be the host's (it counts the cpuN directories)",
        r.name
    );
}

/// Every busybox `cat` read of the splice loop gave the container's own view.
fn check_splice(r: &Report, want: &Want, rounds: usize) {
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

/// Everything a container with its own pid namespace and our files checks.
fn check_limited(r: &Report, want: &Want, host: &HostView) {
    check_memory(r, want);
    check_swap(r, host);
    check_cpus(r, want);
    check_fresh_uptime(r, want.cpus);
    check_loadavg(r);
    check_tools(r, want, host);
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn two_limited_containers_at_once_and_a_control() {
    if !can_run() {
        return;
    }
    let _ns = shared_namespaces();
    let rootfs = Rootfs::shared();
    let d = Daemon::start(&["-l"]);
    let runc = Runc::new();
    let barrier = Barrier::new();
    let host = HostView::read(&rootfs);
    let limited = format!(
        "ready\nreport\nsec touch; probe touch 100\nsec splice; splice_loop {SPLICE_ROUNDS}\n"
    );
    let a = Spec::new("a", &rootfs, &limited)
        .memory(256 * MIB)
        .cpus("0")
        .quota(50_000, 100_000)
        .lxcfs(&d.mnt)
        .barrier(&barrier);
    let b = Spec::new("b", &rootfs, &limited)
        .memory(128 * MIB)
        .cpus("0-1")
        .lxcfs(&d.mnt)
        .barrier(&barrier);
    // Same limits as a, none of our files.
    let control = Spec::new("control", &rootfs, "ready\nreport\n")
        .memory(256 * MIB)
        .cpus("0")
        .quota(50_000, 100_000)
        .barrier(&barrier);
    let host_up_before = host_uptime();
    let [ra, rb, rc] = runc.run_together(&barrier, [a, b, control], RUN_LIMIT);

    let want_a = Want {
        mem_kb: 262_144,
        online: "0",
        cpus: 1,
        cpuset_cpus: 1,
    };
    let want_b = Want {
        mem_kb: 131_072,
        online: "0-1",
        cpus: 2,
        cpuset_cpus: 2,
    };
    for (r, want) in [(&ra, &want_a), (&rb, &want_b)] {
        check_limited(r, want, &host);
        check_conf_is_hosts(r, &host);
        check_touch(r, want);
        check_splice(r, want, SPLICE_ROUNDS);
    }

    // The control sees the host in every file, though its cgroup has a's limits.
    let meminfo = rc.get("meminfo");
    assert_eq!(
        kb(meminfo, "MemTotal"),
        host.mem_total(),
        "control container (no bind mounts): expected the host's MemTotal, read:\n{meminfo}"
    );
    assert_eq!(
        rc.get("online"),
        host.online,
        "control container: expected the host's online list"
    );
    assert_eq!(
        processors(rc.get("cpuinfo")).len(),
        host.processors,
        "control container: expected the host's processor count, read:\n{}",
        rc.get("cpuinfo")
    );
    assert_eq!(
        stat_cpu_labels(rc.get("stat")),
        host.stat_labels,
        "control container: expected the host's /proc/stat cpu lines"
    );
    assert_eq!(
        rc.number("sysconf", "onln"),
        host.sysconf["onln"],
        "control container: expected the host's sysconf(_SC_NPROCESSORS_ONLN)"
    );
    let (up, _) = parse_uptime(rc.get("uptime"));
    assert!(
        up >= host_up_before - 0.01,
        "control container: expected the host's uptime (at least {host_up_before} s), read {up} s"
    );
    assert_eq!(
        rc.get("nproc").trim(),
        "1",
        "control container: nproc counts the cpuset (the kernel applies it without our files)"
    );
}

#[test]
fn cfs_quota_sets_the_cpu_count_only_with_enable_cfs() {
    if !can_run() {
        return;
    }
    let _ns = shared_namespaces();
    let rootfs = Rootfs::shared();
    let cfs = Daemon::start(&["--enable-cfs"]);
    let plain = Daemon::start(&[]);
    let runc = Runc::new();
    let barrier = Barrier::new();
    let host = HostView::read(&rootfs);
    let dir_script = "ready\nreport\nsec cpudir; ls -1 /sys/devices/system/cpu\n\
        sec possible; probe read /sys/devices/system/cpu/possible\n\
        sec present; probe read /sys/devices/system/cpu/present\n\
        sec splice; splice_loop 50\n";
    // cpuset 0-1 everywhere, so only the quota can make the count 1.
    let half = Spec::new("half-cfs", &rootfs, dir_script)
        .cpus("0-1")
        .quota(50_000, 100_000)
        .lxcfs_with_cpu_dir(&cfs.mnt)
        .barrier(&barrier);
    let half_plain = Spec::new("half-plain", &rootfs, "ready\nreport\n")
        .cpus("0-1")
        .quota(50_000, 100_000)
        .lxcfs(&plain.mnt)
        .barrier(&barrier);
    let one_and_half = Spec::new("one-and-half-cfs", &rootfs, dir_script)
        .cpus("0-1")
        .quota(150_000, 100_000)
        .lxcfs_with_cpu_dir(&cfs.mnt)
        .barrier(&barrier);
    let [r_half, r_plain, r_15] =
        runc.run_together(&barrier, [half, half_plain, one_and_half], RUN_LIMIT);

    let want_half = Want {
        mem_kb: host.mem_total(),
        online: "0",
        cpus: 1,
        cpuset_cpus: 2,
    };
    let want_plain = Want {
        online: "0-1",
        cpus: 2,
        ..want_half
    };
    let want_15 = Want {
        online: "0-1",
        cpus: 2,
        ..want_half
    };
    check_cpus(&r_half, &want_half);
    check_cpus(&r_plain, &want_plain);
    check_cpus(&r_15, &want_15);
    check_conf_is_hosts(&r_plain, &host);
    // With the whole directory bound, glibc's _SC_NPROCESSORS_CONF follows too.
    for (r, want) in [(&r_half, &want_half), (&r_15, &want_15)] {
        let name = &r.name;
        assert_eq!(
            r.number("sysconf", "conf"),
            want.cpus as i64,
            "container {name}: with sys/devices/system/cpu bound, sysconf(_SC_NPROCESSORS_CONF) \
             counts the cpuN directories shown"
        );
        let listing = r.get("cpudir");
        let cpu_dirs: Vec<&str> = listing
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .collect();
        assert_eq!(
            cpu_dirs,
            numbered(want.cpus)
                .iter()
                .map(|n| format!("cpu{n}"))
                .collect::<Vec<_>>(),
            "container {name}: cpuN directories of /sys/devices/system/cpu, listed:\n{listing}"
        );
        for f in ["possible", "present"] {
            assert_eq!(
                r.get(f),
                format!("{}\n", want.online),
                "container {name}: /sys/devices/system/cpu/{f}"
            );
        }
        check_splice(r, want, 50);
    }
}

#[test]
fn unprivileged_container_in_a_user_namespace() {
    if !can_run() {
        return;
    }
    let _ns = shared_namespaces();
    let rootfs = Rootfs::shared();
    let d = Daemon::start(&["-l"]);
    // The container's root is host uid 100000: runc resolves the bind sources as that uid.
    common::container::open_to_all(d.mnt.parent().expect("the mount point's directory"));
    let runc = Runc::new();
    let host = HostView::read(&rootfs);
    let script = "sec id; id -u\nsec uid_map; cat /proc/self/uid_map\nreport\n\
        sec touch; probe touch 100\nsec splice; splice_loop 50\n";
    let spec = Spec::new("userns", &rootfs, script)
        .memory(192 * MIB)
        .cpus("1")
        .user_namespace(100_000, 65_536)
        .lxcfs(&d.mnt);
    let r = runc.start(spec).wait(RUN_LIMIT);
    let map: Vec<&str> = r.get("uid_map").split_whitespace().collect();
    assert_eq!(
        (r.get("id").trim(), map.as_slice()),
        ("0", ["0", "100000", "65536"].as_slice()),
        "the container's root should be host uid 100000 (a user namespace)"
    );
    let want = Want {
        mem_kb: 196_608,
        online: "1",
        cpus: 1,
        cpuset_cpus: 1,
    };
    check_limited(&r, &want, &host);
    check_touch(&r, &want);
    check_splice(&r, &want, 50);
}

#[test]
fn fresh_container_reusing_a_dead_pid_namespace_inode_gets_its_own_uptime() {
    if !can_run() {
        return;
    }
    // Alone, so no other test's container takes the freed inode number.
    let _ns = NAMESPACES.write().unwrap_or_else(|e| e.into_inner());
    let rootfs = Rootfs::shared();
    let d = Daemon::start(&[]);
    let runc = Runc::new();
    let ns_and_uptime = "sec ns; readlink /proc/self/ns/pid\nsec uptime; probe read /proc/uptime\n";
    let mut reused = false;
    for attempt in 1..=3 {
        // The first container's reads make the daemon cache its init for its namespace
        // inode; then it lives on, so a stale cached init would show an age of 2 s or more.
        let first = Spec::new(
            "first",
            &rootfs,
            &format!("{ns_and_uptime}sleep 2\nsec late; probe read /proc/uptime\n"),
        )
        .memory(256 * MIB)
        .lxcfs(&d.mnt);
        let r1 = runc.start(first).wait(RUN_LIMIT);
        let (late, _) = parse_uptime(r1.get("late"));
        assert!(
            late >= 1.99,
            "first container: its own uptime after sleeping 2 s should be at least 2 s, read {late}"
        );
        // The kernel frees a dead namespace's inode number shortly after its last process.
        std::thread::sleep(Duration::from_millis(300));
        let second = Spec::new("second", &rootfs, ns_and_uptime)
            .memory(256 * MIB)
            .lxcfs(&d.mnt);
        let r2 = runc.start(second).wait(RUN_LIMIT);
        let same = r1.get("ns") == r2.get("ns");
        let (up, _) = parse_uptime(r2.get("uptime"));
        let bound = r2.elapsed.as_secs_f64() + 0.01;
        assert!(
            up <= bound,
            "attempt {attempt}: the second container's uptime {up} s should be its own age (at \
             most {bound:.2} s), not the dead first container's ({late} s when it last read); \
             pid namespaces: first {}, second {} ({})",
            r1.get("ns").trim(),
            r2.get("ns").trim(),
            if same {
                "the same inode"
            } else {
                "different inodes"
            }
        );
        if same {
            reused = true;
            break;
        }
    }
    if !reused {
        eprintln!(
            "note: the kernel never gave the second container the first one's pid-namespace \
             inode in 3 attempts, so the stale-cache case was not exercised this run"
        );
    }
}

#[test]
fn runc_exec_reader_sees_the_containers_view() {
    if !can_run() {
        return;
    }
    let _ns = shared_namespaces();
    let rootfs = Rootfs::shared();
    let d = Daemon::start(&["-l"]);
    let runc = Runc::new();
    let barrier = Barrier::new();
    // Nothing inside reads our files before the exec: the exec'd reader is the first one the
    // daemon sees from this namespace, and its parent (runc) is outside it.
    let spec = Spec::new(
        "exec-target",
        &rootfs,
        "ready\nsec uptime; probe read /proc/uptime\n",
    )
    .memory(128 * MIB)
    .cpus("1")
    .lxcfs(&d.mnt)
    .barrier(&barrier);
    let mut c = runc.start(spec);
    barrier.wait_ready(&mut [&mut c]);
    std::thread::sleep(Duration::from_secs(2));
    let r = c.exec_report(
        "sec uptime; probe read /proc/uptime\nsec loadavg; probe loadavg\n\
         sec meminfo; probe read /proc/meminfo\n\
         sec online; probe read /sys/devices/system/cpu/online\n\
         sec cpuinfo; probe read /proc/cpuinfo\n",
    );
    let age = c.age().as_secs_f64();
    let (up, _) = parse_uptime(r.get("uptime"));
    assert!(
        (1.99..=age + 0.01).contains(&up),
        "runc exec reader: uptime {up} s should be the container's age (its init has run for \
         2 s or more, and at most {age:.2} s), not the exec'd process's own nor the host's"
    );
    assert_eq!(
        kb(r.get("meminfo"), "MemTotal"),
        131_072,
        "runc exec reader: MemTotal of the container's 128 MiB, read:\n{}",
        r.get("meminfo")
    );
    assert_eq!(r.get("online"), "1\n", "runc exec reader: online list");
    assert_eq!(
        processors(r.get("cpuinfo")),
        ["0"],
        "runc exec reader: one processor"
    );
    check_loadavg(&r);
    barrier.go();
    let inside = c.wait(RUN_LIMIT);
    let (later, _) = parse_uptime(inside.get("uptime"));
    assert!(
        later >= up && later <= inside.elapsed.as_secs_f64() + 0.01,
        "the container's own reader, after the exec, should see the same init: uptime {later} s \
         should be at least the exec reader's {up} s and at most the container's age"
    );
}

#[test]
fn container_joining_another_containers_pid_namespace() {
    if !can_run() {
        return;
    }
    let _ns = shared_namespaces();
    let rootfs = Rootfs::shared();
    let d = Daemon::start(&["-l"]);
    let runc = Runc::new();
    let barrier = Barrier::new();
    let host = HostView::read(&rootfs);
    // A pod: the first container's sh is pid 1 of the shared namespace, in a 512 MiB cgroup.
    let pause = Spec::new("pause", &rootfs, "ready\n")
        .memory(512 * MIB)
        .cpus("0-1")
        .lxcfs(&d.mnt)
        .barrier(&barrier);
    let mut pause = runc.start(pause);
    barrier.wait_ready(&mut [&mut pause]);
    let init = pause.init_pid();
    let pod_ns = fs::read_link(format!("/proc/{init}/ns/pid"))
        .unwrap_or_else(|e| panic!("reading the pod's pid namespace: {e}"));
    std::thread::sleep(Duration::from_secs(2));
    let member = Spec::new(
        "member",
        &rootfs,
        "sec pid; echo $$\nsec ns; readlink /proc/self/ns/pid\nreport\n",
    )
    .memory(128 * MIB)
    .cpus("1")
    .lxcfs(&d.mnt)
    .join_pid_namespace_of(init);
    let r = runc.start(member).wait(RUN_LIMIT);
    let pod_age = pause.age().as_secs_f64();
    assert_eq!(
        r.get("ns").trim(),
        pod_ns.to_string_lossy(),
        "the member container should be in the pod's pid namespace"
    );
    assert_ne!(
        r.get("pid").trim(),
        "1",
        "the member's shell is not the namespace's init"
    );
    // Limits from the member's own cgroup, not from the init's (512 MiB, 2 CPUs).
    let want = Want {
        mem_kb: 131_072,
        online: "1",
        cpus: 1,
        cpuset_cpus: 1,
    };
    check_memory(&r, &want);
    check_swap(&r, &host);
    check_cpus(&r, &want);
    check_loadavg(&r);
    let (up, _) = parse_uptime(r.get("uptime"));
    assert!(
        (1.99..=pod_age + 0.01).contains(&up),
        "member container: uptime {up} s should be the pod's age (its init has run for 2 s or \
         more before the member started, and at most {pod_age:.2} s)"
    );
    barrier.go();
    pause.wait(RUN_LIMIT);
}

#[test]
fn container_in_the_host_pid_namespace() {
    if !can_run() {
        return;
    }
    let _ns = shared_namespaces();
    let rootfs = Rootfs::shared();
    let d = Daemon::start(&["-l"]);
    let runc = Runc::new();
    let host = HostView::read(&rootfs);
    let spec = Spec::new("hostpid", &rootfs, "sec pid; echo $$\nreport\n")
        .memory(192 * MIB)
        .cpus("1")
        .host_pid_namespace()
        .lxcfs(&d.mnt);
    let before = host_uptime();
    let r = runc.start(spec).wait(RUN_LIMIT);
    let after = host_uptime();
    let pid: u32 = r.get("pid").trim().parse().expect("a pid");
    assert!(
        pid > 1,
        "with --pid=host semantics the shell has a host pid, printed {pid}"
    );
    let want = Want {
        mem_kb: 196_608,
        online: "1",
        cpus: 1,
        cpuset_cpus: 1,
    };
    check_memory(&r, &want);
    check_swap(&r, &host);
    check_cpus(&r, &want);
    check_loadavg(&r);
    check_tools(&r, &want, &host);
    let (up, _) = parse_uptime(r.get("uptime"));
    assert!(
        up >= before - 0.01 && up <= after + 0.01,
        "container in the host pid namespace: uptime {up} s should be the host's (between \
         {before} and {after} s)"
    );
}

#[test]
fn nested_pid_namespace_inside_a_container() {
    if !can_run() {
        return;
    }
    let _ns = shared_namespaces();
    let rootfs = Rootfs::shared();
    let d = Daemon::start(&[]);
    let runc = Runc::new();
    // A sandbox inside a container (docker-in-docker, bubblewrap in CI): its processes
    // are in a pid namespace below the container's, whose init is the nested shell.
    let script = "sleep 2\nsec outer; probe read /proc/uptime\n\
        sec nested; unshare -p -f sh -c 'echo \"pid $$\"; probe read /proc/uptime /proc/meminfo'\n\
        sec outer-after; probe read /proc/uptime\n";
    let spec = Spec::new("nesting", &rootfs, script)
        .memory(128 * MIB)
        .capability("CAP_SYS_ADMIN")
        .lxcfs(&d.mnt);
    let r = runc.start(spec).wait(RUN_LIMIT);
    let (outer, _) = parse_uptime(r.get("outer"));
    let (outer_after, _) = parse_uptime(r.get("outer-after"));
    let nested = r.get("nested");
    let (pid_line, rest) = nested.split_once('\n').expect("pid line, then the files");
    assert_eq!(
        pid_line, "pid 1",
        "the nested shell is its namespace's init"
    );
    let (uptime, meminfo) = rest.split_once('\n').expect("uptime, then meminfo");
    let (up, _) = parse_uptime(uptime);
    assert!(
        outer >= 1.99,
        "the container's reader: uptime {outer} s should be the container's age (it slept 2 s first)"
    );
    assert!(
        up <= outer_after - outer + 0.01,
        "reader in a pid namespace nested in the container: uptime {up} s should be the nested \
         namespace's age, made between the container's reads at {outer} s and {outer_after} s"
    );
    assert_eq!(
        kb(meminfo, "MemTotal"),
        131_072,
        "reader in a nested pid namespace: the container's 128 MiB, read:\n{meminfo}"
    );
}
