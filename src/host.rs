//! Where the host's files are: the one place that names `/proc`, `/sys` and `/dev` paths.
//!
//! [`HostPaths`] names the files of the host being served; tests point it at fixture trees.
//! [`own`] names the files about the daemon process itself, which no fixture replaces.

use std::path::{Path, PathBuf};

/// Roots of the host files the daemon reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The host's procfs (`/proc`).
    pub proc: PathBuf,
    /// The prefix put before every absolute path named in mountinfo and before `/sys`
    /// (`/` on a real host, a fixture directory in tests).
    pub root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            proc: PathBuf::from("/proc"),
            root: PathBuf::from("/"),
        }
    }
}

impl HostPaths {
    /// Paths rooted at a fixture tree: `<dir>/proc`, `<dir>/sys/...`, and mount points from
    /// `<dir>/proc/self/mountinfo` resolved under `<dir>`.
    pub fn under(dir: &Path) -> Self {
        HostPaths {
            proc: dir.join("proc"),
            root: dir.to_path_buf(),
        }
    }

    /// A file under the host's procfs, e.g. `proc_file("meminfo")`.
    pub fn proc_file(&self, rel: &str) -> PathBuf {
        self.proc.join(rel)
    }

    /// A file of one process, e.g. `pid_file(42, "cgroup")` is `/proc/42/cgroup`.
    pub fn pid_file(&self, pid: u32, rel: &str) -> PathBuf {
        self.proc.join(pid.to_string()).join(rel)
    }

    /// An absolute host path (as mountinfo names it) placed under `root`.
    pub fn host_path(&self, abs: &Path) -> PathBuf {
        self.root.join(abs.strip_prefix("/").unwrap_or(abs))
    }

    /// The host's `/sys/devices/system/cpu` directory.
    pub fn sys_cpu_dir(&self) -> PathBuf {
        self.host_path(Path::new("/sys/devices/system/cpu"))
    }

    /// The mount table the cgroup hierarchies are found in: `<proc>/self/mountinfo`.
    pub fn mountinfo(&self) -> PathBuf {
        self.proc_file("self/mountinfo")
    }
}

/// Files about the daemon process itself and the devices it opens. These are always the real
/// ones, even with `--host-root`: they describe this process, not the host it serves.
pub mod own {
    /// The FUSE device.
    pub const DEV_FUSE: &str = "/dev/fuse";
    /// Our mount table, as our mount namespace sees it.
    pub const MOUNTINFO: &str = "/proc/self/mountinfo";
    /// Our cgroup namespace.
    pub const CGROUP_NS: &str = "/proc/self/ns/cgroup";
    /// Our pid namespace.
    pub const PID_NS: &str = "/proc/self/ns/pid";
    /// The cgroup namespace of pid 1, the host's when we share its pid namespace.
    pub const INIT_CGROUP_NS: &str = "/proc/1/ns/cgroup";
    /// Where serving daemons listen for a successor (`--takeover`), one socket per mount.
    pub const HANDOFF_DIR: &str = "/run/lxcfs-rs";
    /// The FUSE control filesystem: one directory per connection, named by its device number.
    pub const FUSECTL: &str = "/sys/fs/fuse/connections";
    /// The FUSE sysctls (`default_request_timeout`, `max_request_timeout`).
    pub const FUSE_SYSCTLS: &str = "/proc/sys/fs/fuse";
    /// Whether the kernel offers FUSE-over-io_uring to new connections (`Y`/`N`; host-wide).
    pub const FUSE_ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";
    /// The CPUs that may ever be online: the kernel makes one ring queue per possible CPU.
    pub const CPU_POSSIBLE: &str = "/sys/devices/system/cpu/possible";
    /// Where the seccomp agent listens for runtimes by default (`linux.seccomp.listenerPath`).
    pub const SECCOMP_SOCKET: &str = "/run/lxcfs-rs/seccomp.sock";
    /// Our descriptors, to tell what a runtime sent us (`anon_inode:seccomp notify`).
    pub const SELF_FD: &str = "/proc/self/fd";

    /// `/proc/<tid>/mem` of a task of our pid namespace (a notified caller), which is never a
    /// fixture's: the kernel numbered the task for us.
    pub fn task_mem(tid: u32) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/{tid}/mem"))
    }
}

/// Files of the container runtimes, read by `seccomp-profile`.
pub mod runtime_files {
    /// Podman's (containers-common's) default seccomp profile.
    pub const PODMAN_SECCOMP: &str = "/usr/share/containers/seccomp.json";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_paths_stay_under_the_fixture() {
        let h = HostPaths::under(Path::new("/tmp/fx"));
        assert_eq!(
            h.pid_file(7, "cgroup"),
            PathBuf::from("/tmp/fx/proc/7/cgroup")
        );
        assert_eq!(
            h.host_path(Path::new("/sys/fs/cgroup/memory")),
            PathBuf::from("/tmp/fx/sys/fs/cgroup/memory")
        );
        assert_eq!(
            h.sys_cpu_dir(),
            PathBuf::from("/tmp/fx/sys/devices/system/cpu")
        );
        assert_eq!(h.mountinfo(), PathBuf::from("/tmp/fx/proc/self/mountinfo"));
    }
}
