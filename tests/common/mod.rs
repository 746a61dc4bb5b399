//! Shared harness of the integration tests: environment checks, a daemon on a temporary
//! mount point, cgroup v1 directories with limits, readers running inside those cgroups, and
//! small parsers for the files.
//!
//! Everything the harness creates (mounts, cgroups, processes) is undone by `Drop` guards, so
//! a failing assertion leaves nothing behind. Only processes the tests started are ever
//! signalled, always by pid.
//!
//! Each part lives in a module of its own and is re-exported here, so tests write
//! `common::Daemon`, `common::kb` and so on:
//!
//! - [`env`]: the prerequisites of a test and `require!`;
//! - [`policy`]: the skip-or-fail policy (shared with the unit tests of the real machine);
//! - [`mounts`]: the mount table;
//! - [`process`]: waiting, running commands, how a command failed;
//! - [`parse`]: parsers for the served files and cgroup files;
//! - [`daemon`]: the daemon on a temporary mount point, temporary directories;
//! - [`ns_daemon`]: the daemon in namespaces of its own, reached through `/proc/<pid>/root`;
//! - [`cgroup`]: v1 cgroups with limits and readers inside them;
//! - [`container`]: real OCI containers run by runc;
//! - [`docker`]: a Docker engine of the test's own, and the daemon's image built into it;
//! - [`podman`]: Podman with storage, configuration and cgroups of the test's own (`run`, `kube play`);
//! - [`qemu_vm`]: the test VMs booted under qemu (`scripts/v2vm`, `scripts/sysvm`);
//! - [`scene`]: what a test with reading containers starts from, and the checks such tests
//!   share (tasks stuck in D state, problems as one panic);
//! - [`loads`]: containers reading the daemon's files all along with the probe's `loop`;
//! - [`status`]: the supervisor's `status`, supervisor and worker killed, held reads;
//! - [`agent`]: the seccomp agent on a socket of the test's own, and its profile;
//! - [`fdstore`]: a stand-in for systemd's file descriptor store (notify socket, `LISTEN_FDS`);
//! - [`fixture_tree`]: fake host trees (`proc/...`, `sys/...`) for `--host-root`;
//! - [`admission`]: `kube patch` run on a review, its patch decoded and applied;
//! - [`webhook`]: `kube webhook` on 127.0.0.1, its port and log;
//! - [`kube_validate`]: Kubernetes' schemas (`kubernetes-validate --strict`) for manifests and pods;
//! - [`splice`]: sendfile(2), the daemon's logged refusals of page-cache reads, and the proof
//!   that busybox `cat` copies with sendfile.

#![allow(dead_code)]

#[macro_use]
pub mod env;
pub mod admission;
pub mod agent;
pub mod cgroup;
pub mod container;
pub mod daemon;
pub mod docker;
pub mod fdstore;
pub mod fixture_tree;
pub mod kube_validate;
pub mod loads;
pub mod mounts;
pub mod ns_daemon;
pub mod parse;
pub mod podman;
pub mod policy;
pub mod process;
pub mod qemu_vm;
pub mod scene;
pub mod splice;
pub mod status;
pub mod webhook;

// Re-exports: not every test crate uses every part.
#[allow(unused_imports)]
pub use cgroup::*;
#[allow(unused_imports)]
pub use daemon::*;
#[allow(unused_imports)]
pub use env::*;
#[allow(unused_imports)]
pub use mounts::*;
#[allow(unused_imports)]
pub use parse::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use splice::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lxcfs-rs");

/// One mebibyte, in bytes.
pub const MIB: u64 = 1024 * 1024;

/// The v1 controllers a reader is moved into, so that what it reads never depends on where
/// the test runner itself sits.
pub const CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"];

/// Every file the daemon generates.
pub const GENERATED: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/slabinfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "proc/pressure/cpu",
    "proc/pressure/io",
    "proc/pressure/memory",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/possible",
    "sys/devices/system/cpu/present",
    "sys/devices/system/cpu/offline",
];

/// The fixed directories of the tree.
pub const DIRS: &[&str] = &[
    "",
    "proc",
    "proc/pressure",
    "sys",
    "sys/devices",
    "sys/devices/system",
    "sys/devices/system/cpu",
];
