//! The daemon mounted for real: its lifecycle, and every file as readers in real v1 cgroups
//! see it. Needs root and /dev/fuse (skipped otherwise, failing when CI is set).

#[macro_use]
mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

fn host(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The `cpu*` lines of a stat text.
fn cpu_lines(stat: &str) -> Vec<&str> {
    stat.lines().filter(|l| l.starts_with("cpu")).collect()
}

/// The numeric columns of a `cpu` line.
fn columns(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .map(|c| {
            c.parse()
                .unwrap_or_else(|e| panic!("column {c:?} of {line:?}: {e}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// CPUs
// ---------------------------------------------------------------------------------------

#[test]
fn cpuset_of_cpu0() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_cpus("0");
    let d = Daemon::start(&[]);

    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    let proc_lines: Vec<&str> = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .collect();
    assert_eq!(
        proc_lines.len(),
        1,
        "cpuset 0: expected exactly one processor line, read:\n{cpuinfo}"
    );
    assert_eq!(
        processors(&cpuinfo),
        ["0"],
        "cpuset 0: expected `processor : 0`, read:\n{cpuinfo}"
    );
    for key in ["siblings", "cpu cores"] {
        for v in field_values(&cpuinfo, key) {
            assert_eq!(v, "1", "cpuset 0: expected {key} 1, read:\n{cpuinfo}");
        }
    }

    for f in ["online", "possible", "present"] {
        let text = cg.read(&d.path(&format!("sys/devices/system/cpu/{f}")));
        assert_eq!(
            text, "0\n",
            "cpuset 0: expected sys/devices/system/cpu/{f} \"0\\n\", read {text:?}"
        );
    }
    let offline = cg.read(&d.path("sys/devices/system/cpu/offline"));
    assert_eq!(offline.trim(), "", "offline is empty, read {offline:?}");

    let stat = cg.read(&d.path("proc/stat"));
    let lines = cpu_lines(&stat);
    assert_eq!(
        lines.len(),
        2,
        "cpuset 0: expected exactly the cpu and cpu0 lines, read:\n{stat}"
    );
    assert!(
        lines[0].starts_with("cpu "),
        "first line `cpu `, read:\n{stat}"
    );
    assert!(
        lines[1].starts_with("cpu0 "),
        "second line `cpu0 `, read:\n{stat}"
    );
    assert_eq!(
        columns(lines[0]),
        columns(lines[1]),
        "the cpu line is the sum of the single cpu0 line, read:\n{stat}"
    );
    for key in [
        "intr ",
        "ctxt ",
        "btime ",
        "processes ",
        "procs_running ",
        "procs_blocked ",
    ] {
        assert!(
            stat.lines().any(|l| l.starts_with(key)),
            "stat keeps its {key:?} line, read:\n{stat}"
        );
    }

    let dir = d.arg("sys/devices/system/cpu");
    let listing = cg.run(&["ls", "-1", &dir]);
    let names: Vec<&str> = listing.lines().collect();
    assert!(
        names.contains(&"cpu0"),
        "cpuset 0: expected cpu0 in sys/devices/system/cpu, listed:\n{listing}"
    );
    assert!(
        !names.contains(&"cpu1"),
        "cpuset 0: expected no cpu1 in sys/devices/system/cpu, listed:\n{listing}"
    );
    assert!(
        names.contains(&"online"),
        "expected online in sys/devices/system/cpu, listed:\n{listing}"
    );
    let probe =
        "for f in \"$@\"; do if [ -e \"$f\" ]; then echo present; else echo absent; fi; done";
    let cpu0 = d.arg("sys/devices/system/cpu/cpu0");
    let cpu1 = d.arg("sys/devices/system/cpu/cpu1");
    let seen = cg.run(&["sh", "-c", probe, "sh", &cpu0, &cpu1]);
    assert_eq!(
        seen, "present\nabsent\n",
        "cpuset 0: cpu0 exists and cpu1 does not for the reader, got {seen:?}"
    );
}

#[test]
fn cfs_quota_without_enable_cfs() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_cpus("0-1").set_quota(50000, 100000);
    let d = Daemon::start(&[]);
    let online = cg.read(&d.path("sys/devices/system/cpu/online"));
    assert_eq!(
        online, "0-1\n",
        "quota 0.5 CPU without --enable-cfs: expected online \"0-1\\n\" (the cpuset), read {online:?}"
    );
    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    assert_eq!(
        processors(&cpuinfo),
        ["0", "1"],
        "without --enable-cfs: expected processors 0 and 1, read:\n{cpuinfo}"
    );
}

#[test]
fn cfs_quota_with_enable_cfs() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_cpus("0-1").set_quota(50000, 100000);
    let d = Daemon::start(&["--enable-cfs"]);
    let online = cg.read(&d.path("sys/devices/system/cpu/online"));
    assert_eq!(
        online, "0\n",
        "quota 0.5 CPU with --enable-cfs: expected online \"0\\n\" (ceil(0.5) = 1 CPU), read {online:?}"
    );
    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    assert_eq!(
        processors(&cpuinfo),
        ["0"],
        "with --enable-cfs: expected one processor 0, read:\n{cpuinfo}"
    );
    let stat = cg.read(&d.path("proc/stat"));
    assert_eq!(
        stat_cpu_labels(&stat),
        ["cpu", "cpu0"],
        "with --enable-cfs: expected cpu and cpu0 lines, read:\n{stat}"
    );

    // A cpuset not starting at 0: under the quota view online is renumbered `0-(k-1)`.
    let other = Cgroup::new();
    other.set_cpus("1").set_quota(50000, 100000);
    let online = other.read(&d.path("sys/devices/system/cpu/online"));
    assert_eq!(
        online, "0\n",
        "cpuset 1, quota 0.5 CPU, --enable-cfs: expected online \"0\\n\" (0-(k-1), k = 1), read {online:?}"
    );
    let cpuinfo = other.read(&d.path("proc/cpuinfo"));
    assert_eq!(
        processors(&cpuinfo),
        ["0"],
        "cpuset 1 with --enable-cfs: expected one processor 0, read:\n{cpuinfo}"
    );
}

// ---------------------------------------------------------------------------------------
// Uptime, unlimited readers, chunked reads
// ---------------------------------------------------------------------------------------

#[test]
fn uptime_own_pid_namespace_vs_host() {
    require!(mount);
    let cg = Cgroup::new();
    let d = Daemon::start(&[]);
    let uptime = d.arg("proc/uptime");

    let in_ns = cg.run_in_pidns(&["cat", &uptime]);
    let (age, idle) = parse_uptime(&in_ns);
    assert!(
        (0.0..5.0).contains(&age),
        "reader in its own new pid namespace: expected uptime < 5 s, read {in_ns:?}"
    );
    assert!(idle >= 0.0, "idle is never negative, read {in_ns:?}");

    let ours = cg.read(&d.path("proc/uptime"));
    let host_text = host("/proc/uptime");
    let (a, i) = parse_uptime(&ours);
    let (ha, hi) = parse_uptime(&host_text);
    assert!(
        (a - ha).abs() <= 1.0,
        "reader in the host pid namespace: expected the host uptime {host_text:?} within 1 s, read {ours:?}"
    );
    assert!(
        (i - hi).abs() <= 3.0,
        "reader in the host pid namespace: expected the host idle {host_text:?} within 3 s, read {ours:?}"
    );
}

#[test]
fn unlimited_reader_sees_host_values() {
    require!(mount);
    let cg = Cgroup::new();
    let d = Daemon::start(&[]);
    let meminfo = cg.read(&d.path("proc/meminfo"));
    let host_meminfo = host("/proc/meminfo");
    assert_eq!(
        line_of(&meminfo, "MemTotal"),
        line_of(&host_meminfo, "MemTotal"),
        "unlimited reader: expected the host MemTotal; host:\n{host_meminfo}\nread:\n{meminfo}"
    );
    assert_eq!(
        keys(&meminfo),
        keys(&host_meminfo),
        "unlimited reader: expected the host's keys; host:\n{host_meminfo}\nread:\n{meminfo}"
    );
    for key in [
        "SwapTotal",
        "HugePages_Total",
        "Hugepagesize",
        "VmallocTotal",
    ] {
        if let Some(h) = common::try_kb(&host_meminfo, key) {
            assert_eq!(
                kb(&meminfo, key),
                h,
                "unlimited reader: expected host {key} {h}, read:\n{meminfo}"
            );
        }
    }

    // Byte-identical to the host's (read before and after, in case a `cpu MHz` moved).
    let before = host("/proc/cpuinfo");
    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    assert!(
        cpuinfo == before || cpuinfo == host("/proc/cpuinfo"),
        "unlimited reader: cpuinfo must be byte-identical to the host's; read:\n{cpuinfo}"
    );
    let online = cg.read(&d.path("sys/devices/system/cpu/online"));
    let host_online = host("/sys/devices/system/cpu/online");
    assert_eq!(
        online, host_online,
        "unlimited reader: expected the host online list"
    );
    let stat = cg.read(&d.path("proc/stat"));
    assert_eq!(
        stat_cpu_labels(&stat),
        stat_cpu_labels(&host("/proc/stat")),
        "unlimited reader: host cpu lines, read:\n{stat}"
    );
    let swaps = cg.read(&d.path("proc/swaps"));
    assert_eq!(
        swaps,
        host("/proc/swaps"),
        "unlimited reader: expected the host /proc/swaps"
    );
}

#[test]
fn one_byte_reads_match_whole_reads() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB).set_cpus("0");
    let d = Daemon::start(&[]);
    for rel in [
        "proc/meminfo",
        "proc/cpuinfo",
        "proc/stat",
        "sys/devices/system/cpu/online",
    ] {
        let path = d.arg(rel);
        let whole = cg.run(&["cat", &path]);
        let input = format!("if={path}");
        let bytes = cg.run(&["dd", &input, "bs=1", "status=none"]);
        let what = format!("{rel} read 1 byte at a time vs with cat;\ndd:\n{bytes}\ncat:\n{whole}");
        match rel {
            "proc/meminfo" => {
                assert_eq!(
                    line_of(&bytes, "MemTotal"),
                    line_of(&whole, "MemTotal"),
                    "{what}"
                );
                assert_eq!(
                    line_of(&bytes, "MemTotal"),
                    "MemTotal:         262144 kB",
                    "{what}"
                );
                assert_eq!(bytes.lines().count(), whole.lines().count(), "{what}");
                assert_eq!(keys(&bytes), keys(&whole), "{what}");
            }
            "proc/stat" => {
                assert_eq!(stat_cpu_labels(&bytes), ["cpu", "cpu0"], "{what}");
                assert_eq!(bytes.lines().count(), whole.lines().count(), "{what}");
                let labels = |t: &str| {
                    t.lines()
                        .map(|l| l.split(' ').next().unwrap_or("").to_string())
                        .collect::<Vec<_>>()
                };
                assert_eq!(labels(&bytes), labels(&whole), "{what}");
            }
            _ => assert_eq!(bytes, whole, "{what}"),
        }
        assert!(bytes.ends_with('\n'), "{what}");
    }
}

/// Readers in two cgroups with different limits reading at the same time, with read(2)
/// (`grep`) and with sendfile (busybox `cat`): every read shows its own cgroup's limit.
#[test]
fn concurrent_readers_each_get_their_own_view() {
    require!(mount);
    let busybox = have_program("busybox");
    let small = Cgroup::new();
    small.set_memory_limit(128 * MIB);
    let large = Cgroup::new();
    large.set_memory_limit(256 * MIB);
    let d = Daemon::start(&[]);
    let meminfo = d.arg("proc/meminfo");
    let script = if busybox {
        "for i in $(seq 150); do grep MemTotal \"$1\"; busybox cat \"$1\" | grep MemTotal; done"
    } else {
        "for i in $(seq 300); do grep MemTotal \"$1\"; done"
    };
    let children: Vec<_> = [
        (&small, 131072),
        (&large, 262144),
        (&small, 131072),
        (&large, 262144),
    ]
    .into_iter()
    .map(|(cg, want)| {
        let child = cg
            .command(&["sh", "-c", script, "sh", &meminfo])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting a reader loop");
        (child, want)
    })
    .collect();
    for (child, want) in children {
        let out = child.wait_with_output().expect("reader loop");
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 300, "300 reads per loop; read:\n{text}");
        let wrong: Vec<&&str> = lines.iter().filter(|l| kb(l, "MemTotal") != want).collect();
        assert!(
            wrong.is_empty(),
            "expected MemTotal {want} kB in every read, {} differ: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
}

/// The whole disk holding `path` as `MAJ:MIN` (a partition's parent disk), or `None` when
/// `path` is not on a block device.
fn disk_of(path: &Path) -> Option<String> {
    let dev = fs::metadata(path).ok()?.dev();
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    if major == 0 {
        return None;
    }
    let sys = fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    Some(
        fs::read_to_string(disk.join("dev"))
            .ok()?
            .trim()
            .to_string(),
    )
}

/// `MAJ:MIN Read N` / `Write N` of a v1 blkio throttle file, for one device.
fn blkio_counts(text: &str, dev: &str) -> (u64, u64) {
    let get = |op: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{dev} {op} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("Read"), get("Write"))
}

/// v1 diskstats from real I/O. This kernel counts a cgroup's I/O in the blkio throttle files
/// only for devices with a throttle rule, so the test sets a generous one on the disk under
/// its file, as `docker run --device-read-bps` would.
#[test]
fn diskstats_from_real_io() {
    require!(mount);
    let file =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("diskstats-{}", std::process::id()));
    fs::write(&file, b"").expect("creating the I/O file");
    let Some(dev) = disk_of(&file) else {
        let _ = fs::remove_file(&file);
        skip(&format!("{} is not on a block device", file.display()));
        return;
    };
    let cg = Cgroup::new();
    for rule in [
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
    ] {
        fs::write(cg.dir("blkio").join(rule), format!("{dev} 100000000000"))
            .unwrap_or_else(|e| panic!("setting {rule} for {dev}: {e}"));
    }
    let d = Daemon::start(&[]);
    let path = file.to_str().expect("utf-8 path");
    cg.run(&[
        "dd",
        "if=/dev/zero",
        &format!("of={path}"),
        "bs=1M",
        "count=4",
        "oflag=direct",
        "status=none",
    ]);
    cg.run(&[
        "dd",
        &format!("if={path}"),
        "of=/dev/null",
        "bs=1M",
        "iflag=direct",
        "status=none",
    ]);
    let diskstats = cg.read(&d.path("proc/diskstats"));
    let (read_bytes, write_bytes) = blkio_counts(
        &cg.read_file("blkio", "blkio.throttle.io_service_bytes_recursive"),
        &dev,
    );
    let (reads, writes) = blkio_counts(
        &cg.read_file("blkio", "blkio.throttle.io_serviced_recursive"),
        &dev,
    );
    let _ = fs::remove_file(&file);
    assert!(
        read_bytes >= 4 << 20 && write_bytes >= 4 << 20,
        "the cgroup's blkio counts for {dev}: read {read_bytes}, written {write_bytes}"
    );

    let (major, minor) = dev.split_once(':').expect("MAJ:MIN");
    let name = host("/proc/diskstats")
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[0] == major && f[1] == minor).then(|| f[2].to_string())
        })
        .unwrap_or_else(|| panic!("{dev} is not in the host's /proc/diskstats"));
    let lines: Vec<&str> = diskstats.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "one line, for the one device the cgroup did I/O on ({name}); read:\n{diskstats}"
    );
    let f: Vec<u64> = lines[0]
        .split_whitespace()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    assert_eq!(
        lines[0].split_whitespace().nth(2),
        Some(name.as_str()),
        "device name; read:\n{diskstats}"
    );
    // f: major minor reads merged sectors ms writes merged sectors ...
    let want = [reads, 0, read_bytes / 512, 0, writes, 0, write_bytes / 512];
    assert_eq!(
        &f[2..9],
        &want,
        "reads, merged, sectors read, ms, writes, merged, sectors written of {name}; read:\n{diskstats}"
    );
}

/// A reader that keeps the file open and rereads it from offset 0 (procps `top` does) gets
/// fresh content, while reads at later offsets slice the snapshot made at offset 0.
#[test]
fn rereading_from_offset_zero_regenerates() {
    use std::os::unix::fs::FileExt;
    require!(mount);
    let d = Daemon::start(&[]);
    let file = fs::File::open(d.path("proc/uptime")).expect("opening proc/uptime");
    let read_at = |offset: u64| {
        let mut buf = [0u8; 256];
        let n = file.read_at(&mut buf, offset).expect("pread");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = read_at(0);
    assert_eq!(
        read_at(3),
        first[3..],
        "a later offset slices the same snapshot"
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        read_at(3),
        first[3..],
        "still the same snapshot without a rewind"
    );
    let again = read_at(0);
    assert_ne!(
        again, first,
        "uptime read again from offset 0 after 1.1 s is fresh"
    );
}

// ---------------------------------------------------------------------------------------
// loadavg, pressure, diskstats, slabinfo
// ---------------------------------------------------------------------------------------

#[test]
fn loadavg_counts_the_cgroups_tasks() {
    require!(mount);
    let cg = Cgroup::new();
    for _ in 0..3 {
        cg.spawn(&["sleep", "30"]);
    }
    let d = Daemon::start(&["-l"]);
    let path = d.arg("proc/loadavg");
    // `$$` is the pid of the reader itself (exec keeps it): the newest task of the cgroup.
    let out = cg.run(&["sh", "-c", "echo $$; exec cat \"$1\"", "sh", &path]);
    let (pid, text) = out.split_once('\n').expect("pid line then loadavg");
    let la = parse_loadavg(text).unwrap_or_else(|e| panic!("with -l: {e}"));
    assert!(
        la.total >= 3,
        "3 sleeps in the cgroup: expected total >= 3, read {text:?}"
    );
    assert!(
        la.total < 20,
        "only the cgroup's tasks count: expected total < 20, read {text:?}"
    );
    assert!(la.running <= la.total, "running <= total, read {text:?}");
    assert_eq!(
        la.last_pid.to_string(),
        pid,
        "lastpid is the cgroup's newest task (the reader, pid {pid}), read {text:?}"
    );

    // Reader as init of its own pid namespace: lastpid numbered in that namespace (1).
    let in_ns = cg.run_in_pidns(&["cat", &path]);
    let la = parse_loadavg(&in_ns).unwrap_or_else(|e| panic!("with -l, pidns reader: {e}"));
    assert_eq!(
        la.last_pid, 1,
        "pidns reader is the newest task and pid 1 in its namespace, read {in_ns:?}"
    );
    assert!(
        la.total >= 3 && la.total < 20,
        "pidns reader: cgroup's tasks only, read {in_ns:?}"
    );

    // Without -l everyone sees the host's file. The host's numbers move (loads every 5 s,
    // the task count all the time), so ours must lie between a host read before and after.
    let plain = Daemon::start(&[]);
    let before = host("/proc/loadavg");
    let text = cg.read(&plain.path("proc/loadavg"));
    let after = host("/proc/loadavg");
    let la = parse_loadavg(&text).unwrap_or_else(|e| panic!("without -l: {e}"));
    let hb = parse_loadavg(&before).unwrap_or_else(|e| panic!("host: {e}"));
    let ha = parse_loadavg(&after).unwrap_or_else(|e| panic!("host: {e}"));
    let what = format!(
        "without -l: expected the host loadavg (host before {before:?}, after {after:?}), read {text:?}"
    );
    for i in 0..3 {
        let (lo, hi) = (hb.loads[i].min(ha.loads[i]), hb.loads[i].max(ha.loads[i]));
        assert!(
            la.loads[i] >= lo - 0.005 && la.loads[i] <= hi + 0.005,
            "{what}"
        );
    }
    let (lo, hi) = (hb.total.min(ha.total), hb.total.max(ha.total));
    let slack = 10.max(hi / 10);
    assert!(la.total + slack >= lo && la.total <= hi + slack, "{what}");
}

#[test]
fn pressure_diskstats_slabinfo_readable() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let d = Daemon::start(&[]);
    for res in ["cpu", "io", "memory"] {
        let text = cg.read(&d.path(&format!("proc/pressure/{res}")));
        let host_path = format!("/proc/pressure/{res}");
        // v1: no per-cgroup pressure, so the host file (values move; compare the shape).
        let host_text = fs::read_to_string(&host_path).unwrap_or_default();
        assert!(
            text.starts_with("some avg10="),
            "proc/pressure/{res}: expected `some avg10=...`, read {text:?}"
        );
        let shape = |t: &str| {
            t.lines()
                .map(|l| l.split('=').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        if !host_text.is_empty() {
            assert_eq!(
                shape(&text),
                shape(&host_text),
                "proc/pressure/{res}: host {host_text:?}, read {text:?}"
            );
        }
    }

    let diskstats = cg.read(&d.path("proc/diskstats"));
    let host_disks = host("/proc/diskstats");
    let names = |t: &str| {
        t.lines()
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
            .collect::<Vec<_>>()
    };
    let host_names = names(&host_disks);
    for line in diskstats.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(
            f.len() >= 14,
            "diskstats line with at least 14 fields expected, read {line:?} in:\n{diskstats}"
        );
        assert!(
            f.iter()
                .enumerate()
                .all(|(i, x)| i == 2 || x.parse::<u64>().is_ok()),
            "numeric columns, read {line:?}"
        );
        assert!(
            host_names.contains(&f[2].to_string()),
            "device {} not in the host's diskstats:\n{host_disks}",
            f[2]
        );
    }
    let serviced = cg.read_file("blkio", "blkio.throttle.io_serviced_recursive");
    let has_io = serviced
        .lines()
        .any(|l| l.split_whitespace().next().is_some_and(|w| w.contains(':')));
    if !has_io {
        assert_eq!(
            names(&diskstats),
            host_names,
            "a cgroup without I/O sees the host's devices; read:\n{diskstats}"
        );
    }

    let slab = cg.read(&d.path("proc/slabinfo"));
    assert!(
        slab.starts_with("slabinfo - version"),
        "proc/slabinfo: expected `slabinfo - version ...`, read:\n{slab}"
    );
}

// ---------------------------------------------------------------------------------------
// The filesystem itself
// ---------------------------------------------------------------------------------------

#[test]
fn modes_owner_and_read_only() {
    require!(mount);
    let d = Daemon::start(&[]);
    let mut paths: Vec<(String, u32)> = common::DIRS
        .iter()
        .map(|p| (p.to_string(), 0o555))
        .collect();
    paths.extend(GENERATED.iter().map(|p| (p.to_string(), 0o444)));
    paths.push(("sys/devices/system/cpu/cpu0".to_string(), 0o555));
    for (rel, want) in &paths {
        let p = d.path(rel);
        let m = fs::metadata(&p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
        assert_eq!(
            m.mode() & 0o7777,
            *want,
            "{rel}: expected mode {want:o}, got {:o}",
            m.mode() & 0o7777
        );
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "{rel}: expected owner root:root, got {}:{}",
            m.uid(),
            m.gid()
        );
        assert_eq!(
            m.is_dir(),
            *want == 0o555,
            "{rel}: expected {} ",
            if *want == 0o555 {
                "a directory"
            } else {
                "a file"
            }
        );
    }

    let denied = |what: &str, errno: Option<i32>| {
        assert!(
            errno == Some(nix::libc::EACCES) || errno == Some(nix::libc::EROFS),
            "{what}: expected EACCES or EROFS, got {:?}",
            errno.map(std::io::Error::from_raw_os_error)
        );
    };
    let meminfo = d.path("proc/meminfo");
    denied(
        "open proc/meminfo for writing",
        errno_of(&OpenOptions::new().write(true).open(&meminfo)),
    );
    denied(
        "create proc/new",
        errno_of(&fs::File::create(d.path("proc/new"))),
    );
    denied(
        "mkdir proc/newdir",
        errno_of(&fs::create_dir(d.path("proc/newdir"))),
    );
    denied(
        "rename proc/meminfo",
        errno_of(&fs::rename(&meminfo, d.path("proc/meminfo2"))),
    );
    denied("unlink proc/meminfo", errno_of(&fs::remove_file(&meminfo)));
    assert!(
        fs::read(&meminfo).is_ok_and(|b| !b.is_empty()),
        "proc/meminfo still reads after the failed writes"
    );

    let m = fuse_mount_at(&d.mnt).expect("the mount is in mountinfo");
    assert!(
        m.mount_options.split(',').any(|o| o == "ro"),
        "expected a read-only mount, mountinfo options {:?}",
        m.mount_options
    );
    assert!(
        m.super_options.split(',').any(|o| o == "allow_other"),
        "expected allow_other, mountinfo super options {:?}",
        m.super_options
    );

    // allow_other in practice: an unprivileged user reads it too.
    if have_program("setpriv") {
        let parent = d.mnt.parent().expect("mount point parent");
        fs::set_permissions(parent, fs::Permissions::from_mode(0o755)).expect("chmod the temp dir");
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&meminfo)
            .output()
            .expect("running setpriv");
        assert_succeeds(&out, "uid 65534 reading proc/meminfo (allow_other)");
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("MemTotal:"),
            "uid 65534 read: {}",
            describe(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------

#[test]
fn sigterm_unmounts_cleanly() {
    require!(mount);
    let mut d = Daemon::start(&[]);
    d.assert_stops_cleanly(Signal::SIGTERM);
}

#[test]
fn sigint_unmounts_cleanly() {
    require!(mount);
    let mut d = Daemon::start(&[]);
    d.assert_stops_cleanly(Signal::SIGINT);
}

#[test]
fn pidfile_is_locked() {
    require!(mount);
    let dir = TestDir::new();
    let pidfile = dir.join("lxcfs-rs.pid");
    let pf = pidfile.to_str().expect("utf-8").to_string();
    let first = Daemon::start(&["-p", &pf]);
    let content = common::read_or_err(&pidfile);
    assert_eq!(
        content.trim(),
        first.pid.to_string(),
        "pidfile holds the daemon's pid {}, read {content:?}",
        first.pid
    );

    let mnt2 = dir.join("mnt2");
    fs::create_dir(&mnt2).expect("mkdir");
    let mut second = Daemon::spawn(&mnt2, &dir.join("second.log"), &["-p", &pf]);
    let st = second
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "second daemon with the same pidfile kept running; output:\n{}",
                second.log()
            )
        });
    assert_eq!(
        st.code(),
        Some(1),
        "second daemon with a locked pidfile: expected exit 1, got {st}; output:\n{}",
        second.log()
    );
    assert_one_error_line(&second.log(), &pf);
    assert!(
        fuse_mount_at(&mnt2).is_none(),
        "the refused daemon must not mount {}",
        mnt2.display()
    );
    assert!(
        fs::read(first.path("proc/meminfo")).is_ok(),
        "the first daemon still serves"
    );
    assert_eq!(
        common::read_or_err(&pidfile).trim(),
        first.pid.to_string(),
        "the pidfile still names the first daemon"
    );
}

#[test]
fn mount_point_that_is_a_file_fails() {
    require!(mount);
    let dir = TestDir::new();
    let file = dir.join("not-a-dir");
    fs::write(&file, "x").expect("write");
    let out = run_bin(&[file.to_str().expect("utf-8")]);
    assert_fails(&out, 1, file.to_str().expect("utf-8"));
    assert!(
        fuse_mount_at(&file).is_none(),
        "nothing may be mounted on {}",
        file.display()
    );
}

#[test]
fn live_mount_point_is_refused() {
    require!(mount);
    let d = Daemon::start(&[]);
    let mnt = d.mnt.to_str().expect("utf-8").to_string();
    let out = run_bin(&[&mnt]);
    assert_fails(&out, 1, &mnt);
    assert_eq!(mounts_at(&d.mnt), 1, "still exactly one mount at {mnt}");
    assert!(
        fs::read(d.path("proc/meminfo")).is_ok(),
        "the first daemon still serves; its output:\n{}",
        d.log()
    );
}

#[test]
fn stale_mount_is_detached() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).expect("mkdir");
    let mut first = Daemon::start_on(&mnt, &dir.join("first.log"), &[]);
    first.kill9();
    // The root's attributes may be cached for the daemon's (short) attribute timeout; after
    // that a stat must reach the dead connection and fail with ENOTCONN.
    let mut last = None;
    let stale = common::wait_until(Duration::from_secs(3), || {
        let out = Command::new("stat")
            .arg(&mnt)
            .output()
            .expect("running stat");
        let enotconn =
            String::from_utf8_lossy(&out.stderr).contains("Transport endpoint is not connected");
        last = Some(out);
        enotconn
    });
    let out = last.expect("stat ran");
    assert!(
        stale,
        "after SIGKILL `stat` of the mount point should fail with ENOTCONN within 3 s: {}",
        describe(&out)
    );

    let mut second = Daemon::start_on(&mnt, &dir.join("second.log"), &[]);
    let text = fs::read_to_string(second.path("proc/meminfo")).expect("the new daemon serves");
    assert!(
        text.starts_with("MemTotal:"),
        "new daemon on a formerly stale mount point, read:\n{text}"
    );
    assert_eq!(
        mounts_at(&mnt),
        1,
        "the stale mount was detached, so exactly one mount at {}; output:\n{}",
        mnt.display(),
        second.log()
    );
    second.assert_stops_cleanly(Signal::SIGTERM);
    assert_eq!(
        mounts_at(&mnt),
        0,
        "nothing left mounted at {}",
        mnt.display()
    );
}

#[test]
fn unknown_flag_fails() {
    let dir = TestDir::new();
    let out = run_bin(&["--no-such-flag", dir.path().to_str().expect("utf-8")]);
    // clap's exit 2, and one error line naming the flag.
    assert_fails(&out, 2, "--no-such-flag");
    assert!(fuse_mount_at(dir.path()).is_none(), "nothing mounted");
}

#[test]
fn help_and_version() {
    for flag in ["-h", "--help"] {
        let out = run_bin(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for f in [
            "--enable-cfs",
            "--pidfile",
            "--enable-loadavg",
            "--disable-swap",
        ] {
            assert!(
                text.contains(f),
                "{flag} output mentions {f}: {}",
                describe(&out)
            );
        }
    }
    for flag in ["-v", "--version"] {
        let out = run_bin(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(env!("CARGO_PKG_VERSION")),
            "{flag} prints the version: {}",
            describe(&out)
        );
    }
}

/// A daemon in a cgroup namespace whose pid 1 is no way out (a pod without the host's pid
/// namespace) would read other cgroups than its readers': it must refuse to start.
#[test]
fn non_host_cgroup_namespace_fails() {
    require!(mount);
    let dir = TestDir::new();
    let mnt = dir.join("mnt");
    let out = Command::new("unshare")
        .args(["--cgroup", "--pid", "--fork", "--mount-proc", common::BIN])
        .arg(&mnt)
        .output()
        .expect("running unshare");
    assert_fails(&out, 1, "cgroup namespace");
    assert!(
        !mnt.exists() || fuse_mount_at(&mnt).is_none(),
        "nothing mounted"
    );
}

#[test]
fn not_root_fails() {
    require!(mount);
    require!(program "setpriv", "setpriv (util-linux) is not installed");
    let dir = TestDir::new();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let mnt = dir.join("mnt");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            common::BIN,
        ])
        .arg(&mnt)
        .output()
        .expect("running setpriv");
    assert_fails(&out, 1, "root");
}

#[test]
fn missing_dev_fuse_fails() {
    require!(mount);
    // /dev/fuse hidden by a regular file, in a throwaway private mount namespace only.
    let dir = TestDir::new();
    let fake = dir.join("fake-fuse");
    fs::write(&fake, "").expect("write");
    let mnt = dir.join("mnt");
    let script = "mount --bind \"$1\" /dev/fuse || exit 98; exec \"$2\" \"$3\"";
    let argv = sh_in_private_mount_ns(
        &[],
        script,
        &[
            fake.to_str().expect("utf-8"),
            common::BIN,
            mnt.to_str().expect("utf-8"),
        ],
    );
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("running unshare");
    if out.status.code() == Some(98) {
        skip(&format!(
            "cannot hide /dev/fuse in a private mount namespace: {}",
            describe(&out)
        ));
        return;
    }
    assert_fails(&out, 1, "/dev/fuse");
}

#[test]
fn splice_readers_get_their_own_view() {
    require!(mount);
    let script = Path::new("/work/shared/tools/splice-race-repro.sh");
    require!(
        program "busybox",
        "busybox is not installed (apt-get install busybox-static)"
    );
    require!(script.exists(), &format!("{} is missing", script.display()));
    let d = Daemon::start(&[]);
    let out = Command::new("bash")
        .arg(script)
        .arg(&d.mnt)
        .arg("300")
        .output()
        .expect("running the repro script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_succeeds(&out, "splice repro must exit 0");
    assert!(
        stdout.contains("0 of 600"),
        "splice repro must print \"0 of 600\": {}",
        describe(&out)
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
fn accepts_the_lxcfs_flags() {
    require!(mount);
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let flags = [
        "-f",
        "-d",
        "--threads",
        "2",
        "-o",
        "allow_other,nonempty",
        "-u",
        "-l",
        "--enable-cfs",
    ];
    let mut d = Daemon::start(&flags);
    let meminfo = cg.read(&d.path("proc/meminfo"));
    assert_eq!(
        kb(&meminfo, "MemTotal"),
        262144,
        "with {flags:?}: expected MemTotal 262144 kB, read:\n{meminfo}"
    );
    assert_eq!(
        kb(&meminfo, "SwapTotal"),
        0,
        "with -u: expected SwapTotal 0, read:\n{meminfo}"
    );
    let swaps = cg.read(&d.path("proc/swaps"));
    assert_eq!(
        swaps.lines().count(),
        1,
        "with -u: expected the swaps header only, read:\n{swaps}"
    );
    d.assert_stops_cleanly(Signal::SIGTERM);
}
