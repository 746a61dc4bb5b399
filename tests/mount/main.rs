//! The daemon mounted for real: its lifecycle, and every file as readers in real v1 cgroups
//! see it. Needs root and /dev/fuse (skipped otherwise, failing when CI is set).
//!
//! One test binary, a module per topic:
//!
//! - [`memory`]: meminfo and swaps under memory limits, `show` beside the mount;
//! - [`cpu`]: cpusets and CFS quotas in cpuinfo, stat and the CPU directory;
//! - [`reads`]: uptime, unlimited readers, byte-by-byte, concurrent and re-read;
//! - [`splice`]: sendfile and splice readers, the race against our daemon and the C lxcfs;
//! - [`files`]: loadavg, pressure, diskstats and slabinfo;
//! - [`load`]: loadavg values as the load tracker's ticks make them;
//! - [`tasks`]: running and blocked threads in proc/stat and loadavg, a thousand of them;
//! - [`kept_fds`]: host files kept open: fresh values, moved readers, reused pids, removed
//!   cgroups let go;
//! - [`filesystem`]: modes, owner, read-only;
//! - [`size`]: `st_size` against what readers get;
//! - [`attributes`]: attributes the kernel caches, and reads past a cached size;
//! - [`host_ns`]: `--host-mount-ns` from a mount namespace of the daemon's own;
//! - [`hostile`]: a container holding 100,000 open descriptors, and the daemon's memory;
//! - [`uring`]: `--io-uring`: served over FUSE-over-io_uring, the fallback, a refused ring;
//! - [`lifecycle`]: signals, stale mounts, flags, help and version;
//! - [`errors`]: refused starts;
//! - [`namespaces`]: the daemon outside the host's namespaces, readers it cannot look up;
//! - [`probe`]: `lxcfs-rs probe` on served, missing, foreign, stale and wedged mounts;
//! - [`takeover`]: a second daemon taking the live connection over; stable node ids.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod attributes;
mod cpu;
mod errors;
mod files;
mod filesystem;
mod host_ns;
mod hostile;
mod kept_fds;
mod lifecycle;
mod load;
mod memory;
mod namespaces;
mod probe;
mod reads;
mod size;
mod splice;
mod takeover;
mod tasks;
mod uring;

use std::fs;

/// A host file's text (the kernel's own, for comparisons).
fn host(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
