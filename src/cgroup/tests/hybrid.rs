//! Hybrid hosts: v1 controllers plus a cgroup2 mount at `/sys/fs/cgroup/unified`.

use super::{Fixture, cgroups_of};
use crate::cgroup::{Hierarchies, Psi};
use crate::model::IoStat;

const PID: u32 = 300;

/// Like this machine's mountinfo: every controller on v1, cgroup2 with (almost) nothing.
const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

fn host() -> Fixture {
    let fx = Fixture::new();
    fx.mountinfo(MOUNTINFO).cgroup(
        PID,
        "9:name=systemd:/system.slice/ctr.service\n8:pids:/ctr\n4:memory:/ctr\n3:cpuset:/ctr\n\
         2:cpuacct:/ctr\n1:cpu:/ctr\n0::/system.slice/ctr.service\n",
    );
    // No blkio on v1 here; cgroup2 has io enabled, so io comes from there.
    fx.write("sys/fs/cgroup/unified/cgroup.controllers", "io hugetlb\n");
    fx.write(
        "sys/fs/cgroup/memory/ctr/memory.limit_in_bytes",
        "134217728\n",
    );
    // A memory file in the unified tree must not be read: memory lives on v1.
    fx.write(
        "sys/fs/cgroup/unified/system.slice/ctr.service/memory.max",
        "4096\n",
    );
    fx.write(
        "sys/fs/cgroup/unified/system.slice/ctr.service/cpu.pressure",
        "some total=1\n",
    );
    fx.write(
        "sys/fs/cgroup/unified/system.slice/ctr.service/io.pressure",
        "some total=2\n",
    );
    fx.write(
        "sys/fs/cgroup/unified/system.slice/ctr.service/io.stat",
        "8:0 rbytes=4096 wbytes=0 rios=1 wios=0\n",
    );
    fx.write("sys/fs/cgroup/cpu/ctr/cpu.cfs_quota_us", "200000\n");
    fx.write("sys/fs/cgroup/cpu/ctr/cpu.cfs_period_us", "100000\n");
    fx.write("sys/fs/cgroup/cpuacct/ctr/cpuacct.usage_percpu", "10 20\n");
    fx
}

#[test]
fn v1_lines_win_and_v2_fills_in_enabled_controllers() {
    let fx = host();
    let h = Hierarchies::discover(&fx.host).unwrap();
    let r = h.of_pid(&fx.host, PID).unwrap();
    assert_eq!(r.memory(true).limit, Some(128 << 20));
    assert_eq!(r.cpu(&[0, 1, 2, 3], true).quota_cpus, Some(2.0));
    assert_eq!(
        r.cpu(&[0, 1, 2, 3], false).quota_cpus,
        None,
        "not asked for"
    );
    assert_eq!(r.cpu_usage().total_busy_ns(), Some(30));
    assert_eq!(
        r.io(),
        vec![IoStat {
            major: 8,
            minor: 0,
            read_bytes: 4096,
            reads: 1,
            ..Default::default()
        }]
    );
    assert_eq!(r.pressure(Psi::Cpu), None, "cpu is a v1 controller here");
    assert_eq!(
        r.pressure(Psi::Io).as_deref(),
        Some("some total=2\n"),
        "io lives on v2 here"
    );
    assert_eq!(r.task_dir(), Some(fx.path("sys/fs/cgroup/cpu/ctr")));
}

#[test]
fn unified_without_controllers_serves_nothing_but_tasks() {
    let fx = host();
    fx.write("sys/fs/cgroup/unified/cgroup.controllers", "\n");
    // Only the unified hierarchy is left for the task list.
    fx.mountinfo(
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
         40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n",
    );
    let r = cgroups_of(&fx, PID);
    assert_eq!(r.io(), vec![]);
    assert_eq!(r.memory(true), Default::default());
    assert_eq!(
        r.task_dir(),
        Some(fx.path("sys/fs/cgroup/unified/system.slice/ctr.service"))
    );
}

#[test]
fn unreadable_unified_controllers_on_a_hybrid_host_is_tolerated() {
    let fx = host();
    fx.remove("sys/fs/cgroup/unified/cgroup.controllers");
    let r = cgroups_of(&fx, PID);
    assert_eq!(r.io(), vec![]);
    assert_eq!(r.memory(true).limit, Some(128 << 20));
}

#[test]
fn an_unusable_unified_path_matters_only_when_used() {
    let fx = host();
    fx.write("sys/fs/cgroup/unified/cgroup.controllers", "\n");
    fx.cgroup(
        PID,
        "4:memory:/ctr\n1:cpu:/ctr\n2:cpuacct:/ctr\n0::/../elsewhere\n",
    );
    let h = Hierarchies::discover(&fx.host).unwrap();
    let r = h.of_pid(&fx.host, PID).unwrap();
    assert_eq!(r.memory(true).limit, Some(128 << 20));

    // With io served from cgroup2, the same path is an error.
    fx.write("sys/fs/cgroup/unified/cgroup.controllers", "io\n");
    let h = Hierarchies::discover(&fx.host).unwrap();
    assert!(matches!(
        h.of_pid(&fx.host, PID),
        Err(crate::cgroup::CgroupError::OutsideNamespace { .. })
    ));
}

#[test]
fn an_unusable_unified_path_is_an_error_when_the_task_list_needs_it() {
    // Only cpuset on v1: loadavg's task list must come from the unified cgroup, so a path
    // outside the daemon's namespace cannot silently give host numbers.
    let fx = host();
    fx.write("sys/fs/cgroup/unified/cgroup.controllers", "\n");
    fx.mountinfo(
        "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n\
         41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
    );
    fx.cgroup(PID, "3:cpuset:/ctr\n0::/../elsewhere\n");
    let h = Hierarchies::discover(&fx.host).unwrap();
    assert!(matches!(
        h.of_pid(&fx.host, PID),
        Err(crate::cgroup::CgroupError::OutsideNamespace { .. })
    ));

    fx.cgroup(PID, "3:cpuset:/ctr\n0::/system.slice/ctr.service\n");
    assert_eq!(
        h.of_pid(&fx.host, PID).unwrap().task_dir(),
        Some(fx.path("sys/fs/cgroup/unified/system.slice/ctr.service"))
    );
}

#[test]
fn pressure_of_a_v1_controller_is_not_looked_for() {
    // v1 hierarchies have no pressure files: the host's are served without a fallback note.
    let fx = host();
    let r = cgroups_of(&fx, PID);
    crate::testutil::debug_log_on();
    let (cpu, notes) = crate::fallback::collect(|| r.pressure(Psi::Cpu));
    assert_eq!((cpu, notes), (None, vec![]));
}
