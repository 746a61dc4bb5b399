//! Mountinfo parsing and path resolution corner cases.

use std::path::PathBuf;

use super::{Fixture, cgroups_of};
use crate::cgroup::{CgroupError, Hierarchies};
use crate::host::HostPaths;
use crate::kfile::FileError;

#[test]
fn mount_with_a_subtree_root_serves_paths_under_it() {
    // The daemon sees only the container's subtree, bind-mounted at /sys/fs/cgroup/memory
    // (mountinfo root /docker/abc), while /proc/<pid>/cgroup names host paths.
    let fx = Fixture::new();
    fx.mountinfo(
        "35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n\
         36 31 0:33 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n",
    )
    .cgroup(1, "9:memory:/docker/abc/sub\n4:cpu,cpuacct:/docker/abc\n");
    fx.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "268435456\n");
    fx.write(
        "sys/fs/cgroup/memory/sub/memory.limit_in_bytes",
        "536870912\n",
    );
    fx.write("sys/fs/cgroup/cpu,cpuacct/cpuacct.usage_percpu", "5 6\n");
    let h = Hierarchies::discover(&fx.host).unwrap();
    let r = h.of_pid(&fx.host, 1).unwrap();
    assert_eq!(
        r.memory(true).limit,
        Some(256 << 20),
        "the mount dir itself counts as an ancestor"
    );
    assert_eq!(
        r.cpu_usage().total_busy_ns(),
        Some(11),
        "the cgroup at the mount dir is not the host root: its usage is served"
    );
    assert_eq!(r.task_dir(), Some(fx.path("sys/fs/cgroup/cpu,cpuacct")));

    fx.cgroup(1, "9:memory:/docker/abcd\n");
    match h.of_pid(&fx.host, 1).unwrap_err() {
        CgroupError::OutsideMount {
            cgroup, mount_root, ..
        } => {
            assert_eq!(cgroup, "/docker/abcd");
            assert_eq!(mount_root, "/docker/abc");
        }
        e => panic!("{e}"),
    }
}

#[test]
fn cpuset_walk_up_reaches_a_subtree_mount_dir() {
    // A daemon in a container sees only its pod's subtree (mountinfo root /pod1); the reader's
    // cgroup c1 has no cpuset controller enabled, so it runs on the pod's set, which lives in
    // the mount dir itself.
    let fx = Fixture::new();
    fx.mountinfo("30 23 0:26 /pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
        .cgroup(1, "0::/pod1/c1\n");
    fx.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu memory\n");
    fx.write("sys/fs/cgroup/cpuset.cpus.effective", "1-2\n");
    fx.write("sys/fs/cgroup/c1/memory.max", "max\n");
    let r = cgroups_of(&fx, 1);
    assert_eq!(r.cpu(&[0, 1, 2, 3], true).visible, vec![1, 2]);
}

#[test]
fn escaped_mount_points_and_duplicate_mounts() {
    let fx = Fixture::new();
    fx.mountinfo(
        "35 31 0:32 /docker/abc /mnt/ctr\\040cg ro - cgroup cgroup rw,memory\n\
         36 31 0:32 / /mnt/host\\040cg rw - cgroup cgroup rw,memory\n\
         this line is not mountinfo\n\
         \n",
    )
    .cgroup(7, "3:memory:/x\n");
    fx.write("mnt/host cg/x/memory.limit_in_bytes", "4096\n");
    let r = cgroups_of(&fx, 7);
    assert_eq!(
        r.memory(true).limit,
        Some(4096),
        "the mount of the whole hierarchy is preferred"
    );
}

#[test]
fn no_cgroup_mounts_is_an_error() {
    let fx = Fixture::new();
    fx.mountinfo(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
         40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n",
    );
    match Hierarchies::discover(&fx.host).unwrap_err() {
        CgroupError::NoHierarchies { path } => assert_eq!(path, fx.path("proc/self/mountinfo")),
        e => panic!("{e}"),
    }
}

#[test]
fn missing_mountinfo_and_missing_pid_are_io_errors_naming_the_file() {
    let fx = Fixture::new();
    let e = Hierarchies::discover(&fx.host).unwrap_err();
    assert!(
        matches!(&e, CgroupError::File(FileError::Io { path, .. }) if path == &fx.path("proc/self/mountinfo")),
        "{e}"
    );

    let h =
        Hierarchies::from_mountinfo(&fx.host, "35 31 0:32 / /cg rw - cgroup cgroup rw,memory\n")
            .unwrap();
    let e = h.of_pid(&fx.host, 4242).unwrap_err();
    assert!(
        matches!(&e, CgroupError::File(FileError::Io { path, .. }) if path == &fx.path("proc/4242/cgroup")),
        "{e}"
    );
    assert!(e.to_string().contains("4242"));
}

#[test]
fn odd_proc_cgroup_lines() {
    let fx = Fixture::new();
    let h = Hierarchies::from_mountinfo(
        &fx.host,
        "35 31 0:32 / /cg/memory rw - cgroup cgroup rw,memory\n36 31 0:33 / /cg/pids rw - cgroup cgroup rw,pids\n",
    )
    .unwrap();
    // CRLF, junk lines, a path with a colon, and no line for pids.
    fx.cgroup(1, "garbage\r\n4:memory:/a:b\r\n");
    fx.write("cg/memory/a:b/memory.limit_in_bytes", "8192\n");
    let r = h.of_pid(&fx.host, 1).unwrap();
    assert_eq!(r.memory(true).limit, Some(8192));
    assert_eq!(
        r.task_dir(),
        Some(fx.path("cg/memory/a:b")),
        "pids has no line; memory is next in line"
    );

    fx.cgroup(1, "4:memory:relative\n");
    assert!(matches!(
        h.of_pid(&fx.host, 1),
        Err(CgroupError::File(FileError::Malformed { .. }))
    ));
}

#[test]
fn from_mountinfo_places_mounts_under_the_host_root() {
    let host = HostPaths::under(&PathBuf::from("/fixture"));
    let h = Hierarchies::from_mountinfo(
        &host,
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
    )
    .unwrap();
    let cpu = h.v1[crate::cgroup::controller::Controller::Cpu.index()]
        .as_ref()
        .unwrap();
    assert_eq!(cpu.dir, PathBuf::from("/fixture/sys/fs/cgroup/cpu,cpuacct"));
    assert_eq!(cpu.root, "/");
    assert!(h.v1[crate::cgroup::controller::Controller::Memory.index()].is_none());
    assert!(h.v2.is_none());
}

#[test]
fn the_real_root_is_not_read_for_limits() {
    // The kernel refuses limits on the root cgroup, so its files are not worth a read each
    // request; a value planted there in a fixture must therefore change nothing.
    let fx = Fixture::new();
    fx.mountinfo(
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
         36 31 0:33 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
    )
    .cgroup(1, "9:memory:/c\n4:cpu:/c\n");
    fx.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "4096\n");
    fx.write("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "1000\n");
    fx.write("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    fx.write("sys/fs/cgroup/cpu/c/cpu.cfs_quota_us", "-1\n");
    let r = cgroups_of(&fx, 1);
    assert_eq!(r.memory(true).limit, None);
    assert_eq!(r.cpu(&[0, 1], true).quota_cpus, None);

    fx.write("sys/fs/cgroup/memory/c/memory.limit_in_bytes", "8192\n");
    assert_eq!(
        r.memory(true).limit,
        Some(8192),
        "the cgroup's own limit still counts"
    );
}

#[test]
fn swap_files_are_read_only_when_asked() {
    let fx = Fixture::new();
    fx.mountinfo("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
        .cgroup(1, "9:memory:/c\n");
    fx.write(
        "sys/fs/cgroup/memory/c/memory.limit_in_bytes",
        "268435456\n",
    );
    fx.write("sys/fs/cgroup/memory/c/memory.usage_in_bytes", "1048576\n");
    fx.write(
        "sys/fs/cgroup/memory/c/memory.memsw.limit_in_bytes",
        "536870912\n",
    );
    fx.write(
        "sys/fs/cgroup/memory/c/memory.memsw.usage_in_bytes",
        "3145728\n",
    );
    fx.write(
        "sys/fs/cgroup/memory/c/memory.stat",
        "total_cache 8192\ntotal_rss 4096\n",
    );
    let r = cgroups_of(&fx, 1);
    let with = r.memory(true);
    assert_eq!(
        (with.swap_limit, with.swap_usage),
        (Some(256 << 20), Some(2 << 20))
    );
    let without = r.memory(false);
    assert_eq!((without.swap_limit, without.swap_usage), (None, None));
    assert_eq!((without.limit, without.usage), (with.limit, with.usage));
    // `-u` and swapless hosts still show the cgroup's page cache and anon memory.
    assert_eq!(
        (without.stat.file, without.stat.anon),
        (Some(8192), Some(4096))
    );
    assert_eq!(without.stat, with.stat);
}
