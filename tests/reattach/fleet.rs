//! The containers that must heal: each reads the daemon's files with `probe loop` (reopening
//! its kept descriptor after a failure, so a healed mount shows in every read), and each
//! reaches the lxcfs mounts another way.

use std::path::Path;

use crate::common::MIB;
use crate::common::container::{BOUND_FILES, Spec};
use crate::common::loads::{Kept, Want, loop_script};
use crate::common::scene::Scene;

/// The reader of every container: the probe in the container's own namespaces.
fn reader() -> String {
    loop_script("", Kept::Reopen)
}

/// The files of [`BOUND_FILES`] under `proc/`: what the `locked` container binds. A locked
/// dead bind can only be covered, and the kernel refuses to mount on a dentry that is, or
/// is below, an unhashed one (`d_set_mounted`: ENOENT). The `cpudir` container's reads look
/// `online` up in the dead filesystem during the outage; the failed revalidation unhashes
/// that dentry, which every file bind of `online` shares (their mountinfo root turns
/// `/sys/devices/system/cpu/online//deleted`): a locked file bind of it could not be healed.
fn proc_files() -> Vec<&'static str> {
    BOUND_FILES
        .iter()
        .copied()
        .filter(|f| f.starts_with("proc/"))
        .collect()
}

/// The running containers, with what each reads:
///
/// - `plain`: the files bound read-write, a memory limit;
/// - `userns`: a user namespace (root is host uid 100000), a read-only root filesystem,
///   `ro,nosuid,nodev` binds, a memory limit and a cpuset;
/// - `cpudir`: the proc files, the whole `sys/devices/system/cpu` directory bound (a
///   directory bind) and the whole mount at `/var/lib/lxcfs` (a bind of the root), a cpuset
///   of CPU 0;
/// - `nested`: the reader in mount and pid namespaces of its own (`unshare -m -p -f`, which
///   takes CAP_SYS_ADMIN), as a nested container's; the container's shell stays in the
///   container's, so both namespaces hold the binds;
/// - `locked`: the reader in user, mount and pid namespaces of its own (`probe nest`, which
///   takes CAP_SETFCAP to map root), binding the proc files only (see [`proc_files`]): the
///   binds copied into a mount namespace of a less privileged user namespace are locked, so
///   they cannot be unmounted there, only covered.
pub(crate) fn fleet(s: &Scene, mnt: &Path) -> Vec<(Spec, Want)> {
    let host = Want::host();
    vec![
        (
            Spec::new("plain", &s.rootfs, &reader())
                .memory(256 * MIB)
                .lxcfs(mnt),
            host.clone().memory(256 * MIB),
        ),
        (
            Spec::new("userns", &s.rootfs, &reader())
                .memory(192 * MIB)
                .cpus("0")
                .user_namespace(100_000, 65_536)
                .read_only_root()
                .lxcfs_files(mnt, BOUND_FILES, &["rbind", "ro", "nosuid", "nodev"]),
            host.clone().memory(192 * MIB).cpus("0"),
        ),
        (
            // CPU 0: for a cpuset of CPU 1, the C lxcfs lists online CPUs renumbered from 0
            // ("0") and lxcfs-rs as they are ("1"), so the migration would see its online
            // list change (see the migrate module).
            Spec::new("cpudir", &s.rootfs, &reader())
                .cpus("0")
                .lxcfs_with_cpu_dir(mnt)
                .bind(mnt, "/var/lib/lxcfs"),
            host.clone().cpus("0"),
        ),
        (
            Spec::new(
                "nested",
                &s.rootfs,
                &loop_script("unshare -m -p -f", Kept::Reopen),
            )
            .memory(128 * MIB)
            .capability("CAP_SYS_ADMIN")
            .lxcfs(mnt),
            host.clone().memory(128 * MIB),
        ),
        (
            Spec::new(
                "locked",
                &s.rootfs,
                &loop_script("probe nest", Kept::Reopen),
            )
            .memory(160 * MIB)
            .cpus("1")
            // Mapping root (the container's uid) into a user namespace takes
            // CAP_SETFCAP (Linux 5.12), which docker grants and runc's default spec not.
            .capability("CAP_SETFCAP")
            .lxcfs_files(mnt, &proc_files(), &["rbind", "rw"]),
            Want {
                // Its online list is the kernel's: see `proc_files`.
                online: host.online.clone(),
                ..host.memory(160 * MIB).cpus("1")
            },
        ),
    ]
}

/// The container started during the outage. runc cannot create a container whose bind
/// source is a dead mount (`stat ...: transport endpoint is not connected`), nor one whose
/// source is missing (the dead mount detached), so it is created while the old daemon serves
/// (`runc create`: namespaces and binds made, `runc init` waiting in them) and started during
/// the outage: its reader's first reads fail, and it never read a good value before the pass.
pub(crate) fn late(s: &Scene, mnt: &Path) -> (Spec, Want) {
    (
        Spec::new("late", &s.rootfs, &reader())
            .memory(96 * MIB)
            .cpus("0")
            .lxcfs(mnt)
            .barrier(&s.barrier),
        Want::host().memory(96 * MIB).cpus("0"),
    )
}
