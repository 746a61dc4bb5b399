//! The real host's cgroups, read as the daemon would. Needs root (cgroup files, other
//! processes' `/proc` entries, a cgroup of its own); skipped with a message otherwise, and
//! failing when `CI` is set, as the integration tests do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cgroup::controller::Controller;
use crate::cgroup::{Hierarchies, count_tasks};
use crate::cpulist;
use crate::host::HostPaths;
use crate::model::CpuUsage;
use crate::reader::{PidNsCache, start_ticks};

#[path = "../../../tests/common/policy.rs"]
mod policy;

/// A cgroup of the test's own holding one sleeping child: a non-root cgroup whose tasks are
/// known, wherever the test runner itself sits. The child is killed (by its pid) and the
/// cgroup removed on drop.
struct Sleeper {
    dir: PathBuf,
    child: Child,
}

impl Sleeper {
    /// A new cgroup right below `mount` (a hierarchy's mount point) with `sleep` in it.
    fn start(mount: &Path) -> Sleeper {
        let dir = mount.join(format!("lxcfs-rs-unit-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let child = Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .expect("starting sleep");
        let sleeper = Sleeper { dir, child };
        let procs = sleeper.dir.join("cgroup.procs");
        std::fs::write(&procs, sleeper.pid().to_string())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", procs.display()));
        sleeper
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The cgroup can stay busy for a moment after its last task is reaped.
        let end = Instant::now() + Duration::from_secs(3);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn real_machine_discover_and_of_pid() {
    if !nix::unistd::Uid::effective().is_root() {
        policy::skip(
            "real_machine_discover_and_of_pid needs root (cgroup files, other processes' \
             /proc entries, a cgroup of its own); run it as root",
        );
        return;
    }
    let host = HostPaths::default();
    let h = Hierarchies::discover(&host).expect("discover on this host");
    let pid = std::process::id();
    let r = h.of_pid(&host, pid).expect("our own cgroups");

    // Each resolved v1 dir ends with the path our /proc/self/cgroup line names for it.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for c in Controller::ALL {
        let Some(cg) = r.dir(c) else { continue };
        assert!(
            cg.dir.is_dir(),
            "{c:?}: {} is not a directory",
            cg.dir.display()
        );
        let line = own
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|ctrls| ctrls.split(',').any(|n| n == c.v1_name()))
            })
            .or_else(|| own.lines().find(|l| l.starts_with("0::")));
        let path = line.unwrap().splitn(3, ':').nth(2).unwrap();
        assert!(
            cg.dir.ends_with(path.trim_start_matches('/')),
            "{c:?}: {} vs {path}",
            cg.dir.display()
        );
        eprintln!("{c:?}: {:?} {}", cg.version, cg.dir.display());
    }

    let m = r.memory(true);
    eprintln!("memory: {m:?}");
    if r.dir(Controller::Memory).is_some() {
        assert!(m.usage.is_some_and(|u| u > 0), "a running test uses memory");
        assert!(m.stat.anon.is_some() || m.stat.file.is_some());
    }
    assert!(m.limit.is_none_or(|l| l > 0 && l < 1 << 62));

    let online = std::fs::read_to_string(host.sys_cpu_dir().join("online")).unwrap();
    let online = cpulist::parse(&online).unwrap();
    let c = r.cpu(&online, true);
    eprintln!("cpu: {c:?}");
    assert!(!c.visible.is_empty());
    assert!(c.visible.iter().all(|v| online.contains(v)));
    assert!(c.quota_cpus.is_none_or(|q| q > 0.0));

    let usage = r.cpu_usage();
    eprintln!("cpu usage: {usage:?}");
    match r.dir(Controller::Cpuacct) {
        Some(cg) if !cg.is_root => assert!(usage.total_busy_ns().is_some_and(|b| b > 0)),
        _ => assert_eq!(usage, CpuUsage::Unknown),
    }
    eprintln!("io: {:?}", r.io());
    eprintln!("task dir: {:?}", r.task_dir());

    // A cgroup of our own with one sleeping task, in the hierarchy loadavg counts tasks in
    // (the first of the task controllers): its task list is known exactly.
    let cpu = r
        .dir(Controller::Cpu)
        .expect("a cpu controller, v1 or v2, on this host");
    let mount = cpu
        .dir
        .ancestors()
        .nth(cpu.depth)
        .expect("the hierarchy's mount point");
    let sleeper = Sleeper::start(mount);
    let theirs = h
        .of_pid(&host, sleeper.pid())
        .expect("the sleeper's cgroups");
    assert_eq!(
        theirs.task_dir().as_deref(),
        Some(sleeper.dir.as_path()),
        "the sleeper's task dir is the cgroup it was put in"
    );
    let (counts, newest) = count_tasks(&host, &sleeper.dir);
    eprintln!(
        "tasks of {}: {counts:?}, newest {newest:?}",
        sleeper.dir.display()
    );
    assert_eq!(counts.total, 1, "one task, the sleeper: {counts:?}");
    assert!(counts.running <= 1, "{counts:?}");
    assert_eq!(
        newest.map(|n| n.tid),
        Some(sleeper.pid()),
        "the newest task is the sleeper"
    );
    drop(sleeper);

    let ns = PidNsCache::new(host.clone());
    let init = ns.init_of(pid).expect("our own pid namespace");
    eprintln!("init of our pid namespace: {init:?}");
    if let Some(init) = init {
        assert_eq!(start_ticks(&host, init.pid).unwrap(), init.start_ticks);
    }
    assert!(start_ticks(&host, pid).unwrap() > 0);
    let seen = ns.pid_as_seen_by(pid, pid);
    if init.is_none() {
        assert_eq!(seen, Some(pid), "in the host namespace pids are host pids");
    } else {
        assert!(seen.is_some(), "a process sees itself");
    }
}
