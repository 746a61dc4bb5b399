//! Errors of the cgroup layer. Each carries the path involved, so a log line alone says which
//! file or which reader was the problem.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why cgroup hierarchies or a reader's cgroups could not be worked out.
///
/// The per-value readers (`ReaderCgroups::memory` and friends) never return these: they log them
/// at debug level and fall back to the host value.
#[derive(Debug, Error)]
pub enum CgroupError {
    /// A file could not be read (the process is gone, permissions, ...).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        source: io::Error,
    },
    /// A file was read but its content makes no sense.
    #[error("malformed {path}: {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        what: String,
    },
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

impl CgroupError {
    /// Wraps an I/O error with the file it came from.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        CgroupError::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed-content error for `path`.
    pub(crate) fn malformed(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        CgroupError::Malformed {
            path: path.into(),
            what: what.into(),
        }
    }
}
