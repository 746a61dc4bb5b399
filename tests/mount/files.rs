//! The other files: `proc/loadavg`, `proc/pressure/*` (the host's, for a v1 reader),
//! `proc/diskstats` (from real I/O) and `proc/slabinfo`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// The `total=` counter (µs stalled since boot) of each line of a PSI file, by line kind
/// (`some`, `full`).
fn pressure_totals(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let kind = l.split_whitespace().next()?;
            let total = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("total="))?;
            Some((kind.to_string(), total.parse().ok()?))
        })
        .collect()
}

/// What is wrong with `text` as the host's PSI file read between `before` and `after` (the
/// host's own reads): the same lines with the same keys, and each `total=` between the two
/// reads' (the counters only grow).
fn pressure_off_host(text: &str, before: &str, after: &str) -> Vec<String> {
    let keys = |t: &str| {
        t.lines()
            .map(|l| {
                l.split_whitespace()
                    .map(|w| w.split('=').next().unwrap_or_default().to_string())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let mut off = Vec::new();
    if keys(text) != keys(before) {
        off.push(format!("lines and keys differ from the host's {before:?}"));
    }
    let (got, b, a) = (
        pressure_totals(text),
        pressure_totals(before),
        pressure_totals(after),
    );
    for (kind, span) in b
        .iter()
        .filter_map(|(k, &v)| Some((k, Span::of(v, *a.get(k)?))))
    {
        match got.get(kind) {
            Some(&t) if span.holds(t, 0) => {}
            t => off.push(format!("{kind} total={t:?}, host's {span}")),
        }
    }
    off
}

/// On this hybrid host the pressure controllers are v1 ones, so a v1 reader gets the host's
/// `/proc/pressure/*`: its `total=` counters lie between a host read just before and one just
/// after. The reader also sits in a cgroup of its own in the unified hierarchy (where its
/// `0::` line points), whose PSI files count only since it was made: serving those instead
/// fails the same check, as the check of that cgroup's `cpu.pressure` shows.
#[test]
fn pressure_is_the_hosts_for_a_v1_reader() {
    require!(mount);
    require!(
        Path::new("/proc/pressure/cpu").exists(),
        "the kernel has no PSI (no /proc/pressure): boot with psi=1"
    );
    let Some(unified) = UnifiedCgroup::new() else {
        skip("no cgroup2 mount beside the v1 hierarchies: the host is not hybrid");
        return;
    };
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let d = Daemon::start(&[]);
    let script = r#"for f in "$@"; do cat "$f" || exit 1; printf '\0'; done"#;
    for res in ["cpu", "io", "memory"] {
        let host_path = format!("/proc/pressure/{res}");
        let own = unified.dir().join(format!("{res}.pressure"));
        let own = own.to_str().expect("utf-8 path");
        let ours = d.arg(&format!("proc/pressure/{res}"));
        let out = cg.run_also_in(
            &unified,
            &["sh", "-c", script, "sh", &host_path, &ours, &host_path, own],
        );
        let parts: Vec<&str> = out.split('\0').collect();
        let [before, text, after, own_text, ..] = parts[..] else {
            panic!("expected 4 NUL-separated files, read {out:?}");
        };
        let off = pressure_off_host(text, before, after);
        assert!(
            off.is_empty(),
            "proc/pressure/{res} of a v1 reader should be the host's (before {before:?}, after \
             {after:?}), read {text:?}: {off:?}"
        );
        if res == "cpu" {
            assert!(
                !pressure_off_host(own_text, before, after).is_empty(),
                "the reader's unified cgroup's cpu.pressure {own_text:?} should fail the check \
                 of the host's (before {before:?}, after {after:?})"
            );
        }
    }
}

#[test]
fn diskstats_slabinfo_readable() {
    require!(mount);
    require!(
        Path::new("/proc/pressure/cpu").exists(),
        "the host has no /proc/pressure (a kernel without PSI, or booted with psi=0), so \
         the pressure files cannot be compared with the host's"
    );
    let cg = Cgroup::new();
    cg.set_memory_limit(256 * MIB);
    let d = Daemon::start(&[]);
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

/// Removes a file the test made when dropped, also when an assertion fails first.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
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
    let _remove = RemoveOnDrop(file.clone());
    let Some(dev) = disk_of(&file) else {
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
