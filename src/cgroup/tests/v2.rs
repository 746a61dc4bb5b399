//! Pure cgroup v2 hosts.

use super::{Fixture, cgroups_of};
use crate::cgroup::{CgroupError, Hierarchies, Psi, ReaderCgroups};
use crate::kfile::FileError;
use crate::model::{CpuTime, CpuUsage, IoStat, MemStat};

const PID: u32 = 200;
const POD: &str = "sys/fs/cgroup/kubepods.slice/pod1";
const C1: &str = "sys/fs/cgroup/kubepods.slice/pod1/c1";

const PRESSURE: &str = "some avg10=1.00 avg60=0.50 avg300=0.10 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";

fn host() -> Fixture {
    let fx = Fixture::new();
    fx.mountinfo(
        "22 27 0:21 / /proc rw,relatime shared:12 - proc proc rw\n\
         30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
    )
    .cgroup(PID, "0::/kubepods.slice/pod1/c1\n");
    fx.write(
        "sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    // The root has no limit files at all, as on a real host.
    fx.write("sys/fs/cgroup/cpuset.cpus.effective", "0-7\n");
    fx.write(
        "sys/fs/cgroup/cpu.stat",
        "usage_usec 999999\nuser_usec 1\nsystem_usec 1\n",
    );
    fx.write("sys/fs/cgroup/cpu.pressure", PRESSURE);

    fx.write("sys/fs/cgroup/kubepods.slice/memory.max", "max\n");
    fx.write("sys/fs/cgroup/kubepods.slice/memory.swap.max", "max\n");
    fx.write("sys/fs/cgroup/kubepods.slice/cpu.max", "max 100000\n");

    fx.write(&format!("{POD}/memory.max"), "268435456\n");
    fx.write(&format!("{POD}/memory.swap.max"), "134217728\n");
    fx.write(&format!("{POD}/cpu.max"), "150000 100000\n");
    fx.write(&format!("{POD}/cpuset.cpus.effective"), "1-3\n");

    fx.write(&format!("{C1}/memory.max"), "536870912\r\n");
    fx.write(&format!("{C1}/memory.swap.max"), "max\n");
    fx.write(&format!("{C1}/cpu.max"), "max 100000\n");
    fx.write(&format!("{C1}/memory.current"), "52428800\n");
    fx.write(&format!("{C1}/memory.swap.current"), "1048576\n");
    fx.write(
        &format!("{C1}/memory.stat"),
        "anon 1\nfile 2\nkernel 3\nkernel_stack 4\npagetables 5\nsec_pagetables 6\npercpu 7\nsock 8\n\
         vmalloc 9\nshmem 10\nzswap 11\nzswapped 12\nfile_mapped 13\nfile_dirty 14\nfile_writeback 15\n\
         swapcached 16\nanon_thp 17\nfile_thp 18\nshmem_thp 19\ninactive_anon 20\nactive_anon 21\n\
         inactive_file 22\nactive_file 23\nunevictable 24\nslab_reclaimable 25\nslab_unreclaimable 26\n\
         slab 27\nworkingset_refault_anon 28\npgfault 29\n",
    );
    fx.write(&format!("{C1}/cpuset.cpus.effective"), "2-3\n");
    fx.write(
        &format!("{C1}/cpu.stat"),
        "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 0\n",
    );
    fx.write(
        &format!("{C1}/io.stat"),
        "259:0 rbytes=1048576 wbytes=2097152 rios=10 wios=20 dbytes=0 dios=0\n\
         8:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n\
         7:0 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n",
    );
    fx.write(&format!("{C1}/cpu.pressure"), PRESSURE);
    fx.write(
        &format!("{C1}/io.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
    );
    fx.write(
        &format!("{C1}/memory.pressure"),
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=2\n",
    );
    fx.write(&format!("{C1}/cgroup.threads"), "");
    fx
}

fn reader(fx: &Fixture) -> ReaderCgroups {
    cgroups_of(fx, PID)
}

#[test]
fn memory_limits_swap_and_stat() {
    let fx = host();
    let m = reader(&fx).memory(true);
    assert_eq!(
        m.limit,
        Some(256 << 20),
        "the pod's smaller limit wins; max and the missing root file limit nothing"
    );
    assert_eq!(m.usage, Some(50 << 20));
    assert_eq!(m.swap_limit, Some(128 << 20));
    assert_eq!(m.swap_usage, Some(1 << 20));
    assert_eq!(
        m.stat,
        MemStat {
            anon: Some(1),
            file: Some(2),
            shmem: Some(10),
            active_anon: Some(21),
            inactive_anon: Some(20),
            active_file: Some(23),
            inactive_file: Some(22),
            unevictable: Some(24),
            mapped: Some(13),
            dirty: Some(14),
            writeback: Some(15),
            anon_thp: Some(17),
            slab_reclaimable: Some(25),
            slab_unreclaimable: Some(26),
            kernel_stack: Some(4),
            pagetables: Some(5),
        },
        "exact keys: file is not file_mapped/file_thp, kernel_stack is not kernel"
    );
}

#[test]
fn no_swap_files_means_unknown_swap() {
    let fx = host();
    for dir in ["sys/fs/cgroup/kubepods.slice", POD, C1] {
        fx.remove(&format!("{dir}/memory.swap.max"));
    }
    fx.remove(&format!("{C1}/memory.swap.current"));
    let m = reader(&fx).memory(true);
    assert_eq!((m.swap_limit, m.swap_usage), (None, None));
}

#[test]
fn swap_files_are_read_only_when_asked() {
    let fx = host();
    let with = reader(&fx).memory(true);
    let without = reader(&fx).memory(false);
    assert_eq!((without.swap_limit, without.swap_usage), (None, None));
    assert_eq!(
        (without.limit, without.usage, &without.stat),
        (with.limit, with.usage, &with.stat),
        "everything but swap is read as before"
    );
    assert_eq!(without.stat.file, Some(2));
}

#[test]
fn memory_max_everywhere_is_none() {
    let fx = host();
    fx.write(&format!("{POD}/memory.max"), "max\r\n");
    fx.write(&format!("{C1}/memory.max"), "max\n");
    assert_eq!(reader(&fx).memory(true).limit, None);
}

#[test]
fn cpus_quota_and_usage() {
    let fx = host();
    let r = reader(&fx);
    let c = r.cpu(&[0, 1, 2, 3, 4, 5, 6, 7], true);
    assert_eq!(c.visible, vec![2, 3]);
    assert_eq!(c.quota_cpus, Some(1.5));
    assert_eq!(
        r.cpu_usage(),
        CpuUsage::Total(CpuTime {
            user_ns: 2_000_000,
            system_ns: 1_000_000
        })
    );

    // Without the cpuset controller enabled below the pod, c1 has no cpuset files and runs
    // on the pod's set.
    fx.remove(&format!("{C1}/cpuset.cpus.effective"));
    assert_eq!(reader(&fx).cpu(&[0, 1, 2, 3], true).visible, vec![1, 2, 3]);

    fx.write(&format!("{C1}/cpu.max"), "50000 100000\n");
    assert_eq!(reader(&fx).cpu(&[0], true).quota_cpus, Some(0.5));
    fx.write(&format!("{C1}/cpu.max"), "garbage\n");
    fx.write(&format!("{POD}/cpu.max"), "max 100000\n");
    assert_eq!(reader(&fx).cpu(&[0], true).quota_cpus, None);
}

#[test]
fn io_stat() {
    let fx = host();
    assert_eq!(
        reader(&fx).io(),
        vec![
            IoStat {
                major: 8,
                minor: 0,
                read_bytes: 512,
                write_bytes: 0,
                reads: 1,
                writes: 0
            },
            IoStat {
                major: 259,
                minor: 0,
                read_bytes: 1 << 20,
                write_bytes: 2 << 20,
                reads: 10,
                writes: 20
            },
        ],
        "sorted by device, the idle loop device left out"
    );
    fx.remove(&format!("{C1}/io.stat"));
    assert_eq!(reader(&fx).io(), vec![]);
}

#[test]
fn pressure_as_it_is() {
    let fx = host();
    let r = reader(&fx);
    assert_eq!(r.pressure(Psi::Cpu).as_deref(), Some(PRESSURE));
    assert!(r.pressure(Psi::Io).unwrap().ends_with("total=1\n"));
    assert!(r.pressure(Psi::Memory).unwrap().ends_with("total=2\n"));
    crate::testutil::debug_log_on();
    let (slabinfo, notes) = crate::fallback::collect(|| r.slabinfo());
    assert_eq!(
        (slabinfo, notes),
        (None, vec![]),
        "no slabinfo on v2, and nothing looked for"
    );
    fx.remove(&format!("{C1}/cpu.pressure"));
    assert_eq!(reader(&fx).pressure(Psi::Cpu), None);
}

#[test]
fn root_reader() {
    let fx = host();
    fx.cgroup(PID, "0::/\n");
    let r = reader(&fx);
    assert_eq!(
        r.pressure(Psi::Cpu),
        None,
        "the root's pressure is the host's"
    );
    assert_eq!(r.cpu_usage(), CpuUsage::Unknown);
    assert_eq!(r.task_dir(), None);
    assert_eq!(r.memory(true).limit, None);
    assert_eq!(r.cpu(&[0, 1], true).visible, vec![0, 1]);
}

#[test]
fn only_the_0_line_names_the_unified_cgroup() {
    // A mangled line with an empty controller list but another hierarchy id is junk, not a
    // second unified path overriding the real one.
    let fx = host();
    fx.cgroup(PID, "0::/kubepods.slice/pod1/c1\n5::/kubepods.slice\n");
    assert_eq!(reader(&fx).task_dir(), Some(fx.path(C1)));
    assert_eq!(reader(&fx).memory(true).limit, Some(256 << 20));
}

#[test]
fn task_dir_is_the_v2_dir() {
    let fx = host();
    assert_eq!(reader(&fx).task_dir(), Some(fx.path(C1)));
}

#[test]
fn controllers_not_enabled_on_the_root_are_not_read() {
    let fx = host();
    fx.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu pids\n");
    let r = reader(&fx);
    assert_eq!(r.memory(true), Default::default());
    assert_eq!(r.io(), vec![]);
    assert_eq!(r.pressure(Psi::Memory), None);
    assert!(r.pressure(Psi::Cpu).is_some());
}

#[test]
fn unreadable_controllers_on_a_pure_v2_host_is_an_error() {
    let fx = host();
    fx.remove("sys/fs/cgroup/cgroup.controllers");
    let e = Hierarchies::discover(&fx.host).unwrap_err();
    assert!(
        matches!(e, CgroupError::File(FileError::Io { ref path, .. }) if path.ends_with("cgroup.controllers")),
        "{e}"
    );
}

#[test]
fn paths_above_the_namespace_root_are_refused() {
    let fx = host();
    fx.cgroup(PID, "0::/../../kubepods.slice/pod2/c2\n");
    let e = Hierarchies::discover(&fx.host)
        .unwrap()
        .of_pid(&fx.host, PID)
        .unwrap_err();
    match e {
        CgroupError::OutsideNamespace { path, cgroup } => {
            assert_eq!(path, fx.path(&format!("proc/{PID}/cgroup")));
            assert_eq!(cgroup, "/../../kubepods.slice/pod2/c2");
        }
        other => panic!("{other}"),
    }
    fx.cgroup(PID, "0::/..\n");
    let e = Hierarchies::discover(&fx.host)
        .unwrap()
        .of_pid(&fx.host, PID)
        .unwrap_err();
    assert!(matches!(e, CgroupError::OutsideNamespace { .. }), "{e}");
    // ".." further down is not a namespace matter, but is refused too.
    fx.cgroup(PID, "0::/a/../../etc\n");
    let e = Hierarchies::discover(&fx.host)
        .unwrap()
        .of_pid(&fx.host, PID)
        .unwrap_err();
    assert!(
        matches!(e, CgroupError::File(FileError::Malformed { .. })),
        "{e}"
    );
    // A name that merely starts with two dots is fine.
    fx.cgroup(PID, "0::/..hidden\n");
    assert!(
        Hierarchies::discover(&fx.host)
            .unwrap()
            .of_pid(&fx.host, PID)
            .is_ok()
    );
}
