//! Pure cgroup v1 hosts, with separate and co-mounted `cpu,cpuacct` hierarchies.

use std::collections::BTreeMap;

use super::{Fixture, cgroups_of};
use crate::cgroup::{Hierarchies, Psi, ReaderCgroups};
use crate::model::{CpuTime, CpuUsage, IoStat, MemStat};

const PID: u32 = 100;
const UNLIMITED: &str = "9223372036854771712\n";

/// Mountinfo of a v1 host; `cpu_dir` is `cpu,cpuacct` when co-mounted.
fn mountinfo(comounted: bool) -> String {
    let cpu = if comounted {
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct\n"
            .to_string()
    } else {
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:16 - cgroup cgroup rw,cpu\n\
         33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime shared:17 - cgroup cgroup rw,cpuacct\n"
            .to_string()
    };
    format!(
        "22 27 0:21 / /proc rw,relatime shared:5 - proc proc rw\n\
         31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n\
         {cpu}\
         34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:18 - cgroup cgroup rw,cpuset\n\
         35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:19 - cgroup cgroup rw,memory\n\
         36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,relatime shared:20 - cgroup cgroup rw,net_cls,net_prio\n\
         38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime shared:21 - cgroup cgroup rw,blkio\n\
         39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:22 - cgroup cgroup rw,pids\n\
         40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:23 - cgroup cgroup rw,xattr,name=systemd\n"
    )
}

/// The reader's `/proc/<pid>/cgroup` on a v1 host: memory one level below the container.
fn proc_cgroup(comounted: bool) -> String {
    let cpu = if comounted {
        "4:cpu,cpuacct:/docker/c1\n"
    } else {
        "4:cpu:/docker/c1\n3:cpuacct:/docker/c1\n"
    };
    format!(
        "12:pids:/docker/c1\n11:blkio:/docker/c1\n10:net_cls,net_prio:/docker/c1\n9:memory:/docker/c1/sub\n\
         {cpu}2:cpuset:/docker/c1\n1:name=systemd:/docker/c1\n"
    )
}

/// A v1 host tree with a container `docker/c1` (and `docker/c1/sub` for memory).
fn host(comounted: bool) -> Fixture {
    let fx = Fixture::new();
    fx.mountinfo(&mountinfo(comounted))
        .cgroup(PID, &proc_cgroup(comounted));

    let mem = "sys/fs/cgroup/memory";
    for dir in [mem.to_string(), format!("{mem}/docker")] {
        fx.write(&format!("{dir}/memory.limit_in_bytes"), UNLIMITED);
        fx.write(&format!("{dir}/memory.memsw.limit_in_bytes"), UNLIMITED);
    }
    // The parent (the container) has the smaller limit; the child asks for more.
    fx.write(
        &format!("{mem}/docker/c1/memory.limit_in_bytes"),
        "536870912\n",
    );
    fx.write(
        &format!("{mem}/docker/c1/memory.memsw.limit_in_bytes"),
        "805306368\n",
    );
    fx.write(
        &format!("{mem}/docker/c1/sub/memory.limit_in_bytes"),
        "1073741824\n",
    );
    fx.write(
        &format!("{mem}/docker/c1/sub/memory.memsw.limit_in_bytes"),
        UNLIMITED,
    );
    fx.write(
        &format!("{mem}/docker/c1/sub/memory.usage_in_bytes"),
        "104857600\r\n",
    );
    fx.write(
        &format!("{mem}/docker/c1/sub/memory.memsw.usage_in_bytes"),
        "157286400 junk\n",
    );
    // Keys that share prefixes, in an order that trips prefix matching.
    fx.write(
        &format!("{mem}/docker/c1/sub/memory.stat"),
        "cache 1\nrss 2\nrss_huge 3\nmapped_file 4\nswap 0\n\
         total_rss_huge 2097152\ntotal_rss 8388608\ntotal_cache 4194304\ntotal_shmem 65536\n\
         total_mapped_file 12288\ntotal_dirty 4096\ntotal_writeback 0\ntotal_swap 0\n\
         total_inactive_anon 1048576\ntotal_active_anon 7340032\ntotal_inactive_file 2097152\n\
         total_active_file 2097152\ntotal_unevictable 0\nhierarchical_memory_limit 536870912\n",
    );
    fx.write(
        &format!("{mem}/docker/c1/sub/memory.kmem.slabinfo"),
        "slabinfo - version: 2.1\n",
    );

    let cpu = if comounted {
        "sys/fs/cgroup/cpu,cpuacct"
    } else {
        "sys/fs/cgroup/cpu"
    };
    let acct = if comounted {
        "sys/fs/cgroup/cpu,cpuacct"
    } else {
        "sys/fs/cgroup/cpuacct"
    };
    fx.write(&format!("{cpu}/cpu.cfs_quota_us"), "-1\n");
    fx.write(&format!("{cpu}/cpu.cfs_period_us"), "100000\n");
    fx.write(&format!("{cpu}/docker/cpu.cfs_quota_us"), "150000\n");
    fx.write(&format!("{cpu}/docker/cpu.cfs_period_us"), "100000\n");
    fx.write(&format!("{cpu}/docker/c1/cpu.cfs_quota_us"), "400000\n");
    fx.write(&format!("{cpu}/docker/c1/cpu.cfs_period_us"), "100000\n");
    fx.write(&format!("{cpu}/docker/c1/tasks"), "");
    fx.write(
        &format!("{acct}/docker/c1/cpuacct.usage_all"),
        "cpu user system\n0 1000 500\n1 2000 700\n",
    );
    fx.write(
        &format!("{acct}/docker/c1/cpuacct.usage_percpu"),
        "1500 2700 \n",
    );

    fx.write("sys/fs/cgroup/cpuset/cpuset.cpus", "0-3\n");
    fx.write("sys/fs/cgroup/cpuset/docker/c1/cpuset.cpus", "0-1,3\n");
    fx.write(
        "sys/fs/cgroup/cpuset/docker/c1/cpuset.effective_cpus",
        "0-1,3\n",
    );

    let blkio = "sys/fs/cgroup/blkio/docker/c1";
    fx.write(
        &format!("{blkio}/blkio.throttle.io_service_bytes_recursive"),
        "8:16 Read 0\n8:16 Write 0\n8:16 Sync 0\n8:16 Async 0\n8:16 Discard 0\n8:16 Total 0\n\
         8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 8192\n8:0 Async 4096\n8:0 Discard 0\n8:0 Total 12288\n\
         Total 12288\n",
    );
    fx.write(
        &format!("{blkio}/blkio.throttle.io_serviced_recursive"),
        "8:16 Read 0\n8:16 Write 0\n8:16 Total 0\n8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n",
    );
    fx
}

fn reader(fx: &Fixture) -> ReaderCgroups {
    let h = Hierarchies::discover(&fx.host).unwrap();
    h.of_pid(&fx.host, PID).unwrap()
}

fn check_common(fx: &Fixture, comounted: bool) {
    let r = reader(fx);

    let m = r.memory(true);
    assert_eq!(
        m.limit,
        Some(512 << 20),
        "min over the nested cgroup and its smaller parent"
    );
    assert_eq!(m.usage, Some(100 << 20), "CRLF tolerated");
    assert_eq!(
        m.swap_limit,
        Some(256 << 20),
        "memsw 768M minus memory 512M"
    );
    assert_eq!(
        m.swap_usage,
        Some(50 << 20),
        "memsw usage minus usage, trailing junk tolerated"
    );
    assert_eq!(
        m.stat,
        MemStat {
            anon: Some(8 << 20),
            file: Some(4 << 20),
            shmem: Some(64 << 10),
            active_anon: Some(7 << 20),
            inactive_anon: Some(1 << 20),
            active_file: Some(2 << 20),
            inactive_file: Some(2 << 20),
            unevictable: Some(0),
            mapped: Some(12288),
            dirty: Some(4096),
            writeback: Some(0),
            anon_thp: Some(2 << 20),
            ..MemStat::default()
        },
        "total_ keys only, exact names"
    );

    let c = r.cpu(&[0, 1, 2, 3], true);
    assert_eq!(c.visible, vec![0, 1, 3]);
    assert_eq!(
        c.quota_cpus,
        Some(1.5),
        "the parent's 1.5 CPUs beat the container's own 4"
    );

    let mut per_cpu = BTreeMap::new();
    per_cpu.insert(
        0,
        CpuTime {
            user_ns: 1000,
            system_ns: 500,
        },
    );
    per_cpu.insert(
        1,
        CpuTime {
            user_ns: 2000,
            system_ns: 700,
        },
    );
    assert_eq!(r.cpu_usage(), CpuUsage::PerCpu(per_cpu));

    assert_eq!(
        r.io(),
        vec![IoStat {
            major: 8,
            minor: 0,
            read_bytes: 4096,
            write_bytes: 8192,
            reads: 1,
            writes: 2
        }],
        "Total lines ignored, the idle device left out"
    );
    assert_eq!(r.pressure(Psi::Cpu), None, "no pressure files on v1");
    assert_eq!(r.slabinfo().as_deref(), Some("slabinfo - version: 2.1\n"));
    let cpu = if comounted {
        "sys/fs/cgroup/cpu,cpuacct"
    } else {
        "sys/fs/cgroup/cpu"
    };
    assert_eq!(r.task_dir(), Some(fx.path(&format!("{cpu}/docker/c1"))));
}

#[test]
fn separate_hierarchies() {
    check_common(&host(false), false);
}

#[test]
fn comounted_cpu_cpuacct() {
    let fx = host(true);
    check_common(&fx, true);
    let h = Hierarchies::discover(&fx.host).unwrap();
    let r = h.of_pid(&fx.host, PID).unwrap();
    assert_eq!(
        r.dir(crate::cgroup::controller::Controller::Cpu)
            .unwrap()
            .dir,
        r.dir(crate::cgroup::controller::Controller::Cpuacct)
            .unwrap()
            .dir
    );
}

#[test]
fn usage_percpu_when_usage_all_is_missing() {
    let fx = host(false);
    fx.remove("sys/fs/cgroup/cpuacct/docker/c1/cpuacct.usage_all");
    let mut per_cpu = BTreeMap::new();
    per_cpu.insert(
        0,
        CpuTime {
            user_ns: 1500,
            system_ns: 0,
        },
    );
    per_cpu.insert(
        1,
        CpuTime {
            user_ns: 2700,
            system_ns: 0,
        },
    );
    assert_eq!(reader(&fx).cpu_usage(), CpuUsage::PerCpu(per_cpu.clone()));

    // A malformed usage_all also falls back.
    fx.write(
        "sys/fs/cgroup/cpuacct/docker/c1/cpuacct.usage_all",
        "garbage\n",
    );
    assert_eq!(reader(&fx).cpu_usage(), CpuUsage::PerCpu(per_cpu));

    fx.remove("sys/fs/cgroup/cpuacct/docker/c1/cpuacct.usage_percpu");
    assert_eq!(reader(&fx).cpu_usage(), CpuUsage::Unknown);
}

#[test]
fn unlimited_missing_empty_and_garbage_limits_are_none() {
    let fx = host(false);
    let mem = "sys/fs/cgroup/memory/docker/c1";
    fx.write(&format!("{mem}/memory.limit_in_bytes"), UNLIMITED);
    fx.write(
        &format!("{mem}/sub/memory.limit_in_bytes"),
        "9223372036854775807\n",
    );
    assert_eq!(reader(&fx).memory(true).limit, None, "unlimited everywhere");

    fx.write(&format!("{mem}/sub/memory.limit_in_bytes"), "");
    assert_eq!(reader(&fx).memory(true).limit, None, "empty file");
    fx.write(&format!("{mem}/sub/memory.limit_in_bytes"), "abc\n");
    assert_eq!(reader(&fx).memory(true).limit, None, "garbage");
    fx.remove(&format!("{mem}/sub/memory.limit_in_bytes"));
    assert_eq!(reader(&fx).memory(true).limit, None, "missing");

    // A bad file at one level does not hide a good one at another.
    fx.write(&format!("{mem}/memory.limit_in_bytes"), "268435456\r\n");
    fx.write(&format!("{mem}/sub/memory.limit_in_bytes"), "abc\n");
    assert_eq!(reader(&fx).memory(true).limit, Some(256 << 20));

    fx.remove(&format!("{mem}/sub/memory.usage_in_bytes"));
    fx.remove(&format!("{mem}/sub/memory.stat"));
    let m = reader(&fx).memory(true);
    assert_eq!(m.usage, None);
    assert_eq!(m.swap_usage, None, "no usage, no swap usage");
    assert_eq!(m.stat, MemStat::default());
}

#[test]
fn memsw_without_memory_limit_is_all_swap_and_missing_memsw_is_none() {
    let fx = host(false);
    let mem = "sys/fs/cgroup/memory/docker/c1";
    fx.write(&format!("{mem}/memory.limit_in_bytes"), UNLIMITED);
    fx.write(&format!("{mem}/sub/memory.limit_in_bytes"), UNLIMITED);
    let m = reader(&fx).memory(true);
    assert_eq!(m.limit, None);
    assert_eq!(m.swap_limit, Some(768 << 20));

    // Kernels booted with swapaccount=0 have no memsw files.
    for dir in [
        "sys/fs/cgroup/memory",
        "sys/fs/cgroup/memory/docker",
        mem,
        &format!("{mem}/sub"),
    ] {
        fx.remove(&format!("{dir}/memory.memsw.limit_in_bytes"));
    }
    fx.remove(&format!("{mem}/sub/memory.memsw.usage_in_bytes"));
    let m = reader(&fx).memory(true);
    assert_eq!(m.swap_limit, None);
    assert_eq!(m.swap_usage, None);
}

#[test]
fn limits_larger_than_the_host_pass_through_for_the_renderer_to_cap() {
    let fx = host(false);
    // 1 TiB: more than any fixture host has; capping at host MemTotal is the renderer's job.
    fx.write(
        "sys/fs/cgroup/memory/docker/c1/memory.limit_in_bytes",
        "1099511627776\n",
    );
    fx.write(
        "sys/fs/cgroup/memory/docker/c1/sub/memory.limit_in_bytes",
        UNLIMITED,
    );
    assert_eq!(reader(&fx).memory(true).limit, Some(1 << 40));
}

#[test]
fn cpusets() {
    let fx = host(false);
    let c1 = "sys/fs/cgroup/cpuset/docker/c1";
    let online = [0, 1, 2, 3];

    fx.write(&format!("{c1}/cpuset.effective_cpus"), "2-15\n");
    assert_eq!(
        reader(&fx).cpu(&online, true).visible,
        vec![2, 3],
        "CPUs the host does not have are dropped"
    );

    fx.write(&format!("{c1}/cpuset.effective_cpus"), "\n");
    assert_eq!(
        reader(&fx).cpu(&online, true).visible,
        online,
        "empty cpuset"
    );

    fx.write(&format!("{c1}/cpuset.effective_cpus"), "8-9\n");
    assert_eq!(
        reader(&fx).cpu(&online, true).visible,
        online,
        "no overlap with the host"
    );

    fx.write(&format!("{c1}/cpuset.effective_cpus"), "x-y\n");
    assert_eq!(reader(&fx).cpu(&online, true).visible, online, "garbage");

    fx.remove(&format!("{c1}/cpuset.effective_cpus"));
    fx.write(&format!("{c1}/cpuset.cpus"), "1\r\n");
    assert_eq!(
        reader(&fx).cpu(&online, true).visible,
        vec![1],
        "cpuset.cpus without effective_cpus"
    );

    fx.remove(&format!("{c1}/cpuset.cpus"));
    assert_eq!(
        reader(&fx).cpu(&online, true).visible,
        online,
        "nothing here: the parent's (root's) set"
    );
}

#[test]
fn cpu_quota_none_and_bad_levels() {
    let fx = host(true);
    let cpu = "sys/fs/cgroup/cpu,cpuacct";
    fx.write(&format!("{cpu}/docker/cpu.cfs_quota_us"), "-1\n");
    assert_eq!(reader(&fx).cpu(&[0], true).quota_cpus, Some(4.0));
    fx.write(&format!("{cpu}/docker/c1/cpu.cfs_period_us"), "0\n");
    assert_eq!(
        reader(&fx).cpu(&[0], true).quota_cpus,
        None,
        "period 0 is malformed, not a division"
    );
    fx.write(&format!("{cpu}/docker/c1/cpu.cfs_period_us"), "200000\r\n");
    fx.write(&format!("{cpu}/docker/c1/cpu.cfs_quota_us"), "50000\n");
    assert_eq!(reader(&fx).cpu(&[0], true).quota_cpus, Some(0.25));
    fx.write(&format!("{cpu}/docker/c1/cpu.cfs_quota_us"), "-1\n");
    assert_eq!(reader(&fx).cpu(&[0], true).quota_cpus, None);
}

#[test]
fn root_cgroup_reader_gets_host_numbers() {
    let fx = host(true);
    fx.cgroup(
        PID,
        "12:pids:/\n11:blkio:/\n9:memory:/\n4:cpu,cpuacct:/\n2:cpuset:/\n",
    );
    fx.write(
        "sys/fs/cgroup/cpu,cpuacct/cpuacct.usage_all",
        "cpu user system\n0 1 1\n",
    );
    fx.write(
        "sys/fs/cgroup/blkio/blkio.throttle.io_serviced_recursive",
        "8:0 Read 1\n",
    );
    fx.write("sys/fs/cgroup/memory/memory.kmem.slabinfo", "x\n");
    // Files the kernel refuses to write at the root: planted here, they must change nothing.
    fx.write("sys/fs/cgroup/memory/memory.limit_in_bytes", "4096\n");
    fx.write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "1000\n");
    let r = reader(&fx);
    assert_eq!(r.cpu_usage(), CpuUsage::Unknown);
    assert_eq!(r.io(), vec![]);
    assert_eq!(r.task_dir(), None);
    assert_eq!(r.slabinfo(), None);
    assert_eq!(r.memory(true).limit, None);
    assert_eq!(r.cpu(&[0, 1, 2, 3], true).visible, vec![0, 1, 2, 3]);
    assert_eq!(r.cpu(&[0, 1, 2, 3], true).quota_cpus, None);
}

#[test]
fn io_with_one_throttle_file_missing() {
    let fx = host(false);
    fx.remove("sys/fs/cgroup/blkio/docker/c1/blkio.throttle.io_serviced_recursive");
    assert_eq!(
        reader(&fx).io(),
        vec![IoStat {
            major: 8,
            minor: 0,
            read_bytes: 4096,
            write_bytes: 8192,
            reads: 0,
            writes: 0
        }]
    );
    fx.remove("sys/fs/cgroup/blkio/docker/c1/blkio.throttle.io_service_bytes_recursive");
    assert_eq!(reader(&fx).io(), vec![]);
}

#[test]
fn a_device_is_left_out_only_when_every_count_is_zero() {
    // [read bytes, write bytes, reads, writes] per minor of major 8: each count alone, then
    // pairs of equal counts (which cancel out if the counts were combined other than by "any
    // is non-zero"), then a device that did nothing.
    let devices: [(u32, [u64; 4]); 8] = [
        (16, [512, 0, 0, 0]),
        (32, [0, 512, 0, 0]),
        (48, [0, 0, 1, 0]),
        (64, [0, 0, 0, 1]),
        (80, [4096, 4096, 0, 0]),
        (96, [0, 512, 512, 0]),
        (112, [0, 0, 1, 1]),
        (128, [0, 0, 0, 0]),
    ];
    let mut bytes = String::new();
    let mut ops = String::new();
    for (minor, [rb, wb, r, w]) in devices {
        bytes += &format!("8:{minor} Read {rb}\n8:{minor} Write {wb}\n");
        ops += &format!("8:{minor} Read {r}\n8:{minor} Write {w}\n");
    }
    let fx = host(false);
    let blkio = "sys/fs/cgroup/blkio/docker/c1";
    fx.write(
        &format!("{blkio}/blkio.throttle.io_service_bytes_recursive"),
        &bytes,
    );
    fx.write(
        &format!("{blkio}/blkio.throttle.io_serviced_recursive"),
        &ops,
    );
    let kept: Vec<IoStat> = devices[..7]
        .iter()
        .map(
            |&(minor, [read_bytes, write_bytes, reads, writes])| IoStat {
                major: 8,
                minor,
                read_bytes,
                write_bytes,
                reads,
                writes,
            },
        )
        .collect();
    assert_eq!(reader(&fx).io(), kept);
}

#[test]
fn empty_kmem_slabinfo_falls_back_to_the_host() {
    // Kernels without v1 kmem accounting leave the file present but empty.
    let fx = Fixture::new();
    fx.mountinfo("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n");
    fx.cgroup(7, "4:memory:/c\n");
    fx.write("sys/fs/cgroup/memory/c/memory.kmem.slabinfo", "");
    let r = cgroups_of(&fx, 7);
    assert_eq!(r.slabinfo(), None);
}
