//! `--host-mount-ns`: join the host's mount namespace before anything else runs.
//!
//! lxcfs-rs in a container (the image, a Kubernetes DaemonSet pod) then mounts on the
//! host's `/var/lib/lxcfs` itself, with no shared bind mount or hostPath of the mount point,
//! and binds its handoff socket in the host's `/run/lxcfs-rs`, where the next container's
//! lxcfs-rs finds it and takes the mount over. It must run before any thread exists:
//! `setns(CLONE_NEWNS)` is refused to a process with threads sharing its filesystem
//! information.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use thiserror::Error;

/// The host's mount namespace, as pid 1 of the host pid namespace holds it.
const INIT_MNT_NS: &str = "/proc/1/ns/mnt";
/// kthreadd's: kernel threads always run in the initial namespaces, so this is the host's
/// when pid 1's cannot be opened (an init protected from inspection, as on the machines
/// lxcfs-rs is developed on, where even root is refused pid 1's namespace links).
const KTHREADD_MNT_NS: &str = "/proc/2/ns/mnt";
/// Our own mount namespace.
const OWN_MNT_NS: &str = "/proc/self/ns/mnt";
/// Inode of the kernel's initial pid namespace (`PROC_PID_INIT_INO`).
const INITIAL_PID_NS: u64 = 0xEFFF_FFFC;

/// Why the host's mount namespace could not be joined.
#[derive(Debug, Error)]
pub enum MountNsError {
    /// We are pid 1 of a pid namespace of our own: `/proc/1` is ourselves.
    #[error(
        "--host-mount-ns: lxcfs-rs is pid 1 of its own pid namespace, so /proc/1 is not the \
         host's init; run the container with --pid=host --privileged (hostPID: true and \
         privileged: true on Kubernetes)"
    )]
    OwnPidNamespace,
    /// The host's namespace file cannot be opened.
    #[error(
        "--host-mount-ns: cannot open {path} (not privileged, or not in the host's pid \
         namespace); run the container with --pid=host --privileged"
    )]
    Open {
        /// The namespace file.
        path: String,
        /// What opening it said.
        source: io::Error,
    },
    /// The kernel refused to switch.
    #[error(
        "--host-mount-ns: setns into {path} refused (it needs CAP_SYS_ADMIN and no seccomp or \
         AppArmor profile blocking setns); run the container with --privileged"
    )]
    Setns {
        /// The namespace file.
        path: String,
        /// What setns said.
        source: nix::errno::Errno,
    },
}

/// What [`join_host`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// We were in the host's mount namespace already.
    Already,
    /// We switched into it, from the file named.
    Switched(&'static str),
}

/// Joins the host's mount namespace (pid 1's, or kthreadd's when pid 1's cannot be opened)
/// unless we are in it already (same device and inode). Switching also moves our root and
/// working directory to that namespace's root: relative paths resolve from `/` after it.
/// Call it before any thread exists.
///
/// With `keep_init` (the daemon), a switch is made by a child: this process stays in the
/// container's namespace as its init, passing signals on to the child and exiting with its
/// status, and only the child returns. `docker exec` and Kubernetes exec probes enter the
/// mount namespace of a container's first process: were that the host's, the image's
/// `/lxcfs-rs` would not be found there.
pub fn join_host(keep_init: bool) -> Result<Joined, MountNsError> {
    if std::process::id() == 1 {
        return Err(MountNsError::OwnPidNamespace);
    }
    let (path, ns) = match open_ns(INIT_MNT_NS) {
        Ok(ns) => (INIT_MNT_NS, ns),
        Err(MountNsError::Open { source, .. })
            if source.kind() == io::ErrorKind::PermissionDenied && in_initial_pid_ns() =>
        {
            (KTHREADD_MNT_NS, open_ns(KTHREADD_MNT_NS)?)
        }
        Err(e) => return Err(e),
    };
    let same =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    let theirs = ns.metadata().map_err(|source| MountNsError::Open {
        path: path.into(),
        source,
    })?;
    if std::fs::metadata(OWN_MNT_NS).is_ok_and(|ours| same(&ours, &theirs)) {
        return Ok(Joined::Already);
    }
    if keep_init {
        stay_as_init();
    }
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNS).map_err(|source| {
        MountNsError::Setns {
            path: path.into(),
            source,
        }
    })?;
    Ok(Joined::Switched(path))
}

/// Opens a namespace file for `setns`.
fn open_ns(path: &'static str) -> Result<File, MountNsError> {
    File::open(path).map_err(|source| MountNsError::Open {
        path: path.into(),
        source,
    })
}

/// Whether we are in the initial pid namespace, where pid 2 is kthreadd.
fn in_initial_pid_ns() -> bool {
    std::fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() == INITIAL_PID_NS)
        && std::fs::read_to_string(Path::new("/proc/2/comm")).is_ok_and(|c| c.trim() == "kthreadd")
}

/// Forks: the child returns (with the signal mask it had); this process passes SIGTERM,
/// SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 on to it and exits as it exits (its code, or
/// 128 + the signal that ended it). Exits with one line when the fork fails.
fn stay_as_init() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let passed = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ];
    let mut set = SigSet::empty();
    for s in passed {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    // Blocked before the fork, so that none sent in between is lost.
    let mut old = SigSet::empty();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)) {
        eprintln!("lxcfs-rs: --host-mount-ns: cannot block signals: {e}");
        std::process::exit(1);
    }
    // SAFETY: no thread exists yet (the caller's contract), so the child may do anything.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            // The daemon goes when its container's init does (`docker kill`): cleanly.
            // SAFETY: prctl with constant arguments.
            unsafe { nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGTERM) };
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            return;
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("lxcfs-rs: --host-mount-ns: cannot fork the daemon: {e}");
            std::process::exit(1);
        }
    };
    loop {
        let Ok(signal) = set.wait() else { continue };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                    std::process::exit(128 + sig as i32)
                }
                // Others: orphans handed to us as a container's first process; reaped.
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
