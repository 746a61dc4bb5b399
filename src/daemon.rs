//! Running the filesystem: checks before mounting, the pidfile, the mount itself, and a
//! clean unmount on SIGTERM/SIGINT.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use fuser::{Session, SessionACL};
use log::{info, warn};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::getpid;
use thiserror::Error;

use crate::fs::LxcFs;
use crate::host::HostPaths;
use crate::view::{View, ViewOptions};

/// Why the daemon could not start or keep running. Each message says what to do.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// Not running as root.
    #[error(
        "must run as root (it mounts a FUSE filesystem and reads every process's /proc); run it with sudo"
    )]
    NotRoot,
    /// /dev/fuse is missing or unusable.
    #[error(
        "cannot use /dev/fuse ({0}); load the fuse module (modprobe fuse), or pass --device /dev/fuse to a containerised lxcfs-rs"
    )]
    NoFuse(String),
    /// The mount point exists and is not a directory.
    #[error("mount point {0} is not a directory; remove it or choose another path")]
    MountPointNotDir(PathBuf),
    /// A live FUSE filesystem is already mounted there.
    #[error(
        "mount point {0} is already served by a live FUSE daemon; stop it (or `umount {0}`) first, or choose another mount point"
    )]
    AlreadyMounted(PathBuf),
    /// The mount point could not be prepared.
    #[error("cannot prepare mount point {path}: {source}")]
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
    #[error("cannot write pidfile {path}: {source}")]
    Pidfile {
        /// The pidfile.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The daemon is in a cgroup namespace other than the host's and cannot leave it.
    #[error(
        "lxcfs-rs runs in a non-initial cgroup namespace and cannot join the host's ({0}); run it with the host cgroup namespace (docker --cgroupns=host, or hostPID + privileged on Kubernetes)"
    )]
    CgroupNamespace(String),
    /// The cgroup hierarchies could not be found.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    /// Mounting failed.
    #[error("mounting on {path} failed: {source} (check the -o options)")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// Signal handling could not be set up.
    #[error("cannot set up signal handling: {0}")]
    Signals(Errno),
}

/// Everything the daemon needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Pidfile to hold locked, if any.
    pub pidfile: Option<PathBuf>,
    /// FUSE worker threads.
    pub threads: usize,
    /// `-o` options, comma lists as given.
    pub options: Vec<String>,
    /// What the files show.
    pub view: ViewOptions,
    /// Where the host files are.
    pub host: HostPaths,
}

/// Mounts the filesystem and serves it until SIGTERM, SIGINT or SIGHUP, or until someone
/// unmounts it.
pub fn run(cfg: DaemonConfig) -> Result<(), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    check_dev_fuse()?;
    let _pidfile = cfg.pidfile.as_deref().map(PidFile::acquire).transpose()?;
    if cfg.host == HostPaths::default() {
        join_host_cgroup_namespace()?;
        warn_unless_host_pid_namespace();
    }
    prepare_mountpoint(&cfg.mountpoint)?;

    // Block the stop signals before any thread exists, so that every thread inherits the
    // mask and only the main thread's sigwait sees them.
    let mut stop = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(s);
    }
    stop.thread_block().map_err(DaemonError::Signals)?;

    let view = Arc::new(View::new(cfg.host.clone(), cfg.view)?);
    let mut config = fuser::Config::default();
    config.acl = SessionACL::All;
    config.n_threads = Some(cfg.threads);
    config.clone_fd = true;
    let mount_err = |source| DaemonError::Mount {
        path: cfg.mountpoint.clone(),
        source,
    };
    let fuse = mount_fuse(&cfg.mountpoint, &cfg.options).map_err(mount_err)?;
    let session = Session::from_fd(LxcFs::new(view), fuse, SessionACL::All, config)
        .inspect_err(|_| {
            let _ = umount2(&cfg.mountpoint, MntFlags::MNT_DETACH);
        })
        .map_err(mount_err)?;
    info!(
        "serving {} with {} threads",
        cfg.mountpoint.display(),
        cfg.threads
    );

    let (done_tx, done_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let result = session.run();
            let _ = done_tx.send(result);
            // Wake the main thread when the mount went away under us.
            let _ = kill(getpid(), Signal::SIGTERM);
        })
        .map_err(|source| DaemonError::Mount {
            path: cfg.mountpoint.clone(),
            source,
        })?;

    notify_systemd("READY=1");

    let signal = stop.wait().map_err(DaemonError::Signals)?;
    notify_systemd("STOPPING=1");
    if let Ok(result) = done_rx.try_recv() {
        warn!(
            "{} was unmounted from outside; exiting",
            cfg.mountpoint.display()
        );
        return result.map_err(|source| DaemonError::Mount {
            path: cfg.mountpoint.clone(),
            source,
        });
    }
    info!("{signal:?}: unmounting {}", cfg.mountpoint.display());
    if let Err(e) = umount2(&cfg.mountpoint, MntFlags::empty()) {
        // Busy (a reader's cwd, say): detach, so the mount point is free at once and the
        // filesystem goes away when its last user does.
        warn!("unmount failed ({e}); detaching instead");
        let _ = umount2(&cfg.mountpoint, MntFlags::MNT_DETACH);
    }
    match done_rx.recv_timeout(Duration::from_secs(3)) {
        Ok(Err(e)) => warn!("FUSE session ended with an error: {e}"),
        Ok(Ok(())) => {}
        Err(_) => warn!("FUSE session still busy after unmount; exiting anyway"),
    }
    Ok(())
}

fn check_dev_fuse() -> Result<(), DaemonError> {
    let meta = std::fs::metadata("/dev/fuse").map_err(|e| DaemonError::NoFuse(e.to_string()))?;
    if !meta.file_type().is_char_device() {
        return Err(DaemonError::NoFuse("not a character device".into()));
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| DaemonError::NoFuse(e.to_string()))?;
    Ok(())
}

/// Inode of the kernel's initial cgroup namespace (`PROC_CGROUP_INIT_INO`).
const INITIAL_CGROUP_NS: u64 = 0xEFFF_FFFB;
/// Inode of the kernel's initial pid namespace (`PROC_PID_INIT_INO`).
const INITIAL_PID_NS: u64 = 0xEFFF_FFFC;

/// Paths in `/proc/<pid>/cgroup` are relative to our cgroup namespace, so a daemon in a
/// pod's namespace would read other cgroups than its readers'. Join the host's (pid 1's)
/// when we are elsewhere; if we still are not in the initial namespace (pid 1 is a pod's own
/// init, or setns is refused), refuse to start rather than serve wrong numbers.
fn join_host_cgroup_namespace() -> Result<(), DaemonError> {
    let ns_ino = |path: &str| std::fs::metadata(path).map(|m| m.ino());
    // No cgroup namespaces in this kernel: paths are absolute already.
    let Ok(ours) = ns_ino("/proc/self/ns/cgroup") else {
        return Ok(());
    };
    if ours == INITIAL_CGROUP_NS {
        return Ok(());
    }
    let joined = File::open("/proc/1/ns/cgroup")
        .map_err(|e| e.to_string())
        .and_then(|ns| {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWCGROUP)
                .map_err(|e| e.to_string())
        });
    match (joined, ns_ino("/proc/self/ns/cgroup")) {
        (Ok(()), Ok(INITIAL_CGROUP_NS)) => {
            info!("joined the host cgroup namespace");
            Ok(())
        }
        (Ok(()), _) => Err(DaemonError::CgroupNamespace(
            "pid 1's is not the host's either".into(),
        )),
        (Err(e), _) => Err(DaemonError::CgroupNamespace(e)),
    }
}

/// The kernel names a reader outside our pid namespace as pid 0, which gets host values:
/// correct for the host, wrong for containers, so say so loudly.
fn warn_unless_host_pid_namespace() {
    if std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() != INITIAL_PID_NS) {
        warn!(
            "lxcfs-rs is not in the host pid namespace: readers outside it get host values; \
             run it on the host, or with hostPID on Kubernetes (docker --pid=host)"
        );
    }
}

/// Makes `path` a directory ready to mount on: created when missing, a stale FUSE mount
/// left by a dead daemon detached, a live one refused.
fn prepare_mountpoint(path: &Path) -> Result<(), DaemonError> {
    let io_err = |source| DaemonError::MountPoint {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(Errno::ENOTCONN as i32) => {
            warn!(
                "{}: detaching a stale mount (its daemon is gone)",
                path.display()
            );
            umount2(path, MntFlags::MNT_DETACH).map_err(|e| io_err(e.into()))?;
            prepare_mountpoint(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(io_err)
        }
        Err(e) => Err(io_err(e)),
        Ok(meta) if !meta.is_dir() => Err(DaemonError::MountPointNotDir(path.to_path_buf())),
        Ok(_) => {
            let canonical = path.canonicalize().map_err(io_err)?;
            if is_fuse_mountpoint(&canonical) {
                Err(DaemonError::AlreadyMounted(path.to_path_buf()))
            } else {
                Ok(())
            }
        }
    }
}

/// Tells systemd (a `Type=notify` unit) about our state, so that units ordered after ours
/// (container runtimes) start only once the files are served. Without `$NOTIFY_SOCKET`
/// (not under systemd) there is no one to tell.
fn notify_systemd(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_socket(&path.to_string_lossy(), state);
    }
}

/// Sends `state` to the notification socket at `path`.
fn notify_socket(path: &str, state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    // systemd names an abstract socket with a leading '@'.
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(path),
    };
    let sent = UnixDatagram::unbound()
        .and_then(|sock| addr.and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr)));
    if let Err(e) = sent {
        warn!("could not notify systemd at {path}: {e}");
    }
}

/// Whether a FUSE filesystem is mounted exactly at `path`.
fn is_fuse_mountpoint(path: &Path) -> bool {
    mounted_type_at(path).is_some_and(|t| t == "fuse" || t.starts_with("fuse."))
}

/// Whether lxcfs-rs or the C lxcfs (both `fuse.lxcfs`) serves exactly `path`: what
/// `bind-args` and the hooks bind from.
pub(crate) fn is_lxcfs_mountpoint(path: &Path) -> bool {
    mounted_type_at(path).is_some_and(|t| t == "fuse.lxcfs")
}

/// The type of the topmost mount at exactly `path`, if any.
fn mounted_type_at(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    crate::cgroup::parse_mounts(&text)
        .filter(|m| m.mount_point == path)
        .last()
        .map(|m| m.fs_type)
}

/// What `mount(2)` gets for our `-o` options: flags, and options after FUSE's own.
#[derive(Debug, PartialEq, Eq)]
struct KernelMount {
    flags: MsFlags,
    extra: Vec<String>,
}

/// The kernel mount flags and options: ours, plus the `-o` ones that mean something to the
/// kernel. No `default_permissions`: with it the kernel refreshes a file's attributes (a
/// GETATTR, which renders the file to learn its size) before every open; the mount is
/// read-only and `open` refuses write access, which is all the checking 0444 files need.
fn mount_options(extra: &[String]) -> KernelMount {
    let mut out = KernelMount {
        flags: MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        extra: Vec::new(),
    };
    for opt in extra
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        match opt {
            // What lxcfs-rs always does, or libfuse-only switches with no kernel meaning.
            "allow_other"
            | "ro"
            | "nonempty"
            | "direct_io"
            | "big_writes"
            | "default_permissions"
            | "nodev"
            | "nosuid" => {}
            "noexec" => out.flags |= MsFlags::MS_NOEXEC,
            "noatime" => out.flags |= MsFlags::MS_NOATIME,
            other => out.extra.push(other.to_string()),
        }
    }
    out
}

/// Mounts a FUSE filesystem at `mountpoint` as libfuse mounts lxcfs (type `fuse.lxcfs`,
/// source `lxcfs`, so `findmnt -t fuse.lxcfs` and scripts written for lxcfs find it) and
/// returns the `/dev/fuse` descriptor that serves it.
fn mount_fuse(mountpoint: &Path, options: &[String]) -> io::Result<OwnedFd> {
    let root_mode = std::fs::metadata(mountpoint)?.mode();
    let fuse: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")?
        .into();
    let opts = mount_options(options);
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={},group_id={},allow_other",
        fuse.as_raw_fd(),
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    for o in &opts.extra {
        data.push(',');
        data.push_str(o);
    }
    nix::mount::mount(
        Some("lxcfs"),
        mountpoint,
        Some("fuse.lxcfs"),
        opts.flags,
        Some(data.as_str()),
    )?;
    Ok(fuse)
}

/// A pidfile held under an exclusive lock for the daemon's life and removed at exit.
struct PidFile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidFile {
    fn acquire(path: &Path) -> Result<PidFile, DaemonError> {
        let err = |source| DaemonError::Pidfile {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(DaemonError::PidfileLocked {
                    path: path.to_path_buf(),
                    pid: pid.trim().to_string(),
                });
            }
            Err((_, e)) => return Err(err(e.into())),
        };
        lock.set_len(0).map_err(err)?;
        lock.rewind().map_err(err)?;
        writeln!(lock, "{}", std::process::id()).map_err(err)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_o_options() {
        let opts = mount_options(&[
            "allow_other,nonempty".into(),
            "noexec".into(),
            "weird=1".into(),
        ]);
        assert_eq!(
            opts,
            KernelMount {
                flags: MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                extra: vec!["weird=1".into()],
            }
        );
    }

    #[test]
    fn systemd_hears_ready() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        notify_socket(path.to_str().unwrap(), "READY=1");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn pidfile_is_exclusive_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/lxcfs-rs.pid");
        let held = PidFile::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        match PidFile::acquire(&path) {
            Err(DaemonError::PidfileLocked { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            other => panic!("second pidfile lock: {other:?}", other = other.map(|_| ())),
        }
        drop(held);
        assert!(!path.exists());
    }

    #[test]
    fn missing_mountpoint_is_created_and_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path().join("a/b");
        prepare_mountpoint(&mp).unwrap();
        assert!(mp.is_dir());
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(
            prepare_mountpoint(&file),
            Err(DaemonError::MountPointNotDir(_))
        ));
    }
}
