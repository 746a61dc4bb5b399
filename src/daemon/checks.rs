//! What must hold before mounting: root, a usable `/dev/fuse`, the host's cgroup namespace
//! (joined when we can), and, for a warning, the host's pid namespace.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use log::{info, warn};

use super::error::DaemonError;
use crate::host::own;

/// Inode of the kernel's initial cgroup namespace (`PROC_CGROUP_INIT_INO`).
const INITIAL_CGROUP_NS: u64 = 0xEFFF_FFFB;
/// Inode of the kernel's initial pid namespace (`PROC_PID_INIT_INO`).
const INITIAL_PID_NS: u64 = 0xEFFF_FFFC;

/// Refuses to go on unless we run as root.
pub(super) fn check_root() -> Result<(), DaemonError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(DaemonError::NotRoot)
    }
}

/// Refuses to go on unless `/dev/fuse` is a character device we can open.
pub(super) fn check_dev_fuse() -> Result<(), DaemonError> {
    let meta = std::fs::metadata(own::DEV_FUSE).map_err(DaemonError::NoFuse)?;
    if !meta.file_type().is_char_device() {
        return Err(DaemonError::FuseNotCharDevice);
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(own::DEV_FUSE)
        .map_err(DaemonError::NoFuse)?;
    Ok(())
}

/// Paths in `/proc/<pid>/cgroup` are relative to our cgroup namespace, so a daemon in a
/// pod's namespace would read other cgroups than its readers'. Join the host's (pid 1's)
/// when we are elsewhere; if we still are not in the initial namespace (pid 1 is a pod's own
/// init, or setns is refused), refuse to start rather than serve wrong numbers.
pub(super) fn join_host_cgroup_namespace() -> Result<(), DaemonError> {
    let ns_ino = |path: &str| std::fs::metadata(path).map(|m| m.ino());
    // No cgroup namespaces in this kernel: paths are absolute already.
    let Ok(ours) = ns_ino(own::CGROUP_NS) else {
        return Ok(());
    };
    if ours == INITIAL_CGROUP_NS {
        return Ok(());
    }
    let ns = File::open(own::INIT_CGROUP_NS).map_err(DaemonError::CgroupNamespace)?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| DaemonError::CgroupNamespace(e.into()))?;
    match ns_ino(own::CGROUP_NS) {
        Ok(INITIAL_CGROUP_NS) => {
            info!("joined the host cgroup namespace");
            Ok(())
        }
        _ => Err(DaemonError::CgroupNamespaceNotHost),
    }
}

/// The kernel names a reader outside our pid namespace as pid 0, which gets host values:
/// correct for the host, wrong for containers, so say so loudly.
pub(super) fn warn_unless_host_pid_namespace() {
    if std::fs::metadata(own::PID_NS).is_ok_and(|m| m.ino() != INITIAL_PID_NS) {
        warn!(
            "lxcfs-rs is not in the host pid namespace: readers outside it get host values; \
             run it on the host, or with hostPID on Kubernetes (docker --pid=host)"
        );
    }
}

/// A FUSE request older than a set timeout aborts the whole connection, and a worker's
/// restart holds requests for a moment: warn when either sysctl is set.
pub(super) fn warn_request_timeouts() {
    for name in ["default_request_timeout", "max_request_timeout"] {
        let path = std::path::Path::new(own::FUSE_SYSCTLS).join(name);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(secs) = text.trim().parse::<u64>()
            && secs > 0
        {
            warn!(
                "fs.fuse.{name} is {secs} s: a request held longer (a worker being replaced \
                 under load) aborts the connection and every container loses its files; \
                 set it to 0 or well above a few seconds"
            );
        }
    }
}
