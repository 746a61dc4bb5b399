//! Errors of the cgroup layer. Each carries the path involved, so a log line alone says which
//! file or which reader was the problem.

use std::path::PathBuf;

use thiserror::Error;

use crate::kfile::FileError;

/// Why cgroup hierarchies or a reader's cgroups could not be worked out.
///
/// The per-value readers (`ReaderCgroups::memory` and friends) never return these: they note
/// them as fallbacks (`crate::fallback`) and use the host value.
#[derive(Debug, Error)]
pub enum CgroupError {
    /// A file could not be read, or its content makes no sense.
    #[error(transparent)]
    File(#[from] FileError),
    /// `/proc/<pid>/cgroup` names a path starting with `/..`: the daemon runs in a non-initial
    /// cgroup namespace and cannot see the reader's cgroup. Serving host values instead would be
    /// silently wrong, so this is an error the caller must surface.
    #[error(
        "{path}: cgroup path {cgroup:?} lies outside this daemon's cgroup namespace; \
         run lxcfs-rs in the host cgroup namespace"
    )]
    OutsideNamespace {
        /// The `/proc/<pid>/cgroup` file.
        path: PathBuf,
        /// The offending cgroup path.
        cgroup: String,
    },
    /// The reader's cgroup is not below the root of the (bind-)mounted hierarchy we can see.
    #[error(
        "{path}: cgroup path {cgroup:?} is not under {mount_root:?}, the root of the hierarchy mounted at {mount_dir}"
    )]
    OutsideMount {
        /// The `/proc/<pid>/cgroup` file.
        path: PathBuf,
        /// The reader's cgroup path.
        cgroup: String,
        /// The mountinfo `root` field of the hierarchy.
        mount_root: String,
        /// Where that hierarchy is mounted.
        mount_dir: PathBuf,
    },
    /// mountinfo lists no cgroup2 mount and no v1 hierarchy with a controller we read.
    #[error(
        "{path}: no cgroup2 mount and no cgroup v1 hierarchy with memory, cpu, cpuacct, cpuset, blkio or pids"
    )]
    NoHierarchies {
        /// The mountinfo file.
        path: PathBuf,
    },
}
