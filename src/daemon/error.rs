//! Why the daemon could not start or keep running. Each message says what to do; the cause,
//! where there is one, is the error's `source()`.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

/// Why the daemon could not start or keep running.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// Not running as root.
    #[error(
        "must run as root (it mounts a FUSE filesystem and reads every process's /proc); run it with sudo"
    )]
    NotRoot,
    /// /dev/fuse is missing or cannot be opened.
    #[error(
        "cannot use /dev/fuse (load the fuse module with modprobe fuse, or pass --device /dev/fuse to a containerised lxcfs-rs)"
    )]
    NoFuse(#[source] io::Error),
    /// /dev/fuse exists but is something else.
    #[error(
        "cannot use /dev/fuse: not a character device (load the fuse module with modprobe fuse, or pass --device /dev/fuse to a containerised lxcfs-rs)"
    )]
    FuseNotCharDevice,
    /// The mount point exists and is not a directory.
    #[error("mount point {0} is not a directory; remove it or choose another path")]
    MountPointNotDir(PathBuf),
    /// A live FUSE filesystem is already mounted there.
    #[error(
        "mount point {0} is already served by a live FUSE daemon; stop it (or `umount {0}`) first, or choose another mount point"
    )]
    AlreadyMounted(PathBuf),
    /// The mount point could not be prepared.
    #[error("cannot prepare mount point {path}")]
    MountPoint {
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Another daemon holds the pidfile.
    #[error(
        "pidfile {path} is locked by a running lxcfs-rs (pid {pid}); stop it first or use another --pidfile"
    )]
    PidfileLocked {
        /// The pidfile.
        path: PathBuf,
        /// The pid written in it.
        pid: String,
    },
    /// The pidfile could not be written.
    #[error("cannot write pidfile {path}")]
    Pidfile {
        /// The pidfile.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The daemon is in a cgroup namespace other than the host's, and joining pid 1's failed.
    #[error(
        "lxcfs-rs runs in a non-initial cgroup namespace and cannot join the host's; {CGROUP_NS_ADVICE}"
    )]
    CgroupNamespace(#[source] io::Error),
    /// The daemon joined pid 1's cgroup namespace, and that is not the host's either.
    #[error(
        "lxcfs-rs runs in a non-initial cgroup namespace and cannot join the host's (pid 1's is not the host's either); {CGROUP_NS_ADVICE}"
    )]
    CgroupNamespaceNotHost,
    /// The cgroup hierarchies could not be found.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    /// Mounting failed.
    #[error("mounting on {path} failed (check the -o options)")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Two served paths hash to one node id (a change to the tree or to the hash).
    #[error("the served tree cannot be given stable node ids")]
    NodeIds(#[from] crate::fs::Collision),
    /// The connection taken over could not be served.
    #[error("cannot serve the mount taken over at {path}")]
    Adopt {
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Taking the mount over from the daemon serving it failed.
    #[error("cannot take the mount over (--takeover)")]
    Takeover(#[from] super::handoff::HandoffError),
    /// `lxcfs-rs status` got no answer.
    #[error("cannot get the status")]
    Status(#[source] super::handoff::HandoffError),
    /// The worker process could not be set up or started.
    #[error("worker: {0}")]
    Worker(String),
    /// A live lxcfs-rs already serves the mount point.
    #[error(
        "mount point {0} is already served by a running lxcfs-rs; upgrade it in place with `lxcfs-rs --takeover`, or stop it first"
    )]
    AlreadyServed(PathBuf),
    /// A FUSE mount sits there whose daemon does not answer.
    #[error(
        "mount point {0} is a FUSE mount whose daemon does not answer (it is hung or stopped); end that daemon, or detach the mount with `umount -l {0}`, then start again"
    )]
    Unanswered(PathBuf),
    /// Descriptors passed by systemd or by our own re-execution could not be adopted.
    #[error("cannot adopt the inherited FUSE connection")]
    Inherit(#[source] io::Error),
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling")]
    Signals(#[source] Errno),
}

/// What to do about a cgroup namespace that is not the host's.
const CGROUP_NS_ADVICE: &str = "run it with the host cgroup namespace (docker --cgroupns=host, or hostPID + privileged on Kubernetes)";
