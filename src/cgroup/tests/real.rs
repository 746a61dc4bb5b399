//! The real host's cgroups, read as the daemon would. Needs root (cgroup files and other
//! processes' `/proc` entries); skipped with a message otherwise.

use crate::cgroup::controller::Controller;
use crate::cgroup::{Hierarchies, count_tasks};
use crate::cpulist;
use crate::host::HostPaths;
use crate::model::CpuUsage;
use crate::reader::{PidNsCache, start_ticks};

#[test]
fn real_machine_discover_and_of_pid() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping real_machine_discover_and_of_pid: not root");
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
    let c = r.cpu(&online);
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

    // Count the tasks of whichever non-root cgroup we are in: we are among them.
    let dir = r.task_dir().or_else(|| {
        Controller::ALL
            .into_iter()
            .filter_map(|c| r.dir(c))
            .find(|cg| !cg.is_root)
            .map(|cg| cg.dir.clone())
    });
    if let Some(dir) = dir {
        let (counts, newest) = count_tasks(&host, &dir);
        eprintln!("tasks of {}: {counts:?}, newest {newest:?}", dir.display());
        assert!(
            counts.total >= 1 && counts.running >= 1,
            "at least this thread runs"
        );
        assert!(newest.is_some());
    }

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
