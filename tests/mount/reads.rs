//! How readers read: uptime by pid namespace, unlimited readers, byte-by-byte, concurrent
//! and re-read (spliced reads are in `splice`).

use std::fs;
use std::time::Duration;

use crate::common::*;
use crate::host;

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
        if let Some(h) = try_kb(&host_meminfo, key) {
            assert_eq!(
                kb(&meminfo, key),
                h,
                "unlimited reader: expected host {key} {h}, read:\n{meminfo}"
            );
        }
    }

    // Byte-identical to the host's but for `cpu MHz`, the one line that moves: the daemon
    // reads the host's file at most every 100 ms (docs/semantics.md#proc-cpuinfo).
    let without_mhz = |t: &str| -> String {
        t.split_inclusive('\n')
            .filter(|l| !l.starts_with("cpu MHz"))
            .collect()
    };
    let cpuinfo = cg.read(&d.path("proc/cpuinfo"));
    assert_eq!(
        without_mhz(&cpuinfo),
        without_mhz(&host("/proc/cpuinfo")),
        "unlimited reader: cpuinfo must be the host's, byte for byte but for cpu MHz"
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
    require!(
        program "busybox",
        "busybox is missing, and its cat is the sendfile reader (scripts/deps.sh test installs busybox-static)"
    );
    let small = Cgroup::new();
    small.set_memory_limit(128 * MIB);
    let large = Cgroup::new();
    large.set_memory_limit(256 * MIB);
    let d = Daemon::start(&[]);
    let meminfo = d.arg("proc/meminfo");
    let script =
        "for i in $(seq 150); do grep MemTotal \"$1\"; busybox cat \"$1\" | grep MemTotal; done";
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

/// A reader that keeps the file open and rereads it from offset 0 (procps `top` does) gets
/// fresh content, while reads at later offsets slice the snapshot made at offset 0 until the
/// reader has read to its end, where it gets end-of-file.
#[test]
fn rereading_from_offset_zero_regenerates() {
    use std::os::unix::fs::FileExt;
    require!(mount);
    let d = Daemon::start(&[]);
    let file = fs::File::open(d.path("proc/uptime")).expect("opening proc/uptime");
    let read_at = |offset: usize, size: usize| {
        let mut buf = vec![0u8; size];
        let n = file.read_at(&mut buf, offset as u64).expect("pread");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = read_at(0, 256);
    assert_eq!(
        read_at(first.len(), 256),
        "",
        "the end is where the first read ended"
    );
    // Up to the hundredths of the first number, then those again 1.1 s later: the reader is
    // still in the middle of its snapshot.
    let dot = first.find('.').expect("a decimal point in uptime");
    let head = read_at(0, dot + 3);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        read_at(dot + 1, 2),
        head[dot + 1..],
        "a later offset slices the snapshot made at 0, without a rewind"
    );
    let again = read_at(0, 256);
    assert_ne!(
        again, first,
        "uptime read again from offset 0 after 1.1 s is fresh"
    );
}

/// One container holding 15,000 open descriptors of `proc/cpuinfo`, each read one byte:
/// every open keeps its snapshot, but equal snapshots are shared, so the daemon grows by the
/// handles, not by 15,000 copies of the file (55 MB for 19,900 before they were shared). Another
/// container's reads meanwhile are served as always.
#[test]
fn many_open_descriptors_share_their_snapshots() {
    require!(mount);
    require!(program "python3", "python3 holds the descriptors (scripts/deps.sh installs it)");
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    // Below the hard descriptor limit of these machines (20,000), which root here cannot raise.
    const OPENS: usize = 15_000;
    let d = Daemon::start(&[]);
    let hoarder = Cgroup::new();
    hoarder.set_memory_limit(512 * MIB);
    let other = Cgroup::new();
    other.set_memory_limit(256 * MIB);
    // Warm up: the daemon's own allocations for a first read are not what is measured.
    hoarder.read(&d.path("proc/cpuinfo"));
    let worker = d.worker_pid();
    let before = rss_kib(worker);
    let script = r#"
import os, resource, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds = [os.open(sys.argv[1], os.O_RDONLY) for _ in range(int(sys.argv[2]))]
for fd in fds:
    assert os.read(fd, 1) == b"p"
print("holding", flush=True)
sys.stdin.readline()
"#;
    let n = OPENS.to_string();
    let mut child = hoarder
        .command(&["python3", "-c", script, &d.arg("proc/cpuinfo"), &n])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "holding",
        "the hoarder did not open and read its files"
    );
    let grown = rss_kib(worker).saturating_sub(before);
    let meminfo = other.read(&d.path("proc/meminfo"));
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        kb(&meminfo, "MemTotal"),
        262144,
        "another container meanwhile:\n{meminfo}"
    );
    eprintln!("{OPENS} open descriptors grew the daemon by {grown} KiB");
    let cpuinfo_len = fs::read(d.path("proc/cpuinfo")).unwrap().len() as u64;
    assert!(
        grown * 1024 < OPENS as u64 * cpuinfo_len / 2,
        "{OPENS} open descriptors of a {cpuinfo_len}-byte file grew the daemon by {grown} KiB: \
         snapshots are not shared"
    );
}
