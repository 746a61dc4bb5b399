//! Migration from the C lxcfs without restarting a container: lxcfs serves the mount point
//! with the fleet bound to it, is stopped (`systemctl stop lxcfs`: SIGTERM, after which it
//! unmounts and exits), and lxcfs-rs starts on the same mount point. Every container gets
//! lxcfs-rs's files within 2 s: mountinfo shows lxcfs-rs's connection at every bind, and the
//! reads work again with the same MemTotal, processors and online list.
//!
//! The fleet's cpusets start at CPU 0: for a cpuset of CPU 1, lxcfs lists the online CPUs
//! renumbered (`0`) where lxcfs-rs lists them as they are (`1`), so such a container's online
//! list changes at the migration.

use crate::heal::{Old, Pass, must_heal};

#[test]
fn the_c_lxcfs_containers_get_lxcfs_rs_files_within_2_s() {
    require!(
        program "lxcfs",
        "the C lxcfs is not installed (scripts/deps.sh test installs it)"
    );
    must_heal(Old::CLxcfs, Pass::Daemon);
}
