//! The other files: `proc/loadavg`, `proc/pressure/*`, `proc/diskstats` (from real I/O) and
//! `proc/slabinfo`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::*;
use crate::host;

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
    require!(
        Path::new("/proc/pressure/cpu").exists(),
        "the host has no /proc/pressure (a kernel without PSI, or booted with psi=0), so \
         the pressure files cannot be compared with the host's"
    );
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
